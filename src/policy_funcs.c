/*-------------------------------------------------------------------------
 *
 * policy_funcs.c
 *		SQL functions that change policies: shield.set_role_policy,
 *		shield.set_query_policy and shield.drop_*_policy, and the trigger
 *		that makes a committed change reach every backend's cache.
 *
 * Applications call these from their migrations, so every call validates
 * all of its arguments before changing anything (22023 naming the argument
 * and the allowed values), is an upsert declaring the whole policy (a
 * repeated call is a no-op), and is transactional (it writes
 * shield.policy).  A change becomes an event in shield.events only when its
 * transaction commits, so that a migration that rolls back leaves no trace
 * of a policy that never existed.
 *
 * The functions are SECURITY INVOKER on purpose: a query policy given as
 * SQL text is fingerprinted in the caller's database, search_path and
 * privileges, exactly as the caller's statements will be.  Only the write
 * to shield.policy runs as the table's owner, with search_path pinned to
 * pg_catalog, pg_temp (the same switch fmgr does for SECURITY DEFINER), so
 * a role granted EXECUTE needs no privilege on the table.  That write
 * (pgsh_policy_run_as_owner) is shared with policy_rebind.c, which stores
 * the fingerprints it recomputes the same way.
 *
 * Owns: the functions above, the policy_changed trigger, and the
 *		  transaction's pending events (in TopTransactionContext).
 * Calls: policy_inspect.c (fingerprints, stale warning), policy.c (the
 *		  table, its owner), events.c (at commit), shmem.c.
 * Locking: no shared state of its own; shield.policy's usual locks, and
 *		  the trigger's relcache invalidation reaches the caches (policy.c).
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/policy_funcs.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "errors.h"
#include "events.h"
#include "guc.h"
#include "policy.h"
#include "policy_int.h"
#include "shmem.h"

/*
 * A policy as declared: one value per writable column of shield.policy
 * (all but id), as SPI parameters.
 */
#define POLICY_PARAMS 16

typedef struct ShieldDeclaredPolicy
{
	Datum		values[POLICY_PARAMS];
	char		nulls[POLICY_PARAMS];	/* ' ' or 'n', as SPI wants */
} ShieldDeclaredPolicy;

/* SPI parameter positions, matching the column order of shield.policy. */
enum
{
	P_ROLE, P_QUERYID, P_QUERY, P_SEARCH_PATH, P_MAX_CONCURRENT,
	P_QUEUE_TIMEOUT, P_MAX_COST, P_DEADLINE, P_MAX_RATE, P_PRIORITY,
	P_BREAKER_FAILURES, P_BREAKER_COOLDOWN, P_MODE, P_FINGERPRINT_VERSION,
	P_MAX_PARALLEL_WORKERS, P_SHAPE
};

static const Oid policy_param_types[POLICY_PARAMS] = {
	REGROLEOID, INT8OID, TEXTOID, TEXTOID, INT4OID,
	INTERVALOID, FLOAT8OID, INTERVALOID, FLOAT8OID, TEXTOID,
	INT4OID, INTERVALOID, TEXTOID, INT4OID, INT4OID, INT8OID
};

static const char *const policy_priority_values[] = {"critical", "normal", "low", NULL};
static const char *const policy_mode_values[] = {"enforce", "monitor", NULL};

/*----
 * Trigger: a committed change to shield.policy becomes a relcache
 * invalidation of the table, which every backend (and, through the commit
 * record, every hot standby backend) processes before its next statement.
 *----
 */
PG_FUNCTION_INFO_V1(pg_shield_policy_changed);
Datum
pg_shield_policy_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"policy_changed\" must be called as a trigger")));

	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}

/*----
 * Argument validation: everything is checked before anything is written.
 *----
 */

/* Set one column of a declared policy to NULL. */
static void
put_null(ShieldDeclaredPolicy *p, int param)
{
	p->values[param] = (Datum) 0;
	p->nulls[param] = 'n';
}

