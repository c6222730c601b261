/*-------------------------------------------------------------------------
 *
 * deadline.c
 *		Deadlines of running statements.
 *
 * A policy's deadline bounds a statement's life from its arrival (so that
 * time in the admission queue counts) to its end.  Admission ends a wait
 * that would outlast it (admission.c); this file cancels the statement once
 * it runs.
 *
 * The timer is a private timeout (USER_TIMEOUT), registered the first time
 * a backend arms one, never core's STATEMENT_TIMEOUT: core reschedules or
 * disables that one between protocol messages, and its cancel would read as
 * statement_timeout's.  It is armed for the statement whose executor call
 * is running (statement.c brackets the level-0 executor calls of a
 * statement with a deadline, statement_utility.c a CALL or DO as a whole),
 * and stays armed
 * across the statement's calls.  The deadline is released when the
 * statement ends, on every path (its end, the abort of its transaction or
 * subtransaction, the close of its portal), and at the end of every
 * top-level transaction: from then on it can cancel nothing.
 *
 * Arming and disarming a timeout at every statement costs about 400
 * instructions, a third of pg_shield's whole cost per statement, so the
 * timer is left alone when it need not move.  Releasing a deadline does not
 * cancel the timer: it expires once, harmlessly.  Arming a deadline while
 * the timer is pending for an earlier time (the previous statement's
 * deadline, the usual case, since deadlines follow arrivals) leaves it
 * pending: when it fires early, the handler moves it to the deadline in
 * force (pgsh_deadline_armed_at) with enable_timeout_at(), which only
 * touches timeout.c's list and setitimer(), as handle_sig_alarm() itself
 * does for periodic timeouts.  Only a deadline earlier than the pending
 * time, or no pending time at all, makes the statement arm the timer.
 *
 * The handler runs in the SIGALRM handler: it only sets flags.  While one
 * of the statement's calls runs (pgsh_deadline_cancel_allowed), it
 * requests a query cancel, which the next CHECK_FOR_INTERRUPTS raises as
 * core's "canceling statement due to user request" (57014).  The call's
 * PG_CATCH in statement.c or statement_utility.c recognizes it
 * (pgsh_deadline_error) and
 * replaces it with pg_shield's own error, which names the policy, the
 * limit and the elapsed time.  Outside a call (a cursor between fetches, a
 * portal suspended between Execute messages, the client idle) the handler
 * only marks the deadline as passed: nothing is cancelled there, least of
 * all the next statement, and the statement's next call fails at once.  A
 * cancel requested while a call ran but not yet seen when the call returns
 * is withdrawn then, for the same reason.
 *
 * An exception block of PL/pgSQL inside the statement can catch the
 * cancel (WHEN query_canceled; WHEN OTHERS does not catch 57014): when a
 * subtransaction aborts inside the call after the deadline passed, the
 * cancel is requested again, so that the statement cannot outlive its
 * deadline by catching it.
 *
 * statement_timeout and lock_timeout keep running: whichever timeout is due
 * first fires, with its own message.  When both statement_timeout and the
 * deadline fired before a CHECK_FOR_INTERRUPTS saw either, core reports
 * statement_timeout; the deadline's message replaces it only if the
 * deadline was due first.
 *
 * Owns: the deadline timer (a USER_TIMEOUT), its handler, and the
 *		  deadline the timer is armed for.
 * Calls: events.c (the deadline event), policy.c (names, durations).
 * Locking: backend-local state only, no lock; nothing allocates but
 *		  pgsh_deadline_raise, which records its event (events_lock) and
 *		  raises the error.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/deadline.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/timeout.h"

#include "deadline.h"
#include "errors.h"
#include "events.h"
#include "guc.h"

/* The private timeout, registered at the first arming; MAX_TIMEOUTS until. */
static TimeoutId deadline_timeout = MAX_TIMEOUTS;

/*
 * The deadline in force: of the statement the timer was last armed for, 0
 * once released.  The timer may be pending for an earlier time, and for a
 * released one (see above).  Read by the handler.
 *
 * Which statement's it is, is told by its token, not its time: statements
 * sent in one message arrive at the same time, and with the same policy
 * have the same deadline, yet the end of one (a cursor a function closes)
 * must not release the other's.  Tokens are never reused in a backend, and
 * 0, released, is none.
 */
volatile TimestampTz pgsh_deadline_armed_at = 0;
uint64		pgsh_deadline_armed_token = 0;
static uint64 deadline_last_token = 0;

