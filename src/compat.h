/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Every PostgreSQL version difference pg_shield depends on, in one place.
 *
 * pg_shield is tested on PostgreSQL 15, 17 and 18 (and 18 built with
 * assertions); 16 compiles through the same shims but no suite runs on it,
 * since Debian has no source package of it.  Every PG_VERSION_NUM test of
 * the tree is in this file: the modules use the macros below.  Each shim
 * names the upstream change that made it necessary.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_COMPAT_H
#define PGSH_COMPAT_H

#if PG_VERSION_NUM < 150000 || PG_VERSION_NUM >= 190000
#error "pg_shield supports PostgreSQL 15 to 18 (tested: 15, 17 and 18)"
#endif

/* The major version this build is for (15, 17, 18): fingerprints are its own. */
#define PGSH_PG_MAJOR (PG_VERSION_NUM / 10000)

/*
 * A backend's index in ProcGlobal->allProcs: PGPROC.pgprocno up to
 * PostgreSQL 16, MyProcNumber from 17 on (the 17 change "Replace
 * BackendIds with 0-based ProcNumbers" removed pgprocno).  MAX_BACKENDS
 * moved from postmaster.h to storage/procnumber.h in 18, next to the
 * MAX_BACKENDS_BITS the buffer manager's reference counts are sized by.
 */
#include "storage/proc.h"
#if PG_VERSION_NUM >= 170000
#include "storage/procnumber.h"
#define PGSH_MY_PROCNO ((int) MyProcNumber)
#else
#define PGSH_MY_PROCNO (MyProc->pgprocno)
#endif
#if PG_VERSION_NUM < 180000
#include "postmaster/postmaster.h"	/* MAX_BACKENDS */
#endif

/*
 * Core query jumbling moved from utils/queryjumble.h to nodes/queryjumble.h
 * in PostgreSQL 16, when the jumbling code became generated from node
 * definitions.
 */
#if PG_VERSION_NUM >= 160000
#include "nodes/queryjumble.h"
#else
#include "utils/queryjumble.h"
#endif

/*
 * A function that does not return: the suffix pg_attribute_noreturn() gave
 * way to the prefix pg_noreturn (C11 _Noreturn) in PostgreSQL 18.  Used as a
 * prefix on every version (GCC and Clang take attributes there too).
 */
#if PG_VERSION_NUM >= 180000
#define PGSH_NORETURN pg_noreturn
#else
#define PGSH_NORETURN pg_attribute_noreturn()
#endif

/*
 * Intervals can be infinite from PostgreSQL 17 on ('infinity' and
 * '-infinity', tested with INTERVAL_NOT_FINITE); earlier, every interval
 * is finite.
 */
#if PG_VERSION_NUM >= 170000
#define PGSH_INTERVAL_IS_FINITE(iv) (!INTERVAL_NOT_FINITE(iv))
#else
#define PGSH_INTERVAL_IS_FINITE(iv) true
#endif

/*
 * ExecutorRun lost its execute_once argument in PostgreSQL 18
 * (commit 3eea7a0c97e).
 */
#if PG_VERSION_NUM >= 180000
#define PGSH_EXECUTORRUN_ARGS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count
#define PGSH_EXECUTORRUN_CALL queryDesc, direction, count
#else
#define PGSH_EXECUTORRUN_ARGS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count, bool execute_once
#define PGSH_EXECUTORRUN_CALL queryDesc, direction, count, execute_once
#endif

/*
 * Jumbling a query: JumbleQuery took the query text up to PostgreSQL 15
 * (for utility statements, hashed by text then) and takes the Query alone
 * from 16.  From 18 on, core jumbles the query inside DECLARE CURSOR and
 * CREATE TABLE AS itself (commit 6b652e6ce); before, it has none, and
 * pg_shield jumbles it the same way, so that such a statement gets its
 * inner query's fingerprint on every version.  A statement's shape is core's
 * jumble of a normalized copy of the query (see shape.c); the text is not
 * used for a plannable query.
 */
#if PG_VERSION_NUM >= 160000
#define PGSH_JUMBLE_QUERY(query, text) JumbleQuery(query)
#else
#define PGSH_JUMBLE_QUERY(query, text) JumbleQuery(query, text)
#endif
#define PGSH_CORE_JUMBLES_INNER_QUERY (PG_VERSION_NUM >= 180000)

/*
 * Query and PlannedStmt carry queryId as uint64 up to PostgreSQL 17 and as
 * int64 from 18 (plannodes.h).  pg_shield stores and compares the bit
 * pattern as uint64 and exposes it as bigint, like EXPLAIN and
 * pg_stat_statements do.
 */
#define PGSH_QUERYID(q) ((uint64) (q))

/*
 * Wait event of a statement waiting in the admission queue.  Custom wait
 * event names (WaitEventExtensionNew) exist from PostgreSQL 17 on; until
 * then pg_stat_activity shows type and event "Extension".
 */
#define PGSH_WAIT_EVENT_QUEUE PG_WAIT_EXTENSION

/*
 * pg_shield's own functions and variables are used only inside the
 * library.  Declared hidden (every header of src/ wraps its declarations in
 * these), calls and variable accesses between its files are direct,
 * without going through the PLT and the GOT, which the hot path notices.
 * What PostgreSQL looks up by name (_PG_init, the magic block, the
 * SQL-callable functions) is declared by PostgreSQL's own headers and
 * stays visible.  PostgreSQL 16 builds modules with -fvisibility=hidden
 * and marks those entry points itself.
 */
#if defined(__GNUC__) || defined(__clang__)
#define PGSH_BEGIN_INTERNAL _Pragma("GCC visibility push(hidden)")
#define PGSH_END_INTERNAL _Pragma("GCC visibility pop")
#else
#define PGSH_BEGIN_INTERNAL
#define PGSH_END_INTERNAL
#endif

#endif							/* PGSH_COMPAT_H */
