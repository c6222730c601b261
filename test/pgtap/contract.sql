-- pgTAP: the SQL surface of pg_shield that users' migrations and dashboards
-- depend on.
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

SELECT plan(145);

-- Schema, views, function.
SELECT has_schema('shield', 'schema shield exists');
SELECT has_view('shield', 'role_stats', 'view shield.role_stats exists');
SELECT has_view('shield', 'query_stats', 'view shield.query_stats exists');
SELECT has_view('shield', 'status', 'view shield.status exists');
SELECT has_function('shield', 'reset', '{}'::name[],
    'function shield.reset() exists');
SELECT function_returns('shield', 'reset', '{}'::name[],
    'timestamp with time zone', 'shield.reset() returns timestamptz');
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'pg_shield'),
    false, 'pg_shield is not relocatable');
SELECT is((SELECT n.nspname::text FROM pg_extension e
           JOIN pg_namespace n ON n.oid = e.extnamespace
           WHERE e.extname = 'pg_shield'),
    'shield', 'pg_shield is installed in schema shield');

-- shield.query_stats columns.
SELECT col_type_is('shield', 'query_stats', 'dbid', 'oid', 'query_stats.dbid is oid');
SELECT col_type_is('shield', 'query_stats', 'datname', 'name', 'query_stats.datname is name');
SELECT col_type_is('shield', 'query_stats', 'userid', 'oid', 'query_stats.userid is oid');
SELECT col_type_is('shield', 'query_stats', 'rolname', 'name', 'query_stats.rolname is name');
SELECT col_type_is('shield', 'query_stats', 'queryid', 'bigint', 'query_stats.queryid is bigint');
SELECT col_type_is('shield', 'query_stats', 'query', 'text', 'query_stats.query is text');
SELECT col_type_is('shield', 'query_stats', 'calls', 'bigint', 'query_stats.calls is bigint');
SELECT col_type_is('shield', 'query_stats', 'rows', 'bigint', 'query_stats.rows is bigint');
SELECT col_type_is('shield', 'query_stats', 'errors', 'bigint', 'query_stats.errors is bigint');
SELECT col_type_is('shield', 'query_stats', 'total_exec_ms', 'double precision', 'query_stats.total_exec_ms is double precision');
SELECT col_type_is('shield', 'query_stats', 'mean_exec_ms', 'double precision', 'query_stats.mean_exec_ms is double precision');
SELECT col_type_is('shield', 'query_stats', 'max_exec_ms', 'double precision', 'query_stats.max_exec_ms is double precision');
SELECT col_type_is('shield', 'query_stats', 'p50_exec_ms', 'double precision', 'query_stats.p50_exec_ms is double precision');
SELECT col_type_is('shield', 'query_stats', 'p95_exec_ms', 'double precision', 'query_stats.p95_exec_ms is double precision');
SELECT col_type_is('shield', 'query_stats', 'p99_exec_ms', 'double precision', 'query_stats.p99_exec_ms is double precision');
SELECT col_type_is('shield', 'query_stats', 'mean_cost', 'double precision', 'query_stats.mean_cost is double precision');
SELECT col_type_is('shield', 'query_stats', 'max_cost', 'double precision', 'query_stats.max_cost is double precision');
SELECT col_type_is('shield', 'query_stats', 'queued', 'bigint', 'query_stats.queued is bigint');
SELECT col_type_is('shield', 'query_stats', 'rejected', 'bigint', 'query_stats.rejected is bigint');
SELECT col_type_is('shield', 'query_stats', 'deadline_cancels', 'bigint', 'query_stats.deadline_cancels is bigint');
SELECT col_type_is('shield', 'query_stats', 'breaker_state', 'text', 'query_stats.breaker_state is text');
SELECT col_type_is('shield', 'query_stats', 'last_exec', 'timestamp with time zone', 'query_stats.last_exec is timestamptz');
SELECT col_type_is('shield', 'query_stats', 'exec_bucket_le_ms', 'double precision[]', 'query_stats.exec_bucket_le_ms is double precision[]');
SELECT col_type_is('shield', 'query_stats', 'exec_bucket_calls', 'bigint[]', 'query_stats.exec_bucket_calls is bigint[]');

