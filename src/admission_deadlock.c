/*-------------------------------------------------------------------------
 *
 * admission_deadlock.c
 *		Wait-for cycles that pass through the admission queue.
 *
 * Core's deadlock detector sees only waits for heavyweight locks.  A
 * statement waiting in pg_shield's admission queue waits on its latch,
 * for statements that hold slots; if one of those waits, directly or
 * through others, for a lock the queued statement's transaction holds,
 * nothing moves until the queue timeout, and nobody is told why.  Say a
 * role may run one statement at a time: session 1 updates a row in an
 * open transaction; session 2's UPDATE of the same row takes the slot
 * and waits for session 1's row lock; session 1's next statement queues
 * behind session 2.
 *
 * A waiter looks for such a cycle after it has waited deadlock_timeout,
 * as core's detector does for a lock, and again every deadlock_timeout
 * while it waits, since the cycle can close after it queued (session 2
 * may block on the lock only later).  The search walks the wait-for
 * graph breadth first, from the backends that hold slots in the scopes
 * that are full for the waiter.  The edges out of a backend are:
 *
 *	- the backends blocking its lock wait (or its lock group's), if it
 *	  waits for a lock: what pg_blocking_pids() reports, from core's
 *	  GetBlockerStatusData();
 *	- if it waits in the admission queue itself, the backends holding
 *	  slots in the scopes that are full for it.
 *
 * Reaching the waiter again is a cycle: the waiter leaves the queue and
 * fails with 40P01, which is what applications already retry on
 * (admission_queue.c).  Only a waiter of the cycle can find it, and only
 * the waiter that searches gives up.  Two waiters of one cycle (each
 * queued behind a holder that waits for the other) may search at the same
 * time; before it gives up, a waiter checks under admission_lock that the
 * other waiters of its cycle still wait and have not given up themselves,
 * and marks itself as giving up, so that one victim breaks the cycle.
 *
 * The holders of a scope are found among the activity rows
 * (admission_activity.c), by the scope's key, as the retry hints find
 * them: a running statement of the scope's database, role and fingerprint
 * holds a slot in it.  The search visits each backend at most once, so it
 * ends after at most MaxBackends steps; it allocates in a memory context
 * of its own, deleted when it returns.
 *
 * LOCKING.  The admission module's protocol is described in admission.c's
 * header; what follows is this file's part in it.  admission_lock is taken
 * briefly, in LW_SHARED mode to copy the queue's entries (which scopes are
 * full for whom) and, when a cycle is found, in LW_EXCLUSIVE mode to
 * confirm it; it is released before the search, which takes ProcArrayLock
 * (BackendPidGetProc) and, through pg_blocking_pids(), every lock manager
 * partition lock.  Those are never taken while admission_lock is held.
 * The activity rows are read without a lock (their change counts).  Runs
 * in the waiting backend, in its statement, so it may fail like any
 * statement: the wait loop's caller leaves the queue on error.
 *
 * Owns: the search for wait-for cycles through the queue
 *		  (pgsh_deadlock_find), in a memory context of its own.
 * Calls: admission_activity.c (the activity rows), admission.c (scope
 *		  names).
 * Locking: admission_lock, briefly; the lock manager's locks only once
 *		  it is released (LOCKING above, and admission.c).
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/admission_deadlock.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"

#include "admission_int.h"
#include "compat.h"
#include "shmem.h"

/* A waiter in the queue, as the search sees it. */
typedef struct ShieldQueuedWaiter
{
	int			pid;
	int			nfull;			/* scopes full for it */
	ShieldScopeKey full[PGSH_MAX_SCOPES];
} ShieldQueuedWaiter;

/* How the search reached a backend from the one before it. */
typedef enum ShieldWaitEdge
{
	PGSH_EDGE_START,			/* the searching waiter itself */
	PGSH_EDGE_QUEUE,			/* it holds a slot the one before waits for */
	PGSH_EDGE_LOCK				/* it blocks the lock the one before waits for */
} ShieldWaitEdge;

/* A backend the search reached. */
typedef struct ShieldWaitNode
{
	int			pid;
	int			parent;			/* index of the node it was reached from */
	ShieldWaitEdge edge;
	int			key_index;		/* PGSH_EDGE_QUEUE from the start: which of
								 * its full scopes */
} ShieldWaitNode;

