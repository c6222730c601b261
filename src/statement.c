/*-------------------------------------------------------------------------
 *
 * statement.c
 *		The unit pg_shield admits and accounts: a top-level statement,
 *		followed from its start to its end on every path.
 *
 * A statement is governed once, at the outermost level (the reference,
 * "Accounted Statements").  Three shapes reach the hooks:
 *
 *	- a plannable statement (simple or extended protocol, prepared or not):
 *	  the unit runs from its ExecutorStart to its ExecutorEnd;
 *	- a utility statement that runs one query through the executor
 *	  (EXPLAIN ANALYZE, CREATE TABLE AS, SELECT INTO, COPY (query) TO,
 *	  DECLARE CURSOR, REFRESH MATERIALIZED VIEW, EXECUTE): the unit is that
 *	  executor run, so that the executed plan is what gets accounted (and
 *	  admitted); the utility only opens a "frame" that delegates to it.  If
 *	  no executor run happens (plain EXPLAIN, COPY FROM, WITH NO DATA), the
 *	  utility accounts itself;
 *	- any other utility statement (DDL, VACUUM, CALL, DO, ...): the unit is
 *	  the utility itself, and everything it runs is nested.
 *
 * Statements run by functions, triggers, SPI or the planner are nested:
 * pgsh_nesting_level counts the planner, executor and nested utility calls
 * now running, and only level 0 can start a unit.
 *
 * The statement module is split by responsibility, as pgvector splits
 * hnsw*.c around hnsw.h: the rest of pg_shield calls it through
 * statement.h, and its files share statement_int.h.
 *
 *	- statement.c, this file: the life cycle of executor units (which
 *	  executor run is one; its start, its suspension and resumption between
 *	  the queries of a statement that rules rewrote; its end; its failure,
 *	  found by the transaction and subtransaction abort callbacks), and the
 *	  failures noted in PG_CATCH that those callbacks count;
 *	- statement_utility.c: how each utility statement is treated, and the
 *	  frame that follows a top-level one while it runs;
 *	- statement_planning.c: the planning of the top-level statement.
 *
 * Several executor units can be open at once (a cursor stays open while
 * other statements run), so they are kept in a small backend-local array.
 * ExecutorEnd is not called for a statement that fails (the portal is
 * marked failed and PortalCleanup skips it), so failed units are finished
 * by the transaction and subtransaction abort callbacks, by subtransaction
 * id: a unit started in subtransaction S is failed when S or an ancestor
 * aborts, and survives the abort of a subtransaction it started itself (a
 * PL/pgSQL exception block inside the statement).
 *
 * A failed utility statement, or a top-level planning failure, is noted in
 * PG_CATCH as a pending error and counted by the abort callback, so that
 * counting happens once, outside the error path, with the same no-fail
 * recording code.  Callbacks never raise errors and never allocate.
 *
 * It reads the frame (pgsh_statement_frame) on the hot path, and writes
 * into it what the unit a frame delegates to has become.
 *
 * Owns: the executor units, pgsh_nesting_level, and the transaction and
 *		  subtransaction callbacks that end failed units.
 * Calls: admission.c (pgsh_admit), admission_held.c (release), deadline.c,
 *		  breaker.c, policy.c, stats.c (recording), stats_table.c (texts),
 *		  events.c.
 * Locking: backend-local state only, no lock; the modules it calls take
 *		  their own (see shmem.c).
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/statement.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/memutils.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "utils/portal.h"

#include "admission.h"
#include "breaker.h"
#include "compat.h"
#include "deadline.h"
#include "events.h"
#include "guc.h"
#include "policy.h"
#include "shmem.h"
#include "statement.h"
#include "statement_int.h"
#include "stats.h"

/*
 * Hot-path accessors, described in statement.h: the hooks keep the nesting
 * level around every planner, executor and utility call, and the inline
 * functions of statement.h read the others at every executor call, so that
 * the usual call costs no function call.  Only the statement module and
 * hooks.c write them.
 */
int			pgsh_nesting_level = 0;
QueryDesc  *pgsh_unit_in_call = NULL;
QueryDesc  *pgsh_last_unit_qd = NULL;
ShieldUnitRef pgsh_last_unit = {-1, PGSH_UNIT_NONE};
SubTransactionId pgsh_unit_in_call_inner = InvalidSubTransactionId;