/* Set one column of a declared policy to a value. */
static void
put(ShieldDeclaredPolicy *p, int param, Datum value)
{
	p->values[param] = value;
	p->nulls[param] = ' ';
}

/*
 * A count limit (max_concurrent, breaker_failures): greater than zero, or
 * NULL for no limit.  Zero is refused rather than taken to mean "none":
 * NULL says that.
 */
static void
check_positive_int(FunctionCallInfo fcinfo, int argno, const char *name,
				   ShieldDeclaredPolicy *p, int param)
{
	int32		v;

	if (PG_ARGISNULL(argno))
	{
		put_null(p, param);
		return;
	}
	v = PG_GETARG_INT32(argno);
	if (v <= 0)
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("invalid value for argument \"%s\": %d", name, v),
				 errdetail("The value must be greater than zero, or NULL for no limit.")));
	put(p, param, Int32GetDatum(v));
}

/*
 * max_parallel_workers: zero means something (plan without workers), a
 * negative count does not.
 */
static void
check_workers(FunctionCallInfo fcinfo, int argno, ShieldDeclaredPolicy *p)
{
	int32		v;

	if (PG_ARGISNULL(argno))
	{
		put_null(p, P_MAX_PARALLEL_WORKERS);
		return;
	}
	v = PG_GETARG_INT32(argno);
	if (v < 0)
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("invalid value for argument \"max_parallel_workers\": %d", v),
				 errdetail("The value must be zero (no parallel workers) or greater, or NULL for no limit.")));
	put(p, P_MAX_PARALLEL_WORKERS, Int32GetDatum(v));
}

/*
 * A real limit (max_cost, max_rate): finite and greater than zero, or NULL
 * for no limit.  NaN and infinity are refused here, with the argument's
 * name, rather than by the table's CHECK constraint.
 */
static void
check_positive_float(FunctionCallInfo fcinfo, int argno, const char *name,
					 ShieldDeclaredPolicy *p, int param)
{
	float8		v;

	if (PG_ARGISNULL(argno))
	{
		put_null(p, param);
		return;
	}
	v = PG_GETARG_FLOAT8(argno);
	if (isnan(v) || isinf(v) || v <= 0.0)
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("invalid value for argument \"%s\": %g", name, v),
				 errdetail("The value must be a finite number greater than zero, or NULL for no limit.")));
	put(p, param, Float8GetDatum(v));
}

/*
 * Durations: finite, no months or years (their length varies), at most
 * PGSH_MAX_DURATION_US (INT_MAX milliseconds, the bound of PostgreSQL's own
 * timeouts), and greater than zero, or at least zero where zero means
 * something (queue_timeout).  Kept to the microsecond.
 */
static void
check_duration(FunctionCallInfo fcinfo, int argno, const char *name,
			   bool zero_ok, ShieldDeclaredPolicy *p, int param)
{
	Interval   *v;
	char	   *shown;

	if (PG_ARGISNULL(argno))
	{
		put_null(p, param);
		return;
	}
	v = PG_GETARG_INTERVAL_P(argno);
	shown = DatumGetCString(DirectFunctionCall1(interval_out,
												IntervalPGetDatum(v)));
	if (!PGSH_INTERVAL_IS_FINITE(v))
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("invalid value for argument \"%s\": \"%s\"", name, shown),
				 errdetail("A duration must be finite; NULL means no limit.")));
	if (v->month != 0)
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("invalid value for argument \"%s\": \"%s\"", name, shown),
				 errdetail("Months and years are not allowed in a duration; use days or smaller units.")));
	if (v->day < 0 || v->time < 0 ||
		(!zero_ok && v->day == 0 && v->time == 0))
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("invalid value for argument \"%s\": \"%s\"", name, shown),
				 zero_ok ?
				 errdetail("The value must not be negative, or NULL for the default.") :
				 errdetail("The value must be greater than zero, or NULL for no limit.")));
	/* day is at most INT_MAX: the product fits in 64 bits */
	if (v->day > PGSH_MAX_DURATION_US / USECS_PER_DAY ||
		v->time > PGSH_MAX_DURATION_US ||
		(int64) v->day * USECS_PER_DAY + v->time > PGSH_MAX_DURATION_US)
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("invalid value for argument \"%s\": \"%s\"", name, shown),
				 errdetail("The value must be at most 2147483647 milliseconds (24 days 20:31:23.647).")));
	put(p, param, IntervalPGetDatum(v));
}

