/*-------------------------------------------------------------------------
 *
 * statement_utility.c
 *		How each utility statement is treated, and the frame that follows a
 *		top-level one while it runs.
 *
 * ProcessUtility asks pgsh_utility_kind what a utility statement is: one
 * nested in another statement; cursor and prepared-statement plumbing that
 * is not accounted (its work belongs to the cursor or prepared statement);
 * a statement of its own; or one that delegates to the executor run it
 * starts (EXPLAIN ANALYZE, CREATE TABLE AS, DECLARE CURSOR, ...; see
 * statement.c for the three shapes).  A FETCH or MOVE from a cursor that a
 * function opened (a refcursor, which no statement of its own admitted) is
 * a statement of the cursor's query.
 *
 * A top-level utility statement that is not plumbing opens the frame
 * (pgsh_statement_frame) for as long as it runs.  A delegating frame tells
 * which executor run is the one it delegates to (expect_source and
 * expect_run), which statement.c starts as a unit; a frame that delegates
 * nothing, or whose executor run never happens, accounts the utility
 * itself.  CALL, DO and that FETCH or MOVE are admitted by the frame, and
 * it carries their deadline and breaker ticket.  A utility that fails is
 * noted as a pending error, which statement.c's abort callbacks count.
 *
 * Owns: the frame of the top-level utility statement
 *		  (pgsh_statement_frame), and pgsh_utility_kind.
 * Calls: admission.c, admission_held.c, deadline.c, breaker.c, policy.c,
 *		  shape.c, stats.c, statement.c (through statement_int.h).
 * Locking: backend-local frame, no lock; the modules it calls take their
 *		  own (see shmem.c).
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/statement_utility.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/prepare.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/pquery.h"
#include "utils/portal.h"

#include "admission.h"
#include "breaker.h"
#include "compat.h"
#include "deadline.h"
#include "policy.h"
#include "shape.h"
#include "statement.h"
#include "statement_int.h"
#include "stats.h"

/*
 * The frame of the top-level utility statement now running.  A hot-path
 * accessor: statement.c and statement_planning.c read it at every
 * statement's planning and ExecutorStart (is this the top-level
 * statement's?), where a call per read would cost.  Besides, the unit a
 * delegating frame starts writes into it that it has started (delegated,
 * delegated_qd) and, once it ends, its outcome (stash); and a failure
 * noted while the frame is open sets error_noted.  The rest is this file's.
 */
ShieldUtilityFrame pgsh_statement_frame;

/*
 * Classify a utility statement about to run.  Only a statement the client
 * sent (core runs it as PROCESS_UTILITY_TOPLEVEL) opens a frame, at nesting
 * level 0 and outside any frame: one that a function runs at level 0
 * (computing EXECUTE's parameters, or a deferred trigger at commit) is not
 * the client's statement.
 */
ShieldUtilityKind
pgsh_utility_kind(PlannedStmt *pstmt, ProcessUtilityContext context)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (pgsh_nesting_level != 0 || pgsh_statement_frame.active ||
		context != PROCESS_UTILITY_TOPLEVEL)
		return PGSH_UTILITY_NESTED;

	switch (nodeTag(stmt))
	{
		case T_FetchStmt:		/* FETCH and MOVE */
			{
				/*
				 * A cursor opened by a function (a refcursor) has no unit:
				 * its FETCH is then the statement that does the work.  A held
				 * cursor was run to completion, and accounted, at commit; its
				 * FETCH only reads the stored rows.
				 */
				Portal		portal = GetPortalByName(((FetchStmt *) stmt)->portalname);

				if (!PortalIsValid(portal) || portal->holdStore != NULL ||
					(portal->queryDesc != NULL &&
					 pgsh_unit_lookup(portal->queryDesc) >= 0))
					return PGSH_UTILITY_PASS;
				return PGSH_UTILITY_SELF;
			}

		case T_ClosePortalStmt:
		case T_PrepareStmt:
		case T_DeallocateStmt:
			return PGSH_UTILITY_PASS;

		case T_ExplainStmt:
		case T_CreateTableAsStmt:
		case T_DeclareCursorStmt:
		case T_RefreshMatViewStmt:
		case T_ExecuteStmt:
			return PGSH_UTILITY_DELEGATE;

		case T_CopyStmt:
			/* only COPY (query) TO runs the executor */
			return ((CopyStmt *) stmt)->query != NULL ?
				PGSH_UTILITY_DELEGATE : PGSH_UTILITY_SELF;

		default:
			return PGSH_UTILITY_SELF;
	}
}

