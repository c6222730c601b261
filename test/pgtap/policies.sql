-- pgTAP: the SQL surface of pg_shield's policies: function signatures and
-- return types, who may call what, the shield.policies view, and the
-- shield.policy table behind it.
--
-- Run by scripts/test.sh as superuser postgres against a preloaded server
-- where "CREATE EXTENSION pgtap; CREATE EXTENSION pg_shield;" were run.
-- Everything happens in one transaction that is rolled back; the roles it
-- needs are created inside it.
--
-- Copyright (c) 2026, The pg_shield Developers

\set ON_ERROR_STOP on
\set QUIET on
\pset format unaligned
\pset tuples_only on
\pset pager off

BEGIN;

SELECT plan(122);

-- Argument lists, as regtype prints them.
\set role_policy_args '{regrole,integer,interval,"double precision",interval,"double precision",text,text,integer}'
\set query_policy_text_args '{text,regrole,integer,interval,"double precision",interval,"double precision",text,integer,interval,text,integer}'
\set query_policy_id_args '{bigint,regrole,integer,interval,"double precision",interval,"double precision",text,integer,interval,text,integer}'

-- Signatures and return types.
SELECT has_function('shield', 'set_role_policy', :'role_policy_args'::name[],
    'function shield.set_role_policy(regrole, limits...) exists');
SELECT function_returns('shield', 'set_role_policy', :'role_policy_args'::name[],
    'void', 'shield.set_role_policy() returns void');
SELECT has_function('shield', 'set_query_policy', :'query_policy_text_args'::name[],
    'function shield.set_query_policy(text, regrole, limits...) exists');
SELECT function_returns('shield', 'set_query_policy', :'query_policy_text_args'::name[],
    'bigint', 'shield.set_query_policy(text, ...) returns bigint');
SELECT has_function('shield', 'set_query_policy', :'query_policy_id_args'::name[],
    'function shield.set_query_policy(bigint, regrole, limits...) exists');
SELECT function_returns('shield', 'set_query_policy', :'query_policy_id_args'::name[],
    'bigint', 'shield.set_query_policy(bigint, ...) returns bigint');
SELECT has_function('shield', 'drop_role_policy', '{regrole}'::name[],
    'function shield.drop_role_policy(regrole) exists');
SELECT function_returns('shield', 'drop_role_policy', '{regrole}'::name[],
    'boolean', 'shield.drop_role_policy() returns boolean');
SELECT has_function('shield', 'drop_query_policy', '{bigint,regrole}'::name[],
    'function shield.drop_query_policy(bigint, regrole) exists');
SELECT function_returns('shield', 'drop_query_policy', '{bigint,regrole}'::name[],
    'boolean', 'shield.drop_query_policy() returns boolean');
SELECT has_function('shield', 'fingerprint', '{text}'::name[],
    'function shield.fingerprint(text) exists');
SELECT function_returns('shield', 'fingerprint', '{text}'::name[],
    'bigint', 'shield.fingerprint() returns bigint');
SELECT has_function('shield', 'shape', '{text}'::name[],
    'function shield.shape(text) exists');
SELECT function_returns('shield', 'shape', '{text}'::name[],
    'bigint', 'shield.shape() returns bigint');
SELECT has_function('shield', 'rebind_query_policies', '{}'::name[],
    'function shield.rebind_query_policies() exists');
SELECT function_returns('shield', 'rebind_query_policies', '{}'::name[],
    'integer', 'shield.rebind_query_policies() returns integer');
SELECT has_function('shield', 'effective_policy', '{text,regrole}'::name[],
    'function shield.effective_policy(text, regrole) exists');
SELECT function_returns('shield', 'effective_policy', '{text,regrole}'::name[],
    'setof record', 'shield.effective_policy() returns setof record');
SELECT is((SELECT count(*)::int FROM pg_proc
           WHERE pronamespace = 'shield'::regnamespace
             AND proname = 'set_query_policy'),
    2, 'shield.set_query_policy has exactly two forms');