/*
 * A text argument that must be one of choices (priority, mode), never
 * NULL: the column is NOT NULL, and the SQL default is the usual value.
 * The hint lists the valid values.
 */
static void
check_choice(FunctionCallInfo fcinfo, int argno, const char *name,
			 const char *const *choices, ShieldDeclaredPolicy *p, int param)
{
	char	   *v;
	const char *const *c;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("argument \"%s\" must not be null", name)));
	v = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	for (c = choices; *c != NULL; c++)
	{
		if (strcmp(v, *c) == 0)
		{
			put(p, param, CStringGetTextDatum(v));
			return;
		}
	}
	if (choices == policy_priority_values)
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("invalid value for argument \"%s\": \"%s\"", name, v),
				 errhint("Valid values are \"critical\", \"normal\" and \"low\".")));
	else
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("invalid value for argument \"%s\": \"%s\"", name, v),
				 errhint("Valid values are \"enforce\" and \"monitor\".")));
}

/* A role argument: required for role policies, optional for query ones. */
static void
check_role(FunctionCallInfo fcinfo, int argno, bool required,
		   ShieldDeclaredPolicy *p)
{
	if (PG_ARGISNULL(argno))
	{
		if (required)
			ereport(ERROR,
					(errcode(PGSH_ERRCODE_INVALID_POLICY),
					 errmsg("argument \"role\" must not be null")));
		put_null(p, P_ROLE);
		return;
	}

	/*
	 * regrole's input checks a name, but a role given as an OID (a cast from
	 * oid, '-', a dropped role's) reaches here unchecked: a policy on it
	 * would be stored with no name and never apply.
	 */
	if (!SearchSysCacheExists1(AUTHOID, PG_GETARG_DATUM(argno)))
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_UNDEFINED_ROLE),
				 errmsg("role with OID %u does not exist",
						PG_GETARG_OID(argno))));
	put(p, P_ROLE, PG_GETARG_DATUM(argno));

	/* a policy on a superuser is stored, but would silently never apply */
	if (pgsh_exempt_superuser && superuser_arg(PG_GETARG_OID(argno)))
		ereport(NOTICE,
				(errmsg("the policy will not apply: role \"%s\" is a superuser",
						GetUserNameFromId(PG_GETARG_OID(argno), false)),
				 errdetail("pg_shield does not govern superusers while pg_shield.exempt_superuser is on."),
				 errhint("Declare policies on the roles that applications log in as.")));
}

/* The limits shared by role and query policies, from argument first_arg on. */
static void
check_common_limits(FunctionCallInfo fcinfo, int first_arg, ShieldDeclaredPolicy *p)
{
	check_positive_int(fcinfo, first_arg, "max_concurrent", p, P_MAX_CONCURRENT);
	check_duration(fcinfo, first_arg + 1, "queue_timeout", true, p, P_QUEUE_TIMEOUT);
	check_positive_float(fcinfo, first_arg + 2, "max_cost", p, P_MAX_COST);
	check_duration(fcinfo, first_arg + 3, "deadline", false, p, P_DEADLINE);
	check_positive_float(fcinfo, first_arg + 4, "max_rate", p, P_MAX_RATE);
	check_choice(fcinfo, first_arg + 5, "priority", policy_priority_values, p, P_PRIORITY);
}

/*----
 * Events: a policy change is recorded in shield.events (and logged) when
 * its transaction commits, never for a change that is rolled back.
 *----
 */
typedef struct ShieldPendingEvent
{
	struct ShieldPendingEvent *next;	/* newer events first */
	ShieldAction action;
	Oid			userid;
	uint64		queryid;
	SubTransactionId subid;
	char		detail[PGSH_EVENT_DETAIL_SIZE];
} ShieldPendingEvent;

