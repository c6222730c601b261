/*-------------------------------------------------------------------------
 *
 * breaker.h
 *		Circuit breakers per (database, fingerprint).
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/breaker.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_BREAKER_H
#define PGSH_BREAKER_H

#include "port/atomics.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "guc.h"
#include "policy.h"

PGSH_BEGIN_INTERNAL

typedef enum ShieldBreakerState
{
	PGSH_BREAKER_CLOSED,
	PGSH_BREAKER_OPEN,
	PGSH_BREAKER_HALF_OPEN
} ShieldBreakerState;

/*
 * The breaker a statement is subject to, as admission found it: the
 * settings of the most specific query policy that sets breaker_failures,
 * else the instance's (pg_shield.breaker_failures, .breaker_cooldown).
 */
typedef struct ShieldBreakerTicket
{
	int32		threshold;		/* consecutive failures that open it; 0: the
								 * statement has no breaker */
	int64		cooldown_us;
	int64		policy_id;		/* 0: the instance's settings */
	bool		monitor;		/* monitor mode: transitions, no rejections */
	bool		probe;			/* admitted as the half-open breaker's probe */
} ShieldBreakerTicket;

/* How a statement with a breaker ended, for pgsh_breaker_outcome. */
typedef enum ShieldBreakerOutcome
{
	PGSH_OUTCOME_SUCCESS,		/* it ended without a failure that counts */
	PGSH_OUTCOME_FAILURE,		/* a failure that counts (see breaker.c) */
	PGSH_OUTCOME_ABANDONED		/* it never finished: no verdict */
} ShieldBreakerOutcome;

/* What admission learns from a statement's breaker. */
typedef struct ShieldBreakerVerdict
{
	bool		reject;			/* open: turn the statement away */
	int			retry_ms;		/* for the HINT */
	char		detail[256];	/* why, for the DETAIL and the event */
} ShieldBreakerVerdict;

/* A breaker, as the views see it. */
typedef struct ShieldBreakerRow
{
	Oid			dbid;
	uint64		queryid;
	ShieldBreakerState state;
	int32		failures;		/* consecutive failures so far */
	int32		threshold;		/* that opened it, or that will */
	TimestampTz opened_at;		/* 0: never opened since it was closed */
	int64		cooldown_us;
	int			probe_pid;		/* half open: the probe's backend */
	int64		trips;			/* times it opened */
} ShieldBreakerRow;

extern Size pgsh_breaker_shmem_size(void);
extern void pgsh_breaker_shmem_init(void);

extern void pgsh_breaker_ticket_of(ShieldBreakerTicket *t,
								   const ShieldEffectivePolicy *policy);

/*
 * The breaker a statement is subject to (see breaker.c): a statement
 * without a fingerprint has none, nor one whose policies set none while
 * pg_shield.breaker_failures is 0, the usual case, decided inline.
 */
static inline void
pgsh_breaker_ticket(ShieldBreakerTicket *t,
					const ShieldEffectivePolicy *policy, uint64 queryid)
{
	t->probe = false;
	if (queryid == 0 || (policy->breaker_from < 0 && pgsh_breaker_failures == 0))
		t->threshold = 0;
	else
		pgsh_breaker_ticket_of(t, policy);
}

/*
 * Counters of the breakers that exist, spread over the fingerprints' low
 * bits: a statement whose counter is 0 has no breaker entry, so its breaker
 * is closed with no failure, and admission and the end of the statement
 * skip the lock.  Read without a lock (see breaker.c).
 */
#define PGSH_BREAKER_FILTER_SIZE 1024
extern pg_atomic_uint32 *pgsh_breaker_filter;

static inline bool
pgsh_breaker_may_exist(uint64 queryid)
{
	return pg_atomic_read_u32(&pgsh_breaker_filter[queryid % PGSH_BREAKER_FILTER_SIZE]) != 0;
}

extern void pgsh_breaker_check(ShieldBreakerTicket *t, Oid userid,
							   uint64 queryid, ShieldBreakerVerdict *verdict);
extern void pgsh_breaker_move(const ShieldBreakerTicket *t, Oid userid,
							  uint64 queryid, ShieldBreakerOutcome outcome);

/*
 * A statement with a breaker ended: move its breaker (pgsh_breaker_move),
 * unless there is nothing to move, the usual case: a success, or no
 * verdict, of a statement that is not the probe, whose fingerprint has no
 * entry.  Runs in abort callbacks too: never fails.
 */
static inline void
pgsh_breaker_outcome(const ShieldBreakerTicket *t, Oid userid,
					 uint64 queryid, ShieldBreakerOutcome outcome)
{
	if (!t->probe &&
		(outcome == PGSH_OUTCOME_ABANDONED ||
		 (outcome == PGSH_OUTCOME_SUCCESS && !pgsh_breaker_may_exist(queryid))))
		return;
	pgsh_breaker_move(t, userid, queryid, outcome);
}
extern ShieldBreakerOutcome pgsh_breaker_outcome_of(int sqlerrcode);
extern bool pgsh_breaker_reset(Oid dbid, uint64 queryid);
extern ShieldBreakerRow *pgsh_breakers_copy(int *n);
extern void pgsh_breaker_backend_exit(void);
extern const char *pgsh_breaker_state_name(ShieldBreakerState state);

PGSH_END_INTERNAL

#endif							/* PGSH_BREAKER_H */
