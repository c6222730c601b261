--
-- admission: what one session sees of admission control: cost ceilings,
-- rate limits, monitor and off modes, the slot a session holds, and the
-- settings.  Superusers are exempt, so governed statements run under
-- SET ROLE.  Several sessions are the isolation tests' business.
--
\set VERBOSITY default

-- nothing left over from earlier tests; policy ids in messages start at 101
SELECT count(*) AS policies FROM shield.policy;
SELECT setval(pg_get_serial_sequence('shield.policy', 'id'), 100) AS policy_id_seq;

-- a table with known statistics, so that estimated costs are fixed
CREATE TABLE adm_t (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO adm_t SELECT g, 'v' || g FROM generate_series(1, 1000) g;
ANALYZE adm_t;
GRANT SELECT ON adm_t TO PUBLIC;
EXPLAIN SELECT count(*) FROM adm_t;
EXPLAIN SELECT v FROM adm_t WHERE id = 1;

-- a role's counters, as differences since the previous call
CREATE TABLE adm_snap (rolname name PRIMARY KEY, calls bigint, errors bigint,
                       admitted bigint, rejected bigint, rejected_cost bigint,
                       rejected_rate bigint, would_reject bigint);
CREATE FUNCTION adm_delta(r name)
RETURNS TABLE (calls bigint, errors bigint, admitted bigint, rejected bigint,
               rejected_cost bigint, rejected_rate bigint, would_reject bigint)
LANGUAGE plpgsql AS $$
DECLARE
  cur adm_snap;
  old adm_snap;
BEGIN
  SELECT r, coalesce(sum(s.calls), 0), coalesce(sum(s.errors), 0),
         coalesce(sum(s.admitted), 0), coalesce(sum(s.rejected), 0),
         coalesce(sum(s.rejected_cost), 0), coalesce(sum(s.rejected_rate), 0),
         coalesce(sum(s.would_reject), 0)
    INTO cur
    FROM shield.role_stats s
   WHERE s.rolname = r AND s.datname = current_database();
  SELECT * INTO old FROM adm_snap WHERE adm_snap.rolname = r;
  IF NOT FOUND THEN
    old := ROW(r, 0, 0, 0, 0, 0, 0, 0);
  END IF;
  INSERT INTO adm_snap VALUES (cur.*)
    ON CONFLICT ON CONSTRAINT adm_snap_pkey DO UPDATE
    SET calls = EXCLUDED.calls, errors = EXCLUDED.errors,
        admitted = EXCLUDED.admitted, rejected = EXCLUDED.rejected,
        rejected_cost = EXCLUDED.rejected_cost,
        rejected_rate = EXCLUDED.rejected_rate,
        would_reject = EXCLUDED.would_reject;
  RETURN QUERY SELECT cur.calls - old.calls, cur.errors - old.errors,
                      cur.admitted - old.admitted, cur.rejected - old.rejected,
                      cur.rejected_cost - old.rejected_cost,
                      cur.rejected_rate - old.rejected_rate,
                      cur.would_reject - old.would_reject;
END $$;
-- a function whose own statement is over every ceiling used here
CREATE FUNCTION adm_count() RETURNS bigint LANGUAGE plpgsql
AS $$ BEGIN RETURN (SELECT count(*) FROM adm_t); END $$;
-- the actions recorded since :t (fingerprints masked)
CREATE FUNCTION adm_events(t timestamptz)
RETURNS TABLE (rolname name, action text, enforced boolean, detail text)
LANGUAGE sql AS $$
  SELECT e.rolname, e.action, e.enforced,
         regexp_replace(e.detail, '-?[0-9]{6,}', '<fingerprint>')
  FROM shield.events e
  WHERE e.pid = pg_backend_pid() AND e.at >= t
    AND e.action IN ('cost_limit', 'rate_limit')
  ORDER BY e.at, e.action
$$;
SELECT clock_timestamp() AS t \gset
SELECT shield.fingerprint('SELECT count(*) FROM adm_t') AS count_fp \gset
SELECT shield.fingerprint('SELECT v FROM adm_t WHERE id = 1') AS point_fp \gset

--
-- cost ceiling (54001)
--
SELECT shield.set_role_policy('regress_shield_alice', max_cost => 10);
SET ROLE regress_shield_alice;
-- over the ceiling: rejected before execution
SELECT count(*) FROM adm_t;
\echo :LAST_ERROR_SQLSTATE
-- under it: runs
SELECT v FROM adm_t WHERE id = 1;
-- a nested statement is not admitted on its own: only the plan of the
-- statement the client sent is checked
SELECT adm_count() AS nested_count;
DO $$ BEGIN PERFORM count(*) FROM adm_t; END $$;
-- plain EXPLAIN is never rejected; EXPLAIN ANALYZE executes, so it is
EXPLAIN SELECT count(*) FROM adm_t;
-- (EXPLAIN ANALYZE's output differs between versions: only what is
-- accounted matters here, so its output is discarded)
\o /dev/null
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM adm_t;
\o
\o /dev/null
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT v FROM adm_t WHERE id = 1;
\o
-- a cursor's query
BEGIN;
DECLARE adm_c CURSOR FOR SELECT count(*) FROM adm_t;
ROLLBACK;
-- COPY's query
COPY (SELECT count(*) FROM adm_t) TO STDOUT;
COPY (SELECT v FROM adm_t WHERE id = 1) TO STDOUT;
RESET ROLE;

-- DML: rejected before it changes anything
GRANT UPDATE ON adm_t TO regress_shield_alice;
SET ROLE regress_shield_alice;
UPDATE adm_t SET v = 'changed' WHERE v <> '';
UPDATE adm_t SET v = 'changed' WHERE id = 0 RETURNING id;
RESET ROLE;
REVOKE UPDATE ON adm_t FROM regress_shield_alice;
SELECT count(*) AS changed FROM adm_t WHERE v = 'changed';

-- CREATE TABLE AS: rejected before the table is created
GRANT CREATE ON SCHEMA public TO regress_shield_alice;
SET ROLE regress_shield_alice;
CREATE TABLE adm_ctas AS SELECT count(*) FROM adm_t;
RESET ROLE;
SELECT to_regclass('adm_ctas') AS not_created;
SET ROLE regress_shield_alice;
CREATE TABLE adm_ctas AS SELECT v FROM adm_t WHERE id = 2;
DROP TABLE adm_ctas;
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM regress_shield_alice;

-- a prepared statement's cached generic plan is checked at each execution
SELECT shield.set_role_policy('regress_shield_alice', max_cost => 100);
SET ROLE regress_shield_alice;
SET plan_cache_mode = force_generic_plan;
PREPARE adm_p(int) AS SELECT count(*) FROM adm_t WHERE id > $1;
EXECUTE adm_p(0);
RESET ROLE;
SELECT shield.set_role_policy('regress_shield_alice', max_cost => 10);
SET ROLE regress_shield_alice;
EXECUTE adm_p(0);
-- (plain EXPLAIN of it is not rejected either)
EXPLAIN EXECUTE adm_p(0);
RESET ROLE;
SELECT generic_plans AS generic_plans_used FROM pg_prepared_statements
WHERE name = 'adm_p';
SET ROLE regress_shield_alice;
DEALLOCATE adm_p;
RESET plan_cache_mode;
RESET ROLE;

-- a rejected statement is neither a call nor an error of the role: the
-- same session with and without two rejections (its one call is RESET
-- ROLE), and with a failing statement
SELECT * FROM adm_delta('regress_shield_alice') \gset ignore_
SET ROLE regress_shield_alice;
RESET ROLE;
SELECT * FROM adm_delta('regress_shield_alice');
SET ROLE regress_shield_alice;
SELECT count(*) FROM adm_t;
SELECT count(*) FROM adm_t;
RESET ROLE;
SELECT * FROM adm_delta('regress_shield_alice');
SET ROLE regress_shield_alice;
SELECT 1 / 0 AS fails;
RESET ROLE;
SELECT * FROM adm_delta('regress_shield_alice');
-- the fingerprint's counters (plain SELECT, EXPLAIN ANALYZE, the cursor's
-- query and COPY's share it)
SELECT calls, errors, rejected FROM shield.query_stats
WHERE rolname = 'regress_shield_alice' AND queryid = :'count_fp';

-- the strictest max_cost of the matching policies applies: here the
-- query policy's (the detail names the fingerprint: terse; see the events
-- below)
SELECT shield.set_query_policy('SELECT v FROM adm_t WHERE id = 1',
                               max_cost => 5) = :'point_fp' AS declared;