/* An executor run being accounted. */
typedef struct ShieldUnit
{
	QueryDesc  *queryDesc;		/* NULL if the slot is free */

	/*
	 * Who runs what: the current user at the start, the fingerprint, the
	 * plan's estimated total cost, the statement's start (arrived), and the
	 * policies that apply (policy, policy_tag).  Also what admission is
	 * asked, so kept here rather than copied onto the hot path's stack.
	 */
	ShieldAdmitRequest req;
	SubTransactionId subid;		/* subtransaction the unit started in */
	int			stmt_location;	/* the statement's text in sourceText */
	int			stmt_len;
	double		exec_ms;		/* time in ExecutorRun and ExecutorFinish */
	uint64		rows;			/* rows processed by top-level ExecutorRun */
	bool		failed;			/* an error escaped one of its executor calls */
	bool		deadline_cancelled; /* pg_shield's deadline canceled it */
	bool		would_cancel;	/* monitor mode: it outlived its deadline */
	bool		unguarded;		/* its level-0 executor calls run without
								 * PG_TRY (see pgsh_unit_call_begin) */
	bool		ends_with_work; /* it has a deadline or a breaker: its end
								 * must see to them */
	Portal		multi_portal;	/* a statement rules rewrote into several
								 * queries: its portal (see unit_suspend) */
	int			fail_code;		/* its SQLSTATE, if caught (0: not known) */
	ShieldAdmission adm;		/* what admission decided */
	ShieldDeadline deadline;	/* its deadline (at 0: none) */
	ShieldEffectivePolicy policy;	/* req.policy: resolved once */
} ShieldUnit;

static ShieldUnit *statement_units = NULL;
static int	statement_units_allocated = 0;
static int	statement_units_used = 0;	/* slots [0, statement_units_used) may
										 * be in use */

/*
 * The queryDesc of a unit between two queries of its statement (see
 * unit_suspend): no executor run has this address.
 */
static QueryDesc statement_units_suspended_marker;
static int	statement_units_suspended = 0;

/* A failure noted in PG_CATCH, counted by the abort callback. */
static struct
{
	bool		active;
	Oid			userid;
	uint64		queryid;
	SubTransactionId subid;
	TimestampTz started;
	bool		deadline_cancelled; /* an admitted utility (CALL, DO, FETCH)
									 * canceled by its deadline */
}			statement_pending_error;

/*
 * Text of the statement that failed last, copied in PG_CATCH (while the
 * source string is still valid) into static memory, so that the abort
 * callback can give a fingerprint seen only failing its text sample
 * without allocating.
 */
static struct
{
	Oid			userid;
	uint64		queryid;
	int			len;			/* 0 if none */
	char text[	PGSH_QUERY_TEXT_SIZE];
}			statement_failure_text;

static void pgsh_xact_callback(XactEvent event, void *arg);
static void pgsh_subxact_callback(SubXactEvent event,
								  SubTransactionId mySubid,
								  SubTransactionId parentSubid, void *arg);

/*
 * Is this backend a client backend (see pgsh_tracking_enabled)?  -1 until
 * decided.  A hot-path accessor: pgsh_tracking_enabled, inline in
 * statement.h, reads it at every hook call.
 */
int			pgsh_client_backend = -1;

/*
 * Decide pgsh_client_backend when it is first asked, not in _PG_init,
 * which runs in the postmaster before a backend is forked and has a type.
 * Without pg_shield's shared memory, no backend is followed.
 */
void
pgsh_client_backend_decide(void)
{
	pgsh_client_backend = pgsh_state != NULL &&
		MyBackendType == B_BACKEND && !IsParallelWorker();
}

/*
 * Is this the query string of the message the client sent, as postgres.c
 * gives it (debug_query_string)?  The same string for the simple protocol;
 * for the extended protocol's Bind and Execute, the portal's copy of it.
 * Code that runs at level 0 outside pg_shield's hooks (deferred triggers
 * and foreign-key checks fired at commit, a fast-path function call) runs
 * the queries of its functions, not the client's: at a commit that ends
 * the message (Sync, or the end of a simple query) or in a fast-path call
 * debug_query_string is NULL or the client's statement, never the
 * function's query.
 */
static inline bool
sent_by_client(const char *source)
{
	return source != NULL && debug_query_string != NULL &&
		(source == debug_query_string ||
		 strcmp(source, debug_query_string) == 0);
}

/*
 * Is this executor run a unit of its own?  Besides the planner's rule
 * (pgsh_statement_at_top_level), it must run the client's query in a
 * portal: a loop of a deferred trigger fired at commit runs at level 0 in
 * a portal of its own, and belongs to the statement that queued the
 * trigger.  Inside a
 * delegating utility, only the run of the utility's own query is the unit
 * (functions that evaluate EXECUTE's parameters run first, at level 0
 * too); and a statement that rules rewrote into several queries is
 * one unit, begun by its first query (the later ones resume it: see
 * unit_suspend).
 */
