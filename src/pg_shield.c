/*-------------------------------------------------------------------------
 *
 * pg_shield.c
 *		Module entry point: protects one PostgreSQL instance from its own
 *		workload.
 *
 * _PG_init only wires the modules together; each module owns its state.
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
