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
 * most PGSH_LOG_LINES_PER_SECOND actions are logged per second for the
 * whole instance; the others are counted, and the next line written says
 * how many were suppressed (shield.status shows the running total).
 *
 * A rejection is an ERROR that PostgreSQL reports to the client in full
 * and, by default, writes to the server log too (message, DETAIL, HINT and
 * STATEMENT), whatever pg_shield.log_actions says: that report is the
 * action's log line.  So an enforced action that an error follows (see
 * action_error_code) writes no line of its own; recording it decides
 * whether the error's report may reach the server log, under the same
 * limit, and the emit_log_hook (pgsh_events_filter_report) keeps a report
 * that may not out of it.  Suppressed reports are counted by SQLSTATE,
 * database and role, exactly, and summarized in one line before the next
 * report that is logged.
 *
 * Owns: the ring of recent actions in shared memory, its log rate
 *		  limiter, and the filter of log reports (pgsh_events_filter_report).
 * Calls: nothing of pg_shield's.
 * Locking: events_lock; see shmem.c.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/events.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"

#include "errors.h"
#include "events.h"
#include "guc.h"
#include "shmem.h"

/* Rejection reports kept out of the server log, by SQLSTATE and role. */
typedef struct ShieldSuppressedReports
{
	int			sqlerrcode;
	Oid			dbid;
	Oid			userid;
	uint64		count;
} ShieldSuppressedReports;

#define PGSH_SUPPRESSED_KEYS 16

typedef struct ShieldEventRing
{
	uint64		recorded;		/* events ever recorded; next slot is recorded
								 * % pgsh_max_events */
	TimestampTz log_window_start;	/* start of the current second */
	int			log_window_lines;	/* lines written in it */
	uint64		log_suppressed_pending; /* action lines not yet reported in a
										 * line */
	uint64		log_suppressed_total;	/* action lines and reports */

	/* rejection reports suppressed since the last summary */
	TimestampTz reports_since;	/* first of them */
	int			nreports;		/* keys used in reports[] */
	uint64		reports_other;	/* those of keys beyond reports[] */
	ShieldSuppressedReports reports[PGSH_SUPPRESSED_KEYS];

	ShieldEvent events[FLEXIBLE_ARRAY_MEMBER];
} ShieldEventRing;

static ShieldEventRing *events_ring = NULL;

/*
 * The decision taken for the report of the error that follows the action
 * this backend recorded last (see pgsh_events_filter_report).
 */
static struct
{
	bool		pending;
	bool		suppress;
	int			sqlerrcode;		/* of the error that follows */
}			events_next_report;

static const char *const events_action_names[] = {
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

/*
 * The name of an action, for shield.events and log lines.  Takes an int,
 * since events store it as int16; an unknown one is "unknown", not a crash.
 */
const char *
pgsh_action_name(int action)
{
	if (action >= 0 && action < (int) lengthof(events_action_names) &&
		events_action_names[action] != NULL)
		return events_action_names[action];
	return "unknown";
}

/*
 * Shared memory of the ring: its header and pg_shield.max_events entries.
 */
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

	events_ring = ShmemInitStruct("pg_shield events", pgsh_events_shmem_size(),
								  &found);
	if (!found)
		memset(events_ring, 0, offsetof(ShieldEventRing, events));
}

/*
 * The SQLSTATE of the error that follows an enforced action, 0 if none:
 * the rejections, and the cancel of a deadline.
 */
static int
action_error_code(ShieldAction action)
{
	switch (action)
	{
		case PGSH_ACTION_QUEUE_FULL:
			return PGSH_ERRCODE_CONCURRENCY_LIMIT;
		case PGSH_ACTION_QUEUE_TIMEOUT:
			return PGSH_ERRCODE_QUEUE_TIMEOUT;
		case PGSH_ACTION_SHED:
			return PGSH_ERRCODE_SHED;
		case PGSH_ACTION_RATE_LIMIT:
			return PGSH_ERRCODE_RATE_LIMIT;
		case PGSH_ACTION_BREAKER_OPEN:
			return PGSH_ERRCODE_BREAKER_OPEN;
		case PGSH_ACTION_COST_LIMIT:
			return PGSH_ERRCODE_COST_LIMIT;
		case PGSH_ACTION_DEADLINE:
			return PGSH_ERRCODE_DEADLINE;
		case PGSH_ACTION_DEADLOCK:
			return PGSH_ERRCODE_DEADLOCK;
		default:
			return 0;
	}
}

/* Count a suppressed rejection report.  Caller holds events_lock. */
static void
count_suppressed_report_locked(int sqlerrcode, Oid userid, TimestampTz now)
{
	int			i;

	if (events_ring->nreports == 0 && events_ring->reports_other == 0)
		events_ring->reports_since = now;
	events_ring->log_suppressed_total++;
	for (i = 0; i < events_ring->nreports; i++)
	{
		ShieldSuppressedReports *r = &events_ring->reports[i];

		if (r->sqlerrcode == sqlerrcode && r->dbid == MyDatabaseId &&
			r->userid == userid)
		{
			r->count++;
			return;
		}
	}
	if (events_ring->nreports < PGSH_SUPPRESSED_KEYS)
	{
		ShieldSuppressedReports *r = &events_ring->reports[events_ring->nreports++];

		r->sqlerrcode = sqlerrcode;
		r->dbid = MyDatabaseId;
		r->userid = userid;
		r->count = 1;
		return;
	}
	events_ring->reports_other++;
}

/*
 * Write the summary of the suppressed rejection reports taken out of the
 * ring: "pg_shield kept 9990 reports of rejected statements out of the log
 * since ...", then one "53S04: 9990 of role "app" in database "shop""
 * part per key.  Roles and databases are named if they still exist.
 */