-- Argument names and defaults: migrations call them with named arguments.
SELECT is((SELECT proargnames FROM pg_proc
           WHERE oid = 'shield.set_role_policy(regrole, int, interval, float8, interval, float8, text, text, int)'::regprocedure),
    ARRAY['role', 'max_concurrent', 'queue_timeout', 'max_cost', 'deadline',
          'max_rate', 'priority', 'mode', 'max_parallel_workers'],
    'shield.set_role_policy() argument names');
SELECT is((SELECT pronargdefaults::int FROM pg_proc
           WHERE oid = 'shield.set_role_policy(regrole, int, interval, float8, interval, float8, text, text, int)'::regprocedure),
    8, 'shield.set_role_policy(): every argument but role has a default');
SELECT is((SELECT proargnames FROM pg_proc
           WHERE oid = 'shield.set_query_policy(text, regrole, int, interval, float8, interval, float8, text, int, interval, text, int)'::regprocedure),
    ARRAY['query', 'role', 'max_concurrent', 'queue_timeout', 'max_cost',
          'deadline', 'max_rate', 'priority', 'breaker_failures',
          'breaker_cooldown', 'mode', 'max_parallel_workers'],
    'shield.set_query_policy(text, ...) argument names');
SELECT is((SELECT pronargdefaults::int FROM pg_proc
           WHERE oid = 'shield.set_query_policy(text, regrole, int, interval, float8, interval, float8, text, int, interval, text, int)'::regprocedure),
    11, 'shield.set_query_policy(text, ...): every argument but query has a default');
SELECT is((SELECT proargnames FROM pg_proc
           WHERE oid = 'shield.set_query_policy(bigint, regrole, int, interval, float8, interval, float8, text, int, interval, text, int)'::regprocedure),
    ARRAY['queryid', 'role', 'max_concurrent', 'queue_timeout', 'max_cost',
          'deadline', 'max_rate', 'priority', 'breaker_failures',
          'breaker_cooldown', 'mode', 'max_parallel_workers'],
    'shield.set_query_policy(bigint, ...) argument names');
SELECT is((SELECT pronargdefaults::int FROM pg_proc
           WHERE oid = 'shield.set_query_policy(bigint, regrole, int, interval, float8, interval, float8, text, int, interval, text, int)'::regprocedure),
    11, 'shield.set_query_policy(bigint, ...): every argument but queryid has a default');
SELECT is((SELECT proargnames FROM pg_proc
           WHERE oid = 'shield.drop_query_policy(bigint, regrole)'::regprocedure),
    ARRAY['queryid', 'role'], 'shield.drop_query_policy() argument names');
SELECT is((SELECT pronargdefaults::int FROM pg_proc
           WHERE oid = 'shield.drop_query_policy(bigint, regrole)'::regprocedure),
    1, 'shield.drop_query_policy(): role has a default');
SELECT is((SELECT pg_get_function_arguments(oid) FROM pg_proc
           WHERE oid = 'shield.set_role_policy(regrole, int, interval, float8, interval, float8, text, text, int)'::regprocedure),
    'role regrole, max_concurrent integer DEFAULT NULL::integer, '
    'queue_timeout interval DEFAULT NULL::interval, '
    'max_cost double precision DEFAULT NULL::double precision, '
    'deadline interval DEFAULT NULL::interval, '
    'max_rate double precision DEFAULT NULL::double precision, '
    'priority text DEFAULT ''normal''::text, mode text DEFAULT ''enforce''::text, '
    'max_parallel_workers integer DEFAULT NULL::integer',
    'shield.set_role_policy(): NULL limits, priority normal and mode enforce by default');

-- Privileges of PUBLIC on the functions (EXECUTE revoked from PUBLIC).
SELECT function_privs_are('shield', 'set_role_policy', :'role_policy_args'::name[],
    'public', '{}'::name[], 'PUBLIC cannot execute shield.set_role_policy()');
