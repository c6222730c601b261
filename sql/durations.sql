--
-- durations: every duration of a policy (queue_timeout, deadline,
-- breaker_cooldown) is at most 2147483647 ms, about 24.8 days, the bound
-- of PostgreSQL's own timeouts; the functions and the table check it
-- (22023), and a value beyond it changes nothing.  Durations are kept to
-- the microsecond.
--
\set VERBOSITY terse
CREATE ROLE regress_shield_dur LOGIN;

-- at the bound
SELECT shield.set_role_policy('regress_shield_dur',
                              queue_timeout => '2147483647 ms',
                              deadline => '24 days 20:31:23.647');
SELECT shield.set_query_policy('SELECT 1', breaker_failures => 1,
                               breaker_cooldown => '2147483.647 s') <> 0 AS declared;
SELECT scope, queue_timeout, deadline, breaker_cooldown
FROM shield.policies ORDER BY id;

-- beyond it: 22023, and nothing changes
\set VERBOSITY default
SELECT shield.set_role_policy('regress_shield_dur', queue_timeout => '2147483648 ms');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT shield.set_role_policy('regress_shield_dur', deadline => '24 days 20:31:23.648');
SELECT shield.set_role_policy('regress_shield_dur', queue_timeout => '31 days');
SELECT shield.set_role_policy('regress_shield_dur', queue_timeout => '200000000 days');
\echo :LAST_ERROR_SQLSTATE
SELECT shield.set_role_policy('regress_shield_dur', deadline => '2147483647 days 23:59:59');
SELECT shield.set_query_policy('SELECT 1', breaker_failures => 1,
                               breaker_cooldown => '25 days');
\echo :LAST_ERROR_SQLSTATE
-- 'infinity' is not a limit (an interval only from PostgreSQL 17 on)
DO $$
BEGIN
    PERFORM shield.set_role_policy('regress_shield_dur', deadline => 'infinity');
EXCEPTION WHEN invalid_parameter_value OR invalid_datetime_format THEN
    RAISE NOTICE 'infinity is rejected';
END $$;
SELECT scope, queue_timeout, deadline, breaker_cooldown
FROM shield.policies ORDER BY id;
-- the table checks the same bound, even for its owner
INSERT INTO shield.policy (role, deadline) VALUES ('regress_shield_dur', '25 days');
INSERT INTO shield.policy (role, queue_timeout) VALUES ('regress_shield_dur', '2147483648 ms');
INSERT INTO shield.policy (queryid, breaker_cooldown) VALUES (1, '30 days');

-- sub-millisecond limits stay exact
SELECT shield.set_role_policy('regress_shield_dur', deadline => '500 microseconds',
                              queue_timeout => '250 us');
SELECT limit_name, value
FROM shield.effective_policy('SELECT 1', 'regress_shield_dur')
WHERE limit_name IN ('deadline', 'queue_timeout') ORDER BY 1;
-- and a half-millisecond deadline cancels, rather than becoming 0 or none
SET ROLE regress_shield_dur;
SELECT pg_sleep(10);
RESET ROLE;

DELETE FROM shield.policy;
DROP ROLE regress_shield_dur;
\set VERBOSITY default
