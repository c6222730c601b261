/*-------------------------------------------------------------------------
 *
 * pg_shield.c
 *		Module entry point: protects one PostgreSQL instance from its own
 *		workload.
 *
 * _PG_init only wires the modules together; each module owns its state.
 *
 * THE PATH OF A STATEMENT, and the file that owns each step:
 *
 *	hooks.c				the parse analysis, planner, executor and
 *						ProcessUtility hooks: thin bodies that keep the
 *						nesting level and call into the statement module;
 *	statement.c			decides what a top-level statement is and follows
 *						it from start to end on every path (success, error,
 *						cancel, abort callbacks); statement_utility.c for
 *						utility statements, statement_planning.c for the
 *						planning of the top-level statement;
 *	policy.c			resolves the policies that apply to it, from a
 *						backend-local cache of shield.policy, matched by
 *						role, fingerprint and shape (shape.c);
 *	admission.c			admits it (pgsh_admit): cost ceiling, breaker,
 *						rate limits (admission_rate.c) and a slot in every
 *						matching scope (admission_scope.c);
 *	admission_queue.c	where it waits when a scope is full, with the
 *						overload controller that sheds load, the deadlock
 *						search (admission_deadlock.c) and the retry hints
 *						of the errors that turn it away (admission_hint.c);
 *	parallel.c			caps its parallel workers as its policy says, and
 *						drops them while the instance sheds load;
 *	deadline.c			cancels it when its policy's deadline passes;
 *	admission_held.c	releases its slots when it ends;
 *	breaker.c			counts its failure or success for its fingerprint's
 *						circuit breaker;
 *	stats.c				counts its cost in shared memory per role and per
 *						fingerprint (stats_table.c keeps the tables,
 *						stats_read.c reads them out);
 *	events.c			records what was enforced, and keeps the server log
 *						readable under a storm of rejections.
 *
 * What users see: views.c (the views), policy_funcs.c (the functions that
 * change policies), policy_inspect.c (fingerprint, shape,
 * effective_policy), policy_rebind.c (rebinding after DDL), guc.c (every
 * setting), errors.h (every SQLSTATE).  shmem.c sizes shared memory and
 * describes the locking protocol every module follows; compat.h holds every
 * difference between PostgreSQL versions.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/pg_shield.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "admission.h"
#include "compat.h"
#include "guc.h"
#include "hooks.h"
#include "policy.h"
#include "shmem.h"
#include "statement.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Module load callback.
 *
 * pg_shield needs shared memory and hooks installed in the postmaster, so
 * it does nothing unless loaded through shared_preload_libraries.  Loading
 * it later (CREATE EXTENSION, LOAD) is not an error: every SQL entry point
 * then fails with SQLSTATE 55000 and says how to preload it.
 */
void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	/* fingerprints are the core query identifier */
	EnableQueryId();

	pgsh_guc_init();
	pgsh_shmem_init();
	pgsh_statement_init();
	pgsh_policy_init();
	pgsh_admission_init();
	pgsh_hooks_install();
}
