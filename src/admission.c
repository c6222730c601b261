/*-------------------------------------------------------------------------
 *
 * admission.c
 *		Admission control: where a statement is admitted (pgsh_admit), its
 *		cost ceiling, breaker and fast path to a slot; the admission
 *		module's shared memory and locking protocol.
 *
 * A statement is admitted once, when it starts (statement.c decides when
 * that is).  Admission checks, in order: the strictest max_cost of the
 * matching policies against the executed plan; the fingerprint's circuit
 * breaker (breaker.c); a token in the bucket of every matching scope with
 * max_rate; and, if the backend holds no slot yet, a slot in every
 * matching concurrency scope: the instance (pg_shield.max_active), the
 * role, the fingerprint, the fingerprint for the role.  A session counts
 * once in each scope: a statement it starts while others of it hold slots
 * (a second cursor, say) shares the scopes they hold and takes a slot only
 * in the others, without waiting, since waiting while the session holds
 * slots could wait for itself (see admit_holding).
 *
 * The work is divided between eight files, as pgvector divides hnsw*.c:
 *
 *	admission.c			this file, where a statement is admitted: pgsh_admit
 *						and its fast path, the cost ceiling, the breaker
 *						check, the memo of a session's scopes; and the
 *						module's shared memory;
 *	admission_scope.c	the scope table (where slots and buckets are counted);
 *	admission_rate.c	rate limits (the scopes' token buckets);
 *	admission_queue.c	where a statement waits: the queue, dispatch, the
 *						overload controller and load shedding;
 *	admission_deadlock.c
 *						wait-for cycles through the queue: a waiter queued
 *						behind statements that wait for its own
 *						transaction's locks;
 *	admission_held.c	where a statement is released: the statements of
 *						the session that hold slots, their release, and
 *						the backstops at the end of a transaction and at
 *						exit;
 *	admission_activity.c
 *						shield.activity: the activity rows of the backends'
 *						slots and their reader;
 *	admission_hint.c	the retry hints of the errors that turn statements
 *						away.
 *
 * admission_int.h holds what they share; nothing outside them sees it.
 * The other files' headers say what they own and point here for the
 * locking protocol, which is described once, below.
 *
 * Limits come from each statement's resolved policy, so a policy change
 * applies to the next statement; each statement also publishes the limits
 * it found in its scopes (ShieldScope.limit), which the queue's dispatcher
 * applies to the statements already waiting, so that a raised or removed
 * limit reaches them.  The role scope of a statement is always counted (it
 * feeds shield.role_stats.active and peak_active); fingerprint scopes only
 * when a policy limits them.
 *
 * LOCKING.  pgsh_state->admission_lock guards the scope hash's structure,
 * the queue and the queue fields of every ShieldProcSlot:
 *
 *	- LW_SHARED to look scopes up and pin them, and to read the queue
 *	  (the deadlock search copies which scopes are full for each waiter);
 *	- LW_EXCLUSIVE to create or evict scopes, to enqueue, dequeue and
 *	  dispatch.
 *
 * A backend memoizes the scopes of its last statement and pins them
 * (ShieldScope.pins, incremented under the lock): a scope is evicted only when
 * nobody pins it, holds a slot in it or waits for it, so the fast path
 * uses the memo's pointers without taking the lock at all.  Scope slot
 * counts are atomics, changed with compare-and-swap when taking (so a
 * limit is never exceeded) and with fetch-sub when releasing.  The
 * lost-wakeup race between a releaser and a new waiter is closed by the
 * order of operations, both full barriers: a waiter first
 * increments nqueued, then (under the lock) tries the scopes; a releaser
 * first decrements the scope, then reads nqueued and dispatches if it is
 * not zero.  Either the waiter sees the free slot or the releaser sees the
 * waiter.  Rate buckets are protected by their scope's spinlock.  No other
 * lock is taken while admission_lock is held and nothing under it sleeps;
 * in particular, the deadlock search releases it before it asks the lock
 * manager who blocks whom (ProcArrayLock and every lock manager partition
 * lock).  The only error raised under it (a full scope table, which the
 * sizing rules out) releases it through the abort like any LWLock.
 * Backend-local state needs no lock: the memo (this file) and the
 * statements holding slots (admission_held.c).  The activity rows are
 * written by their own backend only and read without a lock, by their
 * change counts (admission_activity.c).
 *
 * Release (admission_held.c) never fails: atomics, the lock and SetLatch
 * only.  It runs when the statement holding the slot ends (statement.c:
 * ExecutorEnd, or the transaction and subtransaction callbacks for failed
 * and abandoned statements; statement_utility.c: the end of an admitted
 * CALL, DO or FETCH), and once more, as a backstop, from a
 * before_shmem_exit callback (pgsh_adm_exit) that pgsh_admit registers on
 * first use, which also covers FATAL errors and terminations while
 * queued.  A backend crash resets shared memory.
 *
 * Owns: pgsh_admit and its fast path, the cost ceiling, the breaker check,
 *		  the session's scope memo, and the module's shared memory.
 * Calls: admission_scope.c, admission_rate.c, admission_queue.c,
 *		  admission_held.c, breaker.c (pgsh_breaker_check), policy.c (scope
 *		  names), stats.c (recording), events.c.
 * Locking: admission_lock, atomics and spinlocks, as in LOCKING above.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/admission.c
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
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "admission_int.h"
#include "compat.h"
#include "errors.h"
#include "events.h"
#include "guc.h"
#include "shmem.h"
#include "stats.h"

/*
 * The admission module's shared memory, set up by pgsh_admission_shmem_init,
 * and this backend's slot in it, found by is_governed.  Hot-path
 * accessors: the admission files use them directly, since every statement
 * needs them; what protects each field is said at its declaration in
 * admission_int.h, under the protocol of the LOCKING paragraph above.
 */
