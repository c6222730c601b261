--
-- events: committed policy changes are recorded in shield.events (and
-- logged per pg_shield.log_actions); rolled-back ones never are
--
SELECT events AS before FROM shield.status \gset

SELECT shield.set_role_policy('regress_shield_alice', max_concurrent => 3,
                              deadline => '1s', priority => 'low');
-- re-declaring the same policy changes nothing, so records nothing
SELECT shield.set_role_policy('regress_shield_alice', max_concurrent => 3,
                              deadline => '1s', priority => 'low');
BEGIN;
SELECT shield.set_role_policy('regress_shield_bob', max_concurrent => 1);
ROLLBACK;
BEGIN;
SELECT shield.set_query_policy('SELECT v FROM shield_t WHERE id = $1',
                               max_cost => 50, mode => 'monitor') AS fp \gset
SAVEPOINT s;
SELECT shield.drop_role_policy('regress_shield_alice');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT shield.drop_query_policy(:'fp');
SELECT shield.drop_role_policy('regress_shield_alice');

SELECT rolname, queryid = :'fp' AS is_fp, action, enforced,
       regexp_replace(detail, '-?[0-9]{6,}', '<fingerprint>') AS detail
FROM shield.events
WHERE pid = pg_backend_pid() AND at >= now() - interval '1 hour'
ORDER BY at;
SELECT events - :before AS recorded FROM shield.status;
SELECT count(*) = (SELECT events FROM shield.status) AS all_kept
FROM shield.events;

-- a rejection of alice's statement names its fingerprint in the detail
SELECT shield.set_query_policy('SELECT v FROM shield_t WHERE id = 1',
                               role => 'regress_shield_alice',
                               max_cost => 0.001) AS alice_fp \gset
SET ROLE regress_shield_alice;
\set VERBOSITY sqlstate
SELECT v FROM shield_t WHERE id = 1;
\set VERBOSITY default
RESET ROLE;
SELECT shield.drop_query_policy(:'alice_fp', 'regress_shield_alice');

-- other roles see the events, not their fingerprints, in queryid or in
-- the detail
SET ROLE regress_shield_bob;
SELECT count(*) AS fingerprints_visible FROM shield.events WHERE queryid IS NOT NULL;
SELECT count(*) AS details_naming_fingerprints FROM shield.events
WHERE detail ~ '[0-9]{6,}';
SELECT count(*) > 0 AS details_masked FROM shield.events
WHERE detail = '<insufficient privilege>';
SELECT count(*) > 0 AS events_visible FROM shield.events;
-- and cannot change what is logged
SET pg_shield.log_actions = none;
RESET ROLE;

SHOW pg_shield.log_actions;
SET pg_shield.log_actions = 'everything';
SELECT name, setting, context FROM pg_settings
WHERE name IN ('pg_shield.log_actions', 'pg_shield.max_events')
ORDER BY name COLLATE "C";