/* In TopTransactionContext: gone with the transaction. */
static ShieldPendingEvent *policy_pending_events = NULL;

/*
 * Transaction end: at commit, record the transaction's policy changes in
 * shield.events, oldest first; at abort, forget them, and at PREPARE
 * TRANSACTION too, since the commit of a prepared transaction may come
 * from another session.  The list lives in TopTransactionContext, so it
 * needs no freeing.
 */
static void
policy_xact_callback(XactEvent event, void *arg)
{
	ShieldPendingEvent *e;
	ShieldPendingEvent *oldest_first = NULL;

	/* the usual case: no policy changed in this transaction */
	if (policy_pending_events == NULL)
		return;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
			/* reverse, then record oldest first; cannot fail */
			while (policy_pending_events != NULL)
			{
				e = policy_pending_events;
				policy_pending_events = e->next;
				e->next = oldest_first;
				oldest_first = e;
			}
			for (e = oldest_first; e != NULL; e = e->next)
				pgsh_event_record(e->action, true, e->userid, e->queryid,
								  e->detail);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			policy_pending_events = NULL;
			break;
		default:
			break;
	}
}

/*
 * Subtransaction abort: forget the changes made in it or its children.
 * Subtransaction ids only grow, so those are the ones noted since it
 * started: they lead the list, and only they have an id at least its own.
 * A rolled-back savepoint of a migration thus leaves no event.
 */
static void
policy_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		while (policy_pending_events != NULL && policy_pending_events->subid >= mySubid)
			policy_pending_events = policy_pending_events->next;
	}
}

/*
 * Queue an event for a policy change of this transaction, to be recorded
 * by policy_xact_callback if the transaction commits.  detail is copied
 * (truncated to an event's detail size).
 */
static void
note_policy_event(ShieldAction action, uint64 queryid, const char *detail)
{
	static bool xact_callback_registered = false;
	static bool subxact_callback_registered = false;
	ShieldPendingEvent *e;

	/*
	 * Registered by the first policy change a backend makes, so that the
	 * sessions that never change a policy, nearly all of them, do not call
	 * them at every transaction end.  Each once, even if the other failed.
	 */
	if (!xact_callback_registered)
	{
		RegisterXactCallback(policy_xact_callback, NULL);
		xact_callback_registered = true;
	}
	if (!subxact_callback_registered)
	{
		RegisterSubXactCallback(policy_subxact_callback, NULL);
		subxact_callback_registered = true;
	}
	e = MemoryContextAllocZero(TopTransactionContext, sizeof(ShieldPendingEvent));

	e->action = action;
	e->userid = GetUserId();
	e->queryid = queryid;
	e->subid = GetCurrentSubTransactionId();
	strlcpy(e->detail, detail, PGSH_EVENT_DETAIL_SIZE);
	e->next = policy_pending_events;
	policy_pending_events = e;
}

/* "role policy for alice" / "query policy 123 for every role" */
static char *
scope_text(Datum role, bool role_null, uint64 queryid)
{
	char	   *rolename = role_null ? NULL :
		GetUserNameFromId(DatumGetObjectId(role), true);

	/* the fingerprint is in the event's queryid, shown as the views show it */
	if (queryid == 0)
		return psprintf("role policy for \"%s\"", rolename ? rolename : "?");
	if (role_null)
		return pstrdup("query policy for every role");
	return psprintf("query policy for \"%s\"", rolename ? rolename : "?");
}

