/* pg_shield--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pg_shield" to load this file. \quit

-- Every object is schema-qualified; types and functions come from pg_catalog.

GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

-- Statistics per (database, role, fingerprint)
CREATE FUNCTION @extschema@.query_stats(
    OUT dbid pg_catalog.oid,
    OUT datname pg_catalog.name,
    OUT userid pg_catalog.oid,
    OUT rolname pg_catalog.name,
    OUT queryid pg_catalog.int8,
    OUT query pg_catalog.text,
    OUT calls pg_catalog.int8,
    OUT rows pg_catalog.int8,
    OUT errors pg_catalog.int8,
    OUT total_exec_ms pg_catalog.float8,
    OUT mean_exec_ms pg_catalog.float8,
    OUT min_exec_ms pg_catalog.float8,
    OUT max_exec_ms pg_catalog.float8,
    OUT p50_exec_ms pg_catalog.float8,
    OUT p95_exec_ms pg_catalog.float8,
    OUT p99_exec_ms pg_catalog.float8,
    OUT plans pg_catalog.int8,
    OUT total_plan_ms pg_catalog.float8,
    OUT mean_cost pg_catalog.float8,
    OUT max_cost pg_catalog.float8,
    OUT admitted pg_catalog.int8,
    OUT queued pg_catalog.int8,
    OUT queue_ms pg_catalog.float8,
    OUT rejected pg_catalog.int8,
    OUT shed pg_catalog.int8,
    OUT deadline_cancels pg_catalog.int8,
    OUT would_reject pg_catalog.int8,
    OUT would_cancel pg_catalog.int8,
    OUT breaker_state pg_catalog.text,
    OUT last_exec pg_catalog.timestamptz,
    OUT exec_bucket_le_ms pg_catalog.float8[],
    OUT exec_bucket_calls pg_catalog.int8[]
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_shield_query_stats'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW @extschema@.query_stats AS
    SELECT * FROM @extschema@.query_stats();

-- Statistics per (database, role)
CREATE FUNCTION @extschema@.role_stats(
    OUT dbid pg_catalog.oid,
    OUT datname pg_catalog.name,
    OUT userid pg_catalog.oid,
    OUT rolname pg_catalog.name,
    OUT calls pg_catalog.int8,
    OUT errors pg_catalog.int8,
    OUT rows pg_catalog.int8,
    OUT admitted pg_catalog.int8,
    OUT queued pg_catalog.int8,
    OUT queue_ms pg_catalog.float8,
    OUT rejected pg_catalog.int8,
    OUT rejected_queue_full pg_catalog.int8,
    OUT rejected_queue_timeout pg_catalog.int8,
    OUT rejected_cost pg_catalog.int8,
    OUT rejected_rate pg_catalog.int8,
    OUT rejected_breaker pg_catalog.int8,
    OUT rejected_deadlock pg_catalog.int8,
    OUT shed pg_catalog.int8,
    OUT deadline_cancels pg_catalog.int8,
    OUT total_exec_ms pg_catalog.float8,
    OUT mean_exec_ms pg_catalog.float8,
    OUT max_exec_ms pg_catalog.float8,
    OUT active pg_catalog.int4,
    OUT waiting pg_catalog.int4,
    OUT peak_active pg_catalog.int4,
    OUT would_reject pg_catalog.int8,
    OUT would_queue pg_catalog.int8,
    OUT would_cancel pg_catalog.int8,
    OUT last_exec pg_catalog.timestamptz,
    OUT exec_bucket_le_ms pg_catalog.float8[],
    OUT exec_bucket_calls pg_catalog.int8[]
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_shield_role_stats'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW @extschema@.role_stats AS
    SELECT * FROM @extschema@.role_stats();

-- One row of instance-wide state
CREATE FUNCTION @extschema@.status(
    OUT mode pg_catalog.text,
    OUT max_active pg_catalog.int4,
    OUT active pg_catalog.int4,
    OUT queued pg_catalog.int4,
    OUT overloaded pg_catalog.bool,
    OUT shedding pg_catalog.text,
    OUT queue_delay_ms pg_catalog.float8,
    OUT standing_delay_ms pg_catalog.float8,
    OUT fingerprints pg_catalog.int8,
    OUT max_fingerprints pg_catalog.int4,
    OUT evictions pg_catalog.int8,
    OUT roles pg_catalog.int8,
    OUT max_roles pg_catalog.int4,
    OUT role_evictions pg_catalog.int8,
    OUT stats_reset pg_catalog.timestamptz,
    OUT events pg_catalog.int8,
    OUT log_suppressed pg_catalog.int8
)
RETURNS record
AS 'MODULE_PATHNAME', 'pg_shield_status'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW @extschema@.status AS
    SELECT * FROM @extschema@.status();

-- Forget all statistics; returns the new reset time
CREATE FUNCTION @extschema@.reset()
RETURNS pg_catalog.timestamptz
AS 'MODULE_PATHNAME', 'pg_shield_reset'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

REVOKE ALL ON FUNCTION @extschema@.reset() FROM PUBLIC;

GRANT SELECT ON @extschema@.query_stats TO PUBLIC;
GRANT SELECT ON @extschema@.role_stats TO PUBLIC;
GRANT SELECT ON @extschema@.status TO PUBLIC;

-- One row per governed statement now admitted (running) or waiting in the
-- admission queue (queued)
CREATE FUNCTION @extschema@.activity(
    OUT pid pg_catalog.int4,
    OUT dbid pg_catalog.oid,
    OUT datname pg_catalog.name,
    OUT userid pg_catalog.oid,
    OUT rolname pg_catalog.name,
    OUT queryid pg_catalog.int8,
    OUT state pg_catalog.text,
    OUT priority pg_catalog.text,
    OUT since pg_catalog.timestamptz,
    OUT deadline_at pg_catalog.timestamptz
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_shield_activity'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW @extschema@.activity AS
    SELECT * FROM @extschema@.activity();

GRANT SELECT ON @extschema@.activity TO PUBLIC;

-- Circuit breakers with something to remember: a failure count, or open or
-- half open (closed ones without failures have no row).  Fingerprints are
-- shown to superusers and members of pg_read_all_stats.
CREATE FUNCTION @extschema@.breakers(
    OUT dbid pg_catalog.oid,
    OUT datname pg_catalog.name,
    OUT queryid pg_catalog.int8,
    OUT state pg_catalog.text,
    OUT failures pg_catalog.int4,
    OUT breaker_failures pg_catalog.int4,
    OUT opened_at pg_catalog.timestamptz,
    OUT cooldown_ms pg_catalog.float8,
    OUT probe_at pg_catalog.timestamptz,
    OUT probe_pid pg_catalog.int4,
    OUT trips pg_catalog.int8
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_shield_breakers'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW @extschema@.breakers AS
    SELECT * FROM @extschema@.breakers();

GRANT SELECT ON @extschema@.breakers TO PUBLIC;

-- Close a fingerprint's circuit breaker by hand; true if it had anything to
-- forget
CREATE FUNCTION @extschema@.reset_breaker(queryid pg_catalog.int8)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pg_shield_reset_breaker'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION @extschema@.reset_breaker(pg_catalog.int8) FROM PUBLIC;

-- Policies
--
-- One row per scope: a role policy (role set, queryid NULL), a query
-- policy for every role (queryid set, role NULL) or for one role (both
-- set).  Roles are stored by name, so that a restore binds them by name
-- on another cluster, and one that lacks a role keeps its policies.  The CHECK
-- constraints hold even for the owner's direct writes; the set_* functions
-- validate first, with clearer errors.
CREATE TABLE @extschema@.policy (
    id pg_catalog.int8 GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    -- the role by name, as pg_dump names roles: a restore into a cluster
    -- that lacks the role keeps the policy (inactive until the role
    -- exists) and restores the others; a regrole would fail the whole COPY
    role pg_catalog.name,
    queryid pg_catalog.int8,
    query pg_catalog.text,
    search_path pg_catalog.text,
    max_concurrent pg_catalog.int4
        CHECK (max_concurrent > 0),
    queue_timeout pg_catalog.interval
        CHECK (queue_timeout >= '0'
               AND queue_timeout <= '2147483647 milliseconds'
               AND pg_catalog.date_part('month', queue_timeout) = 0
               AND pg_catalog.date_part('year', queue_timeout) = 0
               AND pg_catalog.date_part('day', queue_timeout) >= 0
               AND queue_timeout - pg_catalog.make_interval(days => pg_catalog.date_part('day', queue_timeout)::pg_catalog.int4) >= '0'),
    max_cost pg_catalog.float8
        CHECK (max_cost > 0 AND max_cost < 'Infinity'),
    deadline pg_catalog.interval
        CHECK (deadline > '0'
               AND deadline <= '2147483647 milliseconds'
               AND pg_catalog.date_part('month', deadline) = 0
               AND pg_catalog.date_part('year', deadline) = 0
               AND pg_catalog.date_part('day', deadline) >= 0
               AND deadline - pg_catalog.make_interval(days => pg_catalog.date_part('day', deadline)::pg_catalog.int4) >= '0'),
    max_rate pg_catalog.float8
        CHECK (max_rate > 0 AND max_rate < 'Infinity'),
    priority pg_catalog.text NOT NULL DEFAULT 'normal'
        CHECK (priority IN ('critical', 'normal', 'low')),
    breaker_failures pg_catalog.int4
        CHECK (breaker_failures > 0),
    breaker_cooldown pg_catalog.interval
        CHECK (breaker_cooldown > '0'
               AND breaker_cooldown <= '2147483647 milliseconds'
               AND pg_catalog.date_part('month', breaker_cooldown) = 0
               AND pg_catalog.date_part('year', breaker_cooldown) = 0
               AND pg_catalog.date_part('day', breaker_cooldown) >= 0
               AND breaker_cooldown - pg_catalog.make_interval(days => pg_catalog.date_part('day', breaker_cooldown)::pg_catalog.int4) >= '0'),
    mode pg_catalog.text NOT NULL DEFAULT 'enforce'
        CHECK (mode IN ('enforce', 'monitor')),
    -- the major version of PostgreSQL whose query identifier queryid is:
    -- identifiers change between major versions, so after pg_upgrade a
    -- query policy of an older version matches nothing until
    -- shield.rebind_query_policies() recomputes it (NULL: taken as current)
    fingerprint_version pg_catalog.int4
        CHECK (fingerprint_version IS NULL OR queryid IS NOT NULL),
    -- parallel workers a statement may plan with (0: none; NULL: no cap)
    max_parallel_workers pg_catalog.int4
        CHECK (max_parallel_workers >= 0),
    -- the shape of the sample text (shield.shape()): a query policy also
    -- matches statements that differ from it only in constants, parameters
    -- and IN lists (NULL: declared by fingerprint, matches that one only)
    shape pg_catalog.int8
        CHECK (shape IS NULL OR queryid IS NOT NULL),
    -- why the sample text no longer gives a fingerprint (a table it names
    -- was dropped), as the last rebind found it; NULL: bound
    bind_error pg_catalog.text
        CHECK (bind_error IS NULL OR query IS NOT NULL),
    CONSTRAINT policy_has_scope CHECK (role IS NOT NULL OR queryid IS NOT NULL),
    CONSTRAINT policy_breaker_needs_query
        CHECK (queryid IS NOT NULL OR (breaker_failures IS NULL AND breaker_cooldown IS NULL)),
    CONSTRAINT policy_query_needs_text CHECK (query IS NULL OR queryid IS NOT NULL),
    CONSTRAINT policy_scope_unique UNIQUE NULLS NOT DISTINCT (role, queryid)
);

-- Every policy is dumped, by its role's name, also one whose role is
-- missing: it applies again once a role of that name exists.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.policy', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.policy_id_seq', '');

-- Committed changes reach every backend's next statement (and standbys',
-- through WAL replay) as a relcache invalidation of this table.
CREATE FUNCTION @extschema@.policy_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'pg_shield_policy_changed'
LANGUAGE C;

CREATE TRIGGER policy_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.policy
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.policy_changed();

CREATE FUNCTION @extschema@.fingerprint(query pg_catalog.text)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pg_shield_fingerprint'
LANGUAGE C VOLATILE;

-- The key a query policy declared with this text matches besides its
-- fingerprint: constants and parameters alike
CREATE FUNCTION @extschema@.shape(query pg_catalog.text)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pg_shield_shape'
LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.set_role_policy(
    role pg_catalog.regrole,
    max_concurrent pg_catalog.int4 DEFAULT NULL,
    queue_timeout pg_catalog.interval DEFAULT NULL,
    max_cost pg_catalog.float8 DEFAULT NULL,
    deadline pg_catalog.interval DEFAULT NULL,
    max_rate pg_catalog.float8 DEFAULT NULL,
    priority pg_catalog.text DEFAULT 'normal',
    mode pg_catalog.text DEFAULT 'enforce',
    max_parallel_workers pg_catalog.int4 DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'pg_shield_set_role_policy'
LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.set_query_policy(
    query pg_catalog.text,
    role pg_catalog.regrole DEFAULT NULL,
    max_concurrent pg_catalog.int4 DEFAULT NULL,
    queue_timeout pg_catalog.interval DEFAULT NULL,
    max_cost pg_catalog.float8 DEFAULT NULL,
    deadline pg_catalog.interval DEFAULT NULL,
    max_rate pg_catalog.float8 DEFAULT NULL,
    priority pg_catalog.text DEFAULT 'normal',
    breaker_failures pg_catalog.int4 DEFAULT NULL,
    breaker_cooldown pg_catalog.interval DEFAULT NULL,
    mode pg_catalog.text DEFAULT 'enforce',
    max_parallel_workers pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pg_shield_set_query_policy_text'
LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.set_query_policy(
    queryid pg_catalog.int8,
    role pg_catalog.regrole DEFAULT NULL,
    max_concurrent pg_catalog.int4 DEFAULT NULL,
    queue_timeout pg_catalog.interval DEFAULT NULL,
    max_cost pg_catalog.float8 DEFAULT NULL,
    deadline pg_catalog.interval DEFAULT NULL,
    max_rate pg_catalog.float8 DEFAULT NULL,
    priority pg_catalog.text DEFAULT 'normal',
    breaker_failures pg_catalog.int4 DEFAULT NULL,
    breaker_cooldown pg_catalog.interval DEFAULT NULL,
    mode pg_catalog.text DEFAULT 'enforce',
    max_parallel_workers pg_catalog.int4 DEFAULT NULL)
RETURNS pg_catalog.int8
AS 'MODULE_PATHNAME', 'pg_shield_set_query_policy_id'
LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.drop_role_policy(role pg_catalog.regrole)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pg_shield_drop_role_policy'
LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.drop_query_policy(
    queryid pg_catalog.int8,
    role pg_catalog.regrole DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'pg_shield_drop_query_policy'
LANGUAGE C VOLATILE;

CREATE FUNCTION @extschema@.rebind_query_policies()
RETURNS pg_catalog.int4
AS 'MODULE_PATHNAME', 'pg_shield_rebind_query_policies'
LANGUAGE C VOLATILE;

-- DDL that drops and re-creates what a query policy's sample text names
-- moves its fingerprint: the end of every DDL statement rebinds the query
-- policies whose fingerprints moved (a restore's indexes and constraints
-- included), and marks those whose text no longer analyzes.
CREATE FUNCTION @extschema@.rebind_after_ddl()
RETURNS pg_catalog.event_trigger
AS 'MODULE_PATHNAME', 'pg_shield_rebind_after_ddl'
LANGUAGE C;

CREATE EVENT TRIGGER shield_rebind_query_policies ON ddl_command_end
    EXECUTE FUNCTION @extschema@.rebind_after_ddl();

REVOKE ALL ON FUNCTION @extschema@.set_role_policy(pg_catalog.regrole, pg_catalog.int4,
    pg_catalog.interval, pg_catalog.float8, pg_catalog.interval, pg_catalog.float8,
    pg_catalog.text, pg_catalog.text, pg_catalog.int4) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.set_query_policy(pg_catalog.text, pg_catalog.regrole,
    pg_catalog.int4, pg_catalog.interval, pg_catalog.float8, pg_catalog.interval,
    pg_catalog.float8, pg_catalog.text, pg_catalog.int4, pg_catalog.interval,
    pg_catalog.text, pg_catalog.int4) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.set_query_policy(pg_catalog.int8, pg_catalog.regrole,
    pg_catalog.int4, pg_catalog.interval, pg_catalog.float8, pg_catalog.interval,
    pg_catalog.float8, pg_catalog.text, pg_catalog.int4, pg_catalog.interval,
    pg_catalog.text, pg_catalog.int4) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.drop_role_policy(pg_catalog.regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.drop_query_policy(pg_catalog.int8, pg_catalog.regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.rebind_query_policies() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.policy_changed() FROM PUBLIC;

-- The stored policies, readable by every role; fingerprints and sample
-- text of query policies are shown as shield.query_stats shows them: to
-- superusers, members of pg_read_all_stats and the policy's own role.
-- stale: a query policy whose fingerprint another major version of
-- PostgreSQL computed; it is not enforced until rebound.
CREATE VIEW @extschema@.policies AS
    SELECT p.id,
           d.oid AS dbid,
           d.datname,
           r.oid AS userid,
           p.role AS rolname,
           CASE WHEN p.queryid IS NULL THEN 'role'
                WHEN p.role IS NULL THEN 'query'
                ELSE 'query+role' END AS scope,
           CASE WHEN v.visible THEN p.queryid END AS queryid,
           CASE WHEN v.visible THEN p.shape END AS shape,
           CASE WHEN p.query IS NULL THEN NULL
                WHEN v.visible THEN p.query
                ELSE '<insufficient privilege>' END AS query,
           p.max_concurrent, p.queue_timeout, p.max_cost, p.deadline,
           p.max_rate, p.priority, p.breaker_failures, p.breaker_cooldown,
           p.max_parallel_workers, p.mode,
           p.fingerprint_version,
           COALESCE(p.fingerprint_version OPERATOR(pg_catalog.<>)
                    (pg_catalog.current_setting('server_version_num')::pg_catalog.int4
                     OPERATOR(pg_catalog./) 10000), false)
               OR p.bind_error IS NOT NULL AS stale,
           p.role IS NOT NULL AND r.oid IS NULL AS role_missing,
           CASE WHEN v.visible THEN p.bind_error END AS bind_error
    FROM @extschema@.policy p
    CROSS JOIN pg_catalog.pg_database d
    LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) p.role
    CROSS JOIN LATERAL (
        SELECT p.queryid IS NULL
            OR pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')
            OR (r.oid IS NOT NULL AND pg_catalog.pg_has_role(r.oid, 'USAGE'))
            -- a role that may change policies may read them
            OR EXISTS (SELECT FROM pg_catalog.pg_proc f
                       WHERE f.pronamespace OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
                         AND f.proname OPERATOR(pg_catalog.=) ANY (ARRAY['set_query_policy', 'drop_query_policy']::pg_catalog.name[])
                         AND pg_catalog.has_function_privilege(f.oid, 'EXECUTE'))
            AS visible) v
    WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database();

GRANT SELECT ON @extschema@.policies TO PUBLIC;

-- The admission scopes of this database, with what runs and waits in them
-- and their rate buckets, behind shield.policy_usage.
CREATE FUNCTION @extschema@.scope_usage(
    OUT userid pg_catalog.oid,
    OUT queryid pg_catalog.int8,
    OUT running pg_catalog.int4,
    OUT waiting pg_catalog.int4,
    OUT tokens pg_catalog.float8
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_shield_scope_usage'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

-- Every policy of this database with how close it is to its limits now,
-- what it turned away since the last reset and its breaker: the first
-- view to open when asking what is being turned away, and why.
CREATE VIEW @extschema@.policy_usage AS
    SELECT p.id, p.dbid, p.datname, p.userid, p.rolname, p.scope, p.queryid,
           p.mode, p.priority,
           p.max_concurrent,
           COALESCE(u.running, 0) AS running,
           COALESCE(u.waiting, 0) AS waiting,
           p.max_rate,
           CASE WHEN p.max_rate IS NOT NULL
                THEN COALESCE(u.tokens, GREATEST(1::pg_catalog.float8, p.max_rate))
           END AS tokens,
           COALESCE(rs.rejected, qa.rejected, qr.rejected, 0) AS rejected,
           COALESCE(rs.shed, qa.shed, qr.shed, 0) AS shed,
           CASE WHEN p.scope OPERATOR(pg_catalog.<>) 'role' THEN
                COALESCE(b.state,
                         CASE WHEN COALESCE(p.breaker_failures,
                                            pg_catalog.current_setting('pg_shield.breaker_failures')::pg_catalog.int4)
                                   OPERATOR(pg_catalog.>) 0
                              THEN 'closed' END)
           END AS breaker_state
    FROM @extschema@.policies p
    LEFT JOIN @extschema@.scope_usage() u
           ON u.userid IS NOT DISTINCT FROM p.userid
          AND u.queryid IS NOT DISTINCT FROM p.queryid
          AND (p.scope OPERATOR(pg_catalog.=) 'role') OPERATOR(pg_catalog.=) (u.queryid IS NULL)
    LEFT JOIN (SELECT s.userid, s.rejected, s.shed
               FROM @extschema@.role_stats s
               WHERE s.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) rs
           ON p.scope OPERATOR(pg_catalog.=) 'role'
          AND rs.userid OPERATOR(pg_catalog.=) p.userid
    LEFT JOIN (SELECT s.queryid, pg_catalog.sum(s.rejected)::pg_catalog.int8 AS rejected,
                      pg_catalog.sum(s.shed)::pg_catalog.int8 AS shed
               FROM @extschema@.query_stats s
               WHERE s.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
               GROUP BY s.queryid) qa
           ON p.scope OPERATOR(pg_catalog.=) 'query'
          AND qa.queryid OPERATOR(pg_catalog.=) p.queryid
    LEFT JOIN (SELECT s.queryid, s.userid,
                      pg_catalog.sum(s.rejected)::pg_catalog.int8 AS rejected,
                      pg_catalog.sum(s.shed)::pg_catalog.int8 AS shed
               FROM @extschema@.query_stats s
               WHERE s.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
               GROUP BY s.queryid, s.userid) qr
           ON p.scope OPERATOR(pg_catalog.=) 'query+role'
          AND qr.queryid OPERATOR(pg_catalog.=) p.queryid
          AND qr.userid OPERATOR(pg_catalog.=) p.userid
    LEFT JOIN @extschema@.breakers b
           ON b.dbid OPERATOR(pg_catalog.=) p.dbid
          AND b.queryid OPERATOR(pg_catalog.=) p.queryid;

GRANT SELECT ON @extschema@.policy_usage TO PUBLIC;

-- The merged limits that would apply to a statement, and where each comes
-- from: the DBA's answer to "why was this rejected?"
CREATE FUNCTION @extschema@.effective_policy(
    query pg_catalog.text,
    role pg_catalog.regrole DEFAULT CURRENT_USER::pg_catalog.regrole,
    OUT queryid pg_catalog.int8,
    OUT limit_name pg_catalog.text,
    OUT value pg_catalog.text,
    OUT policy_id pg_catalog.int8,
    OUT scope pg_catalog.text,
    OUT mode pg_catalog.text,
    OUT matched_by pg_catalog.text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_shield_effective_policy'
LANGUAGE C VOLATILE;

-- The most recent actions (bounded ring, pg_shield.max_events)
CREATE FUNCTION @extschema@.events(
    OUT at pg_catalog.timestamptz,
    OUT pid pg_catalog.int4,
    OUT dbid pg_catalog.oid,
    OUT datname pg_catalog.name,
    OUT userid pg_catalog.oid,
    OUT rolname pg_catalog.name,
    OUT queryid pg_catalog.int8,
    OUT action pg_catalog.text,
    OUT enforced pg_catalog.bool,
    OUT detail pg_catalog.text
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_shield_events'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW @extschema@.events AS
    SELECT * FROM @extschema@.events();

GRANT SELECT ON @extschema@.events TO PUBLIC;

-- Without the library preloaded nothing is governed or accounted, and every
-- view and function fails with SQLSTATE 55000: say so now, not at the first
-- call.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_catalog.unnest(pg_catalog.string_to_array(
                 pg_catalog.current_setting('shared_preload_libraries'), ',')) AS l(name)
        WHERE pg_catalog.btrim(l.name, ' "') OPERATOR(pg_catalog.=) ANY (ARRAY['pg_shield', '$libdir/pg_shield']))
    THEN
        RAISE WARNING 'pg_shield is not loaded via "shared_preload_libraries"'
            USING DETAIL = 'Until it is, no statement is governed or accounted, and its views and functions fail with SQLSTATE 55000.',
                  HINT = 'Add pg_shield to the shared_preload_libraries configuration parameter and restart the server.';
    END IF;
END
$$;
