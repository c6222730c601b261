--
-- deadlines: a policy's deadline cancels a running statement,
-- whatever runs it; statement_timeout keeps its own message;
-- nothing is cancelled after the statement ends
--
-- Deadlines here are short and the statements sleep far longer, so the
-- outcome never depends on timing; the DETAIL, which gives the elapsed
-- time, is left out (VERBOSITY terse), and its form is checked by pattern.
SELECT count(*) AS policies FROM shield.policy;
\set VERBOSITY terse
CREATE ROLE regress_shield_late LOGIN;
GRANT SELECT ON shield_t TO regress_shield_late;
SELECT shield.set_role_policy('regress_shield_late', deadline => '150 ms');

-- the deadline cancels a running statement with 57014 and says so
SET ROLE regress_shield_late;
SELECT pg_sleep(10);
\echo :LAST_ERROR_SQLSTATE
SELECT :'LAST_ERROR_MESSAGE' AS message;
DO $$
BEGIN
    PERFORM pg_sleep(10);
EXCEPTION WHEN query_canceled THEN
    RAISE EXCEPTION 'never: caught inside';
END $$;
-- the next statement runs undisturbed
SELECT count(*) AS rows FROM shield_t;
RESET ROLE;
SELECT action, enforced,
       detail ~ '^Role "regress_shield_late" \(policy \d+\) sets a deadline of 150 ms; the statement was canceled \d+ ms after it arrived\.$' AS detail_ok
FROM shield.events WHERE rolname = 'regress_shield_late' ORDER BY at;
SELECT calls, errors, deadline_cancels, would_cancel
FROM shield.role_stats WHERE rolname = 'regress_shield_late';

-- a PL/pgSQL exception block cannot swallow it: the cancel comes back
CREATE FUNCTION shield_swallow() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM pg_sleep(10);
    EXCEPTION WHEN query_canceled THEN
        PERFORM pg_sleep(10);
        RETURN 'swallowed';
    END;
    RETURN 'finished';
END $$;
CREATE FUNCTION shield_others() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(10);
    RETURN 'finished';
EXCEPTION WHEN OTHERS THEN
    RETURN 'caught by WHEN OTHERS';
END $$;
SET ROLE regress_shield_late;
SELECT shield_swallow();
SELECT shield_others();
SELECT 1 AS after;
RESET ROLE;

-- statement_timeout and lock_timeout keep running: the earlier fires, with
-- its own message
SET ROLE regress_shield_late;
SET statement_timeout = '20ms';
SELECT pg_sleep(10);
SET statement_timeout = '5s';
SELECT pg_sleep(10);
RESET statement_timeout;
RESET ROLE;

-- a procedure's COMMIT does not end the deadline of its CALL
CREATE PROCEDURE shield_commits() LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE shield_commits_t (x int);
    COMMIT;
    PERFORM pg_sleep(10);
END $$;
SET ROLE regress_shield_late;
CALL shield_commits();
RESET ROLE;

-- statements sent in one message arrive together and have the same
-- deadline, yet each has its own: a cursor the statement closes takes only
-- its own deadline with it
CREATE FUNCTION shield_close_then_sleep() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    c refcursor := 'shield_closed';
BEGIN
    CLOSE c;
    PERFORM pg_sleep(10);
    RETURN 'outlived its deadline';
END $$;
SET ROLE regress_shield_late;
BEGIN;
DECLARE shield_closed CURSOR FOR SELECT 1 \; SELECT shield_close_then_sleep();
ROLLBACK;
RESET ROLE;

-- a FETCH from a cursor that a function opened is a statement of the
-- cursor's query, with that query's deadline
SELECT shield.set_query_policy('SELECT pg_sleep(10) AS shield_rc',
                               deadline => '100 ms') <> 0 AS declared;
CREATE FUNCTION shield_open_rc() RETURNS refcursor LANGUAGE plpgsql AS $$
DECLARE
    c refcursor := 'shield_rc';