/* The declared limits, as "max_concurrent=4 deadline=00:00:05 ...". */
static char *
limits_text(const ShieldDeclaredPolicy *p)
{
	static const struct
	{
		int			param;
		const char *name;
	}			limits[] = {
		{P_MAX_CONCURRENT, "max_concurrent"},
		{P_QUEUE_TIMEOUT, "queue_timeout"},
		{P_MAX_COST, "max_cost"},
		{P_DEADLINE, "deadline"},
		{P_MAX_RATE, "max_rate"},
		{P_PRIORITY, "priority"},
		{P_BREAKER_FAILURES, "breaker_failures"},
		{P_BREAKER_COOLDOWN, "breaker_cooldown"},
		{P_MAX_PARALLEL_WORKERS, "max_parallel_workers"},
		{P_MODE, "mode"},
	};
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < (int) lengthof(limits); i++)
	{
		int			k = limits[i].param;
		Oid			typoutput;
		bool		varlena;

		if (p->nulls[k] == 'n')
			continue;
		getTypeOutputInfo(policy_param_types[k], &typoutput, &varlena);
		appendStringInfo(&buf, "%s%s=%s", buf.len > 0 ? " " : "",
						 limits[i].name,
						 OidOutputFunctionCall(typoutput, p->values[k]));
	}
	return buf.data;
}

/*----
 * Writing shield.policy
 *----
 */

/*
 * Qualified name of shield.policy, erroring out during recovery (policies
 * are changed on the primary, and reach standbys through WAL) or if the
 * extension is not installed in this database.
 */
const char *
pgsh_policy_table_name(void)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot change policies during recovery"),
				 errhint("Change policies on the primary; they replicate to standbys.")));
	if (!OidIsValid(pgsh_policy_relid()))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"pg_shield\" is not installed in database \"%s\"",
						get_database_name(MyDatabaseId)),
				 errhint("Run CREATE EXTENSION pg_shield in this database.")));
	return quote_qualified_identifier(PGSH_SCHEMA, PGSH_POLICY_TABLE);
}

/*
 * Run one statement on shield.policy as the table's owner, with search_path
 * pinned, as a SECURITY DEFINER function would.  Returns the number of rows
 * processed; cb, if given, sees the result rows before SPI is left.  On
 * error, transaction abort restores the user and the settings.
 */
uint64
pgsh_policy_run_as_owner(const char *sql, int nargs, const Oid *types,
						 const Datum *values, const char *nulls,
						 ShieldResultCallback cb, void *arg)
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	Oid			owner = pgsh_policy_owner(pgsh_policy_relid());
	uint64		processed;
	int			rc;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args(sql, nargs, (Oid *) types, (Datum *) values,
							   nulls, false, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s",
			 SPI_result_code_string(rc));
	processed = SPI_processed;
	if (cb != NULL)
		cb(SPI_tuptable, processed, arg);
	SPI_finish();

	AtEOXact_GUC(true, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return processed;
}

/*
 * Upsert a declared policy.  A repeated declaration changes nothing, not
 * even the row version; the by-fingerprint form keeps any sample text
 * stored earlier, and the shape computed from it, so
 * rebind_query_policies() can still use it.
 */
