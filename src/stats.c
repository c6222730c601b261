/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Cost accounting in shared memory, per (database, role) and per
 *		(database, role, fingerprint).
 *
 * Two fixed-capacity dynahash tables live in shared memory: one entry per
 * (database, role) pair and one per (database, role, query fingerprint).
 * Their capacities are pg_shield.max_roles and pg_shield.max_fingerprints.
 * A table that is full evicts a batch of its least used entries (5%, at
 * least 10) before inserting, and counts them; recording a statement never
 * fails because a table is full.
 *
 * A statement is recorded in one entry: its fingerprint's, or its role's
 * if it has no fingerprint.  A role's totals are its entry's counters plus
 * those of its fingerprints' entries, summed when shield.role_stats is
 * read; an evicted fingerprint entry's counters are added to its role's
 * entry, so that the role keeps them.  The role's entry, which every
 * session of the role would otherwise write at every statement, is thus
 * only read on the hot path (for the peak of concurrency).
 *
 * Eviction is done without allocating: a first pass over the table builds a
 * small histogram of usage values on the stack, which gives the usage below
 * which the batch lies; a second pass removes those entries and decays the
 * usage of the others.  A role's usage counts its fingerprints'.  That
 * keeps the exclusive-lock stall linear in the table size and makes
 * recording safe inside abort callbacks, where a failed statement is
 * counted.
 *
 * Once a backend has cached a statement's entry, recording it takes the
 * entry's spinlock only, without stats_lock: see the cache below and the
 * locking protocol in shmem.c.
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

#include "mb/pg_wchar.h"
#include "port/pg_bitutils.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/float.h"
#include "utils/hsearch.h"

#include "compat.h"
#include "guc.h"
#include "shmem.h"
#include "stats.h"

/* Usage given to a new entry and added by each statement. */
#define USAGE_INIT			1.0
#define USAGE_PER_CALL		1.0
/* Usage of surviving entries decays by this factor at each eviction. */
#define USAGE_DECAY			0.99
/* Fraction of the table evicted at once, and the minimum batch. */
#define EVICT_PERCENT		5
#define EVICT_MIN			10
/* Usage histogram used to pick eviction victims: one bin per power of 2. */
#define EVICT_BINS			64
#define EVICT_BIN_OFFSET	20

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

/* What the generic table code needs to know about an entry type. */
typedef struct ShieldTableShape
{
	Size		keysize;
	Size		entrysize;
	Size		mutex_offset;
	Size		usage_offset;
} ShieldTableShape;

static const ShieldTableShape stats_fp_shape = {
	sizeof(ShieldFpKey), sizeof(ShieldFpEntry),
	offsetof(ShieldFpEntry, mutex), offsetof(ShieldFpEntry, usage)
};
static const ShieldTableShape stats_role_shape = {
	sizeof(ShieldRoleKey), sizeof(ShieldRoleEntry),
	offsetof(ShieldRoleEntry, mutex), offsetof(ShieldRoleEntry, usage)
};

/*
 * Keys: HASH_BLOBS compares them with memcmp, so they are zeroed first
 * (see stats.h).
 */
static inline void
role_key_init(ShieldRoleKey *key, Oid dbid, Oid userid)
{
	memset(key, 0, sizeof(*key));
	key->dbid = dbid;
	key->userid = userid;
}

static inline void
fp_key_init(ShieldFpKey *key, Oid dbid, Oid userid, uint64 queryid)
{
	memset(key, 0, sizeof(*key));
	key->dbid = dbid;
	key->userid = userid;
	key->queryid = queryid;
}

static uint64 evict_batch(HTAB *htab, const ShieldTableShape *shape);
static char *lookup_or_create(HTAB *htab, const ShieldTableShape *shape,
							  const void *key, long capacity,
							  uint64 *evictions);

/*
 * Initialize the spinlock of every element a table will ever use, once, at
 * creation.  The tables are allocated whole (initial size = capacity) and
 * dynahash never frees an element, only recycles it: filling the table
 * with dummy keys reaches every element; emptying it again leaves them on
 * the freelist with their spinlocks ready.  A recycled entry's spinlock is
 * therefore never initialized again, which the lock-free recording path
 * relies on: a backend holding a stale pointer may take it at any time
 * (see pgsh_stats_record).  Dummy keys have dbid InvalidOid, which no real
 * entry has.
 */
