--
-- policies: declaring, re-declaring and dropping policies, and what bad
-- input does (nothing)
--
CREATE ROLE regress_shield_migrator LOGIN;
GRANT EXECUTE ON FUNCTION
    shield.set_role_policy(regrole, int, interval, float8, interval, float8, text, text, int),
    shield.set_query_policy(text, regrole, int, interval, float8, interval, float8, text, int, interval, text, int),
    shield.set_query_policy(bigint, regrole, int, interval, float8, interval, float8, text, int, interval, text, int),
    shield.drop_role_policy(regrole),
    shield.drop_query_policy(bigint, regrole),
    shield.rebind_query_policies()
  TO regress_shield_migrator;
GRANT USAGE ON SCHEMA public TO regress_shield_migrator;

-- a migration role declares policies with EXECUTE alone
SET ROLE regress_shield_migrator;
SELECT shield.set_role_policy('regress_shield_alice', max_concurrent => 4,
                              queue_timeout => '200ms', deadline => '5s',
                              priority => 'low');
SELECT shield.set_query_policy('SELECT v FROM shield_t WHERE id = $1',
                               max_cost => 1000, priority => 'critical')
       = shield.fingerprint('SELECT v FROM shield_t WHERE id = $1') AS returns_fingerprint;
SELECT shield.set_query_policy('SELECT v FROM shield_t WHERE id = $1',
                               role => 'regress_shield_bob', max_rate => 50,
                               breaker_failures => 5, breaker_cooldown => '30s',
                               mode => 'monitor') <> 0 AS declared;
-- it cannot write the table directly
INSERT INTO shield.policy (role, max_concurrent) VALUES ('regress_shield_bob', 1);
-- but it reads back what it declared, fingerprints and texts included
SELECT scope, rolname, queryid IS NOT NULL AS has_queryid, query
FROM shield.policies ORDER BY scope COLLATE "C", rolname COLLATE "C";
RESET ROLE;
-- a role that may not change policies sees the other roles' masked
SET ROLE regress_shield_alice;
SELECT scope, rolname, queryid IS NOT NULL AS has_queryid, query
FROM shield.policies ORDER BY scope COLLATE "C", rolname COLLATE "C";
RESET ROLE;

SELECT scope, rolname, query, max_concurrent, queue_timeout, max_cost,
       deadline, max_rate, priority, breaker_failures, breaker_cooldown, mode
FROM shield.policies ORDER BY scope COLLATE "C", rolname COLLATE "C";

-- re-declaring is a no-op: same rows, same row versions
SELECT string_agg(xmin::text || ctid::text, ',' ORDER BY id) AS versions
FROM shield.policy \gset
SET ROLE regress_shield_migrator;
SELECT shield.set_role_policy('regress_shield_alice', max_concurrent => 4,
                              queue_timeout => '200ms', deadline => '5s',
                              priority => 'low');
SELECT shield.set_query_policy('SELECT v FROM shield_t WHERE id = $1',
                               max_cost => 1000, priority => 'critical') <> 0 AS declared;
RESET ROLE;
SELECT string_agg(xmin::text || ctid::text, ',' ORDER BY id) = :'versions' AS unchanged
FROM shield.policy;

-- a declaration is the whole policy: limits left out are removed
SELECT shield.set_role_policy('regress_shield_alice', max_concurrent => 2);
SELECT max_concurrent, queue_timeout, deadline, priority
FROM shield.policies WHERE scope = 'role';

-- by fingerprint: the stored sample text is kept
SELECT shield.set_query_policy(shield.fingerprint('SELECT v FROM shield_t WHERE id = $1'),
                               max_cost => 500) <> 0 AS declared;
SELECT query, max_cost, priority FROM shield.policies WHERE scope = 'query';

-- transactional: a rolled-back migration changes nothing
BEGIN;
SELECT shield.set_role_policy('regress_shield_bob', max_concurrent => 1);
SELECT shield.drop_role_policy('regress_shield_alice');
SELECT count(*) AS inside FROM shield.policy;
ROLLBACK;
SELECT rolname, max_concurrent FROM shield.policies WHERE scope = 'role';