-- shield.role_stats columns.
SELECT col_type_is('shield', 'role_stats', 'dbid', 'oid', 'role_stats.dbid is oid');
SELECT col_type_is('shield', 'role_stats', 'datname', 'name', 'role_stats.datname is name');
SELECT col_type_is('shield', 'role_stats', 'userid', 'oid', 'role_stats.userid is oid');
SELECT col_type_is('shield', 'role_stats', 'rolname', 'name', 'role_stats.rolname is name');
SELECT col_type_is('shield', 'role_stats', 'calls', 'bigint', 'role_stats.calls is bigint');
SELECT col_type_is('shield', 'role_stats', 'errors', 'bigint', 'role_stats.errors is bigint');
SELECT col_type_is('shield', 'role_stats', 'admitted', 'bigint', 'role_stats.admitted is bigint');
SELECT col_type_is('shield', 'role_stats', 'queued', 'bigint', 'role_stats.queued is bigint');
SELECT col_type_is('shield', 'role_stats', 'queue_ms', 'double precision', 'role_stats.queue_ms is double precision');
SELECT col_type_is('shield', 'role_stats', 'rejected', 'bigint', 'role_stats.rejected is bigint');
SELECT col_type_is('shield', 'role_stats', 'shed', 'bigint', 'role_stats.shed is bigint');
SELECT col_type_is('shield', 'role_stats', 'deadline_cancels', 'bigint', 'role_stats.deadline_cancels is bigint');
SELECT col_type_is('shield', 'role_stats', 'total_exec_ms', 'double precision', 'role_stats.total_exec_ms is double precision');
SELECT col_type_is('shield', 'role_stats', 'active', 'integer', 'role_stats.active is integer');
SELECT col_type_is('shield', 'role_stats', 'waiting', 'integer', 'role_stats.waiting is integer');
SELECT col_type_is('shield', 'role_stats', 'peak_active', 'integer', 'role_stats.peak_active is integer');
SELECT col_type_is('shield', 'role_stats', 'would_reject', 'bigint', 'role_stats.would_reject is bigint');
SELECT col_type_is('shield', 'role_stats', 'would_cancel', 'bigint', 'role_stats.would_cancel is bigint');

-- shield.status columns.
SELECT col_type_is('shield', 'status', 'mode', 'text', 'status.mode is text');
SELECT col_type_is('shield', 'status', 'max_active', 'integer', 'status.max_active is integer');
SELECT col_type_is('shield', 'status', 'active', 'integer', 'status.active is integer');
SELECT col_type_is('shield', 'status', 'queued', 'integer', 'status.queued is integer');
SELECT col_type_is('shield', 'status', 'overloaded', 'boolean', 'status.overloaded is boolean');
SELECT col_type_is('shield', 'status', 'shedding', 'text', 'status.shedding is text');
SELECT col_type_is('shield', 'status', 'queue_delay_ms', 'double precision', 'status.queue_delay_ms is double precision');
SELECT col_type_is('shield', 'status', 'standing_delay_ms', 'double precision', 'status.standing_delay_ms is double precision');
SELECT col_type_is('shield', 'status', 'fingerprints', 'bigint', 'status.fingerprints is bigint');
SELECT col_type_is('shield', 'status', 'evictions', 'bigint', 'status.evictions is bigint');
SELECT col_type_is('shield', 'status', 'stats_reset', 'timestamp with time zone', 'status.stats_reset is timestamptz');

-- shield.activity columns and privileges.
SELECT has_view('shield', 'activity', 'view shield.activity exists');
SELECT col_type_is('shield', 'activity', 'pid', 'integer', 'activity.pid is integer');
SELECT col_type_is('shield', 'activity', 'dbid', 'oid', 'activity.dbid is oid');
SELECT col_type_is('shield', 'activity', 'datname', 'name', 'activity.datname is name');
SELECT col_type_is('shield', 'activity', 'userid', 'oid', 'activity.userid is oid');
SELECT col_type_is('shield', 'activity', 'rolname', 'name', 'activity.rolname is name');
SELECT col_type_is('shield', 'activity', 'queryid', 'bigint', 'activity.queryid is bigint');
SELECT col_type_is('shield', 'activity', 'state', 'text', 'activity.state is text');
SELECT col_type_is('shield', 'activity', 'priority', 'text', 'activity.priority is text');
SELECT col_type_is('shield', 'activity', 'since', 'timestamp with time zone', 'activity.since is timestamptz');
SELECT col_type_is('shield', 'activity', 'deadline_at', 'timestamp with time zone', 'activity.deadline_at is timestamptz');
SELECT ok(has_table_privilege('public', 'shield.activity', 'SELECT'),
    'PUBLIC can SELECT shield.activity');
