/*-------------------------------------------------------------------------
 *
 * admission_rate.c
 *		Rate limits: a token bucket per scope with max_rate.
 *
 * Every scope carries a bucket (ShieldScope.tokens, refilled_at), protected by
 * its spinlock; burst = max(1, rate).  A statement takes a token from the
 * bucket of every matching scope with max_rate, all or none; a refused one
 * is told the exact time until its bucket has a token again (53S04).  A
 * statement that concurrency then turns away gets its tokens back: it did
 * not run.  An evicted scope's bucket would start full again, so the
 * scope table evicts a bucket only once it has refilled (see
 * admission_scope.c).
 *
 * Owns: the scopes' token buckets: taking, refunding, and the 53S04
 *		  rejection.
 * Calls: admission.c (scope names, counting a rejection).
 * Locking: each bucket under its scope's spinlock; see admission.c.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/admission_rate.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>

#include "storage/spin.h"

#include "admission_int.h"
#include "errors.h"

/*
 * Rate limits: a token from the bucket of every scope with max_rate, all
 * or none.  Needs no admission_lock: the scopes are the memo's, pinned
 * against eviction, and each bucket is changed under its scope's spinlock.
 * Returns the index of the first enforced scope that has no token, or -1;
 * *retry_ms is the time until it has one.  Tokens of monitored scopes are
 * taken too (so that monitor mode counts what enforcement would reject)
 * but never refuse: *monitor_index is the last monitored scope that had
 * none, or -1.
 */
static int
take_tokens(ShieldScopeNeed *needs, int n, TimestampTz now, int *retry_ms,
			int *monitor_index)
{
	int			i;
	int			refused = -1;
	bool		taken[PGSH_MAX_SCOPES];

	*monitor_index = -1;
	for (i = 0; i < n; i++)
	{
		volatile ShieldScope *s = needs[i].scope;
		double		rate = needs[i].rate;
		double		burst = Max(1.0, rate);
		bool		ok;

		taken[i] = false;
		if (rate < 0)
			continue;
		SpinLockAcquire(&s->mutex);
		if (s->refilled_at == 0)
			s->tokens = burst;
		else if (now > s->refilled_at)
			s->tokens = Min(burst, s->tokens +
							(double) (now - s->refilled_at) / 1000000.0 * rate);
		else
			s->tokens = Min(burst, s->tokens);
		s->refilled_at = Max(now, s->refilled_at);
		s->rate = rate;
		ok = s->tokens >= 1.0;
		if (ok)
			s->tokens -= 1.0;
		else
		{
			double		wait_ms = rate > 0 ?
				ceil((1.0 - s->tokens) / rate * 1000.0) : 1000.0;

			*retry_ms = (int) Max(1.0, Min(wait_ms, (double) INT_MAX));
		}
		SpinLockRelease(&s->mutex);

		if (ok)
			taken[i] = true;
		else if (needs[i].monitor)
			*monitor_index = i;
		else
		{
			refused = i;
			break;
		}
	}

	/* refused: give back the tokens taken, all or none */
	if (refused >= 0)
	{
		for (i = 0; i < refused; i++)
		{
			volatile ShieldScope *s = needs[i].scope;

			if (!taken[i])
				continue;
			SpinLockAcquire(&s->mutex);
			s->tokens += 1.0;
			SpinLockRelease(&s->mutex);
		}
	}
	return refused;
}

/* Count and record a rate limit refusal; raise it if enforced. */
void
pgsh_adm_report_rate(const ShieldAdmitRequest *req, const ShieldScopeNeed *need,
					 bool enforced, int retry_ms)
{
	char		scope[NAMEDATALEN + 96];
	char		detail[PGSH_EVENT_DETAIL_SIZE];

	pgsh_adm_describe_scope(scope, sizeof(scope), need, true);
	snprintf(detail, sizeof(detail),
			 "%s allows %g statements per second, in bursts of at most %g; none is left.",
			 scope, need->rate, Max(1.0, need->rate));
	pgsh_adm_note_rejection(req, PGSH_REJECT_RATE, enforced, false, 0.0,
							PGSH_ACTION_RATE_LIMIT, detail);
	if (enforced)
		ereport(ERROR,
				(errcode(PGSH_ERRCODE_RATE_LIMIT),
				 errmsg("rate limit exceeded"),
				 errdetail_internal("%s", detail),
				 errhint("Retry after %d ms.", retry_ms)));
}


/*
 * Give back the rate tokens of a statement that concurrency turned away:
 * it did not run.  Its scopes are pinned by the memo.
 */
void
pgsh_adm_refund_tokens(const ShieldScopeNeed *needs, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		volatile ShieldScope *s = needs[i].scope;

		if (needs[i].rate < 0 || needs[i].monitor)
			continue;
		SpinLockAcquire(&s->mutex);
		s->tokens = Min(Max(1.0, needs[i].rate), s->tokens + 1.0);
		SpinLockRelease(&s->mutex);
	}
}


/*
 * Take a token from every rate-limited scope (take_tokens); a refusal is
 * an error.  Kept out of pgsh_admit's fast path, as the queue is.
 */
pg_noinline ShieldRateOutcome
pgsh_adm_take_rate_tokens(const ShieldAdmitRequest *req, ShieldScopeNeed *needs, int n)
{
	ShieldRateOutcome rate = {-1, 0};
	int			refused;

	refused = take_tokens(needs, n, GetCurrentTimestamp(), &rate.retry_ms,
						  &rate.would_index);
	if (refused >= 0)
		pgsh_adm_report_rate(req, &needs[refused], true, rate.retry_ms);
	return rate;
}
