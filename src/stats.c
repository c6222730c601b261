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
 * Eviction is done without allocating: a first pass over the table builds a
 * small histogram of usage values on the stack, which gives the usage below
 * which the batch lies; a second pass removes those entries and decays the
 * usage of the others.  That keeps the exclusive-lock stall linear in the
 * table size and makes recording safe inside abort callbacks, where a
 * failed statement is counted.
 *
 * See shmem.c for the locking protocol.
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

/* What the generic table code needs to know about an entry type. */
typedef struct TableShape
{
	Size		keysize;
	Size		entrysize;
	Size		mutex_offset;
	Size		usage_offset;
} TableShape;

static const TableShape fp_shape = {
	sizeof(ShieldFpKey), sizeof(ShieldFpEntry),
	offsetof(ShieldFpEntry, mutex), offsetof(ShieldFpEntry, usage)
};
static const TableShape role_shape = {
	sizeof(ShieldRoleKey), sizeof(ShieldRoleEntry),
	offsetof(ShieldRoleEntry, mutex), offsetof(ShieldRoleEntry, usage)
};

static uint64 evict_batch(HTAB *htab, Size usage_offset);
static char *lookup_or_create(HTAB *htab, const TableShape *shape,
							  const void *key, long capacity,
							  uint64 *evictions);

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
 * Evict a batch of the least used entries of a table.  Caller holds
 * stats_lock exclusively.  Allocates nothing and cannot fail.  Returns the
 * number of entries removed.
 */
static uint64
evict_batch(HTAB *htab, Size usage_offset)
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

	memset(bins, 0, sizeof(bins));
	hash_seq_init(&hstat, htab);
	while ((entry = hash_seq_search(&hstat)) != NULL)
		bins[usage_bin(*(double *) (entry + usage_offset))]++;

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
		double	   *usage = (double *) (entry + usage_offset);
		int			bin = usage_bin(*usage);

		if (bin < cutoff || (bin == cutoff && cutoff_quota-- > 0))
		{
			/* removing the element just returned by the scan is allowed */
			hash_search(htab, entry, HASH_REMOVE, NULL);
			removed++;
		}
		else
			*usage *= USAGE_DECAY;
	}
	return removed;
}

/*
 * Find or insert an entry.  Caller holds stats_lock exclusively.  A new
 * entry is zeroed past its key, its spinlock initialized and its usage set.
 * Returns NULL only if shared memory is exhausted, which the capacity
 * estimate makes impossible in practice; callers then skip the entry.
 */
