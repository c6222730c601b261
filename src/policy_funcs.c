/*-------------------------------------------------------------------------
 *
 * policy_funcs.c
 *		SQL functions that declare policies: shield.set_role_policy,
 *		shield.set_query_policy, shield.drop_*_policy, shield.fingerprint,
 *		shield.shape, shield.rebind_query_policies and
 *		shield.effective_policy.
 *
 * Applications call these from their migrations, so every call validates
 * all of its arguments before changing anything (22023 naming the argument
 * and the allowed values), is an upsert declaring the whole policy (a
 * repeated call is a no-op), and is transactional (it writes
 * shield.policy).
 *
 * The functions are SECURITY INVOKER on purpose: a query policy given as
 * SQL text is fingerprinted in the caller's database, search_path and
 * privileges, exactly as the caller's statements will be.  Only the write
 * to shield.policy runs as the table's owner, with search_path pinned to
 * pg_catalog, pg_temp (the same switch fmgr does for SECURITY DEFINER), so
 * a role granted EXECUTE needs no privilege on the table.
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
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "tcop/cmdtag.h"
#include "tcop/utility.h"
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
#include "shape.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(pg_shield_policy_changed);
PG_FUNCTION_INFO_V1(pg_shield_fingerprint);
PG_FUNCTION_INFO_V1(pg_shield_shape);
PG_FUNCTION_INFO_V1(pg_shield_set_role_policy);
PG_FUNCTION_INFO_V1(pg_shield_set_query_policy_text);
PG_FUNCTION_INFO_V1(pg_shield_set_query_policy_id);
PG_FUNCTION_INFO_V1(pg_shield_drop_role_policy);
PG_FUNCTION_INFO_V1(pg_shield_drop_query_policy);
PG_FUNCTION_INFO_V1(pg_shield_rebind_query_policies);
PG_FUNCTION_INFO_V1(pg_shield_rebind_after_ddl);
PG_FUNCTION_INFO_V1(pg_shield_effective_policy);

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
static int64
fingerprint_sql(const char *sql, int64 *shape)
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
static char *
query_argument(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("argument \"query\" must not be null")));
	return text_to_cstring(PG_GETARG_TEXT_PP(0));
}

Datum
pg_shield_fingerprint(PG_FUNCTION_ARGS)
{
	pgsh_check_loaded();
	PG_RETURN_INT64(fingerprint_sql(query_argument(fcinfo), NULL));
}

/*
 * The shape a statement gets when it runs here: what a query policy
 * declared with this text matches besides its fingerprint.
 */
Datum
pg_shield_shape(PG_FUNCTION_ARGS)
{
	int64		shape;

	pgsh_check_loaded();
	(void) fingerprint_sql(query_argument(fcinfo), &shape);
	PG_RETURN_INT64(shape);
}

/*----
 * Argument validation: everything is checked before anything is written.
 *----
 */
static void
put_null(ShieldDeclaredPolicy *p, int param)
{
	p->values[param] = (Datum) 0;
	p->nulls[param] = 'n';
}

static void
put(ShieldDeclaredPolicy *p, int param, Datum value)
{
	p->values[param] = value;
	p->nulls[param] = ' ';
}

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
	 * regrole's input checks a name, but a role given as an OID (a cast
	 * from oid, '-', a dropped role's) reaches here unchecked: a policy
	 * on it would be stored with no name and never apply.
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
	ShieldAction	action;
	Oid			userid;
	uint64		queryid;
	SubTransactionId subid;
	char		detail[PGSH_EVENT_DETAIL_SIZE];
} ShieldPendingEvent;

/* In TopTransactionContext: gone with the transaction. */
static ShieldPendingEvent *policy_pending_events = NULL;

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
 * Qualified name of shield.policy, erroring out if the extension is not
 * installed in this database.
 */
static const char *
policy_table_name(void)
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

/* Called with the result of a statement while SPI is still connected. */
typedef void (*ShieldResultCallback) (SPITupleTable *tuptable, uint64 nrows,
								void *arg);

/*
 * Run one statement on shield.policy as the table's owner, with search_path
 * pinned, as a SECURITY DEFINER function would.  Returns the number of rows
 * processed; cb, if given, sees the result rows before SPI is left.  On
 * error, transaction abort restores the user and the settings.
 */