ShieldAdmissionState *pgsh_adm = NULL;
ShieldProcSlotPadded *pgsh_adm_procs = NULL;
ShieldProcSlot *pgsh_adm_me = NULL;

static bool admission_exit_callback_registered = false;

/*
 * The id of the statement admitted last (ShieldAdmission.slot_id), under
 * which admission_held.c keeps it; 0 means none.
 */
static uint32 admission_held_last_id = 0;

/*
 * The admission module's shared memory: its state with the queue (a place
 * for every backend), the backends' slots, and the scope table.
 */
Size
pgsh_admission_shmem_size(void)
{
	Size		size;

	size = MAXALIGN(add_size(offsetof(ShieldAdmissionState, queue),
							 mul_size(MaxBackends + 1, sizeof(int))));
	size = add_size(size, MAXALIGN(mul_size(MaxBackends, sizeof(ShieldProcSlotPadded))));
	size = add_size(size, pgsh_scopes_shmem_size());
	return size;
}

/* Caller holds AddinShmemInitLock. */
void
pgsh_admission_shmem_init(void)
{
	bool		found;
	int			i;

	pgsh_adm = ShmemInitStruct("pg_shield admission",
							   offsetof(ShieldAdmissionState, queue) +
							   (MaxBackends + 1) * sizeof(int), &found);
	if (!found)
	{
		memset(&pgsh_adm->instance.key, 0, sizeof(ShieldScopeKey));
		pgsh_scope_init(&pgsh_adm->instance);
		pgsh_admission_publish_max_active(pgsh_max_active);
		pg_atomic_init_u32(&pgsh_adm->nqueued, 0);
		pg_atomic_init_u32(&pgsh_adm->shedding, PGSH_SHED_NONE);
		pg_atomic_init_u64(&pgsh_adm->interval_end, 0);
		pgsh_adm->instance_waiters = 0;
		pgsh_adm->interval_min_us = 0;
		pgsh_adm->severe_intervals = 0;
		pgsh_adm->standing_delay_ms = 0.0;
		pgsh_adm->overloaded_since = 0;
	}

	pgsh_adm_procs = ShmemInitStruct("pg_shield backends",
									 MaxBackends * sizeof(ShieldProcSlotPadded), &found);
	if (!found)
	{
		for (i = 0; i < MaxBackends; i++)
		{
			memset(&pgsh_adm_procs[i], 0, sizeof(ShieldProcSlotPadded));
			pg_atomic_init_u32(&PGSH_PROC(i)->changecount, 0);
			PGSH_PROC(i)->state = PGSH_PROC_IDLE;
		}
	}

	pgsh_scopes_shmem_init();
}

/*
 * pg_shield.max_active changed (its assign hook, in the postmaster and in
 * every backend that applies the setting): publish it in the instance
 * scope, from which the dispatcher applies it to the statements already
 * waiting (see pgsh_adm_waiter_limit_locked).  The postmaster publishes
 * before it signals the backends, so that a waiter woken by the reload
 * sees the new limit.  A single aligned store: cannot fail.
 */
void
pgsh_admission_publish_max_active(int max_active)
{
	if (pgsh_adm != NULL)
		pgsh_adm->instance.limit = max_active > 0 ? max_active : -1;
}

/* Which priorities are being shed now (see ShieldShedding). */
ShieldShedding
pgsh_admission_shedding(void)
{
	if (pgsh_adm == NULL)
		return PGSH_SHED_NONE;
	return (ShieldShedding) pg_atomic_read_u32(&pgsh_adm->shedding);
}

/*----
 * Rejections
 *----
 */

/* "role "app" (policy 3)", "the instance (pg_shield.max_active)", ... */
void
pgsh_adm_describe_scope(char *buf, size_t size, const ShieldScopeNeed *need, bool capital)
{
	if (need->key.dbid == InvalidOid)
		snprintf(buf, size, "%s instance (pg_shield.max_active)",
				 capital ? "The" : "the");
	else
		pgsh_policy_describe(buf, size, need->key.userid, need->key.queryid,
							 need->policy_id, capital);
}