static void
upsert_policy(ShieldDeclaredPolicy *p)
{
	const char *table = pgsh_policy_table_name();
	char	   *sql;

	sql = psprintf("INSERT INTO %s AS p (role, queryid, query, search_path, "
				   "max_concurrent, queue_timeout, max_cost, deadline, max_rate, "
				   "priority, breaker_failures, breaker_cooldown, mode, "
				   "fingerprint_version, max_parallel_workers, shape) "
				   "VALUES ((SELECT r.rolname FROM pg_catalog.pg_roles r "
				   "WHERE r.oid OPERATOR(pg_catalog.=) $1), "
				   "$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) "
				   "ON CONFLICT ON CONSTRAINT policy_scope_unique DO UPDATE SET "
				   "query = COALESCE(excluded.query, p.query), "
				   "search_path = CASE WHEN excluded.query IS NULL "
				   "THEN p.search_path ELSE excluded.search_path END, "
				   "shape = CASE WHEN excluded.query IS NULL "
				   "THEN p.shape ELSE excluded.shape END, "
				   "fingerprint_version = excluded.fingerprint_version, "
				   "max_concurrent = excluded.max_concurrent, "
				   "queue_timeout = excluded.queue_timeout, "
				   "max_cost = excluded.max_cost, deadline = excluded.deadline, "
				   "max_rate = excluded.max_rate, priority = excluded.priority, "
				   "breaker_failures = excluded.breaker_failures, "
				   "breaker_cooldown = excluded.breaker_cooldown, "
				   "max_parallel_workers = excluded.max_parallel_workers, "
				   "mode = excluded.mode "
				   "WHERE (p.max_concurrent, p.queue_timeout, p.max_cost, "
				   "p.deadline, p.max_rate, p.priority, p.breaker_failures, "
				   "p.breaker_cooldown, p.max_parallel_workers, p.mode) "
				   "IS DISTINCT FROM "
				   "(excluded.max_concurrent, excluded.queue_timeout, "
				   "excluded.max_cost, excluded.deadline, excluded.max_rate, "
				   "excluded.priority, excluded.breaker_failures, "
				   "excluded.breaker_cooldown, excluded.max_parallel_workers, "
				   "excluded.mode) "
				   "OR p.fingerprint_version IS DISTINCT FROM excluded.fingerprint_version "
				   "OR (excluded.query IS NOT NULL AND "
				   "(p.query, p.search_path, p.shape) IS DISTINCT FROM "
				   "(excluded.query, excluded.search_path, excluded.shape))",
				   table);
	if (pgsh_policy_run_as_owner(sql, POLICY_PARAMS, policy_param_types,
								 p->values, p->nulls, NULL, NULL) > 0)
	{
		uint64		queryid = p->nulls[P_QUERYID] == 'n' ? 0 :
			(uint64) DatumGetInt64(p->values[P_QUERYID]);

		note_policy_event(PGSH_ACTION_POLICY_SET, queryid,
						  psprintf("%s: %s",
								   scope_text(p->values[P_ROLE],
											  p->nulls[P_ROLE] == 'n', queryid),
								   limits_text(p)));
	}
}

/*
 * shield.set_role_policy(role, ...): declare the whole policy of a role,
 * its limits on every statement the role runs; arguments left out take
 * their SQL defaults.  Everything is validated before the upsert,
 * which runs as the table's owner; the change is transactional, and its
 * event is recorded at commit.  EXECUTE is revoked from PUBLIC.
 */
PG_FUNCTION_INFO_V1(pg_shield_set_role_policy);
Datum
pg_shield_set_role_policy(PG_FUNCTION_ARGS)
{
	ShieldDeclaredPolicy p;

	pgsh_check_loaded();
	check_role(fcinfo, 0, true, &p);
	check_common_limits(fcinfo, 1, &p);
	check_choice(fcinfo, 7, "mode", policy_mode_values, &p, P_MODE);
	check_workers(fcinfo, 8, &p);
	put_null(&p, P_QUERYID);
	put_null(&p, P_QUERY);
	put_null(&p, P_SEARCH_PATH);
	put_null(&p, P_BREAKER_FAILURES);
	put_null(&p, P_BREAKER_COOLDOWN);
	put_null(&p, P_FINGERPRINT_VERSION);
	put_null(&p, P_SHAPE);

	upsert_policy(&p);
	pgsh_policy_warn_stale();
	PG_RETURN_VOID();
}

/*
 * The arguments after the fingerprint or text are the same for both forms
 * of set_query_policy: role, the common limits, breaker_failures,
 * breaker_cooldown, mode, max_parallel_workers (last, so that it was added
 * without moving the others).
 */
static void
check_query_policy_args(FunctionCallInfo fcinfo, ShieldDeclaredPolicy *p)
{
	check_role(fcinfo, 1, false, p);
	check_common_limits(fcinfo, 2, p);
	check_positive_int(fcinfo, 8, "breaker_failures", p, P_BREAKER_FAILURES);
	check_duration(fcinfo, 9, "breaker_cooldown", false, p, P_BREAKER_COOLDOWN);
	check_choice(fcinfo, 10, "mode", policy_mode_values, p, P_MODE);
	check_workers(fcinfo, 11, p);
	put(p, P_FINGERPRINT_VERSION, Int32GetDatum(PGSH_FINGERPRINT_VERSION));
}

