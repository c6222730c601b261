/*-------------------------------------------------------------------------
 *
 * policy_int.h
 *		What the policy SQL functions share: fingerprinting a sample text,
 *		the "query" argument, running a statement on shield.policy as its
 *		owner, and the warning about stale policies.  Only policy_funcs.c,
 *		policy_rebind.c and policy_inspect.c include it; the rest of
 *		pg_shield goes through policy.h.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/policy_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_POLICY_INT_H
#define PGSH_POLICY_INT_H

#include "executor/spi.h"
#include "fmgr.h"

#include "compat.h"

PGSH_BEGIN_INTERNAL

/* Called with the result of a statement while SPI is still connected. */
typedef void (*ShieldResultCallback) (SPITupleTable *tuptable, uint64 nrows,
									  void *arg);

/* policy_funcs.c: writing shield.policy */
extern const char *pgsh_policy_table_name(void);
extern uint64 pgsh_policy_run_as_owner(const char *sql, int nargs,
									   const Oid *types, const Datum *values,
									   const char *nulls,
									   ShieldResultCallback cb, void *arg);

/* policy_inspect.c: fingerprints, and the stale-policy warning */
extern int64 pgsh_policy_fingerprint_sql(const char *sql, int64 *shape);
extern char *pgsh_policy_query_argument(FunctionCallInfo fcinfo);
extern void pgsh_policy_warn_stale(void);

PGSH_END_INTERNAL

#endif							/* PGSH_POLICY_INT_H */
