/*-------------------------------------------------------------------------
 *
 * policy.c
 *		Where policies are stored, and the backend-local cache that
 *		resolves a statement's effective policy.
 *
 * Policies live in the extension table shield.policy of each database, so
 * pg_dump includes them and physical standbys receive them through WAL.
 *
 * Each backend keeps its database's policies in a local hash table keyed by
 * scope, loaded on first use and reloaded after an invalidation, so that
 * resolving a statement's policy costs a few local lookups and no catalog
 * access.  Changes reach the cache as relcache invalidations of
 * shield.policy: its statement trigger sends one with every committed
 * change (processed by every backend before its next statement, and by hot
 * standby backends when the commit record is replayed), and the creation
 * or removal of the table sends one too.  Uncommitted changes of other
 * sessions are never loaded.
 *
 * LOCKING.  Loading is not part of the statement's transaction: it reads
 * the committed rows with SnapshotSelf, so a SERIALIZABLE transaction
 * takes no predicate lock on the table, and it takes the table's
 * AccessShareLock only if it can without waiting (ConditionalLock), so a
 * migration holding the table (DROP EXTENSION, VACUUM FULL) delays no
 * other session's statements: they keep the policies read last, and the
 * next statement tries again (policy_cache_load).  Writers are the policy
 * functions, which lock the table normally.
 *
 * Owns: the reading of shield.policy, the backend-local policy cache with
 *		  its relcache and role callbacks, and policy resolution.
 * Calls: shape.c (pgsh_shape_of).
 * Locking: backend-local cache, no LWLock; shield.policy's
 *		  AccessShareLock only if free (LOCKING above).
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/policy.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "policy.h"
#include "shape.h"
#include "shmem.h"

/*
 * The OID of shield.policy in this database, or InvalidOid if pg_shield is
 * not installed here.  Only a table that belongs to the extension counts, so
 * a look-alike created by a user is never read.
 */
Oid
pgsh_policy_relid(void)
{
	Oid			nspoid;
	Oid			relid;
	Oid			extoid;

	/*
	 * Syscache lookups first: in a database without pg_shield (whose cache
	 * reloads after any relcache invalidation, see below) this is all a
	 * reload costs.
	 */
	nspoid = get_namespace_oid(PGSH_SCHEMA, true);
	if (!OidIsValid(nspoid))
		return InvalidOid;
	relid = get_relname_relid(PGSH_POLICY_TABLE, nspoid);
	if (!OidIsValid(relid))
		return InvalidOid;
	extoid = get_extension_oid("pg_shield", true);
	if (!OidIsValid(extoid) ||
		getExtensionOfObject(RelationRelationId, relid) != extoid)
		return InvalidOid;
	return relid;
}

