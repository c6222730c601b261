/*-------------------------------------------------------------------------
 *
 * statement_int.h
 *		What the statement files share: the frame of the top-level utility
 *		statement, and the parts of a statement's end that units, frames
 *		and planning all go through.  Only statement.c,
 *		statement_planning.c and statement_utility.c include it; the rest
 *		of pg_shield goes through statement.h.  All of it is backend-local.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/statement_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_STATEMENT_INT_H
#define PGSH_STATEMENT_INT_H

#include "utils/portal.h"

#include "admission.h"
#include "breaker.h"
#include "compat.h"
#include "deadline.h"
#include "policy.h"
#include "statement.h"
#include "stats.h"

PGSH_BEGIN_INTERNAL

/*
 * How the executor run a delegating utility statement delegates to is told
 * from the runs that functions start inside it at level 0 (the parameters
 * of EXECUTE, event triggers): by what core gives it, never by comparing
 * texts, which a function can repeat.
 */
typedef enum ShieldDelegatedRun
{
	PGSH_RUN_SAME_STRING,		/* its query string is the utility's own (the
								 * same pointer): CREATE TABLE AS, EXPLAIN
								 * ANALYZE, COPY, REFRESH; EXPLAIN ANALYZE
								 * EXECUTE passes the prepared statement's */
	PGSH_RUN_CURSOR_PORTAL,		/* DECLARE: in the portal of the cursor */
	PGSH_RUN_HIDDEN_PORTAL		/* EXECUTE, CREATE TABLE AS EXECUTE: in the
								 * hidden portal ExecuteQuery creates, after
								 * the parameters are computed */
} ShieldDelegatedRun;

/*
 * The frame of the top-level utility statement now running, if any: see
 * statement_utility.c, which opens and closes it.
 */
typedef struct ShieldUtilityFrame
{
	bool		active;
	bool		delegate;		/* accounted by the executor run it starts */
	bool		delegated;		/* that executor run has started */
	bool		error_noted;	/* planning inside it noted a failure */
	bool		own_text;		/* its executor run shows the frame's text */
	Oid			userid;
	uint64		queryid;
	SubTransactionId subid;
	const char *source;			/* query string, valid while active */
	int			stmt_location;
	int			stmt_len;
	const char *expect_source;	/* query string of the query it delegates to,
								 * as the planner gets it; NULL if none can
								 * match */
	ShieldDelegatedRun expect_run;	/* how its executor run is told */
	Portal		outer_portal;	/* the portal running the utility */
	const char *cursor_name;	/* DECLARE: the cursor it opens */
	bool		admit;			/* CALL, DO, or FETCH or MOVE of a cursor
								 * without a unit: admitted as a statement */
	double		cost;			/* for admission: the plan's, or -1 */
	bool		admitted;		/* and admission let it run */
	ShieldAdmission adm;		/* what admission decided for it */
	ShieldDeadline deadline;	/* its deadline, once admitted */
	ShieldEffectivePolicy policy;
	uint64		policy_tag;		/* see ShieldUnit (statement.c) */
	QueryDesc  *delegated_qd;	/* that executor run */
	bool		stashed;		/* it ended: its outcome waits in stash */
	ShieldObservation stash;
	char		stash_text[PGSH_QUERY_TEXT_SIZE];
} ShieldUtilityFrame;

/* A hot-path accessor: see its definition in statement_utility.c. */
extern ShieldUtilityFrame pgsh_statement_frame;

/*
 * Would a statement starting now be a unit of its own?  True at nesting
 * level 0 outside any utility frame, or inside a delegating frame whose
 * executor run has not started yet.  Asked at every statement's planning
 * (statement_planning.c) and ExecutorStart (statement.c): inline, here.
 */
static inline bool
pgsh_statement_at_top_level(void)
{
	if (pgsh_nesting_level != 0)
		return false;
	if (!pgsh_statement_frame.active)
		return true;
	return pgsh_statement_frame.delegate && !pgsh_statement_frame.delegated;
}

/* Admission's part of a unit's observation. */
static inline void
pgsh_statement_observe_admission(ShieldObservation *obs,
								 const ShieldAdmission *adm)
{
	obs->admitted = adm->governed;
	obs->queued = adm->queued;
	obs->queue_ms = adm->queue_ms;
	obs->would_reject = adm->would_reject;
	obs->would_queue = adm->would_queue;
	obs->role_active = adm->role_active;
}

/*
 * statement.c: a failure noted in PG_CATCH (a unit's, a frame's, a
 * planning's), counted by the next abort callback; see there.
 */
extern void pgsh_statement_note_failure_text(Oid userid, uint64 queryid,
											 const char *source,
											 int location, int len);
extern void pgsh_statement_note_pending_error(Oid userid, uint64 queryid);
extern void pgsh_statement_note_deadline_cancelled(bool cancelled);
extern void pgsh_statement_finish_pending_error(SubTransactionId floor_subid);

/* statement.c: the end of a unit or a frame with a deadline or a breaker */
extern void pgsh_statement_ended(ShieldDeadline *deadline,
								 const ShieldBreakerTicket *breaker,
								 Oid userid, uint64 queryid,
								 ShieldBreakerOutcome outcome,
								 bool *would_cancel);

/* statement.c: fail the unit whose unguarded call an error unwound */
extern void pgsh_statement_fail_unwound_call(SubTransactionId aborting);

PGSH_END_INTERNAL

#endif							/* PGSH_STATEMENT_INT_H */
