/*-------------------------------------------------------------------------
 *
 * errors.h
 *		The SQLSTATEs pg_shield raises, in one catalogue.
 *
 * These codes are part of the interface (the reference,
 * contrib-docs/pg_shield.sgml, "Error Codes", which test/check-docs.sh
 * checks against this file):
 * applications key their retry logic on them, so a code never changes
 * meaning once released.  Class 53 (insufficient resources) subclasses
 * use the letter S so that clients retrying on the class keep working.
 *
 *	code	when							client should
 *	53S01	concurrency limit full, no queueing	retry later
 *	53S02	admission queue timeout				retry later
 *	53S03	shed under overload					back off, retry later
 *	53S04	rate limit exceeded					retry after the hint
 *	53S05	circuit breaker open				retry after the hint
 *	40P01	queued behind a lock it holds		retry the transaction
 *	54001	estimated cost above max_cost		fix the query
 *	57014	pg_shield deadline exceeded			as for any timeout
 *	55000	library not preloaded				fix the configuration
 *	22023	invalid policy argument				fix the call
 *	42501	insufficient privilege				use a granted role
 *	42704	a policy's role does not exist		fix the call
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/errors.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_ERRORS_H
#define PGSH_ERRORS_H

#include "utils/elog.h"

#define PGSH_ERRCODE_CONCURRENCY_LIMIT	MAKE_SQLSTATE('5','3','S','0','1')
#define PGSH_ERRCODE_QUEUE_TIMEOUT		MAKE_SQLSTATE('5','3','S','0','2')
#define PGSH_ERRCODE_SHED				MAKE_SQLSTATE('5','3','S','0','3')
#define PGSH_ERRCODE_RATE_LIMIT			MAKE_SQLSTATE('5','3','S','0','4')
#define PGSH_ERRCODE_BREAKER_OPEN		MAKE_SQLSTATE('5','3','S','0','5')
#define PGSH_ERRCODE_DEADLOCK			ERRCODE_T_R_DEADLOCK_DETECTED	/* 40P01 */
#define PGSH_ERRCODE_COST_LIMIT			ERRCODE_STATEMENT_TOO_COMPLEX	/* 54001 */
#define PGSH_ERRCODE_DEADLINE			ERRCODE_QUERY_CANCELED	/* 57014 */
#define PGSH_ERRCODE_NOT_LOADED			ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE	/* 55000 */
#define PGSH_ERRCODE_INVALID_POLICY		ERRCODE_INVALID_PARAMETER_VALUE /* 22023 */
#define PGSH_ERRCODE_UNDEFINED_ROLE		ERRCODE_UNDEFINED_OBJECT	/* 42704 */

#endif							/* PGSH_ERRORS_H */
