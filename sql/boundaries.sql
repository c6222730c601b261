--
-- boundaries: where a statement starts and ends, in the cases that are
-- easy to get wrong (cursors across savepoints and rollbacks, EXECUTE
-- parameters, commit-time triggers, refcursors, rules)
--
CREATE TABLE bound_t (id int PRIMARY KEY, v int);
INSERT INTO bound_t SELECT g, g FROM generate_series(1, 20) g;
SELECT shield.reset() IS NOT NULL AS reset;

-- a cursor that fails in a savepoint it did not start in has failed
BEGIN;
DECLARE c1 CURSOR FOR SELECT 1 / (v - 3) AS c1 FROM bound_t ORDER BY id;
SAVEPOINT s;
FETCH ALL FROM c1;
ROLLBACK TO SAVEPOINT s;
COMMIT;
-- a healthy cursor whose transaction rolls back has not
BEGIN;
DECLARE c2 CURSOR FOR SELECT v AS c2 FROM bound_t ORDER BY id;
FETCH 2 FROM c2;
ROLLBACK;
SELECT query, calls, errors, rows FROM shield.query_stats
WHERE query LIKE 'DECLARE c_ CURSOR%'
ORDER BY query COLLATE "C";

-- the same, once this session has recorded the cursor's fingerprint with
-- its text (its executor calls then run without PG_TRY); the first row
-- divides by -2, the third by 0 (a shape of its own, not c1's)
BEGIN;
DECLARE c3 CURSOR FOR SELECT id, 1 / (v - 3) AS c3 FROM bound_t ORDER BY id;
FETCH 1 FROM c3;
CLOSE c3;
COMMIT;
BEGIN;
DECLARE c3 CURSOR FOR SELECT id, 1 / (v - 3) AS c3 FROM bound_t ORDER BY id;
SAVEPOINT s;
FETCH ALL FROM c3;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT query, calls, errors, rows FROM shield.query_stats
WHERE query LIKE 'DECLARE c3 CURSOR%';

-- EXECUTE is accounted as its prepared statement, not as the functions
-- that compute its parameters
CREATE FUNCTION bound_param() RETURNS int LANGUAGE plpgsql AS
$$ BEGIN RETURN (SELECT count(*) FROM bound_t WHERE v > 10); END $$;
PREPARE bound_p(int) AS SELECT count(*) AS bound_p FROM bound_t WHERE v > $1;
EXECUTE bound_p(bound_param());
EXPLAIN (COSTS OFF) EXECUTE bound_p(bound_param());
SELECT query, calls, rows FROM shield.query_stats
WHERE query LIKE '%bound_t WHERE v > %' OR query LIKE 'EXPLAIN%'
ORDER BY query COLLATE "C";

-- under EXPLAIN ANALYZE and CREATE TABLE AS, EXECUTE keeps the prepared
-- text, whatever precedes it in the query string
-- (EXPLAIN ANALYZE's output differs between versions: only what is
-- accounted matters here, so its output is discarded)
\o /dev/null
SELECT 1 AS a \; SELECT 2 AS b \; SELECT 3 AS c \; EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE bound_p(5);
\o
CREATE TABLE bound_ctas AS EXECUTE bound_p(15);
SELECT query, calls FROM shield.query_stats
WHERE query LIKE 'PREPARE bound_p%' OR query LIKE '%EXECUTE bound_p(5)'
ORDER BY query COLLATE "C";
SELECT count(*) > 0 AS view_readable FROM shield.query_stats;
DROP TABLE bound_ctas;
DEALLOCATE bound_p;

-- deferred triggers fired at commit belong to the statements that queued
-- them, utility statements they run too (core runs those as queries, not
-- as the client's statements)
CREATE TABLE bound_audit (id int);
CREATE FUNCTION bound_audit_fn() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO bound_audit VALUES (NEW.id); EXECUTE 'NOTIFY bound_audit_ch';
   RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER bound_audit_trg AFTER INSERT ON bound_t
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bound_audit_fn();
INSERT INTO bound_t VALUES (21, 21);
BEGIN;
INSERT INTO bound_t VALUES (22, 22);
COMMIT;
SELECT count(*) AS audit_rows FROM bound_audit;
SELECT count(*) AS trigger_statements_counted FROM shield.query_stats
WHERE (query LIKE 'INSERT INTO bound_audit%' OR query LIKE 'NOTIFY bound_audit_ch%')
  AND (calls > 0 OR errors > 0);
SELECT calls FROM shield.query_stats WHERE query LIKE 'INSERT INTO bound_t VALUES (21%';
-- and so do the loops they run, each in a portal of its own
CREATE OR REPLACE FUNCTION bound_audit_fn() RETURNS trigger LANGUAGE plpgsql AS
$$ DECLARE r record;
   BEGIN FOR r IN SELECT g AS bound_audit_loop FROM generate_series(1, 3) g LOOP
     INSERT INTO bound_audit VALUES (r.bound_audit_loop); END LOOP;
   RETURN NULL; END $$;
INSERT INTO bound_t VALUES (23, 23);
SELECT count(*) AS audit_rows FROM bound_audit;
SELECT count(*) AS trigger_loops_counted FROM shield.query_stats
WHERE query LIKE '%bound_audit_loop%' AND query NOT LIKE '%FUNCTION%';
DELETE FROM bound_t WHERE id = 23;

-- a cursor opened by a function is accounted when it is fetched: each
-- FETCH or MOVE is a statement of the cursor's query
CREATE FUNCTION bound_open() RETURNS refcursor LANGUAGE plpgsql AS
$$ DECLARE c refcursor := 'bound_rc';
   BEGIN OPEN c FOR SELECT id AS bound_rc FROM bound_t ORDER BY id DESC; RETURN c; END $$;
BEGIN;
SELECT bound_open();
FETCH 3 FROM bound_rc;
MOVE 1 IN bound_rc;
FETCH 2 FROM bound_rc;
COMMIT;
SELECT query, calls, rows FROM shield.query_stats
WHERE query LIKE '%bound_rc%' AND query NOT LIKE '%bound_open%';

-- a statement that rules rewrite into several queries is one statement
CREATE TABLE bound_r (id int);
CREATE TABLE bound_r_log (id int);
CREATE RULE bound_r_also AS ON INSERT TO bound_r
  DO ALSO INSERT INTO bound_r_log VALUES (NEW.id);
INSERT INTO bound_r VALUES (1);
SELECT query, calls FROM shield.query_stats
WHERE query LIKE 'INSERT INTO bound_r %';
SELECT count(*) AS logged FROM bound_r_log;
-- and it holds its slot until its last query ends: the rule's query sees
-- its own statement running in shield.activity
CREATE TABLE bound_r_seen (running bigint);
CREATE RULE bound_r_also_seen AS ON INSERT TO bound_r
  DO ALSO INSERT INTO bound_r_seen
    SELECT count(*) FROM shield.activity
    WHERE pid = pg_backend_pid() AND state = 'running';
GRANT INSERT ON bound_r, bound_r_log, bound_r_seen TO regress_shield_alice;
SELECT shield.set_role_policy('regress_shield_alice', max_concurrent => 1,
                              queue_timeout => '0');
SET ROLE regress_shield_alice;
INSERT INTO bound_r VALUES (2);
RESET ROLE;
SELECT running FROM bound_r_seen;
SELECT calls, admitted FROM shield.role_stats
WHERE rolname = 'regress_shield_alice';
SELECT shield.drop_role_policy('regress_shield_alice');
DROP RULE bound_r_also_seen ON bound_r;
REVOKE INSERT ON bound_r, bound_r_log FROM regress_shield_alice;
DROP TABLE bound_r_seen;

-- a held cursor counts the rows of its query once, however far it was
-- fetched before commit
BEGIN;
DECLARE bound_h CURSOR WITH HOLD FOR SELECT id AS bound_h FROM bound_t ORDER BY id;
FETCH 5 FROM bound_h;
COMMIT;
FETCH 2 FROM bound_h;
CLOSE bound_h;
BEGIN;
DECLARE bound_hn NO SCROLL CURSOR WITH HOLD FOR SELECT id AS bound_hn, v FROM bound_t ORDER BY id;
FETCH 5 FROM bound_hn;
COMMIT;
CLOSE bound_hn;
SELECT query, calls, rows FROM shield.query_stats WHERE query LIKE 'DECLARE bound_h%'
ORDER BY query COLLATE "C";

-- a statement whose query ran but whose utility then failed has failed:
-- REFRESH ... CONCURRENTLY runs the view's query, then merges
CREATE MATERIALIZED VIEW bound_mv AS SELECT v % 2 AS k FROM bound_t WHERE v < 3;
CREATE UNIQUE INDEX ON bound_mv (k);
UPDATE bound_t SET v = 1 WHERE id = 2;
REFRESH MATERIALIZED VIEW CONCURRENTLY bound_mv;
SELECT calls, errors FROM shield.query_stats
WHERE query LIKE 'REFRESH MATERIALIZED VIEW CONCURRENTLY bound_mv%';
DROP MATERIALIZED VIEW bound_mv;

-- a delegated statement (EXECUTE, EXPLAIN ANALYZE) whose query fails once
-- its fingerprint is known is counted as an error, not as a call
SELECT shield.reset() IS NOT NULL AS reset;
PREPARE bound_div(int) AS SELECT 10 / (v - $1) AS bound_div FROM bound_t
  WHERE id = 5;
EXECUTE bound_div(0);
EXECUTE bound_div(5);
EXECUTE bound_div(5);
\o /dev/null
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT 10 / (v - 6) AS bound_explained FROM bound_t WHERE id = 5;
\o
\o /dev/null
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT 10 / (v - 5) AS bound_explained FROM bound_t WHERE id = 5;
\o
SELECT query, calls, errors FROM shield.query_stats
WHERE (query LIKE '%bound_div%' OR query LIKE '%bound_explained%')
  AND query NOT LIKE '%shield.query_stats%'
ORDER BY query COLLATE "C";
DEALLOCATE bound_div;

DROP TABLE bound_t, bound_audit, bound_r, bound_r_log;
DROP FUNCTION bound_param(), bound_audit_fn(), bound_open();
