/*-------------------------------------------------------------------------
 *
 * statement.h
 *		Which statements pg_shield governs, and their life cycle.
 *
 * Implemented by statement.c (the units' life cycle), statement_planning.c
 * and statement_utility.c, which share statement_int.h among themselves.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/statement.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_STATEMENT_H
#define PGSH_STATEMENT_H

#include "access/xact.h"
#include "executor/execdesc.h"
#include "nodes/plannodes.h"
#include "tcop/cmdtag.h"
#include "tcop/utility.h"

#include "compat.h"
#include "guc.h"

PGSH_BEGIN_INTERNAL

/*
 * Depth of planner, executor and nested utility calls now running in this
 * backend.  The hooks restore it with PG_TRY, except around the executor
 * calls of a unit (pgsh_unit_call_begin): see there.
 */
extern int	pgsh_nesting_level;

/*
 * The executor run whose level-0 executor call is in progress, if any, and
 * the first subtransaction started inside that call (invalid if none yet).
 */
extern QueryDesc *pgsh_unit_in_call;
extern SubTransactionId pgsh_unit_in_call_inner;

/*
 * An executor call of a unit (always at level 0) runs without PG_TRY.  An
 * error that escapes it cannot be caught at level 0 by anything but code
 * that re-throws it (PortalRun and its kin, pg_shield's own utility
 * frame), so the next thing to run is the abort of the transaction, or of
 * the subtransaction the call started in (a savepoint of the client's).
 * Its callback finds the unit here, counts it as failed and brings the
 * level back to 0.  The abort of a subtransaction started inside the call
 * (an exception block of a function the statement runs; subtransaction ids
 * only grow, so it is one at or after the first started inside) does not:
 * the call goes on.  That keeps two setjmp calls off every statement.  Calls
 * that are not a unit's, at any level, keep PG_TRY: a statement run at
 * level 0 by a deferred trigger or a domain check during Bind can fail
 * inside an exception block that goes on.  So do the calls of a unit
 * whose fingerprint this backend has not seen recorded with its text yet:
 * PG_CATCH copies the text of a failing statement while it is still there,
 * for a fingerprint seen only failing (DECLARE CURSOR's, for one, is not
 * recorded at planning).
 */
static inline void
pgsh_unit_call_begin(QueryDesc *queryDesc)
{
	pgsh_nesting_level = 1;
	pgsh_unit_in_call = queryDesc;
	pgsh_unit_in_call_inner = InvalidSubTransactionId;
}

static inline void
pgsh_unit_call_end(void)
{
	pgsh_unit_in_call = NULL;
	pgsh_nesting_level = 0;
}

/* How ProcessUtility treats a statement; see pgsh_utility_kind(). */
typedef enum ShieldUtilityKind
{
	PGSH_UTILITY_NESTED,		/* inside another statement */
	PGSH_UTILITY_PASS,			/* cursor and prepared-statement plumbing */
	PGSH_UTILITY_SELF,			/* accounted as a statement of its own */
	PGSH_UTILITY_DELEGATE		/* accounted by the executor it starts */
} ShieldUtilityKind;

extern void pgsh_statement_init(void);

/* Is this a client backend (1), or not (0); -1 until first asked. */
extern int	pgsh_client_backend;
extern void pgsh_client_backend_decide(void);

/*
 * Is this a client backend, whose statements pg_shield governs?  Parallel
 * workers, background workers and WAL senders pass through.  What the
 * backend is does not change: decided once.
 */
static inline bool
pgsh_is_client_backend(void)
{
	if (unlikely(pgsh_client_backend < 0))
		pgsh_client_backend_decide();
	return pgsh_client_backend;
}

/* Does pg_shield follow statements in this backend right now? */
static inline bool
pgsh_tracking_enabled(void)
{
	return pgsh_is_client_backend() && pgsh_mode != PGSH_MODE_OFF;
}

/* planner: statement_planning.c */
extern bool pgsh_planning_top_level(const char *query_string);
extern uint64 pgsh_planning_queryid(Query *parse);
extern void pgsh_planning_done(Query *parse, const char *query_string,
							   double plan_ms);
extern void pgsh_planning_failed(Query *parse, const char *query_string);

/* executor */
/* How a unit's level-0 executor calls run (see pgsh_unit_call_begin). */
typedef enum ShieldUnitCalls
{
	PGSH_UNIT_NONE,				/* not a unit */
	PGSH_UNIT_GUARDED,			/* with PG_TRY */
	PGSH_UNIT_UNGUARDED			/* without */
} ShieldUnitCalls;

extern ShieldUnitCalls pgsh_unit_begin(QueryDesc *queryDesc);
extern int	pgsh_unit_lookup(QueryDesc *queryDesc);

/* A unit found by its executor run: its index (-1: none), its calls. */
typedef struct ShieldUnitRef
{
	int			index;
	ShieldUnitCalls calls;
} ShieldUnitRef;

extern ShieldUnitRef pgsh_unit_lookup_calls(QueryDesc *queryDesc);

/*
 * The unit begun last, whose executor calls are nearly all the executor
 * calls there are: found without a call.  queryDesc is NULL once it has
 * ended.
 */
extern QueryDesc *pgsh_last_unit_qd;
extern ShieldUnitRef pgsh_last_unit;

static inline ShieldUnitRef
pgsh_unit_find_calls(QueryDesc *queryDesc)
{
	if (queryDesc == pgsh_last_unit_qd)
		return pgsh_last_unit;
	return pgsh_unit_lookup_calls(queryDesc);
}

extern void pgsh_unit_add_call(int unit, QueryDesc *queryDesc, double ms,
							   bool run);
extern void pgsh_unit_failing(QueryDesc *queryDesc);
extern void pgsh_unit_guard_begin(int unit);
extern void pgsh_unit_guard_end(int unit);
extern void pgsh_unit_end(QueryDesc *queryDesc);

/* utility statements: statement_utility.c */
extern ShieldUtilityKind pgsh_utility_kind(PlannedStmt *pstmt,
										   ProcessUtilityContext context);
extern void pgsh_frame_begin(PlannedStmt *pstmt, const char *queryString,
							 bool delegate);
extern void pgsh_frame_admit(void);
extern void pgsh_frame_end(double elapsed_ms, const QueryCompletion *qc);
extern void pgsh_frame_failed(void);

PGSH_END_INTERNAL

#endif							/* PGSH_STATEMENT_H */
