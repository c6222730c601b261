/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		Shared memory of pg_shield: sizing, allocation and the locking
 *		protocol every module follows.
 *
 * Shared memory is requested once, through shmem_request_hook, and sized by
 * pgsh_shmem_size() alone.  It is (re)initialized by shmem_startup_hook in
 * the postmaster, which also runs after a crash restart: a backend crash
 * therefore resets every pg_shield counter, like the rest of shared memory.
 *
 * LOCKING PROTOCOL
 *
 * pgsh_state->stats_lock (LWLock, tranche "pg_shield") guards the structure
 * of the two statistics tables, pgsh_fp_hash and pgsh_role_hash, and the
 * scalar fields of ShieldSharedState:
 *
 *	- to look entries up, hold it LW_SHARED;
 *	- to insert, evict or remove entries, or to write the scalar fields of
 *	  ShieldSharedState, hold it LW_EXCLUSIVE.
 *
 * Each entry's counters are protected by the entry's own spinlock (mutex).
 * A spinlock covers a few dozen instructions of arithmetic and a memcpy of
 * the counters, never a call that can fail or sleep.  No other lock is ever
 * acquired while stats_lock is held, so it cannot take part in a deadlock.
 *
 * Recording a statement whose entries this backend has cached takes only
 * their spinlocks, not stats_lock: pgsh_state->generation is advanced
 * before any entry is removed, and a removed entry's spinlock is taken
 * once before it goes back to the freelist; a backend uses a cached
 * pointer only if, under the entry's spinlock, the generation is still the
 * one it cached the pointer under (stats.c explains why that is enough).
 * Entries' spinlocks are initialized once, when the tables are created,
 * never when an element is recycled.  Otherwise recording takes stats_lock
 * shared, or exclusively to create an entry.
 *
 * pgsh_state->events_lock guards the ring of recent actions and its log
 * rate limiter (events.c): exclusive to record one event, shared to copy
 * the ring out.  It is never held together with stats_lock.
 *
 * pgsh_state->admission_lock guards the admission scopes and queue; its
 * protocol (a lock-free fast path with atomics, the lock for the queue) is
 * described in admission.c.  It is never held together with another
 * pg_shield lock.
 *
 * pgsh_state->breaker_lock guards the circuit breakers; its protocol (a
 * filter of atomic counters read without the lock, the lock for the
 * entries) is described in breaker.c.  It is never held together with
 * another pg_shield lock.
 *
 * pg_shield's PG_CATCH blocks (a failed CALL or DO, a probe turned away, a
 * wait in the queue that ends in an error) record events, move breakers and
 * leave the queue before the abort releases LWLocks: were the error raised
 * while this backend held the lock they take, it would wait for itself
 * forever.  So nothing raises an error while holding events_lock or
 * breaker_lock (the views' copies are allocated before the lock is taken),
 * nor admission_lock but for the one error that its sizing rules out (see
 * admission.c), nor stats_lock: the views' copies are allocated while no
 * lock is held (pgsh_copy_room), not under the lock as pg_stat_statements
 * does.
 *
 * Owns: the shmem request and startup hooks, ShieldSharedState with its
 *		  locks, pgsh_check_loaded and pgsh_copy_room.
 * Calls: stats_table.c, events.c, admission.c and breaker.c (each
 *		  module's shared memory size and initialization).
 * Locking: this header, for every module; AddinShmemInitLock at startup.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"

#include "admission.h"
#include "breaker.h"
#include "errors.h"
#include "events.h"
#include "shmem.h"
#include "stats.h"

/*
 * Hot-path accessors: the shared state and the two statistics tables, set
 * once when shared memory is attached and read by every module under the
 * protocol above.
 */
ShieldSharedState *pgsh_state = NULL;
HTAB	   *pgsh_fp_hash = NULL;
HTAB	   *pgsh_role_hash = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * The size of all of pg_shield's shared memory: every module's part.
 */
static Size
pgsh_shmem_size(void)
{
	Size		size;

	size = MAXALIGN(sizeof(ShieldSharedState));
	size = add_size(size, pgsh_stats_shmem_size());
	size = add_size(size, pgsh_events_shmem_size());
	size = add_size(size, pgsh_admission_shmem_size());
	size = add_size(size, pgsh_breaker_shmem_size());
	return size;
}

/*
 * shmem_request_hook: request the shared memory and the four LWLocks of
 * pg_shield's tranche, which pgsh_shmem_startup hands out.
 */
static void
pgsh_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(pgsh_shmem_size());
	RequestNamedLWLockTranche(PGSH_TRANCHE_NAME, 4);
}

/*
 * shmem_startup_hook: create pg_shield's shared memory, or attach to it
 * where it exists already (found), under AddinShmemInitLock, which every
 * module's initialization expects to be held.  After a crash restart the
 * postmaster runs it again, on freshly created shared memory.
 */
static void
pgsh_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	/* reset in case this is a restart within the postmaster */
	pgsh_state = NULL;
	pgsh_fp_hash = NULL;
	pgsh_role_hash = NULL;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	pgsh_state = ShmemInitStruct("pg_shield state",
								 sizeof(ShieldSharedState), &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche(PGSH_TRANCHE_NAME);

		pgsh_state->stats_lock = &locks[0].lock;
		pgsh_state->events_lock = &locks[1].lock;
		pgsh_state->admission_lock = &locks[2].lock;
		pgsh_state->breaker_lock = &locks[3].lock;
		pgsh_state->stats_reset = GetCurrentTimestamp();
		pgsh_state->fp_evictions = 0;
		pgsh_state->role_evictions = 0;
		pg_atomic_init_u64(&pgsh_state->generation, 0);
		pg_atomic_init_u64(&pgsh_state->stale_logged_at, 0);
		pg_atomic_init_u32(&pgsh_state->parallel_caps_seen, 0);
	}

	pgsh_stats_shmem_init();
	pgsh_events_shmem_init();
	pgsh_admission_shmem_init();
	pgsh_breaker_shmem_init();

	LWLockRelease(AddinShmemInitLock);
}