typedef struct ShieldWaitSearch
{
	ShieldQueuedWaiter *waiters;
	int			nwaiters;
	ShieldActivity *rows;
	int			nrows;
	ShieldWaitNode *nodes;
	int			nnodes;
	int			max_nodes;
} ShieldWaitSearch;

/*
 * Whether two scope keys name the same scope.
 */
static bool
same_key(const ShieldScopeKey *a, const ShieldScopeKey *b)
{
	return a->dbid == b->dbid && a->userid == b->userid &&
		a->queryid == b->queryid;
}

/*
 * The scopes of waiter w that are full by the limits the dispatcher
 * applies to it (see pgsh_queue_dispatch_locked).  Caller holds
 * admission_lock.
 */
static int
full_scopes_locked(const ShieldProcSlot *w, ShieldScopeKey *keys)
{
	int			nfull = 0;
	int			i;

	for (i = 0; i < w->nscopes; i++)
	{
		ShieldScope *scope = w->scopes[i];
		int32		limit = pgsh_adm_waiter_limit_locked(w, i);

		if (limit < 0 || pg_atomic_read_u32(&scope->active) < (uint32) limit)
			continue;
		keys[nfull++] = scope->key;
	}
	return nfull;
}

/*
 * Copy what the queue says of each waiter.  Returns false if this backend
 * is not waiting any more (granted or shed meanwhile) or nothing is full
 * for it (it is about to be granted): no cycle then.
 */
static bool
copy_queue(ShieldWaitSearch *s)
{
	bool		waiting = true;
	int			pos;

	LWLockAcquire(pgsh_state->admission_lock, LW_SHARED);
	s->nwaiters = 0;
	for (pos = 0; pos < (int) pg_atomic_read_u32(&pgsh_adm->nqueued); pos++)
	{
		int			procno = pgsh_adm->queue[pos];
		ShieldQueuedWaiter *qw = &s->waiters[s->nwaiters];

		qw->pid = ProcGlobal->allProcs[procno].pid;
		qw->nfull = full_scopes_locked(PGSH_PROC(procno), qw->full);
		if (qw->pid == MyProcPid)
		{
			if (qw->nfull == 0)
				waiting = false;
			/* the start of the search: first */
			if (s->nwaiters > 0)
			{
				ShieldQueuedWaiter tmp = *qw;

				*qw = s->waiters[0];
				s->waiters[0] = tmp;
			}
		}
		s->nwaiters++;
	}
	if (s->nwaiters == 0 || s->waiters[0].pid != MyProcPid)
		waiting = false;
	LWLockRelease(pgsh_state->admission_lock);
	return waiting;
}

/* The queue entry of pid, or NULL if it does not wait there. */
static const ShieldQueuedWaiter *
queued_waiter(const ShieldWaitSearch *s, int pid)
{
	int			i;

	for (i = 0; i < s->nwaiters; i++)
	{
		if (s->waiters[i].pid == pid)
			return &s->waiters[i];
	}
	return NULL;
}

/* This backend, or the leader of its lock group. */
static bool
is_me(int pid)
{
	PGPROC	   *leader = MyProc->lockGroupLeader;

	return pid == MyProcPid || (leader != NULL && pid == leader->pid);
}

/*
 * Whether the search has reached pid already: a linear scan of the nodes,
 * of which there are at most MaxBackends + 1.
 */
static bool
visited(const ShieldWaitSearch *s, int pid)
{
	int			i;

	for (i = 0; i < s->nnodes; i++)
	{
		if (s->nodes[i].pid == pid)
			return true;
	}
	return false;
}

/*
 * The search reached pid from node parent.  Returns true if that closes
 * the cycle (pid is this backend); otherwise remembers pid, once.
 */
static bool
reach(ShieldWaitSearch *s, int pid, int parent, ShieldWaitEdge edge, int key_index,
	  ShieldWaitNode *closing)
{
	ShieldWaitNode *node;

	if (pid == 0)
		return false;			/* a prepared transaction waits for nobody */
	if (is_me(pid))
	{
		closing->pid = pid;
		closing->parent = parent;
		closing->edge = edge;
		closing->key_index = key_index;
		return true;
	}
	if (s->nnodes >= s->max_nodes || visited(s, pid))
		return false;
	node = &s->nodes[s->nnodes++];
	node->pid = pid;
	node->parent = parent;
	node->edge = edge;
	node->key_index = key_index;
	return false;
}

