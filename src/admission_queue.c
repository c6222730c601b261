/*-------------------------------------------------------------------------
 *
 * admission_queue.c
 *		The admission queue: statements waiting for a slot, and the
 *		overload controller that sheds load when the wait for an instance
 *		slot stands.  The retry hints of the errors that turn statements
 *		away are admission_hint.c's.
 *
 * The queue.  A statement that finds a scope full waits in a queue ordered
 * by rank (critical, then statements whose transaction holds a
 * transaction id, then normal, then low) and arrival.  Slots are never
 * taken by a newcomer while anybody waits (no barging): admission.c's fast
 * path is only tried when the queue is empty.  A slot freed while
 * statements wait is handed over by the releaser, who runs the dispatcher
 * (pgsh_queue_dispatch_locked): in queue order, every waiter all of whose
 * scopes have room gets its slots, is marked granted and has its latch
 * set.  Only the chosen waiters wake (no thundering herd).  A waiter that
 * gives up (timeout, cancel, terminate) dequeues itself under the lock; if
 * it was granted meanwhile, it keeps the slot on timeout, or releases it
 * (dispatching it to the next waiter) on error.  Every deadlock_timeout, a
 * waiter looks for a wait-for cycle through itself (the holders of its
 * slots waiting for its transaction's locks, admission_deadlock.c); it
 * leaves the queue as on timeout if it finds one, and fails with 40P01.
 * When the queue is full (pg_shield.max_queue), a statement of a better
 * rank than low takes the place of the last low waiter, which is shed
 * (53S03).
 *
 * The overload controller, after CoDel (Nichols and Jacobson, "Controlling
 * Queue Delay", 2012).  A queue that absorbs a burst drains again; a queue
 * that stands only adds delay.  What tells them apart is the least wait
 * over an interval: if even the luckiest statement waited longer than the
 * target, the queue stands.  The controller watches the waiters the
 * instance scope held back (pg_shield.max_active: the instance has no room
 * for them, which is overload; a waiter held back by its own role's or
 * shape's limit says nothing about the instance).  Every interval
 * (pg_shield.overload_interval) it takes the least wait of the waiters
 * that left the queue, or, if none left and the queue never emptied, the
 * age of the oldest one.  Above pg_shield.target_queue_delay, it sheds
 * low: arriving low statements are turned away at once with 53S03 instead
 * of adding to the wait.  If the wait still stands after a whole interval
 * of shedding low, and is at least twice the target (severe), it sheds
 * normal too.  Critical statements, and statements whose transaction holds
 * a transaction id (it may hold row locks others wait for), are never
 * shed, only queued.  The first interval whose least wait is under the
 * target (an empty queue counts as no wait) clears the state.  The
 * verdict is evaluated lazily, by the statements that arrive while the
 * queue stands or while shedding, and by shield.status; its transitions
 * are events (overloaded, overload_cleared) and log lines.
 *
 * Owns: the queue, where a statement waits (pgsh_queue_admit), its
 *		  dispatcher, load shedding and the overload controller.
 * Calls: admission.c, admission_rate.c, admission_deadlock.c,
 *		  admission_hint.c, stats.c (recording), events.c, policy.c (names).
 * Locking: admission_lock (see admission.c); the controller's shedding
 *		  and interval_end are atomics written under it, read without it.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/admission_queue.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>

#include "access/xact.h"
#include "libpq/libpq.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/proc.h"

#include "admission_int.h"
#include "compat.h"
#include "errors.h"
#include "guc.h"
#include "shmem.h"

/* How a wait in the queue ended. */
typedef enum ShieldWaitOutcome
{
	PGSH_WAIT_GRANTED,
	PGSH_WAIT_TIMED_OUT,
	PGSH_WAIT_SHED,				/* displaced by a statement of a better rank */
	PGSH_WAIT_DEADLOCK			/* it waits for itself (admission_deadlock.c) */
} ShieldWaitOutcome;

/* What the error of a deadlock says: a DETAIL. */
#define DEADLOCK_DETAIL_SIZE 1024

/* This backend: enqueued, not yet admitted or gone. */
static bool admission_queue_waiting = false;
static TimestampTz admission_queue_waiting_arrived; /* arrival of the
													 * statement waiting; the
													 * rest is in pgsh_adm_me */

/*----
 * The queue (admission_lock held exclusively)
 *----
 */
/* Statements in the queue. */
static inline int
queue_length(void)
{
	return (int) pg_atomic_read_u32(&pgsh_adm->nqueued);
}

/*
 * Take the waiter at pos out of the queue.  A waiter the instance held
 * back tells the controller how long it waited; the last one to leave
 * tells it the queue emptied (no standing wait in this interval).
 */