/* Count a rejection, or a would-be rejection in monitor mode, and log it. */
void
pgsh_adm_note_rejection(const ShieldAdmitRequest *req, ShieldRejection why,
						bool enforced, bool queued, double queue_ms,
						ShieldAction action, const char *detail)
{
	if (enforced)
	{
		ShieldObservation obs;

		pgsh_observation_init(&obs, req->userid, req->queryid, req->arrived);
		obs.rejected = why;
		obs.queued = queued;
		obs.queue_ms = queue_ms;
		pgsh_stats_record(&obs);
	}
	pgsh_event_record(action, enforced, req->userid, req->queryid, detail);
}

/*----
 * Admission
 *----
 */

/* The role whose superuser status was looked up last (exemption). */
static Oid	admission_superuser_checked = InvalidOid;
static bool admission_superuser_checked_is = false;

/* A role changed (ALTER ROLE ... SUPERUSER, ...): look again. */
static void
roles_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	admission_superuser_checked = InvalidOid;
}

/*
 * Called from _PG_init, like the policy cache's relcache callback: every
 * backend inherits the registration (or repeats it, with EXEC_BACKEND).
 */
void
pgsh_admission_init(void)
{
	CacheRegisterSyscacheCallback(AUTHOID, roles_changed, (Datum) 0);
}

/*
 * Whether admission governs this statement.  Not before this backend has
 * its slot in the module's shared memory (found here once, when its
 * activity row gets its pid and database; a process beyond MaxBackends has
 * none), nor, while pg_shield.exempt_superuser is on, for a superuser.
 * The last role's superuser status is kept, as superuser_arg keeps it, to
 * save the call on every statement; roles_changed forgets it.
 */
static bool
is_governed(const ShieldAdmitRequest *req)
{
	/* this backend's activity slot, found once */
	if (unlikely(pgsh_adm_me == NULL))
	{
		if (pgsh_adm == NULL || MyProc == NULL ||
			PGSH_MY_PROCNO >= MaxBackends)
			return false;
		pgsh_adm_me = PGSH_PROC(PGSH_MY_PROCNO);
		pgsh_adm_activity_begin_write();
		pgsh_adm_me->shown.pid = MyProcPid;
		pgsh_adm_me->shown.dbid = MyDatabaseId;
		pgsh_adm_activity_end_write();
	}
	if (!pgsh_exempt_superuser)
		return true;
	/* superuser_arg's one-entry cache, without the call */
	if (req->userid != admission_superuser_checked)
	{
		admission_superuser_checked_is = superuser_arg(req->userid);
		admission_superuser_checked = req->userid;
	}
	return !admission_superuser_checked_is;
}

/*
 * The cost ceiling: the strictest max_cost of the matching policies.  The
 * check is inline; what follows a plan over the ceiling is not.
 */
static pg_noinline void reject_cost(const ShieldAdmitRequest *req,
									ShieldAdmission *adm);

/*
 * Check the plan's estimated cost against the cost ceiling.  Inline, since
 * every statement passes here; what a plan over it needs is reject_cost.
 */
static inline void
check_cost(const ShieldAdmitRequest *req, ShieldAdmission *adm)
{
	const ShieldEffectivePolicy *policy = req->policy;

	if (policy->max_cost_from >= 0 && req->cost >= 0 &&
		req->cost > policy->scopes[policy->max_cost_from].max_cost)
		reject_cost(req, adm);
}

/*
 * The plan is over the cost ceiling: count and record the rejection, then
 * raise it (54001), or in monitor mode only note that it would have.  The
 * hint says retrying will not help, since the same plan costs the same.
 */
static pg_noinline void
reject_cost(const ShieldAdmitRequest *req, ShieldAdmission *adm)
{
	const ShieldEffectivePolicy *policy = req->policy;
	const ShieldPolicy *p = &policy->scopes[policy->max_cost_from];
	ShieldScopeNeed need;
	char		scope[NAMEDATALEN + 96];
	char		detail[PGSH_EVENT_DETAIL_SIZE];
	bool		enforced;

	memset(&need, 0, sizeof(need));
	need.key.dbid = MyDatabaseId;
	need.key.userid = p->role;
	need.key.queryid = p->queryid;
	need.policy_id = p->id;
	pgsh_adm_describe_scope(scope, sizeof(scope), &need, true);
	snprintf(detail, sizeof(detail),
			 "%s sets max_cost %g; the plan's estimated total cost is %.2f.",
			 scope, p->max_cost, req->cost);
	enforced = pgsh_mode == PGSH_MODE_ENFORCE && !p->monitor;
	pgsh_adm_note_rejection(req, PGSH_REJECT_COST, enforced, false, 0.0,
							PGSH_ACTION_COST_LIMIT, detail);
	if (!enforced)
	{
		adm->would_reject = true;
		return;
	}
	ereport(ERROR,
			(errcode(PGSH_ERRCODE_COST_LIMIT),
			 errmsg("estimated statement cost exceeds the pg_shield limit"),
			 errdetail_internal("%s", detail),
			 errhint("Make the statement cheaper, or raise max_cost; retrying will not help.")));
}

