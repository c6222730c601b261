/*-------------------------------------------------------------------------
 *
 * views.c
 *		SQL-callable functions behind the shield.* views, shield.reset()
 *		and shield.reset_breaker().
 *
 * Each function copies what it needs out of shared memory, releases the
 * lock, and only then looks up names and builds tuples, so that readers
 * hold locks as briefly as possible.  The statistics are copied here,
 * under the shared stats_lock and the entries' spinlocks; the rest through
 * the copy functions of the modules that own it, under their own locks.
 *
 * Query text and fingerprints of other roles are shown only to superusers,
 * members of pg_read_all_stats and the statement's own role, as
 * pg_stat_statements does.
 *
 * Owns: the functions above; no state.
 * Calls: stats.c, stats_read.c, stats_table.c, admission_activity.c,
 *		  admission_queue.c, admission_scope.c, breaker.c, events.c, policy.c
 *		  and guc.c (names), shmem.c (pgsh_check_loaded, pgsh_copy_room).
 * Locking: stats_lock shared and the entries' spinlocks; the copies of
 *		  the other modules take their own locks.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/views.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "catalog/pg_type_d.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "admission.h"
#include "breaker.h"
#include "events.h"
#include "guc.h"
#include "policy.h"
#include "shmem.h"
#include "stats.h"

/* The SQL entry points; each is described at its definition below. */
PG_FUNCTION_INFO_V1(pg_shield_query_stats);
PG_FUNCTION_INFO_V1(pg_shield_role_stats);
PG_FUNCTION_INFO_V1(pg_shield_status);
PG_FUNCTION_INFO_V1(pg_shield_scope_usage);
PG_FUNCTION_INFO_V1(pg_shield_reset);
PG_FUNCTION_INFO_V1(pg_shield_events);
PG_FUNCTION_INFO_V1(pg_shield_activity);
PG_FUNCTION_INFO_V1(pg_shield_breakers);
PG_FUNCTION_INFO_V1(pg_shield_reset_breaker);

#define QUERY_STATS_COLS	32
#define ROLE_STATS_COLS		31
#define STATUS_COLS			17
#define EVENTS_COLS			10
#define ACTIVITY_COLS		10
#define BREAKERS_COLS		11

/* A name datum (NAMEDATALEN-padded), or NULL for a dropped object. */
static Datum
name_datum(const char *name, bool *isnull)
{
	Name		n;

	*isnull = (name == NULL);
	if (name == NULL)
		return (Datum) 0;
	n = (Name) palloc0(NAMEDATALEN);
	namestrcpy(n, name);
	return NameGetDatum(n);
}

/*
 * Fill the identity columns every per-database/per-role view starts with:
 * dbid, datname, userid, rolname.  Returns the next column number.
 */
static int
put_identity(Datum *values, bool *nulls, Oid dbid, Oid userid)
{
	values[0] = ObjectIdGetDatum(dbid);
	values[1] = name_datum(get_database_name(dbid), &nulls[1]);
	values[2] = ObjectIdGetDatum(userid);
	values[3] = name_datum(GetUserNameFromId(userid, true), &nulls[3]);
	return 4;
}

/*
 * A fingerprint column: NULL when there is none (0) or when the reader may
 * not see it (another role's statement, as in pg_stat_statements).
 */
static int
put_queryid(Datum *values, bool *nulls, uint64 queryid, bool visible)
{
	if (queryid != 0 && visible)
		values[0] = Int64GetDatum((int64) queryid);
	else
		nulls[0] = true;
	return 1;
}

/*
 * The execution time buckets of a set of counters, as the two array columns
 * that end shield.query_stats and shield.role_stats: exec_bucket_le_ms, the
 * upper bounds, and exec_bucket_calls, the completed calls at or below each
 * bound (cumulated, as Prometheus "le" buckets are, so that the last one,
 * infinite, equals calls).  Both come from the same copy as calls and
 * total_exec_ms, so a scrape sees a consistent histogram, count and sum.
 */
