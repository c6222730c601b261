/*-------------------------------------------------------------------------
 *
 * stats.h
 *		Cost accounting per (database, role) and per (database, role,
 *		fingerprint) in shared memory.
 *
 * Implemented by stats.c (recording a statement), stats_table.c (the
 * tables: creation, entries, eviction, query texts, reset) and
 * stats_read.c (the role totals and means read by the views and by
 * admission); they share stats_int.h.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/stats.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_STATS_H
#define PGSH_STATS_H

#include "storage/spin.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "miscadmin.h"

PGSH_BEGIN_INTERNAL

/*
 * Latency histogram.  Bucket boundaries are log-spaced with four buckets
 * per power of two of microseconds: values below 8 us get exact buckets,
 * and a bucket [lo, hi) above that has hi/lo <= 1.25.  A percentile is
 * reported as the geometric midpoint of its bucket, clamped to the observed
 * min and max, so its relative error is at most sqrt(1.25) - 1 (11.8%).
 * The last bucket is open-ended (about 2 hours and above).
 */
#define PGSH_HIST_BUCKETS 128

/*
 * Execution time buckets for dashboards: fixed upper bounds in ms (see
 * pgsh_exec_bucket_le_ms in stats.c), the last one infinite.  Unlike the
 * histogram above, whose boundaries are powers of two of microseconds,
 * these are round numbers a Prometheus "le" label can name, and they are
 * kept per role as well: they are part of ShieldCounters, so they add up
 * into a role's totals and fold into its entry with an evicted fingerprint
 * like every other counter.  Each counts its own bucket only; the views
 * show them cumulated.
 */
#define PGSH_EXEC_BUCKETS 19

/* Bytes of query text kept per fingerprint, terminator included. */
#define PGSH_QUERY_TEXT_SIZE 1024

/* Counters kept for both tables. */
typedef struct ShieldCounters
{
	int64		calls;			/* statements completed */
	int64		errors;			/* statements that failed */
	int64		rows;			/* rows processed by completed statements */
	double		total_exec_ms;	/* execution time of completed statements */
	double		min_exec_ms;
	double		max_exec_ms;
	int64		plans;			/* top-level plannings */
	double		total_plan_ms;
	int64		costed;			/* executions with an executor plan */
	double		sum_cost;		/* sum of their estimated total costs */
	double		max_cost;
	/* enforcement; written by admission, deadlines, breakers, shedding */
	int64		admitted;
	int64		queued;
	double		queue_ms;
	int64		rejected_queue_full;
	int64		rejected_queue_timeout;
	int64		rejected_cost;
	int64		rejected_rate;
	int64		rejected_breaker;
	int64		rejected_deadlock;
	int64		shed;
	int64		deadline_cancels;
	int64		would_reject;
	int64		would_queue;
	int64		would_cancel;
	TimestampTz last_exec;		/* start of the latest statement, 0 if none */
	/* completed statements per execution time bucket, not cumulated */
	int64		exec_buckets[PGSH_EXEC_BUCKETS];
} ShieldCounters;

typedef struct ShieldRoleKey
{
	Oid			dbid;
	Oid			userid;
} ShieldRoleKey;

typedef struct ShieldRoleEntry
{
	ShieldRoleKey key;			/* hash key; must be first */
	slock_t		mutex;			/* protects the fields below */
	double		usage;			/* eviction priority */
	int32		peak_active;	/* highest concurrency seen (admission) */
	double		evict_score;	/* scratch of eviction (stats_table.c) */

	/*
	 * Statements without a fingerprint, and the fingerprints' entries that
	 * were evicted; the role's totals add its live fingerprints' entries
	 * (pgsh_stats_roles).
	 */
	ShieldCounters counters;
} ShieldRoleEntry;

/*
 * HASH_BLOBS compares keys with memcmp, so keys are always zeroed before
 * being filled in: the padding after userid must not hold garbage.
 */
typedef struct ShieldFpKey
{
	Oid			dbid;
	Oid			userid;
	uint64		queryid;
} ShieldFpKey;

typedef struct ShieldFpEntry
{
	ShieldFpKey key;			/* hash key; must be first */
	slock_t		mutex;			/* protects the fields below */
	double		usage;			/* eviction priority */
	ShieldCounters counters;
	uint64		hist[PGSH_HIST_BUCKETS];	/* completed calls per latency
											 * bucket */
	int			encoding;		/* server encoding of query */
	int			query_len;		/* bytes in query, 0 while unknown, -1 if the
								 * statement has no text */
	char		query[PGSH_QUERY_TEXT_SIZE];
} ShieldFpEntry;