/* Owner of shield.policy: the role its writes run as. */
Oid
pgsh_policy_owner(Oid relid)
{
	HeapTuple	tuple;
	Oid			owner;

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*----
 * The cache
 *----
 */
/*
 * Each query policy is entered under its fingerprint and, if it has one,
 * under its shape too.  Several policies of one role scope can have the
 * same shape (declared with texts that differ only in their constants):
 * the shape entry is the one with the lowest id.
 */
typedef struct ShieldPolicyKey
{
	Oid			role;			/* InvalidOid: every role */
	uint32		by_shape;		/* 1: queryid is a shape */
	uint64		queryid;		/* 0: role policy */
} ShieldPolicyKey;

typedef struct ShieldPolicyEntry
{
	ShieldPolicyKey key;		/* hash key; must be first */
	ShieldPolicy policy;
	const char *rolname;		/* the role's name when loaded (in
								 * policy_cxt), for messages */
} ShieldPolicyEntry;

static MemoryContext policy_cxt = NULL;
static HTAB *policy_cache = NULL;
static Oid	policy_cache_relid = InvalidOid;
static bool policy_cache_loaded = false;
static uint64 policy_invalidations = 0;
static uint64 policy_loaded_at = 0;

/* Bumped at every load: a policy id names the same limits until it moves. */
uint64		pgsh_policy_cache_version = 0;
static int	policy_n_role = 0;
static int	policy_n_query = 0; /* every role */
static int	policy_n_query_role = 0;

/* distinct shapes of query policies: for every role, for one role */
static int	policy_n_shape_query = 0;
static int	policy_n_shape_query_role = 0;

/*
 * See policy.h.  True until the first load, and again from every
 * invalidation until the next load: only a loaded, current cache can say
 * that no policy caps parallel workers.
 */
bool		pgsh_policy_may_cap_parallel = true;

/* See policy.h; up from every invalidation until the next load, likewise. */
bool		pgsh_policy_shapes_wanted = true;

/* Whether the last load of the cache had query policies with a shape. */
static bool policy_had_shapes = false;

/*
 * Whether the cache has been loaded in this backend yet: the planner does
 * not load it for a session's first statement unless some backend of the
 * instance has loaded an enforced cap (see pgsh_policy_cold_without_caps).
 */
bool
pgsh_policy_cold_without_caps(void)
{
	return !policy_cache_loaded &&
		pg_atomic_read_u32(&pgsh_state->parallel_caps_seen) == 0;
}

/*
 * Query policies left out of the cache because another major version of
 * PostgreSQL computed their fingerprint (pg_upgrade keeps the rows, but
 * query identifiers change between major versions): matching them by the
 * old identifier would be silently wrong, so they are not enforced, and
 * said so loudly until shield.rebind_query_policies() recomputes them.
 */
static int	policy_n_stale = 0;
static int	policy_stale_version = 0;	/* the version of one of them */

/* The last resolution, valid until the cache is reloaded. */
static bool policy_memo_valid = false;
static Oid	policy_memo_userid;
static uint64 policy_memo_queryid;
static ShieldEffectivePolicy policy_memo_result;
static uint64 policy_memo_tag = 0;	/* names policy_memo_result; never 0 once
									 * valid */
static uint64 policy_memo_tag_counter = 0;

/*
 * Relcache invalidation: shield.policy changed, or everything must go
 * (relid InvalidOid, after a sinval overflow).  While the extension is not
 * installed, any relation may be its table being created.  Only counts:
 * no catalog access here.
 */
static void
policy_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == policy_cache_relid ||
		!OidIsValid(policy_cache_relid))
	{
		policy_invalidations++;
		pgsh_policy_may_cap_parallel = true;
		pgsh_policy_shapes_wanted = true;
	}
}

/*
 * A role was created, renamed or dropped: policies bind roles by name
 * (see policy_from_tuple), so the cache must bind them again.  Only
 * counts.
 */
static void
policy_roles_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	policy_invalidations++;
	pgsh_policy_may_cap_parallel = true;
}

/*
 * Register the cache's invalidation callbacks, once, from _PG_init.  Roles
 * are watched as well as shield.policy because policies name their role
 * (see policy_from_tuple).  The callbacks only count, so the next
 * statement reloads the cache inside its transaction.
 */
void
pgsh_policy_init(void)
{
	CacheRegisterRelcacheCallback(policy_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, policy_roles_callback, (Datum) 0);
}

/*
 * Duration column in microseconds, -1 if NULL.  shield.policy's
 * constraints keep it within [0, PGSH_MAX_DURATION_US], without months;
 * clamped all the same, so that a row written around them cannot make
 * time arithmetic overflow.
 */
static int64
interval_us(Datum value, bool isnull)
{
	Interval   *iv;
	int64		us;

	if (isnull)
		return -1;
	iv = DatumGetIntervalP(value);
	if (iv->month != 0 || iv->day > PGSH_MAX_DURATION_US / USECS_PER_DAY)
		return PGSH_MAX_DURATION_US;
	us = (int64) Max(iv->day, 0) * USECS_PER_DAY +
		Max(Min(iv->time, PGSH_MAX_DURATION_US), 0);
	return Min(us, PGSH_MAX_DURATION_US);
}

/*
 * "500 ms", "0.25 ms", "1500.5 ms": a duration as messages show it, exact
 * to the microsecond.  Returns buf.
 */
char *
pgsh_duration_text(char *buf, size_t size, int64 us)
{
	if (us % 1000 == 0)
		snprintf(buf, size, INT64_FORMAT " ms", us / 1000);
	else
	{
		char		frac[8];
		int			len;

		snprintf(frac, sizeof(frac), "%03d", (int) (us % 1000));
		len = strlen(frac);
		while (len > 0 && frac[len - 1] == '0')
			frac[--len] = '\0';
		snprintf(buf, size, INT64_FORMAT ".%s ms", us / 1000, frac);
	}
	return buf;
}

static const char *cached_role_name(Oid role, uint64 queryid,
									int64 policy_id);

