--
-- parallel_cap: a policy's max_parallel_workers caps the parallel workers
-- a governed statement plans with; the session's setting is left as it was
--
CREATE ROLE regress_shield_par1 LOGIN;
CREATE ROLE regress_shield_par0 LOGIN;
CREATE TABLE shield_par (id int, v int);
INSERT INTO shield_par SELECT i, i % 7 FROM generate_series(1, 20000) i;
ALTER TABLE shield_par SET (parallel_workers = 4);
ANALYZE shield_par;
GRANT SELECT ON shield_par TO regress_shield_par1, regress_shield_par0;

-- make any scan of it parallel
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 4;

-- a role without a policy plans with every worker the table allows
SET ROLE regress_shield_par1;
EXPLAIN (COSTS OFF) SELECT count(*) FROM shield_par;
RESET ROLE;

SELECT shield.set_role_policy('regress_shield_par1', max_parallel_workers => 1);
SELECT shield.set_role_policy('regress_shield_par0', max_parallel_workers => 0);
SELECT scope, rolname, max_parallel_workers, mode
FROM shield.policies ORDER BY rolname COLLATE "C";

-- capped at 1, and at 0 (no Gather at all)
SET ROLE regress_shield_par1;
EXPLAIN (COSTS OFF) SELECT count(*) FROM shield_par;
SHOW max_parallel_workers_per_gather;
RESET ROLE;
SET ROLE regress_shield_par0;
EXPLAIN (COSTS OFF) SELECT count(*) FROM shield_par;
SHOW max_parallel_workers_per_gather;
-- the statement runs under the cap too, and gives the right answer
SELECT count(*), sum(v) FROM shield_par;
RESET ROLE;

-- a new session plans its first statement under the cap too
SELECT current_user AS regress_su \gset
\c - regress_shield_par1
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 4;
EXPLAIN (COSTS OFF) SELECT count(*) FROM shield_par;
\c - :regress_su
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 4;

-- a superuser is exempt, whatever its policies
SET client_min_messages = warning;  -- its name varies: no notice
SELECT shield.set_role_policy(current_user::regrole, max_parallel_workers => 0);
RESET client_min_messages;
EXPLAIN (COSTS OFF) SELECT count(*) FROM shield_par;
SELECT shield.drop_role_policy(current_user::regrole);

-- the strictest of the matching policies applies: a query policy stricter
-- than the role's wins, a looser one does not
SELECT shield.set_query_policy('SELECT count(*) FROM shield_par',
                               max_parallel_workers => 0) <> 0 AS declared;
SET ROLE regress_shield_par1;
EXPLAIN (COSTS OFF) SELECT count(*) FROM shield_par;
-- another statement of the same role keeps the role's cap
EXPLAIN (COSTS OFF) SELECT sum(v) FROM shield_par;
RESET ROLE;
SELECT shield.set_query_policy('SELECT count(*) FROM shield_par',
                               role => 'regress_shield_par1',
                               max_parallel_workers => 3) <> 0 AS declared;
SELECT limit_name, value, scope, mode
FROM shield.effective_policy('SELECT count(*) FROM shield_par', 'regress_shield_par1')
ORDER BY limit_name COLLATE "C";
SELECT shield.drop_query_policy(shield.fingerprint('SELECT count(*) FROM shield_par'));
SET ROLE regress_shield_par1;
EXPLAIN (COSTS OFF) SELECT count(*) FROM shield_par;
RESET ROLE;
SELECT shield.drop_query_policy(shield.fingerprint('SELECT count(*) FROM shield_par'),
                                'regress_shield_par1');

-- a cap above the session's setting changes nothing
SELECT shield.set_role_policy('regress_shield_par1', max_parallel_workers => 2);
SET max_parallel_workers_per_gather = 1;
SET ROLE regress_shield_par1;
EXPLAIN (COSTS OFF) SELECT count(*) FROM shield_par;
RESET ROLE;
SET max_parallel_workers_per_gather = 4;

-- a monitored policy's cap is shown, not applied; pg_shield.mode monitor
-- applies none
SELECT shield.set_role_policy('regress_shield_par0', max_parallel_workers => 0,
                              mode => 'monitor');
SELECT limit_name, value, scope, mode
FROM shield.effective_policy('SELECT count(*) FROM shield_par', 'regress_shield_par0')
WHERE limit_name = 'max_parallel_workers';
SET ROLE regress_shield_par0;
EXPLAIN (COSTS OFF) SELECT count(*) FROM shield_par;
RESET ROLE;
SET pg_shield.mode = monitor;
SET ROLE regress_shield_par1;
EXPLAIN (COSTS OFF) SELECT count(*) FROM shield_par;
RESET ROLE;
RESET pg_shield.mode;

-- NULL lifts the cap
SELECT shield.set_role_policy('regress_shield_par1', max_parallel_workers => NULL);
SET ROLE regress_shield_par1;
EXPLAIN (COSTS OFF) SELECT count(*) FROM shield_par;
RESET ROLE;

-- bad input is an error, and changes nothing
SELECT shield.set_role_policy('regress_shield_par0', max_parallel_workers => 0);
SELECT shield.set_role_policy('regress_shield_par0', max_parallel_workers => -1);
SELECT shield.set_query_policy('SELECT count(*) FROM shield_par',
                               max_parallel_workers => -1);
SELECT shield.set_query_policy(shield.fingerprint('SELECT count(*) FROM shield_par'),
                               max_parallel_workers => -1);
\set VERBOSITY terse
INSERT INTO shield.policy (role, max_parallel_workers) VALUES ('regress_shield_par1', -1);
\set VERBOSITY default
SELECT scope, rolname, max_parallel_workers, mode
FROM shield.policies ORDER BY rolname COLLATE "C";

-- the setting is put back after a planning error too (constant folding
-- divides by zero while the cap is in place)
SET ROLE regress_shield_par0;
SELECT count(*) FROM shield_par WHERE v = 1 / 0;
SHOW max_parallel_workers_per_gather;
EXPLAIN (COSTS OFF) SELECT count(*) FROM shield_par;
RESET ROLE;
-- and the next statement of another role plans with every worker
SET ROLE regress_shield_par1;
EXPLAIN (COSTS OFF) SELECT count(*) FROM shield_par;
RESET ROLE;

-- a plan cached before the cap keeps its workers: a generic plan is not
-- planned again
SET plan_cache_mode = force_generic_plan;
SET ROLE regress_shield_par1;
PREPARE par_count(int) AS SELECT count(*) FROM shield_par WHERE v <> $1;
EXPLAIN (COSTS OFF) EXECUTE par_count(1);
RESET ROLE;
SELECT shield.set_role_policy('regress_shield_par1', max_parallel_workers => 0);
SET ROLE regress_shield_par1;
EXPLAIN (COSTS OFF) EXECUTE par_count(1);
DEALLOCATE par_count;
-- prepared again, it is planned under the cap
PREPARE par_count(int) AS SELECT count(*) FROM shield_par WHERE v <> $1;
EXPLAIN (COSTS OFF) EXECUTE par_count(1);
DEALLOCATE par_count;
RESET ROLE;
RESET plan_cache_mode;

SELECT shield.drop_role_policy('regress_shield_par1');
SELECT shield.drop_role_policy('regress_shield_par0');
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
DROP TABLE shield_par;
DROP ROLE regress_shield_par1, regress_shield_par0;