static void
queue_remove_at(int pos)
{
	ShieldProcSlot *w = PGSH_PROC(pgsh_adm->queue[pos]);
	int			i;

	for (i = 0; i < w->nscopes; i++)
		w->scopes[i]->waiters--;
	if (w->instance_bound)
	{
		int64		waited = GetCurrentTimestamp() - w->enqueued;

		w->instance_bound = false;
		if (waited < pgsh_adm->interval_min_us)
			pgsh_adm->interval_min_us = Max(waited, 0);
		if (--pgsh_adm->instance_waiters == 0)
			pgsh_adm->interval_min_us = 0;
	}
	memmove(&pgsh_adm->queue[pos], &pgsh_adm->queue[pos + 1],
			(queue_length() - pos - 1) * sizeof(int));
	pg_atomic_fetch_sub_u32(&pgsh_adm->nqueued, 1);
}

/*
 * Put the waiter procno in the queue, behind every waiter of the same or a
 * better rank, and count it in its scopes' waiters.  The queue has a place
 * for every backend and a backend waits at most once, so it cannot
 * overflow.  nqueued is raised last, by a full barrier, so that a releaser
 * that decrements a scope afterwards sees the waiter (see admission.c).
 */
static void
queue_insert(int procno)
{
	ShieldProcSlot *w = PGSH_PROC(procno);
	int			pos;
	int			i;

	/* behind every waiter of the same or a better rank: arrival order */
	for (pos = queue_length(); pos > 0; pos--)
	{
		if (PGSH_PROC(pgsh_adm->queue[pos - 1])->rank <= w->rank)
			break;
	}
	memmove(&pgsh_adm->queue[pos + 1], &pgsh_adm->queue[pos],
			(queue_length() - pos) * sizeof(int));
	pgsh_adm->queue[pos] = procno;
	for (i = 0; i < w->nscopes; i++)
		w->scopes[i]->waiters++;
	/* a full barrier: see admission.c's header */
	pg_atomic_fetch_add_u32(&pgsh_adm->nqueued, 1);
}

/*
 * Take the waiter procno out of the queue, if it is still there: a waiter
 * that was shed meanwhile was removed by the one that displaced it.
 */
static void
queue_remove(int procno)
{
	int			pos;

	for (pos = 0; pos < queue_length(); pos++)
	{
		if (pgsh_adm->queue[pos] == procno)
		{
			queue_remove_at(pos);
			return;
		}
	}
}

/*
 * Hand free slots to waiters, in queue order: each waiter all of whose
 * scopes have room gets them and is woken.  Cannot fail.
 */
void
pgsh_queue_dispatch_locked(void)
{
	int			pos = 0;

	while (pos < queue_length())
	{
		int			procno = pgsh_adm->queue[pos];
		ShieldProcSlot *w = PGSH_PROC(procno);
		int32		limits[PGSH_MAX_SCOPES];
		int			i;

		/*
		 * The limits in force now, as the latest statement of each scope saw
		 * them (a policy change or a reload may have moved them); the
		 * instance's is pg_shield.max_active as last published.
		 */
		for (i = 0; i < w->nscopes; i++)
			limits[i] = pgsh_adm_waiter_limit_locked(w, i);
		w->role_active = 0;
		if (!pgsh_scope_take_slots(w->nscopes, w->scopes, limits, w->role_index,
								   &w->role_active))
		{
			pos++;
			continue;
		}
		w->granted = true;
		queue_remove_at(pos);
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
	}
}


/*----
 * The overload controller
 *----
 */

/* What an evaluation changed, to be reported once the lock is released. */
typedef struct ShieldOverloadChange
{
	bool		changed;
	ShieldAction action;
	char		detail[PGSH_EVENT_DETAIL_SIZE];
} ShieldOverloadChange;

/*
 * The name of a shedding level, as shield.status shows it.
 */
const char *
pgsh_shedding_name(ShieldShedding level)
{
	switch (level)
	{
		case PGSH_SHED_NONE:
			break;
		case PGSH_SHED_LOW:
			return "low";
		case PGSH_SHED_NORMAL:
			return "normal";
	}
	return "none";
}

/*
 * The age of the oldest waiter the instance holds back, in microseconds.
 */
static int64
oldest_instance_wait_locked(TimestampTz now)
{
	int64		oldest = 0;
	int			pos;

	for (pos = 0; pos < queue_length(); pos++)
	{
		ShieldProcSlot *w = PGSH_PROC(pgsh_adm->queue[pos]);

		if (w->instance_bound)
			oldest = Max(oldest, now - w->enqueued);
	}
	return oldest;
}