/*
 * "Role "app" (policy 3)", "Fingerprint 123 (policy 4)", "Fingerprint 123
 * of role "app" (policy 5)": the scope of a policy, as the DETAIL of an
 * error or an event names it.
 *
 * The role's name is the one the cache loaded with the policy, so that
 * describing reads no catalog and allocates nothing: the end of a statement
 * that outlived a monitored deadline is described in the abort callbacks
 * too, where no catalog may be read.  A policy changed since the statement
 * resolved it names its role by OID.
 */
void
pgsh_policy_describe(char *buf, size_t size, Oid role, uint64 queryid,
					 int64 policy_id, bool capital)
{
	char		who[NAMEDATALEN + 32] = "";

	if (role != InvalidOid)
	{
		const char *rolename = cached_role_name(role, queryid, policy_id);

		if (rolename != NULL)
			snprintf(who, sizeof(who), "\"%s\"", rolename);
		else
			snprintf(who, sizeof(who), "with OID %u", role);
	}
	if (queryid == 0)
		snprintf(buf, size, "%s %s (policy " INT64_FORMAT ")",
				 capital ? "Role" : "role", who, policy_id);
	else if (role == InvalidOid)
		snprintf(buf, size, "%s " INT64_FORMAT " (policy " INT64_FORMAT ")",
				 capital ? "Fingerprint" : "fingerprint",
				 (int64) queryid, policy_id);
	else
		snprintf(buf, size, "%s " INT64_FORMAT " of role %s (policy " INT64_FORMAT ")",
				 capital ? "Fingerprint" : "fingerprint",
				 (int64) queryid, who, policy_id);
}

/*
 * The priority column as stored.  The table's CHECK constraint allows only
 * the three names, so anything else is taken as normal rather than failing
 * a cache load.
 */
static ShieldPriority
priority_from_text(Datum value)
{
	char	   *s = TextDatumGetCString(value);

	if (strcmp(s, "critical") == 0)
		return PGSH_PRIORITY_CRITICAL;
	if (strcmp(s, "low") == 0)
		return PGSH_PRIORITY_LOW;
	return PGSH_PRIORITY_NORMAL;
}

/*
 * The name of a priority, as shield.policy stores it and the views show it.
 * A constant string: callable where nothing may be allocated.
 */
const char *
pgsh_priority_name(ShieldPriority priority)
{
	switch (priority)
	{
		case PGSH_PRIORITY_CRITICAL:
			return "critical";
		case PGSH_PRIORITY_LOW:
			return "low";
		case PGSH_PRIORITY_NORMAL:
			break;
	}
	return "normal";
}

/*
 * Fill *p from the deformed columns of one shield.policy row.  A NULL limit
 * becomes -1 (no limit).  The role is stored by name and bound to its OID
 * here, InvalidOid if no role has that name; that is why the creation,
 * renaming or removal of a role invalidates the cache.
 */
static void
policy_from_tuple(ShieldPolicy *p, Datum *values, bool *nulls)
{
	p->id = DatumGetInt64(values[Anum_policy_id - 1]);
	/* stored by name (see policy_cache_load); InvalidOid if it is missing */
	p->role = nulls[Anum_policy_role - 1] ? InvalidOid :
		get_role_oid(NameStr(*DatumGetName(values[Anum_policy_role - 1])), true);
	p->queryid = nulls[Anum_policy_queryid - 1] ? 0 :
		(uint64) DatumGetInt64(values[Anum_policy_queryid - 1]);
	p->shape = (nulls[Anum_policy_shape - 1] || p->queryid == 0) ? 0 :
		(uint64) DatumGetInt64(values[Anum_policy_shape - 1]);
	p->max_concurrent = nulls[Anum_policy_max_concurrent - 1] ? -1 :
		DatumGetInt32(values[Anum_policy_max_concurrent - 1]);
	p->queue_timeout_us = interval_us(values[Anum_policy_queue_timeout - 1],
									  nulls[Anum_policy_queue_timeout - 1]);
	p->max_cost = nulls[Anum_policy_max_cost - 1] ? -1.0 :
		DatumGetFloat8(values[Anum_policy_max_cost - 1]);
	p->deadline_us = interval_us(values[Anum_policy_deadline - 1],
								 nulls[Anum_policy_deadline - 1]);
	p->max_rate = nulls[Anum_policy_max_rate - 1] ? -1.0 :
		DatumGetFloat8(values[Anum_policy_max_rate - 1]);
	p->priority = priority_from_text(values[Anum_policy_priority - 1]);
	p->breaker_failures = nulls[Anum_policy_breaker_failures - 1] ? -1 :
		DatumGetInt32(values[Anum_policy_breaker_failures - 1]);
	p->breaker_cooldown_us =
		interval_us(values[Anum_policy_breaker_cooldown - 1],
					nulls[Anum_policy_breaker_cooldown - 1]);
	p->max_parallel_workers =
		nulls[Anum_policy_max_parallel_workers - 1] ? -1 :
		DatumGetInt32(values[Anum_policy_max_parallel_workers - 1]);
	p->monitor = strcmp(TextDatumGetCString(values[Anum_policy_mode - 1]),
						"monitor") == 0;
}