/* Edges out of a waiter in the queue: the holders of its full scopes. */
static bool
follow_queue(ShieldWaitSearch *s, int from, const ShieldQueuedWaiter *qw, ShieldWaitNode *closing)
{
	int			k;
	int			i;

	for (k = 0; k < qw->nfull; k++)
	{
		for (i = 0; i < s->nrows; i++)
		{
			if (s->rows[i].pid == qw->pid ||
				!pgsh_activity_in_scope(&s->rows[i], &qw->full[k]))
				continue;
			if (reach(s, s->rows[i].pid, from, PGSH_EDGE_QUEUE, k, closing))
				return true;
		}
	}
	return false;
}

/*
 * Edges out of a backend waiting for a lock: who blocks it.  Asked only of
 * a backend seen waiting for a lock (or in a lock group, whose members'
 * waits count as its own), since pg_blocking_pids() takes every lock
 * manager partition lock.
 */
static bool
follow_lock(ShieldWaitSearch *s, int from, int pid, ShieldWaitNode *closing)
{
	PGPROC	   *proc = BackendPidGetProc(pid);
	ArrayType  *blockers;
	Datum	   *pids;
	bool	   *nulls;
	int			npids;
	int			i;

	if (proc == NULL ||
		(((volatile PGPROC *) proc)->waitLock == NULL &&
		 ((volatile PGPROC *) proc)->lockGroupLeader == NULL))
		return false;

	blockers = DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids,
													  Int32GetDatum(pid)));
	deconstruct_array(blockers, INT4OID, sizeof(int32), true, TYPALIGN_INT,
					  &pids, &nulls, &npids);
	for (i = 0; i < npids; i++)
	{
		if (!nulls[i] &&
			reach(s, DatumGetInt32(pids[i]), from, PGSH_EDGE_LOCK, -1, closing))
			return true;
	}
	return false;
}

/* The scope of needs whose key is key, described for a message. */
static void
describe_key(char *buf, size_t size, const ShieldScopeNeed *needs, int n,
			 const ShieldScopeKey *key)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		if (needs[i].slot && same_key(&needs[i].key, key))
		{
			pgsh_adm_describe_scope(buf, size, &needs[i], false);
			return;
		}
	}
	snprintf(buf, size, "a scope it needs");
}

/*
 * The cycle's nodes after the start (node 0), backwards: path[0] is the
 * one that leads back to the start, path[len - 1] the first holder.  Each
 * node is reached once, so there are at most nnodes - 1.
 */
static int
cycle_path(const ShieldWaitSearch *s, const ShieldWaitNode *closing, int *path)
{
	int			len = 0;
	int			node;

	for (node = closing->parent; node > 0; node = s->nodes[node].parent)
		path[len++] = node;
	Assert(len > 0);
	return len;
}

/*
 * Is the cycle still there, as far as the queue tells?  Every other waiter
 * of the cycle must still wait, and none may have left it for a cycle of
 * its own: two waiters of one cycle may search at the same time, and the
 * first to get here breaks the cycle for the other.  If so, this backend
 * is marked as leaving (ShieldProcSlot.deadlocked), in the same critical
 * section, so that the decisions of the waiters of a cycle are taken one
 * at a time.  Takes admission_lock exclusively, and nothing else.
 */
static bool
confirm_cycle(const ShieldWaitSearch *s, const int *path, int len)
{
	bool		confirmed = true;
	int			i;

	LWLockAcquire(pgsh_state->admission_lock, LW_EXCLUSIVE);
	if (pgsh_adm_me->granted || pgsh_adm_me->shed)
		confirmed = false;
	for (i = 0; i < len && confirmed; i++)
	{
		int			pid = s->nodes[path[i]].pid;
		int			pos;
		bool		waiting = false;

		if (queued_waiter(s, pid) == NULL)
			continue;			/* it waited for a lock, not in the queue */
		for (pos = 0; pos < (int) pg_atomic_read_u32(&pgsh_adm->nqueued); pos++)
		{
			int			procno = pgsh_adm->queue[pos];

			if (ProcGlobal->allProcs[procno].pid == pid)
			{
				waiting = !PGSH_PROC(procno)->deadlocked;
				break;
			}
		}
		if (!waiting)
			confirmed = false;
	}
	if (confirmed)
		pgsh_adm_me->deadlocked = true;
	LWLockRelease(pgsh_state->admission_lock);
	return confirmed;
}