static uint64
run_as_owner(const char *sql, int nargs, const Oid *types,
			 const Datum *values, const char *nulls, ShieldResultCallback cb,
			 void *arg)
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
	const char *table = policy_table_name();
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
	if (run_as_owner(sql, POLICY_PARAMS, policy_param_types, p->values,
					 p->nulls, NULL, NULL) > 0)
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
 * Tell the caller, a migration or a DBA, when the database has query
 * policies that are not enforced because another major version of
 * PostgreSQL fingerprinted them (after pg_upgrade, or a restore of a dump
 * made there).
 */
static void
warn_stale_policies(void)
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
	warn_stale_policies();
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
	run_as_owner(psprintf("SELECT min(id) FILTER (WHERE queryid <> $3), min(id) "
						  "FROM %s WHERE shape = $1 "
						  "AND role IS NOT DISTINCT FROM "
						  "(SELECT r.rolname FROM pg_catalog.pg_roles r "
						  "WHERE r.oid OPERATOR(pg_catalog.=) $2)",
						  policy_table_name()),
				 3, types, values, nulls, collect_shared_shape, &shared);
	if (shared.other_id != 0)
		ereport(NOTICE,
				(errmsg("query policy " INT64_FORMAT " already matches statements of this shape",
						shared.other_id),
				 errdetail("A statement whose fingerprint is neither policy's is governed by the one with the lowest id, policy " INT64_FORMAT ".",
						   shared.first_id)));
}

Datum
pg_shield_set_query_policy_text(PG_FUNCTION_ARGS)
{
	ShieldDeclaredPolicy p;
	char	   *sql;
	int64		queryid;
	int64		shape;

	pgsh_check_loaded();
	sql = query_argument(fcinfo);
	check_query_policy_args(fcinfo, &p);

	queryid = fingerprint_sql(sql, &shape);
	put(&p, P_QUERYID, Int64GetDatum(queryid));
	put(&p, P_QUERY, CStringGetTextDatum(sql));
	put(&p, P_SEARCH_PATH,
		CStringGetTextDatum(GetConfigOption("search_path", false, false)));
	put(&p, P_SHAPE, Int64GetDatum(shape));

	upsert_policy(&p);
	note_shared_shape(&p);
	warn_stale_policies();
	PG_RETURN_INT64(queryid);
}

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
	warn_stale_policies();
	PG_RETURN_INT64(queryid);
}

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
				   policy_table_name());
	if (run_as_owner(sql, 1, types, values, " ", NULL, NULL) == 0)
		PG_RETURN_BOOL(false);
	note_policy_event(PGSH_ACTION_POLICY_DROPPED, 0,
					  scope_text(values[0], false, 0));
	PG_RETURN_BOOL(true);
}

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
				   policy_table_name());
	if (run_as_owner(sql, 2, types, values, nulls, NULL, NULL) == 0)
		PG_RETURN_BOOL(false);
	note_policy_event(PGSH_ACTION_POLICY_DROPPED,
					  (uint64) DatumGetInt64(values[0]),
					  scope_text(values[1], nulls[1] == 'n',
								 (uint64) DatumGetInt64(values[0])));
	PG_RETURN_BOOL(true);
}

/*----
 * Rebinding: fingerprints change when the objects a statement names are
 * dropped and re-created, or across major versions.  Recompute each query
 * policy's fingerprint from its stored sample text, under the search_path
 * it was declared with.
 *----
 */
typedef struct ShieldRebindCandidate
{
	int64		id;
	int64		queryid;
	int64		shape;			/* 0 if NULL */
	int32		version;		/* fingerprint_version, 0 if NULL */
	char	   *query;			/* NULL: declared by fingerprint */
	char	   *search_path;
	char	   *bind_error;		/* NULL: bound */
} ShieldRebindCandidate;

typedef struct ShieldRebindList
{
	MemoryContext cxt;
	int			n;
	ShieldRebindCandidate *items;
} ShieldRebindList;

