/*-------------------------------------------------------------------------
 *
 * statement_planning.c
 *		The planning of the top-level statement: which planning is its,
 *		what fingerprint and text its unit will have, its planning time,
 *		and a planning failure.
 *
 * The planner hook asks at every planning whether it is the top-level
 * statement's, and calls the rest for that one only; the parallel cap
 * asks for its fingerprint, to find its policies.  A planning that fails
 * is noted as a pending error, which statement.c's abort callbacks count;
 * one that succeeds is recorded at once.
 *
 * Owns: the top-level planning (pgsh_planning_*); no state of its own.
 * Calls: stats.c (pgsh_stats_record_plan), stats_table.c
 *		  (pgsh_statement_text), statement.c (through statement_int.h).
 * Locking: backend-local only, no lock; it reads the frame
 *		  (statement_utility.c); the statistics take their own (see shmem.c).
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/statement_planning.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/tcopprot.h"

#include "compat.h"
#include "statement.h"
#include "statement_int.h"
#include "stats.h"

/*
 * Is this planning the top-level statement's?  The planner gets the very
 * query string the client sent (see sent_by_client in statement.c: the simple protocol
 * plans its string, Bind the prepared statement's, which is
 * debug_query_string then).  Inside a delegating frame, only the planning
 * of the utility's own query is (functions computing EXECUTE's parameters
 * are planned at level 0 too): it gets the very query string the utility
 * holds (the prepared statement's, for EXECUTE).
 */
bool
pgsh_planning_top_level(const char *query_string)
{
	if (!pgsh_statement_at_top_level())
		return false;
	if (!pgsh_statement_frame.active)
		return query_string != NULL && query_string == debug_query_string;
	return pgsh_statement_frame.expect_source != NULL &&
		query_string == pgsh_statement_frame.expect_source;
}

/*
 * Fingerprint of the top-level statement being planned, as its unit will
 * have it: up to PostgreSQL 17, the query inside CREATE TABLE AS and
 * DECLARE CURSOR has none of its own, and takes the utility's (see
 * pgsh_unit_begin).
 */
uint64
pgsh_planning_queryid(Query *parse)
{
	uint64		queryid = PGSH_QUERYID(parse->queryId);

	if (queryid == 0 && pgsh_statement_frame.active &&
		pgsh_statement_frame.delegate)
		queryid = pgsh_statement_frame.queryid;
	return queryid;
}

/*
 * Position of the statement being planned in its query string.  The inner
 * query of a delegating utility (EXPLAIN, CREATE TABLE AS, ...) has none of
 * its own: use the utility's, as pgsh_unit_begin does.
 */
static void
planned_text_position(Query *parse, const char *query_string,
					  int *location, int *len)
{
	if (pgsh_statement_frame.active && pgsh_statement_frame.delegate &&
		pgsh_statement_frame.own_text &&
		query_string == pgsh_statement_frame.source)
	{
		*location = pgsh_statement_frame.stmt_location;
		*len = pgsh_statement_frame.stmt_len;
	}
	else
	{
		*location = parse->stmt_location;
		*len = parse->stmt_len;
	}
}

/*
 * The top-level statement has been planned: record its planning time at
 * once, since a plan may be executed many times or never.  The text
 * recorded with it gives a fingerprint its text before the statement runs.
 */
void
pgsh_planning_done(Query *parse, const char *query_string, double plan_ms)
{
	const char *text;
	int			text_len;
	int			location;
	int			len;

	planned_text_position(parse, query_string, &location, &len);
	text = pgsh_statement_text(query_string, location, len, &text_len);

	pgsh_stats_record_plan(MyDatabaseId, GetUserId(),
						   PGSH_QUERYID(parse->queryId), plan_ms,
						   text, text_len);
}

/* Called in PG_CATCH: only notes the failure. */
void
pgsh_planning_failed(Query *parse, const char *query_string)
{
	int			location;
	int			len;

	planned_text_position(parse, query_string, &location, &len);
	pgsh_statement_note_failure_text(GetUserId(),
									 PGSH_QUERYID(parse->queryId),
									 query_string, location, len);
	pgsh_statement_note_pending_error(GetUserId(),
									  PGSH_QUERYID(parse->queryId));
}