/*
 * How a delegating utility's executor run will be told (see
 * ShieldDelegatedRun): sets pgsh_statement_frame.expect_source, the query
 * string its query is planned with (the prepared statement's for EXECUTE,
 * also under EXPLAIN and CREATE TABLE AS; the utility's own otherwise;
 * NULL if EXECUTE names no prepared statement, and will fail), and
 * pgsh_statement_frame.expect_run.
 */
static void
expect_delegated_run(PlannedStmt *pstmt, const char *queryString)
{
	Node	   *stmt = pstmt->utilityStmt;
	ExecuteStmt *execute = NULL;

	pgsh_statement_frame.expect_source = queryString;
	pgsh_statement_frame.expect_run = PGSH_RUN_SAME_STRING;
	pgsh_statement_frame.cursor_name = NULL;

	if (IsA(stmt, DeclareCursorStmt))
	{
		pgsh_statement_frame.expect_run = PGSH_RUN_CURSOR_PORTAL;
		pgsh_statement_frame.cursor_name =
			((DeclareCursorStmt *) stmt)->portalname;
		return;
	}

	/* EXECUTE, also under EXPLAIN and CREATE TABLE AS, runs the prepared text */
	if (IsA(stmt, ExecuteStmt))
	{
		execute = (ExecuteStmt *) stmt;
		pgsh_statement_frame.expect_run = PGSH_RUN_HIDDEN_PORTAL;
	}
	else if (IsA(stmt, CreateTableAsStmt) || IsA(stmt, ExplainStmt))
	{
		Node	   *query = IsA(stmt, ExplainStmt) ?
			((ExplainStmt *) stmt)->query : ((CreateTableAsStmt *) stmt)->query;

		if (IsA(query, Query) && ((Query *) query)->utilityStmt != NULL &&
			IsA(((Query *) query)->utilityStmt, ExecuteStmt))
		{
			execute = (ExecuteStmt *) ((Query *) query)->utilityStmt;
			/* EXPLAIN runs the cached plan itself; CREATE TABLE AS, EXECUTE */
			if (IsA(stmt, CreateTableAsStmt))
				pgsh_statement_frame.expect_run = PGSH_RUN_HIDDEN_PORTAL;
		}
	}
	if (execute != NULL)
	{
		PreparedStatement *prepared = FetchPreparedStatement(execute->name,
															 false);

		pgsh_statement_frame.expect_source =
			prepared ? prepared->plansource->query_string : NULL;
	}
}

/*
 * Give the query inside DECLARE CURSOR or CREATE TABLE AS its own
 * fingerprint, as PostgreSQL 18 does (see compat.h), before it is planned:
 * the planner, the executor and the views then see the inner query's
 * fingerprint, on every version.  The Query may belong to a cached plan:
 * writing its queryId there is harmless, since jumbling always computes the
 * same value for it.  Core's post-parse-analysis hook, through which
 * pg_shield remembers a statement's shape (see shape.c), is not called for
 * it before 18: its shape is noted here.
 */