/*
 * If the interval is over, decide whether the instance is overloaded and
 * which priorities to shed, and start the next interval.  Caller holds
 * admission_lock exclusively; *change says what to report after it is
 * released.  Cannot fail.
 */
static void
overload_evaluate_locked(TimestampTz now, ShieldOverloadChange *change)
{
	int64		interval_us = (int64) pgsh_overload_interval_ms * 1000;
	int64		target_us = (int64) pgsh_target_queue_delay_ms * 1000;
	int64		delay_us;
	ShieldShedding old_level;
	ShieldShedding level;

	change->changed = false;
	if ((uint64) now < pg_atomic_read_u64(&pgsh_adm->interval_end))
		return;

	/*
	 * Nobody left the queue and it never emptied: the oldest waiter has
	 * waited at least as long as anybody could have.
	 */
	delay_us = pgsh_adm->interval_min_us;
	if (delay_us == PG_INT64_MAX)
		delay_us = oldest_instance_wait_locked(now);
	pgsh_adm->standing_delay_ms = (double) delay_us / 1000.0;

	old_level = (ShieldShedding) pg_atomic_read_u32(&pgsh_adm->shedding);
	if (pgsh_max_active <= 0 || delay_us <= target_us)
	{
		level = PGSH_SHED_NONE;
		pgsh_adm->severe_intervals = 0;
	}
	else
	{
		/* severe: twice the target, and shedding low did not help */
		if (delay_us >= 2 * target_us && old_level != PGSH_SHED_NONE)
			pgsh_adm->severe_intervals++;
		else
			pgsh_adm->severe_intervals = 0;
		if (old_level == PGSH_SHED_NORMAL || pgsh_adm->severe_intervals > 0)
			level = PGSH_SHED_NORMAL;
		else
			level = PGSH_SHED_LOW;
	}

	/* the next interval; a queue empty now has no standing wait */
	pgsh_adm->interval_min_us =
		pgsh_adm->instance_waiters == 0 ? 0 : PG_INT64_MAX;
	pg_atomic_write_u64(&pgsh_adm->interval_end, (uint64) (now + interval_us));

	if (level == old_level)
		return;
	pg_atomic_write_u32(&pgsh_adm->shedding, (uint32) level);
	change->changed = true;
	if (level == PGSH_SHED_NONE)
	{
		change->action = PGSH_ACTION_OVERLOAD_CLEARED;
		snprintf(change->detail, sizeof(change->detail),
				 "Statements waited at most %.0f ms for an instance slot over the last %d ms (pg_shield.target_queue_delay: %d ms); shedding stopped after %.0f ms.",
				 pgsh_adm->standing_delay_ms, pgsh_overload_interval_ms,
				 pgsh_target_queue_delay_ms,
				 (double) (now - pgsh_adm->overloaded_since) / 1000.0);
		pgsh_adm->overloaded_since = 0;
	}
	else
	{
		change->action = PGSH_ACTION_OVERLOADED;
		snprintf(change->detail, sizeof(change->detail),
				 "Statements waited at least %.0f ms for an instance slot over the last %d ms (pg_shield.target_queue_delay: %d ms); shedding priority %s%s.",
				 pgsh_adm->standing_delay_ms, pgsh_overload_interval_ms,
				 pgsh_target_queue_delay_ms,
				 level == PGSH_SHED_NORMAL ? "low and normal" : "low",
				 level == PGSH_SHED_NORMAL ? " (severe)" : "");
		if (old_level == PGSH_SHED_NONE)
			pgsh_adm->overloaded_since = now;
	}
}

/* Report what an evaluation changed: an event and, per log_actions, a line. */
static void
overload_report(const ShieldOverloadChange *change)
{
	if (change->changed)
		pgsh_event_record(change->action, true, InvalidOid, 0, change->detail);
}

/* Evaluate the controller if its interval is over.  Slow path. */
static void
overload_tick(TimestampTz now)
{
	ShieldOverloadChange change;

	if ((uint64) now < pg_atomic_read_u64(&pgsh_adm->interval_end))
		return;
	LWLockAcquire(pgsh_state->admission_lock, LW_EXCLUSIVE);
	overload_evaluate_locked(now, &change);
	LWLockRelease(pgsh_state->admission_lock);
	overload_report(&change);
}

