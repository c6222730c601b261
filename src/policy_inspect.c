/*-------------------------------------------------------------------------
 *
 * policy_inspect.c
 *		Read-only SQL functions that show what the server does with a
 *		statement: shield.fingerprint, shield.shape and
 *		shield.effective_policy.
 *
 * They answer with what admission itself uses, so that "why was this
 * rejected?" gets the server's answer: the fingerprint and the shape come
 * from parsing and analyzing the text as execution does, in the caller's
 * database, search_path and privileges, and the effective policy from the
 * same cache and resolution (policy.c).  The same fingerprinting
 * (pgsh_policy_fingerprint_sql) declares and rebinds query policies, and
 * the warning about stale policies follows every declaration, so both are
 * shared with policy_funcs.c and policy_rebind.c through policy_int.h.
 * Nothing here writes to the database.
 *
 * Owns: the functions above, and the fingerprinting and stale warning
 *		  that policy_int.h shares.
 * Calls: policy.c (resolution, stale count), shape.c
 *		  (pgsh_shape_compute), shmem.c (pgsh_check_loaded).
 * Locking: no shared state; it reads the backend-local policy cache.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/policy_inspect.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "tcop/cmdtag.h"
#include "tcop/utility.h"
#include "utils/builtins.h"

#include "compat.h"
#include "errors.h"
#include "guc.h"
#include "policy.h"
#include "policy_int.h"
#include "shape.h"
#include "shmem.h"

/*----
 * Fingerprints
 *----
 */

/*
 * Report errors in the sample text against the text itself, not against
 * the calling statement, as SPI does for the queries it runs.
 */
static void
fingerprint_error_callback(void *arg)
{
	const char *sql = (const char *) arg;
	int			position = geterrposition();

	if (position > 0)
	{
		errposition(0);
		internalerrposition(position);
		internalerrquery(sql);
	}
	else
		errcontext("fingerprinting query \"%s\"", sql);
}

/*
 * The fingerprint a statement gets when it runs here: parse and analyze it
 * exactly as execution does, in the current database and search_path, with
 * $n parameters of inferred types.  Errors of the parser keep their own
 * SQLSTATE.  If shape is not NULL, the statement's shape (see shape.c) is
 * computed from the same analyzed query.
 */
int64
pgsh_policy_fingerprint_sql(const char *sql, int64 *shape)
{
	List	   *parsetree;
	RawStmt    *raw;
	Query	   *query;
	Oid		   *param_types = NULL;
	int			num_params = 0;
	ErrorContextCallback errcallback;

	errcallback.callback = fingerprint_error_callback;
	errcallback.arg = unconstify(char *, sql);
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	parsetree = raw_parser(sql, RAW_PARSE_DEFAULT);
	if (list_length(parsetree) != 1)
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("argument \"query\" must contain exactly one statement"),
				 errdetail("It contains %d statements.", list_length(parsetree))));

	raw = linitial_node(RawStmt, parsetree);
	if (IsA(raw->stmt, SelectStmt) ||
		IsA(raw->stmt, InsertStmt) ||
		IsA(raw->stmt, UpdateStmt) ||
		IsA(raw->stmt, DeleteStmt) ||
		IsA(raw->stmt, MergeStmt))
		query = parse_analyze_varparams(raw, sql, &param_types, &num_params,
										NULL);
	else
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("argument \"query\" must be a plannable statement"),
				 errdetail("%s statements are not admitted on their own.",
						   GetCommandTagName(CreateCommandTag(raw->stmt))),
				 errhint("Give SELECT, INSERT, UPDATE, DELETE or MERGE.")));

	if (query->commandType == CMD_UTILITY)
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("argument \"query\" must be a plannable statement"),
				 errdetail("SELECT INTO creates a table; it is not admitted on its own.")));

	if (PGSH_QUERYID(query->queryId) == 0)
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_NOT_LOADED),
				 errmsg("query identifiers are not being computed"),
				 errhint("Set \"compute_query_id\" to \"auto\" or \"on\".")));

	if (shape != NULL)
		*shape = (int64) pgsh_shape_compute(query);

	error_context_stack = errcallback.previous;
	return (int64) query->queryId;
}

/* The SQL text given as first argument "query", which must not be null. */
char *
pgsh_policy_query_argument(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("argument \"query\" must not be null")));
	return text_to_cstring(PG_GETARG_TEXT_PP(0));
}

