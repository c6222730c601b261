/*-------------------------------------------------------------------------
 *
 * shmem.h
 *		pg_shield shared state: layout and access.
 *
 * The locking protocol is described at the top of shmem.c.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/shmem.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_SHMEM_H
#define PGSH_SHMEM_H

#include "port/atomics.h"
#include "storage/lwlock.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "compat.h"

PGSH_BEGIN_INTERNAL

/* Name of the LWLock tranche, shown in pg_stat_activity.wait_event. */
#define PGSH_TRANCHE_NAME "pg_shield"

typedef struct ShieldSharedState
{
	LWLock	   *stats_lock;		/* guards both statistics tables and the
								 * fields below */
	LWLock	   *events_lock;	/* guards the events ring (events.c) */
	LWLock	   *admission_lock; /* guards scopes and the queue (admission.c) */
	LWLock	   *breaker_lock;	/* guards the circuit breakers (breaker.c) */
	TimestampTz stats_reset;	/* when statistics were last reset */
	uint64		fp_evictions;	/* fingerprint entries evicted since reset */
	uint64		role_evictions; /* role entries evicted since reset */
	pg_atomic_uint64 generation;	/* advanced before entries are removed, so
									 * that backends may cache entry pointers
									 * (see shmem.c) */
	pg_atomic_uint64 stale_logged_at;	/* when stale query policies were last
										 * reported (policy.c) */
	pg_atomic_uint32 parallel_caps_seen;	/* a backend loaded an enforced
											 * max_parallel_workers since
											 * startup (policy.c) */
} ShieldSharedState;

/* Attached in every backend by the shmem startup hook; NULL if not loaded. */
extern ShieldSharedState *pgsh_state;
extern HTAB *pgsh_fp_hash;
extern HTAB *pgsh_role_hash;

extern void pgsh_shmem_init(void);
extern void pgsh_check_loaded(void);
extern void *pgsh_copy_room(LWLock *lock, HTAB *const *tables, int ntables,
							Size entrysize, long *room);

PGSH_END_INTERNAL

#endif							/* PGSH_SHMEM_H */
