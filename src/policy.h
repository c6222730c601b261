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
#define Natts_policy					14

/* OID of shield.policy in this database, or InvalidOid if not installed. */
extern Oid	pgsh_policy_relid(void);
extern Oid	pgsh_policy_owner(Oid relid);

#endif							/* PGSH_POLICY_H */