/* Why admission turned a statement away (ShieldObservation.rejected). */
typedef enum ShieldRejection
{
	PGSH_REJECT_NONE,
	PGSH_REJECT_QUEUE_FULL,
	PGSH_REJECT_QUEUE_TIMEOUT,
	PGSH_REJECT_COST,
	PGSH_REJECT_RATE,
	PGSH_REJECT_DEADLINE,		/* its deadline expired: while it waited, or
								 * while it ran (a deadline cancel) */
	PGSH_REJECT_BREAKER,		/* its fingerprint's breaker was open */
	PGSH_REJECT_SHED,			/* shed: the instance is overloaded */
	PGSH_REJECT_DEADLOCK		/* it waited in the queue for itself */
} ShieldRejection;

/* One statement's outcome, handed to pgsh_stats_record(). */
typedef struct ShieldObservation
{
	Oid			dbid;
	Oid			userid;
	uint64		queryid;		/* 0: account the role only */
	bool		failed;
	ShieldRejection rejected;	/* turned away: neither a call nor an error */
	/* admission (admission.c) */
	bool		admitted;
	bool		queued;			/* waited in the admission queue */
	double		queue_ms;
	bool		would_reject;	/* monitor mode */
	bool		would_queue;	/* monitor mode */
	bool		would_cancel;	/* monitor mode: it outlived its deadline */
	int32		role_active;	/* the role's running statements once it was
								 * admitted, 0 if unknown */
	double		exec_ms;		/* completed statements only */
	uint64		rows;
	double		cost;			/* estimated total cost, < 0 if none */
	TimestampTz started;

	/*
	 * Statement text, only read when a fingerprint entry needs it: either
	 * ready (text, text_len), or a statement in a query string (source,
	 * location, len as in the parse tree; cleaned up and clamped).
	 */
	const char *text;
	int			text_len;
	const char *source;
	int			location;
	int			len;
} ShieldObservation;

/*
 * Start an observation of a statement of this database: everything else
 * zero, no plan cost.  The callers fill in the outcome.
 */
static inline void
pgsh_observation_init(ShieldObservation *obs, Oid userid, uint64 queryid,
					  TimestampTz started)
{
	memset(obs, 0, sizeof(*obs));
	obs->dbid = MyDatabaseId;
	obs->userid = userid;
	obs->queryid = queryid;
	obs->cost = -1.0;
	obs->started = started;
}

/*
 * The backend's cache of fingerprint entries (stats.c): direct-mapped on
 * the low bits of the fingerprint.  Only entries with their text are
 * cached.
 */
#define PGSH_FP_CACHE_SLOTS 64

typedef struct ShieldFpCacheSlot
{
	uint64		generation;		/* see stats.c */
	ShieldFpKey key;
	ShieldFpEntry *entry;		/* NULL if never cached */
} ShieldFpCacheSlot;

extern ShieldFpCacheSlot pgsh_fp_cache[PGSH_FP_CACHE_SLOTS];

/*
 * Has this backend recorded the fingerprint's entry with its text?  True
 * if it is in the cache (unless the entry was evicted since, which only
 * costs a failure's text sample).  Takes no lock.
 */
static inline bool
pgsh_stats_text_known(Oid userid, uint64 queryid)
{
	const ShieldFpCacheSlot *slot = &pgsh_fp_cache[queryid % PGSH_FP_CACHE_SLOTS];

	return slot->entry != NULL && slot->key.queryid == queryid &&
		slot->key.userid == userid && slot->key.dbid == MyDatabaseId;
}

/* Size and initialization, called from shmem.c. */
extern Size pgsh_stats_shmem_size(void);
extern void pgsh_stats_shmem_init(void);

/* Text of one statement in a query string; NULL if none. */
extern const char *pgsh_statement_text(const char *source, int location,
									   int len, int *text_len);

/* Recording; never raises an error (safe in abort callbacks). */
extern void pgsh_stats_record(const ShieldObservation *obs);
extern bool pgsh_stats_record_completed(Oid userid, uint64 queryid,
										TimestampTz started, bool admitted,
										int32 role_active, double exec_ms,
										uint64 rows, double cost);
extern void pgsh_stats_record_plan(Oid dbid, Oid userid, uint64 queryid,
								   double plan_ms, const char *text,
								   int text_len);

extern TimestampTz pgsh_stats_reset(void);

/* A shape's mean execution time, for retry hints; -1 if unknown. */
extern double pgsh_stats_typical_ms(Oid dbid, Oid userid, uint64 queryid);


/* Views: every role's totals, palloc'd; and how counters add up. */
extern ShieldRoleEntry *pgsh_stats_roles(long *n);
extern void pgsh_counters_merge(ShieldCounters *into,
								const ShieldCounters *from);

/* Upper bounds of the execution time buckets, in ms; the last is infinite. */
extern const double pgsh_exec_bucket_le_ms[PGSH_EXEC_BUCKETS];

/* Histogram helpers, shared with the views. */
extern double pgsh_hist_percentile(const uint64 *hist, int64 n,
								   double fraction, double min_ms,
								   double max_ms);

PGSH_END_INTERNAL

#endif							/* PGSH_STATS_H */
