/*-------------------------------------------------------------------------
 *
 * hooks.c
 *		The parse analysis, planner, executor, ProcessUtility and emit_log
 *		hooks of pg_shield.
 *
 * Hook bodies stay thin: they keep pgsh_nesting_level exact (PG_TRY, so
 * an error cannot leave it raised, except around a unit's own executor
 * calls, which the abort callback repairs: see pgsh_unit_call_begin), time
 * what needs timing, chain to the previous hook or the standard function,
 * and call into statement.h for everything else but a statement's shape,
 * the planner's parallel cap and the log filter (see Calls below).
 *
 * Every hook chains, whether or not pg_shield is enabled.  Parallel
 * workers run only the executor hooks; they never start a unit (see
 * pgsh_tracking_enabled), since their leader's unit covers them.
 *
 * Owns: the hooks above, their predecessors, and the timing of a unit's
 *		  executor calls.
 * Calls: statement.c, statement_planning.c and statement_utility.c
 *		  (through statement.h), shape.c (pgsh_shape_note), parallel.c
 *		  (through parallel.h), events.c (pgsh_events_filter_report).
 * Locking: backend-local state only, no lock.
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
#include "optimizer/cost.h"
#include "optimizer/planner.h"
#include "parser/analyze.h"
#include "tcop/utility.h"

#include "compat.h"
#include "events.h"
#include "hooks.h"
#include "parallel.h"
#include "policy.h"
#include "shape.h"
#include "statement.h"

static post_parse_analyze_hook_type prev_post_parse_analyze_hook = NULL;
static planner_hook_type prev_planner_hook = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

static void pgsh_post_parse_analyze(ParseState *pstate, Query *query,
									JumbleState *jstate);
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
static void pgsh_emit_log(ErrorData *edata);

/*
 * Install every hook of pg_shield, remembering the previous ones to chain
 * to.  Called from _PG_init, in the postmaster while it loads
 * shared_preload_libraries, so that every backend inherits the hooks.
 */
void
pgsh_hooks_install(void)
{
	prev_post_parse_analyze_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = pgsh_post_parse_analyze;
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
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = pgsh_emit_log;
}

/*
 * emit_log_hook: the server log receives pg_shield's rejections at a
 * bounded rate (see events.c).
 */
static void
pgsh_emit_log(ErrorData *edata)
{
	pgsh_events_filter_report(edata);
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * When the executor call of a unit now running began.  Only calls at level
 * 0 are timed, and they do not nest (the level is 1 inside them).  Static,
 * so that the hooks need no stack slot whose address escapes.
 */
static instr_time hooks_unit_call_start;

/* Milliseconds since hooks_unit_call_start; also without a local's address. */
static inline double
unit_call_elapsed_ms(void)
{
	static instr_time now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, hooks_unit_call_start);
	return INSTR_TIME_GET_MILLISEC(now);
}

/*
 * The unit whose executor call this is, if it is one at level 0 (only
 * those are timed); starts the clock of the call.
 */
static inline ShieldUnitRef
unit_call_find(QueryDesc *queryDesc)
{
	ShieldUnitRef unit = {-1, PGSH_UNIT_NONE};

	if (pgsh_nesting_level == 0)
		unit = pgsh_unit_find_calls(queryDesc);
	if (unit.index >= 0)
		INSTR_TIME_SET_CURRENT(hooks_unit_call_start);
	return unit;
}

/*
 * Milliseconds since start, for the timings that keep their start in a
 * local: top-level planning and a utility statement's frame.
 */
static inline double
elapsed_ms(instr_time start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	return INSTR_TIME_GET_MILLISEC(now);
}

/*
 * Parse analysis: remember the shape of the statement, under the
 * fingerprint core has just given it, while some query policy of this
 * database may match by shape (see shape.c).  After the previous hook, so
 * that the fingerprint is the one every other module sees.  A statement
 * analyzed again (sent as text, or re-planned) finds its shape known.
 * Also while pg_shield.mode is off, so that the statements prepared
 * meanwhile match by shape once it is on again.
 */
static void
pgsh_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze_hook)
		prev_post_parse_analyze_hook(pstate, query, jstate);

	if (pgsh_policy_shapes_wanted && query->queryId != 0 &&
		pgsh_is_client_backend())
		pgsh_shape_note(query);
}

/*
 * Put max_parallel_workers_per_gather back after planning under a cap,
 * unless something planning ran (a function evaluated while planning)
 * set it meanwhile: that setting is then the one to keep.
 *
 * One case escapes: a function evaluated while planning, with its own
 * SET max_parallel_workers_per_gather clause, that fails.  The GUC stack
 * saved the cap as the value to restore, and the abort restores it after
 * this hook has run; the session keeps the cap until it sets the
 * parameter again.  Going through the GUC machinery instead would cost a
 * nest level and a set_config_option per capped plan for that case alone.
 */