SELECT function_privs_are('shield', 'set_query_policy', :'query_policy_text_args'::name[],
    'public', '{}'::name[], 'PUBLIC cannot execute shield.set_query_policy(text, ...)');
SELECT function_privs_are('shield', 'set_query_policy', :'query_policy_id_args'::name[],
    'public', '{}'::name[], 'PUBLIC cannot execute shield.set_query_policy(bigint, ...)');
SELECT function_privs_are('shield', 'drop_role_policy', '{regrole}'::name[],
    'public', '{}'::name[], 'PUBLIC cannot execute shield.drop_role_policy()');
SELECT function_privs_are('shield', 'drop_query_policy', '{bigint,regrole}'::name[],
    'public', '{}'::name[], 'PUBLIC cannot execute shield.drop_query_policy()');
SELECT function_privs_are('shield', 'rebind_query_policies', '{}'::name[],
    'public', '{}'::name[], 'PUBLIC cannot execute shield.rebind_query_policies()');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p, aclexplode(p.proacl) a
                  WHERE p.pronamespace = 'shield'::regnamespace
                    AND p.proname IN ('set_role_policy', 'set_query_policy',
                                      'drop_role_policy', 'drop_query_policy',
                                      'rebind_query_policies', 'policy_changed')
                    AND a.grantee = 0$$,
    'the ACLs of the policy mutators grant PUBLIC nothing');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p
                  WHERE p.pronamespace = 'shield'::regnamespace
                    AND p.proname IN ('set_role_policy', 'set_query_policy',
                                      'drop_role_policy', 'drop_query_policy',
                                      'rebind_query_policies')
                    AND p.proacl IS NULL$$,
    'every policy mutator has an explicit ACL, not the default PUBLIC EXECUTE');
SELECT function_privs_are('shield', 'fingerprint', '{text}'::name[],
    'public', '{EXECUTE}'::name[], 'PUBLIC can execute shield.fingerprint()');
SELECT function_privs_are('shield', 'shape', '{text}'::name[],
    'public', '{EXECUTE}'::name[], 'PUBLIC can execute shield.shape()');
SELECT function_privs_are('shield', 'effective_policy', '{text,regrole}'::name[],
    'public', '{EXECUTE}'::name[], 'PUBLIC can execute shield.effective_policy()');
SELECT ok(NOT has_function_privilege('public', 'shield.policy_changed()', 'EXECUTE'),
    'PUBLIC cannot execute the trigger function shield.policy_changed()');

-- Every SECURITY DEFINER function of the extension pins search_path.
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p
                  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass
                                  AND d.objid = p.oid AND d.deptype = 'e'
                  JOIN pg_extension e ON e.oid = d.refobjid
                  WHERE e.extname = 'pg_shield' AND p.prosecdef
                    AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c
                                    WHERE c LIKE 'search\_path=%')$$,
    'no SECURITY DEFINER function of pg_shield leaves search_path unpinned');