static bool
unit_should_begin(QueryDesc *queryDesc)
{
	Portal		portal = ActivePortal;

	if (!pgsh_statement_at_top_level() || portal == NULL)
		return false;

	if (pgsh_statement_frame.active)
	{
		/* a delegating frame not yet delegated: is this its query? */
		if (pgsh_statement_frame.expect_source == NULL)
			return false;
		switch (pgsh_statement_frame.expect_run)
		{
			case PGSH_RUN_SAME_STRING:
				return queryDesc->sourceText ==
					pgsh_statement_frame.expect_source;
			case PGSH_RUN_CURSOR_PORTAL:
				return portal != pgsh_statement_frame.outer_portal &&
					strcmp(portal->name, pgsh_statement_frame.cursor_name) == 0;
			case PGSH_RUN_HIDDEN_PORTAL:
				return portal != pgsh_statement_frame.outer_portal &&
					!portal->visible;
		}
		return false;
	}

	/*
	 * Only postgres.c creates the unnamed portal, for a simple query or an
	 * unnamed Bind: a run in it is the client's, and a strcmp is spared on
	 * the usual path.  SPI names every portal it creates.
	 */
	if (portal->name[0] != '\0' && !sent_by_client(queryDesc->sourceText))
		return false;

	if (list_length(portal->stmts) > 1)
	{
		ListCell   *lc;

		foreach(lc, portal->stmts)
		{
			PlannedStmt *stmt = lfirst_node(PlannedStmt, lc);

			if (stmt->commandType != CMD_UTILITY)
				return stmt == queryDesc->plannedstmt;
		}
	}
	return true;
}


/* Copy a failing statement's text; no allocation, cannot fail. */
void
pgsh_statement_note_failure_text(Oid userid, uint64 queryid,
								 const char *source, int location, int len)
{
	const char *text = pgsh_statement_text(source, location, len, &len);

	statement_failure_text.len = 0;
	if (text == NULL || queryid == 0)
		return;
	if (len >= PGSH_QUERY_TEXT_SIZE)
		len = pg_mbcliplen(text, len, PGSH_QUERY_TEXT_SIZE - 1);
	memcpy(statement_failure_text.text, text, len);
	statement_failure_text.text[len] = '\0';
	statement_failure_text.len = len;
	statement_failure_text.userid = userid;
	statement_failure_text.queryid = queryid;
}

/* Point a failed observation at its text, if it was copied. */
static void
attach_failure_text(ShieldObservation *obs)
{
	if (statement_failure_text.len > 0 &&
		statement_failure_text.queryid == obs->queryid &&
		statement_failure_text.userid == obs->userid)
	{
		obs->text = statement_failure_text.text;
		obs->text_len = statement_failure_text.len;
	}
}

/* Count the noted failure now.  Cannot fail. */
static void
count_pending_error(void)
{
	ShieldObservation obs;

	pgsh_observation_init(&obs, statement_pending_error.userid, statement_pending_error.queryid,
						  statement_pending_error.started);
	obs.failed = true;
	if (statement_pending_error.deadline_cancelled)
		obs.rejected = PGSH_REJECT_DEADLINE;
	attach_failure_text(&obs);
	statement_pending_error.active = false;
	pgsh_stats_record(&obs);
}

/*
 * Note a failure, to be counted by the next abort callback.  If an earlier
 * one was never counted (no abort followed it), count it first.
 */
void
pgsh_statement_note_pending_error(Oid userid, uint64 queryid)
{
	if (statement_pending_error.active)
		count_pending_error();
	statement_pending_error.active = true;
	statement_pending_error.userid = userid;
	statement_pending_error.queryid = queryid;
	statement_pending_error.subid = GetCurrentSubTransactionId();
	statement_pending_error.started = GetCurrentStatementStartTimestamp();
	statement_pending_error.deadline_cancelled = false;
	if (pgsh_statement_frame.active)
		pgsh_statement_frame.error_noted = true;
}

/*
 * Say whether the failure just noted is the cancel of an admitted utility
 * (CALL, DO, FETCH) by its deadline, which statement_utility.c knows and
 * the statistics count as such.
 */
void
pgsh_statement_note_deadline_cancelled(bool cancelled)
{
	statement_pending_error.deadline_cancelled = cancelled;
}

/*----
 * Executor units
 *----
 */

/*----
 * A statement that rules rewrote into several queries (a DO ALSO rule) runs
 * them one after the other in its portal, each with an executor run of its
 * own, at level 0.  It is admitted once, by its first query, and holds its
 * slot, deadline and breaker ticket until its last query ends: between two
 * of them the unit is suspended (its queryDesc is statement_units_suspended_marker),
 * and the next query's ExecutorStart resumes it.  Should the statement fail
 * in between, the abort callback finds the unit suspended and fails it.
 *----
 */

/* Does a plannable query follow pstmt in the portal?  (NOTIFY may too.) */
static bool
later_query_in_portal(Portal portal, PlannedStmt *pstmt)
{
	ListCell   *lc;
	bool		seen = false;

	foreach(lc, portal->stmts)
	{
		PlannedStmt *stmt = lfirst_node(PlannedStmt, lc);

		if (seen && stmt->commandType != CMD_UTILITY)
			return true;
		if (stmt == pstmt)
			seen = true;
	}
	return false;
}

/*
 * The executor run of one query of a unit's statement ends: if another
 * query of it follows, suspend the unit and return true.
 */