static void
jumble_inner_query(PlannedStmt *pstmt, const char *queryString)
{
	Node	   *stmt = pstmt->utilityStmt;
	Node	   *inner = NULL;
	Query	   *query;

	if (PGSH_CORE_JUMBLES_INNER_QUERY || !IsQueryIdEnabled())
		return;
	if (IsA(stmt, DeclareCursorStmt))
		inner = ((DeclareCursorStmt *) stmt)->query;
	else if (IsA(stmt, CreateTableAsStmt))
		inner = ((CreateTableAsStmt *) stmt)->query;
	if (inner == NULL || !IsA(inner, Query))
		return;
	query = (Query *) inner;
	if (query->commandType == CMD_UTILITY)
		return;
	if (query->queryId == 0)
		(void) PGSH_JUMBLE_QUERY(query, queryString);
	pgsh_shape_note(query);
}

/*
 * A FETCH or MOVE that opens a frame reads a cursor that no statement of
 * its own admitted: one a function opened and returned (a refcursor), whose
 * query ran nested in that function's statement and starts its work here.
 * Each such FETCH is a statement of the cursor's query: admitted, given a
 * deadline and accounted as that query (its fingerprint, its plan's cost,
 * its text), so that the query's policies apply however it is run.
 */
static void
fetch_frame_begin(FetchStmt *fetch)
{
	Portal		portal = GetPortalByName(fetch->portalname);
	PlannedStmt *cursor;

	if (!PortalIsValid(portal) || portal->queryDesc == NULL)
		return;					/* it fails, or reads nothing */
	cursor = portal->queryDesc->plannedstmt;
	pgsh_statement_frame.admit = true;
	pgsh_statement_frame.queryid = PGSH_QUERYID(cursor->queryId);
	pgsh_statement_frame.cost =
		cursor->planTree ? cursor->planTree->total_cost : -1.0;
	pgsh_statement_frame.source = portal->sourceText;
	pgsh_statement_frame.stmt_location = cursor->stmt_location;
	pgsh_statement_frame.stmt_len = cursor->stmt_len;
}

/*
 * Open the frame of a top-level utility statement that is not plumbing
 * (see pgsh_utility_kind), before it runs: note who runs what, which
 * executor run it delegates to, and whether the frame admits it itself.
 * Called just before the utility's PG_TRY, whose pgsh_frame_end or
 * pgsh_frame_failed closes the frame.
 */
void
pgsh_frame_begin(PlannedStmt *pstmt, const char *queryString, bool delegate)
{
	/* a failure that no abort callback counted must not be lost */
	pgsh_statement_finish_pending_error(InvalidSubTransactionId);

	pgsh_statement_frame.delegate = delegate;
	pgsh_statement_frame.delegated = false;
	pgsh_statement_frame.error_noted = false;
	pgsh_statement_frame.userid = GetUserId();
	pgsh_statement_frame.queryid = PGSH_QUERYID(pstmt->queryId);
	pgsh_statement_frame.subid = GetCurrentSubTransactionId();
	pgsh_statement_frame.source = queryString;
	pgsh_statement_frame.stmt_location = pstmt->stmt_location;
	pgsh_statement_frame.stmt_len = pstmt->stmt_len;
	pgsh_statement_frame.outer_portal = ActivePortal;
	pgsh_statement_frame.expect_source = NULL;
	if (delegate)
	{
		expect_delegated_run(pstmt, queryString);
		jumble_inner_query(pstmt, queryString);
	}
	pgsh_statement_frame.delegated_qd = NULL;
	pgsh_statement_frame.stashed = false;
	pgsh_statement_frame.own_text =
		pgsh_statement_frame.expect_source == queryString;

	/*
	 * CALL and DO run no executor of their own, and the statements they run
	 * are nested: they are admitted as one statement, so that a procedure
	 * cannot escape the limits of its caller.
	 */
	pgsh_statement_frame.admit = !delegate &&
		(IsA(pstmt->utilityStmt, CallStmt) || IsA(pstmt->utilityStmt, DoStmt));
	pgsh_statement_frame.cost = -1.0;
	if (IsA(pstmt->utilityStmt, FetchStmt))
		fetch_frame_begin((FetchStmt *) pstmt->utilityStmt);
	pgsh_statement_frame.admitted = false;
	memset(&pgsh_statement_frame.adm, 0, sizeof(pgsh_statement_frame.adm));
	pgsh_statement_frame.deadline.at = 0;
	pgsh_statement_frame.deadline.enforce = false;

	/*
	 * Last: jumbling and noting the shape allocate, and this runs before the
	 * utility's PG_TRY.  Were the frame marked active before an error here,
	 * nothing would close it, and every later utility statement of the
	 * session would be taken for a nested one and escape admission.
	 */
	pgsh_statement_frame.active = true;
}

