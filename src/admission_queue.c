/*-------------------------------------------------------------------------
 *
 * admission_queue.c
 *		The admission queue: statements waiting for a slot.
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

/* This backend: enqueued, not yet admitted or gone. */
static bool queue_waiting = false;
static TimestampTz queue_waiting_arrived;	/* arrival of the statement
											 * waiting; the rest is in
											 * pgsh_adm_me */

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

static void
queue_remove_at(int pos)
{
	ProcSlot   *w = PGSH_PROC(pgsh_adm->queue[pos]);
	int			i;

	for (i = 0; i < w->nscopes; i++)
		w->scopes[i]->waiters--;
	memmove(&pgsh_adm->queue[pos], &pgsh_adm->queue[pos + 1],
			(queue_length() - pos - 1) * sizeof(int));
	pg_atomic_fetch_sub_u32(&pgsh_adm->nqueued, 1);
}

static void
queue_insert(int procno)
{
	ProcSlot   *w = PGSH_PROC(procno);
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
	/* a full barrier: see the file header */
	pg_atomic_fetch_add_u32(&pgsh_adm->nqueued, 1);
}

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
		ProcSlot   *w = PGSH_PROC(procno);
		int32		limits[MAX_SCOPES];
		int			i;

		/*
		 * The limits in force now, as the latest statement of each scope
		 * saw them (a policy change or a reload may have moved them); the
		 * instance's is this backend's pg_shield.max_active.
		 */
		for (i = 0; i < w->nscopes; i++)
		{
			if (w->limits[i] < 0)
				limits[i] = -1;
			else if (w->scopes[i] == &pgsh_adm->instance)
				limits[i] = pgsh_max_active > 0 ? pgsh_max_active : -1;
			else
				limits[i] = w->scopes[i]->limit;
		}
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

