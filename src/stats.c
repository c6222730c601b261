/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Cost accounting in shared memory: recording each statement in its
 *		(database, role) and (database, role, fingerprint) entries.
 *
 * This file owns the per-statement path, which runs at every statement
 * and therefore keeps every inline helper it uses in this one file: the
 * backend's cache of entry pointers (pgsh_fp_cache, stats_role_cache), the
 * arithmetic of ShieldCounters and of the latency histogram, and
 * pgsh_stats_record with its variants.  The tables themselves (creation,
 * allocation and eviction of entries, query texts, reset) belong to
 * stats_table.c; copying them out for the views and the retry hints
 * belongs to stats_read.c.  pgsh_counters_merge and the histogram's
 * percentiles stay here, next to counters_add and hist_bucket, so that a
 * new counter or a new bucket layout is one file's change.
 *
 * A statement is recorded in one entry: its fingerprint's, or its role's
 * if it has no fingerprint.  A role's totals are its entry's counters plus
 * those of its fingerprints' entries, summed when shield.role_stats is
 * read; an evicted fingerprint entry's counters are added to its role's
 * entry, so that the role keeps them.  The role's entry, which every
 * session of the role would otherwise write at every statement, is thus
 * only read on the hot path (for the peak of concurrency).
 *
 * Once a backend has cached a statement's entry, recording it takes the
 * entry's spinlock only, without stats_lock: see the cache below and the
 * locking protocol in shmem.c.  A statement whose entries are not cached
 * takes stats_lock shared to find them; only when one must be created, or
 * its text stored, does it take the lock exclusively and call into
 * stats_table.c (through stats_int.h).  Those are the only calls this file
 * makes to another pg_shield file, and no cached statement makes them.
 *
 * Owns: recording (pgsh_stats_record*), the backend's entry cache, and
 *		  the arithmetic of the counters and the latency histogram.
 * Calls: stats_table.c (creating entries, storing texts).
 * Locking: the entries' spinlocks, and stats_lock when not cached; see
 *		  shmem.c.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/stats.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "port/pg_bitutils.h"
#include "storage/spin.h"
#include "utils/float.h"
#include "utils/hsearch.h"

#include "shmem.h"
#include "stats.h"
#include "stats_int.h"

/*
 * Usage added to an entry by each statement; stats_table.c gives a new
 * entry its initial usage and decays the usage of the survivors of an
 * eviction.
 */
#define USAGE_PER_CALL		1.0

/*
 * Upper bounds of the execution time buckets (stats.h), in ms: 1-2.5-5 steps
 * from 0.1 ms, which separates the sub-millisecond statements of an OLTP
 * workload, to 10 s, then 30 s and 1 min for reports and batch jobs, and
 * everything longer.  Changing them changes the documented interface (and
 * breaks the continuity of the series dashboards keep), so they are fixed.
 */
const double pgsh_exec_bucket_le_ms[PGSH_EXEC_BUCKETS] = {
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500,
	1000, 2500, 5000, 10000, 30000, 60000, INFINITY
};

/*
 * Histogram bucket of a duration.  See stats.h for the bucket layout.
 */
static inline int
hist_bucket(double ms)
{
	uint64		us;
	int			msb;
	int			idx;

	if (!(ms > 0.0))
		return 0;
	if (ms >= 1.0e15)
		return PGSH_HIST_BUCKETS - 1;
	us = (uint64) (ms * 1000.0);
	if (us < 4)
		return (int) us;
	msb = pg_leftmost_one_pos64(us);	/* >= 2 */
	idx = 4 * (msb - 1) + (int) ((us >> (msb - 2)) & 3);
	return Min(idx, PGSH_HIST_BUCKETS - 1);
}

/* Bounds of a bucket, in microseconds: [*lo, *hi). */
static void
hist_bucket_bounds(int idx, double *lo, double *hi)
{
	int			msb;
	int			sub;

	if (idx < 4)
	{
		*lo = idx;
		*hi = idx + 1;
		return;
	}
	msb = idx / 4 + 1;
	sub = idx % 4;
	*lo = ldexp(4 + sub, msb - 2);
	*hi = ldexp(5 + sub, msb - 2);
}

/*
 * Estimate a percentile (fraction in (0, 1]) from a histogram: the
 * geometric midpoint of the bucket holding that rank, clamped to the
 * observed extremes.  Returns NaN when there is no observation.
 */