/*
 * Admit a CALL, a DO or a FETCH of a cursor without a unit (see
 * pgsh_frame_begin); called inside the utility's PG_TRY, so that a
 * rejection ends the frame.  Admission counts a
 * rejection itself: it must not be counted again as a failure.
 */
void
pgsh_frame_admit(void)
{
	ShieldAdmitRequest req;

	if (!pgsh_statement_frame.active || !pgsh_statement_frame.admit)
		return;
	(void) pgsh_policy_resolve_tagged(pgsh_statement_frame.userid,
									  pgsh_statement_frame.queryid,
									  &pgsh_statement_frame.policy,
									  &pgsh_statement_frame.policy_tag);
	req.userid = pgsh_statement_frame.userid;
	req.queryid = pgsh_statement_frame.queryid;
	req.cost = pgsh_statement_frame.cost;
	req.arrived = GetCurrentStatementStartTimestamp();
	req.policy = &pgsh_statement_frame.policy;
	req.policy_tag = pgsh_statement_frame.policy_tag;
	pgsh_statement_frame.error_noted = true;
	pgsh_admit(&req, &pgsh_statement_frame.adm);
	pgsh_statement_frame.error_noted = false;
	pgsh_statement_frame.admitted = true;

	/* its deadline may cancel it while it runs: the whole utility */
	if (pgsh_statement_frame.policy.deadline_from >= 0 &&
		pgsh_statement_frame.adm.governed)
	{
		pgsh_deadline_set(&pgsh_statement_frame.deadline,
						  &pgsh_statement_frame.policy,
						  pgsh_statement_frame.userid,
						  pgsh_statement_frame.queryid, req.arrived,
						  pgsh_statement_frame.adm.queue_ms);
		pgsh_deadline_call_begin(&pgsh_statement_frame.deadline);
	}
}

/*
 * An admitted utility ends, with this outcome for its breaker.  Cannot
 * fail.  Returns whether it outlived a monitored deadline.
 */
static bool
frame_ended(ShieldBreakerOutcome outcome)
{
	bool		would_cancel = false;

	if (!pgsh_statement_frame.admitted)
		return false;
	pgsh_statement_frame.admitted = false;
	pgsh_deadline_call_end(&pgsh_statement_frame.deadline);
	pgsh_statement_ended(&pgsh_statement_frame.deadline,
						 &pgsh_statement_frame.adm.breaker,
						 pgsh_statement_frame.userid,
						 pgsh_statement_frame.queryid, outcome, &would_cancel);
	return would_cancel;
}

/* Give back the slot of an admitted utility.  Cannot fail. */
static inline void
frame_release(void)
{
	uint32		slot_id = pgsh_statement_frame.adm.slot_id;

	if (slot_id != 0)
	{
		pgsh_statement_frame.adm.slot_id = 0;
		pgsh_admission_release(slot_id);
	}
}

/*
 * A frame opens at level 0 only (pgsh_utility_kind), and so ends there:
 * put the level back, should an error escaping a call that code inside the
 * frame caught (an exception block of a DO, say) have left it raised.  A
 * unit call still in progress here was unwound by the error the frame is
 * failing with (EXECUTE, EXPLAIN ANALYZE, ... whose query failed): fail
 * its unit now, before the level and the call are forgotten.
 */
static inline void
frame_level_reset(void)
{
	if (pgsh_unit_in_call != NULL)
		pgsh_statement_fail_unwound_call(InvalidSubTransactionId);
	pgsh_nesting_level = 0;
}