/*
 * Install the shared memory hooks.  Called from _PG_init.
 */
void
pgsh_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pgsh_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pgsh_shmem_startup;
}

/*
 * Every SQL-callable entry point starts here: without shared memory there
 * is nothing to read or change, and the user needs to know how to fix it.
 */
void
pgsh_check_loaded(void)
{
	if (pgsh_state == NULL || pgsh_fp_hash == NULL || pgsh_role_hash == NULL)
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_NOT_LOADED),
				 errmsg("pg_shield must be loaded via \"shared_preload_libraries\""),
				 errhint("Add pg_shield to the shared_preload_libraries configuration parameter and restart the server.")));
}

/*
 * The entries of the tables together.  Caller holds their lock.
 */
static long
count_entries(HTAB *const *tables, int ntables)
{
	long		entries = 0;
	int			i;

	for (i = 0; i < ntables; i++)
		entries += hash_get_num_entries(tables[i]);
	return entries;
}

/*
 * Room for a view's copy of shared tables, allocated while their lock is
 * not held (see LOCKING PROTOCOL): for as many entries of entrysize bytes
 * as the tables hold together, and some more for those created meanwhile.
 * Returns with the lock held shared, the tables holding at most *room
 * entries; should more have been created, allocates again.
 */
void *
pgsh_copy_room(LWLock *lock, HTAB *const *tables, int ntables,
			   Size entrysize, long *room)
{
	LWLockAcquire(lock, LW_SHARED);
	for (;;)
	{
		void	   *copy;

		*room = count_entries(tables, ntables) + 16;
		LWLockRelease(lock);
		copy = palloc_extended(mul_size(*room, entrysize), MCXT_ALLOC_HUGE);
		LWLockAcquire(lock, LW_SHARED);
		if (count_entries(tables, ntables) <= *room)
			return copy;
		pfree(copy);
	}
}