/*
 * shield.fingerprint(query): the fingerprint a statement gets when it runs
 * here, in the caller's database and search_path, as the views show it.
 * The text is only parsed and analyzed, never run.  Any role may call it.
 */
PG_FUNCTION_INFO_V1(pg_shield_fingerprint);
Datum
pg_shield_fingerprint(PG_FUNCTION_ARGS)
{
	pgsh_check_loaded();
	PG_RETURN_INT64(pgsh_policy_fingerprint_sql(pgsh_policy_query_argument(fcinfo),
												NULL));
}

/*
 * The shape a statement gets when it runs here: what a query policy
 * declared with this text matches besides its fingerprint.
 */
PG_FUNCTION_INFO_V1(pg_shield_shape);
Datum
pg_shield_shape(PG_FUNCTION_ARGS)
{
	int64		shape;

	pgsh_check_loaded();
	(void) pgsh_policy_fingerprint_sql(pgsh_policy_query_argument(fcinfo),
									   &shape);
	PG_RETURN_INT64(shape);
}

/*----
 * Stale policies
 *----
 */

/*
 * Tell the caller, a migration or a DBA, when the database has query
 * policies that are not enforced because another major version of
 * PostgreSQL fingerprinted them (after pg_upgrade, or a restore of a dump
 * made there).
 */
void
pgsh_policy_warn_stale(void)
{
	int			version;
	int			n = pgsh_policy_stale_count(&version);

	if (n > 0)
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg_plural("%d query policy is not enforced: its fingerprint was computed by PostgreSQL %d",
							   "%d query policies are not enforced: their fingerprints were computed by PostgreSQL %d",
							   n, n, version),
				 errhint("Run SELECT shield.rebind_query_policies(); the stale policies are those with \"stale\" in shield.policies.")));
}

/*----
 * shield.effective_policy(query, role): the limits that would apply to a
 * statement, one row per limit, each with the policy it comes from.  It
 * goes through the same cache and resolution as admission, so it answers
 * "why was this rejected?" with what the server actually uses.
 *----
 */
#define EFFECTIVE_POLICY_COLS 7

/*
 * The scope column of a limit: the kind of policy it comes from, as
 * shield.policies names it, or "default" for a setting of the instance.
 */
static const char *
scope_name(const ShieldPolicy *p)
{
	if (p == NULL)
		return "default";
	if (p->queryid == 0)
		return "role";
	return p->role == InvalidOid ? "query" : "query+role";
}

/* The role effective_policy answers for is an exempt superuser. */
static bool policy_effective_role_exempt = false;

/*
 * Mode a limit of this policy runs in, given pg_shield.mode: "exempt" if
 * the role is a superuser pg_shield does not govern.
 */
static const char *
effective_mode(const ShieldPolicy *p)
{
	if (pgsh_mode == PGSH_MODE_OFF)
		return "off";
	if (policy_effective_role_exempt)
		return "exempt";
	if (pgsh_mode == PGSH_MODE_MONITOR || (p != NULL && p->monitor))
		return "monitor";
	return "enforce";
}

/*
 * How the statement matched the policy a limit comes from: by fingerprint
 * ("queryid"), or by shape only ("shape"); NULL for role policies and
 * defaults.
 */
static const char *
matched_by(const ShieldEffectivePolicy *eff, const ShieldPolicy *p)
{
	if (p == NULL || p->queryid == 0)
		return NULL;
	return eff->by_shape[p - eff->scopes] ? "shape" : "queryid";
}

/*
 * Add one row to effective_policy's result: a limit, its value as text,
 * and the policy it comes from (from NULL: the instance's default).
 */