/* Results of the query note_shared_shape runs. */
typedef struct ShieldSharedShape
{
	int64		other_id;		/* 0: no other policy has the shape */
	int64		first_id;
} ShieldSharedShape;

/*
 * Result callback of note_shared_shape's query: its one row, read while
 * SPI is still connected.  An aggregate without rows gives NULLs, read as
 * 0 (no policy).
 */
static void
collect_shared_shape(SPITupleTable *tuptable, uint64 nrows, void *arg)
{
	ShieldSharedShape *shared = (ShieldSharedShape *) arg;
	bool		isnull;
	Datum		d;

	if (nrows != 1)
		return;
	d = SPI_getbinval(tuptable->vals[0], tuptable->tupdesc, 1, &isnull);
	shared->other_id = isnull ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(tuptable->vals[0], tuptable->tupdesc, 2, &isnull);
	shared->first_id = isnull ? 0 : DatumGetInt64(d);
}

/*
 * Tell the caller when another query policy of the same role scope matches
 * the same shape (declared with a text that differs only in its
 * constants): a statement declared by neither fingerprint is governed by
 * only one of them, the one with the lowest id.
 */
static void
note_shared_shape(const ShieldDeclaredPolicy *p)
{
	Oid			types[3] = {INT8OID, REGROLEOID, INT8OID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	ShieldSharedShape shared = {0, 0};

	values[0] = p->values[P_SHAPE];
	values[1] = p->values[P_ROLE];
	nulls[1] = p->nulls[P_ROLE];
	values[2] = p->values[P_QUERYID];
	pgsh_policy_run_as_owner(psprintf("SELECT min(id) FILTER (WHERE queryid <> $3), "
									  "min(id) FROM %s WHERE shape = $1 "
									  "AND role IS NOT DISTINCT FROM "
									  "(SELECT r.rolname FROM pg_catalog.pg_roles r "
									  "WHERE r.oid OPERATOR(pg_catalog.=) $2)",
									  pgsh_policy_table_name()),
							 3, types, values, nulls, collect_shared_shape,
							 &shared);
	if (shared.other_id != 0)
		ereport(NOTICE,
				(errmsg("query policy " INT64_FORMAT " already matches statements of this shape",
						shared.other_id),
				 errdetail("A statement whose fingerprint is neither policy's is governed by the one with the lowest id, policy " INT64_FORMAT ".",
						   shared.first_id)));
}

/*
 * shield.set_query_policy(query text, role, ...): declare the policy of a
 * statement given as SQL text, for one role or every role.  The text is
 * fingerprinted as the caller's own statements are (database, search_path,
 * privileges), and stored with that search_path and its shape, so that the
 * policy also matches the statement with other constants, and can be
 * rebound after DDL.  Returns the fingerprint.  EXECUTE is revoked from
 * PUBLIC.
 */
PG_FUNCTION_INFO_V1(pg_shield_set_query_policy_text);
Datum
pg_shield_set_query_policy_text(PG_FUNCTION_ARGS)
{
	ShieldDeclaredPolicy p;
	char	   *sql;
	int64		queryid;
	int64		shape;

	pgsh_check_loaded();
	sql = pgsh_policy_query_argument(fcinfo);
	check_query_policy_args(fcinfo, &p);

	queryid = pgsh_policy_fingerprint_sql(sql, &shape);
	put(&p, P_QUERYID, Int64GetDatum(queryid));
	put(&p, P_QUERY, CStringGetTextDatum(sql));
	put(&p, P_SEARCH_PATH,
		CStringGetTextDatum(GetConfigOption("search_path", false, false)));
	put(&p, P_SHAPE, Int64GetDatum(shape));

	upsert_policy(&p);
	note_shared_shape(&p);
	pgsh_policy_warn_stale();
	PG_RETURN_INT64(queryid);
}

/*
 * shield.set_query_policy(queryid bigint, role, ...): declare the policy
 * of a fingerprint as the views show it.  A new policy has no text: it
 * matches that fingerprint only, and cannot be rebound.  One declared
 * earlier from a text keeps the text and its shape (see upsert_policy).
 * 0 is refused: it is no fingerprint.  Returns the fingerprint.  EXECUTE
 * is revoked from PUBLIC.
 */
PG_FUNCTION_INFO_V1(pg_shield_set_query_policy_id);
Datum
pg_shield_set_query_policy_id(PG_FUNCTION_ARGS)
{
	ShieldDeclaredPolicy p;
	int64		queryid;

	pgsh_check_loaded();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("argument \"queryid\" must not be null")));
	queryid = PG_GETARG_INT64(0);
	if (queryid == 0)
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("invalid value for argument \"queryid\": 0"),
				 errdetail("Fingerprint 0 means that no fingerprint was computed.")));
	check_query_policy_args(fcinfo, &p);
	put(&p, P_QUERYID, Int64GetDatum(queryid));
	put_null(&p, P_QUERY);
	put_null(&p, P_SEARCH_PATH);
	put_null(&p, P_SHAPE);

	upsert_policy(&p);
	pgsh_policy_warn_stale();
	PG_RETURN_INT64(queryid);
}