BEGIN
    OPEN c FOR SELECT pg_sleep(10) AS shield_rc;
    RETURN c;
END $$;
SET ROLE regress_shield_late;
BEGIN;
SELECT shield_open_rc();
FETCH ALL FROM shield_rc;
ROLLBACK;
RESET ROLE;
SELECT shield.drop_query_policy(shield.fingerprint('SELECT pg_sleep(10) AS shield_rc')) AS dropped;

-- a cursor's deadline runs from its DECLARE: a fetch after it fails at
-- once, and the deadline passing between statements cancels nothing else
SELECT shield.drop_role_policy('regress_shield_late');
SELECT shield.set_query_policy('SELECT id FROM shield_t ORDER BY id',
                               deadline => '100 ms') <> 0 AS declared;
SET ROLE regress_shield_late;
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM shield_t ORDER BY id;
FETCH 2 FROM c;
SELECT true AS slept_past_the_cursors_deadline FROM pg_sleep(0.3);
FETCH 2 FROM c;
ROLLBACK;
SELECT 1 AS after_rollback;
RESET ROLE;

-- a statement that fails takes its deadline with it: once a savepoint is
-- rolled back over it, its deadline cancels nothing that follows (core
-- disables every timeout after an error; pg_shield also releases the
-- deadline when the subtransaction's abort finishes the statement)
SELECT shield.drop_query_policy(shield.fingerprint('SELECT id FROM shield_t ORDER BY id')) AS dropped;
SELECT shield.set_query_policy('SELECT 1 / (id - 1) FROM shield_t WHERE id = 1',
                               deadline => '100 ms') <> 0 AS declared;
SET ROLE regress_shield_late;
BEGIN;
SAVEPOINT s;
SELECT 1 / (id - 1) FROM shield_t WHERE id = 1;
ROLLBACK TO SAVEPOINT s;
SELECT true AS outlived_the_failed_statements_deadline FROM pg_sleep(0.3);
COMMIT;
RESET ROLE;

-- monitor mode: nothing is canceled, would_cancel counts it
SELECT shield.set_role_policy('regress_shield_late', deadline => '10 ms',
                              mode => 'monitor');
SET ROLE regress_shield_late;
SELECT true AS ran FROM pg_sleep(0.05);
-- and a statement that fails after its deadline passed counts too: its end
-- is seen by the abort of its transaction, which describes the policy
-- without reading the catalog
SELECT 1 / (id - 1) FROM shield_t, pg_sleep(0.05) WHERE id = 1;
BEGIN;
SAVEPOINT s;
SELECT 1 / (id - 1) FROM shield_t, pg_sleep(0.05) WHERE id = 1;
ROLLBACK TO SAVEPOINT s;
COMMIT;
RESET ROLE;
SELECT deadline_cancels, would_cancel
FROM shield.role_stats WHERE rolname = 'regress_shield_late';
SELECT action, enforced,
       detail ~ '^Role "regress_shield_late" \(policy \d+\) sets a deadline of 10 ms; the statement ran past it' AS detail_ok
FROM shield.events WHERE rolname = 'regress_shield_late' AND NOT enforced;

-- a superuser is exempt
SET client_min_messages = warning;  -- its name varies: no notice
SELECT shield.set_role_policy(current_user::regrole, deadline => '10 ms');
RESET client_min_messages;
SELECT true AS exempt FROM pg_sleep(0.05);

DELETE FROM shield.policy;
DROP FUNCTION shield_swallow();
DROP FUNCTION shield_others();
DROP FUNCTION shield_close_then_sleep();
DROP FUNCTION shield_open_rc();
DROP PROCEDURE shield_commits();
DROP TABLE pg_temp.shield_commits_t;
REVOKE ALL ON shield_t FROM regress_shield_late;
DROP ROLE regress_shield_late;
\set VERBOSITY default