static inline void
workers_restore(int cap, int saved)
{
	if (max_parallel_workers_per_gather == cap)
		max_parallel_workers_per_gather = saved;
}

/*
 * Planner: time top-level planning, and plan a governed statement with at
 * most the parallel workers its policies and the load allow (see
 * parallel.c).  The cap is the C variable behind
 * max_parallel_workers_per_gather, lowered for standard_planner and
 * restored on every path; the GUC machinery is not involved, so the
 * session's setting is unchanged once the statement is planned.
 * Functions evaluated while planning (constant folding, estimation) run
 * nested, and under the cap.
 */
static PlannedStmt *
pgsh_planner(Query *parse, const char *query_string, int cursorOptions,
			 ParamListInfo boundParams)
{
	PlannedStmt *volatile result = NULL;
	const int	level = pgsh_nesting_level;
	bool		toplevel = pgsh_tracking_enabled() &&
		pgsh_planning_top_level(query_string);
	const int	saved_workers = max_parallel_workers_per_gather;
	int			cap = -1;
	instr_time	start;

	if (toplevel)
	{
		INSTR_TIME_SET_CURRENT(start);
		cap = pgsh_parallel_cap(parse);
		if (cap >= 0 && cap < saved_workers)
			max_parallel_workers_per_gather = cap;
		else
			cap = -1;
	}
	else
		INSTR_TIME_SET_ZERO(start);

	pgsh_nesting_level = level + 1;
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
		pgsh_nesting_level = level;
		if (unlikely(cap >= 0))
			workers_restore(cap, saved_workers);
		if (toplevel)
			pgsh_planning_failed(parse, query_string);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pgsh_nesting_level = level;
	if (unlikely(cap >= 0))
		workers_restore(cap, saved_workers);

	if (toplevel)
		pgsh_planning_done(parse, query_string, elapsed_ms(start));

	return result;
}

/*
 * Chain ExecutorStart: the previous hook, or the standard function.
 */