/* The scopes a statement is subject to; returns how many. */
static int
collect_scopes(const ShieldAdmitRequest *req, ShieldScopeNeed *needs,
			   int *role_index, int64 *queue_timeout_us)
{
	const ShieldEffectivePolicy *policy = req->policy;
	bool		monitor_all = pgsh_mode == PGSH_MODE_MONITOR;
	int			n = 0;
	int			i;
	const ShieldPolicy *role_policy = NULL;

	*queue_timeout_us = -1;
	*role_index = -1;

	if (pgsh_max_active > 0)
	{
		memset(&needs[n], 0, sizeof(ShieldScopeNeed));
		needs[n].limit = pgsh_max_active;
		needs[n].monitor = monitor_all;
		needs[n].rate = -1;
		needs[n].slot = true;
		n++;
	}

	for (i = 0; i < policy->nscopes; i++)
	{
		const ShieldPolicy *p = &policy->scopes[i];

		if (p->queue_timeout_us >= 0 &&
			(*queue_timeout_us < 0 || p->queue_timeout_us < *queue_timeout_us))
			*queue_timeout_us = p->queue_timeout_us;
		if (p->queryid == 0)
		{
			role_policy = p;
			continue;
		}
		if (p->max_concurrent < 0 && p->max_rate < 0)
			continue;
		memset(&needs[n], 0, sizeof(ShieldScopeNeed));
		needs[n].key.dbid = MyDatabaseId;
		needs[n].key.userid = p->role;
		needs[n].key.queryid = p->queryid;
		needs[n].limit = p->max_concurrent;
		needs[n].monitor = monitor_all || p->monitor;
		needs[n].rate = p->max_rate;
		needs[n].policy_id = p->id;
		needs[n].slot = true;
		n++;
	}

	/* the role scope is counted for every statement */
	memset(&needs[n], 0, sizeof(ShieldScopeNeed));
	needs[n].key.dbid = MyDatabaseId;
	needs[n].key.userid = req->userid;
	needs[n].limit = role_policy ? role_policy->max_concurrent : -1;
	needs[n].monitor = monitor_all || (role_policy && role_policy->monitor);
	needs[n].rate = role_policy ? role_policy->max_rate : -1;
	needs[n].policy_id = role_policy ? role_policy->id : 0;
	needs[n].slot = true;
	*role_index = n;
	n++;

	if (*queue_timeout_us < 0)
		*queue_timeout_us = (int64) pgsh_queue_timeout_ms * 1000;
	return n;
}

/*----
 * The scopes of the statements a session runs are mostly the same: the
 * last set is memoized, keyed by what determines it, with its scope
 * pointers.  The memo pins its scopes (ShieldScope.pins), so that they are not
 * evicted and the fast path can use them without the lock.
 *----
 */
static struct
{
	bool		valid;
	Oid			userid;
	int			max_active;
	int			mode;
	int			queue_timeout_guc;
	uint64		policy_version;
	int			nscopes;
	int64		policy_ids[3];
	uint64		policy_tag;		/* the resolution they come from, 0 if unknown */
	int			n;
	int			role_index;
	int64		queue_timeout_us;
	ShieldScopeNeed needs[PGSH_MAX_SCOPES];
	/* derived from needs[], so that pgsh_admit need not rebuild them */
	bool		any_rate;		/* some scope has max_rate */
	bool		limited;		/* some slot scope has an enforced limit */
	bool		monitor_limit;	/* some slot scope has a monitored limit */
	int			nslots;			/* scopes that take a slot */
	int			role_slot;		/* the role's index in slot_scopes, or -1 */
	ShieldScope *slot_scopes[PGSH_MAX_SCOPES];
	int32		slot_limits[PGSH_MAX_SCOPES];	/* enforced; -1: counted only */
	bool		slot_monitor[PGSH_MAX_SCOPES];	/* monitored: its limit is not
												 * published */
}			admission_memo;

/*
 * Whether the memo still holds this statement's scopes: the same role, the
 * same settings that decide the scopes, the same policy cache version, the
 * same policies (by the resolution's tag when it has one, else by ids).
 * Runs on every statement, so it compares without looking anything up.
 */
static pg_attribute_always_inline bool
memo_matches(const ShieldAdmitRequest *req)
{
	const ShieldEffectivePolicy *policy = req->policy;
	int			i;

	if (!admission_memo.valid || admission_memo.userid != req->userid ||
		admission_memo.max_active != pgsh_max_active ||
		admission_memo.mode != pgsh_mode ||
		admission_memo.queue_timeout_guc != pgsh_queue_timeout_ms ||
		admission_memo.policy_version != pgsh_policy_cache_version)
		return false;
	/* the same resolution has the same policies */
	if (req->policy_tag != 0 && req->policy_tag == admission_memo.policy_tag)
		return true;
	if (admission_memo.nscopes != policy->nscopes)
		return false;
	for (i = 0; i < policy->nscopes; i++)
	{
		if (admission_memo.policy_ids[i] != policy->scopes[i].id)
			return false;
	}
	return true;
}