double
pgsh_hist_percentile(const uint64 *hist, int64 n, double fraction,
					 double min_ms, double max_ms)
{
	uint64		total = 0;
	uint64		rank;
	uint64		cum = 0;
	int			i;

	for (i = 0; i < PGSH_HIST_BUCKETS; i++)
		total += hist[i];
	if (total == 0 || n <= 0)
		return get_float8_nan();

	rank = (uint64) ceil(fraction * (double) total);
	if (rank < 1)
		rank = 1;

	for (i = 0; i < PGSH_HIST_BUCKETS; i++)
	{
		cum += hist[i];
		if (cum >= rank)
			break;
	}
	if (i >= PGSH_HIST_BUCKETS)
		i = PGSH_HIST_BUCKETS - 1;

	{
		double		lo;
		double		hi;
		double		est;

		hist_bucket_bounds(i, &lo, &hi);
		est = (lo > 0.0 ? sqrt(lo * hi) : hi / 2.0) / 1000.0;
		if (est < min_ms)
			est = min_ms;
		if (est > max_ms)
			est = max_ms;
		return est;
	}
}

/*
 * The execution time bucket of a duration: the first whose bound it does
 * not exceed.  A linear scan from the bottom, because its cost grows with
 * the duration it classifies: the usual sub-millisecond statement takes one
 * to three comparisons, and only statements of seconds take a dozen or
 * more.  NaN, which never happens, lands in the last bucket.
 */
static pg_attribute_always_inline int
exec_bucket_of(double ms)
{
	int			i = 0;

	while (i < PGSH_EXEC_BUCKETS - 1 && !(ms <= pgsh_exec_bucket_le_ms[i]))
		i++;
	return i;
}

/*
 * A completed statement's part of counters_add: exec_bucket is
 * exec_bucket_of(exec_ms), found before the mutex was taken.  Caller holds
 * the mutex.
 */
static pg_attribute_always_inline void
counters_add_completed(ShieldCounters *c, double exec_ms, int exec_bucket,
					   uint64 rows, double cost)
{
	if (c->calls == 0)
	{
		c->min_exec_ms = exec_ms;
		c->max_exec_ms = exec_ms;
	}
	else
	{
		if (exec_ms < c->min_exec_ms)
			c->min_exec_ms = exec_ms;
		if (exec_ms > c->max_exec_ms)
			c->max_exec_ms = exec_ms;
	}
	c->calls++;
	c->rows += rows;
	c->total_exec_ms += exec_ms;
	c->exec_buckets[exec_bucket]++;
	if (cost >= 0.0)
	{
		c->costed++;
		c->sum_cost += cost;
		if (cost > c->max_cost)
			c->max_cost = cost;
	}
}

/* Every statement's part of counters_add.  Caller holds the mutex. */
static pg_attribute_always_inline void
counters_add_start(ShieldCounters *c, TimestampTz started, bool admitted)
{
	if (started > c->last_exec)
		c->last_exec = started;
	if (admitted)
		c->admitted++;
}

/*
 * Add one statement to a set of counters.  Caller holds the entry's mutex.
 * plain: the statement completed, and was neither queued, rejected nor
 * flagged by monitor mode, the usual case (see pgsh_stats_record).
 */
static pg_attribute_always_inline void
counters_add(ShieldCounters *c, const ShieldObservation *obs, bool plain,
			 int exec_bucket)
{
	counters_add_start(c, obs->started, obs->admitted);
	if (plain)
		goto completed;
	if (obs->queued)
	{
		c->queued++;
		c->queue_ms += obs->queue_ms;
	}
	if (obs->would_reject)
		c->would_reject++;
	if (obs->would_queue)
		c->would_queue++;
	if (obs->would_cancel)
		c->would_cancel++;
	if (obs->rejected != PGSH_REJECT_NONE)
	{
		switch (obs->rejected)
		{
			case PGSH_REJECT_NONE:
				break;
			case PGSH_REJECT_QUEUE_FULL:
				c->rejected_queue_full++;
				break;
			case PGSH_REJECT_QUEUE_TIMEOUT:
				c->rejected_queue_timeout++;
				break;
			case PGSH_REJECT_COST:
				c->rejected_cost++;
				break;
			case PGSH_REJECT_RATE:
				c->rejected_rate++;
				break;
			case PGSH_REJECT_DEADLINE:
				c->deadline_cancels++;
				break;
			case PGSH_REJECT_BREAKER:
				c->rejected_breaker++;
				break;
			case PGSH_REJECT_DEADLOCK:
				c->rejected_deadlock++;
				break;
			case PGSH_REJECT_SHED:
				c->shed++;
				break;
		}
		return;
	}
	if (obs->failed)
	{
		c->errors++;
		return;
	}

completed:
	counters_add_completed(c, obs->exec_ms, exec_bucket, obs->rows, obs->cost);
}