SELECT col_type_is('shield', 'role_stats', 'would_queue', 'bigint', 'role_stats.would_queue is bigint');
SELECT col_type_is('shield', 'role_stats', 'exec_bucket_le_ms', 'double precision[]', 'role_stats.exec_bucket_le_ms is double precision[]');
SELECT col_type_is('shield', 'role_stats', 'exec_bucket_calls', 'bigint[]', 'role_stats.exec_bucket_calls is bigint[]');

-- What each policy turns away: shield.policy_usage.
SELECT has_view('shield', 'policy_usage', 'view shield.policy_usage exists');
SELECT col_type_is('shield', 'policy_usage', 'id', 'bigint', 'policy_usage.id is bigint');
SELECT col_type_is('shield', 'policy_usage', 'running', 'integer', 'policy_usage.running is integer');
SELECT col_type_is('shield', 'policy_usage', 'waiting', 'integer', 'policy_usage.waiting is integer');
SELECT col_type_is('shield', 'policy_usage', 'tokens', 'double precision', 'policy_usage.tokens is double precision');
SELECT col_type_is('shield', 'policy_usage', 'rejected', 'bigint', 'policy_usage.rejected is bigint');
SELECT col_type_is('shield', 'policy_usage', 'shed', 'bigint', 'policy_usage.shed is bigint');
SELECT col_type_is('shield', 'policy_usage', 'breaker_state', 'text', 'policy_usage.breaker_state is text');
SELECT ok(has_table_privilege('public', 'shield.policy_usage', 'SELECT'),
    'PUBLIC can SELECT shield.policy_usage');

-- Circuit breakers: the view, reset_breaker(), the settings.
SELECT has_view('shield', 'breakers', 'view shield.breakers exists');
SELECT col_type_is('shield', 'breakers', 'dbid', 'oid', 'breakers.dbid is oid');
SELECT col_type_is('shield', 'breakers', 'datname', 'name', 'breakers.datname is name');
SELECT col_type_is('shield', 'breakers', 'queryid', 'bigint', 'breakers.queryid is bigint');
SELECT col_type_is('shield', 'breakers', 'state', 'text', 'breakers.state is text');
SELECT col_type_is('shield', 'breakers', 'failures', 'integer', 'breakers.failures is integer');
SELECT col_type_is('shield', 'breakers', 'breaker_failures', 'integer', 'breakers.breaker_failures is integer');
SELECT col_type_is('shield', 'breakers', 'opened_at', 'timestamp with time zone', 'breakers.opened_at is timestamptz');
SELECT col_type_is('shield', 'breakers', 'cooldown_ms', 'double precision', 'breakers.cooldown_ms is double precision');
SELECT col_type_is('shield', 'breakers', 'probe_at', 'timestamp with time zone', 'breakers.probe_at is timestamptz');
SELECT col_type_is('shield', 'breakers', 'probe_pid', 'integer', 'breakers.probe_pid is integer');
SELECT col_type_is('shield', 'breakers', 'trips', 'bigint', 'breakers.trips is bigint');
SELECT ok(has_table_privilege('public', 'shield.breakers', 'SELECT'),
    'PUBLIC can SELECT shield.breakers');
SELECT has_function('shield', 'reset_breaker', '{bigint}'::name[],
    'function shield.reset_breaker(bigint) exists');
SELECT function_returns('shield', 'reset_breaker', '{bigint}'::name[],
    'boolean', 'shield.reset_breaker(bigint) returns boolean');
SELECT function_privs_are('shield', 'reset_breaker', '{bigint}'::name[],
    'public', '{}'::text[], 'PUBLIC cannot execute shield.reset_breaker()');
