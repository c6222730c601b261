/*-------------------------------------------------------------------------
 *
 * stats_int.h
 *		What the statistics files share: the construction of keys, and the
 *		calls recording makes into the tables' housekeeping.  Only stats.c,
 *		stats_table.c and stats_read.c include it; the rest of pg_shield
 *		goes through stats.h.  The locking protocol is in shmem.c.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/stats_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_STATS_INT_H
#define PGSH_STATS_INT_H

#include "stats.h"

PGSH_BEGIN_INTERNAL

/*
 * Keys: HASH_BLOBS compares them with memcmp, so they are zeroed first
 * (see stats.h).  Inline here because recording builds them at every
 * statement.
 */
static inline void
pgsh_role_key_init(ShieldRoleKey *key, Oid dbid, Oid userid)
{
	memset(key, 0, sizeof(*key));
	key->dbid = dbid;
	key->userid = userid;
}

static inline void
pgsh_fp_key_init(ShieldFpKey *key, Oid dbid, Oid userid, uint64 queryid)
{
	memset(key, 0, sizeof(*key));
	key->dbid = dbid;
	key->userid = userid;
	key->queryid = queryid;
}

/*
 * stats_table.c, for recording when an entry is missing or has no text
 * yet: the caller holds stats_lock exclusively.  A statement whose entries
 * this backend has cached never calls these, so they may live in another
 * file than the per-statement path.
 */
extern ShieldFpEntry *pgsh_stats_fp_enter_locked(const ShieldFpKey *key);
extern ShieldRoleEntry *pgsh_stats_role_enter_locked(const ShieldRoleKey *key);
extern void pgsh_stats_fp_set_text_locked(ShieldFpEntry *entry,
										  const ShieldObservation *obs);

PGSH_END_INTERNAL

#endif							/* PGSH_STATS_INT_H */