/*
 * Forget the memo and drop its pins, so that its scopes can be evicted
 * again.  Needs no lock: unpinning only makes a scope evictable, and
 * eviction reads the pins under admission_lock held exclusively.  Called
 * when the memo is rebuilt and at exit; never fails.
 */
void
pgsh_adm_memo_unpin(void)
{
	int			i;

	for (i = 0; admission_memo.valid && i < admission_memo.n; i++)
	{
		if (admission_memo.needs[i].scope != &pgsh_adm->instance)
			pg_atomic_fetch_sub_u32(&admission_memo.needs[i].scope->pins, 1);
	}
	admission_memo.valid = false;
}

/*
 * Publish the limits of the memo's scopes (-1: none) for the dispatcher, which
 * only knows a waiter's scopes by the limits published in them; returns
 * whether one moved.  A session publishes when it rebuilds its memo (the
 * policies changed) and, while statements wait, at every statement, so
 * that the limits of the newest policies soon win over what a session
 * still running under older ones published.  A session that moves a limit
 * makes the waiters look again, so that a raised or removed limit reaches
 * them.  A monitored limit is not published: a session in monitor mode
 * must not let others' waiters through.  Caller holds admission_lock
 * exclusively if lock_held.
 */
static bool
publish_memo_limits(bool lock_held)
{
	bool		moved = false;
	int			i;

	for (i = 0; i < admission_memo.nslots; i++)
	{
		ShieldScope *scope = admission_memo.slot_scopes[i];

		if (!admission_memo.slot_monitor[i] && scope->limit != admission_memo.slot_limits[i])
		{
			scope->limit = admission_memo.slot_limits[i];
			moved = true;
		}
	}
	if (moved && !lock_held && pg_atomic_read_u32(&pgsh_adm->nqueued) > 0)
	{
		LWLockAcquire(pgsh_state->admission_lock, LW_EXCLUSIVE);
		pgsh_queue_dispatch_locked();
		LWLockRelease(pgsh_state->admission_lock);
	}
	return moved;
}

/* For the queue, which holds admission_lock exclusively. */
bool
pgsh_adm_publish_limits_locked(void)
{
	return publish_memo_limits(true);
}

/*
 * publish_memo_limits for admission's fast path, where admission_lock is
 * not held.
 */
static inline void
publish_limits(void)
{
	(void) publish_memo_limits(false);
}

/*
 * Memoize this statement's scopes: resolve them (creating missing ones),
 * pin the new scopes before unpinning the old ones, so that a scope both
 * share is never left unpinned and evictable, and derive what pgsh_admit
 * reads on its fast path.  Refilling buckets that eviction forgot are
 * logged only once the lock is released, since logging can fail.
 */
static pg_noinline void
memo_build(const ShieldAdmitRequest *req)
{
	const ShieldEffectivePolicy *policy = req->policy;
	ShieldScopeNeed needs[PGSH_MAX_SCOPES];
	int			role_index;
	int64		queue_timeout_us;
	int			n;
	int			i;

	n = collect_scopes(req, needs, &role_index, &queue_timeout_us);
	if (n > 0)
	{
		LWLockMode	mode = LW_SHARED;

		/* pinned under the lock: eviction holds it exclusively */
		LWLockAcquire(pgsh_state->admission_lock, LW_SHARED);
		pgsh_scopes_resolve(needs, n, &mode);
		for (i = 0; i < n; i++)
		{
			if (needs[i].scope != &pgsh_adm->instance)
				pg_atomic_fetch_add_u32(&needs[i].scope->pins, 1);
		}
		LWLockRelease(pgsh_state->admission_lock);
		pgsh_scopes_report_evictions();
	}

	pgsh_adm_memo_unpin();
	admission_memo.userid = req->userid;
	admission_memo.max_active = pgsh_max_active;
	admission_memo.mode = pgsh_mode;
	admission_memo.queue_timeout_guc = pgsh_queue_timeout_ms;
	admission_memo.policy_version = pgsh_policy_cache_version;
	admission_memo.nscopes = policy->nscopes;
	for (i = 0; i < policy->nscopes; i++)
		admission_memo.policy_ids[i] = policy->scopes[i].id;
	admission_memo.policy_tag = req->policy_tag;
	admission_memo.n = n;
	admission_memo.role_index = role_index;
	admission_memo.queue_timeout_us = queue_timeout_us;
	memcpy(admission_memo.needs, needs, n * sizeof(ShieldScopeNeed));

	/* the scopes that take a slot, and their enforced limits */
	admission_memo.any_rate = false;
	admission_memo.limited = false;
	admission_memo.monitor_limit = false;
	admission_memo.nslots = 0;
	admission_memo.role_slot = -1;
	for (i = 0; i < n; i++)
	{
		if (needs[i].rate >= 0)
			admission_memo.any_rate = true;
		if (!needs[i].slot)
			continue;
		if (i == role_index)
			admission_memo.role_slot = admission_memo.nslots;
		admission_memo.slot_scopes[admission_memo.nslots] = needs[i].scope;
		admission_memo.slot_limits[admission_memo.nslots] = needs[i].monitor ? -1 : needs[i].limit;
		admission_memo.slot_monitor[admission_memo.nslots] = needs[i].monitor;
		if (admission_memo.slot_limits[admission_memo.nslots] >= 0)
			admission_memo.limited = true;
		else if (needs[i].monitor && needs[i].limit >= 0)
			admission_memo.monitor_limit = true;
		admission_memo.nslots++;
	}
	admission_memo.valid = true;
	publish_limits();
}