/*
 * Say in the server log that stale query policies are not enforced: at most
 * once a minute for the whole instance, since every backend of the
 * database finds them when it loads its cache.
 */
static void
report_stale_policies(void)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		last = pg_atomic_read_u64(&pgsh_state->stale_logged_at);

	if ((TimestampTz) last != 0 && now - (TimestampTz) last < 60 * USECS_PER_SEC)
		return;
	if (!pg_atomic_compare_exchange_u64(&pgsh_state->stale_logged_at, &last,
										(uint64) now))
		return;
	ereport(LOG,
			(errmsg("%d pg_shield query policies of database \"%s\" are not enforced: their fingerprints were computed by PostgreSQL %d",
					policy_n_stale, get_database_name(MyDatabaseId),
					policy_stale_version),
			 errhint("Run SELECT shield.rebind_query_policies() in that database."),
			 errhidestmt(true)));
}

/*
 * The stale query policies of this database (see policy_n_stale), and
 * the version of one of them in *stale_version.  Loads the cache if it must:
 * call inside a transaction.
 */
int
pgsh_policy_stale_count(int *stale_version)
{
	ShieldEffectivePolicy unused;

	(void) pgsh_policy_resolve(InvalidOid, 0, &unused);
	*stale_version = policy_stale_version;
	return policy_n_stale;
}

/*
 * Query policies of this database in the cache, stale ones included: whether
 * a DDL statement may have moved fingerprints that policies were declared
 * with (see pg_shield_rebind_after_ddl).
 */
int
pgsh_policy_query_count(void)
{
	ShieldEffectivePolicy unused;

	(void) pgsh_policy_resolve(InvalidOid, 0, &unused);
	return policy_n_query + policy_n_query_role + policy_n_stale;
}

/*
 * (Re)load the cache.  Reads shield.policy directly (no SPI, so no
 * re-entry into the executor hooks), as the catalogs are read, never as
 * part of the statement's transaction:
 *
 *	- with SnapshotSelf (the committed rows, and the transaction's own), so
 *	  that a policy committed by another session is seen even inside a
 *	  REPEATABLE READ transaction, and so that a SERIALIZABLE transaction
 *	  takes no predicate lock on the table (which would make an
 *	  application's transaction fail with 40001 for reading pg_shield's
 *	  policies; only MVCC snapshots take them);
 *	- under a lock it does not wait for: if a migration holds a
 *	  conflicting one (DROP EXTENSION or VACUUM FULL in an open
 *	  transaction), the policies read last stay in force, or none if
 *	  none were, and the next statement tries again.  Every new session
 *	  of the database would otherwise wait behind the migration, a
 *	  superuser's included.
 *
 * A row updated while the scan runs may be seen in both versions; the
 * update's commit invalidates the cache, so the next statement loads
 * again, as it does after any invalidation that arrives while loading
 * (taking the lock processes invalidations).
 */