static char *
lookup_or_create(HTAB *htab, const TableShape *shape, const void *key,
				 long capacity, uint64 *evictions)
{
	char	   *entry;
	bool		found;

	entry = hash_search(htab, key, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;

	if (hash_get_num_entries(htab) >= capacity)
	{
		*evictions += evict_batch(htab, shape->usage_offset);
		pgsh_state->generation++;	/* cached pointers may dangle */
	}

	entry = hash_search(htab, key, HASH_ENTER_NULL, &found);
	if (entry != NULL && !found)
	{
		memset(entry + shape->keysize, 0, shape->entrysize - shape->keysize);
		SpinLockInit((slock_t *) (entry + shape->mutex_offset));
		*(double *) (entry + shape->usage_offset) = USAGE_INIT;
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
 * Add one statement to a set of counters.  Caller holds the entry's mutex.
 * plain: the statement completed, and was neither queued, rejected nor
 * flagged by monitor mode, the usual case (see pgsh_stats_record).
 */
static pg_attribute_always_inline void
counters_add(ShieldCounters *c, const ShieldObservation *obs, bool plain)
{
	if (obs->started > c->last_exec)
		c->last_exec = obs->started;
	if (obs->admitted)
		c->admitted++;
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
		}
		return;
	}
	if (obs->failed)
	{
		c->errors++;
		return;
	}

completed:
	if (c->calls == 0)
	{
		c->min_exec_ms = obs->exec_ms;
		c->max_exec_ms = obs->exec_ms;
	}
	else
	{
		if (obs->exec_ms < c->min_exec_ms)
			c->min_exec_ms = obs->exec_ms;
		if (obs->exec_ms > c->max_exec_ms)
			c->max_exec_ms = obs->exec_ms;
	}
	c->calls++;
	c->rows += obs->rows;
	c->total_exec_ms += obs->exec_ms;
	if (obs->cost >= 0.0)
	{
		c->costed++;
		c->sum_cost += obs->cost;
		if (obs->cost > c->max_cost)
			c->max_cost = obs->cost;
	}
}

/*----
 * Backend-local cache of entry pointers, valid while pgsh_state->generation
 * does not move (see shmem.c).  A statement usually finds both its entries
 * here and needs no hash lookup.  Direct-mapped on the low bits of the
 * fingerprint; one slot for the role, which rarely changes.
 *----
 */
#define FP_CACHE_SLOTS 64

typedef struct FpCacheSlot
{
	uint64		generation;
	ShieldFpKey key;
	ShieldFpEntry *entry;
} FpCacheSlot;

static FpCacheSlot fp_cache[FP_CACHE_SLOTS];
static struct
{
	uint64		generation;
	ShieldRoleKey key;
	ShieldRoleEntry *entry;
}			role_cache;

/* Caller holds stats_lock (either mode). */
static pg_attribute_always_inline ShieldFpEntry *
fp_find(const ShieldFpKey *key)
{
	FpCacheSlot *slot = &fp_cache[key->queryid % FP_CACHE_SLOTS];
	ShieldFpEntry *entry;

	/* generation 0 means never cached: the shared one starts at 0 too */
	if (slot->entry != NULL && slot->generation == pgsh_state->generation &&
		memcmp(&slot->key, key, sizeof(ShieldFpKey)) == 0)
		return slot->entry;
	entry = hash_search(pgsh_fp_hash, key, HASH_FIND, NULL);
	if (entry != NULL)
	{
		slot->generation = pgsh_state->generation;
		slot->key = *key;
		slot->entry = entry;
	}
	return entry;
}

static ShieldRoleEntry *
role_find(const ShieldRoleKey *key)
{
	ShieldRoleEntry *entry;

	if (role_cache.entry != NULL &&
		role_cache.generation == pgsh_state->generation &&
		memcmp(&role_cache.key, key, sizeof(ShieldRoleKey)) == 0)
		return role_cache.entry;
	entry = hash_search(pgsh_role_hash, key, HASH_FIND, NULL);
	if (entry != NULL)
	{
		role_cache.generation = pgsh_state->generation;
		role_cache.key = *key;
		role_cache.entry = entry;
	}
	return entry;
}

/*
 * Record one statement.  Never raises an error and never allocates local
 * memory, so it is also used from abort callbacks.
 */
void
pgsh_stats_record(const ShieldObservation *obs)
{
	ShieldRoleKey rkey;
	ShieldFpKey fkey;
	ShieldRoleEntry *role;
	ShieldFpEntry *fp = NULL;
	/* only completed statements have a latency: not failed or rejected ones */
	int			bucket = (obs->failed || obs->rejected != PGSH_REJECT_NONE) ?
		-1 : hist_bucket(obs->exec_ms);
	bool		plain = !obs->failed && obs->rejected == PGSH_REJECT_NONE &&
		!obs->queued && !obs->would_reject && !obs->would_queue;

	if (pgsh_state == NULL)
		return;

	memset(&rkey, 0, sizeof(rkey));
	rkey.dbid = obs->dbid;
	rkey.userid = obs->userid;
	memset(&fkey, 0, sizeof(fkey));
	fkey.dbid = obs->dbid;
	fkey.userid = obs->userid;
	fkey.queryid = obs->queryid;

	LWLockAcquire(pgsh_state->stats_lock, LW_SHARED);

	role = role_find(&rkey);
	if (obs->queryid != 0)
		fp = fp_find(&fkey);

	/*
	 * Slow path: an entry is missing, or the fingerprint has no text yet (it
	 * was created by a failed statement).  query_len only changes under the
	 * exclusive lock, so reading it here is safe.
	 */
	if (role == NULL ||
		(obs->queryid != 0 &&
		 (fp == NULL ||
		  (fp->query_len == 0 && (obs->text != NULL || obs->source != NULL)))))
	{
		LWLockRelease(pgsh_state->stats_lock);
		LWLockAcquire(pgsh_state->stats_lock, LW_EXCLUSIVE);

		role = (ShieldRoleEntry *)
			lookup_or_create(pgsh_role_hash, &role_shape, &rkey,
							 pgsh_max_roles, &pgsh_state->role_evictions);
		if (obs->queryid != 0)
		{
			fp = (ShieldFpEntry *)
				lookup_or_create(pgsh_fp_hash, &fp_shape, &fkey,
								 pgsh_max_fingerprints,
								 &pgsh_state->fp_evictions);
			if (fp != NULL && fp->query_len == 0)
				fp_set_text(fp, obs);
		}
	}

	if (role != NULL)
	{
		volatile ShieldRoleEntry *r = role;

		SpinLockAcquire(&r->mutex);
		r->usage += USAGE_PER_CALL;
		counters_add((ShieldCounters *) &r->counters, obs, plain);
		if (obs->role_active > r->peak_active)
			r->peak_active = obs->role_active;
		SpinLockRelease(&r->mutex);
	}
	if (fp != NULL)
	{
		volatile ShieldFpEntry *f = fp;

		SpinLockAcquire(&f->mutex);
		f->usage += USAGE_PER_CALL;
		counters_add((ShieldCounters *) &f->counters, obs, plain);
		if (bucket >= 0)
			f->hist[bucket]++;
		SpinLockRelease(&f->mutex);
	}

	LWLockRelease(pgsh_state->stats_lock);
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

	if (pgsh_state == NULL || queryid == 0)
		return;

	memset(&fkey, 0, sizeof(fkey));
	fkey.dbid = dbid;
	fkey.userid = userid;
	fkey.queryid = queryid;

	LWLockAcquire(pgsh_state->stats_lock, LW_SHARED);
	fp = fp_find(&fkey);
	if (fp == NULL || (fp->query_len == 0 && text != NULL))
	{
		ShieldObservation obs;

		LWLockRelease(pgsh_state->stats_lock);
		LWLockAcquire(pgsh_state->stats_lock, LW_EXCLUSIVE);
		fp = (ShieldFpEntry *)
			lookup_or_create(pgsh_fp_hash, &fp_shape, &fkey,
							 pgsh_max_fingerprints, &pgsh_state->fp_evictions);
		memset(&obs, 0, sizeof(obs));
		obs.text = text;
		obs.text_len = text_len;
		if (fp != NULL && fp->query_len == 0)
			fp_set_text(fp, &obs);
	}
	if (fp != NULL)
	{
		volatile ShieldFpEntry *f = fp;

		SpinLockAcquire(&f->mutex);
		f->counters.plans++;
		f->counters.total_plan_ms += plan_ms;
		SpinLockRelease(&f->mutex);
	}
	LWLockRelease(pgsh_state->stats_lock);
}

/*
 * Forget every statistic.  Returns the new reset time.
 */
TimestampTz
pgsh_stats_reset(void)
{
	TimestampTz now = GetCurrentTimestamp();
	HASH_SEQ_STATUS hstat;
	void	   *entry;

	LWLockAcquire(pgsh_state->stats_lock, LW_EXCLUSIVE);

	hash_seq_init(&hstat, pgsh_fp_hash);
	while ((entry = hash_seq_search(&hstat)) != NULL)
		hash_search(pgsh_fp_hash, entry, HASH_REMOVE, NULL);
	hash_seq_init(&hstat, pgsh_role_hash);
	while ((entry = hash_seq_search(&hstat)) != NULL)
		hash_search(pgsh_role_hash, entry, HASH_REMOVE, NULL);

	pgsh_state->stats_reset = now;
	pgsh_state->generation++;
	pgsh_state->fp_evictions = 0;
	pgsh_state->role_evictions = 0;

	LWLockRelease(pgsh_state->stats_lock);
	return now;
}