-- shield.policies.
SELECT has_view('shield', 'policies', 'view shield.policies exists');
SELECT col_type_is('shield', 'policies', 'id', 'bigint', 'policies.id is bigint');
SELECT col_type_is('shield', 'policies', 'dbid', 'oid', 'policies.dbid is oid');
SELECT col_type_is('shield', 'policies', 'datname', 'name', 'policies.datname is name');
SELECT col_type_is('shield', 'policies', 'userid', 'oid', 'policies.userid is oid');
SELECT col_type_is('shield', 'policies', 'rolname', 'name', 'policies.rolname is name');
SELECT col_type_is('shield', 'policies', 'queryid', 'bigint', 'policies.queryid is bigint');
SELECT col_type_is('shield', 'policies', 'query', 'text', 'policies.query is text');
SELECT col_type_is('shield', 'policies', 'shape', 'bigint', 'policies.shape is bigint');
SELECT col_type_is('shield', 'policy', 'shape', 'bigint', 'shield.policy.shape is bigint');
SELECT col_type_is('shield', 'policies', 'max_concurrent', 'integer', 'policies.max_concurrent is integer');
SELECT col_type_is('shield', 'policies', 'queue_timeout', 'interval', 'policies.queue_timeout is interval');
SELECT col_type_is('shield', 'policies', 'max_cost', 'double precision', 'policies.max_cost is double precision');
SELECT col_type_is('shield', 'policies', 'deadline', 'interval', 'policies.deadline is interval');
SELECT col_type_is('shield', 'policies', 'max_rate', 'double precision', 'policies.max_rate is double precision');
SELECT col_type_is('shield', 'policies', 'priority', 'text', 'policies.priority is text');
SELECT col_type_is('shield', 'policies', 'breaker_failures', 'integer', 'policies.breaker_failures is integer');
SELECT col_type_is('shield', 'policies', 'breaker_cooldown', 'interval', 'policies.breaker_cooldown is interval');
SELECT col_type_is('shield', 'policies', 'max_parallel_workers', 'integer',
    'policies.max_parallel_workers is integer');
SELECT col_type_is('shield', 'policies', 'mode', 'text', 'policies.mode is text');
SELECT col_type_is('shield', 'policies', 'fingerprint_version', 'integer',
    'policies.fingerprint_version is integer');
SELECT col_type_is('shield', 'policies', 'stale', 'boolean', 'policies.stale is boolean');
SELECT col_type_is('shield', 'policy', 'fingerprint_version', 'integer',
    'shield.policy.fingerprint_version is integer');
SELECT table_privs_are('shield', 'policies', 'public', '{SELECT}'::name[],
    'PUBLIC can only SELECT shield.policies');

-- shield.policy: the table behind it, written only through the functions.
SELECT has_table('shield', 'policy', 'table shield.policy exists');
SELECT has_pk('shield', 'policy', 'shield.policy has a primary key');
SELECT has_trigger('shield', 'policy', 'policy_changed',
    'shield.policy has the trigger that announces changes');
SELECT table_privs_are('shield', 'policy', 'public', '{}'::name[],
    'PUBLIC has no privilege on shield.policy (it cannot write it, nor read sample text)');
SELECT ok(NOT has_table_privilege('public', 'shield.policy', 'INSERT')
          AND NOT has_table_privilege('public', 'shield.policy', 'UPDATE')
          AND NOT has_table_privilege('public', 'shield.policy', 'DELETE')
          AND NOT has_table_privilege('public', 'shield.policy', 'TRUNCATE'),
    'PUBLIC cannot INSERT, UPDATE, DELETE or TRUNCATE shield.policy');
SELECT ok(NOT has_any_column_privilege('public', 'shield.policy', 'INSERT')
          AND NOT has_any_column_privilege('public', 'shield.policy', 'UPDATE'),
    'PUBLIC has no column privilege on shield.policy either');
SELECT ok(NOT has_sequence_privilege('public', 'shield.policy_id_seq', 'USAGE')
          AND NOT has_sequence_privilege('public', 'shield.policy_id_seq', 'UPDATE'),
    'PUBLIC cannot use the id sequence of shield.policy');

-- Registered as extension configuration, so that pg_dump includes the
-- policies, with the id sequence, every row.
SELECT ok((SELECT 'shield.policy'::regclass = ANY (extconfig)
           FROM pg_extension WHERE extname = 'pg_shield'),
    'pg_extension.extconfig contains shield.policy');
SELECT ok((SELECT 'shield.policy_id_seq'::regclass = ANY (extconfig)
           FROM pg_extension WHERE extname = 'pg_shield'),
    'pg_extension.extconfig contains the id sequence shield.policy_id_seq');
