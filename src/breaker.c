/*-------------------------------------------------------------------------
 *
 * breaker.c
 *		Circuit breakers per (database, fingerprint).
 *
 * A query shape that keeps failing is not retried into the ground: after
 * breaker_failures consecutive failures of a fingerprint its breaker opens,
 * and admission rejects the fingerprint's statements at once (53S05, with
 * the time left of the cooldown as retry hint).  After breaker_cooldown the
 * breaker is half open: the next statement is let through as a probe while
 * the others are still rejected; the probe's success closes the breaker,
 * its failure opens it again for another cooldown.
 *
 * A failure is a statement of the fingerprint that pg_shield admitted and
 * that then failed with an error of class 53 (insufficient resources), 57
 * (operator intervention: pg_shield's deadline, statement_timeout, a
 * cancel, a termination) or 58 (system error): the errors that say the
 * server could not run it, not that the application asked something wrong.
 * Any other end is a success, which resets the count.  pg_shield's own
 * rejections are not executions and count for nothing.  A probe that never
 * finishes (its transaction rolled back under it, its backend exited, it
 * was turned away by another limit) is no verdict: the breaker stays open,
 * and the next statement probes.  A backend that exits while it is a probe
 * (terminated while its CALL or DO ran, or while it waited in the admission
 * queue, where FATAL skips the PG_CATCH that would say so) gives up its
 * probes on the way out (pgsh_breaker_backend_exit).  A probe that runs
 * long holds the breaker half open as long: its deadline,
 * statement_timeout or idle_in_transaction_session_timeout bound it.
 *
 * The settings come from the most specific query policy that sets
 * breaker_failures, else from pg_shield.breaker_failures and
 * pg_shield.breaker_cooldown for every fingerprint.  In monitor mode (the
 * policy's, or pg_shield.mode) transitions happen and are reported, but
 * nothing is rejected.
 *
 * State lives in its own shared hash table (breaker_hash), keyed by
 * (database, fingerprint), apart from the statistics, so that it survives
 * the eviction of the fingerprint's statistics entries.  Only breakers with
 * something to remember have an entry: a failure count, or an open or half
 * open state.  It holds pg_shield.max_fingerprints entries; when it is
 * full, the closed ones (failures not yet reaching their threshold) are
 * forgotten first.
 *
 * LOCKING.  pgsh_state->breaker_lock guards breaker_hash: LW_SHARED to
 * look an entry up (to reject while one is open, or to find that the end
 * of a statement changes nothing), LW_EXCLUSIVE to create, change or remove
 * one.  It is never held together with another
 * pg_shield lock; events are recorded after it is released.  Besides, the
 * filter counts the entries per slot of the fingerprints' low bits; it is
 * changed under the exclusive lock with atomics and read without a lock,
 * so that the statements of the (nearly always all) fingerprints without an
 * entry take no lock at all.  A reader that sees a counter a moment stale
 * admits a statement the breaker opened for a moment earlier, or takes the
 * lock for nothing: a breaker is not a fence, and both are harmless.
 *
 * Nothing raises an error while holding the lock (the views' copy is
 * allocated before it is taken; see shmem.c).  Recording an outcome runs in
 * abort callbacks too: it takes the lock, never raises an error
 * (HASH_ENTER_NULL), and allocates nothing.
 *
 * Owns: the circuit breakers (breaker_hash, the filter), their probes,
 *		  and the check admission makes (pgsh_breaker_check).
 * Calls: events.c (transitions), shmem.c (pgsh_copy_room).
 * Locking: breaker_lock and the filter's atomics, as in LOCKING above.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/breaker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/elog.h"

#include "breaker.h"
#include "events.h"
#include "guc.h"
#include "shmem.h"

typedef struct ShieldBreakerKey
{
	Oid			dbid;
	uint64		queryid;
} ShieldBreakerKey;

typedef struct ShieldBreaker
{
	ShieldBreakerKey key;		/* hash key; must be first */
	ShieldBreakerState state;
	int32		failures;		/* consecutive failures */
	int32		threshold;		/* the setting it opened with */
	TimestampTz opened_at;		/* start of the current cooldown */
	int64		cooldown_us;	/* its length */
	int64		policy_id;		/* where the settings came from, 0: the
								 * instance */
	int			probe_pid;		/* half open: the probe's backend */
	TimestampTz probe_since;
	int64		trips;			/* times it opened */
} ShieldBreaker;

