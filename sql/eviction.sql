--
-- eviction: full tables evict in batches, count it, and never fail a
-- statement (the test configuration sets max_fingerprints = 200 and
-- max_roles = 10)
--
SELECT shield.reset() IS NOT NULL AS reset;

-- 300 distinct statement shapes, each run at top level
\set ECHO none
\o /dev/null
SELECT format('SELECT %s', (SELECT string_agg('1', ' + ')
                            FROM generate_series(1, g)))
FROM generate_series(1, 300) g \gexec
\o
\set ECHO all

SELECT fingerprints <= max_fingerprints AS bounded,
       evictions >= 100 AS evicted,
       fingerprints > 0 AS tracking
FROM shield.status;

-- a role's totals keep its evicted fingerprints' statements: the reset,
-- the query that built the 300 statements, the 300, and the status query
SELECT calls, errors,
       exec_bucket_calls[cardinality(exec_bucket_calls)] AS buckets_keep_them
FROM shield.role_stats
WHERE rolname = current_user AND datname = current_database();
SELECT sum(calls) < 300 AS fewer_in_live_fingerprints FROM shield.query_stats
WHERE rolname = current_user AND datname = current_database();

-- the most used fingerprint survives eviction
\set ECHO none
\o /dev/null
SELECT v FROM shield_t WHERE id = 1;
SELECT v FROM shield_t WHERE id = 2;
SELECT v FROM shield_t WHERE id = 3;
SELECT v FROM shield_t WHERE id = 4;
SELECT v FROM shield_t WHERE id = 5;
SELECT format('SELECT %s', (SELECT string_agg('2', ' - ')
                            FROM generate_series(1, g)))
FROM generate_series(1, 300) g \gexec
\o
\set ECHO all
SELECT calls >= 5 AS hot_statement_kept FROM shield.query_stats
WHERE query = 'SELECT v FROM shield_t WHERE id = 1';

-- more (database, role) pairs than max_roles
DO $$
BEGIN
  FOR i IN 1..15 LOOP
    EXECUTE format('CREATE ROLE regress_shield_many_%s', i);
  END LOOP;
END $$;
\set ECHO none
\o /dev/null
SELECT format('SET ROLE regress_shield_many_%s', g), 'SELECT 1 AS one',
       'RESET ROLE'
FROM generate_series(1, 15) g \gexec
\o
\set ECHO all
SELECT roles <= max_roles AS bounded, role_evictions > 0 AS evicted
FROM shield.status;
DO $$
BEGIN
  FOR i IN 1..15 LOOP
    EXECUTE format('DROP ROLE regress_shield_many_%s', i);
  END LOOP;
END $$;
