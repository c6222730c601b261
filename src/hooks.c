/*-------------------------------------------------------------------------
 *
 * hooks.c
 *		The planner, executor and ProcessUtility hooks of pg_shield.
 *
 * Hook bodies stay thin: they keep pgsh_nesting_level exact (PG_FINALLY,
 * so an error cannot leave it raised), time what needs timing, chain to
 * the previous hook or the standard function, and call into statement.c
 * for everything else.
 *
 * Every hook chains, whether or not pg_shield is enabled.  Parallel
 * workers run only the executor hooks; they never start a unit (see
 * pgsh_tracking_enabled), since their leader's unit covers them.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/hooks.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"
#include "executor/instrument.h"
#include "optimizer/planner.h"
#include "tcop/utility.h"

#include "compat.h"
#include "hooks.h"
#include "statement.h"

static planner_hook_type prev_planner_hook = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static PlannedStmt *pgsh_planner(Query *parse, const char *query_string,
								 int cursorOptions,
								 ParamListInfo boundParams);
static void pgsh_ExecutorStart(QueryDesc *queryDesc, int eflags);
static void pgsh_ExecutorRun(PGSH_EXECUTORRUN_ARGS);
static void pgsh_ExecutorFinish(QueryDesc *queryDesc);
static void pgsh_ExecutorEnd(QueryDesc *queryDesc);
static void pgsh_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
								bool readOnlyTree,
								ProcessUtilityContext context,
								ParamListInfo params,
								QueryEnvironment *queryEnv,
								DestReceiver *dest, QueryCompletion *qc);

void
pgsh_hooks_install(void)
{
	prev_planner_hook = planner_hook;
	planner_hook = pgsh_planner;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = pgsh_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = pgsh_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = pgsh_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = pgsh_ExecutorEnd;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = pgsh_ProcessUtility;
}

static inline double
elapsed_ms(instr_time start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	return INSTR_TIME_GET_MILLISEC(now);
}

/*
 * Planner: time top-level planning.  Functions evaluated while planning
 * (constant folding, estimation) run nested.
 */
static PlannedStmt *
pgsh_planner(Query *parse, const char *query_string, int cursorOptions,
			 ParamListInfo boundParams)
{
	PlannedStmt *volatile result = NULL;
	bool		toplevel = pgsh_tracking_enabled() &&
		pgsh_planning_top_level(query_string);
	instr_time	start;

	if (toplevel)
		INSTR_TIME_SET_CURRENT(start);
	else
		INSTR_TIME_SET_ZERO(start);

	pgsh_nesting_level++;
	PG_TRY();
	{
		if (prev_planner_hook)
			result = prev_planner_hook(parse, query_string, cursorOptions,
									   boundParams);
		else
			result = standard_planner(parse, query_string, cursorOptions,
									  boundParams);
	}
	PG_CATCH();
	{
		pgsh_nesting_level--;
		if (toplevel)
			pgsh_planning_failed(parse, query_string);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pgsh_nesting_level--;

	if (toplevel)
		pgsh_planning_done(parse, query_string, elapsed_ms(start));

	return result;
}

/*
 * ExecutorStart: a top-level executor run becomes a unit.  Plain EXPLAIN
 * (EXEC_FLAG_EXPLAIN_ONLY) never runs, so it is not one.
 */
static void
pgsh_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	const bool	unit = (eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0 &&
		pgsh_tracking_enabled() && pgsh_unit_begin(queryDesc);

	pgsh_nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorStart)
			prev_ExecutorStart(queryDesc, eflags);
		else
			standard_ExecutorStart(queryDesc, eflags);
	}
	PG_CATCH();
	{
		pgsh_nesting_level--;
		if (unit)
			pgsh_unit_failing(queryDesc);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pgsh_nesting_level--;
}

/*
 * ExecutorRun: a unit's run time is the sum of its top-level ExecutorRun
 * and ExecutorFinish calls, so a cursor's time between fetches (the
 * client's) is not counted.
 */