/*
 * Hot-path accessor, for the inline check of breaker.h that admission runs
 * on every statement: the filter's counter of a fingerprint, read without
 * breaker_lock, tells that no breaker of it exists (see LOCKING above).
 * Only this file writes it.
 */
pg_atomic_uint32 *pgsh_breaker_filter = NULL;
static HTAB *breaker_hash = NULL;

/*
 * How many of this backend's statements were made probes and have not
 * ended yet: only a backend with some looks for its probes when it exits.
 */
static int	breaker_probes_running = 0;

/* An event to record once the lock is released. */
typedef struct ShieldBreakerEvent
{
	bool		pending;
	ShieldAction action;
	char		detail[PGSH_EVENT_DETAIL_SIZE];
} ShieldBreakerEvent;

/*
 * Shared memory of the breakers: the filter and the hash table.
 */
Size
pgsh_breaker_shmem_size(void)
{
	return add_size(MAXALIGN(PGSH_BREAKER_FILTER_SIZE * sizeof(pg_atomic_uint32)),
					hash_estimate_size(pgsh_max_fingerprints,
									   sizeof(ShieldBreaker)));
}

/* Caller holds AddinShmemInitLock. */
void
pgsh_breaker_shmem_init(void)
{
	bool		found;
	HASHCTL		info;
	int			i;

	pgsh_breaker_filter = ShmemInitStruct("pg_shield breaker filter",
										  PGSH_BREAKER_FILTER_SIZE * sizeof(pg_atomic_uint32),
										  &found);
	if (!found)
	{
		for (i = 0; i < PGSH_BREAKER_FILTER_SIZE; i++)
			pg_atomic_init_u32(&pgsh_breaker_filter[i], 0);
	}

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(ShieldBreakerKey);
	info.entrysize = sizeof(ShieldBreaker);
	breaker_hash = ShmemInitHash("pg_shield breakers",
								 pgsh_max_fingerprints, pgsh_max_fingerprints,
								 &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
}

/*
 * The name of a breaker state, as the views and the log lines show it.
 */
const char *
pgsh_breaker_state_name(ShieldBreakerState state)
{
	switch (state)
	{
		case PGSH_BREAKER_OPEN:
			return "open";
		case PGSH_BREAKER_HALF_OPEN:
			return "half_open";
		case PGSH_BREAKER_CLOSED:
			break;
	}
	return "closed";
}

/*
 * The breaker settings of a statement with a fingerprint whose policies set
 * some, or with pg_shield.breaker_failures on (see the file header and
 * pgsh_breaker_ticket).  threshold 0: none.
 */
void
pgsh_breaker_ticket_of(ShieldBreakerTicket *t,
					   const ShieldEffectivePolicy *policy)
{
	if (policy->breaker_from >= 0)
	{
		const ShieldPolicy *p = &policy->scopes[policy->breaker_from];

		t->threshold = p->breaker_failures;
		t->cooldown_us = p->breaker_cooldown_us >= 0 ? p->breaker_cooldown_us :
			(int64) pgsh_breaker_cooldown_ms * 1000;
		t->policy_id = p->id;
		t->monitor = p->monitor || pgsh_mode == PGSH_MODE_MONITOR;
	}
	else if (pgsh_breaker_failures > 0)
	{
		t->threshold = pgsh_breaker_failures;
		t->cooldown_us = (int64) pgsh_breaker_cooldown_ms * 1000;
		t->policy_id = 0;
		t->monitor = pgsh_mode == PGSH_MODE_MONITOR;
	}
	else
		t->threshold = 0;
}

/*
 * Fill in a hash key, zeroing it first: HASH_BLOBS hashes and compares the
 * padding between dbid and queryid too.
 */
static void
key_init(ShieldBreakerKey *key, Oid dbid, uint64 queryid)
{
	memset(key, 0, sizeof(*key));	/* HASH_BLOBS: no padding garbage */
	key->dbid = dbid;
	key->queryid = queryid;
}

/*
 * The filter counter of a fingerprint.  It must pick the counter that
 * pgsh_breaker_may_exist (breaker.h) reads, or a breaker would go unseen.
 */
static inline pg_atomic_uint32 *
filter_slot(uint64 queryid)
{
	return &pgsh_breaker_filter[queryid % PGSH_BREAKER_FILTER_SIZE];
}

/* Forget a breaker.  Caller holds the lock exclusively. */
static void
remove_locked(ShieldBreaker *b)
{
	uint64		queryid = b->key.queryid;

	hash_search(breaker_hash, &b->key, HASH_REMOVE, NULL);
	pg_atomic_fetch_sub_u32(filter_slot(queryid), 1);
}

/*
 * Find or create a breaker; NULL if the table is full of open ones.
 * Caller holds the lock exclusively.
 */
static ShieldBreaker *
enter_locked(const ShieldBreakerKey *key)
{
	ShieldBreaker *b;
	bool		found;

	b = hash_search(breaker_hash, key, HASH_ENTER_NULL, &found);
	if (b == NULL)
	{
		HASH_SEQ_STATUS hstat;
		ShieldBreaker *victim;

		/* forget the closed ones, whose failures have not opened them */
		hash_seq_init(&hstat, breaker_hash);
		while ((victim = hash_seq_search(&hstat)) != NULL)
		{
			if (victim->state == PGSH_BREAKER_CLOSED)
				remove_locked(victim);
		}
		b = hash_search(breaker_hash, key, HASH_ENTER_NULL, &found);
		if (b == NULL)
			return NULL;
	}
	if (!found)
	{
		b->state = PGSH_BREAKER_CLOSED;
		b->failures = 0;
		b->threshold = 0;
		b->opened_at = 0;
		b->cooldown_us = 0;
		b->policy_id = 0;
		b->probe_pid = 0;
		b->probe_since = 0;
		b->trips = 0;
		pg_atomic_fetch_add_u32(filter_slot(key->queryid), 1);
	}
	return b;
}

/*
 * A half-open breaker's probe gives no verdict: open, with its cooldown
 * over, so that the next statement probes.  Caller holds the lock
 * exclusively.
 */
static void
abandon_probe_locked(ShieldBreaker *b)
{
	b->state = PGSH_BREAKER_OPEN;
	b->opened_at = GetCurrentTimestamp() - b->cooldown_us;
	b->probe_pid = 0;
}

/* "policy 7" or "pg_shield.breaker_failures", for details. */
static const char *
settings_source(int64 policy_id, char *buf, size_t size)
{
	if (policy_id == 0)
		return "pg_shield.breaker_failures";
	snprintf(buf, size, "policy " INT64_FORMAT, policy_id);
	return buf;
}

/*
 * Microseconds as whole milliseconds, rounded up and at least 1, so that a
 * retry hint never sends a client back before the cooldown is over.
 */
static int
ceil_ms(int64 us)
{
	return (int) Max(1, Min((us + 999) / 1000, (int64) PG_INT32_MAX));
}

/*
 * Admission's question: may a statement with this breaker run?  Called
 * only when the ticket has a breaker and the filter says an entry may
 * exist.  Sets verdict->reject (with a retry hint and a detail) if the
 * breaker is open, or half open with its probe running; makes this
 * statement the probe (t->probe) if the cooldown is over.  In monitor mode
 * the verdict is the same, and the caller only counts it.
 */
void
pgsh_breaker_check(ShieldBreakerTicket *t, Oid userid, uint64 queryid,
				   ShieldBreakerVerdict *verdict)
{
	ShieldBreakerKey key;
	ShieldBreaker *b;
	TimestampTz now = 0;
	LWLockMode	mode = LW_SHARED;
	ShieldBreakerEvent event;
	char		source[64];

	verdict->reject = false;
	event.pending = false;
	key_init(&key, MyDatabaseId, queryid);

	LWLockAcquire(pgsh_state->breaker_lock, mode);
	for (;;)
	{
		b = hash_search(breaker_hash, &key, HASH_FIND, NULL);
		if (b == NULL || b->state == PGSH_BREAKER_CLOSED)
			break;
		if (now == 0)
			now = GetCurrentTimestamp();
		if (b->state == PGSH_BREAKER_OPEN && now < b->opened_at + b->cooldown_us)
		{
			verdict->reject = true;
			verdict->retry_ms = ceil_ms(b->opened_at + b->cooldown_us - now);
			snprintf(verdict->detail, sizeof(verdict->detail),
					 "The circuit breaker of fingerprint " INT64_FORMAT " is open after %d consecutive failures (breaker_failures %d, %s); it lets a probe through in %d ms.",
					 (int64) queryid, b->failures, b->threshold,
					 settings_source(b->policy_id, source, sizeof(source)),
					 verdict->retry_ms);
			break;
		}
		if (b->state == PGSH_BREAKER_HALF_OPEN)
		{
			int64		running = now - b->probe_since;

			/*
			 * Nobody knows when the probe ends: as long as it has run so far,
			 * at least 10 ms, at most the cooldown.
			 */
			verdict->reject = true;
			verdict->retry_ms = ceil_ms(Max(Min(running, b->cooldown_us),
											10000));
			snprintf(verdict->detail, sizeof(verdict->detail),
					 "The circuit breaker of fingerprint " INT64_FORMAT " is half open: its probe has been running for %.0f ms.",
					 (int64) queryid, (double) running / 1000.0);
			break;
		}

		/* the cooldown is over: probe */
		if (mode == LW_SHARED)
		{
			LWLockRelease(pgsh_state->breaker_lock);
			mode = LW_EXCLUSIVE;
			LWLockAcquire(pgsh_state->breaker_lock, mode);
			continue;			/* look again: another may have probed */
		}
		b->state = PGSH_BREAKER_HALF_OPEN;
		b->probe_pid = MyProcPid;
		b->probe_since = now;
		t->probe = true;
		breaker_probes_running++;
		event.pending = true;
		event.action = PGSH_ACTION_BREAKER_HALF_OPEN;
		snprintf(event.detail, sizeof(event.detail),
				 "The circuit breaker of fingerprint " INT64_FORMAT " is half open: its cooldown of %d ms is over, and this statement is its probe.",
				 (int64) queryid, ceil_ms(b->cooldown_us));
		break;
	}
	LWLockRelease(pgsh_state->breaker_lock);

	if (event.pending)
		pgsh_event_record(event.action, !t->monitor, userid, queryid,
						  event.detail);
}

/*
 * Classify how a statement that failed with this SQLSTATE ended (0: not
 * known, as for a statement that never finished).
 */
ShieldBreakerOutcome
pgsh_breaker_outcome_of(int sqlerrcode)
{
	if (sqlerrcode == 0)
		return PGSH_OUTCOME_ABANDONED;
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_INSUFFICIENT_RESOURCES:	/* class 53 */
		case ERRCODE_OPERATOR_INTERVENTION: /* class 57 */
		case ERRCODE_SYSTEM_ERROR:	/* class 58 */
			return PGSH_OUTCOME_FAILURE;
		default:
			return PGSH_OUTCOME_SUCCESS;
	}
}