-- the fingerprint is the one executions get, prepared statements included
SELECT shield.fingerprint('SELECT v FROM shield_t WHERE id = 7') AS literal_fp \gset
SELECT shield.fingerprint('SELECT v FROM shield_t WHERE id = $1') AS param_fp \gset
SELECT shield.reset() IS NOT NULL AS reset;
SELECT v FROM shield_t WHERE id = 3;
PREPARE policy_p(int) AS SELECT v FROM shield_t WHERE id = $1;
EXECUTE policy_p(4);
DEALLOCATE policy_p;
SELECT queryid = :'literal_fp' AS literal_matches, calls
FROM shield.query_stats WHERE query = 'SELECT v FROM shield_t WHERE id = 3';
SELECT queryid = :'param_fp' AS prepared_matches, calls
FROM shield.query_stats WHERE query LIKE 'PREPARE policy_p%';
-- (what else it depends on, which differs between major versions: see
-- fingerprints.sql)

-- bad input: a clear error, and nothing changes
SELECT count(*) AS before, string_agg(xmin::text, ',' ORDER BY id) AS xmins
FROM shield.policy \gset
\set VERBOSITY sqlstate
SELECT shield.set_role_policy(NULL);
SELECT shield.set_role_policy('regress_shield_alice', max_concurrent => 0);
SELECT shield.set_role_policy('regress_shield_alice', max_concurrent => -3);
SELECT shield.set_role_policy('regress_shield_alice', queue_timeout => '-1 ms');
SELECT shield.set_role_policy('regress_shield_alice', max_cost => 0);
SELECT shield.set_role_policy('regress_shield_alice', max_cost => 'infinity');
SELECT shield.set_role_policy('regress_shield_alice', deadline => '0s');
SELECT shield.set_role_policy('regress_shield_alice', max_rate => 'NaN');
SELECT shield.set_role_policy('regress_shield_alice', priority => NULL);
SELECT shield.set_query_policy(NULL::text);
SELECT shield.set_query_policy(NULL::bigint);
SELECT shield.set_query_policy('SELECT 1', breaker_failures => 0);
SELECT shield.set_query_policy('SELECT 1', breaker_cooldown => '0');
SELECT shield.set_query_policy('SELECT 1', mode => NULL);
SELECT shield.set_query_policy('SELECT v FROM no_such_table');
SELECT shield.set_query_policy('SELEC 1');
SELECT shield.drop_query_policy(NULL);
SELECT shield.set_role_policy('no_such_role');
\set VERBOSITY default
SELECT shield.set_role_policy('regress_shield_alice', priority => 'urgent');
SELECT shield.set_query_policy('SELECT 1', mode => 'observe');
SELECT shield.set_query_policy('SELECT 1', deadline => '1 mon');
SELECT shield.set_query_policy('');
SELECT shield.set_query_policy('SELECT 1; SELECT 2');
SELECT shield.set_query_policy('CREATE TABLE x (a int)');
SELECT shield.set_query_policy('SELECT 1 INTO TEMP x');
SELECT shield.set_query_policy('SELECT v FROM no_such_table');
SELECT shield.set_query_policy(0::bigint);
SELECT count(*) = :before AND string_agg(xmin::text, ',' ORDER BY id) = :'xmins'
       AS nothing_changed
FROM shield.policy;

-- the table rejects invalid rows even from its owner
INSERT INTO shield.policy (role, max_concurrent) VALUES ('regress_shield_bob', 0);
INSERT INTO shield.policy (queryid, priority) VALUES (1, 'urgent');
INSERT INTO shield.policy (max_concurrent) VALUES (3);
INSERT INTO shield.policy (role, breaker_failures) VALUES ('regress_shield_bob', 3);
INSERT INTO shield.policy (role, deadline) VALUES ('regress_shield_bob', '1 year');
INSERT INTO shield.policy (role, deadline) VALUES ('regress_shield_bob', '1 day -1 hour');
SELECT shield.set_role_policy('regress_shield_bob', deadline => '1 day -1 hour');
-- but durations of more than a day are fine
SELECT shield.set_role_policy('regress_shield_bob', deadline => '25 hours',
                              queue_timeout => '1 day 2 hours');
SELECT deadline, queue_timeout FROM shield.policies WHERE rolname = 'regress_shield_bob';
SELECT shield.drop_role_policy('regress_shield_bob');