static void
put_limit(ReturnSetInfo *rsinfo, const ShieldEffectivePolicy *eff,
		  int64 queryid, const char *name, char *value,
		  const ShieldPolicy *from)
{
	const char *by = matched_by(eff, from);

	Datum		values[EFFECTIVE_POLICY_COLS];
	bool		nulls[EFFECTIVE_POLICY_COLS];

	memset(nulls, 0, sizeof(nulls));
	values[0] = Int64GetDatum(queryid);
	values[1] = CStringGetTextDatum(name);
	values[2] = CStringGetTextDatum(value);
	if (from != NULL)
		values[3] = Int64GetDatum(from->id);
	else
		nulls[3] = true;
	values[4] = CStringGetTextDatum(scope_name(from));
	values[5] = CStringGetTextDatum(effective_mode(from));
	if (by != NULL)
		values[6] = CStringGetTextDatum(by);
	else
		nulls[6] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* A duration as messages show it ("500 ms"), palloc'd for a row. */
static char *
duration_text(int64 us)
{
	char		buf[64];

	return pstrdup(pgsh_duration_text(buf, sizeof(buf), us));
}

/*
 * shield.effective_policy(query, role): one row per limit that would apply
 * to the statement run by role (the current user by default), with the
 * policy it comes from.  Every scope's own limits are shown, the merged
 * ones (max_cost, deadline, breaker, parallel cap, priority) once.  Any
 * role may call it, for any role.
 */
PG_FUNCTION_INFO_V1(pg_shield_effective_policy);
Datum
pg_shield_effective_policy(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ShieldEffectivePolicy eff;
	char	   *sql;
	int64		queryid;
	int64		shape;
	Oid			role;
	int			i;

	pgsh_check_loaded();
	sql = pgsh_policy_query_argument(fcinfo);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("argument \"role\" must not be null")));
	queryid = pgsh_policy_fingerprint_sql(sql, &shape);
	role = PG_GETARG_OID(1);
	pgsh_policy_warn_stale();
	InitMaterializedSRF(fcinfo, 0);
	policy_effective_role_exempt = pgsh_exempt_superuser && superuser_arg(role);

	(void) pgsh_policy_resolve_shape(role, (uint64) queryid, (uint64) shape,
									 &eff);

	for (i = 0; i < eff.nscopes; i++)
	{
		const ShieldPolicy *p = &eff.scopes[i];

		if (p->max_concurrent > 0)
			put_limit(rsinfo, &eff, queryid, "max_concurrent",
					  psprintf("%d", p->max_concurrent), p);
		if (p->queue_timeout_us >= 0)
			put_limit(rsinfo, &eff, queryid, "queue_timeout",
					  duration_text(p->queue_timeout_us), p);
		if (p->max_rate > 0)
			put_limit(rsinfo, &eff, queryid, "max_rate",
					  psprintf("%g per second", p->max_rate), p);
	}
	if (eff.max_cost_from >= 0)
		put_limit(rsinfo, &eff, queryid, "max_cost",
				  psprintf("%g", eff.scopes[eff.max_cost_from].max_cost),
				  &eff.scopes[eff.max_cost_from]);
	if (eff.deadline_from >= 0)
		put_limit(rsinfo, &eff, queryid, "deadline",
				  duration_text(eff.scopes[eff.deadline_from].deadline_us),
				  &eff.scopes[eff.deadline_from]);

	/*
	 * Breakers are per fingerprint: the most specific query policy that sets
	 * breaker_failures, else the instance's defaults.
	 */
	if (eff.breaker_from >= 0)
	{
		const ShieldPolicy *p = &eff.scopes[eff.breaker_from];

		put_limit(rsinfo, &eff, queryid, "breaker_failures",
				  psprintf("%d", p->breaker_failures), p);
		put_limit(rsinfo, &eff, queryid, "breaker_cooldown",
				  p->breaker_cooldown_us >= 0 ?
				  duration_text(p->breaker_cooldown_us) :
				  duration_text((int64) pgsh_breaker_cooldown_ms * 1000),
				  p->breaker_cooldown_us >= 0 ? p : NULL);
	}
	else if (pgsh_breaker_failures > 0)
	{
		put_limit(rsinfo, &eff, queryid, "breaker_failures",
				  psprintf("%d", pgsh_breaker_failures), NULL);
		put_limit(rsinfo, &eff, queryid, "breaker_cooldown",
				  duration_text((int64) pgsh_breaker_cooldown_ms * 1000), NULL);
	}
	if (eff.parallel_from >= 0)
		put_limit(rsinfo, &eff, queryid, "max_parallel_workers",
				  psprintf("%d",
						   eff.scopes[eff.parallel_from].max_parallel_workers),
				  &eff.scopes[eff.parallel_from]);
	put_limit(rsinfo, &eff, queryid, "priority",
			  pstrdup(pgsh_priority_name(eff.priority)),
			  eff.priority_from >= 0 ? &eff.scopes[eff.priority_from] : NULL);
	return (Datum) 0;
}