/*
 * A statement with a breaker ended, with something to move (see
 * pgsh_breaker_outcome): move its breaker.  Runs in abort callbacks too:
 * never fails, allocates nothing.
 */
void
pgsh_breaker_move(const ShieldBreakerTicket *t, Oid userid,
				  uint64 queryid, ShieldBreakerOutcome outcome)
{
	ShieldBreakerKey key;
	ShieldBreaker *b;
	ShieldBreakerEvent event;
	bool		mine;
	char		source[64];

	if (pgsh_state == NULL)
		return;
	if (t->probe && breaker_probes_running > 0)
		breaker_probes_running--;

	event.pending = false;
	key_init(&key, MyDatabaseId, queryid);

	/*
	 * A success or no verdict changes something only if the fingerprint's
	 * breaker is closed with failures to forget, or half open with this
	 * statement as its probe (the filter only says an entry may exist: its
	 * slot is shared with other fingerprints).  Decide under the shared lock
	 * first, so that the statements of a fingerprint sharing a slot with
	 * another's breaker, or of one whose open breaker only monitors, take no
	 * exclusive lock.
	 */
	if (outcome != PGSH_OUTCOME_FAILURE)
	{
		bool		changes;

		LWLockAcquire(pgsh_state->breaker_lock, LW_SHARED);
		b = hash_search(breaker_hash, &key, HASH_FIND, NULL);
		changes = b != NULL &&
			((outcome == PGSH_OUTCOME_SUCCESS && b->state == PGSH_BREAKER_CLOSED) ||
			 (t->probe && b->state == PGSH_BREAKER_HALF_OPEN &&
			  b->probe_pid == MyProcPid));
		LWLockRelease(pgsh_state->breaker_lock);
		if (!changes)
			return;
	}

	LWLockAcquire(pgsh_state->breaker_lock, LW_EXCLUSIVE);
	if (outcome == PGSH_OUTCOME_FAILURE)
		b = enter_locked(&key);
	else
		b = hash_search(breaker_hash, &key, HASH_FIND, NULL);
	if (b == NULL)
	{
		LWLockRelease(pgsh_state->breaker_lock);
		return;
	}
	mine = t->probe && b->state == PGSH_BREAKER_HALF_OPEN &&
		b->probe_pid == MyProcPid;

	switch (outcome)
	{
		case PGSH_OUTCOME_SUCCESS:
			if (b->state == PGSH_BREAKER_CLOSED)
				remove_locked(b);	/* the count starts again */
			else if (mine)
			{
				event.pending = true;
				event.action = PGSH_ACTION_BREAKER_CLOSED;
				snprintf(event.detail, sizeof(event.detail),
						 "The probe of fingerprint " INT64_FORMAT " succeeded: its circuit breaker is closed.",
						 (int64) queryid);
				remove_locked(b);
			}
			/* open: a statement admitted before it opened says nothing */
			break;

		case PGSH_OUTCOME_FAILURE:
			b->failures = Min(b->failures + 1, PG_INT32_MAX - 1);
			if ((b->state == PGSH_BREAKER_CLOSED && b->failures >= t->threshold) ||
				mine)
			{
				if (mine)
					snprintf(event.detail, sizeof(event.detail),
							 "The probe of fingerprint " INT64_FORMAT " failed: its circuit breaker is open again for %d ms.",
							 (int64) queryid, ceil_ms(t->cooldown_us));
				else
					snprintf(event.detail, sizeof(event.detail),
							 "Fingerprint " INT64_FORMAT " failed %d times in a row (breaker_failures %d, %s): its circuit breaker is open for %d ms.",
							 (int64) queryid, b->failures, t->threshold,
							 settings_source(t->policy_id, source, sizeof(source)),
							 ceil_ms(t->cooldown_us));
				event.pending = true;
				event.action = PGSH_ACTION_BREAKER_TRIPPED;
				b->state = PGSH_BREAKER_OPEN;
				b->threshold = t->threshold;
				b->cooldown_us = t->cooldown_us;
				b->policy_id = t->policy_id;
				b->opened_at = GetCurrentTimestamp();
				b->probe_pid = 0;
				b->trips++;
			}
			break;

		case PGSH_OUTCOME_ABANDONED:
			if (mine)
				abandon_probe_locked(b);
			break;
	}
	LWLockRelease(pgsh_state->breaker_lock);

	if (event.pending)
		pgsh_event_record(event.action, !t->monitor, userid, queryid,
						  event.detail);
}