/* The first scope that is full for this waiter, for messages and hints. */
int
pgsh_adm_full_scope(const ShieldScopeNeed *needs, int n, uint32 *active)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		uint32		cur;

		if (!needs[i].slot || needs[i].limit < 0 || needs[i].monitor)
			continue;
		cur = pg_atomic_read_u32(&needs[i].scope->active);
		if (cur >= (uint32) needs[i].limit)
		{
			*active = cur;
			return i;
		}
	}
	*active = 0;
	return -1;
}

/* "Role "app" (policy 3) limits concurrent statements to 2 (running: 2)" */
static void
describe_scope_limit(char *buf, size_t size, const ShieldScopeNeed *need,
					 uint32 active)
{
	char		scope[NAMEDATALEN + 96];

	pgsh_adm_describe_scope(scope, sizeof(scope), need, true);
	snprintf(buf, size, "%s limits concurrent statements to %d (running: %u)",
			 scope, need->limit, active);
}

/* The first full scope, for the DETAIL of a concurrency rejection. */
void
pgsh_adm_describe_limit(char *buf, size_t size, const ShieldScopeNeed *needs, int n)
{
	uint32		active;
	int			full = pgsh_adm_full_scope(needs, n, &active);

	if (full < 0)
	{
		snprintf(buf, size, "Its concurrency limits have room again");
		return;
	}
	describe_scope_limit(buf, size, &needs[full], active);
}


/*
 * The statement's fingerprint has a breaker that may be open (the filter
 * says it has an entry): ask it.  An open breaker rejects the statement at
 * once, or, in monitor mode, only says it would have; after the cooldown,
 * the statement may become the probe (adm->breaker.probe).
 */
static pg_noinline void
check_breaker(const ShieldAdmitRequest *req, ShieldAdmission *adm)
{
	ShieldBreakerVerdict verdict;
	bool		enforced;

	pgsh_breaker_check(&adm->breaker, req->userid, req->queryid, &verdict);
	if (!verdict.reject)
		return;
	enforced = !adm->breaker.monitor;
	pgsh_adm_note_rejection(req, PGSH_REJECT_BREAKER, enforced, false, 0.0,
							PGSH_ACTION_BREAKER_OPEN, verdict.detail);
	if (!enforced)
	{
		adm->would_reject = true;
		return;
	}
	ereport(ERROR,
			(errcode(PGSH_ERRCODE_BREAKER_OPEN),
			 errmsg("circuit breaker open"),
			 errdetail_internal("%s", verdict.detail),
			 errhint("Retry after %d ms.", verdict.retry_ms)));
}

/*
 * Monitor mode: what enforcement would do about a full monitored
 * concurrency limit.  The statement would wait in the queue (would_queue),
 * or, if it could not wait (its queue_timeout is 0, or the queue is full),
 * be turned away with 53S01: then it counts in would_reject and is
 * recorded as an event, exactly as enforcement would count and record it.
 * Called before the statement takes its slots, since recording can fail
 * (as pgsh_adm_report_rate is).
 */
static pg_noinline void
monitor_concurrency(const ShieldAdmitRequest *req, ShieldAdmission *adm,
					const ShieldScopeNeed *needs, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		uint32		active;
		char		limit[NAMEDATALEN + 160];
		char		detail[PGSH_EVENT_DETAIL_SIZE];
		int			queued;

		if (!needs[i].slot || !needs[i].monitor || needs[i].limit < 0)
			continue;
		active = pg_atomic_read_u32(&needs[i].scope->active);
		if (active < (uint32) needs[i].limit)
			continue;
		queued = (int) pg_atomic_read_u32(&pgsh_adm->nqueued);
		if (admission_memo.queue_timeout_us > 0 && queued < pgsh_max_queue)
		{
			adm->would_queue = true;
			continue;
		}

		describe_scope_limit(limit, sizeof(limit), &needs[i], active);
		if (admission_memo.queue_timeout_us > 0)
			snprintf(detail, sizeof(detail),
					 "%s; the admission queue is full (waiting: %d).",
					 limit, queued);
		else
			snprintf(detail, sizeof(detail),
					 "%s; its queue_timeout is 0.", limit);
		adm->would_reject = true;
		pgsh_adm_note_rejection(req, PGSH_REJECT_QUEUE_FULL, false, false, 0.0,
								PGSH_ACTION_QUEUE_FULL, detail);
		return;
	}
}