/* Does the controller shed this statement (whatever the mode)? */
static bool
shed_applies(const ShieldAdmitRequest *req, ShieldShedding level)
{
	ShieldPriority priority = req->policy->priority;

	if (level == PGSH_SHED_NONE || priority == PGSH_PRIORITY_CRITICAL)
		return false;
	if (priority == PGSH_PRIORITY_NORMAL && level != PGSH_SHED_NORMAL)
		return false;
	/* it may hold row locks that the statements it would make room for need */
	return GetTopTransactionIdIfAny() == InvalidTransactionId;
}

/*
 * Shed the statement if the instance is overloaded and its priority is
 * being shed: an error (53S03) if enforced; in monitor mode (of the
 * policy that gave it its priority, or of the instance) only counted and
 * recorded.  Called for statements that need a slot while the queue
 * stands or the controller sheds; evaluates the controller first if its
 * interval is over.
 */
void
pgsh_queue_shed_check(const ShieldAdmitRequest *req, ShieldAdmission *adm)
{
	const ShieldEffectivePolicy *policy = req->policy;
	TimestampTz now = GetCurrentTimestamp();
	ShieldShedding level;
	bool		enforced;
	int			hint_ms;
	char		detail[PGSH_EVENT_DETAIL_SIZE];

	overload_tick(now);
	level = pgsh_admission_shedding();
	if (!shed_applies(req, level))
		return;

	enforced = pgsh_mode == PGSH_MODE_ENFORCE &&
		!(policy->priority_from >= 0 &&
		  policy->scopes[policy->priority_from].monitor);
	snprintf(detail, sizeof(detail),
			 "The instance is overloaded: statements waited at least %.0f ms for an instance slot (pg_shield.target_queue_delay: %d ms), and priority %s is being shed.",
			 pgsh_adm->standing_delay_ms, pgsh_target_queue_delay_ms,
			 pgsh_priority_name(policy->priority));
	pgsh_adm_note_rejection(req, PGSH_REJECT_SHED, enforced, false, 0.0,
							PGSH_ACTION_SHED, detail);
	if (!enforced)
	{
		adm->would_reject = true;
		return;
	}
	hint_ms = pgsh_hint_shed_ms(now);
	ereport(ERROR,
			(errcode(PGSH_ERRCODE_SHED),
			 errmsg("statement shed: the instance is overloaded"),
			 errdetail_internal("%s", detail),
			 errhint("Retry after %d ms.", hint_ms)));
}

/*
 * The queue is full: make room for a statement of rank rank by shedding
 * the last low waiter, if there is one and the newcomer ranks better.
 * Returns whether room was made.
 */
static bool
displace_low_waiter_locked(int rank)
{
	int			last = queue_length() - 1;
	int			procno;

	if (last < 0 || rank >= 3 || PGSH_PROC(pgsh_adm->queue[last])->rank != 3)
		return false;
	procno = pgsh_adm->queue[last];
	PGSH_PROC(procno)->shed = true;
	queue_remove_at(last);
	SetLatch(&ProcGlobal->allProcs[procno].procLatch);
	return true;
}

/*
 * Turn away a statement that finds a scope full and may not wait (53S01):
 * give back its rate tokens (needs), count and record the rejection, and
 * hint when the full scope (among full_needs) should have room.
 */
PGSH_NORETURN static pg_noinline void
reject_cannot_queue(const ShieldAdmitRequest *req, const ShieldScopeNeed *needs,
					int n, const ShieldScopeNeed *full_needs, int nfull,
					const char *detail)
{
	int			hint_ms = pgsh_hint_scope_ms(full_needs, nfull);

	pgsh_adm_refund_tokens(needs, n);
	pgsh_adm_note_rejection(req, PGSH_REJECT_QUEUE_FULL, true, false, 0.0,
							PGSH_ACTION_QUEUE_FULL, detail);
	ereport(ERROR,
			(errcode(PGSH_ERRCODE_CONCURRENCY_LIMIT),
			 errmsg("concurrency limit reached and the statement cannot queue"),
			 errdetail_internal("%s", detail),
			 errhint("Retry after %d ms.", hint_ms)));
}

/*
 * Count the statement that is waiting (its activity in *me) as failed:
 * cancelled, timed out by statement_timeout or terminated while queued.
 * Cannot fail.
 */
static void
count_failed_wait(TimestampTz arrived)
{
	ShieldObservation obs;

	pgsh_observation_init(&obs, pgsh_adm_me->shown.userid,
						  pgsh_adm_me->shown.queryid, arrived);
	obs.failed = true;
	obs.queued = true;
	obs.queue_ms = (double) (GetCurrentTimestamp() - pgsh_adm_me->shown.since) / 1000.0;
	pgsh_stats_record(&obs);
}