/*
 * shield.reset_breaker(): close a breaker by hand.  Returns whether it had
 * anything to forget.
 */
bool
pgsh_breaker_reset(Oid dbid, uint64 queryid)
{
	ShieldBreakerKey key;
	ShieldBreaker *b;
	ShieldBreakerState was = PGSH_BREAKER_CLOSED;
	char		detail[PGSH_EVENT_DETAIL_SIZE];

	key_init(&key, dbid, queryid);
	LWLockAcquire(pgsh_state->breaker_lock, LW_EXCLUSIVE);
	b = hash_search(breaker_hash, &key, HASH_FIND, NULL);
	if (b != NULL)
	{
		was = b->state;
		remove_locked(b);
	}
	LWLockRelease(pgsh_state->breaker_lock);
	if (b == NULL)
		return false;
	snprintf(detail, sizeof(detail),
			 "The circuit breaker of fingerprint " INT64_FORMAT " was closed by shield.reset_breaker() (it was %s).",
			 (int64) queryid, pgsh_breaker_state_name(was));
	pgsh_event_record(PGSH_ACTION_BREAKER_RESET, true, GetUserId(), queryid,
					  detail);
	return true;
}

/*
 * Every breaker with something to remember, palloc'd (allocated while the
 * lock is not held: see the file header).
 */
