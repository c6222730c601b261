/*-------------------------------------------------------------------------
 *
 * guc.c
 *		Definition of every pg_shield configuration parameter.
 *
 * All pg_shield.* settings are defined here and nowhere else, so their
 * contexts (who may change them, and when) can be reviewed at a glance.
 * Settings that limit users are PGC_SUSET or PGC_SIGHUP, so that a role
 * cannot SET itself out of its limits; sizing settings are PGC_POSTMASTER
 * because they size shared memory.
 *
 * Owns: every pg_shield.* setting, its C variable and its hooks.
 * Calls: admission.c (pgsh_admission_publish_max_active, from
 *		  max_active's assign hook).
 * Locking: none; the assign hook publishes with one aligned store.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/guc.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"

#include "admission.h"
#include "events.h"
#include "guc.h"

int			pgsh_mode = PGSH_MODE_ENFORCE;
int			pgsh_max_fingerprints = 5000;
int			pgsh_max_roles = 1000;
int			pgsh_max_events = 1000;
int			pgsh_log_actions = PGSH_LOG_ENFORCED;
bool		pgsh_exempt_superuser = true;
int			pgsh_max_active = 0;
int			pgsh_max_queue = 64;
int			pgsh_queue_timeout_ms = 1000;
int			pgsh_target_queue_delay_ms = 50;
int			pgsh_overload_interval_ms = 500;
int			pgsh_breaker_failures = 0;
int			pgsh_breaker_cooldown_ms = 30000;

/* A raised limit reaches the statements already waiting (admission.c). */
static void
assign_max_active(int newval, void *extra)
{
	pgsh_admission_publish_max_active(newval);
}

static const struct config_enum_entry guc_mode_options[] = {
	{"enforce", PGSH_MODE_ENFORCE, false},
	{"monitor", PGSH_MODE_MONITOR, false},
	{"off", PGSH_MODE_OFF, false},
	{NULL, 0, false}
};

static const struct config_enum_entry guc_log_actions_options[] = {
	{"none", PGSH_LOG_NONE, false},
	{"enforced", PGSH_LOG_ENFORCED, false},
	{"all", PGSH_LOG_ALL, false},
	{NULL, 0, false}
};

/*
 * Name of a pg_shield.mode value, as shown by SHOW and shield.status.
 */
const char *
pgsh_mode_name(int mode)
{
	const struct config_enum_entry *e;

	for (e = guc_mode_options; e->name != NULL; e++)
	{
		if (e->val == mode)
			return e->name;
	}
	return "unknown";
}

/*
 * Define the parameters.  Called from _PG_init while
 * shared_preload_libraries is being processed.
 */
void
pgsh_guc_init(void)
{
	DefineCustomEnumVariable("pg_shield.mode",
							 "Sets whether pg_shield enforces, only monitors, or is switched off.",
							 "\"off\" stops all pg_shield work, statistics included.",
							 &pgsh_mode,
							 PGSH_MODE_ENFORCE,
							 guc_mode_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("pg_shield.max_fingerprints",
							"Sets the maximum number of (database, role, fingerprint) entries tracked.",
							"When the table is full, the least used entries are evicted in batches.",
							&pgsh_max_fingerprints,
							5000,
							100,
							INT_MAX / 2,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pg_shield.max_roles",
							"Sets the maximum number of (database, role) entries tracked.",
							"When the table is full, the least used entries are evicted in batches.",
							&pgsh_max_roles,
							1000,
							10,
							INT_MAX / 2,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pg_shield.max_events",
							"Sets the number of recent actions kept in shield.events.",
							"The oldest action is overwritten when the ring is full.",
							&pgsh_max_events,
							1000,
							10,
							INT_MAX / 2,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("pg_shield.log_actions",
							 "Sets which pg_shield actions are written to the server log.",
							 "\"enforced\" logs actions that changed something, \"all\" also those of monitor mode.  "
							 "At most 10 lines per second are written; the others are counted.",
							 &pgsh_log_actions,
							 PGSH_LOG_ENFORCED,
							 guc_log_actions_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("pg_shield.exempt_superuser",
							 "Exempts superusers from every pg_shield limit.",
							 "Their statements are still accounted, so that a DBA can always get in and fix things.",
							 &pgsh_exempt_superuser,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	/*
	 * The admission queue lives in a fixed array of one entry per backend, so
	 * neither setting needs a restart.
	 */
	DefineCustomIntVariable("pg_shield.max_active",
							"Sets the maximum number of governed statements executing at once, instance-wide.",
							"0 means no instance-wide limit.",
							&pgsh_max_active,
							0,
							0,
							MAX_BACKENDS,
							PGC_SIGHUP,
							0,
							NULL, assign_max_active, NULL);

	DefineCustomIntVariable("pg_shield.max_queue",
							"Sets the maximum number of statements waiting in the admission queue, instance-wide.",
							"A statement that finds the queue full is rejected at once (SQLSTATE 53S01).",
							&pgsh_max_queue,
							64,
							0,
							MAX_BACKENDS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pg_shield.queue_timeout",
							"Sets the longest wait for an admission slot, for policies that set no queue_timeout.",
							"0 rejects at once when a limit is full.",
							&pgsh_queue_timeout_ms,
							1000,
							0,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/*
	 * The overload controller (admission_queue.c).  Instance-wide, and only
	 * meaningful with pg_shield.max_active > 0: it watches the wait for an
	 * instance slot.
	 */
	DefineCustomIntVariable("pg_shield.target_queue_delay",
							"Sets the wait for an instance slot above which the instance is overloaded.",
							"The instance is overloaded when every statement that waited for an instance slot during an interval (pg_shield.overload_interval) waited longer than this; low priority statements are then shed.",
							&pgsh_target_queue_delay_ms,
							50,
							1,
							3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pg_shield.overload_interval",
							"Sets the interval over which the overload controller looks at the waits for an instance slot.",
							"A standing delay must last this long before shedding starts, and shedding stops at the end of the first interval in which a statement waited less than pg_shield.target_queue_delay.",
							&pgsh_overload_interval_ms,
							500,
							10,
							3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/*
	 * Circuit breakers of the fingerprints whose query policies set no
	 * breaker_failures.  Instance-wide, like the queue settings.
	 */
	DefineCustomIntVariable("pg_shield.breaker_failures",
							"Sets the consecutive failures of a fingerprint that open its circuit breaker, for fingerprints whose query policies set none.",
							"0 turns these breakers off.  Failures are cancels by a deadline or statement_timeout, and errors of classes 53, 57 and 58.",
							&pgsh_breaker_failures,
							0,
							0,
							INT_MAX,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pg_shield.breaker_cooldown",
							"Sets how long an open circuit breaker rejects statements before it lets one probe through, for query policies that set no breaker_cooldown.",
							NULL,
							&pgsh_breaker_cooldown_ms,
							30000,
							1,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("pg_shield");
}