static void
collect_candidates(SPITupleTable *tuptable, uint64 nrows, void *arg)
{
	ShieldRebindList *list = (ShieldRebindList *) arg;
	uint64		i;

	list->items = MemoryContextAlloc(list->cxt,
									 Max(1, nrows) * sizeof(ShieldRebindCandidate));
	for (i = 0; i < nrows; i++)
	{
		HeapTuple	tup = tuptable->vals[i];
		TupleDesc	desc = tuptable->tupdesc;
		ShieldRebindCandidate *c = &list->items[list->n++];
		bool		isnull;

		c->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		c->queryid = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		c->version = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		if (isnull)
			c->version = 0;
		c->shape = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
		if (isnull)
			c->shape = 0;
		c->query = NULL;
		c->search_path = NULL;
		c->bind_error = SPI_getvalue(tup, desc, 7);
		if (c->bind_error != NULL)
			c->bind_error = MemoryContextStrdup(list->cxt, c->bind_error);
		if (SPI_getvalue(tup, desc, 3) != NULL)
		{
			c->query = MemoryContextStrdup(list->cxt,
										   SPI_getvalue(tup, desc, 3));
			c->search_path = MemoryContextStrdup(list->cxt,
												 SPI_getvalue(tup, desc, 4));
		}
	}
}

/*
 * Fingerprint (and shape) sample text under the search_path it was
 * declared with.
 */
