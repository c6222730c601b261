/*-------------------------------------------------------------------------
 *
 * policy.h
 *		Policies: where they are stored, and the backend-local cache that
 *		resolves the effective policy of a statement.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/policy.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_POLICY_H
#define PGSH_POLICY_H

#include "compat.h"

PGSH_BEGIN_INTERNAL

/* Schema and table the extension script creates (schema is not relocatable). */
#define PGSH_SCHEMA			"shield"
#define PGSH_POLICY_TABLE	"policy"

/* Columns of shield.policy, in table order (1-based attribute numbers). */
#define Anum_policy_id					1
#define Anum_policy_role				2
#define Anum_policy_queryid				3
#define Anum_policy_query				4
#define Anum_policy_search_path			5
#define Anum_policy_max_concurrent		6
#define Anum_policy_queue_timeout		7
#define Anum_policy_max_cost			8
#define Anum_policy_deadline			9
#define Anum_policy_max_rate			10
#define Anum_policy_priority			11
#define Anum_policy_breaker_failures	12
#define Anum_policy_breaker_cooldown	13
#define Anum_policy_mode				14
#define Anum_policy_fingerprint_version	15
#define Anum_policy_max_parallel_workers	16
#define Anum_policy_shape				17
#define Anum_policy_bind_error			18
#define Natts_policy					18

/*
 * The major version whose query identifiers this build computes: a query
 * policy stored with another one is stale (see policy.c).
 */
#define PGSH_FINGERPRINT_VERSION PGSH_PG_MAJOR

typedef enum ShieldPriority
{
	PGSH_PRIORITY_CRITICAL,
	PGSH_PRIORITY_NORMAL,
	PGSH_PRIORITY_LOW
} ShieldPriority;

/*
 * The longest duration a policy may set (queue_timeout, deadline,
 * breaker_cooldown): INT_MAX milliseconds, about 24.8 days, the bound of
 * PostgreSQL's own timeouts (statement_timeout, lock_timeout).  Checked by
 * the policy functions and by shield.policy's constraints, so that every
 * time computed from one fits comfortably in a TimestampTz.
 */
#define PGSH_MAX_DURATION_US	((int64) PG_INT32_MAX * 1000)

/*
 * One stored policy, as the cache holds it.  Limits: < 0 means none.
 * Durations are in microseconds, as intervals store them, so that a
 * sub-millisecond limit stays exact.
 */
typedef struct ShieldPolicy
{
	Oid			role;			/* InvalidOid: every role */
	uint64		queryid;		/* 0: role policy */
	uint64		shape;			/* 0: matched by queryid only */
	int64		id;
	int32		max_concurrent;
	int64		queue_timeout_us;
	double		max_cost;
	int64		deadline_us;
	double		max_rate;
	ShieldPriority priority;
	int32		breaker_failures;
	int64		breaker_cooldown_us;
	int32		max_parallel_workers;	/* 0: plan without workers */
	bool		monitor;		/* per-policy mode is monitor */
} ShieldPolicy;

/*
 * The policies that apply to one statement (database, role, fingerprint),
 * merged: a slot in every scope with max_concurrent, a token from every
 * scope with max_rate, the strictest deadline, max_cost and
 * max_parallel_workers, and the priority of the most specific policy.  It
 * holds copies, not pointers into the cache, because a statement (an open
 * cursor) can outlive a reload.
 * The *_from fields index scopes[], -1 meaning none.
 */
typedef struct ShieldEffectivePolicy
{
	ShieldPolicy scopes[3];		/* matching policies, most specific first */
	bool		by_shape[3];	/* scopes[i] matched by shape, not queryid */
	int			nscopes;
	int			max_cost_from;	/* strictest max_cost */
	int			deadline_from;	/* strictest deadline */
	int			breaker_from;	/* most specific query policy that sets
								 * breaker_failures */
	int			priority_from;	/* -1: default normal */
	ShieldPriority priority;
	int			parallel_from;	/* strictest max_parallel_workers of an
								 * enforced policy, else of a monitored one
								 * (shown, not applied) */
} ShieldEffectivePolicy;

/*
 * False only while the cache is loaded, current as of the last
 * invalidation this backend processed, and holds no enforced
 * max_parallel_workers: the planner then skips resolving policies (see
 * parallel.c).
 */
extern bool pgsh_policy_may_cap_parallel;
extern bool pgsh_policy_cold_without_caps(void);

/*
 * False only while the cache is loaded, current as of the last
 * invalidation this backend processed, and holds no query policy with a
 * shape: statements then need no shape (see shape.c).
 */
extern bool pgsh_policy_shapes_wanted;
extern void pgsh_policy_shape_noted(uint64 queryid);

/* OID of shield.policy in this database, or InvalidOid if not installed. */
extern uint64 pgsh_policy_cache_version;

extern Oid	pgsh_policy_relid(void);
extern Oid	pgsh_policy_owner(Oid relid);

extern void pgsh_policy_init(void);
extern bool pgsh_policy_resolve(Oid userid, uint64 queryid,
								ShieldEffectivePolicy *result);
extern bool pgsh_policy_resolve_tagged(Oid userid, uint64 queryid,
									   ShieldEffectivePolicy *result,
									   uint64 *tag);
extern bool pgsh_policy_resolve_shape(Oid userid, uint64 queryid,
									  uint64 shape,
									  ShieldEffectivePolicy *result);
extern const char *pgsh_priority_name(ShieldPriority priority);
extern void pgsh_policy_describe(char *buf, size_t size, Oid role,
								 uint64 queryid, int64 policy_id,
								 bool capital);
extern char *pgsh_duration_text(char *buf, size_t size, int64 us);
extern int	pgsh_policy_stale_count(int *stale_version);
extern int	pgsh_policy_query_count(void);

PGSH_END_INTERNAL

#endif							/* PGSH_POLICY_H */