static void
init_entry_mutexes(HTAB *htab, const ShieldTableShape *shape, long capacity)
{
	char		key[sizeof(ShieldFpKey)];
	long		i;

	Assert(shape->keysize <= sizeof(key));
	for (i = 0; i < capacity; i++)
	{
		char	   *entry;
		uint32		n = (uint32) i + 1;

		memset(key, 0, sizeof(key));
		/* the second Oid of both key types: userid */
		memcpy(key + sizeof(Oid), &n, sizeof(n));
		entry = hash_search(htab, key, HASH_ENTER_NULL, NULL);
		if (entry == NULL)
			break;
		SpinLockInit((slock_t *) (entry + shape->mutex_offset));
	}
	while (--i >= 0)
	{
		uint32		n = (uint32) i + 1;

		memset(key, 0, sizeof(key));
		memcpy(key + sizeof(Oid), &n, sizeof(n));
		hash_search(htab, key, HASH_REMOVE, NULL);
	}
}

Size
pgsh_stats_shmem_size(void)
{
	Size		size;

	size = hash_estimate_size(pgsh_max_fingerprints, sizeof(ShieldFpEntry));
	size = add_size(size, hash_estimate_size(pgsh_max_roles,
											 sizeof(ShieldRoleEntry)));
	return size;
}

/*
 * Create or attach the tables.  Caller holds AddinShmemInitLock.
 */
void
pgsh_stats_shmem_init(void)
{
	HASHCTL		info;

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(ShieldFpKey);
	info.entrysize = sizeof(ShieldFpEntry);
	pgsh_fp_hash = ShmemInitHash("pg_shield fingerprints",
								 pgsh_max_fingerprints, pgsh_max_fingerprints,
								 &info, HASH_ELEM | HASH_BLOBS);

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(ShieldRoleKey);
	info.entrysize = sizeof(ShieldRoleEntry);
	pgsh_role_hash = ShmemInitHash("pg_shield roles",
								   pgsh_max_roles, pgsh_max_roles,
								   &info, HASH_ELEM | HASH_BLOBS);

	/* created here, not attached to (EXEC_BACKEND) */
	if (!IsUnderPostmaster)
	{
		init_entry_mutexes(pgsh_fp_hash, &stats_fp_shape, pgsh_max_fingerprints);
		init_entry_mutexes(pgsh_role_hash, &stats_role_shape, pgsh_max_roles);
	}
}

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