SELECT is((SELECT context || '/' || boot_val FROM pg_settings WHERE name = 'pg_shield.breaker_failures'),
    'sighup/0', 'pg_shield.breaker_failures is reloadable, 0 (off) by default');
SELECT is((SELECT context || '/' || unit || '/' || boot_val FROM pg_settings
           WHERE name = 'pg_shield.breaker_cooldown'),
    'sighup/ms/30000', 'pg_shield.breaker_cooldown is reloadable, in milliseconds, 30 s by default');
SELECT ok((SELECT bool_and(breaker_state IN ('closed', 'open', 'half_open')) IS NOT FALSE
           FROM shield.query_stats),
    'query_stats.breaker_state is closed, open or half_open');

-- Admission settings: their contexts are part of the interface.
SELECT is((SELECT context FROM pg_settings WHERE name = 'pg_shield.max_active'),
    'sighup', 'pg_shield.max_active is reloadable (SIGHUP)');
SELECT is((SELECT context FROM pg_settings WHERE name = 'pg_shield.max_queue'),
    'sighup', 'pg_shield.max_queue is reloadable (SIGHUP)');
SELECT is((SELECT context || '/' || unit FROM pg_settings WHERE name = 'pg_shield.queue_timeout'),
    'superuser/ms', 'pg_shield.queue_timeout is SUSET, in milliseconds');
SELECT is((SELECT context || '/' || vartype FROM pg_settings WHERE name = 'pg_shield.exempt_superuser'),
    'superuser/bool', 'pg_shield.exempt_superuser is a SUSET boolean');
SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'pg_shield.max_active'),
    '0', 'pg_shield.max_active defaults to 0 (unlimited)');
SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'pg_shield.exempt_superuser'),
    'on', 'pg_shield.exempt_superuser defaults to on');

-- Values the reference enumerates.
SELECT is((SELECT count(*) FROM shield.status), 1::bigint,
    'shield.status has exactly one row');
SELECT is((SELECT mode FROM shield.status), current_setting('pg_shield.mode'),
    'status.mode is pg_shield.mode');
SELECT ok((SELECT shedding IN ('none', 'low', 'normal') FROM shield.status),
    'status.shedding is none, low or normal');
SELECT ok((SELECT stats_reset <= clock_timestamp() FROM shield.status),
    'status.stats_reset is not in the future');
SELECT is_empty($$SELECT 1 FROM shield.query_stats
                  WHERE breaker_state NOT IN ('closed', 'open', 'half_open')$$,
    'query_stats.breaker_state is closed, open or half_open');
SELECT ok(EXISTS (SELECT 1 FROM shield.role_stats
                  WHERE rolname = current_user AND datname = current_database()
                    AND calls > 0),
    'role_stats counts the statements of this session');

-- Privileges of PUBLIC.
SELECT ok((SELECT proacl IS NOT NULL FROM pg_proc
           WHERE oid = 'shield.reset()'::regprocedure),
    'shield.reset() has an explicit ACL, not the default PUBLIC EXECUTE');
SELECT is_empty($$SELECT 1 FROM pg_proc p, aclexplode(p.proacl) a
                  WHERE p.oid = 'shield.reset()'::regprocedure
                    AND a.grantee = 0$$,
    'PUBLIC has no privilege on shield.reset()');
SELECT ok(NOT has_function_privilege('public', 'shield.reset()', 'EXECUTE'),
    'PUBLIC cannot execute shield.reset()');
SELECT ok(has_schema_privilege('public', 'shield', 'USAGE'),
    'PUBLIC has USAGE on schema shield');
SELECT ok(has_table_privilege('public', 'shield.role_stats', 'SELECT'),
    'PUBLIC can SELECT shield.role_stats');
SELECT ok(has_table_privilege('public', 'shield.query_stats', 'SELECT'),
    'PUBLIC can SELECT shield.query_stats');
SELECT ok(has_table_privilege('public', 'shield.status', 'SELECT'),
    'PUBLIC can SELECT shield.status');

-- Roles for the rest, dropped by the final ROLLBACK.
CREATE ROLE regress_shield_nobody;
CREATE ROLE regress_shield_resetter;
CREATE ROLE regress_shield_reader IN ROLE pg_read_all_stats;
GRANT EXECUTE ON FUNCTION shield.reset() TO regress_shield_resetter;