static bool
unit_suspend(ShieldUnit *unit, QueryDesc *queryDesc)
{
	if (ActivePortal != unit->multi_portal ||
		!later_query_in_portal(unit->multi_portal, queryDesc->plannedstmt))
		return false;
	if (pgsh_last_unit_qd == queryDesc)
		pgsh_last_unit_qd = NULL;
	unit->queryDesc = &statement_units_suspended_marker;
	statement_units_suspended++;
	return true;
}

/* The suspended unit that this executor run continues, or -1. */
static int
unit_to_resume(void)
{
	int			i;

	if (!pgsh_statement_at_top_level() || ActivePortal == NULL)
		return -1;
	for (i = 0; i < statement_units_used; i++)
	{
		if (statement_units[i].queryDesc == &statement_units_suspended_marker &&
			statement_units[i].multi_portal == ActivePortal)
			return i;
	}
	return -1;
}

/*
 * Resume unit i with the executor run of its statement's next query.  The
 * statement's estimated cost is that of all its queries.
 */
static ShieldUnitCalls
unit_resume(int i, QueryDesc *queryDesc)
{
	ShieldUnit *unit = &statement_units[i];
	Plan	   *plan = queryDesc->plannedstmt->planTree;

	statement_units_suspended--;
	unit->queryDesc = queryDesc;
	if (plan != NULL && unit->req.cost >= 0)
		unit->req.cost += plan->total_cost;
	pgsh_last_unit.index = i;
	pgsh_last_unit.calls = unit->unguarded ?
		PGSH_UNIT_UNGUARDED : PGSH_UNIT_GUARDED;
	pgsh_last_unit_qd = queryDesc;
	return pgsh_last_unit.calls;
}

/*
 * Start a unit for this executor run if it is one (see unit_should_begin),
 * or resume the suspended unit it continues.  The caller has checked that
 * it is not EXPLAIN without ANALYZE.  Returns whether a unit was started,
 * and how the rest of its ExecutorStart runs (its later calls:
 * pgsh_last_unit.calls).  Admission may wait here, or reject the statement
 * with an error.
 */
ShieldUnitCalls
pgsh_unit_begin(QueryDesc *queryDesc)
{
	ShieldUnit *unit = NULL;
	PlannedStmt *pstmt = queryDesc->plannedstmt;
	bool		text_known;
	int			i;

	if (unlikely(statement_units_suspended > 0) && (i = unit_to_resume()) >= 0)
		return unit_resume(i, queryDesc);

	if (!unit_should_begin(queryDesc))
		return PGSH_UNIT_NONE;

	for (i = 0; i < statement_units_used; i++)
	{
		if (statement_units[i].queryDesc == NULL)
		{
			unit = &statement_units[i];
			break;
		}
	}
	if (unit == NULL)
	{
		if (statement_units_used == statement_units_allocated)
		{
			int			newsize = Max(8, statement_units_allocated * 2);

			if (statement_units == NULL)
				statement_units = MemoryContextAlloc(TopMemoryContext,
													 newsize * sizeof(ShieldUnit));
			else
				statement_units = repalloc(statement_units, newsize * sizeof(ShieldUnit));
			for (i = statement_units_allocated; i < newsize; i++)
				statement_units[i].req.policy_tag = 0;
			statement_units_allocated = newsize;
		}
		unit = &statement_units[statement_units_used++];
	}

	/* filled in while free: in use once admitted (queryDesc set) */
	unit->queryDesc = NULL;
	unit->req.userid = GetUserId();
	unit->req.queryid = PGSH_QUERYID(pstmt->queryId);
	unit->subid = GetCurrentSubTransactionId();
	unit->req.cost = pstmt->planTree ? pstmt->planTree->total_cost : -1.0;
	unit->stmt_location = pstmt->stmt_location;
	unit->stmt_len = pstmt->stmt_len;
	unit->exec_ms = 0.0;
	unit->rows = 0;
	unit->req.arrived = GetCurrentStatementStartTimestamp();
	unit->failed = false;
	unit->deadline_cancelled = false;
	unit->would_cancel = false;
	unit->fail_code = 0;
	unit->multi_portal = NULL;
	if (!pgsh_statement_frame.active && list_length(ActivePortal->stmts) > 1)
		unit->multi_portal = ActivePortal;

	if (pgsh_statement_frame.active && pgsh_statement_frame.delegate)
	{
		pgsh_statement_frame.delegated = true;
		pgsh_statement_frame.delegated_qd = queryDesc;

		/*
		 * Up to PostgreSQL 17, the query inside CREATE TABLE AS and DECLARE
		 * CURSOR has no identifier of its own: use the utility's.
		 */
		if (unit->req.queryid == 0)
			unit->req.queryid = pgsh_statement_frame.queryid;

		/*
		 * The inner query of EXPLAIN, CREATE TABLE AS, DECLARE, COPY has no
		 * position of its own in the query string: show the statement the
		 * client sent.  unit_should_begin checked that the executor's
		 * sourceText is that same string (or a copy, for a cursor), so the
		 * frame's offsets apply.  EXECUTE runs the prepared statement's own
		 * text, which keeps its offsets.
		 */
		if (pgsh_statement_frame.own_text)
		{
			unit->stmt_location = pgsh_statement_frame.stmt_location;
			unit->stmt_len = pgsh_statement_frame.stmt_len;
		}
	}

	/*
	 * The policies that govern it, merged once here, at admission; the cache
	 * makes this a few local lookups.
	 */
	(void) pgsh_policy_resolve_tagged(unit->req.userid, unit->req.queryid,
									  &unit->policy, &unit->req.policy_tag);
	unit->req.policy = &unit->policy;

	/*
	 * Admission: may wait, and may reject the statement with an error, which
	 * admission counts itself; the delegating utility must not count it again
	 * as a failure.
	 */
	if (pgsh_statement_frame.active)
		pgsh_statement_frame.error_noted = true;
	pgsh_admit(&unit->req, &unit->adm);

	if (unlikely(unit->policy.deadline_from >= 0) && unit->adm.governed)
		pgsh_deadline_set(&unit->deadline, &unit->policy, unit->req.userid,
						  unit->req.queryid, unit->req.arrived,
						  unit->adm.queue_ms);
	else
	{
		unit->deadline.at = 0;
		unit->deadline.enforce = false;
	}

	/*
	 * A failure needs no text of its own once the fingerprint has one.  A
	 * statement with an enforced deadline or a breaker keeps PG_TRY: its
	 * calls' PG_CATCH tells a deadline's cancel, and gives a failure's
	 * SQLSTATE to the breaker.
	 */
	text_known = unit->req.queryid == 0 ||
		pgsh_stats_text_known(unit->req.userid, unit->req.queryid);
	unit->ends_with_work = unit->deadline.at != 0 ||
		unit->adm.breaker.threshold > 0;
	unit->unguarded = text_known && !unit->deadline.enforce &&
		unit->adm.breaker.threshold == 0;
	unit->queryDesc = queryDesc;
	pgsh_last_unit.index = unit - statement_units;
	pgsh_last_unit.calls = unit->unguarded ?
		PGSH_UNIT_UNGUARDED : PGSH_UNIT_GUARDED;
	pgsh_last_unit_qd = queryDesc;

	/*
	 * The rest of ExecutorStart (initializing the plan) runs unguarded when
	 * the text is known, even for a statement with a deadline or a breaker:
	 * its deadline may cancel it from its first ExecutorRun on (a deadline
	 * that passed meanwhile cancels that at once), and a failure there, which
	 * is rare, gives its breaker no verdict.  That keeps a setjmp off their
	 * start.
	 */
	return text_known ? PGSH_UNIT_UNGUARDED : PGSH_UNIT_GUARDED;
}

