--
-- accounting: per-fingerprint and per-role statistics of a known workload
--
SELECT shield.reset() IS NOT NULL AS reset;

-- ten executions of one statement shape with different constants, and
-- failures at execution and at planning time
SET ROLE regress_shield_alice;
SELECT v FROM shield_t WHERE id = 1;
SELECT v FROM shield_t WHERE id = 2;
SELECT v FROM shield_t WHERE id = 3;
SELECT v FROM shield_t WHERE id = 4;
SELECT v FROM shield_t WHERE id = 5;
SELECT v FROM shield_t WHERE id = 6;
SELECT v FROM shield_t WHERE id = 7;
SELECT v FROM shield_t WHERE id = 8;
SELECT v FROM shield_t WHERE id = 9;
SELECT v FROM shield_t WHERE id = 10;
SELECT v::int FROM shield_t WHERE id = 11;
SELECT 1 / 0 AS planning_fails;
-- a parse error never reaches pg_shield
SELECT v FROM no_such_table;
RESET ROLE;

-- one fingerprint with calls 10; each failure counted once, with its text
SELECT query, calls, errors, rows
FROM shield.query_stats
WHERE rolname = 'regress_shield_alice' AND datname = current_database()
ORDER BY query COLLATE "C";

-- derived columns are consistent
SELECT queryid <> 0 AS has_fingerprint,
       total_exec_ms >= 0 AS total_ok,
       abs(mean_exec_ms - total_exec_ms / calls) < 1e-9
         AND mean_exec_ms <= max_exec_ms AS mean_ok,
       min_exec_ms <= p50_exec_ms AND p50_exec_ms <= p95_exec_ms
         AND p95_exec_ms <= p99_exec_ms AND p99_exec_ms <= max_exec_ms
         AS percentiles_ordered,
       mean_cost > 0 AND max_cost >= mean_cost AS cost_ok,
       plans >= 1 AND total_plan_ms >= 0 AS planned,
       last_exec IS NOT NULL AND last_exec <= now() AS last_exec_ok,
       breaker_state,
       admitted > 0 AS admitted,
       queued + rejected + shed + deadline_cancels
         + would_reject + would_cancel AS enforcement_counters
FROM shield.query_stats
WHERE rolname = 'regress_shield_alice' AND query LIKE 'SELECT v FROM%';

-- a statement that never completed has no timing
SELECT calls, errors, mean_exec_ms IS NULL AS no_mean,
       p99_exec_ms IS NULL AS no_p99, last_exec IS NOT NULL AS has_last_exec
FROM shield.query_stats
WHERE rolname = 'regress_shield_alice' AND query LIKE 'SELECT 1 / 0%';

-- the role: 10 completed + RESET ROLE, 2 errors; it agrees with its
-- fingerprints
SELECT r.calls, r.errors, r.rows,
       r.calls = (SELECT sum(calls) FROM shield.query_stats q
                  WHERE q.userid = r.userid AND q.dbid = r.dbid) AS calls_match,
       r.errors = (SELECT sum(errors) FROM shield.query_stats q
                   WHERE q.userid = r.userid AND q.dbid = r.dbid) AS errors_match,
       r.max_exec_ms >= r.mean_exec_ms AS max_ok,
       r.active, r.waiting, r.peak_active,
       r.admitted > 0 AS admitted,
       r.queued + r.rejected + r.shed + r.deadline_cancels
         + r.would_reject + r.would_queue + r.would_cancel AS enforcement_counters
FROM shield.role_stats r
WHERE r.rolname = 'regress_shield_alice' AND r.datname = current_database();

-- rows of a multi-row statement, and of a data-modifying one
SET ROLE regress_shield_bob;
SELECT count(*) FROM (SELECT v FROM shield_t WHERE id <= 30) s;
RESET ROLE;
CREATE TABLE acct_w (id int);
INSERT INTO acct_w SELECT generate_series(1, 25);
UPDATE acct_w SET id = id + 1 WHERE id <= 5;
SELECT query, calls, rows
FROM shield.query_stats
WHERE query LIKE 'INSERT INTO acct_w%' OR query LIKE 'UPDATE acct_w%'
   OR query LIKE 'SELECT count(*) FROM (SELECT v%'
ORDER BY query COLLATE "C";
DROP TABLE acct_w;

-- execution time buckets: fixed bounds in ms, the calls at or below each
-- bound (cumulated), the last one infinite and equal to calls.  Three
-- sleeps of 12 ms, far from the bounds around them (10 ms and 1 min).
SET ROLE regress_shield_alice;
SELECT pg_sleep(0.012);
SELECT pg_sleep(0.012);
SELECT pg_sleep(0.012);
RESET ROLE;
SELECT exec_bucket_le_ms,
       exec_bucket_calls[array_position(exec_bucket_le_ms, 10)] AS le_10,
       exec_bucket_calls[array_position(exec_bucket_le_ms, 60000)] AS le_60000,
       exec_bucket_calls[cardinality(exec_bucket_calls)] AS le_inf, calls
FROM shield.query_stats
WHERE rolname = 'regress_shield_alice' AND query LIKE 'SELECT pg_sleep%';

-- every row's counts never decrease and end at calls; a role's are the sum
-- of its fingerprints'
SELECT bool_and(cardinality(exec_bucket_calls) = cardinality(exec_bucket_le_ms)
                AND exec_bucket_calls[cardinality(exec_bucket_calls)] = calls
                AND NOT EXISTS (SELECT FROM generate_subscripts(exec_bucket_calls, 1) i
                                WHERE i > 1
                                  AND exec_bucket_calls[i] < exec_bucket_calls[i - 1]))
         AS cumulated
FROM shield.query_stats;
SELECT r.exec_bucket_calls =
         (SELECT array_agg(n ORDER BY i)
          FROM (SELECT i, sum(q.exec_bucket_calls[i])::bigint AS n
                FROM shield.query_stats q,
                     generate_subscripts(q.exec_bucket_calls, 1) i
                WHERE q.userid = r.userid AND q.dbid = r.dbid
                GROUP BY i) s) AS role_sums_fingerprints,
       r.exec_bucket_calls[array_position(r.exec_bucket_le_ms, 10)]
         <= r.calls - 3 AS role_le_10,
       r.exec_bucket_le_ms = (SELECT exec_bucket_le_ms FROM shield.query_stats
                              LIMIT 1) AS same_bounds
FROM shield.role_stats r
WHERE r.rolname = 'regress_shield_alice' AND r.datname = current_database();

-- reset forgets everything and moves stats_reset forward
SELECT stats_reset AS before_reset FROM shield.status \gset
SELECT shield.reset() > :'before_reset'::timestamptz AS reset_moved;
SELECT count(*) AS alice_rows FROM shield.query_stats
WHERE rolname = 'regress_shield_alice';
SELECT fingerprints < 10 AS nearly_empty, evictions, stats_reset > :'before_reset'::timestamptz AS moved
FROM shield.status;