-- effective_policy: every matching scope, strictest deadline and max_cost,
-- priority from the most specific policy
SELECT shield.set_role_policy('regress_shield_alice', max_concurrent => 4,
                              deadline => '5s', priority => 'low');
SELECT shield.set_query_policy('SELECT v FROM shield_t WHERE id = $1',
                               max_concurrent => 10, max_cost => 100,
                               deadline => '2s', priority => 'critical',
                               breaker_failures => 3, breaker_cooldown => '10s') <> 0 AS declared;
SELECT shield.set_query_policy('SELECT v FROM shield_t WHERE id = $1',
                               role => 'regress_shield_alice', max_rate => 20,
                               max_cost => 500, queue_timeout => '0',
                               mode => 'monitor') <> 0 AS declared;
SELECT limit_name, value, scope, mode,
       policy_id = (SELECT id FROM shield.policies p
                    WHERE p.scope = e.scope
                      AND p.queryid IS NOT DISTINCT FROM
                          (CASE WHEN e.scope = 'role' THEN NULL ELSE e.queryid END)
                      AND p.rolname IS NOT DISTINCT FROM
                          (CASE WHEN e.scope = 'query' THEN NULL
                                ELSE 'regress_shield_alice' END)) AS from_policy
FROM shield.effective_policy('SELECT v FROM shield_t WHERE id = $1',
                             'regress_shield_alice') e;
-- the statement with a constant inline matches the same policies, by shape
SELECT limit_name, value, scope, mode
FROM shield.effective_policy('SELECT v FROM shield_t WHERE id = 1',
                             'regress_shield_bob');
SELECT limit_name, value, scope
FROM shield.effective_policy('SELECT count(*) FROM shield_t', 'regress_shield_alice');
-- the current user by default (a superuser: exempt); monitor everywhere
-- when pg_shield.mode says so
SET pg_shield.mode = monitor;
SELECT limit_name, value, scope, mode
FROM shield.effective_policy('SELECT count(*) FROM shield_t');
SELECT limit_name, value, scope, mode
FROM shield.effective_policy('SELECT count(*) FROM shield_t', 'regress_shield_bob');
RESET pg_shield.mode;
-- uncommitted changes are visible to the session that makes them
BEGIN;
SELECT shield.drop_role_policy('regress_shield_alice');
SELECT count(*) AS limits_inside FROM shield.effective_policy('SELECT 1', 'regress_shield_alice')
WHERE scope = 'role';
ROLLBACK;
SELECT count(*) AS limits_after_rollback
FROM shield.effective_policy('SELECT 1', 'regress_shield_alice') WHERE scope = 'role';
SELECT * FROM shield.effective_policy(NULL);

-- dropping
SELECT shield.drop_query_policy(:'param_fp', 'regress_shield_bob') AS dropped,
       shield.drop_query_policy(:'param_fp', 'regress_shield_bob') AS again;
SELECT shield.drop_role_policy('regress_shield_alice') AS dropped;
SELECT shield.drop_query_policy(:'param_fp', 'regress_shield_alice') AS dropped;
SELECT scope, query FROM shield.policies ORDER BY id;
DELETE FROM shield.policy;
DROP OWNED BY regress_shield_migrator;
DROP ROLE regress_shield_migrator;

-- other roles see that query policies exist, not their fingerprints or text
SELECT shield.set_query_policy('SELECT v FROM shield_t WHERE id = $1',
                               role => 'regress_shield_alice', max_rate => 1) <> 0 AS declared;
SET ROLE regress_shield_bob;
SELECT scope, rolname, queryid, query, max_rate FROM shield.policies;
RESET ROLE;
SET ROLE regress_shield_alice;
SELECT scope, rolname, queryid <> 0 AS has_queryid, query FROM shield.policies;
RESET ROLE;
DELETE FROM shield.policy;

-- fingerprints of another major version (after pg_upgrade, or a restore of
-- a dump made there) are stale: such a policy is not enforced, says so,
-- and rebinding recomputes it from its text
CREATE ROLE regress_shield_stale;
SELECT shield.set_query_policy('SELECT v FROM shield_t WHERE id = 1',
                               max_cost => 1) = shield.fingerprint('SELECT v FROM shield_t WHERE id = 2') AS declared;
