/*-------------------------------------------------------------------------
 *
 * admission_hint.c
 *		The retry hints ("Retry after N ms.") of the errors that turn
 *		statements away for a full scope (53S01, 53S02) or under
 *		overload (53S03).
 *
 * A client told "Retry after N ms." should find room when it retries,
 * without all clients retrying in step.  For a full scope,
 * the hint is when its slots are expected to free: each running statement
 * of the scope is expected to run for its shape's mean execution time
 * (shield.query_stats), or, past that or unknown, as long again as it
 * has run so far; the hint adds the waiters ahead.  Shed statements are
 * told when the controller next looks, plus the standing wait.  Every
 * hint gets up to half again as much random jitter (never less than the
 * estimate: an early retry only fails again) and is at least
 * PGSH_RETRY_FLOOR_MS.  The hints are computed after admission_lock is
 * released: they read the activity rows and the statistics.
 *
 * Owns: the retry hints (pgsh_hint_scope_ms, pgsh_hint_shed_ms); no
 *		  state.
 * Calls: admission_activity.c (the activity rows), admission.c
 *		  (pgsh_adm_full_scope), stats_read.c (pgsh_stats_typical_ms).
 * Locking: none of its own (see admission.c); the activity rows and a
 *		  scope's waiter count are read without a lock (a hint may be a
 *		  little off).
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/admission_hint.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/pg_prng.h"

#include "admission_int.h"
#include "stats.h"

/* Retry hints: the least, and the most. */
#define PGSH_RETRY_FLOOR_MS 20
#define PGSH_RETRY_CEILING_MS 60000
/* The running statements of a scope a hint looks at, at most. */
#define PGSH_RETRY_HINT_ROWS 64

/* "Retry after N ms.": at least the estimate, up to half again as much. */
static int
hint_jitter_ms(double estimate_ms)
{
	double		ms = estimate_ms * (1.0 + 0.5 * pg_prng_double(&pg_global_prng_state));

	return (int) Max(PGSH_RETRY_FLOOR_MS, Min(ms, PGSH_RETRY_CEILING_MS));
}

/* The hint of a shed statement: when the controller looks next. */
int
pgsh_hint_shed_ms(TimestampTz now)
{
	int64		until_next = (int64) pg_atomic_read_u64(&pgsh_adm->interval_end) - now;

	return hint_jitter_ms((double) Max(until_next, 0) / 1000.0 +
						  pgsh_adm->standing_delay_ms);
}

/*
 * qsort comparator of doubles, in ascending order.
 */
static int
compare_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

/*
 * When a statement turned away by a full scope should retry: when the
 * scope's slots are expected to free, for it and the waiters ahead of it.
 * Runs without admission_lock (it reads the statistics).
 */
int
pgsh_hint_scope_ms(const ShieldScopeNeed *needs, int n)
{
	uint32		active;
	int			full = pgsh_adm_full_scope(needs, n, &active);
	TimestampTz now = GetCurrentTimestamp();
	ShieldActivity *rows;
	double	   *remaining;
	double		typical_sum = 0.0;
	int			nrows;
	int			count = 0;
	int			ahead;
	double		estimate;
	int			i;

	if (full < 0)
		return hint_jitter_ms(0.0); /* it has room again */

	rows = pgsh_activity_copy(&nrows);
	remaining = palloc(Max(nrows, 1) * sizeof(double));
	for (i = 0; i < nrows; i++)
	{
		double		age_ms;
		double		typical_ms;

		if (!pgsh_activity_in_scope(&rows[i], &needs[full].key))
			continue;
		if (count >= PGSH_RETRY_HINT_ROWS)
			break;				/* enough to estimate, and fast */
		age_ms = Max((double) (now - rows[i].since) / 1000.0, 0.0);
		typical_ms = pgsh_stats_typical_ms(rows[i].dbid, rows[i].userid,
										   rows[i].queryid);

		/*
		 * A statement runs for its shape's mean time; one past it, or of a
		 * shape never seen to complete, as long again as it has run.
		 */
		remaining[count] = Max(typical_ms, 2.0 * age_ms) - age_ms;
		typical_sum += Max(typical_ms, age_ms);
		count++;
	}

	/*
	 * The waiters ahead take the first slots to free; past the running
	 * statements, each of them takes about a typical run of a slot.
	 */
	ahead = ((volatile ShieldScope *) needs[full].scope)->waiters;
	if (count == 0)
		estimate = 0.0;
	else
	{
		qsort(remaining, count, sizeof(double), compare_double);
		if (ahead < count)
			estimate = remaining[ahead];
		else
			estimate = remaining[count - 1] +
				(double) (ahead - count + 1) * (typical_sum / count) / count;
	}
	pfree(remaining);
	pfree(rows);
	return hint_jitter_ms(estimate);
}