/*
 * The slots of a statement that starts while other statements of its
 * session hold slots: it takes one in each of its scopes that none of them
 * holds (a query policy's fingerprint scope, say), and only shares the
 * others (the instance, its role).  It cannot wait for one, since what it
 * would wait behind could be waiting for its session: a full scope turns
 * it away (pgsh_queue_reject_holding), or, if the scope is monitored,
 * counts in would_reject.  Returns its role's running count.
 */
static pg_noinline int32
admit_holding(const ShieldAdmitRequest *req, ShieldAdmission *adm,
			  const ShieldScopeNeed *needs, int n)
{
	ShieldScopeNeed unheld[PGSH_MAX_SCOPES];
	ShieldScope *take[PGSH_MAX_SCOPES];
	int32		limits[PGSH_MAX_SCOPES];
	int			nunheld = 0;
	int			role_take = -1;
	int32		role_active = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (!needs[i].slot)
			continue;
		if (pgsh_adm_scope_held_by_other(needs[i].scope, -1))
		{
			if (i == admission_memo.role_index)
				role_active = (int32) pg_atomic_read_u32(&needs[i].scope->active);
			continue;
		}
		if (i == admission_memo.role_index)
			role_take = nunheld;
		unheld[nunheld] = needs[i];
		take[nunheld] = needs[i].scope;
		limits[nunheld] = needs[i].monitor ? -1 : needs[i].limit;
		nunheld++;
	}

	/* monitor mode: a full monitored scope would have turned it away */
	for (i = 0; i < nunheld; i++)
	{
		uint32		active = pg_atomic_read_u32(&unheld[i].scope->active);
		char		limit[NAMEDATALEN + 160];
		char		detail[PGSH_EVENT_DETAIL_SIZE];

		if (!unheld[i].monitor || unheld[i].limit < 0 ||
			active < (uint32) unheld[i].limit)
			continue;
		describe_scope_limit(limit, sizeof(limit), &unheld[i], active);
		snprintf(detail, sizeof(detail),
				 "%s; the session holds a slot for another statement (an open cursor or portal), so it cannot wait.",
				 limit);
		adm->would_reject = true;
		pgsh_adm_note_rejection(req, PGSH_REJECT_QUEUE_FULL, false, false, 0.0,
								PGSH_ACTION_QUEUE_FULL, detail);
		break;
	}

	if (!pgsh_scope_take_slots(nunheld, take, limits, role_take, &role_active))
		pgsh_queue_reject_holding(req, needs, n, unheld, nunheld);
	return role_active;
}

/*
 * The limits of admission: rate tokens, then a slot in every concurrency
 * scope, waiting in the queue if one is full.  deadline_at: when the
 * statement's enforced deadline expires (0: none), which ends a wait;
 * shown_deadline: its deadline as shield.activity shows it.
 */