/*
 * Leave the queue.  If a slot was granted meanwhile: keep it if keep,
 * otherwise pass it on.  Returns whether the slot is now held.  Never
 * fails.
 */
static bool
leave_queue(bool keep)
{
	bool		granted;
	int			i;

	if (!admission_queue_waiting)
		return false;
	LWLockAcquire(pgsh_state->admission_lock, LW_EXCLUSIVE);
	granted = pgsh_adm_me->granted;
	if (!granted)
		queue_remove(PGSH_MY_PROCNO);
	else if (!keep)
	{
		for (i = pgsh_adm_me->nscopes - 1; i >= 0; i--)
			pg_atomic_fetch_sub_u32(&pgsh_adm_me->scopes[i]->active, 1);
		pgsh_queue_dispatch_locked();
	}
	pgsh_adm_me->granted = false;
	LWLockRelease(pgsh_state->admission_lock);
	admission_queue_waiting = false;
	if (granted && keep)
		return true;
	pgsh_adm_activity_set_idle();
	return false;
}

/*
 * A waiter checks that its client is still there at least this often, as
 * client_connection_check_interval would have core do while a statement
 * runs: a statement whose client disconnected must not keep its place in
 * the queue, nor be admitted later and run for nobody.
 */
#define CLIENT_CHECK_INTERVAL_MS 1000

/*
 * Is the client of this backend gone?  Only asks the socket (a poll(), no
 * read); a backend without a client socket has nobody to lose.
 */
static bool
client_gone(void)
{
	return MyProcPort != NULL && !pq_check_connection();
}

/*
 * Wait until granted, shed, or wait_until, or until the wait turns out to
 * be for itself: after deadlock_timeout, as core's deadlock detector
 * does for a lock, and every deadlock_timeout after that (the cycle can
 * close after the statement queued), it looks for a wait-for cycle
 * through the queue; deadlock_detail receives its description.  needs:
 * the statement's scopes, for that description.
 * Errors (cancel, terminate, statement_timeout, the search's) propagate;
 * the caller leaves the queue in PG_CATCH.  A client that disconnects
 * ends the backend as core does when it notices one (FATAL "connection to
 * client lost"); the exit callback leaves the queue.
 */
static ShieldWaitOutcome
wait_for_grant(TimestampTz wait_until, const ShieldScopeNeed *needs, int n,
			   char *deadlock_detail)
{
	TimestampTz next_client_check = 0;
	TimestampTz next_deadlock_check;
	int32		instance_limit = ((volatile ShieldScope *) &pgsh_adm->instance)->limit;

	next_deadlock_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													  DeadlockTimeout);
	for (;;)
	{
		TimestampTz now;
		TimestampTz wake;
		long		ms;

		pg_memory_barrier();
		if (((volatile ShieldProcSlot *) pgsh_adm_me)->granted)
		{
			/* what the dispatcher wrote before granting (role_active) */
			pg_read_barrier();
			return PGSH_WAIT_GRANTED;
		}
		if (((volatile ShieldProcSlot *) pgsh_adm_me)->shed)
			return PGSH_WAIT_SHED;
		now = GetCurrentTimestamp();
		if (now >= next_client_check)
		{
			if (next_client_check != 0 && client_gone())
			{
				ClientConnectionLost = true;
				InterruptPending = true;
				CHECK_FOR_INTERRUPTS();
			}
			next_client_check = now + CLIENT_CHECK_INTERVAL_MS * INT64CONST(1000);
		}
		if (now >= wait_until)
			return PGSH_WAIT_TIMED_OUT;
		if (now >= next_deadlock_check)
		{
			if (pgsh_deadlock_find(needs, n, deadlock_detail,
								   DEADLOCK_DETAIL_SIZE))
				return PGSH_WAIT_DEADLOCK;
			now = GetCurrentTimestamp();
			next_deadlock_check = TimestampTzPlusMilliseconds(now,
															  DeadlockTimeout);
			continue;			/* granted meanwhile? */
		}

		/*
		 * Each sleep is short: wait_until can be up to pg_shield's longest
		 * duration away, beyond what WaitLatch takes, and the client is
		 * looked at between sleeps.
		 */
		wake = Min(Min(wait_until, next_client_check), next_deadlock_check);
		ms = TimestampDifferenceMilliseconds(now, wake);
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(Max(ms, 1), CLIENT_CHECK_INTERVAL_MS),
						 PGSH_WAIT_EVENT_QUEUE);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();

		/*
		 * A reload that raised pg_shield.max_active (published in the
		 * instance scope by the postmaster, whose SIGHUP set this latch) lets
		 * in the waiters it makes room for at once, rather than when some
		 * other statement comes by.
		 */
		if (((volatile ShieldScope *) &pgsh_adm->instance)->limit != instance_limit)
		{
			instance_limit = ((volatile ShieldScope *) &pgsh_adm->instance)->limit;
			LWLockAcquire(pgsh_state->admission_lock, LW_EXCLUSIVE);
			pgsh_queue_dispatch_locked();
			LWLockRelease(pgsh_state->admission_lock);
		}
	}
}

