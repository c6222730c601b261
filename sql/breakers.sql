--
-- breakers: a fingerprint's circuit breaker opens after breaker_failures
-- consecutive failures and then rejects the fingerprint at once (53S05);
-- a success resets the count; errors that are the application's do not
-- count; reset_breaker() closes it by hand; other fingerprints are not
-- affected; in monitor mode it moves, and rejects nothing.
-- (The half-open probe: isolation test breaker_probe; the instance
-- defaults and the retry hint: TAP test 015.)
--
-- statement_timeout is what fails the statements here: 20 ms against a
-- sleep of 10 s, so the outcome never depends on timing.
\set VERBOSITY terse
CREATE ROLE regress_shield_brk LOGIN;
GRANT SELECT ON shield_t TO regress_shield_brk;
SELECT shield.set_query_policy('SELECT pg_sleep(10)', breaker_failures => 2,
                               breaker_cooldown => '1 hour') AS brk_fp \gset
SELECT shield.fingerprint('SELECT pg_sleep(0)') = :brk_fp AS same_shape;

SET ROLE regress_shield_brk;
SET statement_timeout = '20ms';
SELECT pg_sleep(10);
SELECT pg_sleep(10);
RESET statement_timeout;
-- open: rejected at once, before it runs
SELECT pg_sleep(0);
\echo :LAST_ERROR_SQLSTATE
-- other fingerprints are not affected
SELECT count(*) AS other FROM shield_t;
RESET ROLE;
SELECT state, failures, breaker_failures, cooldown_ms, probe_pid, trips,
       probe_at - opened_at = interval '1 hour' AS probe_after_cooldown
FROM shield.breakers WHERE queryid = :brk_fp;
SELECT breaker_state, calls, errors, rejected FROM shield.query_stats
WHERE queryid = :brk_fp AND rolname = 'regress_shield_brk';
SELECT rejected_breaker FROM shield.role_stats WHERE rolname = 'regress_shield_brk';
SELECT action, enforced,
       regexp_replace(detail, '-?[0-9]{6,}|[0-9]+ ms|policy [0-9]+', '<n>', 'g') AS detail
FROM shield.events WHERE queryid = :brk_fp AND action LIKE 'breaker%' ORDER BY at;

-- reset_breaker() closes it by hand, once
SELECT shield.reset_breaker(:brk_fp) AS reset, shield.reset_breaker(:brk_fp) AS again;
SELECT count(*) AS breakers FROM shield.breakers WHERE queryid = :brk_fp;
SET ROLE regress_shield_brk;
SELECT pg_sleep(0);
-- a success resets the count: failure, success, failure stays closed
SET statement_timeout = '20ms';
SELECT pg_sleep(10);
RESET statement_timeout;
SELECT pg_sleep(0);
SET statement_timeout = '20ms';
SELECT pg_sleep(10);
RESET statement_timeout;
SELECT pg_sleep(0);
RESET ROLE;
SELECT state, failures FROM shield.breakers WHERE queryid = :brk_fp;

-- the application's own errors (here division by zero, class 22) are not
-- failures of the server: they never open a breaker
SELECT shield.set_query_policy('SELECT 1 / (id - 1) FROM shield_t WHERE id = 1',
                               breaker_failures => 1) AS div_fp \gset
SET ROLE regress_shield_brk;
SELECT 1 / (id - 1) FROM shield_t WHERE id = 1;
SELECT 1 / (id - 1) FROM shield_t WHERE id = 1;
RESET ROLE;
SELECT count(*) AS breakers FROM shield.breakers WHERE queryid = :div_fp;

-- pg_shield's deadline is a failure too
SELECT shield.set_query_policy('SELECT pg_sleep(10)', breaker_failures => 1,
                               breaker_cooldown => '1 hour',
                               deadline => '20 ms') = :brk_fp AS declared;
SET ROLE regress_shield_brk;
SELECT pg_sleep(10);
SELECT pg_sleep(0);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT state, trips FROM shield.breakers WHERE queryid = :brk_fp;
SELECT shield.reset_breaker(:brk_fp) AS reset;

-- monitor mode: the breaker opens, and only says what it would reject
SELECT shield.set_query_policy('SELECT pg_sleep(10)', breaker_failures => 1,
                               breaker_cooldown => '1 hour',
                               mode => 'monitor') = :brk_fp AS declared;
SET ROLE regress_shield_brk;
SET statement_timeout = '20ms';
SELECT pg_sleep(10);
RESET statement_timeout;
SELECT pg_sleep(0);
RESET ROLE;
SELECT state FROM shield.breakers WHERE queryid = :brk_fp;
SELECT action, enforced FROM shield.events
WHERE queryid = :brk_fp AND action LIKE 'breaker%' AND NOT enforced ORDER BY at;
SELECT would_reject FROM shield.role_stats WHERE rolname = 'regress_shield_brk';

-- by hand only for the caller's database, and only with EXECUTE
SET ROLE regress_shield_brk;
SELECT shield.reset_breaker(:brk_fp);
RESET ROLE;
SELECT shield.reset_breaker(NULL);
SELECT shield.reset_breaker(:brk_fp) AS reset;

DELETE FROM shield.policy;
REVOKE ALL ON shield_t FROM regress_shield_brk;
DROP ROLE regress_shield_brk;
\set VERBOSITY default
