/*-------------------------------------------------------------------------
 *
 * admission_int.h
 *		What the admission files share: the scope table, the per-backend
 *		slots, the queue's state and the statements holding slots.  Only
 *		the admission files (admission.c and admission_*.c) include it;
 *		the rest of pg_shield goes through admission.h.  The locking
 *		protocol is in admission.c's header.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/admission_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_ADMISSION_INT_H
#define PGSH_ADMISSION_INT_H

#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "admission.h"
#include "events.h"
#include "stats.h"

PGSH_BEGIN_INTERNAL

/* instance, role, fingerprint, fingerprint for the role */
#define PGSH_MAX_SCOPES 4

/* Hash key of a scope: a role scope has queryid 0, a query scope userid 0. */
typedef struct ShieldScopeKey
{
	Oid			dbid;
	Oid			userid;
	uint64		queryid;
} ShieldScopeKey;

typedef struct ShieldScope
{
	ShieldScopeKey key;			/* hash key; must be first */
	pg_atomic_uint32 active;	/* slots held */
	pg_atomic_uint32 pins;		/* backends whose memo points to it */
	volatile int32 limit;		/* max_concurrent last enforced in it, -1:
								 * none; what dispatch() applies, so that a
								 * changed limit reaches the waiters */
	int32		waiters;		/* queued statements needing it; lock */
	slock_t		mutex;			/* protects the rate bucket */
	double		tokens;
	TimestampTz refilled_at;	/* 0: never used, the bucket is full */
	double		rate;			/* max_rate it was last refilled at, < 0: none
								 * (see scope_bucket_full_at) */
} ShieldScope;

typedef enum ShieldProcState
{
	PGSH_PROC_IDLE,
	PGSH_PROC_QUEUED,
	PGSH_PROC_RUNNING
} ShieldProcState;

/* One per backend, indexed by pgprocno. */
typedef struct ShieldProcSlot
{
	/*
	 * What shield.activity shows.  Written by the backend itself only,
	 * bracketed by changecount (odd while writing); readers retry until they
	 * see the same even value before and after copying.
	 */
	pg_atomic_uint32 changecount;
	int			state;			/* ShieldProcState */
	ShieldActivity shown;		/* its row, unless state is PGSH_PROC_IDLE */

	/* The queue entry; admission_lock. */
	bool		granted;
	bool		shed;			/* displaced from a full queue */
	bool		deadlocked;		/* leaving: it found itself in a wait-for
								 * cycle (admission_deadlock.c) */
	bool		instance_bound; /* the instance scope holds it back */
	int			rank;
	TimestampTz enqueued;
	int			nscopes;
	int			role_index;		/* index of the role scope, -1 if none */
	int32		role_active;	/* set with granted */
	ShieldScope *scopes[PGSH_MAX_SCOPES];
	int32		limits[PGSH_MAX_SCOPES];	/* -1: counted, not limited */
} ShieldProcSlot;

typedef struct ShieldAdmissionState
{
	ShieldScope instance;		/* pg_shield.max_active */
	pg_atomic_uint32 nqueued;	/* length of queue[]; changed under the lock,
								 * read without it */

	/* The overload controller (admission_queue.c); admission_lock. */
	pg_atomic_uint32 shedding;	/* ShieldShedding; read without the lock */
	pg_atomic_uint64 interval_end;	/* when the controller looks next; read
									 * without the lock */
	int			instance_waiters;	/* waiters with instance_bound */
	int64		interval_min_us;	/* least wait seen in this interval;
									 * PG_INT64_MAX: none yet */
	int			severe_intervals;	/* intervals in a row over twice the
									 * target */
	double		standing_delay_ms;	/* the last interval's verdict */
	TimestampTz overloaded_since;	/* 0: not overloaded */
	int			queue[FLEXIBLE_ARRAY_MEMBER];	/* pgprocnos, in order */
} ShieldAdmissionState;

/* A scope a statement is subject to (backend-local). */
typedef struct ShieldScopeNeed
{
	ShieldScopeKey key;
	ShieldScope *scope;
	int32		limit;			/* max_concurrent, -1: none */
	bool		monitor;		/* its limits are only observed */
	double		rate;			/* max_rate, < 0: none */
	int64		policy_id;		/* 0: the instance */
	bool		slot;			/* takes a slot in it */
} ShieldScopeNeed;

/*
 * Each backend writes its own slot at every statement: pad the slots to
 * whole cache lines, so that neighbours do not share (and bounce) a line.
 */
typedef union ShieldProcSlotPadded
{
	ShieldProcSlot slot;
	char		pad[2 * PG_CACHE_LINE_SIZE];
} ShieldProcSlotPadded;

StaticAssertDecl(sizeof(ShieldProcSlot) <= 2 * PG_CACHE_LINE_SIZE,
				 "ProcSlot must fit its padding");