SELECT shield.set_query_policy(1234, max_rate => 5) AS by_fingerprint;
SELECT scope, fingerprint_version = current_setting('server_version_num')::int / 10000 AS current_version,
       stale
FROM shield.policies ORDER BY id;
SELECT count(*) AS limits FROM shield.effective_policy('SELECT v FROM shield_t WHERE id = 7')
WHERE limit_name = 'max_cost';
SET ROLE regress_shield_stale;
\set VERBOSITY terse
SELECT v FROM shield_t WHERE id = 7;
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
UPDATE shield.policy SET fingerprint_version = 14;
SELECT scope, fingerprint_version, stale FROM shield.policies ORDER BY id;
-- not enforced: the query's cost ceiling no longer applies, and the
-- functions warn
SET ROLE regress_shield_stale;
SELECT v FROM shield_t WHERE id = 7;
RESET ROLE;
SELECT count(*) AS limits FROM shield.effective_policy('SELECT v FROM shield_t WHERE id = 7')
WHERE limit_name = 'max_cost';
SELECT shield.set_role_policy('regress_shield_alice', max_concurrent => 5);
-- rebinding: the text policy is current again, the one declared by
-- fingerprint cannot be
SELECT shield.rebind_query_policies();
SELECT scope, stale FROM shield.policies ORDER BY id;
SET ROLE regress_shield_stale;
\set VERBOSITY terse
SELECT v FROM shield_t WHERE id = 7;
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT shield.drop_query_policy(1234) AS dropped;
DELETE FROM shield.policy;
DROP ROLE regress_shield_stale;

-- a role given as an OID must exist (42704), and nothing is written
SELECT count(*) AS policies FROM shield.policy;
SELECT shield.set_role_policy(0::oid::regrole, max_rate => 1);
SELECT shield.set_role_policy('-', max_rate => 1);
SELECT shield.set_query_policy('SELECT 1', role => '-', max_rate => 1);
SELECT shield.set_query_policy(1234, role => 0::oid::regrole, max_rate => 1);
CREATE ROLE regress_shield_gone;
SELECT 'regress_shield_gone'::regrole::oid AS gone_oid \gset
DROP ROLE regress_shield_gone;
\set VERBOSITY sqlstate
SELECT shield.set_role_policy(:gone_oid::oid::regrole, max_rate => 1);
\set VERBOSITY default
SELECT count(*) AS policies FROM shield.policy;

-- a policy on a superuser is stored with a notice, since it does not apply
-- while pg_shield.exempt_superuser is on; effective_policy says exempt
CREATE ROLE regress_shield_super SUPERUSER;
SELECT shield.set_role_policy('regress_shield_super', max_rate => 1);
SELECT shield.set_query_policy('SELECT 1', role => 'regress_shield_super',
                               max_concurrent => 1) <> 0 AS declared;
SELECT limit_name, value, scope, mode
FROM shield.effective_policy('SELECT 1', 'regress_shield_super')
ORDER BY limit_name;
-- a role that is not a superuser gets no notice
SELECT shield.set_role_policy('regress_shield_bob', max_rate => 1);
SELECT DISTINCT mode FROM shield.effective_policy('SELECT 1', 'regress_shield_bob');
DELETE FROM shield.policy;
DROP ROLE regress_shield_super;

-- policies bind roles by name: a renamed role leaves its policies behind
-- at once, also in a session that had read them
CREATE ROLE regress_shield_renamed;
SELECT shield.set_role_policy('regress_shield_renamed', max_rate => 1);
SELECT limit_name, value FROM shield.effective_policy('SELECT 1', 'regress_shield_renamed')
WHERE limit_name = 'max_rate';
ALTER ROLE regress_shield_renamed RENAME TO regress_shield_renamed2;
SELECT count(*) AS limits_left
FROM shield.effective_policy('SELECT 1', 'regress_shield_renamed2')
WHERE limit_name = 'max_rate';
SELECT rolname, role_missing FROM shield.policies WHERE scope = 'role';
DELETE FROM shield.policy;
DROP ROLE regress_shield_renamed2;
