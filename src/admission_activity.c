/*-------------------------------------------------------------------------
 *
 * admission_activity.c
 *		What shield.activity shows: a row for every statement admitted or
 *		queued, read from the backends' slots.
 *
 * Every backend has a slot (ShieldProcSlot, indexed by pgprocno) whose
 * activity row says what it runs or waits for: its role, fingerprint,
 * priority, deadline, and since when.  Only the backend itself writes its
 * row, bracketed by the slot's changecount (odd while writing), when
 * admission.c first finds the slot, when it admits a statement, when the
 * queue (admission_queue.c) queues it or gives up on it, and when
 * admission_held.c releases it.  Those writers run for every statement,
 * so they are inline, in admission_int.h, next to the slot they write.
 *
 * This file holds the reader: it copies the rows without a lock, retrying
 * a slot until it sees the same even changecount before and after the
 * copy, and skips the idle ones.  The views (views.c), the retry hints
 * (admission_hint.c) and the deadlock search (admission_deadlock.c) read
 * the rows through it; the latter two find a scope's holders among them
 * (pgsh_activity_in_scope).
 *
 * Owns: the reader of the activity rows (pgsh_activity_copy); the rows
 *		  and their inline writers are in admission_int.h.
 * Calls: nothing of pg_shield's.
 * Locking: none; the rows are read by their change counts (see
 *		  admission.c).
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/admission_activity.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"

#include "admission_int.h"

/* Copy the statements now admitted or queued. */
ShieldActivity *
pgsh_activity_copy(int *n)
{
	ShieldActivity *result = palloc(MaxBackends * sizeof(ShieldActivity));
	int			count = 0;
	int			i;

	for (i = 0; i < MaxBackends; i++)
	{
		volatile ShieldProcSlot *p = PGSH_PROC(i);
		ShieldActivity a;
		int			procstate;

		for (;;)
		{
			uint32		before = pg_atomic_read_u32(&PGSH_PROC(i)->changecount);
			uint32		after;

			pg_read_barrier();
			procstate = p->state;
			memcpy(&a, (const ShieldActivity *) &p->shown, sizeof(a));
			pg_read_barrier();
			after = pg_atomic_read_u32(&PGSH_PROC(i)->changecount);
			if (before == after && (before & 1) == 0)
				break;
			CHECK_FOR_INTERRUPTS();
		}
		if (procstate == PGSH_PROC_IDLE)
			continue;
		result[count++] = a;
	}
	*n = count;
	return result;
}
