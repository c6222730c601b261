/*-------------------------------------------------------------------------
 *
 * parallel.c
 *		Parallel workers are part of a statement's cost.
 *
 * An admission slot counts a statement, not its processes: a statement
 * planned with parallel workers takes one slot and as many CPUs as it has
 * workers.  A policy's max_parallel_workers caps them (the strictest of the
 * enforced policies that match, like max_cost), and while the instance is
 * overloaded (pgsh_admission_shedding) the statements of a priority that
 * can be shed plan with none, so that a report does not take the cores the
 * critical traffic needs.
 *
 * The cap is applied where the plan is made: the planner hook lowers
 * max_parallel_workers_per_gather for the duration of a governed top-level
 * statement's planning, and restores it afterwards (see hooks.c).  A plan
 * cached earlier (a prepared statement's generic plan) keeps the workers it
 * was planned with.
 *
 * Owns: the parallel cap (pgsh_parallel_cap_resolve) and the planner's
 *		  copy of the last policy resolution.
 * Calls: policy.c (resolution), statement_planning.c
 *		  (pgsh_planning_queryid), admission.c (pgsh_admission_shedding).
 * Locking: backend-local state only, no lock; shedding is an atomic.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/parallel.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "admission.h"
#include "guc.h"
#include "parallel.h"
#include "policy.h"
#include "statement.h"

/*
 * The planner's own copy of the last resolution (see
 * pgsh_policy_resolve_tagged): a session that plans the same statement
 * again finds it without copying.
 */
static ShieldEffectivePolicy parallel_planned_policy;
static uint64 parallel_planned_policy_tag = 0;

/*
 * The slow path of pgsh_parallel_cap: a policy may cap workers, or the
 * instance is shedding.  Governed as admission governs: only in enforce
 * mode (monitor mode changes nothing, and a monitored policy's cap is not
 * applied), never for an exempt superuser.
 */
int
pgsh_parallel_cap_resolve(Query *parse)
{
	Oid			userid = GetUserId();
	int			cap = -1;

	if (pgsh_mode != PGSH_MODE_ENFORCE)
		return -1;

	/*
	 * A session's first statement, in an instance where no backend has loaded
	 * an enforced cap since startup (the first one to load one raises the
	 * hint): the policy cache is left to admission to load, after planning,
	 * and the statement is not capped.  Loading it here, in the middle of the
	 * planner's allocations, was measured to leave the backend's heap laid
	 * out so that every later statement spent about 400 more instructions in
	 * malloc (test/bench/instructions.sh). The price: after a restart, the
	 * statements planned before any backend has run one in a database with a
	 * cap (the first statement of the first session, usually) plan with every
	 * worker.  Under overload the priority is needed, so the cache is loaded
	 * all the same.
	 */
	if (pgsh_policy_cold_without_caps() &&
		pgsh_admission_shedding() == PGSH_SHED_NONE)
		return -1;

	if (pgsh_exempt_superuser && superuser_arg(userid))
		return -1;

	(void) pgsh_policy_resolve_tagged(userid, pgsh_planning_queryid(parse),
									  &parallel_planned_policy, &parallel_planned_policy_tag);
	if (parallel_planned_policy.parallel_from >= 0 &&
		!parallel_planned_policy.scopes[parallel_planned_policy.parallel_from].monitor)
		cap = parallel_planned_policy.scopes[parallel_planned_policy.parallel_from].max_parallel_workers;

	/*
	 * Overloaded: whatever may be shed plans without workers.  Only critical
	 * statements keep theirs; they are never shed either.
	 */
	if (cap != 0 && parallel_planned_policy.priority != PGSH_PRIORITY_CRITICAL &&
		pgsh_admission_shedding() != PGSH_SHED_NONE)
		cap = 0;

	return cap;
}