static int
put_exec_buckets(Datum *values, const ShieldCounters *c)
{
	Datum		bounds[PGSH_EXEC_BUCKETS];
	Datum		calls[PGSH_EXEC_BUCKETS];
	int64		cumulated = 0;
	int			i;

	for (i = 0; i < PGSH_EXEC_BUCKETS; i++)
	{
		cumulated += c->exec_buckets[i];
		bounds[i] = Float8GetDatum(pgsh_exec_bucket_le_ms[i]);
		calls[i] = Int64GetDatum(cumulated);
	}
	values[0] = PointerGetDatum(construct_array(bounds, PGSH_EXEC_BUCKETS,
												FLOAT8OID, sizeof(float8),
												FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(calls, PGSH_EXEC_BUCKETS,
												INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	return 2;
}

/*
 * Copy every entry of a statistics table, each under its spinlock, while
 * holding stats_lock shared.  The copies are palloc'd in the caller's
 * context, before the lock is taken (see shmem.c).
 */
static void *
copy_entries(HTAB *htab, Size entrysize, Size mutex_offset, long *n)
{
	HASH_SEQ_STATUS hstat;
	char	   *entry;
	char	   *copies;
	long		room;

	*n = 0;
	copies = pgsh_copy_room(pgsh_state->stats_lock, &htab, 1, entrysize,
							&room);
	hash_seq_init(&hstat, htab);
	while ((entry = hash_seq_search(&hstat)) != NULL)
	{
		volatile slock_t *mutex = (slock_t *) (entry + mutex_offset);

		SpinLockAcquire(mutex);
		memcpy(copies + *n * entrysize, entry, entrysize);
		SpinLockRelease(mutex);
		(*n)++;
	}
	LWLockRelease(pgsh_state->stats_lock);
	return copies;
}

/*
 * A mean computed as sum / n can exceed the maximum by a rounding error
 * when every value is the same; never show mean > max.
 */
static inline double
mean_upto(double sum, int64 n, double max)
{
	return Min(sum / n, max);
}

/*
 * The rejected column: statements admission turned away (queue full or
 * timed out, cost, rate, breaker, deadlock).  Shed statements and
 * deadline cancels have columns of their own.
 */
static inline int64
rejected_total(const ShieldCounters *c)
{
	return c->rejected_queue_full + c->rejected_queue_timeout +
		c->rejected_cost + c->rejected_rate + c->rejected_breaker +
		c->rejected_deadlock;
}

/*
 * May the current user see every role's fingerprints and texts?  Members
 * of pg_read_all_stats may, and superusers, who have every role's
 * privileges; others see only their own, as in pg_stat_statements.
 */
static bool
may_see_all_texts(void)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
}

/* A breaker is per (database, fingerprint). */
typedef struct ShieldBreakerStateKey
{
	Oid			dbid;
	uint64		queryid;
} ShieldBreakerStateKey;

typedef struct ShieldBreakerStateEntry
{
	ShieldBreakerStateKey key;
	ShieldBreakerState state;
} ShieldBreakerStateEntry;

/*
 * The breakers that are not closed, for shield.query_stats: a fingerprint
 * without an entry here has a closed breaker.  A small local hash table,
 * built from one copy taken under the breakers' lock.
 */
static HTAB *
breaker_states(void)
{
	HASHCTL		ctl;
	HTAB	   *states;
	ShieldBreakerRow *rows;
	int			n;
	int			i;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(ShieldBreakerStateKey);
	ctl.entrysize = sizeof(ShieldBreakerStateEntry);
	ctl.hcxt = CurrentMemoryContext;
	states = hash_create("pg_shield breaker states", 64, &ctl,
						 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	rows = pgsh_breakers_copy(&n);
	for (i = 0; i < n; i++)
	{
		ShieldBreakerStateKey key;
		ShieldBreakerStateEntry *entry;

		if (rows[i].state == PGSH_BREAKER_CLOSED)
			continue;
		memset(&key, 0, sizeof(key));
		key.dbid = rows[i].dbid;
		key.queryid = rows[i].queryid;
		entry = hash_search(states, &key, HASH_ENTER, NULL);
		entry->state = rows[i].state;
	}
	return states;
}

/* The name of a fingerprint's breaker state, from breaker_states(). */
static const char *
breaker_state_of(HTAB *states, Oid dbid, uint64 queryid)
{
	ShieldBreakerStateKey key;
	ShieldBreakerStateEntry *entry;

	memset(&key, 0, sizeof(key));
	key.dbid = dbid;
	key.queryid = queryid;
	entry = hash_search(states, &key, HASH_FIND, NULL);
	return pgsh_breaker_state_name(entry ? entry->state : PGSH_BREAKER_CLOSED);
}

/*
 * shield.query_stats: one row per (database, role, fingerprint) entry, of
 * every database, with its breaker's state.  Fingerprints and texts of
 * other roles' statements are hidden unless may_see_all_texts.  The
 * percentiles are estimated from the entry's latency histogram.
 */
Datum
pg_shield_query_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ShieldFpEntry *copies;
	long		n;
	long		i;
	Oid			me = GetUserId();
	bool		see_all;
	HTAB	   *states;

	pgsh_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	see_all = may_see_all_texts();

	states = breaker_states();
	copies = copy_entries(pgsh_fp_hash, sizeof(ShieldFpEntry),
						  offsetof(ShieldFpEntry, mutex), &n);

	for (i = 0; i < n; i++)
	{
		ShieldFpEntry *e = &copies[i];
		ShieldCounters *c = &e->counters;
		Datum		values[QUERY_STATS_COLS];
		bool		nulls[QUERY_STATS_COLS];
		int			col;
		bool		visible = see_all || e->key.userid == me;

		memset(values, 0, sizeof(values));
		memset(nulls, 0, sizeof(nulls));

		col = put_identity(values, nulls, e->key.dbid, e->key.userid);

		if (visible)
		{
			values[col++] = Int64GetDatum((int64) e->key.queryid);
			if (e->query_len > 0)
			{
				char	   *text = pg_any_to_server(e->query, e->query_len,
													e->encoding);

				values[col++] = CStringGetTextDatum(text);
			}
			else
				nulls[col++] = true;
		}
		else
		{
			nulls[col++] = true;
			values[col++] = CStringGetTextDatum("<insufficient privilege>");
		}

		values[col++] = Int64GetDatum(c->calls);
		values[col++] = Int64GetDatum(c->rows);
		values[col++] = Int64GetDatum(c->errors);
		values[col++] = Float8GetDatum(c->total_exec_ms);
		if (c->calls > 0)
		{
			values[col++] = Float8GetDatum(mean_upto(c->total_exec_ms, c->calls,
													 c->max_exec_ms));
			values[col++] = Float8GetDatum(c->min_exec_ms);
			values[col++] = Float8GetDatum(c->max_exec_ms);
			values[col++] = Float8GetDatum(pgsh_hist_percentile(e->hist, c->calls, 0.50,
																c->min_exec_ms, c->max_exec_ms));
			values[col++] = Float8GetDatum(pgsh_hist_percentile(e->hist, c->calls, 0.95,
																c->min_exec_ms, c->max_exec_ms));
			values[col++] = Float8GetDatum(pgsh_hist_percentile(e->hist, c->calls, 0.99,
																c->min_exec_ms, c->max_exec_ms));
		}
		else
		{
			int			k;

			for (k = 0; k < 6; k++)
				nulls[col++] = true;
		}
		values[col++] = Int64GetDatum(c->plans);
		values[col++] = Float8GetDatum(c->total_plan_ms);
		if (c->costed > 0)
		{
			values[col++] = Float8GetDatum(mean_upto(c->sum_cost, c->costed,
													 c->max_cost));
			values[col++] = Float8GetDatum(c->max_cost);
		}
		else
		{
			nulls[col++] = true;
			nulls[col++] = true;
		}
		values[col++] = Int64GetDatum(c->admitted);
		values[col++] = Int64GetDatum(c->queued);
		values[col++] = Float8GetDatum(c->queue_ms);
		values[col++] = Int64GetDatum(rejected_total(c));
		values[col++] = Int64GetDatum(c->shed);
		values[col++] = Int64GetDatum(c->deadline_cancels);
		values[col++] = Int64GetDatum(c->would_reject);
		values[col++] = Int64GetDatum(c->would_cancel);
		values[col++] = CStringGetTextDatum(breaker_state_of(states,
															 e->key.dbid,
															 e->key.queryid));
		if (c->last_exec != 0)
			values[col++] = TimestampTzGetDatum(c->last_exec);
		else
			nulls[col++] = true;
		col += put_exec_buckets(values + col, c);

		Assert(col == QUERY_STATS_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
	return (Datum) 0;
}

/*
 * shield.role_stats: one row per (database, role), with the totals of its
 * entry and its fingerprints' (pgsh_stats_roles), and its statements now
 * running and waiting.  No fingerprint or text: every role sees every row.
 */
Datum
pg_shield_role_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ShieldRoleEntry *copies;
	ShieldActivity *activity;
	int			nactivity;
	long		n;
	long		i;

	pgsh_check_loaded();
	InitMaterializedSRF(fcinfo, 0);

	copies = pgsh_stats_roles(&n);
	activity = pgsh_activity_copy(&nactivity);

	for (i = 0; i < n; i++)
	{
		ShieldRoleEntry *e = &copies[i];
		ShieldCounters *c = &e->counters;
		Datum		values[ROLE_STATS_COLS];
		bool		nulls[ROLE_STATS_COLS];
		int			col;

		memset(values, 0, sizeof(values));
		memset(nulls, 0, sizeof(nulls));

		col = put_identity(values, nulls, e->key.dbid, e->key.userid);

		values[col++] = Int64GetDatum(c->calls);
		values[col++] = Int64GetDatum(c->errors);
		values[col++] = Int64GetDatum(c->rows);
		values[col++] = Int64GetDatum(c->admitted);
		values[col++] = Int64GetDatum(c->queued);
		values[col++] = Float8GetDatum(c->queue_ms);
		values[col++] = Int64GetDatum(rejected_total(c));
		values[col++] = Int64GetDatum(c->rejected_queue_full);
		values[col++] = Int64GetDatum(c->rejected_queue_timeout);
		values[col++] = Int64GetDatum(c->rejected_cost);
		values[col++] = Int64GetDatum(c->rejected_rate);
		values[col++] = Int64GetDatum(c->rejected_breaker);
		values[col++] = Int64GetDatum(c->rejected_deadlock);
		values[col++] = Int64GetDatum(c->shed);
		values[col++] = Int64GetDatum(c->deadline_cancels);
		values[col++] = Float8GetDatum(c->total_exec_ms);
		if (c->calls > 0)
		{
			values[col++] = Float8GetDatum(mean_upto(c->total_exec_ms, c->calls,
													 c->max_exec_ms));
			values[col++] = Float8GetDatum(c->max_exec_ms);
		}
		else
		{
			nulls[col++] = true;
			nulls[col++] = true;
		}
		{
			int32		active = 0;
			int32		waiting = 0;
			int			k;

			for (k = 0; k < nactivity; k++)
			{
				if (activity[k].dbid != e->key.dbid ||
					activity[k].userid != e->key.userid)
					continue;
				if (activity[k].queued)
					waiting++;
				else
					active++;
			}
			values[col++] = Int32GetDatum(active);
			values[col++] = Int32GetDatum(waiting);
			/* a statement still running is not in peak_active yet */
			values[col++] = Int32GetDatum(Max(e->peak_active, active));
		}
		values[col++] = Int64GetDatum(c->would_reject);
		values[col++] = Int64GetDatum(c->would_queue);
		values[col++] = Int64GetDatum(c->would_cancel);
		if (c->last_exec != 0)
			values[col++] = TimestampTzGetDatum(c->last_exec);
		else
			nulls[col++] = true;
		col += put_exec_buckets(values + col, c);

		Assert(col == ROLE_STATS_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
	return (Datum) 0;
}

/*
 * shield.status: one row of instance-wide state: the mode, what runs and
 * waits, the overload controller, how full the statistics tables are, and
 * the event counters.  Each part is copied under its own module's lock,
 * so the row is not one snapshot.
 */
Datum
pg_shield_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[STATUS_COLS];
	bool		nulls[STATUS_COLS];
	int			col = 0;
	int64		fingerprints;
	int64		roles;
	uint64		fp_evictions;
	uint64		role_evictions;
	TimestampTz stats_reset;
	uint64		events;
	uint64		log_suppressed;
	uint32		active;
	uint32		queued;
	TimestampTz oldest_queued;
	ShieldShedding shedding;
	double		standing_delay_ms;

	pgsh_check_loaded();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	LWLockAcquire(pgsh_state->stats_lock, LW_SHARED);
	fingerprints = hash_get_num_entries(pgsh_fp_hash);
	roles = hash_get_num_entries(pgsh_role_hash);
	fp_evictions = pgsh_state->fp_evictions;
	role_evictions = pgsh_state->role_evictions;
	stats_reset = pgsh_state->stats_reset;
	LWLockRelease(pgsh_state->stats_lock);

	memset(nulls, 0, sizeof(nulls));
	values[col++] = CStringGetTextDatum(pgsh_mode_name(pgsh_mode));
	{
		int			n;
		int			i;
		ShieldActivity *activity = pgsh_activity_copy(&n);

		active = queued = 0;
		oldest_queued = 0;
		for (i = 0; i < n; i++)
		{
			if (!activity[i].queued)
				active++;
			else
			{
				queued++;
				if (oldest_queued == 0 || activity[i].since < oldest_queued)
					oldest_queued = activity[i].since;
			}
		}
	}
	values[col++] = Int32GetDatum(pgsh_max_active);
	values[col++] = Int32GetDatum((int32) active);
	values[col++] = Int32GetDatum((int32) queued);
	shedding = pgsh_admission_overload(&standing_delay_ms);
	values[col++] = BoolGetDatum(shedding != PGSH_SHED_NONE);	/* overloaded */
	values[col++] = CStringGetTextDatum(pgsh_shedding_name(shedding));
	/* the current queue delay: how long the oldest waiter has waited */
	values[col++] = Float8GetDatum(oldest_queued == 0 ? 0.0 :
								   Max(0.0, (double) (GetCurrentTimestamp() - oldest_queued) / 1000.0));
	values[col++] = Float8GetDatum(standing_delay_ms);
	values[col++] = Int64GetDatum(fingerprints);
	values[col++] = Int32GetDatum(pgsh_max_fingerprints);
	values[col++] = Int64GetDatum((int64) fp_evictions);
	values[col++] = Int64GetDatum(roles);
	values[col++] = Int32GetDatum(pgsh_max_roles);
	values[col++] = Int64GetDatum((int64) role_evictions);
	values[col++] = TimestampTzGetDatum(stats_reset);
	pgsh_events_counters(&events, &log_suppressed);
	values[col++] = Int64GetDatum((int64) events);
	values[col++] = Int64GetDatum((int64) log_suppressed);
	Assert(col == STATUS_COLS);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * shield.reset(): forget the statistics of every database at once, and
 * return the new reset time.  Shared memory is not transactional: a
 * rollback does not bring them back.  EXECUTE is revoked from PUBLIC.
 */
Datum
pg_shield_reset(PG_FUNCTION_ARGS)
{
	pgsh_check_loaded();
	PG_RETURN_TIMESTAMPTZ(pgsh_stats_reset());
}

/*
 * shield.events: the ring of recent actions, oldest first.  Fingerprints of
 * other roles' statements are hidden as in shield.query_stats, in the
 * queryid column and in the detail, which names them.
 */
Datum
pg_shield_events(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ShieldEvent *events;
	int			n;
	int			i;
	Oid			me = GetUserId();
	bool		see_all;

	pgsh_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	see_all = may_see_all_texts();
	events = pgsh_events_copy(&n);

	for (i = 0; i < n; i++)
	{
		ShieldEvent *e = &events[i];
		Datum		values[EVENTS_COLS];
		bool		nulls[EVENTS_COLS];
		int			col = 0;
		bool		visible;

		memset(nulls, 0, sizeof(nulls));
		values[col++] = TimestampTzGetDatum(e->at);
		values[col++] = Int32GetDatum(e->pid);
		col += put_identity(values + col, nulls + col, e->dbid, e->userid);
		visible = see_all || e->userid == me;
		col += put_queryid(values + col, nulls + col, e->queryid, visible);
		values[col++] = CStringGetTextDatum(pgsh_action_name(e->action));
		values[col++] = BoolGetDatum(e->enforced);
		/* the detail names the fingerprint too: hide it the same way */
		values[col++] = CStringGetTextDatum(e->queryid == 0 || visible ?
											e->detail :
											"<insufficient privilege>");
		Assert(col == EVENTS_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
	return (Datum) 0;
}

/*
 * shield.activity: one row per governed statement now admitted or queued.
 * Fingerprints of other roles' statements are hidden as in
 * shield.query_stats.
 */
Datum
pg_shield_activity(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ShieldActivity *activity;
	int			n;
	int			i;
	Oid			me = GetUserId();
	bool		see_all;

	pgsh_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	see_all = may_see_all_texts();
	activity = pgsh_activity_copy(&n);

	for (i = 0; i < n; i++)
	{
		ShieldActivity *a = &activity[i];
		Datum		values[ACTIVITY_COLS];
		bool		nulls[ACTIVITY_COLS];
		int			col = 0;

		memset(nulls, 0, sizeof(nulls));
		values[col++] = Int32GetDatum(a->pid);
		col += put_identity(values + col, nulls + col, a->dbid, a->userid);
		col += put_queryid(values + col, nulls + col, a->queryid,
						   see_all || a->userid == me);
		values[col++] = CStringGetTextDatum(a->queued ? "queued" : "running");
		values[col++] = CStringGetTextDatum(pgsh_priority_name(a->priority));
		values[col++] = TimestampTzGetDatum(a->since);
		if (a->deadline_at != 0)
			values[col++] = TimestampTzGetDatum(a->deadline_at);
		else
			nulls[col++] = true;
		Assert(col == ACTIVITY_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
	return (Datum) 0;
}

/*
 * shield.breakers: every circuit breaker with something to remember (a
 * failure count, or open or half open), in every database.  Fingerprints
 * are shown to the roles that may see every statement's, as in
 * shield.query_stats: a breaker is not any one role's.
 */
Datum
pg_shield_breakers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ShieldBreakerRow *rows;
	int			n;
	int			i;
	bool		see_all;

	pgsh_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	see_all = may_see_all_texts();
	rows = pgsh_breakers_copy(&n);

	for (i = 0; i < n; i++)
	{
		ShieldBreakerRow *r = &rows[i];
		Datum		values[BREAKERS_COLS];
		bool		nulls[BREAKERS_COLS];
		int			col = 0;

		memset(nulls, 0, sizeof(nulls));
		values[col++] = ObjectIdGetDatum(r->dbid);
		values[col] = name_datum(get_database_name(r->dbid), &nulls[col]);
		col++;
		col += put_queryid(values + col, nulls + col, r->queryid, see_all);
		values[col++] = CStringGetTextDatum(pgsh_breaker_state_name(r->state));
		values[col++] = Int32GetDatum(r->failures);
		if (r->threshold > 0)
			values[col++] = Int32GetDatum(r->threshold);
		else
			nulls[col++] = true;
		if (r->opened_at != 0)
		{
			values[col++] = TimestampTzGetDatum(r->opened_at);
			values[col++] = Float8GetDatum((double) r->cooldown_us / 1000.0);
			values[col++] = TimestampTzGetDatum(r->opened_at + r->cooldown_us);
		}
		else
		{
			nulls[col++] = true;
			nulls[col++] = true;
			nulls[col++] = true;
		}
		if (r->probe_pid != 0)
			values[col++] = Int32GetDatum(r->probe_pid);
		else
			nulls[col++] = true;
		values[col++] = Int64GetDatum(r->trips);
		Assert(col == BREAKERS_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
	return (Datum) 0;
}

/*
 * shield.reset_breaker(queryid): close the breaker of a fingerprint of
 * this database by hand, forgetting its failures.  Returns whether it had
 * anything to forget.
 */
Datum
pg_shield_reset_breaker(PG_FUNCTION_ARGS)
{
	pgsh_check_loaded();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"queryid\" must not be null")));
	PG_RETURN_BOOL(pgsh_breaker_reset(MyDatabaseId,
									  (uint64) PG_GETARG_INT64(0)));
}

#define SCOPE_USAGE_COLS 5

/*
 * shield.scope_usage(), behind shield.policy_usage: the admission scopes
 * of this database (a role's, a fingerprint's, a fingerprint's for a
 * role) with their running and waiting statements and rate tokens.  The
 * view joins them to the policies that limit them.  The scopes of other
 * roles' fingerprints, and of fingerprints for every role, are left out
 * for the readers shield.query_stats hides fingerprints from.
 */
Datum
pg_shield_scope_usage(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ShieldScopeUsage *usage;
	int			n;
	int			i;
	Oid			me = GetUserId();
	bool		see_all;

	pgsh_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	see_all = may_see_all_texts();
	usage = pgsh_scopes_usage(&n);

	for (i = 0; i < n; i++)
	{
		ShieldScopeUsage *u = &usage[i];
		Datum		values[SCOPE_USAGE_COLS];
		bool		nulls[SCOPE_USAGE_COLS];
		int			col = 0;

		memset(nulls, 0, sizeof(nulls));
		if (u->queryid != 0 && !see_all && u->userid != me)
			continue;
		if (OidIsValid(u->userid))
			values[col++] = ObjectIdGetDatum(u->userid);
		else
			nulls[col++] = true;
		if (u->queryid != 0)
			values[col++] = Int64GetDatum((int64) u->queryid);
		else
			nulls[col++] = true;
		values[col++] = Int32GetDatum(u->running);
		values[col++] = Int32GetDatum(u->waiting);
		if (u->tokens >= 0)
			values[col++] = Float8GetDatum(u->tokens);
		else
			nulls[col++] = true;
		Assert(col == SCOPE_USAGE_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
	return (Datum) 0;
}