/* Index of the unit of this executor run, or -1. */
static inline int
unit_index(QueryDesc *queryDesc)
{
	int			i;

	for (i = 0; i < statement_units_used; i++)
	{
		if (statement_units[i].queryDesc == queryDesc)
			return i;
	}
	return -1;
}

/*
 * unit_index, exported: statement_utility.c asks whether the query of a
 * cursor already has a unit.
 */
int
pgsh_unit_lookup(QueryDesc *queryDesc)
{
	return unit_index(queryDesc);
}

/* The same, with how the unit's calls run (returned in registers). */
ShieldUnitRef
pgsh_unit_lookup_calls(QueryDesc *queryDesc)
{
	ShieldUnitRef ref = {-1, PGSH_UNIT_NONE};
	int			i = unit_index(queryDesc);

	if (i >= 0)
	{
		ref.index = i;
		ref.calls = statement_units[i].unguarded ?
			PGSH_UNIT_UNGUARDED : PGSH_UNIT_GUARDED;
	}
	return ref;
}

/*
 * Add a top-level ExecutorRun or ExecutorFinish call to its unit.  Rows are
 * summed per call because es_processed restarts at each ExecutorRun (a
 * cursor fetched several times).
 */
void
pgsh_unit_add_call(int unit, QueryDesc *queryDesc, double ms, bool run)
{
	/* the unit the caller found before the call: it cannot have ended */
	Assert(unit >= 0 && unit < statement_units_used);
	if (statement_units[unit].queryDesc != queryDesc)
		return;
	statement_units[unit].exec_ms += ms;
	if (!run || queryDesc->estate == NULL)
		return;

	/*
	 * Holding a scrollable cursor at commit rewinds it and runs it again from
	 * the start into the hold store: that run's count is the total. A NO
	 * SCROLL cursor only stores the rows not fetched yet: they add up.
	 */
	if (ActivePortal != NULL && ActivePortal->holdStore != NULL &&
		ActivePortal->queryDesc == queryDesc &&
		(ActivePortal->cursorOptions & CURSOR_OPT_SCROLL) != 0)
		statement_units[unit].rows = queryDesc->estate->es_processed;
	else
		statement_units[unit].rows += queryDesc->estate->es_processed;
}

/*
 * The level-0 executor calls of a unit whose calls are guarded: its
 * deadline may cancel it while one runs (see deadline.c).
 */
