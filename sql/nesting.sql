--
-- nesting: a statement is accounted once, at the outermost level; what
-- functions, triggers, DO blocks and the planner run inside it is not a
-- statement of its own
--
CREATE TABLE nest_t (id int PRIMARY KEY, v int);
INSERT INTO nest_t SELECT g, g FROM generate_series(1, 50) g;
CREATE TABLE nest_log (id int);
CREATE FUNCTION nest_count() RETURNS bigint LANGUAGE plpgsql AS
$$ BEGIN RETURN (SELECT count(*) FROM nest_t WHERE v > 0); END $$;
CREATE FUNCTION nest_guarded() RETURNS int LANGUAGE plpgsql AS
$$ BEGIN
     PERFORM 1 / (SELECT 0 FROM nest_t WHERE id = 1);
     RETURN 1;
   EXCEPTION WHEN division_by_zero THEN
     RETURN -1;
   END $$;
CREATE FUNCTION nest_trigger() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO nest_log VALUES (NEW.id); RETURN NEW; END $$;
CREATE TRIGGER nest_trg AFTER INSERT ON nest_t
  FOR EACH ROW EXECUTE FUNCTION nest_trigger();
-- immutable, so the planner runs its query while folding constants
CREATE FUNCTION nest_folded() RETURNS int LANGUAGE plpgsql IMMUTABLE AS
$$ BEGIN RETURN (SELECT 7 FROM pg_catalog.pg_class LIMIT 1); END $$;

SELECT shield.reset() IS NOT NULL AS reset;

SELECT nest_count();
SELECT nest_guarded();
INSERT INTO nest_t VALUES (51, 51), (52, 52);
SELECT nest_folded() AS folded;
DO $$ BEGIN PERFORM count(*) FROM nest_t; PERFORM nest_count(); END $$;
DO $$ BEGIN
     PERFORM 1 / 0;
   EXCEPTION WHEN division_by_zero THEN NULL;
   END $$;

-- EXPLAIN ANALYZE is its inner query, executed; plain EXPLAIN only plans
SELECT count(*) FROM nest_t WHERE v < 10;
-- (EXPLAIN ANALYZE's output differs between versions: only what is
-- accounted matters here, so its output is discarded)
\o /dev/null
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT count(*) FROM nest_t WHERE v < 10;
\o
EXPLAIN (COSTS OFF) SELECT count(*) FROM nest_t WHERE v < 10;

-- inside a multi-statement string, each keeps its own text
\o /dev/null
SELECT 1 AS one \; EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT max(v) FROM nest_t \; SELECT 2 AS two;
\o

-- a cursor is one statement from DECLARE to CLOSE, whatever runs meanwhile
-- (a cursor, COPY (query) or CREATE TABLE AS has its query's fingerprint:
-- the shapes below differ, so that each is a row of its own)
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM nest_t WHERE id <= 20 ORDER BY id;
FETCH 2 FROM c;
SELECT 42 AS while_cursor_open;
FETCH 3 FROM c;
MOVE 1 IN c;
CLOSE c;
COMMIT;

-- a WITH HOLD cursor runs to completion at commit
DECLARE h CURSOR WITH HOLD FOR SELECT id, v FROM nest_t WHERE id <= 4 ORDER BY id;
FETCH ALL FROM h;
CLOSE h;

-- prepared statements are accounted under the prepared query
PREPARE nest_p(int) AS SELECT v FROM nest_t WHERE id = $1;
EXECUTE nest_p(1);
EXECUTE nest_p(2);
EXECUTE nest_p(3);
DEALLOCATE nest_p;

-- statements that wrap one query: CREATE TABLE AS, COPY (query)
CREATE TABLE nest_copy AS SELECT * FROM nest_t WHERE id <= 12;
COPY (SELECT v FROM nest_t WHERE id <= 3 ORDER BY id) TO STDOUT;

SELECT query, calls, errors, rows
FROM shield.query_stats
WHERE datname = current_database() AND query NOT LIKE '%shield.%'
ORDER BY query COLLATE "C";

-- nothing the functions, trigger, DO blocks or planner ran was counted
SELECT count(*) AS nested_statements_counted
FROM shield.query_stats
WHERE (calls > 0 OR errors > 0 OR plans > 0)
  AND query NOT LIKE '%shield.query_stats%'
  AND (query LIKE '%nest_log%' OR query LIKE '%pg_catalog.pg_class%'
       OR query LIKE '%count(*) FROM nest_t WHERE v > 0%'
       OR query LIKE 'FETCH%' OR query LIKE 'MOVE%' OR query LIKE 'CLOSE%'
       OR query LIKE 'EXECUTE%' OR query LIKE 'DEALLOCATE%');

-- a failure inside an exception block is not the statement's failure,
-- but a failure after a savepoint is, once
BEGIN;
SAVEPOINT s1;
SELECT 10 / (v - 1) FROM nest_t WHERE id = 1;
ROLLBACK TO SAVEPOINT s1;
SELECT 1 AS after_rollback;
COMMIT;
SELECT query, calls, errors FROM shield.query_stats
WHERE query LIKE 'SELECT 10 / (v - 1)%' OR query LIKE 'SELECT nest_guarded()%'
ORDER BY query COLLATE "C";

-- once this session has recorded a fingerprint with its text, its
-- statements' top-level executor calls run without PG_TRY: a failure is
-- still counted once, in a savepoint or not, an exception block inside the
-- statement does not fail it, and the statements after a failure are
-- accounted at top level again
SELECT shield.reset() IS NOT NULL AS reset;
SELECT 10 / (v - 2) FROM nest_t WHERE id = 1;
SELECT nest_guarded();
BEGIN;
SAVEPOINT s1;
SELECT 10 / (v - 1) FROM nest_t WHERE id = 1;
ROLLBACK TO SAVEPOINT s1;
SELECT nest_guarded();
COMMIT;
SELECT 10 / (v - 1) FROM nest_t WHERE id = 1;
SELECT nest_count();
SELECT query, calls, errors FROM shield.query_stats
WHERE query LIKE 'SELECT 10 / (v - %' OR query LIKE 'SELECT nest_guarded()%'
   OR query LIKE 'SELECT nest_count()%'
ORDER BY query COLLATE "C";

-- a client cursor that a DO block fetches from, catching its failure: the
-- cursor's statement failed, and the statements after the DO are
-- accounted at top level again
SELECT shield.reset() IS NOT NULL AS reset;
BEGIN;
DECLARE nc CURSOR FOR SELECT 1 / (x - 3) AS nc FROM generate_series(1, 5) x;
FETCH 1 FROM nc;
CLOSE nc;
DECLARE nc CURSOR FOR SELECT 1 / (x - 3) AS nc FROM generate_series(1, 5) x;
DO $$
DECLARE
  r refcursor := 'nc';
  v int;
BEGIN
  LOOP
    BEGIN
      FETCH r INTO v;
      EXIT WHEN NOT FOUND;
    EXCEPTION WHEN division_by_zero THEN
      RAISE NOTICE 'caught: %', SQLERRM;
      EXIT;
    END;
  END LOOP;
END $$;
SELECT 1 AS after_do;
COMMIT;
SELECT query, calls, errors FROM shield.query_stats
WHERE query LIKE 'DECLARE nc CURSOR%' OR query LIKE 'SELECT 1 AS after_do%'
ORDER BY query COLLATE "C";

DROP TABLE nest_t, nest_log, nest_copy;
DROP FUNCTION nest_count(), nest_guarded(), nest_trigger(), nest_folded();