static int
retry_hint_ms(void)
{
	double		ms = pgsh_adm->wait_ewma_ms;

	return (int) Max(10.0, Min(ms, 60000.0));
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

	if (!queue_waiting)
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
	queue_waiting = false;
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
 * Wait until granted or until wait_until.  Returns whether granted.
 * Errors (cancel, terminate, statement_timeout) propagate; the caller
 * leaves the queue in PG_CATCH.  A client that disconnects ends the
 * backend as core does when it notices one (FATAL "connection to client
 * lost"); the exit callback leaves the queue.
 */
static bool
wait_for_grant(TimestampTz wait_until)
{
	TimestampTz next_client_check = 0;

	for (;;)
	{
		TimestampTz now;
		long		ms;

		pg_memory_barrier();
		if (((volatile ProcSlot *) pgsh_adm_me)->granted)
		{
			/* what the dispatcher wrote before granting (role_active) */
			pg_read_barrier();
			return true;
		}
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
			return false;

		/*
		 * Each sleep is short: wait_until can be up to pg_shield's longest
		 * duration away, beyond what WaitLatch takes, and the client is
		 * looked at between sleeps.
		 */
		ms = TimestampDifferenceMilliseconds(now, Min(wait_until, next_client_check));
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(Max(ms, 1), CLIENT_CHECK_INTERVAL_MS),
						 PGSH_WAIT_EVENT_QUEUE);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * The statement's deadline (policy "deadline", counted from its arrival)
 * expired before it could be admitted: cancel it as a deadline would.
 */
static void
reject_deadline(const ShieldAdmitRequest *req, const ScopeNeed *needs, int n,
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
 * Wait in the queue.  On any error (cancel, terminate, statement_timeout)
 */
static bool
wait_in_queue(TimestampTz wait_until)
{
	bool		granted = false;

	PG_TRY();
	{
		granted = wait_for_grant(wait_until);
	}
	PG_CATCH();
	{
		pgsh_adm_count_failed_wait(queue_waiting_arrived);	/* first: leaving clears the activity */
		(void) leave_queue(false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return granted;
}

/*
 * The slow path of pgsh_admit: a scope is full, or statements wait.  Queue
 * up and let pgsh_queue_dispatch_locked() decide; wait if the statement may.  Sets
 * adm->role_active (the role's running statements once admitted, 0 if
 * unknown) and returns when the statement was let in if it waited, else 0;
 * rejections are errors.  Kept out of pgsh_admit, so that the fast path
 * carries none of its stack.
 */
TimestampTz
pgsh_queue_admit(const ShieldAdmitRequest *req, ShieldAdmission *adm,
			  const ScopeNeed *needs, int n, Scope *const *scopes,
			  const int32 *limits, int nslots, int role_slot,
			  int64 queue_timeout_us, TimestampTz deadline_at)
{
	TimestampTz admitted_at;
	PgshPriority priority = req->policy->priority;
	bool		may_wait;
	bool		queue_full;
	TimestampTz enqueued;
	TimestampTz wait_until;
	bool		granted;

	LWLockAcquire(pgsh_state->admission_lock, LW_EXCLUSIVE);
	queue_full = queue_length() >= pgsh_max_queue;
	enqueued = GetCurrentTimestamp();

	(void) pgsh_adm_publish_limits_locked();	/* pgsh_queue_dispatch_locked() below */
	pgsh_adm_me->granted = false;
	pgsh_adm_me->rank = priority == PGSH_PRIORITY_CRITICAL ? 0 :
		GetTopTransactionIdIfAny() != InvalidTransactionId ? 1 :
		priority == PGSH_PRIORITY_NORMAL ? 2 : 3;
	pgsh_adm_me->seq = pgsh_adm->next_seq++;
	pgsh_adm_me->nscopes = nslots;
	pgsh_adm_me->role_index = role_slot;
	memcpy(pgsh_adm_me->scopes, scopes, nslots * sizeof(Scope *));
	memcpy(pgsh_adm_me->limits, limits, nslots * sizeof(int32));
	queue_insert(PGSH_MY_PROCNO);
	queue_waiting = true;
	pgsh_queue_dispatch_locked();
	granted = pgsh_adm_me->granted;

	/* both at most PGSH_MAX_DURATION_US away: no overflow */
	wait_until = enqueued + queue_timeout_us;
	if (deadline_at != 0 && deadline_at < wait_until)
		wait_until = deadline_at;
	may_wait = !queue_full && queue_timeout_us > 0 && enqueued < wait_until;

	if (granted)
	{
		pgsh_adm_me->granted = false;
		queue_waiting = false;
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
		queue_waiting = false;
		LWLockRelease(pgsh_state->admission_lock);

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
		pgsh_adm_refund_tokens(needs, n);
		pgsh_adm_note_rejection(req, PGSH_REJECT_QUEUE_FULL, true, false, 0.0,
					   PGSH_ACTION_QUEUE_FULL, detail);
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_CONCURRENCY_LIMIT),
				 errmsg("concurrency limit reached and the statement cannot queue"),
				 errdetail_internal("%s", detail),
				 errhint("Retry after %d ms.", retry_hint_ms())));
	}

	pgsh_adm_activity_set(PROC_QUEUED, req, enqueued, deadline_at);
	LWLockRelease(pgsh_state->admission_lock);
	queue_waiting_arrived = req->arrived;

	granted = wait_in_queue(wait_until);
	if (!granted)
		granted = leave_queue(true);
	else
		queue_waiting = false;	/* out of the queue: nobody writes me now */

	admitted_at = GetCurrentTimestamp();
	adm->queued = true;
	adm->queue_ms = (double) (admitted_at - enqueued) / 1000.0;
	pgsh_adm->wait_ewma_ms = 0.9 * pgsh_adm->wait_ewma_ms + 0.1 * adm->queue_ms;

	if (!granted)
	{
		char		limit[NAMEDATALEN + 160];
		char		detail[512];

		char		timeout[64];

		if (deadline_at != 0 && deadline_at < enqueued + queue_timeout_us)
			reject_deadline(req, needs, n, true, adm->queue_ms);
		pgsh_adm_describe_limit(limit, sizeof(limit), needs, n);
		snprintf(detail, sizeof(detail),
				 "%s; the statement waited %.0f ms (queue_timeout: %s).",
				 limit, adm->queue_ms,
				 pgsh_duration_text(timeout, sizeof(timeout), queue_timeout_us));
		pgsh_adm_refund_tokens(needs, n);
		pgsh_adm_note_rejection(req, PGSH_REJECT_QUEUE_TIMEOUT, true, true,
					   adm->queue_ms, PGSH_ACTION_QUEUE_TIMEOUT, detail);
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_QUEUE_TIMEOUT),
				 errmsg("timed out waiting in the pg_shield admission queue"),
				 errdetail_internal("%s", detail),
				 errhint("Retry after %d ms.", retry_hint_ms())));
	}
	adm->role_active = pgsh_adm_me->role_active;
	return admitted_at;
}

/* Is this backend in the queue? */
bool
pgsh_queue_waiting(void)
{
	return queue_waiting;
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
	if (!queue_waiting)
		return;
	pgsh_adm_count_failed_wait(queue_waiting_arrived);	/* first: leaving
														 * clears the
														 * activity */
	(void) leave_queue(false);
}