/*
 * Normal end of a top-level utility statement: close its frame, give back
 * its slot and end its deadline and breaker ticket.  A delegating utility
 * is accounted as the executor run it delegated to: recorded now if that
 * run has ended (its outcome waited, since the utility could still fail),
 * or at its own end otherwise (a cursor left open).  Any other utility is
 * recorded as itself, with its elapsed time and the rows it reports.
 */
void
pgsh_frame_end(double elapsed_ms, const QueryCompletion *qc)
{
	ShieldObservation obs;
	bool		would_cancel;

	pgsh_statement_frame.active = false;
	frame_level_reset();
	frame_release();
	would_cancel = frame_ended(PGSH_OUTCOME_SUCCESS);
	if (pgsh_statement_frame.delegated)
	{
		/* its executor run is the statement; recorded now if it ended */
		if (pgsh_statement_frame.stashed)
		{
			pgsh_statement_frame.stashed = false;
			pgsh_stats_record(&pgsh_statement_frame.stash);
		}
		return;
	}

	pgsh_observation_init(&obs, pgsh_statement_frame.userid,
						  pgsh_statement_frame.queryid,
						  GetCurrentStatementStartTimestamp());
	obs.exec_ms = elapsed_ms;
	obs.rows = qc ? qc->nprocessed : 0;
	obs.source = pgsh_statement_frame.source;
	obs.location = pgsh_statement_frame.stmt_location;
	obs.len = pgsh_statement_frame.stmt_len;
	obs.would_cancel = would_cancel;
	pgsh_statement_observe_admission(&obs, &pgsh_statement_frame.adm);
	pgsh_statement_frame.source = NULL;
	pgsh_stats_record(&obs);
}

/*
 * Called in PG_CATCH of a top-level utility statement.  If the statement
 * delegated to an executor run, that unit is failed by the abort callback;
 * if planning already noted the failure, keep that (it names the planned
 * statement); otherwise note the utility's own failure.
 */
void
pgsh_frame_failed(void)
{
	ShieldDeadlineError deadline = PGSH_DEADLINE_NONE;

	pgsh_statement_frame.active = false;
	frame_level_reset();
	frame_release();
	if (pgsh_statement_frame.admitted)
	{
		/* before frame_ended, which releases the deadline */
		deadline = pgsh_deadline_error(&pgsh_statement_frame.deadline);
		(void) frame_ended(deadline != PGSH_DEADLINE_NONE ?
						   PGSH_OUTCOME_FAILURE :
						   pgsh_breaker_outcome_of(geterrcode()));
	}
	if (pgsh_statement_frame.stashed)
	{
		/* its executor run completed, then the utility failed */
		pgsh_statement_frame.stashed = false;
		pgsh_statement_note_failure_text(pgsh_statement_frame.stash.userid,
										 pgsh_statement_frame.stash.queryid,
										 pgsh_statement_frame.stash.text, 0,
										 pgsh_statement_frame.stash.text_len);
		pgsh_statement_note_pending_error(pgsh_statement_frame.stash.userid,
										  pgsh_statement_frame.stash.queryid);
	}
	else if (!pgsh_statement_frame.delegated &&
			 !pgsh_statement_frame.error_noted)
	{
		pgsh_statement_note_failure_text(pgsh_statement_frame.userid,
										 pgsh_statement_frame.queryid,
										 pgsh_statement_frame.source,
										 pgsh_statement_frame.stmt_location,
										 pgsh_statement_frame.stmt_len);
		pgsh_statement_note_pending_error(pgsh_statement_frame.userid,
										  pgsh_statement_frame.queryid);
		pgsh_statement_note_deadline_cancelled(deadline != PGSH_DEADLINE_NONE);
	}
	pgsh_statement_frame.source = NULL;

	/* the cancel its deadline requested: replaced by pg_shield's error */
	if (deadline == PGSH_DEADLINE_CANCEL)
		pgsh_deadline_raise(&pgsh_statement_frame.deadline, true);
}