extern ShieldProcSlotPadded *pgsh_adm_procs;

#define PGSH_PROC(i) (&pgsh_adm_procs[(i)].slot)

/* Shared state (admission.c sets these up); this backend's slot. */
extern ShieldAdmissionState *pgsh_adm;
extern ShieldProcSlot *pgsh_adm_me;

/*
 * What shield.activity shows of this backend (admission_activity.c holds
 * the reader).  The writers are inline because admission and release run
 * them for every statement; the queue runs them too.
 */
static inline void
pgsh_adm_activity_begin_write(void)
{
	pg_atomic_write_u32(&pgsh_adm_me->changecount,
						pg_atomic_read_u32(&pgsh_adm_me->changecount) + 1);
	pg_write_barrier();
}

static inline void
pgsh_adm_activity_end_write(void)
{
	pg_write_barrier();
	pg_atomic_write_u32(&pgsh_adm_me->changecount,
						pg_atomic_read_u32(&pgsh_adm_me->changecount) + 1);
}

/*
 * Nothing to show any more.  A single store: readers skip idle slots, and
 * one that read the slot just before still saw a consistent row (the
 * statement was running then), so the changecount is left alone.
 */
static inline void
pgsh_adm_activity_set_idle(void)
{
	pgsh_adm_me->state = PGSH_PROC_IDLE;
}

static pg_attribute_always_inline void
pgsh_adm_activity_set(int procstate, const ShieldAdmitRequest *req,
					  TimestampTz since, TimestampTz deadline_at)
{
	pgsh_adm_activity_begin_write();
	pgsh_adm_me->state = procstate;
	pgsh_adm_me->shown.queued = procstate == PGSH_PROC_QUEUED;
	if (req != NULL)
	{
		/* pid and dbid: written when the slot was found (is_governed) */
		pgsh_adm_me->shown.userid = req->userid;
		pgsh_adm_me->shown.queryid = req->queryid;
		pgsh_adm_me->shown.priority = req->policy->priority;
		pgsh_adm_me->shown.deadline_at = deadline_at;
	}
	pgsh_adm_me->shown.since = since;
	pgsh_adm_activity_end_write();
}

/* Show this statement in shield.activity again. */
static inline void
pgsh_adm_activity_show(const ShieldActivity *shown)
{
	pgsh_adm_activity_begin_write();
	pgsh_adm_me->state = PGSH_PROC_RUNNING;
	pgsh_adm_me->shown = *shown;
	pgsh_adm_activity_end_write();
}

/* admission_scope.c: the scope table */
extern Size pgsh_scopes_shmem_size(void);
extern void pgsh_scopes_shmem_init(void);
extern void pgsh_scope_init(ShieldScope *scope);
extern void pgsh_scopes_resolve(ShieldScopeNeed *needs, int n, LWLockMode *mode);
extern void pgsh_scopes_report_evictions(void);

/*
 * Take a slot in each scope, all or none.  A scope with a limit >= 0 is
 * taken only below it; the others are counted.  *role_active receives the
 * count of scope role_index, this slot included (left alone if role_index
 * is -1).  Runs with the lock held (either mode) or on the memo's pinned
 * scopes.
 */
static pg_attribute_always_inline bool
pgsh_scope_take_slots(int n, ShieldScope *const *scopes, const int32 *limits, int role_index,
					  int32 *role_active)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		pg_atomic_uint32 *active = &scopes[i]->active;
		uint32		count;

		if (limits[i] >= 0)
		{
			uint32		cur = pg_atomic_read_u32(active);

			for (;;)
			{
				if (cur >= (uint32) limits[i])
				{
					while (--i >= 0)
						pg_atomic_fetch_sub_u32(&scopes[i]->active, 1);
					return false;
				}
				if (pg_atomic_compare_exchange_u32(active, &cur, cur + 1))
					break;
			}
			count = cur + 1;
		}
		else
			count = pg_atomic_fetch_add_u32(active, 1) + 1;
		if (i == role_index)
			*role_active = (int32) count;
	}
	return true;
}

/*
 * admission_held.c: the statements of this backend that hold slots, each
 * with the scopes it is counted in.  A session can run a statement while
 * others hold slots (an open cursor, a portal suspended by a row limit):
 * it takes a slot only in the scopes that none of them holds, so that a
 * session counts once in each scope, and gives back, when it ends, only
 * the scopes no other holds.  Kept in TopMemoryContext, grown before slots
 * are taken, so that release never allocates.  The last entry is the one
 * shield.activity shows.  The array is shared with admission.c's fast path
 * (see pgsh_adm_held_stmts in admission_held.c).
 */