/*
 * Add one set of counters to another (a fingerprint's to its role's).
 * Caller holds what protects both.
 */
void
pgsh_counters_merge(ShieldCounters *into, const ShieldCounters *from)
{
	int			i;

	if (from->calls > 0)
	{
		if (into->calls == 0 || from->min_exec_ms < into->min_exec_ms)
			into->min_exec_ms = from->min_exec_ms;
		if (into->calls == 0 || from->max_exec_ms > into->max_exec_ms)
			into->max_exec_ms = from->max_exec_ms;
	}
	into->calls += from->calls;
	into->errors += from->errors;
	into->rows += from->rows;
	into->total_exec_ms += from->total_exec_ms;
	into->plans += from->plans;
	into->total_plan_ms += from->total_plan_ms;
	into->costed += from->costed;
	into->sum_cost += from->sum_cost;
	into->max_cost = Max(into->max_cost, from->max_cost);
	into->admitted += from->admitted;
	into->queued += from->queued;
	into->queue_ms += from->queue_ms;
	into->rejected_queue_full += from->rejected_queue_full;
	into->rejected_queue_timeout += from->rejected_queue_timeout;
	into->rejected_cost += from->rejected_cost;
	into->rejected_rate += from->rejected_rate;
	into->rejected_breaker += from->rejected_breaker;
	into->rejected_deadlock += from->rejected_deadlock;
	into->shed += from->shed;
	into->deadline_cancels += from->deadline_cancels;
	into->would_reject += from->would_reject;
	into->would_queue += from->would_queue;
	into->would_cancel += from->would_cancel;
	into->last_exec = Max(into->last_exec, from->last_exec);
	for (i = 0; i < PGSH_EXEC_BUCKETS; i++)
		into->exec_buckets[i] += from->exec_buckets[i];
}

/*----
 * Backend-local cache of entry pointers.  A statement usually finds both
 * its entries here and records itself without stats_lock and without a
 * hash lookup: direct-mapped on the low bits of the fingerprint; one slot
 * for the role, which rarely changes.
 *
 * A cached pointer is used only under the entry's spinlock, and only if
 * pgsh_state->generation, read under that spinlock, is still the one it
 * was cached under.  Entries are removed only after the generation has
 * advanced and with their spinlock taken and released once (remove_entry, in
 * stats_table.c),
 * so an entry whose generation matches cannot be removed or reused until
 * the spinlock is released.  A stale pointer costs one spinlock round trip
 * and a fall back to the locked path, which caches the entry again.
 *
 * pgsh_fp_cache is exported as a hot-path accessor: pgsh_stats_text_known
 * (stats.h) reads it, without a lock, to tell whether a statement's text
 * is already stored.  Only this file writes it.
 *----
 */
ShieldFpCacheSlot pgsh_fp_cache[PGSH_FP_CACHE_SLOTS];
static struct
{
	uint64		generation;
	ShieldRoleKey key;
	ShieldRoleEntry *entry;		/* NULL if never cached */
}			stats_role_cache;

/*
 * The one cache slot a fingerprint may occupy.  Fingerprints are hashes,
 * so their low bits spread them over the slots.
 */
static inline ShieldFpCacheSlot *
fp_cache_slot(const ShieldFpKey *key)
{
	return &pgsh_fp_cache[key->queryid % PGSH_FP_CACHE_SLOTS];
}

/*
 * Remember entries found under stats_lock, which keeps the generation
 * still.  A fingerprint entry is remembered once its text is settled, so
 * that the lock-free path never has text to store.
 */
static inline void
fp_remember(const ShieldFpKey *key, ShieldFpEntry *entry)
{
	ShieldFpCacheSlot *slot = fp_cache_slot(key);

	if (entry == NULL || entry->query_len == 0)
		return;
	slot->generation = pg_atomic_read_u64(&pgsh_state->generation);
	slot->key = *key;
	slot->entry = entry;
}