/*
 * The statement's deadline (policy "deadline", counted from its arrival)
 * expired before it could be admitted: cancel it as a deadline would.
 */
static void
reject_deadline(const ShieldAdmitRequest *req, const ShieldScopeNeed *needs, int n,
				bool queued, double queue_ms)
{
	const ShieldEffectivePolicy *policy = req->policy;
	const ShieldPolicy *p = &policy->scopes[policy->deadline_from];
	char		limit[NAMEDATALEN + 160];
	char		deadline[64];
	char		detail[512];

	pgsh_adm_describe_limit(limit, sizeof(limit), needs, n);
	pgsh_duration_text(deadline, sizeof(deadline), p->deadline_us);
	if (queued)
		snprintf(detail, sizeof(detail),
				 "The deadline of %s (policy " INT64_FORMAT ") expired after %.0f ms in the admission queue.  %s.",
				 deadline, p->id, queue_ms, limit);
	else
		snprintf(detail, sizeof(detail),
				 "The deadline of %s (policy " INT64_FORMAT ") expired before the statement could be admitted.  %s.",
				 deadline, p->id, limit);
	pgsh_adm_refund_tokens(needs, n);
	pgsh_adm_note_rejection(req, PGSH_REJECT_DEADLINE, true, queued, queue_ms,
							PGSH_ACTION_DEADLINE, detail);
	ereport(ERROR,
			(errcode(PGSH_ERRCODE_DEADLINE),
			 errmsg("canceling statement due to pg_shield deadline"),
			 errdetail_internal("%s", detail)));
}

/*
 * Wait in the queue, after reporting what the statement's arrival changed
 * in the overload controller.  On any error (cancel, terminate,
 * statement_timeout, or the report's) leave the queue first, passing on a
 * slot granted meanwhile.
 */