static void
policy_cache_load(void)
{
	uint64		started_at = policy_invalidations;
	Oid			relid;
	HASHCTL		ctl;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	bool		caps_parallel = false;
	bool		locked;

	relid = pgsh_policy_relid();
	locked = OidIsValid(relid) &&
		ConditionalLockRelationOid(relid, AccessShareLock);
	if (OidIsValid(relid) && !locked && policy_cache_loaded &&
		policy_cache_relid == relid)
		return;					/* keep the last ones; try again next time */

	if (policy_cxt == NULL)
		policy_cxt = AllocSetContextCreate(TopMemoryContext,
										   "pg_shield policy cache",
										   ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(policy_cxt);
	policy_cache = NULL;
	policy_cache_loaded = false;
	policy_n_role = policy_n_query = policy_n_query_role = 0;
	policy_n_shape_query = policy_n_shape_query_role = 0;
	policy_n_stale = 0;

	policy_cache_relid = relid;
	if (locked)
	{
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(ShieldPolicyKey);
		ctl.entrysize = sizeof(ShieldPolicyEntry);
		ctl.hcxt = policy_cxt;
		policy_cache = hash_create("pg_shield policy cache", 64, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

		rel = table_open(relid, NoLock);
		scan = table_beginscan(rel, SnapshotSelf, 0, NULL);
		while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			Datum		values[Natts_policy];
			bool		nulls[Natts_policy];
			ShieldPolicy p;
			ShieldPolicyKey key;
			ShieldPolicyEntry *entry;
			char	   *rolename;
			bool		seen;

			heap_deform_tuple(tuple, RelationGetDescr(rel), values, nulls);
			policy_from_tuple(&p, values, nulls);

			/*
			 * The policy of a role that does not exist (dropped, or not
			 * created in the cluster a dump was restored into) is kept, by
			 * name, but applies to nobody until the role exists.
			 */
			if (!nulls[Anum_policy_role - 1] && p.role == InvalidOid)
				continue;
			if (p.queryid != 0 && !nulls[Anum_policy_fingerprint_version - 1] &&
				DatumGetInt32(values[Anum_policy_fingerprint_version - 1]) !=
				PGSH_FINGERPRINT_VERSION)
			{
				policy_n_stale++;
				policy_stale_version =
					DatumGetInt32(values[Anum_policy_fingerprint_version - 1]);
				continue;
			}

			/* first: nothing may fail between HASH_ENTER and filling in */
			rolename = p.role != InvalidOid ?
				GetUserNameFromId(p.role, true) : NULL;
			rolename = MemoryContextStrdup(policy_cxt, rolename ? rolename : "?");
			memset(&key, 0, sizeof(key));
			key.role = p.role;
			key.queryid = p.queryid;
			entry = hash_search(policy_cache, &key, HASH_ENTER, &seen);
			entry->policy = p;
			entry->rolname = rolename;
			if (p.max_parallel_workers >= 0 && !p.monitor)
				caps_parallel = true;
			/* a row updated while the scan ran may be read twice */
			if (seen)
				continue;
			if (p.queryid == 0)
				policy_n_role++;
			else if (p.role == InvalidOid)
				policy_n_query++;
			else
				policy_n_query_role++;

			if (p.shape != 0)
			{
				bool		found;

				key.by_shape = 1;
				key.queryid = p.shape;
				entry = hash_search(policy_cache, &key, HASH_ENTER, &found);
				if (!found || p.id < entry->policy.id)
				{
					entry->policy = p;
					entry->rolname = rolename;
				}
				if (!found && p.role == InvalidOid)
					policy_n_shape_query++;
				else if (!found)
					policy_n_shape_query_role++;
			}
		}
		table_endscan(scan);
		table_close(rel, AccessShareLock);
	}

	/* not read (a migration holds the table): the next statement tries */
	policy_loaded_at = OidIsValid(relid) && !locked ? started_at - 1 : started_at;
	policy_cache_loaded = true;

	/*
	 * An invalidation that arrived while loading (started_at is behind)
	 * leaves the flag up, since the next statement loads again.
	 */
	pgsh_policy_may_cap_parallel = caps_parallel ||
		policy_loaded_at != policy_invalidations;
	pgsh_policy_shapes_wanted =
		policy_n_shape_query + policy_n_shape_query_role > 0 ||
		policy_loaded_at != policy_invalidations;

	/*
	 * The first query policy with a shape: the statements this backend
	 * prepared while there was none (PREPARE, the extended protocol,
	 * PL/pgSQL) were analyzed without noting their shape, and would be
	 * matched by fingerprint only.  Marking the cached plans invalid has each
	 * analyzed again, and its shape noted, before its next execution; it
	 * costs each one new parse analysis and plan, as DDL on its tables would.
	 * The statement being resolved runs as it was planned.
	 */
	if (policy_n_shape_query + policy_n_shape_query_role > 0)
	{
		if (!policy_had_shapes)
			ResetPlanCache();
		policy_had_shapes = true;
	}
	else
		policy_had_shapes = false;
	if (caps_parallel &&
		pg_atomic_read_u32(&pgsh_state->parallel_caps_seen) == 0)
		pg_atomic_write_u32(&pgsh_state->parallel_caps_seen, 1);
	pgsh_policy_cache_version++;

	if (policy_n_stale > 0)
		report_stale_policies();
}

/*
 * The name of a policy's role, as the cache loaded it; NULL if the cache
 * does not hold that policy (any more).  Reads no catalog, allocates
 * nothing: callable in abort callbacks.
 */
static const char *
cached_role_name(Oid role, uint64 queryid, int64 policy_id)
{
	ShieldPolicyKey key;
	ShieldPolicyEntry *entry;

	if (!policy_cache_loaded || policy_cache == NULL)
		return NULL;
	memset(&key, 0, sizeof(key));
	key.role = role;
	key.queryid = queryid;
	entry = hash_search(policy_cache, &key, HASH_FIND, NULL);
	if (entry == NULL || entry->policy.id != policy_id)
		return NULL;
	return entry->rolname;
}

/*
 * The policy cached under one key, or NULL: a role scope (InvalidOid for
 * every role) and a fingerprint (0 for the role policy), or a shape if
 * by_shape.  The caller has checked that the cache holds a table.
 */
static const ShieldPolicy *
policy_lookup(Oid role, uint64 queryid, bool by_shape)
{
	ShieldPolicyKey key;
	ShieldPolicyEntry *entry;

	memset(&key, 0, sizeof(key));
	key.role = role;
	key.by_shape = by_shape ? 1 : 0;
	key.queryid = queryid;
	entry = hash_search(policy_cache, &key, HASH_FIND, NULL);
	return entry ? &entry->policy : NULL;
}

/*
 * The query policy of one role scope (role, or InvalidOid for every role)
 * that a statement matches: the one declared with its fingerprint, else
 * the one (with the lowest id) declared with its shape.
 */
static inline const ShieldPolicy *
query_policy_lookup(Oid role, uint64 queryid, uint64 shape, int nshaped,
					bool *by_shape)
{
	const ShieldPolicy *p = policy_lookup(role, queryid, false);

	*by_shape = false;
	if (p == NULL && shape != 0 && nshaped > 0)
	{
		p = policy_lookup(role, shape, true);
		*by_shape = p != NULL;
	}
	return p;
}

/*
 * Resolve the policies that apply to a statement of role userid with
 * fingerprint queryid.  Returns false if none applies.  Must run inside a
 * transaction (it may load the cache).
 */
bool
pgsh_policy_resolve(Oid userid, uint64 queryid, ShieldEffectivePolicy *result)
{
	uint64		tag = 0;

	return pgsh_policy_resolve_tagged(userid, queryid, result, &tag);
}

/*
 * The resolution pgsh_policy_resolve_tagged did not find memoized: look
 * the three candidates up and merge them.  Kept apart from the memoized
 * path, which then needs no stack array.  shape: the statement's, or 0 to
 * look it up by fingerprint.
 */
static pg_noinline bool
resolve_anew(Oid userid, uint64 queryid, uint64 shape,
			 ShieldEffectivePolicy *result, uint64 *tag)
{
	const ShieldPolicy *candidates[3];
	bool		by_shape[3] = {false, false, false};
	int			i;

	*tag = 0;

	result->nscopes = 0;
	result->max_cost_from = -1;
	result->deadline_from = -1;
	result->breaker_from = -1;
	result->priority_from = -1;
	result->priority = PGSH_PRIORITY_NORMAL;
	result->parallel_from = -1;
	if (policy_cache == NULL ||
		policy_n_role + policy_n_query + policy_n_query_role == 0)
	{
		policy_memo_valid = false;
		return false;
	}

	/*
	 * The statement's shape, if a query policy may match it by shape: the
	 * caller's, or the one remembered when the statement was analyzed.
	 */
	if (shape == 0 && queryid != 0 &&
		policy_n_shape_query + policy_n_shape_query_role > 0)
		shape = pgsh_shape_of(queryid);

	/* most specific first: query+role, query, role */
	candidates[0] = (policy_n_query_role > 0 && queryid != 0) ?
		query_policy_lookup(userid, queryid, shape,
							policy_n_shape_query_role, &by_shape[0]) : NULL;
	candidates[1] = (policy_n_query > 0 && queryid != 0) ?
		query_policy_lookup(InvalidOid, queryid, shape,
							policy_n_shape_query, &by_shape[1]) : NULL;
	candidates[2] = policy_n_role > 0 ? policy_lookup(userid, 0, false) : NULL;

	for (i = 0; i < 3; i++)
	{
		const ShieldPolicy *p = candidates[i];
		int			k;

		if (p == NULL)
			continue;
		k = result->nscopes++;
		result->scopes[k] = *p;
		result->by_shape[k] = by_shape[i];
		if (p->max_cost >= 0 &&
			(result->max_cost_from < 0 ||
			 p->max_cost < result->scopes[result->max_cost_from].max_cost))
			result->max_cost_from = k;
		if (p->deadline_us >= 0 &&
			(result->deadline_from < 0 ||
			 p->deadline_us < result->scopes[result->deadline_from].deadline_us))
			result->deadline_from = k;
		/* candidates come most specific first */
		if (p->queryid != 0 && p->breaker_failures > 0 &&
			result->breaker_from < 0)
			result->breaker_from = k;
		/* an enforced cap wins over any monitored one */
		if (p->max_parallel_workers >= 0 &&
			(result->parallel_from < 0 ||
			 (!p->monitor && result->scopes[result->parallel_from].monitor) ||
			 (p->monitor == result->scopes[result->parallel_from].monitor &&
			  p->max_parallel_workers <
			  result->scopes[result->parallel_from].max_parallel_workers)))
			result->parallel_from = k;
		if (result->priority_from < 0)
		{
			result->priority_from = k;
			result->priority = p->priority;
		}
	}
	policy_memo_result = *result;
	policy_memo_userid = userid;
	policy_memo_queryid = queryid;
	policy_memo_valid = true;
	policy_memo_tag = ++policy_memo_tag_counter;
	*tag = policy_memo_tag;
	return result->nscopes > 0;
}

/* Load the cache if it is not loaded, or not current. */
static inline void
policy_cache_ensure(void)
{
	/*
	 * Inside a transaction block, or a pipeline of extended-protocol
	 * statements, a statement that opens no relation would not process
	 * invalidations: do it here, so that a change committed meanwhile
	 * applies.  The first statement of a transaction has just processed them
	 * at transaction start.
	 */
	if (IsTransactionBlock() ||
		GetCurrentStatementStartTimestamp() != GetCurrentTransactionStartTimestamp())
		AcceptInvalidationMessages();
	if (!policy_cache_loaded || policy_loaded_at != policy_invalidations)
	{
		policy_cache_load();
		policy_memo_valid = false;
	}
}

/*
 * pgsh_policy_resolve for a caller that keeps its result between
 * statements: *tag names the resolution *result holds (0: none, or
 * unknown).  When this statement resolves to that same resolution, *result
 * is left as it is instead of being copied again.  The caller must not
 * change *result, and must set *tag to 0 whenever it stops holding what
 * this function wrote.
 */
bool
pgsh_policy_resolve_tagged(Oid userid, uint64 queryid,
						   ShieldEffectivePolicy *result, uint64 *tag)
{
	policy_cache_ensure();

	/* a session mostly runs the same few statements as the same role */
	if (policy_memo_valid && policy_memo_userid == userid && policy_memo_queryid == queryid)
	{
		if (*tag != policy_memo_tag)
		{
			*result = policy_memo_result;
			*tag = policy_memo_tag;
		}
		return policy_memo_result.nscopes > 0;
	}

	return resolve_anew(userid, queryid, 0, result, tag);
}

/*
 * The shape of fingerprint queryid has just become known (see shape.c): a
 * resolution memoized for that fingerprint without it, which matched no
 * policy by shape, may be wrong now.
 */
void
pgsh_policy_shape_noted(uint64 queryid)
{
	if (policy_memo_valid && policy_memo_queryid == queryid)
		policy_memo_valid = false;
}

/*
 * pgsh_policy_resolve for a statement of known shape, which need not have
 * been analyzed in this session: for shield.effective_policy().  Not
 * memoized, since the shape does not come from the map.
 */
bool
pgsh_policy_resolve_shape(Oid userid, uint64 queryid, uint64 shape,
						  ShieldEffectivePolicy *result)
{
	uint64		tag = 0;
	bool		found;

	policy_cache_ensure();
	found = resolve_anew(userid, queryid, shape, result, &tag);
	policy_memo_valid = false;
	return found;
}