/* The timer fired for pgsh_deadline_armed_at. */
static volatile sig_atomic_t deadline_fired = false;

/* pg_shield's error for it was raised: never again for that deadline. */
static bool deadline_reported = false;

/* statement_timeout was armed, due no later than the deadline, at arming. */
static bool deadline_after_statement_timeout = false;

/*
 * Hot-path accessors, for the inline functions of deadline.h that the
 * hooks call around every executor call: whether the armed deadline may
 * cancel the statement now, and whether its cancel was requested while it
 * could not.  sig_atomic_t, since the timeout's handler reads and writes
 * them.
 */
volatile sig_atomic_t pgsh_deadline_cancel_allowed = false;
volatile sig_atomic_t pgsh_deadline_cancel_requested = false;

/*
 * The timeout handler, called from the SIGALRM handler (which has set the
 * latch): flags only.  Requests a cancel as StatementCancelHandler does,
 * but only while a call of the statement runs.
 */
static void
deadline_timeout_handler(void)
{
	TimestampTz at = pgsh_deadline_armed_at;

	/* pending for a released deadline: nothing is in force */
	if (at == 0)
		return;
	/* pending for an earlier deadline: move to the one in force */
	if (GetCurrentTimestamp() < at)
	{
		enable_timeout_at(deadline_timeout, at);
		return;
	}
	deadline_fired = true;
	if (pgsh_deadline_cancel_allowed && !proc_exit_inprogress)
	{
		pgsh_deadline_cancel_requested = true;
		InterruptPending = true;
		QueryCancelPending = true;
	}
}

/*
 * Fill in a statement's deadline from its resolved policies: the strictest
 * deadline, enforced unless its policy or pg_shield.mode is monitor.
 */
void
pgsh_deadline_set(ShieldDeadline *d, const ShieldEffectivePolicy *policy,
				  Oid userid, uint64 queryid, TimestampTz arrived,
				  double queue_ms)
{
	const ShieldPolicy *p;

	if (policy->deadline_from < 0)
	{
		d->at = 0;
		d->enforce = false;
		return;
	}
	p = &policy->scopes[policy->deadline_from];
	/* at most PGSH_MAX_DURATION_US after a timestamp of now: no overflow */
	d->at = arrived + p->deadline_us;
	d->token = ++deadline_last_token;
	d->enforce = !p->monitor && pgsh_mode == PGSH_MODE_ENFORCE;
	d->arrived = arrived;
	d->queue_ms = queue_ms;
	d->limit_us = p->deadline_us;
	d->policy_id = p->id;
	d->policy_role = p->role;
	d->policy_queryid = p->queryid;
	d->userid = userid;
	d->queryid = queryid;
}

/* Is the timer armed, and not fired, for this deadline? */
bool
pgsh_deadline_armed_for(const ShieldDeadline *d)
{
	/*
	 * Core disables every timeout after an error that reaches the top level,
	 * which a cursor of an outer savepoint survives: ask the timer itself.
	 */
	return pgsh_deadline_armed_token == d->token &&
		get_timeout_active(deadline_timeout);
}

/* A cancel requested by the timer, not seen yet: take it back. */
void
pgsh_deadline_withdraw_cancel(void)
{
	pgsh_deadline_cancel_requested = false;
	QueryCancelPending = false;
}

/*
 * Arm the timer for this deadline (pgsh_deadline_call_begin found it
 * unarmed).  If the deadline has passed, while no call ran or before the
 * first, raise its error now.
 */
void
pgsh_deadline_arm(const ShieldDeadline *d)
{
	if (pgsh_deadline_armed_token == d->token && deadline_fired)
		pgsh_deadline_raise(d, false);

	/*
	 * A deadline already past is armed too: the timer then fires at once, and
	 * the call is canceled at its first CHECK_FOR_INTERRUPTS, as it would be
	 * a moment later.
	 */
	if (deadline_timeout == MAX_TIMEOUTS)
		deadline_timeout = RegisterTimeout(USER_TIMEOUT,
										   deadline_timeout_handler);
	if (pgsh_deadline_cancel_requested)
		pgsh_deadline_withdraw_cancel();
	deadline_after_statement_timeout =
		get_timeout_active(STATEMENT_TIMEOUT) &&
		get_timeout_finish_time(STATEMENT_TIMEOUT) <= d->at;
	deadline_fired = false;
	deadline_reported = false;
	pgsh_deadline_armed_token = d->token;
	pgsh_deadline_armed_at = d->at;

	/* pending for an earlier time: it fires early, and moves (see above) */
	if (!get_timeout_active(deadline_timeout) ||
		get_timeout_finish_time(deadline_timeout) > d->at)
		enable_timeout_at(deadline_timeout, d->at);
}