SELECT is((SELECT extcondition[array_position(extconfig, 'shield.policy'::regclass)]
           FROM pg_extension WHERE extname = 'pg_shield'),
    '',
    'shield.policy is dumped whole, the policies of missing roles included (bound by name)');
SELECT col_type_is('shield', 'policy', 'role', 'name',
    'shield.policy.role is a name: a restore without the role keeps its policies');
SELECT ok(EXISTS (SELECT 1 FROM pg_depend
                  WHERE classid = 'pg_class'::regclass
                    AND objid = 'shield.policy'::regclass
                    AND refclassid = 'pg_extension'::regclass
                    AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shield')
                    AND deptype = 'e'),
    'shield.policy is a member of the extension');

-- Roles for the rest, dropped by the final ROLLBACK.
CREATE ROLE regress_shield_policy_app;
CREATE ROLE regress_shield_policy_migrator;
CREATE ROLE regress_shield_policy_nobody;
GRANT EXECUTE ON FUNCTION
    shield.set_role_policy(regrole, int, interval, float8, interval, float8, text, text, int)
  TO regress_shield_policy_migrator;

SELECT function_privs_are('shield', 'set_role_policy', :'role_policy_args'::name[],
    'regress_shield_policy_migrator', '{EXECUTE}'::name[],
    'the migration role has EXECUTE on shield.set_role_policy()');
SELECT table_privs_are('shield', 'policy', 'regress_shield_policy_migrator',
    '{}'::name[], 'the migration role has no privilege on shield.policy');