static int64
fingerprint_in_path(const char *sql, const char *search_path, int64 *shape)
{
	int			save_nestlevel = NewGUCNestLevel();
	int64		queryid;

	(void) set_config_option("search_path", search_path,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	queryid = fingerprint_sql(sql, shape);
	AtEOXact_GUC(true, save_nestlevel);
	return queryid;
}

/*
 * The fingerprint of a policy's sample text as rebinding computes it: as
 * the table's owner, whatever role runs the DDL that fired the rebind (so
 * that schemas that role may not use do not change what the text names),
 * under the search_path the text was declared with, and with pg_temp last
 * (so that a session's temporary table does not take the place of the
 * table the policy names).  Called in a subtransaction, whose abort
 * restores the user and the settings on error.
 */
static int64
fingerprint_as_owner(const char *sql, const char *search_path, int64 *shape)
{
	Oid			save_userid;
	int			save_sec_context;
	int64		queryid;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(pgsh_policy_owner(pgsh_policy_relid()),
						   save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	queryid = fingerprint_in_path(sql, psprintf("%s, pg_temp", search_path),
								  shape);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return queryid;
}

/* Errors of a policy's text, rather than of the statement rebinding it. */
static bool
rebind_failure_is_the_policys(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION:	/* 42 */
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:	/* 23 */
		case ERRCODE_DATA_EXCEPTION:	/* 22 */
		case ERRCODE_FEATURE_NOT_SUPPORTED:	/* 0A */
			return true;
		default:
			return false;
	}
}

/*
 * Recompute the fingerprint and shape of every query policy declared with
 * a sample text, and store those that moved.  A text that no longer
 * analyzes (a table was dropped), or a new fingerprint that another policy
 * already has, must not stop the others: each runs in a subtransaction,
 * and its failure is stored in bind_error, which shield.policies shows.
 * By hand (after_ddl false), every failure is a WARNING; at the end of a
 * DDL statement, only a policy that was bound and no longer is, once, and
 * nothing at all about policies declared by fingerprint.  Returns how many
 * were rebound.
 */
static int
rebind_policies(bool after_ddl)
{
	ShieldRebindList	list;
	const char *table;
	char	   *update_sql;
	char	   *error_sql;
	volatile int rebound = 0;
	int			i;
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	table = policy_table_name();
	list.cxt = cxt;
	list.n = 0;
	list.items = NULL;
	run_as_owner(psprintf("SELECT id, queryid, query, search_path, "
						  "fingerprint_version, shape, bind_error FROM %s "
						  "WHERE queryid IS NOT NULL ORDER BY id", table),
				 0, NULL, NULL, NULL, collect_candidates, &list);
	update_sql = psprintf("UPDATE %s SET queryid = $2, fingerprint_version = $3, "
						  "shape = $4, bind_error = NULL WHERE id = $1", table);
	error_sql = psprintf("UPDATE %s SET bind_error = $2 WHERE id = $1", table);

	for (i = 0; i < list.n; i++)
	{
		ShieldRebindCandidate *c = &list.items[i];
		ErrorData  *volatile failure = NULL;

		/*
		 * A policy declared by fingerprint has no text to recompute it from:
		 * if another major version computed the fingerprint, it is stale
		 * for good, and only declaring it again helps.
		 */
		if (c->query == NULL)
		{
			if (!after_ddl &&
				c->version != 0 && c->version != PGSH_FINGERPRINT_VERSION)
				ereport(WARNING,
						(errcode(ERRCODE_WARNING),
						 errmsg("could not rebind query policy %lld: it was declared by fingerprint on PostgreSQL %d",
								(long long) c->id, c->version),
						 errhint("Declare it again with shield.set_query_policy(), preferably with the statement's text.")));
			continue;
		}

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(cxt);
		PG_TRY();
		{
			int64		shape;
			int64		queryid = fingerprint_as_owner(c->query, c->search_path,
													   &shape);

			if (queryid != c->queryid || shape != c->shape ||
				c->bind_error != NULL ||
				(c->version != 0 && c->version != PGSH_FINGERPRINT_VERSION))
			{
				Oid			types[4] = {INT8OID, INT8OID, INT4OID, INT8OID};
				Datum		values[4];

				values[0] = Int64GetDatum(c->id);
				values[1] = Int64GetDatum(queryid);
				values[2] = Int32GetDatum(PGSH_FINGERPRINT_VERSION);
				values[3] = Int64GetDatum(shape);
				run_as_owner(update_sql, 4, types, values, NULL, NULL, NULL);
				if (queryid != c->queryid || shape != c->shape ||
					c->version != PGSH_FINGERPRINT_VERSION)
					rebound++;
			}
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			failure = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
		}
		PG_END_TRY();

		if (failure == NULL)
			continue;

		/*
		 * Only what the text's analysis can say about it (a dropped table,
		 * a fingerprint another policy has) is the policy's failure; a
		 * cancel, a timeout or a serialization failure is the statement's,
		 * and goes on as an error.
		 */
		if (!rebind_failure_is_the_policys(failure->sqlerrcode))
			ReThrowError(failure);
		if (!after_ddl || c->bind_error == NULL)
			ereport(WARNING,
					(errcode(failure->sqlerrcode),
					 after_ddl ?
					 errmsg("query policy %lld no longer matches its statement: %s",
							(long long) c->id, failure->message) :
					 errmsg("could not rebind query policy %lld: %s",
							(long long) c->id, failure->message),
					 errdetail("Its sample text is: %s", c->query)));
		if (c->bind_error == NULL || strcmp(c->bind_error, failure->message) != 0)
		{
			Oid			types[2] = {INT8OID, TEXTOID};
			Datum		values[2];

			values[0] = Int64GetDatum(c->id);
			values[1] = CStringGetTextDatum(failure->message);
			run_as_owner(error_sql, 2, types, values, NULL, NULL, NULL);
		}
		FreeErrorData(failure);
	}
	return rebound;
}

Datum
pg_shield_rebind_query_policies(PG_FUNCTION_ARGS)
{
	pgsh_check_loaded();
	PG_RETURN_INT32(rebind_policies(false));
}

/*
 * The event trigger at the end of every DDL statement: DDL that drops and
 * re-creates what a query policy's sample text names (a migration, or the
 * indexes and constraints of a restore) moves its fingerprint, and the
 * policy would silently stop matching.  Nothing to do, and no catalog
 * scan, while the database has no query policy.  A policy's text that no
 * longer analyzes never fails the DDL; a cancel or a lock timeout while
 * rebinding does, as in any statement.
 */
Datum
pg_shield_rebind_after_ddl(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" was not called by an event trigger",
						"shield.rebind_after_ddl")));
	/* not preloaded: nothing is governed, and DDL must go on */
	if (pgsh_state == NULL || !OidIsValid(pgsh_policy_relid()))
		PG_RETURN_VOID();
	if (pgsh_policy_query_count() > 0)
		(void) rebind_policies(true);
	PG_RETURN_VOID();
}

/*----
 * shield.effective_policy(query, role): the limits that would apply to a
 * statement, one row per limit, each with the policy it comes from.  It
 * goes through the same cache and resolution as admission, so it answers
 * "why was this rejected?" with what the server actually uses.
 *----
 */
#define EFFECTIVE_POLICY_COLS 7

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

static char *
duration_text(int64 us)
{
	char		buf[64];

	return pstrdup(pgsh_duration_text(buf, sizeof(buf), us));
}

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
	sql = query_argument(fcinfo);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_INVALID_POLICY),
				 errmsg("argument \"role\" must not be null")));
	queryid = fingerprint_sql(sql, &shape);
	role = PG_GETARG_OID(1);
	warn_stale_policies();
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
	 * Breakers are per fingerprint: the most specific query policy that
	 * sets breaker_failures, else the instance's defaults.
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