/* Remember a role's entry found under stats_lock, in the one role slot. */
static inline void
role_remember(const ShieldRoleKey *key, ShieldRoleEntry *entry)
{
	if (entry == NULL)
		return;
	stats_role_cache.generation = pg_atomic_read_u64(&pgsh_state->generation);
	stats_role_cache.key = *key;
	stats_role_cache.entry = entry;
}

/* The cached entry of a key, or NULL; to be checked as described above. */
static inline ShieldFpEntry *
fp_cached(const ShieldFpKey *key, uint64 *generation)
{
	ShieldFpCacheSlot *slot = fp_cache_slot(key);

	if (slot->entry == NULL || slot->key.queryid != key->queryid ||
		slot->key.userid != key->userid || slot->key.dbid != key->dbid)
		return NULL;
	*generation = slot->generation;
	return slot->entry;
}

/* The cached entry of a role, or NULL; to be checked as fp_cached's. */
static inline ShieldRoleEntry *
role_cached(const ShieldRoleKey *key, uint64 *generation)
{
	if (stats_role_cache.entry == NULL || stats_role_cache.key.userid != key->userid ||
		stats_role_cache.key.dbid != key->dbid)
		return NULL;
	*generation = stats_role_cache.generation;
	return stats_role_cache.entry;
}

/* Has no entry been removed since this generation?  Caller holds a spinlock. */
static inline bool
generation_current(uint64 generation)
{
	return pg_atomic_read_u64(&pgsh_state->generation) == generation;
}

/*
 * Does the role's cached entry already show role_active as its peak of
 * concurrency?  Then a statement with a fingerprint has nothing to write
 * there, and only reads it, without its spinlock: at worst an entry
 * removed just after the generation was read misses one raise of its peak.
 */
static inline bool
role_peak_covered(const ShieldRoleKey *rkey, int32 role_active)
{
	uint64		generation;
	ShieldRoleEntry *role = role_cached(rkey, &generation);

	if (role == NULL || !generation_current(generation))
		return false;
	pg_read_barrier();
	return role_active <= ((volatile ShieldRoleEntry *) role)->peak_active;
}

/* Add one statement to a role's entry; the caller holds its spinlock. */
static pg_attribute_always_inline void
role_add(volatile ShieldRoleEntry *r, const ShieldObservation *obs, bool plain,
		 int exec_bucket)
{
	r->usage += USAGE_PER_CALL;
	counters_add((ShieldCounters *) &r->counters, obs, plain, exec_bucket);
}

/*
 * Add one statement to a fingerprint's entry, and to its latency histogram
 * if it completed (bucket -1 otherwise).  The caller holds its spinlock.
 */
static pg_attribute_always_inline void
fp_add(volatile ShieldFpEntry *f, const ShieldObservation *obs, bool plain,
	   int bucket, int exec_bucket)
{
	f->usage += USAGE_PER_CALL;
	counters_add((ShieldCounters *) &f->counters, obs, plain, exec_bucket);
	if (bucket >= 0)
		f->hist[bucket]++;
}

/*
 * What a statement changes in its role's entry: its counters if it has no
 * fingerprint (the others are counted in their fingerprint's entry only),
 * and the peak of concurrency.  The caller holds the entry's spinlock.
 */
static pg_attribute_always_inline void
role_update(volatile ShieldRoleEntry *r, const ShieldObservation *obs,
			bool plain, int exec_bucket)
{
	if (obs->queryid == 0)
		role_add(r, obs, plain, exec_bucket);
	if (obs->role_active > r->peak_active)
		r->peak_active = obs->role_active;
}

/*
 * The locked path of pgsh_stats_record: find (or create) the entries not
 * recorded yet, record the statement in them, and cache them.  A role's
 * entry is created with its first fingerprint's, so that it is there to
 * receive the fingerprint's counters when that is evicted.
 */
