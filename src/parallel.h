/*-------------------------------------------------------------------------
 *
 * parallel.h
 *		Parallel workers are part of a statement's cost: the cap a policy
 *		sets on them, and the workers dropped while the instance sheds load.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/parallel.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_PARALLEL_H
#define PGSH_PARALLEL_H

#include "nodes/parsenodes.h"

#include "admission.h"
#include "compat.h"
#include "policy.h"

PGSH_BEGIN_INTERNAL

extern int	pgsh_parallel_cap_resolve(Query *parse);

/*
 * The parallel workers a top-level statement about to be planned may plan
 * with, -1 for no cap.  Nearly always neither a policy caps workers nor is
 * the instance shedding: two tests, and no policy resolution.
 */
static inline int
pgsh_parallel_cap(Query *parse)
{
	if (likely(!pgsh_policy_may_cap_parallel) &&
		likely(pgsh_admission_shedding() == PGSH_SHED_NONE))
		return -1;
	return pgsh_parallel_cap_resolve(parse);
}

PGSH_END_INTERNAL

#endif							/* PGSH_PARALLEL_H */