static void
pgsh_ExecutorRun(PGSH_EXECUTORRUN_ARGS)
{
	int			unit = pgsh_nesting_level == 0 ?
		pgsh_unit_lookup(queryDesc) : -1;
	instr_time	start;

	if (unit >= 0)
		INSTR_TIME_SET_CURRENT(start);
	else
		INSTR_TIME_SET_ZERO(start);

	pgsh_nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(PGSH_EXECUTORRUN_CALL);
		else
			standard_ExecutorRun(PGSH_EXECUTORRUN_CALL);
	}
	PG_CATCH();
	{
		pgsh_nesting_level--;
		/* at any level: a top-level cursor can be fetched by a function */
		pgsh_unit_failing(queryDesc);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pgsh_nesting_level--;

	if (unit >= 0)
		pgsh_unit_add_call(unit, queryDesc, elapsed_ms(start), true);
}

/*
 * ExecutorFinish: fires AFTER triggers and completes data-modifying CTEs.
 * A read-only SELECT has nothing to finish, so its (empty) finish is not
 * timed: that saves two clock readings per statement on the hot path.
 */
static void
pgsh_ExecutorFinish(QueryDesc *queryDesc)
{
	int			unit = (pgsh_nesting_level == 0 &&
						(queryDesc->operation != CMD_SELECT ||
						 queryDesc->plannedstmt->hasModifyingCTE)) ?
		pgsh_unit_lookup(queryDesc) : -1;
	instr_time	start;

	if (unit >= 0)
		INSTR_TIME_SET_CURRENT(start);
	else
		INSTR_TIME_SET_ZERO(start);

	pgsh_nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_CATCH();
	{
		pgsh_nesting_level--;
		/* at any level: a top-level cursor can be fetched by a function */
		pgsh_unit_failing(queryDesc);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pgsh_nesting_level--;

	if (unit >= 0)
		pgsh_unit_add_call(unit, queryDesc, elapsed_ms(start), false);
}

/*
 * ExecutorEnd: account the unit before chaining, so that a failure in
 * another module's ExecutorEnd cannot make it count twice.
 */
static void
pgsh_ExecutorEnd(QueryDesc *queryDesc)
{
	pgsh_unit_end(queryDesc);

	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

static void
call_process_utility(PlannedStmt *pstmt, const char *queryString,
					 bool readOnlyTree, ProcessUtilityContext context,
					 ParamListInfo params, QueryEnvironment *queryEnv,
					 DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * ProcessUtility: a top-level utility statement opens a frame (see
 * statement.c); anything else runs nested.
 *
 * The statement's identifier is read here, before chaining: when
 * pg_stat_statements.track_utility is on, pg_stat_statements zeroes it in
 * its own ProcessUtility hook, so pg_shield must be listed after it in
 * shared_preload_libraries (outer hook) to see it.
 */
static void
pgsh_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					bool readOnlyTree, ProcessUtilityContext context,
					ParamListInfo params, QueryEnvironment *queryEnv,
					DestReceiver *dest, QueryCompletion *qc)
{
	PgshUtilityKind kind = PGSH_UTILITY_NESTED;
	instr_time	start;

	if (pgsh_tracking_enabled())
		kind = pgsh_utility_kind(pstmt);

	switch (kind)
	{
		case PGSH_UTILITY_PASS:
			call_process_utility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
			return;

		case PGSH_UTILITY_NESTED:
			pgsh_nesting_level++;
			PG_TRY();
			{
				call_process_utility(pstmt, queryString, readOnlyTree,
									 context, params, queryEnv, dest, qc);
			}
			PG_FINALLY();
			{
				pgsh_nesting_level--;
			}
			PG_END_TRY();
			return;

		case PGSH_UTILITY_SELF:
		case PGSH_UTILITY_DELEGATE:
			break;
	}

	pgsh_frame_begin(pstmt, queryString, kind == PGSH_UTILITY_DELEGATE);
	INSTR_TIME_SET_CURRENT(start);
	PG_TRY();
	{
		pgsh_frame_admit();
		call_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		pgsh_frame_failed();
		PG_RE_THROW();
	}
	PG_END_TRY();
	pgsh_frame_end(elapsed_ms(start), qc);
}