int
pgsh_hist_bucket(double ms)
{
	return hist_bucket(ms);
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

/* Usage bin of an entry, for eviction. */
static inline int
usage_bin(double usage)
{
	int			exp;

	if (!(usage > 0.0))
		return 0;
	(void) frexp(usage, &exp);
	exp += EVICT_BIN_OFFSET;
	return Max(0, Min(EVICT_BINS - 1, exp));
}

/*
 * Remove an entry.  Caller holds stats_lock exclusively and has advanced
 * pgsh_state->generation: once the entry's spinlock has been taken here, a
 * backend recording through a cached pointer either has finished with the
 * entry or will see the new generation and not touch its counters.
 */
static inline void
remove_entry(HTAB *htab, char *entry, Size mutex_offset)
{
	volatile slock_t *mutex = (slock_t *) (entry + mutex_offset);

	SpinLockAcquire(mutex);
	SpinLockRelease(mutex);
	/* removing the element just returned by a scan is allowed */
	hash_search(htab, entry, HASH_REMOVE, NULL);
}

/*
 * A fingerprint entry about to be removed: add its counters to its role's
 * entry, which keeps the role's totals (see pgsh_stats_roles).  Caller
 * holds stats_lock exclusively and has advanced the generation, so the
 * copy taken under the entry's spinlock is final.
 */
static void
fold_into_role(ShieldFpEntry *fp)
{
	volatile ShieldFpEntry *f = fp;
	ShieldRoleKey rkey;
	ShieldRoleEntry *role;
	ShieldCounters c;

	role_key_init(&rkey, fp->key.dbid, fp->key.userid);
	/* the role's entry was evicted before its fingerprint's: again */
	role = (ShieldRoleEntry *)
		lookup_or_create(pgsh_role_hash, &stats_role_shape, &rkey, pgsh_max_roles,
						 &pgsh_state->role_evictions);
	if (role == NULL)
		return;

	SpinLockAcquire(&f->mutex);
	c = *(ShieldCounters *) &f->counters;
	SpinLockRelease(&f->mutex);
	{
		volatile ShieldRoleEntry *r = role;

		SpinLockAcquire(&r->mutex);
		pgsh_counters_merge((ShieldCounters *) &r->counters, &c);
		SpinLockRelease(&r->mutex);
	}
}

/*
 * A role entry's eviction score: its own usage plus its fingerprints'
 * (statements with a fingerprint are recorded in the fingerprint's entry
 * only).  Computed into evict_score before roles are evicted.  Caller
 * holds stats_lock exclusively.
 */
static void
score_roles(void)
{
	HASH_SEQ_STATUS hstat;
	ShieldRoleEntry *role;
	ShieldFpEntry *fp;

	hash_seq_init(&hstat, pgsh_role_hash);
	while ((role = hash_seq_search(&hstat)) != NULL)
	{
		volatile ShieldRoleEntry *r = role;

		SpinLockAcquire(&r->mutex);
		role->evict_score = r->usage;
		SpinLockRelease(&r->mutex);
	}
	hash_seq_init(&hstat, pgsh_fp_hash);
	while ((fp = hash_seq_search(&hstat)) != NULL)
	{
		volatile ShieldFpEntry *f = fp;
		ShieldRoleKey rkey;
		double		usage;

		SpinLockAcquire(&f->mutex);
		usage = f->usage;
		SpinLockRelease(&f->mutex);
		role_key_init(&rkey, fp->key.dbid, fp->key.userid);
		role = hash_search(pgsh_role_hash, &rkey, HASH_FIND, NULL);
		if (role != NULL)
			role->evict_score += usage;
	}
}

/* Eviction score of an entry; see score_roles. */
static inline double
evict_score(HTAB *htab, const ShieldTableShape *shape, char *entry)
{
	volatile slock_t *mutex = (slock_t *) (entry + shape->mutex_offset);
	double		usage;

	if (htab == pgsh_role_hash)
		return ((ShieldRoleEntry *) entry)->evict_score;
	SpinLockAcquire(mutex);
	usage = *(volatile double *) (entry + shape->usage_offset);
	SpinLockRelease(mutex);
	return usage;
}

/*
 * Evict a batch of the least used entries of a table.  Caller holds
 * stats_lock exclusively and has advanced the generation.  Usage is read
 * and decayed under the entries' spinlocks: backends recording through
 * cached pointers do not hold stats_lock.  Allocates nothing and cannot
 * fail.  Returns the number of entries removed.
 */
static uint64
evict_batch(HTAB *htab, const ShieldTableShape *shape)
{
	long		nentries = hash_get_num_entries(htab);
	long		target;
	long		bins[EVICT_BINS];
	long		below = 0;
	long		cutoff_quota;
	int			cutoff;
	uint64		removed = 0;
	HASH_SEQ_STATUS hstat;
	char	   *entry;

	if (nentries <= 0)
		return 0;
	target = Max(EVICT_MIN, nentries * EVICT_PERCENT / 100);

	if (htab == pgsh_role_hash)
		score_roles();

	memset(bins, 0, sizeof(bins));
	hash_seq_init(&hstat, htab);
	while ((entry = hash_seq_search(&hstat)) != NULL)
		bins[usage_bin(evict_score(htab, shape, entry))]++;

	/* victims: every entry in bins below cutoff, some of bin cutoff */
	for (cutoff = 0; cutoff < EVICT_BINS - 1; cutoff++)
	{
		if (below + bins[cutoff] >= target)
			break;
		below += bins[cutoff];
	}
	cutoff_quota = target - below;

	hash_seq_init(&hstat, htab);
	while ((entry = hash_seq_search(&hstat)) != NULL)
	{
		int			bin = usage_bin(evict_score(htab, shape, entry));

		if (bin < cutoff || (bin == cutoff && cutoff_quota-- > 0))
		{
			if (htab == pgsh_fp_hash)
				fold_into_role((ShieldFpEntry *) entry);
			remove_entry(htab, entry, shape->mutex_offset);
			removed++;
		}
		else
		{
			volatile slock_t *mutex = (slock_t *) (entry + shape->mutex_offset);
			volatile double *usage = (double *) (entry + shape->usage_offset);

			SpinLockAcquire(mutex);
			*usage *= USAGE_DECAY;
			SpinLockRelease(mutex);
		}
	}
	return removed;
}

/*
 * Find or insert an entry.  Caller holds stats_lock exclusively.  A new
 * entry is zeroed past its spinlock and its usage set, under the spinlock:
 * a backend with a stale pointer to the element may hold it (see
 * init_entry_mutexes).  Returns NULL only if shared memory is exhausted,
 * which the capacity estimate makes impossible in practice; callers then
 * skip the entry.
 */
static char *
lookup_or_create(HTAB *htab, const ShieldTableShape *shape, const void *key,
				 long capacity, uint64 *evictions)
{
	char	   *entry;
	bool		found;

	entry = hash_search(htab, key, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;

	if (hash_get_num_entries(htab) >= capacity)
	{
		/* first: cached pointers may dangle from now on */
		pg_atomic_fetch_add_u64(&pgsh_state->generation, 1);
		*evictions += evict_batch(htab, shape);
	}

	entry = hash_search(htab, key, HASH_ENTER_NULL, &found);
	if (entry != NULL && !found)
	{
		volatile slock_t *mutex = (slock_t *) (entry + shape->mutex_offset);
		Size		body = shape->mutex_offset + sizeof(slock_t);

		SpinLockAcquire(mutex);
		memset(entry + body, 0, shape->entrysize - body);
		*(double *) (entry + shape->usage_offset) = USAGE_INIT;
		SpinLockRelease(mutex);
	}
	return entry;
}

/*
 * Text of one statement in a possibly multi-statement query string, from
 * the offsets of its parse tree (never trusted beyond the string's end).
 */
const char *
pgsh_statement_text(const char *source, int location, int len, int *text_len)
{
	const char *text;
	size_t		source_len;

	*text_len = 0;
	if (source == NULL)
		return NULL;
	source_len = strlen(source);
	if (location < 0 || (size_t) location > source_len)
	{
		location = 0;
		len = 0;
	}
	if (len < 0 || (size_t) location + len > source_len)
		len = 0;
	text = CleanQuerytext(source, &location, &len);
	*text_len = len;
	return len > 0 ? text : NULL;
}

/* Copy a statement's text into a new entry.  Caller holds the lock exclusively. */
static void
fp_set_text(ShieldFpEntry *entry, const ShieldObservation *obs)
{
	const char *text = obs->text;
	int			len = obs->text_len;

	if (text == NULL && obs->source != NULL)
	{
		text = pgsh_statement_text(obs->source, obs->location, obs->len, &len);

		/*
		 * The statement's own string holds no text for it (empty after
		 * cleaning): remember that, or every later execution would take
		 * the exclusive lock to try again.
		 */
		if (text == NULL || len <= 0)
		{
			entry->query_len = -1;
			return;
		}
	}
	if (text == NULL || len <= 0)
		return;
	if (len >= PGSH_QUERY_TEXT_SIZE)
		len = pg_mbcliplen(text, len, PGSH_QUERY_TEXT_SIZE - 1);
	memcpy(entry->query, text, len);
	entry->query[len] = '\0';
	entry->encoding = GetDatabaseEncoding();
	entry->query_len = len;
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
 * advanced and with their spinlock taken and released once (remove_entry),
 * so an entry whose generation matches cannot be removed or reused until
 * the spinlock is released.  A stale pointer costs one spinlock round trip
 * and a fall back to the locked path, which caches the entry again.
 *----
 */
ShieldFpCacheSlot pgsh_fp_cache[PGSH_FP_CACHE_SLOTS];
static struct
{
	uint64		generation;
	ShieldRoleKey key;
	ShieldRoleEntry *entry;		/* NULL if never cached */
}			stats_role_cache;

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

/* Add one statement to the entries; the caller holds their spinlock. */
static pg_attribute_always_inline void
role_add(volatile ShieldRoleEntry *r, const ShieldObservation *obs, bool plain,
		 int exec_bucket)
{
	r->usage += USAGE_PER_CALL;
	counters_add((ShieldCounters *) &r->counters, obs, plain, exec_bucket);
}

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

	role_key_init(&rkey_data, obs->dbid, obs->userid);
	fp_key_init(&fkey_data, obs->dbid, obs->userid, obs->queryid);

	LWLockAcquire(pgsh_state->stats_lock, LW_SHARED);

	role = hash_search(pgsh_role_hash, rkey, HASH_FIND, NULL);
	if (!fp_done)
		fp = hash_search(pgsh_fp_hash, fkey, HASH_FIND, NULL);

	/*
	 * An entry is missing, or the fingerprint has no text yet (it was
	 * created by a failed statement).  query_len only changes under the
	 * exclusive lock, so reading it here is safe.
	 */
	if (role == NULL ||
		(!fp_done &&
		 (fp == NULL ||
		  (fp->query_len == 0 && (obs->text != NULL || obs->source != NULL)))))
	{
		LWLockRelease(pgsh_state->stats_lock);
		LWLockAcquire(pgsh_state->stats_lock, LW_EXCLUSIVE);

		/*
		 * The fingerprint's entry first: making room for it may evict
		 * roles (fold_into_role), while making room for a role never
		 * evicts fingerprints.
		 */
		if (!fp_done)
		{
			fp = (ShieldFpEntry *)
				lookup_or_create(pgsh_fp_hash, &stats_fp_shape, fkey,
								 pgsh_max_fingerprints,
								 &pgsh_state->fp_evictions);
			if (fp != NULL && fp->query_len == 0)
				fp_set_text(fp, obs);
		}
		role = (ShieldRoleEntry *)
			lookup_or_create(pgsh_role_hash, &stats_role_shape, rkey,
							 pgsh_max_roles, &pgsh_state->role_evictions);
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

	role_key_init(&rkey, obs->dbid, obs->userid);
	fp_key_init(&fkey, obs->dbid, obs->userid, obs->queryid);

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

		role_key_init(&rkey, MyDatabaseId, userid);
		if (!role_peak_covered(&rkey, role_active))
			return false;
	}

	fp_key_init(&fkey, MyDatabaseId, userid, queryid);
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

	fp_key_init(&fkey, dbid, userid, queryid);

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
	if (fp == NULL || (fp->query_len == 0 && text != NULL))
	{
		ShieldObservation obs;

		LWLockRelease(pgsh_state->stats_lock);
		LWLockAcquire(pgsh_state->stats_lock, LW_EXCLUSIVE);
		fp = (ShieldFpEntry *)
			lookup_or_create(pgsh_fp_hash, &stats_fp_shape, &fkey,
							 pgsh_max_fingerprints, &pgsh_state->fp_evictions);
		memset(&obs, 0, sizeof(obs));
		obs.text = text;
		obs.text_len = text_len;
		if (fp != NULL && fp->query_len == 0)
			fp_set_text(fp, &obs);
		/* its role's entry, to receive its counters (see record_observation) */
		{
			ShieldRoleKey rkey;

			role_key_init(&rkey, dbid, userid);
			(void) lookup_or_create(pgsh_role_hash, &stats_role_shape, &rkey,
									pgsh_max_roles,
									&pgsh_state->role_evictions);
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

/*
 * The totals of every role: its entry's counters plus those of its
 * fingerprints' entries (pgsh_stats_record counts a statement with a
 * fingerprint there only), in one palloc'd array.  A role whose entry was
 * evicted while some of its fingerprints' were not gets a row of its
 * fingerprints' counters.  Copies are taken under stats_lock shared and
 * the entries' spinlocks; the sums are made after the lock is released.
 */
ShieldRoleEntry *
pgsh_stats_roles(long *n)
{
	ShieldRoleEntry *roles;
	struct FpCounters
	{
		ShieldRoleKey key;
		ShieldCounters counters;
	}		   *fps;
	long		nroles = 0;
	long		nfps = 0;
	long		i;
	long		room;
	HTAB	   *tables[2];
	HASH_SEQ_STATUS hstat;
	ShieldRoleEntry *role;
	ShieldFpEntry *fp;
	HTAB	   *index;
	HASHCTL		info;

	/*
	 * One allocation, made before the lock is taken (see shmem.c): a row for
	 * every role and fingerprint entry (at most that many roles), then the
	 * fingerprints' counters.
	 */
	tables[0] = pgsh_role_hash;
	tables[1] = pgsh_fp_hash;
	roles = pgsh_copy_room(pgsh_state->stats_lock, tables, 2,
						   sizeof(ShieldRoleEntry) + sizeof(struct FpCounters),
						   &room);
	fps = (struct FpCounters *) (roles + room);
	hash_seq_init(&hstat, pgsh_role_hash);
	while ((role = hash_seq_search(&hstat)) != NULL)
	{
		volatile ShieldRoleEntry *r = role;

		SpinLockAcquire(&r->mutex);
		roles[nroles++] = *(ShieldRoleEntry *) r;
		SpinLockRelease(&r->mutex);
	}
	hash_seq_init(&hstat, pgsh_fp_hash);
	while ((fp = hash_seq_search(&hstat)) != NULL)
	{
		volatile ShieldFpEntry *f = fp;

		memset(&fps[nfps].key, 0, sizeof(ShieldRoleKey));
		fps[nfps].key.dbid = fp->key.dbid;
		fps[nfps].key.userid = fp->key.userid;
		SpinLockAcquire(&f->mutex);
		fps[nfps].counters = *(ShieldCounters *) &f->counters;
		SpinLockRelease(&f->mutex);
		nfps++;
	}
	LWLockRelease(pgsh_state->stats_lock);

	/* role key -> position in roles[] */
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(ShieldRoleKey);
	info.entrysize = sizeof(ShieldRoleKey) + sizeof(long);
	info.hcxt = CurrentMemoryContext;
	index = hash_create("pg_shield role totals", Max(16, nroles), &info,
						HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (i = 0; i < nroles; i++)
	{
		char	   *slot = hash_search(index, &roles[i].key, HASH_ENTER, NULL);

		memcpy(slot + sizeof(ShieldRoleKey), &i, sizeof(long));
	}
	for (i = 0; i < nfps; i++)
	{
		bool		found;
		char	   *slot = hash_search(index, &fps[i].key, HASH_ENTER, &found);
		long		pos;

		if (!found)
		{
			pos = nroles++;
			memset(&roles[pos], 0, sizeof(ShieldRoleEntry));
			roles[pos].key = fps[i].key;
			memcpy(slot + sizeof(ShieldRoleKey), &pos, sizeof(long));
		}
		else
			memcpy(&pos, slot + sizeof(ShieldRoleKey), sizeof(long));
		pgsh_counters_merge(&roles[pos].counters, &fps[i].counters);
	}
	hash_destroy(index);
	*n = nroles;
	return roles;
}

/*
 * Forget every statistic.  Returns the new reset time.
 */
TimestampTz
pgsh_stats_reset(void)
{
	TimestampTz now = GetCurrentTimestamp();
	HASH_SEQ_STATUS hstat;
	char	   *entry;

	LWLockAcquire(pgsh_state->stats_lock, LW_EXCLUSIVE);

	/* first: cached pointers may dangle from now on */
	pg_atomic_fetch_add_u64(&pgsh_state->generation, 1);
	hash_seq_init(&hstat, pgsh_fp_hash);
	while ((entry = hash_seq_search(&hstat)) != NULL)
		remove_entry(pgsh_fp_hash, entry, offsetof(ShieldFpEntry, mutex));
	hash_seq_init(&hstat, pgsh_role_hash);
	while ((entry = hash_seq_search(&hstat)) != NULL)
		remove_entry(pgsh_role_hash, entry, offsetof(ShieldRoleEntry, mutex));

	pgsh_state->stats_reset = now;
	pgsh_state->fp_evictions = 0;
	pgsh_state->role_evictions = 0;

	LWLockRelease(pgsh_state->stats_lock);
	return now;
}

/*
 * The mean execution time of a shape's completed statements, in ms; -1 if
 * it has none.  Admission's retry hints ask it for the statements holding
 * the slots of a full scope, after they released admission_lock.
 */
double
pgsh_stats_typical_ms(Oid dbid, Oid userid, uint64 queryid)
{
	ShieldFpKey key;
	ShieldFpEntry *fp;
	double		result = -1.0;

	if (queryid == 0)
		return -1.0;
	fp_key_init(&key, dbid, userid, queryid);
	LWLockAcquire(pgsh_state->stats_lock, LW_SHARED);
	fp = hash_search(pgsh_fp_hash, &key, HASH_FIND, NULL);
	if (fp != NULL)
	{
		volatile ShieldFpEntry *f = fp;

		SpinLockAcquire(&f->mutex);
		if (f->counters.calls > 0)
			result = f->counters.total_exec_ms / (double) f->counters.calls;
		SpinLockRelease(&f->mutex);
	}
	LWLockRelease(pgsh_state->stats_lock);
	return result;
}