ShieldBreakerRow *
pgsh_breakers_copy(int *n)
{
	ShieldBreakerRow *rows;
	HASH_SEQ_STATUS hstat;
	ShieldBreaker *b;
	long		room;

	rows = pgsh_copy_room(pgsh_state->breaker_lock, &breaker_hash, 1,
						  sizeof(ShieldBreakerRow), &room);
	*n = 0;
	hash_seq_init(&hstat, breaker_hash);
	while ((b = hash_seq_search(&hstat)) != NULL)
	{
		ShieldBreakerRow *r = &rows[(*n)++];

		r->dbid = b->key.dbid;
		r->queryid = b->key.queryid;
		r->state = b->state;
		r->failures = b->failures;
		r->threshold = b->threshold;
		r->opened_at = b->state == PGSH_BREAKER_CLOSED ? 0 : b->opened_at;
		r->cooldown_us = b->cooldown_us;
		r->probe_pid = b->state == PGSH_BREAKER_HALF_OPEN ? b->probe_pid : 0;
		r->trips = b->trips;
	}
	LWLockRelease(pgsh_state->breaker_lock);
	return rows;
}

/*
 * The backend exits: the breakers whose probe it still is get no verdict
 * from it (see the file header), so that the next statement probes.
 * Called from admission's before_shmem_exit callback; a backend that was
 * never a probe takes no lock.  Never fails.
 */
void
pgsh_breaker_backend_exit(void)
{
	HASH_SEQ_STATUS hstat;
	ShieldBreaker *b;

	if (breaker_probes_running == 0 || pgsh_state == NULL)
		return;
	breaker_probes_running = 0;
	LWLockAcquire(pgsh_state->breaker_lock, LW_EXCLUSIVE);
	hash_seq_init(&hstat, breaker_hash);
	while ((b = hash_seq_search(&hstat)) != NULL)
	{
		if (b->state == PGSH_BREAKER_HALF_OPEN && b->probe_pid == MyProcPid)
			abandon_probe_locked(b);
	}
	LWLockRelease(pgsh_state->breaker_lock);
}