/*
 * The DETAIL of the error: "Process 1 waits in the admission queue for a
 * slot of role "app" (policy 7), held by process 2; process 2 waits for a
 * lock held by process 1."  A longer cycle names each wait, as long as the
 * buffer allows.
 */
static void
describe_cycle(const ShieldWaitSearch *s, const ShieldWaitNode *closing,
			   const int *path, int len,
			   const ShieldScopeNeed *needs, int n, char *buf, size_t size)
{
	int			i;
	const ShieldWaitNode *first;
	size_t		used;
	char		scope[NAMEDATALEN + 96];

	first = &s->nodes[path[len - 1]];	/* a holder of a slot it waits for */
	describe_key(scope, sizeof(scope), needs, n,
				 &s->waiters[0].full[first->key_index]);
	snprintf(buf, size,
			 "Process %d waits in the admission queue for a slot of %s, held by process %d",
			 MyProcPid, scope, first->pid);
	used = strlen(buf);

	/* each wait after the first, then the one that leads back */
	for (i = len - 1; i >= 0 && used + 1 < size; i--)
	{
		const ShieldWaitNode *from = &s->nodes[path[i]];
		const ShieldWaitNode *to = i > 0 ? &s->nodes[path[i - 1]] : closing;

		snprintf(buf + used, size - used,
				 to->edge == PGSH_EDGE_LOCK ?
				 "; process %d waits for a lock held by process %d" :
				 "; process %d waits in the admission queue for a slot held by process %d",
				 from->pid, to->pid);
		used = strlen(buf);
	}
	if (used + 1 < size)
		strlcat(buf, ".", size);
}

/*
 * Does this backend, waiting in the admission queue, wait for itself
 * through the statements that hold the slots it needs?  If so, and no
 * other waiter of the cycle has given up first, mark it as giving up,
 * describe the cycle in detail (a DETAIL sentence) and return true; the
 * caller leaves the queue.  needs are its scopes, for the description.
 */
bool
pgsh_deadlock_find(const ShieldScopeNeed *needs, int n, char *detail, size_t size)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	ShieldWaitSearch s;
	ShieldWaitNode closing;
	bool		found = false;
	int			next;

	cxt = AllocSetContextCreate(CurrentMemoryContext,
								"pg_shield deadlock search",
								ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	memset(&s, 0, sizeof(s));
	s.waiters = palloc((MaxBackends + 1) * sizeof(ShieldQueuedWaiter));
	if (!copy_queue(&s))
		goto done;
	s.rows = pgsh_activity_copy(&s.nrows);
	s.max_nodes = MaxBackends + 1;
	s.nodes = palloc(s.max_nodes * sizeof(ShieldWaitNode));

	/* node 0: this backend */
	s.nodes[0].pid = MyProcPid;
	s.nodes[0].parent = -1;
	s.nodes[0].edge = PGSH_EDGE_START;
	s.nodes[0].key_index = -1;
	s.nnodes = 1;

	for (next = 0; next < s.nnodes && !found; next++)
	{
		int			pid = s.nodes[next].pid;
		const ShieldQueuedWaiter *qw = next == 0 ? &s.waiters[0] :
			queued_waiter(&s, pid);

		CHECK_FOR_INTERRUPTS();
		if (qw != NULL && follow_queue(&s, next, qw, &closing))
			found = true;
		/* this backend waits in the queue, not for a lock */
		else if (next > 0 && follow_lock(&s, next, pid, &closing))
			found = true;
	}

	if (found)
	{
		int		   *path = palloc(s.nnodes * sizeof(int));
		int			len = cycle_path(&s, &closing, path);

		found = confirm_cycle(&s, path, len);
		if (found)
			describe_cycle(&s, &closing, path, len, needs, n, detail, size);
	}

done:
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	return found;
}
