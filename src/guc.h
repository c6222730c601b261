/*-------------------------------------------------------------------------
 *
 * guc.h
 *		pg_shield configuration parameters (all defined in guc.c).
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/guc.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_GUC_H
#define PGSH_GUC_H

#include "compat.h"

PGSH_BEGIN_INTERNAL

typedef enum ShieldMode
{
	PGSH_MODE_ENFORCE,
	PGSH_MODE_MONITOR,
	PGSH_MODE_OFF
} ShieldMode;

extern int	pgsh_mode;
extern int	pgsh_max_fingerprints;
extern int	pgsh_max_roles;
extern int	pgsh_max_events;
extern int	pgsh_log_actions;
extern bool pgsh_exempt_superuser;
extern int	pgsh_max_active;
extern int	pgsh_max_queue;
extern int	pgsh_queue_timeout_ms;
extern int	pgsh_target_queue_delay_ms;
extern int	pgsh_overload_interval_ms;
extern int	pgsh_breaker_failures;
extern int	pgsh_breaker_cooldown_ms;

extern void pgsh_guc_init(void);
extern const char *pgsh_mode_name(int mode);

PGSH_END_INTERNAL

#endif							/* PGSH_GUC_H */
