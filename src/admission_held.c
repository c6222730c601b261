/*-------------------------------------------------------------------------
 *
 * admission_held.c
 *		The statements of this session that hold slots, and where their
 *		slots are released.
 *
 * A session can run a statement while others of it hold slots (an open
 * cursor, a portal suspended by a row limit), so a backend may hold slots
 * for several statements at once.  This file keeps them, each with the
 * scopes it is counted in (ShieldHeldStatement), and gives their slots
 * back: pgsh_admission_release when a statement ends, and
 * pgsh_admission_cleanup, the backstop, at the end of every top-level
 * transaction and at exit (pgsh_adm_exit, which also unpins the memo's
 * scopes, leaves the queue and gives up breaker probes).  A session counts
 * once in each scope, so a statement gives back only the scopes that no
 * other statement of the session holds.
 *
 * admission.c admits statements: it reads the array to learn whether the
 * session holds slots, and appends the statement it admits, in place,
 * since it does so for every statement (see pgsh_adm_held_stmts below).
 * Nothing else touches the array.  This file calls the queue
 * (admission_queue.c): its dispatcher, when statements wait for the slots
 * it freed, and, in the backstops, its way out for a statement still
 * waiting; at exit, admission.c's memo (pgsh_adm_memo_unpin) and the
 * breakers (breaker.c).  It writes this backend's activity row through
 * the inline writers of admission_int.h (admission_activity.c describes
 * the row).
 *
 * LOCKING.  The admission module's protocol is described once, in
 * admission.c's header.  The array is backend-local and needs no lock.
 * Release decrements the scopes' slot counts (atomics) without a lock and
 * takes admission_lock exclusively only to dispatch, after the decrements,
 * which is what closes the lost-wakeup race with a new waiter.  Release
 * never fails: the array is grown before slots are taken, so that release
 * never allocates.
 *
 * Owns: the session's statements holding slots (pgsh_adm_held_stmts),
 *		  their release, and the backstops at transaction end and exit.
 * Calls: admission_queue.c (dispatch, leaving the queue), admission.c
 *		  (pgsh_adm_memo_unpin), breaker.c (pgsh_breaker_backend_exit).
 * Locking: backend-local array; atomics, and admission_lock to dispatch
 *		  (LOCKING above, and admission.c).
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/admission_held.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "port/atomics.h"
#include "storage/lwlock.h"
#include "utils/memutils.h"

#include "admission_int.h"
#include "shmem.h"

/*
 * The statements of this backend that hold slots (ShieldHeldStatement), in
 * the order they took them, pgsh_adm_held_count of the
 * pgsh_adm_held_allocated entries in use.  Hot-path accessors:
 * pgsh_admit (admission.c) runs for every statement, so it reads
 * pgsh_adm_held_count and appends the statement it admits without a call,
 * after pgsh_adm_held_grow has made room; everything else about the array
 * belongs to this file.
 */
ShieldHeldStatement *pgsh_adm_held_stmts = NULL;
int			pgsh_adm_held_allocated = 0;
int			pgsh_adm_held_count = 0;

/* Make room for one more statement holding slots; may fail (no slot taken). */
pg_noinline void
pgsh_adm_held_grow(void)
{
	int			newsize = Max(4, pgsh_adm_held_allocated * 2);

	if (pgsh_adm_held_stmts == NULL)
		pgsh_adm_held_stmts = MemoryContextAlloc(TopMemoryContext,
												 newsize * sizeof(ShieldHeldStatement));
	else
		pgsh_adm_held_stmts = repalloc(pgsh_adm_held_stmts, newsize * sizeof(ShieldHeldStatement));
	pgsh_adm_held_allocated = newsize;
}

/*
 * Give back the slots of the statement that holds entry slot_id (see
 * ShieldAdmission), in the scopes no other statement of this backend
 * holds.  Never fails.
 */
void
pgsh_admission_release(uint32 slot_id)
{
	ShieldHeldStatement *stmt = NULL;
	int			index;
	int			i;

	for (index = pgsh_adm_held_count - 1; index >= 0; index--)
	{
		if (pgsh_adm_held_stmts[index].id == slot_id)
		{
			stmt = &pgsh_adm_held_stmts[index];
			break;
		}
	}
	if (stmt == NULL)
		return;

	/*
	 * In the reverse order of taking: the instance scope comes first, so a
	 * statement that takes the freed instance slot never finds this backend
	 * still counted in its role scope.
	 */
	for (i = stmt->nscopes - 1; i >= 0; i--)
	{
		if (!pgsh_adm_scope_held_by_other(stmt->scopes[i], index))
			pg_atomic_fetch_sub_u32(&stmt->scopes[i]->active, 1);
	}
	/* keep the order of taking: the last entry is the newest, shown */
	pgsh_adm_held_count--;
	if (index != pgsh_adm_held_count)
		memmove(&pgsh_adm_held_stmts[index], &pgsh_adm_held_stmts[index + 1],
				(pgsh_adm_held_count - index) * sizeof(ShieldHeldStatement));

	if (pgsh_adm_held_count == 0)
		pgsh_adm_activity_set_idle();
	else
		pgsh_adm_activity_show(&pgsh_adm_held_stmts[pgsh_adm_held_count - 1].shown);

	/* after the fetch-subs (full barriers): see admission.c's header */
	if (pg_atomic_read_u32(&pgsh_adm->nqueued) > 0)
	{
		LWLockAcquire(pgsh_state->admission_lock, LW_EXCLUSIVE);
		pgsh_queue_dispatch_locked();
		LWLockRelease(pgsh_state->admission_lock);
	}
}

/*
 * Backstop: give everything back, whatever state this backend is in.
 * Called at the end of every top-level transaction (after statement.c has
 * finished its statements, so normally there is nothing left) and at exit.
 */
void
pgsh_admission_cleanup(void)
{
	/* the usual case, at the end of every transaction: nothing to give back */
	if (pgsh_adm_me == NULL || (pgsh_adm_held_count == 0 && !pgsh_queue_waiting()))
		return;
	pgsh_queue_leave();
	while (pgsh_adm_held_count > 0)
		pgsh_admission_release(pgsh_adm_held_stmts[pgsh_adm_held_count - 1].id);
}

/*
 * The backend exits: give back everything it holds in the admission
 * module's shared memory, whatever state it is in.  A before_shmem_exit
 * callback that pgsh_admit registers on first use, since only a backend
 * that was admitted has anything to give back.  Never fails.
 */
void
pgsh_adm_exit(int code, Datum arg)
{
	if (pgsh_state != NULL && LWLockHeldByMe(pgsh_state->admission_lock))
		LWLockRelease(pgsh_state->admission_lock);
	pgsh_adm_memo_unpin();

	/* terminated while it waited (FATAL skips PG_CATCH): count it */
	pgsh_queue_exit();
	pgsh_admission_cleanup();

	/* probes are made by admission: give up those still running */
	pgsh_breaker_backend_exit();
}
