--
-- shield.policy_usage: every policy of the database with what runs and
-- waits in its scope now, its rate tokens, what it turned away since the
-- last reset and its breaker
--
CREATE ROLE regress_usage;
CREATE TABLE usage_t (id int);
INSERT INTO usage_t VALUES (1), (2), (3);
GRANT SELECT ON usage_t TO regress_usage;
SELECT shield.reset() IS NOT NULL AS reset;
SELECT shield.set_role_policy('regress_usage', max_concurrent => 2,
                              max_rate => 0.001);
SELECT shield.set_query_policy('SELECT count(*) FROM usage_t WHERE id > 1',
                               max_concurrent => 1, breaker_failures => 3) <> 0
       AS declared;

-- nothing has run: idle scopes, a full bucket, a closed breaker
SELECT scope, rolname, max_concurrent, running, waiting, max_rate, tokens,
       rejected, shed, breaker_state
FROM shield.policy_usage ORDER BY id;

-- the role's only token is spent by a cursor that holds its slots: its
-- scope and the query policy's show one running statement each; the next
-- statement is turned away by the rate limit
SET ROLE regress_usage;
BEGIN;
DECLARE usage_c CURSOR FOR SELECT count(*) FROM usage_t WHERE id > 2;
SAVEPOINT s;
\set VERBOSITY terse
SELECT 1;
\set VERBOSITY default
ROLLBACK TO SAVEPOINT s;
RESET ROLE;
SELECT scope, running, waiting, tokens < 1 AS bucket_empty, rejected, shed
FROM shield.policy_usage ORDER BY id;
SET ROLE regress_usage;
COMMIT;
RESET ROLE;

-- once the cursor is closed, nothing runs
SELECT scope, running FROM shield.policy_usage ORDER BY id;

-- other roles see the policies, but not another role's fingerprints
SET ROLE regress_shield_bob;
SELECT scope, queryid IS NULL AS queryid_hidden, running, rejected
FROM shield.policy_usage ORDER BY id;
RESET ROLE;

SELECT shield.drop_role_policy('regress_usage');
SELECT shield.drop_query_policy(shield.fingerprint('SELECT count(*) FROM usage_t WHERE id > 1'));
DROP TABLE usage_t;
DROP ROLE regress_usage;