-- A role holding only EXECUTE declares a role policy ("a role granted
-- EXECUTE needs no other privilege"), and cannot touch the table itself.
SET ROLE regress_shield_policy_migrator;
SELECT is(current_user::text, 'regress_shield_policy_migrator',
    'running as regress_shield_policy_migrator');
SELECT lives_ok($$SELECT shield.set_role_policy('regress_shield_policy_app',
                      max_concurrent => 2, deadline => '3s', priority => 'low')$$,
    'a role with EXECUTE only can declare a role policy');
SELECT lives_ok($$SELECT shield.set_role_policy('regress_shield_policy_app',
                      max_concurrent => 2, deadline => '3s', priority => 'low')$$,
    'and declare it again (idempotent)');
SELECT is((SELECT max_concurrent || ' ' || deadline || ' ' || priority || ' ' || mode
           FROM shield.policies
           WHERE rolname = 'regress_shield_policy_app' AND scope = 'role'),
    '2 00:00:03 low enforce',
    'the migration role reads back its policy through shield.policies');
SELECT throws_ok($$INSERT INTO shield.policy (role, max_concurrent)
                   VALUES ('regress_shield_policy_app', 1)$$,
    '42501', NULL, 'the migration role cannot INSERT into shield.policy');
SELECT throws_ok($$UPDATE shield.policy SET max_concurrent = 100$$,
    '42501', NULL, 'the migration role cannot UPDATE shield.policy');
SELECT throws_ok($$DELETE FROM shield.policy$$,
    '42501', NULL, 'the migration role cannot DELETE from shield.policy');
SELECT throws_ok($$TRUNCATE shield.policy$$,
    '42501', NULL, 'the migration role cannot TRUNCATE shield.policy');
SELECT throws_ok($$SELECT * FROM shield.policy$$,
    '42501', NULL, 'the migration role cannot read shield.policy directly');
SELECT throws_ok($$SELECT nextval('shield.policy_id_seq')$$,
    '42501', NULL, 'the migration role cannot draw from the id sequence');
-- EXECUTE on one function grants nothing else.
SELECT throws_ok($$SELECT shield.drop_role_policy('regress_shield_policy_app')$$,
    '42501', NULL, 'the migration role cannot call shield.drop_role_policy()');
SELECT throws_ok($$SELECT shield.set_query_policy('SELECT 1', max_rate => 1)$$,
    '42501', NULL, 'the migration role cannot call shield.set_query_policy(text, ...)');
SELECT throws_ok($$SELECT shield.set_query_policy(42::bigint, max_rate => 1)$$,
    '42501', NULL, 'the migration role cannot call shield.set_query_policy(bigint, ...)');
SELECT throws_ok($$SELECT shield.drop_query_policy(42)$$,
    '42501', NULL, 'the migration role cannot call shield.drop_query_policy()');
SELECT throws_ok($$SELECT shield.rebind_query_policies()$$,
    '42501', NULL, 'the migration role cannot call shield.rebind_query_policies()');
-- Bad input from it: 22023, nothing written.
SELECT throws_ok($$SELECT shield.set_role_policy('regress_shield_policy_app',
                       max_concurrent => 0)$$,
    '22023', NULL, 'an invalid limit from the migration role fails with 22023');
RESET ROLE;

SELECT is((SELECT max_concurrent || ' ' || deadline || ' ' || priority
           FROM shield.policy
           WHERE role = 'regress_shield_policy_app' AND queryid IS NULL),
    '2 00:00:03 low', 'the policy the migration role declared is stored once, unchanged');
SELECT is((SELECT count(*)::int FROM shield.policy
           WHERE role = 'regress_shield_policy_app'),
    1, 'no other row was written for the role');

-- A role without EXECUTE: nothing but the readers.
SET ROLE regress_shield_policy_nobody;
SELECT throws_ok($$SELECT shield.set_role_policy('regress_shield_policy_app')$$,
    '42501', NULL, 'a fresh role cannot call shield.set_role_policy()');
SELECT throws_ok($$SELECT shield.set_query_policy('SELECT 1')$$,
    '42501', NULL, 'a fresh role cannot call shield.set_query_policy(text, ...)');
SELECT throws_ok($$SELECT shield.set_query_policy(42::bigint)$$,
    '42501', NULL, 'a fresh role cannot call shield.set_query_policy(bigint, ...)');
SELECT throws_ok($$SELECT shield.drop_role_policy('regress_shield_policy_app')$$,
    '42501', NULL, 'a fresh role cannot call shield.drop_role_policy()');
SELECT throws_ok($$SELECT shield.drop_query_policy(42)$$,
    '42501', NULL, 'a fresh role cannot call shield.drop_query_policy()');
SELECT throws_ok($$SELECT shield.rebind_query_policies()$$,
    '42501', NULL, 'a fresh role cannot call shield.rebind_query_policies()');
SELECT throws_ok($$INSERT INTO shield.policy (role, max_concurrent)
                   VALUES ('regress_shield_policy_nobody', 1)$$,
    '42501', NULL, 'a fresh role cannot INSERT into shield.policy');
SELECT lives_ok($$SELECT shield.fingerprint('SELECT 1')$$,
    'a fresh role can call shield.fingerprint()');
SELECT isnt(shield.fingerprint('SELECT 1'), 0::bigint,
    'shield.fingerprint() gives it a fingerprint');
SELECT is(shield.shape('SELECT 2'), shield.shape('SELECT $1::int'),
    'shield.shape() gives a constant and a parameter one shape');
SELECT lives_ok($$SELECT * FROM shield.effective_policy('SELECT 1')$$,
    'a fresh role can call shield.effective_policy()');
SELECT is((SELECT value || ' ' || scope
           FROM shield.effective_policy('SELECT 1', 'regress_shield_policy_app')
           WHERE limit_name = 'max_concurrent'),
    '2 role', 'shield.effective_policy() shows it the limits of another role');
SELECT is((SELECT count(*)::int FROM shield.policies
           WHERE rolname = 'regress_shield_policy_app'),
    1, 'a fresh role can read shield.policies');
RESET ROLE;
SELECT table_privs_are('shield', 'policies', 'regress_shield_policy_nobody',
    '{SELECT}'::name[], 'a fresh role can only SELECT shield.policies');

-- The owner may write the table directly, within its constraints.
SELECT lives_ok($$INSERT INTO shield.policy (role, max_concurrent)
                  VALUES ('regress_shield_policy_nobody', 5)$$,
    'the table owner can INSERT into shield.policy');
SELECT throws_ok($$INSERT INTO shield.policy (role, max_concurrent)
                   VALUES ('regress_shield_policy_nobody', 6)$$,
    '23505', NULL, 'one policy per scope, even for the owner');
SELECT throws_ok($$INSERT INTO shield.policy (role, mode)
                   VALUES ('regress_shield_policy_app', 'observe')$$,
    '23514', NULL, 'the table checks its values, even for the owner');
SELECT is((SELECT value FROM shield.effective_policy('SELECT 1', 'regress_shield_policy_nobody')
           WHERE limit_name = 'max_concurrent'),
    '5', 'a row the owner inserted is a policy like the others');

-- The scope column tells the three kinds apart.
SELECT lives_ok($$SELECT shield.set_query_policy('SELECT 1', max_rate => 3)$$,
    'the superuser declares a query policy');
SELECT lives_ok($$SELECT shield.set_query_policy('SELECT 1',
                      role => 'regress_shield_policy_app', max_rate => 2)$$,
    'the superuser declares a query+role policy');
SELECT set_eq($$SELECT scope, rolname::text, queryid IS NULL, query
                FROM shield.policies
                WHERE rolname LIKE 'regress_shield_policy%' OR query = 'SELECT 1'$$,
    $$VALUES ('role', 'regress_shield_policy_app', true, NULL::text),
             ('role', 'regress_shield_policy_nobody', true, NULL),
             ('query', NULL, false, 'SELECT 1'),
             ('query+role', 'regress_shield_policy_app', false, 'SELECT 1')$$,
    'shield.policies: scope, rolname, queryid and query of each kind');
SELECT is_empty($$SELECT 1 FROM shield.policies
                  WHERE (scope = 'role') <> (queryid IS NULL)
                     OR (scope = 'query') <> (userid IS NULL)
                     OR dbid <> (SELECT oid FROM pg_database WHERE datname = current_database())
                     OR datname <> current_database()
                     OR userid IS DISTINCT FROM (SELECT oid FROM pg_roles r
                                                 WHERE r.rolname = policies.rolname)$$,
    'shield.policies: dbid, datname, userid and rolname are consistent with the scope');
SELECT is((SELECT count(*)::int FROM shield.policies p JOIN shield.policy t USING (id)
           WHERE p.queryid IS NOT DISTINCT FROM t.queryid
             AND p.rolname IS NOT DISTINCT FROM t.role
             AND (p.max_concurrent, p.queue_timeout, p.max_cost, p.deadline,
                  p.max_rate, p.priority, p.breaker_failures, p.breaker_cooldown,
                  p.mode)
                 IS NOT DISTINCT FROM
                 (t.max_concurrent, t.queue_timeout, t.max_cost, t.deadline,
                  t.max_rate, t.priority, t.breaker_failures, t.breaker_cooldown,
                  t.mode)),
    (SELECT count(*)::int FROM shield.policy),
    'shield.policies shows every stored policy with its limits');
-- Sample text of a policy is shown like query_stats shows query text.
SET ROLE regress_shield_policy_nobody;
SELECT is((SELECT query FROM shield.policies WHERE scope = 'query+role'
             AND rolname = 'regress_shield_policy_app'),
    '<insufficient privilege>',
    'another role''s sample text is hidden from a fresh role');
RESET ROLE;
SELECT is((SELECT query FROM shield.policies WHERE scope = 'query+role'
             AND rolname = 'regress_shield_policy_app'),
    'SELECT 1', 'the superuser sees every sample text');

SELECT * FROM finish();
ROLLBACK;