typedef struct ShieldHeldStatement
{
	uint32		id;				/* ShieldAdmission.slot_id */
	int			nscopes;
	ShieldScope *scopes[PGSH_MAX_SCOPES];
	ShieldActivity shown;		/* its shield.activity row */
} ShieldHeldStatement;

extern ShieldHeldStatement *pgsh_adm_held_stmts;
extern int	pgsh_adm_held_allocated;
extern int	pgsh_adm_held_count;

extern void pgsh_adm_held_grow(void);
extern void pgsh_adm_exit(int code, Datum arg);

/* Does a statement of this backend other than entry skip hold scope? */
static inline bool
pgsh_adm_scope_held_by_other(const ShieldScope *scope, int skip)
{
	int			i;
	int			j;

	for (i = 0; i < pgsh_adm_held_count; i++)
	{
		if (i == skip)
			continue;
		for (j = 0; j < pgsh_adm_held_stmts[i].nscopes; j++)
		{
			if (pgsh_adm_held_stmts[i].scopes[j] == scope)
				return true;
		}
	}
	return false;
}

/* admission_queue.c: waiting for a slot */
extern TimestampTz pgsh_queue_admit(const ShieldAdmitRequest *req,
									ShieldAdmission *adm,
									const ShieldScopeNeed *needs, int n,
									ShieldScope *const *scopes, const int32 *limits,
									int nslots, int role_slot,
									int64 queue_timeout_us,
									TimestampTz deadline_at);
extern void pgsh_queue_dispatch_locked(void);
extern bool pgsh_queue_waiting(void);
extern void pgsh_queue_leave(void);
extern void pgsh_queue_exit(void);
extern void pgsh_queue_shed_check(const ShieldAdmitRequest *req,
								  ShieldAdmission *adm);

/*
 * The limit the dispatcher applies to scope i of waiter w: none if the
 * waiter's own policies did not limit it; otherwise the limit last
 * published in the scope (ShieldScope.limit), which for the instance is
 * pg_shield.max_active as the last reload set it (see
 * pgsh_admission_publish_max_active).  Caller holds admission_lock.
 */
static inline int32
pgsh_adm_waiter_limit_locked(const ShieldProcSlot *w, int i)
{
	if (w->limits[i] < 0)
		return -1;
	return ((volatile ShieldScope *) w->scopes[i])->limit;
}

/* admission_hint.c: "Retry after N ms." */
extern int	pgsh_hint_shed_ms(TimestampTz now);
extern int	pgsh_hint_scope_ms(const ShieldScopeNeed *needs, int n);

/* Does the running statement a hold a slot in the scope of key? */
static inline bool
pgsh_activity_in_scope(const ShieldActivity *a, const ShieldScopeKey *key)
{
	if (a->queued)
		return false;
	if (key->dbid == InvalidOid)
		return true;			/* the instance */
	return a->dbid == key->dbid &&
		(key->userid == InvalidOid || a->userid == key->userid) &&
		(key->queryid == 0 || a->queryid == key->queryid);
}

extern void pgsh_queue_reject_holding(const ShieldAdmitRequest *req,
									  const ShieldScopeNeed *needs, int n,
									  const ShieldScopeNeed *unheld, int nunheld);

/* admission_deadlock.c: wait-for cycles through the queue */
extern bool pgsh_deadlock_find(const ShieldScopeNeed *needs, int n, char *detail,
							   size_t size);

/* admission_rate.c: rate limits */
/* What the rate limits said: a monitored scope that had no token. */
typedef struct ShieldRateOutcome
{
	int			would_index;	/* that scope's index in needs, or -1 */
	int			retry_ms;		/* time until it has one */
} ShieldRateOutcome;

extern ShieldRateOutcome pgsh_adm_take_rate_tokens(const ShieldAdmitRequest *req,
												   ShieldScopeNeed *needs, int n);
extern void pgsh_adm_report_rate(const ShieldAdmitRequest *req,
								 const ShieldScopeNeed *need, bool enforced,
								 int retry_ms);

/* admission.c: what the other admission files need of it */
extern void pgsh_adm_describe_scope(char *buf, size_t size,
									const ShieldScopeNeed *need, bool capital);
extern bool pgsh_adm_publish_limits_locked(void);
extern void pgsh_adm_describe_limit(char *buf, size_t size,
									const ShieldScopeNeed *needs, int n);
extern int	pgsh_adm_full_scope(const ShieldScopeNeed *needs, int n, uint32 *active);
extern void pgsh_adm_refund_tokens(const ShieldScopeNeed *needs, int n);
extern void pgsh_adm_note_rejection(const ShieldAdmitRequest *req,
									ShieldRejection why, bool enforced,
									bool queued, double queue_ms,
									ShieldAction action, const char *detail);
extern void pgsh_adm_memo_unpin(void);

PGSH_END_INTERNAL

#endif							/* PGSH_ADMISSION_INT_H */