static pg_noinline void
record_observation(const ShieldObservation *obs, bool plain, int bucket,
				   int exec_bucket, bool role_done, bool fp_done)
{
	ShieldRoleEntry *role = NULL;
	ShieldFpEntry *fp = NULL;
	ShieldRoleKey rkey_data;
	ShieldFpKey fkey_data;
	const ShieldRoleKey *rkey = &rkey_data;
	const ShieldFpKey *fkey = &fkey_data;

	pgsh_role_key_init(&rkey_data, obs->dbid, obs->userid);
	pgsh_fp_key_init(&fkey_data, obs->dbid, obs->userid, obs->queryid);

	LWLockAcquire(pgsh_state->stats_lock, LW_SHARED);

	role = hash_search(pgsh_role_hash, rkey, HASH_FIND, NULL);
	if (!fp_done)
		fp = hash_search(pgsh_fp_hash, fkey, HASH_FIND, NULL);

	/*
	 * An entry is missing, or the fingerprint has no text yet (it was created
	 * by a failed statement).  query_len only changes under the exclusive
	 * lock, so reading it here is safe.
	 */
	if (role == NULL ||
		(!fp_done &&
		 (fp == NULL ||
		  (fp->query_len == 0 && (obs->text !=NULL || obs->source != NULL)))))
	{
		LWLockRelease(pgsh_state->stats_lock);
		LWLockAcquire(pgsh_state->stats_lock, LW_EXCLUSIVE);

		/*
		 * The fingerprint's entry first: making room for it may evict roles
		 * (fold_into_role, in stats_table.c), while making room for a role
		 * never evicts fingerprints.
		 */
		if (!fp_done)
		{
			fp = pgsh_stats_fp_enter_locked(fkey);
			if (fp != NULL && fp->query_len == 0)
				pgsh_stats_fp_set_text_locked(fp, obs);
		}
		role = pgsh_stats_role_enter_locked(rkey);
	}

	if (role != NULL)
	{
		volatile ShieldRoleEntry *r = role;

		if (!role_done)
		{
			SpinLockAcquire(&r->mutex);
			role_update(r, obs, plain, exec_bucket);
			SpinLockRelease(&r->mutex);
		}
		role_remember(rkey, role);
	}
	if (fp != NULL)
	{
		volatile ShieldFpEntry *f = fp;

		SpinLockAcquire(&f->mutex);
		fp_add(f, obs, plain, bucket, exec_bucket);
		SpinLockRelease(&f->mutex);
		fp_remember(fkey, fp);
	}

	LWLockRelease(pgsh_state->stats_lock);
}

/*
 * Record one statement: in its fingerprint's entry, or its role's if it
 * has none; a role's totals are its own entry's plus its fingerprints'
 * (pgsh_stats_roles).  Never raises an error and never allocates local
 * memory, so it is also used from abort callbacks.  Once its entries are
 * cached, this takes one spinlock and nothing else: the role's entry, which
 * every session of the role shares, is only read, unless the statement
 * raised the role's peak concurrency.
 */
void
pgsh_stats_record(const ShieldObservation *obs)
{
	ShieldRoleKey rkey;
	ShieldFpKey fkey;
	ShieldRoleEntry *role;
	ShieldFpEntry *fp;
	uint64		generation;

	/* only completed statements have a latency: not failed or rejected ones */
	int			bucket = (obs->failed || obs->rejected != PGSH_REJECT_NONE) ?
		-1 : hist_bucket(obs->exec_ms);

	/* used only if it completed; found before any spinlock is taken */
	int			exec_bucket = exec_bucket_of(obs->exec_ms);
	bool		plain = !obs->failed && obs->rejected == PGSH_REJECT_NONE &&
		!obs->queued && !obs->would_reject && !obs->would_queue &&
		!obs->would_cancel;
	bool		role_done = false;
	bool		fp_done = obs->queryid == 0;

	if (pgsh_state == NULL)
		return;

	pgsh_role_key_init(&rkey, obs->dbid, obs->userid);
	pgsh_fp_key_init(&fkey, obs->dbid, obs->userid, obs->queryid);

	if (obs->queryid != 0 && role_peak_covered(&rkey, obs->role_active))
		role_done = true;
	else if ((role = role_cached(&rkey, &generation)) != NULL)
	{
		volatile ShieldRoleEntry *r = role;

		SpinLockAcquire(&r->mutex);
		if (generation_current(generation))
		{
			role_update(r, obs, plain, exec_bucket);
			role_done = true;
		}
		SpinLockRelease(&r->mutex);
	}
	fp = fp_done ? NULL : fp_cached(&fkey, &generation);
	if (fp != NULL)
	{
		volatile ShieldFpEntry *f = fp;

		SpinLockAcquire(&f->mutex);
		if (generation_current(generation))
		{
			fp_add(f, obs, plain, bucket, exec_bucket);
			fp_done = true;
		}
		SpinLockRelease(&f->mutex);
	}

	if (!role_done || !fp_done)
		record_observation(obs, plain, bucket, exec_bucket, role_done, fp_done);
}