static pg_attribute_always_inline void
admit_limits(const ShieldAdmitRequest *req, ShieldAdmission *adm,
			 TimestampTz deadline_at, TimestampTz shown_deadline)
{
	ShieldScopeNeed *needs;
	ShieldScope *const *scopes;
	const int32 *limits;
	int32		role_active = 0;
	uint32		nqueued;
	int			n;
	int			nslots;
	int			role_slot;
	int64		queue_timeout_us;
	bool		holding = pgsh_adm_held_count > 0;
	ShieldHeldStatement *stmt;
	TimestampTz now = 0;
	ShieldRateOutcome rate = {-1, 0};
	int			i;

	if (!memo_matches(req))
		memo_build(req);
	if (unlikely(pgsh_adm_held_count == pgsh_adm_held_allocated))
		pgsh_adm_held_grow();
	n = admission_memo.n;
	needs = admission_memo.needs;
	queue_timeout_us = admission_memo.queue_timeout_us;

	/*
	 * Overload: while the controller sheds, or while the instance holds
	 * statements back (it may be time to start), a statement that needs a
	 * slot may be shed (not one that runs under its session's instance slot).
	 * Before the rate limits: a shed statement takes no token.
	 */
	if (unlikely(!holding && pgsh_max_active > 0 &&
				 (pg_atomic_read_u32(&pgsh_adm->shedding) != PGSH_SHED_NONE ||
				  ((volatile ShieldAdmissionState *) pgsh_adm)->instance_waiters > 0)))
		pgsh_queue_shed_check(req, adm);

	/* rate limits; the memo's scopes are pinned: no lock needed */
	if (admission_memo.any_rate)
		rate = pgsh_adm_take_rate_tokens(req, needs, n);

	/*
	 * A monitored rate limit that had no token: report it now, before a slot
	 * is taken, since reporting can fail (an event, a log line).
	 */
	if (rate.would_index >= 0)
	{
		adm->would_reject = true;
		pgsh_adm_report_rate(req, &needs[rate.would_index], false, rate.retry_ms);
	}

	/* the scopes that take a slot, and their enforced limits (memoized) */
	nslots = admission_memo.nslots;
	role_slot = admission_memo.role_slot;
	scopes = admission_memo.slot_scopes;
	limits = admission_memo.slot_limits;

	if (unlikely(holding))
	{
		role_active = admit_holding(req, adm, needs, n);
		goto admitted;
	}

	/* monitor mode: would a limit make it wait, or turn it away? */
	if (unlikely(admission_memo.monitor_limit))
		monitor_concurrency(req, adm, needs, n);

	/*
	 * While statements wait, the limits they are dispatched by matter. Fast
	 * path: every scope has room and nobody waits (or nothing limits this
	 * statement, so it can take nothing from a waiter).  Seeing the queue as
	 * it was before publish_limits() let waiters in only sends this statement
	 * down the slow path, which looks again.
	 */
	nqueued = pg_atomic_read_u32(&pgsh_adm->nqueued);
	if (nqueued > 0)
		publish_limits();
	if ((!admission_memo.limited || nqueued == 0) &&
		pgsh_scope_take_slots(nslots, scopes, limits, role_slot, &role_active))
		goto admitted;

	/* slow path: queue up, and let the dispatcher decide */
	now = pgsh_queue_admit(req, adm, needs, n, scopes, limits, nslots,
						   role_slot, queue_timeout_us, deadline_at);
	role_active = adm->role_active;

admitted:
	stmt = &pgsh_adm_held_stmts[pgsh_adm_held_count++];
	if (++admission_held_last_id == 0)	/* 0 means none */
		admission_held_last_id = 1;
	stmt->id = admission_held_last_id;
	stmt->nscopes = nslots;
	for (i = 0; i < nslots; i++)	/* at most PGSH_MAX_SCOPES: no memcpy call */
		stmt->scopes[i] = scopes[i];
	adm->slot_id = stmt->id;
	adm->role_active = role_active;

	/* running since it was let in: its arrival, unless it waited */
	pgsh_adm_activity_set(PGSH_PROC_RUNNING, req, adm->queued ? now : req->arrived,
						  shown_deadline);
	stmt->shown = pgsh_adm_me->shown;
}

/*
 * admit_limits for the probe of a half-open breaker: should a limit turn it
 * away, or should it wait and fail, it never ran, and the breaker must not
 * wait for its verdict.
 */
static pg_noinline void
admit_probe(const ShieldAdmitRequest *req, ShieldAdmission *adm,
			TimestampTz deadline_at, TimestampTz shown_deadline)
{
	PG_TRY();
	{
		admit_limits(req, adm, deadline_at, shown_deadline);
	}
	PG_CATCH();
	{
		pgsh_breaker_outcome(&adm->breaker, req->userid, req->queryid,
							 PGSH_OUTCOME_ABANDONED);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * Decide whether the statement may run; wait in the queue if a scope is
 * full.  Returns with *adm filled in; rejections are errors (after they
 * have been counted and recorded).  In order: the cost ceiling (retrying
 * does not help), the fingerprint's circuit breaker, the rate limits, the
 * concurrency limits.
 */
void
pgsh_admit(const ShieldAdmitRequest *req, ShieldAdmission *adm)
{
	const ShieldEffectivePolicy *policy = req->policy;
	TimestampTz deadline_at = 0;
	TimestampTz shown_deadline = 0;

	memset(adm, 0, sizeof(*adm));
	if (!is_governed(req))
		return;
	adm->governed = true;

	if (unlikely(!admission_exit_callback_registered))
	{
		before_shmem_exit(pgsh_adm_exit, (Datum) 0);
		admission_exit_callback_registered = true;
	}

	check_cost(req, adm);

	/*
	 * The statement's deadline, at most PGSH_MAX_DURATION_US after its
	 * arrival; only an enforced one ends a wait in the queue.
	 */
	if (policy->deadline_from >= 0)
	{
		const ShieldPolicy *p = &policy->scopes[policy->deadline_from];

		shown_deadline = req->arrived + p->deadline_us;
		if (!p->monitor && pgsh_mode == PGSH_MODE_ENFORCE)
			deadline_at = shown_deadline;
	}

	pgsh_breaker_ticket(&adm->breaker, policy, req->queryid);
	if (adm->breaker.threshold > 0 && pgsh_breaker_may_exist(req->queryid))
		check_breaker(req, adm);

	if (unlikely(adm->breaker.probe))
		admit_probe(req, adm, deadline_at, shown_deadline);
	else
		admit_limits(req, adm, deadline_at, shown_deadline);
}
