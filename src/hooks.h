/*-------------------------------------------------------------------------
 *
 * hooks.h
 *		Planner, executor and utility hooks.
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