/*
 * pgsh_stats_record for the usual statement: it has a fingerprint whose
 * entry this backend has cached, it completed, it was neither queued nor
 * flagged by monitor mode, and it did not raise its role's peak of
 * concurrency.  Recorded without building an observation; returns false,
 * having recorded nothing, for any other statement (the caller then calls
 * pgsh_stats_record).  Never raises an error.
 */
bool
pgsh_stats_record_completed(Oid userid, uint64 queryid, TimestampTz started,
							bool admitted, int32 role_active,
							double exec_ms, uint64 rows, double cost)
{
	ShieldFpKey fkey;
	ShieldFpEntry *fp;
	uint64		generation;
	bool		done = false;

	if (pgsh_state == NULL || queryid == 0)
		return false;

	if (role_active > 0)
	{
		ShieldRoleKey rkey;

		pgsh_role_key_init(&rkey, MyDatabaseId, userid);
		if (!role_peak_covered(&rkey, role_active))
			return false;
	}

	pgsh_fp_key_init(&fkey, MyDatabaseId, userid, queryid);
	fp = fp_cached(&fkey, &generation);
	if (fp != NULL)
	{
		volatile ShieldFpEntry *f = fp;
		int			bucket = hist_bucket(exec_ms);
		int			exec_bucket = exec_bucket_of(exec_ms);

		SpinLockAcquire(&f->mutex);
		if (generation_current(generation))
		{
			ShieldCounters *c = (ShieldCounters *) &f->counters;

			f->usage += USAGE_PER_CALL;
			counters_add_start(c, started, admitted);
			counters_add_completed(c, exec_ms, exec_bucket, rows, cost);
			f->hist[bucket]++;
			done = true;
		}
		SpinLockRelease(&f->mutex);
	}
	return done;
}

/*
 * Record one top-level planning of a statement.
 */
void
pgsh_stats_record_plan(Oid dbid, Oid userid, uint64 queryid, double plan_ms,
					   const char *text, int text_len)
{
	ShieldFpKey fkey;
	ShieldFpEntry *fp;
	uint64		generation;

	if (pgsh_state == NULL || queryid == 0)
		return;

	pgsh_fp_key_init(&fkey, dbid, userid, queryid);

	/* through the cache, as pgsh_stats_record does */
	fp = fp_cached(&fkey, &generation);
	if (fp != NULL)
	{
		volatile ShieldFpEntry *f = fp;
		bool		done = false;

		SpinLockAcquire(&f->mutex);
		if (generation_current(generation))
		{
			f->counters.plans++;
			f->counters.total_plan_ms += plan_ms;
			done = true;
		}
		SpinLockRelease(&f->mutex);
		if (done)
			return;
	}

	LWLockAcquire(pgsh_state->stats_lock, LW_SHARED);
	fp = hash_search(pgsh_fp_hash, &fkey, HASH_FIND, NULL);
	if (fp == NULL || (fp->query_len == 0 && text !=NULL))
	{
		ShieldObservation obs;

		LWLockRelease(pgsh_state->stats_lock);
		LWLockAcquire(pgsh_state->stats_lock, LW_EXCLUSIVE);
		fp = pgsh_stats_fp_enter_locked(&fkey);
		memset(&obs, 0, sizeof(obs));
		obs.text = text;

		obs.text_len = text_len;
		if (fp != NULL && fp->query_len == 0)
			pgsh_stats_fp_set_text_locked(fp, &obs);
		/* its role's entry, to receive its counters (see record_observation) */
		{
			ShieldRoleKey rkey;

			pgsh_role_key_init(&rkey, dbid, userid);
			(void) pgsh_stats_role_enter_locked(&rkey);
		}
	}
	if (fp != NULL)
	{
		volatile ShieldFpEntry *f = fp;

		SpinLockAcquire(&f->mutex);
		f->counters.plans++;
		f->counters.total_plan_ms += plan_ms;
		SpinLockRelease(&f->mutex);
		fp_remember(&fkey, fp);
	}
	LWLockRelease(pgsh_state->stats_lock);
}
