/*-------------------------------------------------------------------------
 *
 * stats_table.c
 *		The statistics tables' housekeeping: their creation, the allocation
 *		and eviction of entries, query texts, and reset.
 *
 * Two fixed-capacity dynahash tables live in shared memory: one entry per
 * (database, role) pair and one per (database, role, query fingerprint).
 * Their capacities are pg_shield.max_roles and pg_shield.max_fingerprints.
 * A table that is full evicts a batch of its least used entries (5%, at
 * least 10) before inserting, and counts them; recording a statement never
 * fails because a table is full.  An evicted fingerprint entry's counters
 * are added to its role's entry, so that the role keeps them.
 *
 * Eviction is done without allocating: a first pass over the table builds a
 * small histogram of usage values on the stack, which gives the usage below
 * which the batch lies; a second pass removes those entries and decays the
 * usage of the others.  A role's usage counts its fingerprints'.  That
 * keeps the exclusive-lock stall linear in the table size and makes
 * recording safe inside abort callbacks, where a failed statement is
 * counted.
 *
 * This file is the only one that inserts or removes entries, and the only
 * writer of the eviction counters and reset time in ShieldSharedState.
 * Recording (stats.c) calls it through stats_int.h to create an entry a
 * statement needs and to store its text, both under stats_lock held
 * exclusively: the cold part of recording, which a statement with cached
 * entries never reaches.  This file calls pgsh_counters_merge (stats.c) to
 * fold an evicted fingerprint into its role, and nothing else of pg_shield
 * but shmem.c's state and the capacities in guc.c.
 *
 * stats_lock protects the tables' structure and the scalar fields of
 * ShieldSharedState; each entry's spinlock protects its usage and
 * counters.  pgsh_state->generation is advanced before any entry is
 * removed, so that backends stop using their cached pointers: see shmem.c
 * for the protocol, and stats.c for the cache.
 *
 * Owns: the statistics tables' shared memory, entries, eviction, query
 *		  texts and reset (pgsh_stats_reset).
 * Calls: stats.c (pgsh_counters_merge).
 * Locking: stats_lock, exclusive to insert or remove, and the entries'
 *		  spinlocks; see shmem.c.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/stats_table.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "mb/pg_wchar.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/hsearch.h"

#include "compat.h"
#include "guc.h"
#include "shmem.h"
#include "stats.h"
#include "stats_int.h"

/* Usage given to a new entry (stats.c adds USAGE_PER_CALL per statement). */
#define USAGE_INIT			1.0
/* Usage of surviving entries decays by this factor at each eviction. */
#define USAGE_DECAY			0.99
/* Fraction of the table evicted at once, and the minimum batch. */
#define EVICT_PERCENT		5
#define EVICT_MIN			10
/* Usage histogram used to pick eviction victims: one bin per power of 2. */
#define EVICT_BINS			64
#define EVICT_BIN_OFFSET	20

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

/*
 * Shared memory for both tables at their full capacity (max_fingerprints
 * and max_roles, fixed at server start): they are allocated whole, and
 * never grow.
 */
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

	pgsh_role_key_init(&rkey, fp->key.dbid, fp->key.userid);
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
		pgsh_role_key_init(&rkey, fp->key.dbid, fp->key.userid);
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
 * Find or create the entry of a fingerprint, for recording (stats.c),
 * which thus needs to know neither the tables' shapes nor their
 * capacities.  Caller holds stats_lock exclusively.  Returns NULL only as
 * lookup_or_create does.
 */
ShieldFpEntry *
pgsh_stats_fp_enter_locked(const ShieldFpKey *key)
{
	return (ShieldFpEntry *)
		lookup_or_create(pgsh_fp_hash, &stats_fp_shape, key,
						 pgsh_max_fingerprints, &pgsh_state->fp_evictions);
}

/* The same for a role's entry. */
ShieldRoleEntry *
pgsh_stats_role_enter_locked(const ShieldRoleKey *key)
{
	return (ShieldRoleEntry *)
		lookup_or_create(pgsh_role_hash, &stats_role_shape, key,
						 pgsh_max_roles, &pgsh_state->role_evictions);
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

/*
 * Copy a statement's text into a new entry, for recording (stats.c).
 * Caller holds stats_lock exclusively.
 */
void
pgsh_stats_fp_set_text_locked(ShieldFpEntry *entry,
							  const ShieldObservation *obs)
{
	const char *text = obs->text;
	int			len = obs->text_len;

	if (text == NULL && obs->source != NULL)
	{
		text = pgsh_statement_text(obs->source, obs->location, obs->len, &len);

		/*
		 * The statement's own string holds no text for it (empty after
		 * cleaning): remember that, or every later execution would take the
		 * exclusive lock to try again.
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