SET ROLE regress_shield_alice;
\set VERBOSITY terse
SELECT v FROM adm_t WHERE id = 1;
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- and here the role policy's, although the query policies allow more
SELECT shield.set_query_policy('SELECT v FROM adm_t WHERE id = 1',
                               max_cost => 1000) = :'point_fp' AS declared;
SELECT shield.set_query_policy('SELECT count(*) FROM adm_t',
                               max_cost => 1000) = :'count_fp' AS declared;
SET ROLE regress_shield_alice;
SELECT count(*) FROM adm_t;
SELECT v FROM adm_t WHERE id = 1;
RESET ROLE;
SELECT shield.drop_query_policy(:'point_fp') AS dropped,
       shield.drop_query_policy(:'count_fp') AS dropped;

-- superusers are exempt while pg_shield.exempt_superuser is on: their
-- statements are counted as calls, not admitted
CREATE ROLE regress_shield_admin SUPERUSER;
SELECT shield.set_role_policy('regress_shield_admin', max_cost => 10);
SELECT * FROM adm_delta('regress_shield_admin') \gset ignore_
SET ROLE regress_shield_admin;
SELECT count(*) AS exempt FROM adm_t;
RESET ROLE;
SELECT * FROM adm_delta('regress_shield_admin');
SET ROLE regress_shield_admin;
SET pg_shield.exempt_superuser = off;
SELECT count(*) AS governed FROM adm_t;
SELECT v AS cheap FROM adm_t WHERE id = 3;
RESET pg_shield.exempt_superuser;
SELECT count(*) AS exempt_again FROM adm_t;
RESET ROLE;
SELECT * FROM adm_delta('regress_shield_admin');
-- the exemption follows the role's attribute from its next statement on
ALTER ROLE regress_shield_admin NOSUPERUSER;
SET ROLE regress_shield_admin;
SELECT count(*) AS no_longer_exempt FROM adm_t;
RESET ROLE;
ALTER ROLE regress_shield_admin SUPERUSER;
SET ROLE regress_shield_admin;
SELECT count(*) AS exempt_once_more FROM adm_t;
RESET ROLE;