static ShieldWaitOutcome
wait_in_queue(TimestampTz wait_until, const ShieldOverloadChange *change,
			  const ShieldScopeNeed *needs, int n, char *deadlock_detail)
{
	ShieldWaitOutcome outcome = PGSH_WAIT_TIMED_OUT;

	PG_TRY();
	{
		/* what its arrival changed: an error here leaves the queue too */
		overload_report(change);
		outcome = wait_for_grant(wait_until, needs, n, deadlock_detail);
	}
	PG_CATCH();
	{
		count_failed_wait(admission_queue_waiting_arrived); /* first: leaving clears
															 * the activity */
		(void) leave_queue(false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return outcome;
}

/*
 * The slow path of pgsh_admit: a scope is full, or statements wait.  Queue
 * up and let the dispatcher decide; wait if the statement may.  Sets
 * adm->role_active (the role's running statements once admitted, 0 if
 * unknown) and returns when the statement was let in if it waited, else 0;
 * rejections are errors.  Kept out of pgsh_admit, so that the fast path
 * carries none of its stack.
 */
TimestampTz
pgsh_queue_admit(const ShieldAdmitRequest *req, ShieldAdmission *adm,
				 const ShieldScopeNeed *needs, int n, ShieldScope *const *scopes,
				 const int32 *limits, int nslots, int role_slot,
				 int64 queue_timeout_us, TimestampTz deadline_at)
{
	TimestampTz admitted_at;
	ShieldPriority priority = req->policy->priority;
	bool		may_wait;
	bool		queue_full;
	TimestampTz enqueued;
	TimestampTz wait_until;
	bool		granted;
	ShieldWaitOutcome outcome;
	ShieldOverloadChange change;
	char		deadlock_detail[DEADLOCK_DETAIL_SIZE];

	LWLockAcquire(pgsh_state->admission_lock, LW_EXCLUSIVE);
	queue_full = queue_length() >= pgsh_max_queue;
	enqueued = GetCurrentTimestamp();

	(void) pgsh_adm_publish_limits_locked();	/* the dispatcher, below */
	pgsh_adm_me->granted = false;
	pgsh_adm_me->rank = priority == PGSH_PRIORITY_CRITICAL ? 0 :
		GetTopTransactionIdIfAny() != InvalidTransactionId ? 1 :
		priority == PGSH_PRIORITY_NORMAL ? 2 : 3;
	pgsh_adm_me->enqueued = enqueued;
	pgsh_adm_me->instance_bound = false;
	pgsh_adm_me->shed = false;
	pgsh_adm_me->deadlocked = false;
	pgsh_adm_me->nscopes = nslots;
	pgsh_adm_me->role_index = role_slot;
	memcpy(pgsh_adm_me->scopes, scopes, nslots * sizeof(ShieldScope *));
	memcpy(pgsh_adm_me->limits, limits, nslots * sizeof(int32));
	queue_insert(PGSH_MY_PROCNO);
	admission_queue_waiting = true;
	pgsh_queue_dispatch_locked();
	granted = pgsh_adm_me->granted;

	/* both at most PGSH_MAX_DURATION_US away: no overflow */
	wait_until = enqueued + queue_timeout_us;
	if (deadline_at != 0 && deadline_at < wait_until)
		wait_until = deadline_at;
	may_wait = queue_timeout_us > 0 && enqueued < wait_until;

	/* a full queue makes room for a better rank by shedding a low waiter */
	if (!granted && may_wait && queue_full &&
		displace_low_waiter_locked(pgsh_adm_me->rank))
		queue_full = false;
	may_wait = may_wait && !queue_full;

	if (granted)
	{
		/*
		 * Not a word about overload here: it holds slots that admission.c has
		 * not recorded as held yet, and reporting can fail.  It did not wait
		 * either, so it has nothing to tell the controller.
		 */
		pgsh_adm_me->granted = false;
		admission_queue_waiting = false;
		LWLockRelease(pgsh_state->admission_lock);
		adm->role_active = pgsh_adm_me->role_active;
		return 0;
	}
	if (!may_wait)
	{
		int			queued_now = queue_length() - 1;
		char		limit[NAMEDATALEN + 160];
		char		detail[512];

		queue_remove(PGSH_MY_PROCNO);
		admission_queue_waiting = false;
		overload_evaluate_locked(enqueued, &change);
		LWLockRelease(pgsh_state->admission_lock);
		overload_report(&change);

		/* it may not wait because its deadline has passed already */
		if (!queue_full && queue_timeout_us > 0)
			reject_deadline(req, needs, n, false, 0.0);

		pgsh_adm_describe_limit(limit, sizeof(limit), needs, n);
		if (queue_full)
			snprintf(detail, sizeof(detail),
					 "%s; the admission queue is full (waiting: %d).",
					 limit, queued_now);
		else
			snprintf(detail, sizeof(detail),
					 "%s; its queue_timeout is 0.", limit);
		reject_cannot_queue(req, needs, n, needs, n, detail);
	}

	/*
	 * It waits.  If the instance scope is what holds it back, its wait tells
	 * the overload controller about the instance.
	 */
	if (nslots > 0 && scopes[0] == &pgsh_adm->instance && limits[0] >= 0 &&
		pg_atomic_read_u32(&pgsh_adm->instance.active) >= (uint32) limits[0])
	{
		pgsh_adm_me->instance_bound = true;
		pgsh_adm->instance_waiters++;
	}
	pgsh_adm_activity_set(PGSH_PROC_QUEUED, req, enqueued, deadline_at);
	overload_evaluate_locked(enqueued, &change);	/* after it counts */
	LWLockRelease(pgsh_state->admission_lock);
	admission_queue_waiting_arrived = req->arrived;

	outcome = wait_in_queue(wait_until, &change, needs, n, deadlock_detail);
	if (outcome == PGSH_WAIT_GRANTED)
	{
		granted = true;
		admission_queue_waiting = false;	/* out of the queue: nobody writes
											 * me now */
	}
	else
	{
		/*
		 * Granted just as its wait ended: it runs (after a deadlock search,
		 * the holder it waited for has let its slot go, so the cycle is
		 * broken).
		 */
		granted = leave_queue(true);
		/* displaced just as its wait ended: it was shed all the same */
		if (!granted && pgsh_adm_me->shed)
			outcome = PGSH_WAIT_SHED;
	}

	admitted_at = GetCurrentTimestamp();
	adm->queued = true;
	adm->queue_ms = (double) (admitted_at - enqueued) / 1000.0;

	if (!granted && outcome == PGSH_WAIT_SHED)
	{
		char		detail[512];
		int			hint_ms = pgsh_hint_scope_ms(needs, n);

		snprintf(detail, sizeof(detail),
				 "The admission queue was full (pg_shield.max_queue: %d) and a statement of a higher priority took this low priority statement's place after it waited %.0f ms.",
				 pgsh_max_queue, adm->queue_ms);
		pgsh_adm_refund_tokens(needs, n);
		pgsh_adm_note_rejection(req, PGSH_REJECT_SHED, true, true,
								adm->queue_ms, PGSH_ACTION_SHED, detail);
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_SHED),
				 errmsg("statement shed: the admission queue is full"),
				 errdetail_internal("%s", detail),
				 errhint("Retry after %d ms.", hint_ms)));
	}
	if (!granted && outcome == PGSH_WAIT_DEADLOCK)
	{
		/*
		 * It waits for a slot held by a statement that waits, directly or
		 * not, for a lock its transaction holds: only its own error can end
		 * the wait before the queue timeout, and, as for a deadlock between
		 * locks, the transaction has to be retried.
		 */
		pgsh_adm_refund_tokens(needs, n);
		pgsh_adm_note_rejection(req, PGSH_REJECT_DEADLOCK, true, true,
								adm->queue_ms, PGSH_ACTION_DEADLOCK,
								deadlock_detail);
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_DEADLOCK),
				 errmsg("deadlock detected between the admission queue and a lock"),
				 errdetail_internal("%s", deadlock_detail),
				 errhint("Retry the transaction.")));
	}
	if (!granted)
	{
		char		limit[NAMEDATALEN + 160];
		char		detail[512];
		char		timeout[64];
		int			hint_ms;

		if (deadline_at != 0 && deadline_at < enqueued + queue_timeout_us)
			reject_deadline(req, needs, n, true, adm->queue_ms);
		pgsh_adm_describe_limit(limit, sizeof(limit), needs, n);
		snprintf(detail, sizeof(detail),
				 "%s; the statement waited %.0f ms (queue_timeout: %s).",
				 limit, adm->queue_ms,
				 pgsh_duration_text(timeout, sizeof(timeout), queue_timeout_us));
		hint_ms = pgsh_hint_scope_ms(needs, n);
		pgsh_adm_refund_tokens(needs, n);
		pgsh_adm_note_rejection(req, PGSH_REJECT_QUEUE_TIMEOUT, true, true,
								adm->queue_ms, PGSH_ACTION_QUEUE_TIMEOUT, detail);
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_QUEUE_TIMEOUT),
				 errmsg("timed out waiting in the pg_shield admission queue"),
				 errdetail_internal("%s", detail),
				 errhint("Retry after %d ms.", hint_ms)));
	}
	adm->role_active = pgsh_adm_me->role_active;
	return admitted_at;
}