void
pgsh_unit_guard_begin(int unit)
{
	pgsh_deadline_call_begin(&statement_units[unit].deadline);
}

/*
 * A guarded level-0 call has returned: from now on its deadline cannot
 * cancel the statement between its calls (see pgsh_deadline_call_end).
 * Called only when the call returns; a failure goes to pgsh_unit_failing.
 */
void
pgsh_unit_guard_end(int unit)
{
	pgsh_deadline_call_end(&statement_units[unit].deadline);
}

/*
 * A statement with a deadline or a breaker ends, with this outcome for its
 * breaker: disarm its deadline (in monitor mode, note whether it outlived
 * it), and move its breaker.  Runs in abort callbacks: cannot fail.
 */
void
pgsh_statement_ended(ShieldDeadline *deadline,
					 const ShieldBreakerTicket *breaker,
					 Oid userid, uint64 queryid, ShieldBreakerOutcome outcome,
					 bool *would_cancel)
{
	if (deadline->at != 0)
	{
		pgsh_deadline_end(deadline);
		if (pgsh_deadline_overran(deadline))
		{
			char		scope[NAMEDATALEN + 96];
			char		limit[64];
			char		detail[PGSH_EVENT_DETAIL_SIZE];

			*would_cancel = true;
			pgsh_policy_describe(scope, sizeof(scope), deadline->policy_role,
								 deadline->policy_queryid,
								 deadline->policy_id, true);
			snprintf(detail, sizeof(detail),
					 "%s sets a deadline of %s; the statement ran past it, and enforcement would have canceled it.",
					 scope, pgsh_duration_text(limit, sizeof(limit),
											   deadline->limit_us));
			pgsh_event_record(PGSH_ACTION_DEADLINE, false, userid, queryid,
							  detail);
		}
	}
	if (breaker->threshold > 0)
		pgsh_breaker_outcome(breaker, userid, queryid, outcome);
}


/*
 * Give back the admission slots a unit holds: those of its scopes that no
 * other statement of this backend holds (an open cursor keeps the scopes
 * it shares).  First thing when a unit ends, so that a waiter gets them as
 * soon as possible.  Cannot fail.
 */
static inline void
unit_release(ShieldUnit *unit)
{
	uint32		slot_id = unit->adm.slot_id;

	if (slot_id == 0)
		return;
	unit->adm.slot_id = 0;
	pgsh_admission_release(slot_id);
}

/*
 * Free a unit's slot, and drop it from the suspended count and the
 * last-unit shortcut.  Freeing the last slot in use shrinks
 * statement_units_used past the free slots before it, so that the scans of
 * units stay short.  Cannot fail.
 */
static inline void
unit_free(int index)
{
	if (statement_units[index].queryDesc == &statement_units_suspended_marker)
		statement_units_suspended--;
	if (statement_units[index].queryDesc == pgsh_last_unit_qd)
		pgsh_last_unit_qd = NULL;
	statement_units[index].queryDesc = NULL;
	if (index != statement_units_used - 1)
		return;
	statement_units_used = index;
	while (statement_units_used > 0 && statement_units[statement_units_used - 1].queryDesc == NULL)
		statement_units_used--;
}

/*
 * Called in PG_CATCH of any executor call of a unit: an error that escapes
 * an executor call always fails its portal (PortalRun and the utilities
 * mark it failed), so the unit has failed, whichever (sub)transaction
 * aborts next.  Keep its text and its SQLSTATE; the abort or commit
 * callback counts it.  If the error is the cancel of the unit's deadline,
 * raise pg_shield's own error instead, which says so.
 */
void
pgsh_unit_failing(QueryDesc *queryDesc)
{
	int			i = pgsh_unit_lookup(queryDesc);

	if (i < 0)
		return;
	statement_units[i].failed = true;
	statement_units[i].fail_code = geterrcode();
	pgsh_statement_note_failure_text(statement_units[i].req.userid,
									 statement_units[i].req.queryid,
									 queryDesc->sourceText,
									 statement_units[i].stmt_location,
									 statement_units[i].stmt_len);

	/* the cancel its deadline requested: replaced by pg_shield's error */
	if (unlikely(statement_units[i].deadline.enforce))
	{
		ShieldDeadlineError e = pgsh_deadline_error(&statement_units[i].deadline);

		statement_units[i].deadline_cancelled = e != PGSH_DEADLINE_NONE;
		if (e == PGSH_DEADLINE_CANCEL)
			pgsh_deadline_raise(&statement_units[i].deadline, true);
	}
}

/*
 * The end of unit i that pgsh_unit_end could not record directly: build
 * its observation.  Kept apart, so that the usual end needs no stack.
 */
