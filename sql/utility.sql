--
-- utility: statements that do not run the executor are accounted by
-- ProcessUtility, failures included
--
SELECT shield.reset() IS NOT NULL AS reset;

CREATE TABLE util_t (id int);
ALTER TABLE util_t ADD COLUMN v text;
CREATE TABLE util_t (id int);
COPY util_t (id) FROM STDIN;
1
2
3
\.
VACUUM util_t;
CREATE PROCEDURE util_proc() LANGUAGE plpgsql AS
$$ BEGIN
     INSERT INTO util_t (id) VALUES (10);
     COMMIT;
     INSERT INTO util_t (id) VALUES (11);
     ROLLBACK;
   END $$;
CALL util_proc();

-- a failed utility statement inside a savepoint counts once
BEGIN;
SAVEPOINT a;
CREATE TABLE util_t (id int);
ROLLBACK TO SAVEPOINT a;
COMMIT;

SELECT query, calls, errors, rows
FROM shield.query_stats
WHERE query LIKE '%util_%' AND query NOT LIKE '%shield.%'
ORDER BY query COLLATE "C";

-- utility statements have no plan cost
SELECT count(*) AS costed_utilities FROM shield.query_stats
WHERE query LIKE '%util_%' AND query NOT LIKE '%shield.%'
  AND mean_cost IS NOT NULL;

-- CALL ran its statements nested: none of them was counted
SELECT count(*) AS nested_statements_counted FROM shield.query_stats
WHERE query LIKE 'INSERT INTO util_t%';

DROP PROCEDURE util_proc();
DROP TABLE util_t;