SELECT ok(NOT has_function_privilege('regress_shield_nobody', 'shield.reset()', 'EXECUTE'),
    'a fresh role has no EXECUTE on shield.reset()');
SELECT function_privs_are('shield', 'reset', '{}'::name[],
    'regress_shield_nobody', '{}'::text[],
    'a fresh role has no privilege on shield.reset()');
SELECT function_privs_are('shield', 'reset', '{}'::name[],
    'regress_shield_resetter', '{EXECUTE}'::text[],
    'a granted role has EXECUTE on shield.reset()');
SELECT table_privs_are('shield', 'role_stats', 'regress_shield_nobody',
    '{SELECT}'::text[], 'a fresh role can only SELECT shield.role_stats');
SELECT table_privs_are('shield', 'query_stats', 'regress_shield_nobody',
    '{SELECT}'::text[], 'a fresh role can only SELECT shield.query_stats');
SELECT table_privs_are('shield', 'status', 'regress_shield_nobody',
    '{SELECT}'::text[], 'a fresh role can only SELECT shield.status');

-- A fresh, unprivileged role: reads the views, cannot reset.
SET ROLE regress_shield_nobody;
SELECT is(current_user::text, 'regress_shield_nobody', 'running as regress_shield_nobody');
SELECT throws_ok('SELECT shield.reset()', '42501', NULL,
    'an unprivileged role cannot call shield.reset()');
SELECT lives_ok('SELECT * FROM shield.role_stats',
    'an unprivileged role can read shield.role_stats');
SELECT lives_ok('SELECT * FROM shield.query_stats',
    'an unprivileged role can read shield.query_stats');
SELECT lives_ok('SELECT * FROM shield.status',
    'an unprivileged role can read shield.status');
SELECT is((SELECT count(*) FROM shield.status), 1::bigint,
    'an unprivileged role sees the status row');
-- Other roles' rows are listed, but not their fingerprints or text.
SELECT ok(EXISTS (SELECT 1 FROM shield.query_stats WHERE rolname = 'postgres'),
    'an unprivileged role sees the rows of other roles');
SELECT is_empty($$SELECT 1 FROM shield.query_stats
                  WHERE userid <> 'regress_shield_nobody'::regrole
                    AND (queryid IS NOT NULL
                         OR query IS DISTINCT FROM '<insufficient privilege>')$$,
    'an unprivileged role sees no fingerprint or text of other roles');
-- Its own statements are visible to it (this is one).
SELECT ok(EXISTS (SELECT 1 FROM shield.query_stats
                  WHERE userid = 'regress_shield_nobody'::regrole
                    AND queryid IS NOT NULL AND query LIKE '%shield.status%'),
    'an unprivileged role sees the fingerprints and text of its own statements');
RESET ROLE;

-- A member of pg_read_all_stats sees every fingerprint and text.
SET ROLE regress_shield_reader;
SELECT is_empty($$SELECT 1 FROM shield.query_stats
                  WHERE queryid IS NULL OR query = '<insufficient privilege>'$$,
    'a member of pg_read_all_stats sees every fingerprint and text');
SELECT throws_ok('SELECT shield.reset()', '42501', NULL,
    'pg_read_all_stats alone does not allow shield.reset()');
RESET ROLE;

-- A role granted EXECUTE on shield.reset() needs nothing else.
SET ROLE regress_shield_resetter;
SELECT lives_ok('SELECT shield.reset()',
    'a role granted EXECUTE can call shield.reset()');
SELECT ok(shield.reset() BETWEEN now() AND clock_timestamp(),
    'shield.reset() returns the reset time');
RESET ROLE;
SELECT ok((SELECT stats_reset BETWEEN now() AND clock_timestamp() FROM shield.status),
    'status.stats_reset shows the reset');
SELECT is((SELECT evictions FROM shield.status), 0::bigint,
    'shield.reset() clears the eviction counter');
SELECT is_empty($$SELECT 1 FROM shield.query_stats
                  WHERE rolname IN ('regress_shield_nobody', 'regress_shield_reader')$$,
    'shield.reset() forgets the statistics of every role');

SELECT * FROM finish();
ROLLBACK;