/*
 * The controller's state for shield.status, evaluated first if its
 * interval is over: the shedding level, and the standing wait for an
 * instance slot over the last interval.
 */
ShieldShedding
pgsh_admission_overload(double *queue_delay_ms)
{
	if (pgsh_adm == NULL)
	{
		*queue_delay_ms = 0.0;
		return PGSH_SHED_NONE;
	}
	overload_tick(GetCurrentTimestamp());
	*queue_delay_ms = pgsh_adm->standing_delay_ms;
	return pgsh_admission_shedding();
}

/* Is this backend in the queue? */
bool
pgsh_queue_waiting(void)
{
	return admission_queue_waiting;
}

/* Leave the queue, passing on a slot granted meanwhile.  Never fails. */
void
pgsh_queue_leave(void)
{
	(void) leave_queue(false);
}

/*
 * The backend exits (FATAL skips PG_CATCH): count the statement that was
 * waiting as failed, and leave the queue.  Never fails.
 */
void
pgsh_queue_exit(void)
{
	if (!admission_queue_waiting)
		return;
	count_failed_wait(admission_queue_waiting_arrived); /* first: leaving clears
														 * the activity */
	(void) leave_queue(false);
}

/*
 * Turn away a statement that needs a slot in a full scope while other
 * statements of its session hold slots (an open cursor, a portal a row
 * limit suspended): it may not wait, since the statement it would wait
 * behind could be waiting for its session (the cursor's next FETCH).
 * needs: all its scopes, whose rate tokens are given back; unheld: those
 * its session does not hold, one of which is full.
 */
void
pgsh_queue_reject_holding(const ShieldAdmitRequest *req,
						  const ShieldScopeNeed *needs, int n,
						  const ShieldScopeNeed *unheld, int nunheld)
{
	char		limit[NAMEDATALEN + 160];
	char		detail[512];

	pgsh_adm_describe_limit(limit, sizeof(limit), unheld, nunheld);
	snprintf(detail, sizeof(detail),
			 "%s; the session holds a slot for another statement (an open cursor or portal), so it cannot wait.",
			 limit);
	reject_cannot_queue(req, needs, n, unheld, nunheld, detail);
}
