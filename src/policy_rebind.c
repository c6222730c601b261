/*-------------------------------------------------------------------------
 *
 * policy_rebind.c
 *		Rebinding query policies to their statements:
 *		shield.rebind_query_policies and the DDL event trigger function
 *		shield.rebind_after_ddl.
 *
 * A query policy matches by fingerprint and shape, and both are computed
 * once, when the policy is declared.  DDL and major upgrades move them
 * under a policy that did not change, so the policy would silently stop
 * matching: this file recomputes them from each policy's stored sample
 * text and stores those that moved.  A text that no longer analyzes is
 * recorded in the policy's bind_error rather than failing the statement
 * that broke it, since the DDL of a migration must not fail because of a
 * policy.
 *
 * Owns: the two functions above; no state.
 * Calls: policy_inspect.c (fingerprints), policy_funcs.c (shield.policy
 *		  as its owner), policy.c (the table, its owner, query policies),
 *		  shmem.c (pgsh_check_loaded).
 * Locking: no shared state; shield.policy is written through SPI, and
 *		  its trigger tells the caches (policy.c).
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/policy_rebind.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "policy.h"
#include "policy_int.h"
#include "shmem.h"

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

/*
 * Result callback of rebind_policies' query: copy every query policy into
 * list->cxt while SPI is still connected, since SPI_finish frees the
 * result rows.
 */
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
	queryid = pgsh_policy_fingerprint_sql(sql, shape);
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
		case ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION: /* 42 */
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:	/* 23 */
		case ERRCODE_DATA_EXCEPTION:	/* 22 */
		case ERRCODE_FEATURE_NOT_SUPPORTED: /* 0A */
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
	ShieldRebindList list;
	const char *table;
	char	   *update_sql;
	char	   *error_sql;
	volatile int rebound = 0;
	int			i;
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	table = pgsh_policy_table_name();
	list.cxt = cxt;
	list.n = 0;
	list.items = NULL;
	pgsh_policy_run_as_owner(psprintf("SELECT id, queryid, query, search_path, "
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
		 * if another major version computed the fingerprint, it is stale for
		 * good, and only declaring it again helps.
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
				pgsh_policy_run_as_owner(update_sql, 4, types, values,
										 NULL, NULL, NULL);
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
		 * Only what the text's analysis can say about it (a dropped table, a
		 * fingerprint another policy has) is the policy's failure; a cancel,
		 * a timeout or a serialization failure is the statement's, and goes
		 * on as an error.
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
			pgsh_policy_run_as_owner(error_sql, 2, types, values,
									 NULL, NULL, NULL);
		}
		FreeErrorData(failure);
	}
	return rebound;
}

/*
 * shield.rebind_query_policies(): rebind every query policy of this
 * database by hand (after pg_upgrade, say), warning about each one that
 * cannot be.  Returns how many were rebound.  Transactional, like the
 * writes it makes as the table's owner.  EXECUTE is revoked from PUBLIC.
 */
PG_FUNCTION_INFO_V1(pg_shield_rebind_query_policies);
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
PG_FUNCTION_INFO_V1(pg_shield_rebind_after_ddl);
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