static pg_noinline void
unit_end_observed(int i, QueryDesc *queryDesc)
{
	ShieldUnit *unit = &statement_units[i];
	ShieldObservation obs;

	pgsh_observation_init(&obs, unit->req.userid, unit->req.queryid,
						  unit->req.arrived);
	obs.exec_ms = unit->exec_ms;
	obs.rows = unit->rows;
	obs.cost = unit->req.cost;
	obs.source = queryDesc->sourceText;
	obs.location = unit->stmt_location;
	obs.len = unit->stmt_len;
	obs.would_cancel = unit->would_cancel;
	pgsh_statement_observe_admission(&obs, &unit->adm);
	unit_free(i);

	/*
	 * Inside the utility that ran it (EXPLAIN ANALYZE, REFRESH MATERIALIZED
	 * VIEW CONCURRENTLY, ...), the statement is not over: the utility can
	 * still fail.  Its outcome is recorded when the utility ends.
	 */
	if (pgsh_statement_frame.active &&
		pgsh_statement_frame.delegated_qd == queryDesc)
	{
		const char *text = pgsh_statement_text(obs.source, obs.location,
											   obs.len, &obs.text_len);

		pgsh_statement_frame.stash = obs;
		pgsh_statement_frame.stash.source = NULL;
		pgsh_statement_frame.stash.text = NULL;
		pgsh_statement_frame.stash.text_len = 0;
		if (text !=NULL)
		{
			int			len = obs.text_len;

			if (len >= PGSH_QUERY_TEXT_SIZE)
				len = pg_mbcliplen(text, len, PGSH_QUERY_TEXT_SIZE - 1);
			memcpy(pgsh_statement_frame.stash_text, text, len);
			pgsh_statement_frame.stash_text[len] = '\0';
			pgsh_statement_frame.stash.text = pgsh_statement_frame.stash_text;
			pgsh_statement_frame.stash.text_len = len;
		}
		pgsh_statement_frame.stashed = true;
		return;
	}
	pgsh_stats_record(&obs);
}

/* Normal end of an executor run: account it. */
void
pgsh_unit_end(QueryDesc *queryDesc)
{
	int			i = unit_index(queryDesc);
	ShieldUnit *unit;

	if (i < 0)
		return;
	unit = &statement_units[i];
	if (unlikely(unit->multi_portal != NULL) && unit_suspend(unit, queryDesc))
		return;
	unit_release(unit);
	if (unlikely(unit->ends_with_work))
	{
		pgsh_statement_ended(&unit->deadline, &unit->adm.breaker,
							 unit->req.userid, unit->req.queryid,
							 PGSH_OUTCOME_SUCCESS, &unit->would_cancel);
		if (unit->would_cancel)
		{
			unit_end_observed(i, queryDesc);
			return;
		}
	}

	/* the usual statement, recorded without an observation */
	if (!(pgsh_statement_frame.active &&
		  pgsh_statement_frame.delegated_qd == queryDesc) &&
		!unit->adm.queued && !unit->adm.would_reject &&
		!unit->adm.would_queue &&
		pgsh_stats_record_completed(unit->req.userid, unit->req.queryid,
									unit->req.arrived, unit->adm.governed,
									unit->adm.role_active, unit->exec_ms,
									unit->rows, unit->req.cost))
	{
		unit_free(i);
		return;
	}

	unit_end_observed(i, queryDesc);
}

/*
 * Finish the units whose portals end with this (sub)transaction: those
 * started in subtransaction floor_subid or later (all of them if it is
 * invalid), and every unit that failed, wherever it started: its portal is
 * failed and ExecutorEnd will not come.  A unit that did not fail (an open
 * cursor of a transaction that rolls back) counts as completed, with the
 * time and rows it had.  QueryDesc may be gone: not touched.  Runs in
 * callbacks: must not fail.
 */
static void
finish_units(SubTransactionId floor_subid)
{
	int			i;

	for (i = statement_units_used - 1; i >= 0; i--)
	{
		ShieldUnit *unit = &statement_units[i];
		ShieldObservation obs;

		if (unit->queryDesc == NULL)
			continue;
		if (!unit->failed && floor_subid != InvalidSubTransactionId &&
			unit->subid < floor_subid)
			continue;
		/* suspended between two of its queries: its statement failed */
		if (unit->queryDesc == &statement_units_suspended_marker)
			unit->failed = true;
		unit_release(unit);

		/*
		 * A unit that failed has its SQLSTATE if its calls were guarded,
		 * which they are when it has a breaker.  One that did not fail never
		 * finished: its transaction rolled back, or the backend exits.
		 */
		if (unit->ends_with_work)
			pgsh_statement_ended(&unit->deadline, &unit->adm.breaker,
								 unit->req.userid, unit->req.queryid,
								 unit->failed ?
								 pgsh_breaker_outcome_of(unit->fail_code) :
								 PGSH_OUTCOME_ABANDONED,
								 &unit->would_cancel);

		pgsh_observation_init(&obs, unit->req.userid, unit->req.queryid,
							  unit->req.arrived);
		obs.failed = unit->failed;
		if (unit->deadline_cancelled)
			obs.rejected = PGSH_REJECT_DEADLINE;
		obs.would_cancel = unit->would_cancel;
		obs.exec_ms = unit->exec_ms;
		obs.rows = unit->rows;
		obs.cost = unit->req.cost;
		if (unit->failed)
			attach_failure_text(&obs);
		pgsh_statement_observe_admission(&obs, &unit->adm);
		unit_free(i);
		pgsh_stats_record(&obs);
	}
}

