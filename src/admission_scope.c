/*-------------------------------------------------------------------------
 *
 * admission_scope.c
 *		The scope table: every scope a statement can be counted in.
 *
 * A scope is keyed by (database, role, fingerprint) and counts the slots
 * held in it (an atomic) and carries a token bucket for rate limits.  The
 * instance scope (pg_shield.max_active) lives in ShieldAdmissionState; the
 * others in a shared hash of fixed size, created on first use and evicted
 * when idle: nobody holds a slot in it, waits for it or pins it (a
 * backend's memo of its last statement's scopes).  The table holds
 * 3 * PGSH_MAX_SCOPES * MaxBackends + pg_shield.max_roles entries (see
 * scope_capacity), so evicting the idle ones always makes room.
 *
 * Owns: the shared scope table (admission_scope_hash), where slots are
 *		  counted, and its usage rows (pgsh_scopes_usage).
 * Calls: nothing of pg_shield's.
 * Locking: admission_lock for the hash's structure, each scope's spinlock
 *		  for its bucket; see admission.c.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/admission_scope.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
#include "utils/hsearch.h"

#include "admission_int.h"
#include "guc.h"
#include "shmem.h"

static HTAB *admission_scope_hash = NULL;

/* Refilling buckets this backend's evictions forgot, not yet logged. */
static int	admission_scopes_refilling_forgotten = 0;

/*
 * A backend keeps at most 3 * PGSH_MAX_SCOPES scopes from being evicted: those of
 * its memo, those of the memo it is building (pinned before the old one is
 * dropped), and those it holds a slot in (waiting ones are the memo's).
 * The rest is room for idle scopes whose rate buckets are refilling (an
 * evicted bucket would start full again; see evict_idle_scopes).
 */
static int
scope_capacity(void)
{
	return 3 * PGSH_MAX_SCOPES * MaxBackends + pgsh_max_roles;
}

/* Scopes a backend may need to create at once: all of a statement's. */
#define SCOPE_ROOM PGSH_MAX_SCOPES

/*
 * Shared memory of the scope table, at its fixed capacity.
 */
Size
pgsh_scopes_shmem_size(void)
{
	return hash_estimate_size(scope_capacity(), sizeof(ShieldScope));
}

/*
 * Set up a new scope: no slot held, no limit published, nobody waiting,
 * and a rate bucket never used (refilled_at 0), which the first statement
 * to take a token from it fills.
 */
void
pgsh_scope_init(ShieldScope *scope)
{
	pg_atomic_init_u32(&scope->active, 0);
	pg_atomic_init_u32(&scope->pins, 0);
	scope->limit = -1;
	scope->waiters = 0;
	SpinLockInit(&scope->mutex);
	scope->tokens = 0.0;
	scope->refilled_at = 0;
	scope->rate = -1.0;
}

