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
    OUT last_exec pg_catalog.timestamptz
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
    OUT shed pg_catalog.int8,
    OUT deadline_cancels pg_catalog.int8,
    OUT total_exec_ms pg_catalog.float8,
    OUT mean_exec_ms pg_catalog.float8,
    OUT max_exec_ms pg_catalog.float8,
    OUT active pg_catalog.int4,
    OUT waiting pg_catalog.int4,
    OUT peak_active pg_catalog.int4,
    OUT would_reject pg_catalog.int8,
    OUT would_cancel pg_catalog.int8,
    OUT last_exec pg_catalog.timestamptz
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
    OUT fingerprints pg_catalog.int8,
    OUT max_fingerprints pg_catalog.int4,
    OUT evictions pg_catalog.int8,
    OUT roles pg_catalog.int8,
    OUT max_roles pg_catalog.int4,
    OUT role_evictions pg_catalog.int8,
    OUT stats_reset pg_catalog.timestamptz
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