/*
 * Called in the PG_CATCH of a call of the statement (or of its CALL or DO):
 * what the error in flight is to its deadline.  PGSH_DEADLINE_CANCEL: the
 * cancel the deadline requested (it passed, the error is a query cancel,
 * and statement_timeout was not due first), to be replaced by
 * pgsh_deadline_raise.  PGSH_DEADLINE_RAISED: pg_shield's own error, raised
 * at the start of the call (the deadline passed while no call ran).
 */
ShieldDeadlineError
pgsh_deadline_error(const ShieldDeadline *d)
{
	int			code;

	if (!d->enforce || pgsh_deadline_armed_token != d->token)
		return PGSH_DEADLINE_NONE;
	code = geterrcode();
	if (deadline_reported)
		return code == PGSH_ERRCODE_DEADLINE ?
			PGSH_DEADLINE_RAISED : PGSH_DEADLINE_NONE;
	if (deadline_fired && code == ERRCODE_QUERY_CANCELED &&
		!deadline_after_statement_timeout)
		return PGSH_DEADLINE_CANCEL;
	return PGSH_DEADLINE_NONE;
}

/*
 * Cancel the statement as pg_shield's deadline: record the action, and
 * raise the error.  in_catch: called in PG_CATCH, with the cancel it
 * replaces in flight.
 */
void
pgsh_deadline_raise(const ShieldDeadline *d, bool in_catch)
{
	char		scope[NAMEDATALEN + 96];
	char		limit[64];
	char		queued[64] = "";
	char		detail[PGSH_EVENT_DETAIL_SIZE];
	double		elapsed_ms;

	deadline_reported = true;
	pgsh_deadline_cancel_allowed = false;
	if (pgsh_deadline_cancel_requested)
		pgsh_deadline_withdraw_cancel();
	if (in_catch)
		FlushErrorState();

	elapsed_ms = (double) (GetCurrentTimestamp() - d->arrived) / 1000.0;
	pgsh_policy_describe(scope, sizeof(scope), d->policy_role,
						 d->policy_queryid, d->policy_id, true);
	pgsh_duration_text(limit, sizeof(limit), d->limit_us);
	if (d->queue_ms > 0)
		snprintf(queued, sizeof(queued),
				 ", %.0f ms of them in the admission queue", d->queue_ms);
	snprintf(detail, sizeof(detail),
			 "%s sets a deadline of %s; the statement was canceled %.0f ms after it arrived%s.",
			 scope, limit, elapsed_ms, queued);
	pgsh_event_record(PGSH_ACTION_DEADLINE, true, d->userid, d->queryid,
					  detail);
	ereport(ERROR,
			(errcode(PGSH_ERRCODE_DEADLINE),
			 errmsg("canceling statement due to pg_shield deadline"),
			 errdetail_internal("%s", detail)));
}

/*
 * Release the deadline the timer was armed for (pgsh_deadline_end, and
 * pgsh_deadline_xact_end at the end of a top-level transaction): it can
 * cancel nothing any more.  Never fails.
 */
void
pgsh_deadline_release(void)
{
	pgsh_deadline_armed_at = 0;
	pgsh_deadline_armed_token = 0;
	pgsh_deadline_cancel_allowed = false;
	deadline_fired = false;
	deadline_reported = false;
	if (pgsh_deadline_cancel_requested)
		pgsh_deadline_withdraw_cancel();
}

/*
 * A subtransaction aborted (statement.c calls this after finishing the
 * statements that end with it).  If it aborted inside a call of a statement
 * whose deadline passed, an exception block caught the cancel: request it
 * again.  Never fails.
 */
void
pgsh_deadline_subxact_aborted(void)
{
	if (pgsh_deadline_armed_at != 0 && deadline_fired && !deadline_reported &&
		pgsh_deadline_cancel_allowed && !proc_exit_inprogress)
	{
		pgsh_deadline_cancel_requested = true;
		InterruptPending = true;
		QueryCancelPending = true;
	}
}