static inline void
call_executor_start(QueryDesc *queryDesc, int eflags)
{
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * ExecutorStart with the level raised, guarded; unit: the unit it starts,
 * or -1.  The unit's deadline may cancel the call (see deadline.c).
 */
static pg_noinline void
guarded_executor_start(QueryDesc *queryDesc, int eflags, int unit)
{
	const int	level = pgsh_nesting_level;

	pgsh_nesting_level = level + 1;
	PG_TRY();
	{
		if (unit >= 0)
			pgsh_unit_guard_begin(unit);
		call_executor_start(queryDesc, eflags);
		if (unit >= 0)
			pgsh_unit_guard_end(unit);
	}
	PG_CATCH();
	{
		pgsh_nesting_level = level;
		if (unit >= 0)
			pgsh_unit_failing(queryDesc);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pgsh_nesting_level = level;
}

/*
 * ExecutorStart: a top-level executor run becomes a unit.  Plain EXPLAIN
 * (EXEC_FLAG_EXPLAIN_ONLY) never runs, so it is not one.  A unit's call
 * runs unguarded (see pgsh_unit_call_begin).
 */
static void
pgsh_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	ShieldUnitCalls calls = PGSH_UNIT_NONE;

	if ((eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0 && pgsh_tracking_enabled())
		calls = pgsh_unit_begin(queryDesc);

	if (calls == PGSH_UNIT_UNGUARDED)
	{
		pgsh_unit_call_begin(queryDesc);
		call_executor_start(queryDesc, eflags);
		pgsh_unit_call_end();
	}
	else
		guarded_executor_start(queryDesc, eflags,
							   calls == PGSH_UNIT_GUARDED ?
							   pgsh_last_unit.index : -1);
}

/*
 * Chain ExecutorRun: the previous hook, or the standard function.
 */
static inline void
call_executor_run(PGSH_EXECUTORRUN_ARGS)
{
	if (prev_ExecutorRun)
		prev_ExecutorRun(PGSH_EXECUTORRUN_CALL);
	else
		standard_ExecutorRun(PGSH_EXECUTORRUN_CALL);
}

/*
 * Chain ExecutorFinish: the previous hook, or the standard function.
 */
static inline void
call_executor_finish(QueryDesc *queryDesc)
{
	if (prev_ExecutorFinish)
		prev_ExecutorFinish(queryDesc);
	else
		standard_ExecutorFinish(queryDesc);
}

/*
 * ExecutorRun with the level raised, guarded; unit: the unit whose level-0
 * call this is, or -1.  Not inlined, as the other guarded calls: their
 * sigjmp_buf stays off the unguarded path's stack.
 */
static pg_noinline void
guarded_executor_run(PGSH_EXECUTORRUN_ARGS, int unit)
{
	const int	level = pgsh_nesting_level;

	pgsh_nesting_level = level + 1;
	PG_TRY();
	{
		if (unit >= 0)
			pgsh_unit_guard_begin(unit);
		call_executor_run(PGSH_EXECUTORRUN_CALL);
		if (unit >= 0)
			pgsh_unit_guard_end(unit);
	}
	PG_CATCH();
	{
		pgsh_nesting_level = level;
		/* at any level: a top-level cursor can be fetched by a function */
		pgsh_unit_failing(queryDesc);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pgsh_nesting_level = level;
}

/*
 * ExecutorRun: a unit's run time is the sum of its top-level ExecutorRun
 * and ExecutorFinish calls, so a cursor's time between fetches (the
 * client's) is not counted.  A unit's call runs unguarded (see
 * pgsh_unit_call_begin); any other is guarded, and fails the unit of a
 * top-level cursor that a function fetches from.
 */
static void
pgsh_ExecutorRun(PGSH_EXECUTORRUN_ARGS)
{
	ShieldUnitRef unit = unit_call_find(queryDesc);

	if (unit.calls == PGSH_UNIT_UNGUARDED)
	{
		pgsh_unit_call_begin(queryDesc);
		call_executor_run(PGSH_EXECUTORRUN_CALL);
		pgsh_unit_call_end();
	}
	else
		guarded_executor_run(PGSH_EXECUTORRUN_CALL, unit.index);

	if (unit.index >= 0)
		pgsh_unit_add_call(unit.index, queryDesc, unit_call_elapsed_ms(),
						   true);
}

/* ExecutorFinish with the level raised, guarded; unit: as for ExecutorRun. */
static pg_noinline void
guarded_executor_finish(QueryDesc *queryDesc, int unit)
{
	const int	level = pgsh_nesting_level;

	pgsh_nesting_level = level + 1;
	PG_TRY();
	{
		if (unit >= 0)
			pgsh_unit_guard_begin(unit);
		call_executor_finish(queryDesc);
		if (unit >= 0)
			pgsh_unit_guard_end(unit);
	}
	PG_CATCH();
	{
		pgsh_nesting_level = level;
		/* at any level: a top-level cursor can be fetched by a function */
		pgsh_unit_failing(queryDesc);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pgsh_nesting_level = level;
}

/*
 * ExecutorFinish of a statement with something to finish (AFTER triggers,
 * data-modifying CTEs): as ExecutorRun.
 */
static pg_noinline void
finish_with_work(QueryDesc *queryDesc)
{
	ShieldUnitRef unit = unit_call_find(queryDesc);

	if (unit.calls == PGSH_UNIT_UNGUARDED)
	{
		pgsh_unit_call_begin(queryDesc);
		call_executor_finish(queryDesc);
		pgsh_unit_call_end();
	}
	else
		guarded_executor_finish(queryDesc, unit.index);

	if (unit.index >= 0)
		pgsh_unit_add_call(unit.index, queryDesc, unit_call_elapsed_ms(),
						   false);
}

/*
 * ExecutorFinish: fires AFTER triggers and completes data-modifying CTEs.
 * A read-only SELECT has nothing to finish: no trigger of its own, no
 * auxiliary ModifyTable.  It is passed on untimed and without PG_TRY,
 * which keeps a setjmp and two clock readings off the hot path.  The
 * level is still raised, for the one way a statement can start there:
 * trigger events that C code queued at the SELECT's own level through SPI
 * with fire_triggers = false.  Should one fail: at level 0 the call is
 * followed like a unit's (pgsh_unit_call_begin), which puts the level back
 * and fails the unit; deeper, the enclosing call puts it back when it
 * returns or fails.
 */
static void
pgsh_ExecutorFinish(QueryDesc *queryDesc)
{
	int			level = pgsh_nesting_level;

	if (queryDesc->operation != CMD_SELECT ||
		queryDesc->plannedstmt->hasModifyingCTE)
		finish_with_work(queryDesc);
	else if (level == 0)
	{
		pgsh_unit_call_begin(queryDesc);
		call_executor_finish(queryDesc);
		pgsh_unit_call_end();
	}
	else
	{
		pgsh_nesting_level = level + 1;
		call_executor_finish(queryDesc);
		pgsh_nesting_level = level;
	}
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

/*
 * Chain ProcessUtility: the previous hook, or the standard function.
 */
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

/* A utility statement inside another: the level raised, guarded. */
static pg_noinline void
nested_process_utility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	const int	level = pgsh_nesting_level;

	pgsh_nesting_level = level + 1;
	PG_TRY();
	{
		call_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		pgsh_nesting_level = level;
	}
	PG_END_TRY();
}

/*
 * ProcessUtility: a top-level utility statement opens a frame (see
 * statement_utility.c); anything else runs nested.
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
	ShieldUtilityKind kind = PGSH_UTILITY_NESTED;
	instr_time	start;

	if (pgsh_tracking_enabled())
		kind = pgsh_utility_kind(pstmt, context);

	switch (kind)
	{
		case PGSH_UTILITY_PASS:
			call_process_utility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
			return;

		case PGSH_UTILITY_NESTED:
			nested_process_utility(pstmt, queryString, readOnlyTree,
								   context, params, queryEnv, dest, qc);
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
