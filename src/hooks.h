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

extern void pgsh_hooks_install(void);

#endif							/* PGSH_HOOKS_H */