/*
 * An unguarded executor call of a unit is in progress, and the
 * (sub)transaction aborting (InvalidSubTransactionId: the transaction) was
 * not started inside it: an error escaped the call (see
 * pgsh_unit_call_begin).  Fail its unit, and bring
 * the level back to 0, unless a CALL is running (its procedure's ROLLBACK
 * aborts transactions while it runs, and runs no unit).  Must run before
 * finish_units.  Cannot fail.
 */
void
pgsh_statement_fail_unwound_call(SubTransactionId aborting)
{
	int			i;

	if (aborting != InvalidSubTransactionId &&
		pgsh_unit_in_call_inner != InvalidSubTransactionId &&
		aborting >= pgsh_unit_in_call_inner)
		return;
	i = unit_index(pgsh_unit_in_call);
	if (i >= 0)
		statement_units[i].failed = true;
	/* the call ran at level 0, and whatever caught the error is outside it */
	pgsh_unit_in_call = NULL;
	pgsh_nesting_level = 0;
}

/*
 * Count the pending error if it was noted in subtransaction floor_subid or
 * a later one (any, if floor_subid is invalid), whose abort ends the
 * statement that failed.  Also called when a utility statement begins, so
 * that a failure no abort followed is not lost.  Cannot fail.
 */
void
pgsh_statement_finish_pending_error(SubTransactionId floor_subid)
{
	if (!statement_pending_error.active)
		return;
	if (floor_subid != InvalidSubTransactionId &&
		statement_pending_error.subid < floor_subid)
		return;

	count_pending_error();
}

/*----
 * Transaction callbacks
 *----
 */

/*
 * A procedure's COMMIT or ROLLBACK ends transactions while its CALL runs
 * and keeps its slot.  (A CALL that fails has released it in PG_CATCH,
 * before the abort.)
 */
static inline bool
frame_holds_slot(void)
{
	return pgsh_statement_frame.active && pgsh_statement_frame.adm.slot_id != 0;
}

/*
 * Transaction end: ExecutorEnd does not come for a failed statement, so
 * the units still open, the pending error and what admission still holds
 * are ended here, unless the CALL of a procedure, whose transactions end
 * while it runs, holds its slot.  Runs at every transaction end of every
 * backend: cheap when there is nothing to do, and cannot fail.
 */
static void
pgsh_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:

			/*
			 * Abort: finish the failed and abandoned units.  Commit: portals
			 * are closed before commit, so normally no unit is left; account
			 * any leftover as completed rather than lose it.  Then every unit
			 * has ended: nothing may be held or queued.  The checks before
			 * the calls only skip what would do nothing.
			 */
			if (pgsh_unit_in_call != NULL)
				pgsh_statement_fail_unwound_call(InvalidSubTransactionId);
			if (statement_units_used > 0)
				finish_units(InvalidSubTransactionId);
			if (statement_pending_error.active)
				pgsh_statement_finish_pending_error(InvalidSubTransactionId);
			if (!frame_holds_slot())
				pgsh_admission_cleanup();

			/*
			 * Between transactions, outside a CALL (whose procedure's COMMIT
			 * and ROLLBACK end transactions while it runs), no pg_shield call
			 * is on the stack: the level is 0.  Setting it repairs what an
			 * error escaping an unguarded read-only ExecutorFinish may have
			 * left (see hooks.c).
			 */
			if (!pgsh_statement_frame.active)
			{
				pgsh_nesting_level = 0;
				pgsh_deadline_xact_end();
			}
			break;

		default:
			break;
	}
}

/*
 * Subtransactions: note the first one started inside an unguarded unit
 * call, whose abort (an exception block) does not fail the call; at an
 * abort, end what started in the subtransaction or after it, as
 * pgsh_xact_callback does for the transaction.  Cannot fail.
 */
static void
pgsh_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	switch (event)
	{
		case SUBXACT_EVENT_START_SUB:
			if (pgsh_unit_in_call != NULL &&
				pgsh_unit_in_call_inner == InvalidSubTransactionId)
				pgsh_unit_in_call_inner = mySubid;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			if (pgsh_unit_in_call != NULL)
				pgsh_statement_fail_unwound_call(mySubid);
			finish_units(mySubid);
			pgsh_statement_finish_pending_error(mySubid);
			pgsh_deadline_subxact_aborted();
			break;
		default:
			break;
	}
}

/*
 * Register the callbacks.  Called from _PG_init in the postmaster; the
 * registration is inherited by every backend.
 */
void
pgsh_statement_init(void)
{
	RegisterXactCallback(pgsh_xact_callback, NULL);
	RegisterSubXactCallback(pgsh_subxact_callback, NULL);
}