-- what was rejected, in shield.events
SELECT * FROM adm_events(:'t');
SELECT clock_timestamp() AS t \gset

--
-- rate limits (53S04): a token bucket per scope, burst = max(1, rate)
--
-- rate 2: a burst of two, the third statement right after is refused
-- (its hint depends on the time elapsed: terse)
SELECT shield.set_role_policy('regress_shield_bob', max_rate => 2);
SELECT * FROM adm_delta('regress_shield_bob') \gset ignore_
SET ROLE regress_shield_bob;
SELECT 1 AS first;
SELECT 2 AS second;
\set VERBOSITY terse
SELECT 3 AS third;
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM adm_delta('regress_shield_bob');
SELECT shield.drop_role_policy('regress_shield_bob') AS dropped;

-- a rate below 1: a burst of one.  The hint is the time until the next
-- token, capped at INT_MAX ms, which a rate this small always reaches.
-- A statement run under a held slot (the open cursor's) still needs one.
SELECT shield.set_role_policy('regress_shield_alice', max_rate => 1e-7);
SELECT * FROM adm_delta('regress_shield_alice') \gset ignore_
SET ROLE regress_shield_alice;
BEGIN;
DECLARE adm_c CURSOR FOR SELECT v FROM adm_t WHERE id = 1;
SELECT v AS under_the_slot FROM adm_t WHERE id = 4;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT v AS later FROM adm_t WHERE id = 4;
RESET ROLE;
SELECT * FROM adm_delta('regress_shield_alice');
SELECT calls, errors, rejected FROM shield.query_stats
WHERE rolname = 'regress_shield_alice' AND queryid = :'point_fp';
SELECT * FROM adm_events(:'t');
SELECT clock_timestamp() AS t \gset

--
-- monitor mode: limits are computed and counted, nothing is rejected
--
-- per policy
SELECT shield.set_role_policy('regress_shield_alice', max_cost => 10,
                              max_rate => 1e-7, mode => 'monitor');
SET ROLE regress_shield_alice;
SELECT count(*) AS over_cost_and_rate FROM adm_t;
SELECT v AS over_rate FROM adm_t WHERE id = 5;
RESET ROLE;
SELECT * FROM adm_delta('regress_shield_alice');
-- for the whole instance: pg_shield.mode overrides enforcing policies
SELECT shield.set_role_policy('regress_shield_alice', max_cost => 10,
                              max_rate => 1e-7);
SET pg_shield.mode = monitor;
SET ROLE regress_shield_alice;
SELECT count(*) AS over_cost_and_rate FROM adm_t;
RESET ROLE;
RESET pg_shield.mode;
SELECT * FROM adm_delta('regress_shield_alice');
SELECT * FROM adm_events(:'t');
-- enforcing again: rejected
SET ROLE regress_shield_alice;
SELECT count(*) FROM adm_t;
RESET ROLE;
SELECT * FROM adm_delta('regress_shield_alice');

--
-- off: nothing is checked (nor counted)
--
SELECT events AS events_before FROM shield.status \gset
SET pg_shield.mode = off;
SET ROLE regress_shield_alice;
SELECT count(*) AS unchecked FROM adm_t;
SELECT v AS unchecked FROM adm_t WHERE id = 6;
RESET ROLE;
RESET pg_shield.mode;
SELECT * FROM adm_delta('regress_shield_alice');
SELECT events - :events_before AS events_recorded FROM shield.status;

--
-- concurrency within one session: a backend holds at most one slot, and
-- what it runs while holding one (an open cursor) runs under it, never
-- waiting for itself, even with max_concurrent 1 and queue_timeout 0
--
SELECT shield.set_role_policy('regress_shield_alice', max_concurrent => 1,
                              queue_timeout => '0', max_cost => 100,
                              priority => 'low');
SET ROLE regress_shield_alice;
BEGIN;
DECLARE adm_cur CURSOR FOR SELECT id FROM adm_t WHERE id <= 10 ORDER BY id;
FETCH 2 FROM adm_cur;
SELECT v AS under_the_slot FROM adm_t WHERE id = 7;
SELECT rolname, state, priority, datname = current_database() AS this_db,
       pid = pg_backend_pid() AS this_backend
FROM shield.activity;
SELECT active, peak_active FROM shield.role_stats
WHERE rolname = 'regress_shield_alice' AND datname = current_database();
-- the cost ceiling still applies; the rejection keeps the cursor's slot
SAVEPOINT s;
SELECT count(*) FROM adm_t a CROSS JOIN adm_t b;
ROLLBACK TO SAVEPOINT s;
FETCH 2 FROM adm_cur;
SELECT rolname, state FROM shield.activity;
COMMIT;
RESET ROLE;
-- the slot is given back at commit
SELECT count(*) AS after_commit FROM shield.activity;
SELECT active, peak_active FROM shield.role_stats
WHERE rolname = 'regress_shield_alice' AND datname = current_database();
SET ROLE regress_shield_alice;
SELECT v AS slot_free FROM adm_t WHERE id = 8;
RESET ROLE;

--
-- rejected statements have no latency: they do not move the percentiles
-- (one completed call of at least 50 ms, then rejections by a rate limit
-- whose bucket is empty after it)
--
CREATE ROLE regress_shield_carol;
SELECT shield.set_role_policy('regress_shield_carol', max_rate => 1e-7);
SET ROLE regress_shield_carol;
SELECT pg_sleep(0.05) AS slept;
\set VERBOSITY terse
SELECT pg_sleep(0.05) AS slept;
SELECT pg_sleep(0.05) AS slept;
SELECT pg_sleep(0.05) AS slept;
\set VERBOSITY default
RESET ROLE;
SELECT calls, rejected, p50_exec_ms >= 40 AS p50_is_the_completed_call,
       p99_exec_ms >= 40 AS p99_is_the_completed_call
FROM shield.query_stats
WHERE rolname = 'regress_shield_carol' AND query = 'SELECT pg_sleep(0.05) AS slept';
SELECT shield.drop_role_policy('regress_shield_carol') AS dropped;
DROP ROLE regress_shield_carol;

--
-- settings
--
-- (the message's format of the range differs between versions)
\set VERBOSITY sqlstate
SET pg_shield.queue_timeout = -1;
\set VERBOSITY default
SET pg_shield.queue_timeout = '250ms';
SHOW pg_shield.queue_timeout;
RESET pg_shield.queue_timeout;
-- a role cannot raise its own limits or switch them off
SET ROLE regress_shield_alice;
SET pg_shield.queue_timeout = 5000;
\echo :LAST_ERROR_SQLSTATE
SET pg_shield.mode = off;
\echo :LAST_ERROR_SQLSTATE
SET pg_shield.exempt_superuser = off;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT name, setting FROM pg_settings
WHERE name IN ('pg_shield.exempt_superuser', 'pg_shield.mode',
               'pg_shield.queue_timeout')
ORDER BY name COLLATE "C";

-- clean up
SELECT shield.drop_role_policy('regress_shield_alice') AS dropped,
       shield.drop_role_policy('regress_shield_admin') AS dropped;
SELECT count(*) AS policies_left FROM shield.policy;
DROP ROLE regress_shield_admin;
DROP FUNCTION adm_count(), adm_delta(name), adm_events(timestamptz);
DROP TABLE adm_snap, adm_t;