static void
log_reports_summary(const ShieldSuppressedReports *reports, int n, uint64 other,
					TimestampTz since)
{
	StringInfoData buf;
	uint64		total = other;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < n; i++)
	{
		const char *role = GetUserNameFromId(reports[i].userid, true);
		const char *db = get_database_name(reports[i].dbid);

		total += reports[i].count;
		appendStringInfo(&buf, "%s%s: %llu of role \"%s\" in database \"%s\"",
						 i > 0 ? "; " : "",
						 unpack_sql_state(reports[i].sqlerrcode),
						 (unsigned long long) reports[i].count,
						 role ? role : "?", db ? db : "?");
	}
	if (other > 0)
		appendStringInfo(&buf, "%s%llu of other roles", n > 0 ? "; " : "",
						 (unsigned long long) other);
	ereport(LOG,
			(errmsg("pg_shield kept %llu reports of rejected statements out of the server log since %s",
					(unsigned long long) total, timestamptz_to_str(since)),
			 errdetail_log("%s.", buf.data),
			 errhidestmt(true)));
	pfree(buf.data);
}

/*
 * Record one action, and log it if pg_shield.log_actions asks for it and
 * the rate limit allows; for an action an error follows, decide instead
 * whether the error's report may reach the server log.  Never raises an
 * error, unless it writes a line (which only an ERROR-free path does:
 * callbacks record actions an error does not follow, with log lines that
 * cannot fail but for out of memory).
 */
void
pgsh_event_record(ShieldAction action, bool enforced, Oid userid,
				  uint64 queryid, const char *detail)
{
	ShieldEvent *e;
	TimestampTz now = GetCurrentTimestamp();
	int			error_code = enforced ? action_error_code(action) : 0;
	bool		want_log;
	bool		emit = false;
	uint64		suppressed = 0;
	ShieldSuppressedReports reports[PGSH_SUPPRESSED_KEYS];
	int			nreports = 0;
	uint64		reports_other = 0;
	TimestampTz reports_since = 0;

	if (events_ring == NULL || pgsh_state == NULL)
		return;

	want_log = pgsh_log_actions == PGSH_LOG_ALL ||
		(pgsh_log_actions == PGSH_LOG_ENFORCED && enforced);

	LWLockAcquire(pgsh_state->events_lock, LW_EXCLUSIVE);

	e = &events_ring->events[events_ring->recorded % pgsh_max_events];
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
	events_ring->recorded++;

	if (want_log)
	{
		if (now - events_ring->log_window_start >= USECS_PER_SEC)
		{
			events_ring->log_window_start = now;
			events_ring->log_window_lines = 0;
		}
		if (events_ring->log_window_lines < PGSH_LOG_LINES_PER_SECOND)
		{
			events_ring->log_window_lines++;
			emit = true;
			/* reported by this action's own line, which a report has not */
			if (error_code == 0)
			{
				suppressed = events_ring->log_suppressed_pending;
				events_ring->log_suppressed_pending = 0;
			}

			/*
			 * The first rejection reported in a second summarizes the reports
			 * kept out before it (names are looked up in its statement's
			 * transaction: never in a commit callback).
			 */
			if (error_code != 0 &&
				(events_ring->nreports > 0 || events_ring->reports_other > 0))
			{
				nreports = events_ring->nreports;
				memcpy(reports, events_ring->reports,
					   nreports * sizeof(ShieldSuppressedReports));
				reports_other = events_ring->reports_other;
				reports_since = events_ring->reports_since;
				events_ring->nreports = 0;
				events_ring->reports_other = 0;
			}
		}
		else if (error_code != 0)
			count_suppressed_report_locked(error_code, userid, now);
		else
		{
			events_ring->log_suppressed_pending++;
			events_ring->log_suppressed_total++;
		}
	}

	LWLockRelease(pgsh_state->events_lock);

	/* the report of the error that follows is the action's log line */
	if (error_code != 0)
	{
		events_next_report.pending = true;
		events_next_report.suppress = !emit;
		events_next_report.sqlerrcode = error_code;
	}

	if (nreports > 0 || reports_other > 0)
		log_reports_summary(reports, nreports, reports_other, reports_since);

	if (emit && error_code == 0)
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

/*
 * emit_log_hook: keep the report of a rejection that the rate limit
 * suppressed (see pgsh_event_record) out of the server log; the client
 * gets it in full.  The first ERROR after the action is the rejection,
 * which is raised right after it is recorded: any ERROR consumes the
 * decision, which applies only if it has the rejection's SQLSTATE, so
 * that it never applies to another error.
 */
void
pgsh_events_filter_report(ErrorData *edata)
{
	if (!events_next_report.pending || edata->elevel < ERROR)
		return;
	events_next_report.pending = false;
	/* another error (a cancel) took the rejection's place: not ours */
	if (events_next_report.suppress &&
		edata->sqlerrcode == events_next_report.sqlerrcode)
		edata->output_to_server = false;
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
	first = events_ring->recorded > (uint64) pgsh_max_events ?
		events_ring->recorded - pgsh_max_events : 0;
	*n = 0;
	for (i = first; i < events_ring->recorded; i++)
		copy[(*n)++] = events_ring->events[i % pgsh_max_events];
	LWLockRelease(pgsh_state->events_lock);
	return copy;
}

/*
 * The ring's running totals, for shield.status: events ever recorded, and
 * log lines and reports suppressed by the rate limit.
 */
void
pgsh_events_counters(uint64 *recorded, uint64 *log_suppressed)
{
	LWLockAcquire(pgsh_state->events_lock, LW_SHARED);
	*recorded = events_ring->recorded;
	*log_suppressed = events_ring->log_suppressed_total;
	LWLockRelease(pgsh_state->events_lock);
}
