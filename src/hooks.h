/*-------------------------------------------------------------------------
 *
 * hooks.h
 *		The installation of pg_shield's hooks (pgsh_hooks_install): parse
 *		analysis, planner, executor, ProcessUtility and emit_log.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/hooks.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_HOOKS_H
#define PGSH_HOOKS_H

#include "compat.h"

PGSH_BEGIN_INTERNAL

extern void pgsh_hooks_install(void);

PGSH_END_INTERNAL

#endif							/* PGSH_HOOKS_H */