/* Caller holds AddinShmemInitLock. */
void
pgsh_scopes_shmem_init(void)
{
	HASHCTL		info;

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(ShieldScopeKey);
	info.entrysize = sizeof(ShieldScope);
	admission_scope_hash = ShmemInitHash("pg_shield scopes",
										 scope_capacity(), scope_capacity(),
										 &info,
										 HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
}

/*----
 * Scopes
 *----
 */

/*
 * When the scope's rate bucket will be full again (burst = max(1, rate)),
 * 0 if it is full or has none: only then does forgetting it lose nothing,
 * since a scope created again starts with a full bucket.  Caller holds the
 * lock exclusively, so the bucket's owner cannot be looking at it through
 * a scope it has not pinned; pinned scopes are not evicted anyway.
 */
static TimestampTz
scope_bucket_full_at(volatile ShieldScope *scope)
{
	double		rate;
	double		missing;
	TimestampTz full_at = 0;

	SpinLockAcquire(&scope->mutex);
	rate = scope->rate;
	missing = Max(1.0, rate) - scope->tokens;
	if (scope->refilled_at != 0 && rate > 0 && missing > 0)
		full_at = scope->refilled_at +
			(TimestampTz) Min(missing / rate * 1000000.0, (double) PG_INT64_MAX / 4);
	SpinLockRelease(&scope->mutex);
	return full_at;
}

/*
 * Forget idle scopes (nobody holds a slot in them, waits for them or pins
 * them) until a statement's scopes fit: first every idle scope whose rate
 * bucket is full (most are: scopes without max_rate), then, only if that
 * is not enough, those whose buckets refill soonest, a second, a minute
 * and an hour ahead, and at last any.  A slow rate limit (max_rate 0.1)
 * thus keeps its bucket however many other roles come and go, as long as
 * fewer scopes are refilling at once than the table holds beyond what
 * the backends pin (pg_shield.max_roles); past that, a bucket that refills
 * soon is forgotten first, and the log says so (see
 * pgsh_scopes_report_evictions).  Caller holds the lock exclusively.
 */
static void
evict_idle_scopes(void)
{
	static const int64 horizons_s[] = {0, 1, 60, 3600, -1};
	TimestampTz now = GetCurrentTimestamp();
	int			refilling_evicted = 0;
	int			pass;

	for (pass = 0; pass < (int) lengthof(horizons_s); pass++)
	{
		HASH_SEQ_STATUS hstat;
		ShieldScope *scope;

		if (pass > 0 &&
			hash_get_num_entries(admission_scope_hash) + SCOPE_ROOM <= scope_capacity())
			break;
		hash_seq_init(&hstat, admission_scope_hash);
		while ((scope = hash_seq_search(&hstat)) != NULL)
		{
			TimestampTz full_at;

			if (pg_atomic_read_u32(&scope->active) != 0 || scope->waiters != 0 ||
				pg_atomic_read_u32(&scope->pins) != 0)
				continue;
			full_at = scope_bucket_full_at(scope);
			if (full_at > now)
			{
				if (horizons_s[pass] >= 0 &&
					full_at - now > horizons_s[pass] * USECS_PER_SEC)
					continue;
				refilling_evicted++;
			}
			hash_search(admission_scope_hash, &scope->key, HASH_REMOVE, NULL);
		}
	}
	admission_scopes_refilling_forgotten += refilling_evicted;
}

/*
 * Say, once admission_lock is released (a log line under it would hold up
 * every admission), how many refilling buckets eviction forgot.
 */
void
pgsh_scopes_report_evictions(void)
{
	if (admission_scopes_refilling_forgotten == 0)
		return;
	ereport(LOG,
			(errmsg("pg_shield forgot %d rate limit buckets that were still refilling",
					admission_scopes_refilling_forgotten),
			 errdetail("More scopes with max_rate were refilling at once than the scope table holds."),
			 errhint("Raise pg_shield.max_roles.")));
	admission_scopes_refilling_forgotten = 0;
}

/*
 * Find a scope, creating it if create (the lock held exclusively; the
 * caller made room, see pgsh_scopes_resolve); otherwise the lock is held in
 * either mode.  NULL if missing.
 */
static ShieldScope *
scope_lookup(const ShieldScopeKey *key, bool create)
{
	ShieldScope *scope;
	bool		found;

	if (key->dbid == InvalidOid)
		return &pgsh_adm->instance;
	scope = hash_search(admission_scope_hash, key, create ? HASH_ENTER_NULL : HASH_FIND,
						&found);
	if (scope != NULL && !found)
		pgsh_scope_init(scope);
	return scope;
}

/*
 * Find or create the scopes.  Called with the lock held in *mode; may
 * upgrade it to exclusive (released and retaken) to create missing ones.
 */
void
pgsh_scopes_resolve(ShieldScopeNeed *needs, int n, LWLockMode *mode)
{
	int			i;
	bool		missing = false;

	for (i = 0; i < n; i++)
	{
		needs[i].scope = scope_lookup(&needs[i].key, false);
		if (needs[i].scope == NULL)
			missing = true;
	}
	if (!missing)
		return;

	if (*mode != LW_EXCLUSIVE)
	{
		LWLockRelease(pgsh_state->admission_lock);
		LWLockAcquire(pgsh_state->admission_lock, LW_EXCLUSIVE);
		*mode = LW_EXCLUSIVE;
	}

	/*
	 * Make room first, then look every scope up again: evicting in the middle
	 * could remove one found a moment ago (it is not pinned yet). The table
	 * is sized so that evicting the idle scopes always leaves room for a
	 * statement's scopes.
	 */
	if (hash_get_num_entries(admission_scope_hash) + SCOPE_ROOM > scope_capacity())
		evict_idle_scopes();
	for (i = 0; i < n; i++)
	{
		needs[i].scope = scope_lookup(&needs[i].key, true);
		if (needs[i].scope == NULL)
			elog(ERROR, "pg_shield scope table is full");
	}
}

/*
 * Copy the scopes of this database, with their buckets as they are now
 * (refilled to now without being changed), for shield.policy_usage.
 */
ShieldScopeUsage *
pgsh_scopes_usage(int *n)
{
	HASH_SEQ_STATUS hstat;
	ShieldScope *scope;
	ShieldScopeUsage *result;
	TimestampTz now = GetCurrentTimestamp();
	int			count = 0;

	LWLockAcquire(pgsh_state->admission_lock, LW_SHARED);
	result = palloc(Max(1, hash_get_num_entries(admission_scope_hash)) *
					sizeof(ShieldScopeUsage));
	hash_seq_init(&hstat, admission_scope_hash);
	while ((scope = hash_seq_search(&hstat)) != NULL)
	{
		volatile ShieldScope *vs = scope;
		ShieldScopeUsage *u;

		if (scope->key.dbid != MyDatabaseId)
			continue;
		u = &result[count++];
		u->userid = scope->key.userid;
		u->queryid = scope->key.queryid;
		u->running = (int32) pg_atomic_read_u32(&scope->active);
		u->waiting = scope->waiters;
		SpinLockAcquire(&vs->mutex);
		if (vs->refilled_at == 0 || vs->rate < 0)
			u->tokens = -1.0;
		else
			u->tokens = Min(Max(1.0, vs->rate),
							vs->tokens + (double) Max(0, now - vs->refilled_at) /
							1000000.0 * vs->rate);
		SpinLockRelease(&vs->mutex);
	}
	LWLockRelease(pgsh_state->admission_lock);
	*n = count;
	return result;
}
