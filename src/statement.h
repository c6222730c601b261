/*-------------------------------------------------------------------------
 *
 * statement.h
 *		Which statements pg_shield governs, and their life cycle.
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

#include "executor/execdesc.h"
#include "nodes/plannodes.h"
#include "tcop/cmdtag.h"

/*
 * Depth of planner, executor and nested utility calls now running in this
 * backend.  The hooks maintain it with PG_FINALLY, so an error can never
 * leave it raised.
 */
extern int	pgsh_nesting_level;

/* How ProcessUtility treats a statement; see pgsh_utility_kind(). */
typedef enum PgshUtilityKind
{
	PGSH_UTILITY_NESTED,		/* inside another statement */
	PGSH_UTILITY_PASS,			/* cursor and prepared-statement plumbing */
	PGSH_UTILITY_SELF,			/* accounted as a statement of its own */
	PGSH_UTILITY_DELEGATE		/* accounted by the executor it starts */
} PgshUtilityKind;

extern void pgsh_statement_init(void);
extern bool pgsh_tracking_enabled(void);
extern bool pgsh_at_top_level(void);

/* planner */
extern bool pgsh_planning_top_level(const char *query_string);
extern void pgsh_planning_done(Query *parse, const char *query_string,
							   double plan_ms);
extern void pgsh_planning_failed(Query *parse, const char *query_string);

/* executor */
extern bool pgsh_unit_begin(QueryDesc *queryDesc);
extern int	pgsh_unit_lookup(QueryDesc *queryDesc);
extern void pgsh_unit_add_call(int unit, QueryDesc *queryDesc, double ms,
							   bool run);
extern void pgsh_unit_failing(QueryDesc *queryDesc);
extern void pgsh_unit_end(QueryDesc *queryDesc);

/* utility statements */
extern PgshUtilityKind pgsh_utility_kind(PlannedStmt *pstmt);
extern void pgsh_frame_begin(PlannedStmt *pstmt, const char *queryString,
							 bool delegate);
extern void pgsh_frame_admit(void);
extern void pgsh_frame_end(double elapsed_ms, const QueryCompletion *qc);
extern void pgsh_frame_failed(void);

#endif							/* PGSH_STATEMENT_H */
