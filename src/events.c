/*-------------------------------------------------------------------------
 *
 * events.c
 *		The ring of recent pg_shield actions (shield.events) and the server
 *		log lines that report them.
 *
 * The ring holds the last pg_shield.max_events actions; an action
 * overwrites the oldest one.  Writers take events_lock exclusively for the
 * copy of one fixed-size entry; readers take it shared to copy the ring
 * out.  Recording allocates nothing and cannot fail, so it may run in a
 * commit callback.
 *
 * pg_shield.log_actions chooses which actions are also logged.  A flood
 * (thousands of rejections a second) must not fill the server log, so at
 * most PGSH_LOG_LINES_PER_SECOND lines are written per second for the whole
 * instance; the lines that were not are counted, and the next line written
 * says how many were suppressed (shield.status shows the running total).
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/events.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "events.h"
#include "guc.h"
#include "shmem.h"

typedef struct ShieldEventRing
{
	uint64		recorded;		/* events ever recorded; next slot is
								 * recorded % pgsh_max_events */
	TimestampTz log_window_start;	/* start of the current second */
	int			log_window_lines;	/* lines written in it */
	uint64		log_suppressed_pending; /* not yet reported in a line */
	uint64		log_suppressed_total;
	ShieldEvent events[FLEXIBLE_ARRAY_MEMBER];
} ShieldEventRing;

static ShieldEventRing *ring = NULL;

static const char *const action_names[] = {
	[PGSH_ACTION_POLICY_SET] = "policy_set",
	[PGSH_ACTION_POLICY_DROPPED] = "policy_dropped",
	[PGSH_ACTION_QUEUE_FULL] = "queue_full",
	[PGSH_ACTION_QUEUE_TIMEOUT] = "queue_timeout",
	[PGSH_ACTION_COST_LIMIT] = "cost_limit",
	[PGSH_ACTION_RATE_LIMIT] = "rate_limit",
	[PGSH_ACTION_DEADLINE] = "deadline",
	[PGSH_ACTION_BREAKER_OPEN] = "breaker_open",
	[PGSH_ACTION_BREAKER_TRIPPED] = "breaker_tripped",
	[PGSH_ACTION_BREAKER_HALF_OPEN] = "breaker_half_open",
	[PGSH_ACTION_BREAKER_CLOSED] = "breaker_closed",
	[PGSH_ACTION_BREAKER_RESET] = "breaker_reset",
	[PGSH_ACTION_SHED] = "shed",
	[PGSH_ACTION_OVERLOADED] = "overloaded",
	[PGSH_ACTION_OVERLOAD_CLEARED] = "overload_cleared",
	[PGSH_ACTION_DEADLOCK] = "deadlock",
};

const char *
pgsh_action_name(int action)
{
	if (action >= 0 && action < (int) lengthof(action_names) &&
		action_names[action] != NULL)
		return action_names[action];
	return "unknown";
}

Size
pgsh_events_shmem_size(void)
{
	return add_size(offsetof(ShieldEventRing, events),
					mul_size(pgsh_max_events, sizeof(ShieldEvent)));
}

/* Caller holds AddinShmemInitLock. */
void
pgsh_events_shmem_init(void)
{
	bool		found;

	ring = ShmemInitStruct("pg_shield events", pgsh_events_shmem_size(),
						   &found);
	if (!found)
		memset(ring, 0, offsetof(ShieldEventRing, events));
}

/*
 * Record one action, and log it if pg_shield.log_actions asks for it and
 * the rate limit allows.  Never raises an error.
 */
void
pgsh_event_record(PgshAction action, bool enforced, Oid userid,
				  uint64 queryid, const char *detail)
{
	ShieldEvent *e;
	TimestampTz now = GetCurrentTimestamp();
	bool		want_log;
	bool		emit = false;
	uint64		suppressed = 0;

	if (ring == NULL || pgsh_state == NULL)
		return;

	want_log = pgsh_log_actions == PGSH_LOG_ALL ||
		(pgsh_log_actions == PGSH_LOG_ENFORCED && enforced);

	LWLockAcquire(pgsh_state->events_lock, LW_EXCLUSIVE);

	e = &ring->events[ring->recorded % pgsh_max_events];
	e->at = now;
	e->pid = MyProcPid;
	e->dbid = MyDatabaseId;
	e->userid = userid;
	e->queryid = queryid;
	e->action = (int16) action;
	e->enforced = enforced;
	{
		/* cut at a character boundary */
		int			len = detail ? strlen(detail) : 0;

		if (len >= PGSH_EVENT_DETAIL_SIZE)
			len = pg_mbcliplen(detail, len, PGSH_EVENT_DETAIL_SIZE - 1);
		if (len > 0)
			memcpy(e->detail, detail, len);
		e->detail[len] = '\0';
	}
	ring->recorded++;

	if (want_log)
	{
		if (now - ring->log_window_start >= USECS_PER_SEC)
		{
			ring->log_window_start = now;
			ring->log_window_lines = 0;
		}
		if (ring->log_window_lines < PGSH_LOG_LINES_PER_SECOND)
		{
			ring->log_window_lines++;
			emit = true;
			suppressed = ring->log_suppressed_pending;
			ring->log_suppressed_pending = 0;
		}
		else
		{
			ring->log_suppressed_pending++;
			ring->log_suppressed_total++;
		}
	}

	LWLockRelease(pgsh_state->events_lock);

	if (emit)
	{
		if (suppressed > 0)
			ereport(LOG,
					(errmsg("pg_shield %s%s: %s", pgsh_action_name(action),
							enforced ? "" : " (monitor)", detail ? detail : ""),
					 errdetail_log("%llu earlier pg_shield log lines were suppressed by the rate limit.",
								   (unsigned long long) suppressed),
					 errhidestmt(true)));
		else
			ereport(LOG,
					(errmsg("pg_shield %s%s: %s", pgsh_action_name(action),
							enforced ? "" : " (monitor)", detail ? detail : ""),
					 errhidestmt(true)));
	}
}

/* Copy the ring, oldest event first, into palloc'd memory. */
ShieldEvent *
pgsh_events_copy(int *n)
{
	ShieldEvent *copy;
	uint64		first;
	uint64		i;

	copy = palloc(mul_size(pgsh_max_events, sizeof(ShieldEvent)));
	LWLockAcquire(pgsh_state->events_lock, LW_SHARED);
	first = ring->recorded > (uint64) pgsh_max_events ?
		ring->recorded - pgsh_max_events : 0;
	*n = 0;
	for (i = first; i < ring->recorded; i++)
		copy[(*n)++] = ring->events[i % pgsh_max_events];
	LWLockRelease(pgsh_state->events_lock);
	return copy;
}

void
pgsh_events_counters(uint64 *recorded, uint64 *log_suppressed)
{
	LWLockAcquire(pgsh_state->events_lock, LW_SHARED);
	*recorded = ring->recorded;
	*log_suppressed = ring->log_suppressed_total;
	LWLockRelease(pgsh_state->events_lock);
}
