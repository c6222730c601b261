/*-------------------------------------------------------------------------
 *
 * stats_read.c
 *		Reading the statistics tables: every role's totals, for
 *		shield.role_stats, and a fingerprint's mean execution time, for
 *		admission's retry hints.
 *
 * A role's totals are kept in no single entry: a statement with a
 * fingerprint is counted in its fingerprint's entry only (see stats.c), so
 * the totals are summed here, from copies of both tables.  shield.query_stats
 * copies the fingerprint table itself (views.c).
 *
 * This file only reads.  It takes stats_lock shared and each entry's
 * spinlock while it copies, and does its arithmetic once the lock is
 * released; what it copies into is allocated before the lock is taken
 * (pgsh_copy_room, shmem.c), since nothing may raise an error while
 * stats_lock is held.
 *
 * Owns: the role totals (pgsh_stats_roles) and a fingerprint's mean
 *		  execution time (pgsh_stats_typical_ms); no state.
 * Calls: stats.c (pgsh_counters_merge), shmem.c (pgsh_copy_room).
 * Locking: stats_lock shared and the entries' spinlocks; see shmem.c.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/stats_read.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/spin.h"
#include "utils/hsearch.h"

#include "shmem.h"
#include "stats.h"
#include "stats_int.h"

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
 * The mean execution time of the completed statements of one (database,
 * role, fingerprint) entry, in ms; -1 if it has none.  Admission's retry
 * hints ask it for the statements holding the slots of a full scope, after
 * they released admission_lock.
 */
double
pgsh_stats_typical_ms(Oid dbid, Oid userid, uint64 queryid)
{
	ShieldFpKey key;
	ShieldFpEntry *fp;
	double		result = -1.0;

	if (queryid == 0)
		return -1.0;
	pgsh_fp_key_init(&key, dbid, userid, queryid);
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
