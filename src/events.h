/*-------------------------------------------------------------------------
 *
 * events.h
 *		The most recent pg_shield actions, in a bounded ring in shared
 *		memory, and their rate-limited server log lines.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/events.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_EVENTS_H
#define PGSH_EVENTS_H

#include "utils/elog.h"
#include "utils/timestamp.h"

#include "compat.h"

PGSH_BEGIN_INTERNAL

/* Bytes of detail kept per event, terminator included. */
#define PGSH_EVENT_DETAIL_SIZE 256

/* Server log lines pg_shield writes per second at most, instance-wide. */
#define PGSH_LOG_LINES_PER_SECOND 10

/*
 * What happened.  Enforcement (admission, deadlines, breakers, shedding)
 * adds its actions here; the names are part of the views' documented interface.
 */
typedef enum ShieldAction
{
	PGSH_ACTION_POLICY_SET,
	PGSH_ACTION_POLICY_DROPPED,
	PGSH_ACTION_QUEUE_FULL,
	PGSH_ACTION_QUEUE_TIMEOUT,
	PGSH_ACTION_COST_LIMIT,
	PGSH_ACTION_RATE_LIMIT,
	PGSH_ACTION_DEADLINE,
	PGSH_ACTION_BREAKER_OPEN,	/* a statement rejected by an open breaker */
	PGSH_ACTION_BREAKER_TRIPPED,	/* a breaker opened */
	PGSH_ACTION_BREAKER_HALF_OPEN,	/* its cooldown is over: a probe runs */
	PGSH_ACTION_BREAKER_CLOSED, /* its probe succeeded */
	PGSH_ACTION_BREAKER_RESET,	/* shield.reset_breaker() closed it */
	PGSH_ACTION_SHED,			/* a statement shed under overload */
	PGSH_ACTION_OVERLOADED,		/* shedding started, or reached normal */
	PGSH_ACTION_OVERLOAD_CLEARED,	/* shedding stopped */
	PGSH_ACTION_DEADLOCK		/* a queued statement waited for itself */
} ShieldAction;

typedef enum ShieldLogActions
{
	PGSH_LOG_NONE,
	PGSH_LOG_ENFORCED,
	PGSH_LOG_ALL
} ShieldLogActions;

typedef struct ShieldEvent
{
	TimestampTz at;
	int32		pid;
	Oid			dbid;
	Oid			userid;
	uint64		queryid;		/* 0: none */
	int16		action;			/* ShieldAction */
	bool		enforced;		/* false: monitor mode, nothing was changed */
	char		detail[PGSH_EVENT_DETAIL_SIZE];
} ShieldEvent;

extern Size pgsh_events_shmem_size(void);
extern void pgsh_events_shmem_init(void);

extern void pgsh_event_record(ShieldAction action, bool enforced, Oid userid,
							  uint64 queryid, const char *detail);
extern void pgsh_events_filter_report(ErrorData *edata);
extern const char *pgsh_action_name(int action);

/* For the views: copy out the ring, oldest first; counters for status. */
extern ShieldEvent *pgsh_events_copy(int *n);
extern void pgsh_events_counters(uint64 *recorded, uint64 *log_suppressed);

PGSH_END_INTERNAL

#endif							/* PGSH_EVENTS_H */