/*
 * shield.drop_role_policy(role): remove a role's role policy; its query
 * policies stay.  Returns whether there was one; an event is recorded at
 * commit only then.  EXECUTE is revoked from PUBLIC.
 */
PG_FUNCTION_INFO_V1(pg_shield_drop_role_policy);
Datum
pg_shield_drop_role_policy(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {REGROLEOID};
	Datum		values[1];
	char	   *sql;

	pgsh_check_loaded();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("argument \"role\" must not be null")));
	values[0] = PG_GETARG_DATUM(0);
	sql = psprintf("DELETE FROM %s WHERE role = (SELECT r.rolname "
				   "FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) $1) "
				   "AND queryid IS NULL",
				   pgsh_policy_table_name());
	if (pgsh_policy_run_as_owner(sql, 1, types, values, " ", NULL,
								 NULL) == 0)
		PG_RETURN_BOOL(false);
	note_policy_event(PGSH_ACTION_POLICY_DROPPED, 0,
					  scope_text(values[0], false, 0));
	PG_RETURN_BOOL(true);
}

/*
 * shield.drop_query_policy(queryid, role): remove the query policy of one
 * scope; a NULL role means the policy for every role, not those of every
 * role.  Returns whether there was one; an event is recorded at commit
 * only then.  EXECUTE is revoked from PUBLIC.
 */
PG_FUNCTION_INFO_V1(pg_shield_drop_query_policy);
Datum
pg_shield_drop_query_policy(PG_FUNCTION_ARGS)
{
	Oid			types[2] = {INT8OID, REGROLEOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	char	   *sql;

	pgsh_check_loaded();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("argument \"queryid\" must not be null")));
	values[0] = PG_GETARG_DATUM(0);
	if (PG_ARGISNULL(1))
	{
		values[1] = (Datum) 0;
		nulls[1] = 'n';
	}
	else
		values[1] = PG_GETARG_DATUM(1);
	sql = psprintf("DELETE FROM %s WHERE queryid = $1 AND role IS NOT DISTINCT FROM "
				   "(SELECT r.rolname FROM pg_catalog.pg_roles r "
				   "WHERE r.oid OPERATOR(pg_catalog.=) $2)",
				   pgsh_policy_table_name());
	if (pgsh_policy_run_as_owner(sql, 2, types, values, nulls, NULL,
								 NULL) == 0)
		PG_RETURN_BOOL(false);
	note_policy_event(PGSH_ACTION_POLICY_DROPPED,
					  (uint64) DatumGetInt64(values[0]),
					  scope_text(values[1], nulls[1] == 'n',
								 (uint64) DatumGetInt64(values[0])));
	PG_RETURN_BOOL(true);
}
