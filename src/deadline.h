/*-------------------------------------------------------------------------
 *
 * deadline.h
 *		Deadlines of running statements: a private timeout that cancels a
 *		statement when its policy's deadline passes.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/deadline.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_DEADLINE_H
#define PGSH_DEADLINE_H

#include "utils/timestamp.h"

#include "compat.h"
#include "policy.h"

PGSH_BEGIN_INTERNAL

/*
 * A statement's deadline, as admission set it: the strictest deadline of
 * its policies, counted from its arrival, so that time in the admission
 * queue counts.  A statement without one has at = 0 and arms nothing.
 */
typedef struct ShieldDeadline
{
	TimestampTz at;				/* when it expires; 0: no deadline */
	uint64		token;			/* which deadline it is (see deadline.c) */
	bool		enforce;		/* false: monitor mode, only counted */
	TimestampTz arrived;		/* the statement's arrival */
	double		queue_ms;		/* time it spent in the admission queue */
	int64		limit_us;		/* the policy's deadline */
	int64		policy_id;		/* the policy's scope, for messages */
	Oid			policy_role;
	uint64		policy_queryid;
	Oid			userid;			/* the statement's, for its event */
	uint64		queryid;
} ShieldDeadline;

extern void pgsh_deadline_set(ShieldDeadline *d,
							  const ShieldEffectivePolicy *policy,
							  Oid userid, uint64 queryid,
							  TimestampTz arrived, double queue_ms);

/* The deadline in force: its time, 0 if none, and its token (deadline.c). */
extern volatile TimestampTz pgsh_deadline_armed_at;
extern uint64 pgsh_deadline_armed_token;

/* The armed deadline's cancel may be requested (see deadline.c). */
extern volatile sig_atomic_t pgsh_deadline_cancel_allowed;
extern volatile sig_atomic_t pgsh_deadline_cancel_requested;

extern void pgsh_deadline_arm(const ShieldDeadline *d);
extern void pgsh_deadline_withdraw_cancel(void);
extern bool pgsh_deadline_armed_for(const ShieldDeadline *d);

/*
 * An executor call of a statement with an enforced deadline begins: arm
 * the timer for it unless it is armed for it already (raising the
 * deadline's error at once if it passed while no call ran), and let it
 * cancel the statement.
 */
static inline void
pgsh_deadline_call_begin(const ShieldDeadline *d)
{
	if (!d->enforce)
		return;
	/* first: a deadline armed in the past fires at once, and must cancel */
	pgsh_deadline_cancel_allowed = true;
	if (unlikely(!pgsh_deadline_armed_for(d)))
		pgsh_deadline_arm(d);
}

/*
 * The call is over: a deadline that passes from now on only marks the
 * statement, whose next call fails.  A cancel the timer requested but no
 * CHECK_FOR_INTERRUPTS saw yet is withdrawn, so that it cannot cancel
 * whatever runs next.
 */
static inline void
pgsh_deadline_call_end(const ShieldDeadline *d)
{
	if (!d->enforce)
		return;
	pgsh_deadline_cancel_allowed = false;
	if (unlikely(pgsh_deadline_cancel_requested))
		pgsh_deadline_withdraw_cancel();
}

/* What an error in flight is to a statement's deadline. */
typedef enum ShieldDeadlineError
{
	PGSH_DEADLINE_NONE,			/* not the deadline's */
	PGSH_DEADLINE_CANCEL,		/* core's cancel, requested by the deadline */
	PGSH_DEADLINE_RAISED		/* pg_shield's deadline error already */
} ShieldDeadlineError;

extern ShieldDeadlineError pgsh_deadline_error(const ShieldDeadline *d);
PGSH_NORETURN extern void pgsh_deadline_raise(const ShieldDeadline *d,
											  bool in_catch);
extern void pgsh_deadline_release(void);

/*
 * The statement ended, on whatever path: release its deadline (see
 * deadline.c), unless the timer was armed for another statement's (an open
 * cursor's).  Never fails.
 */
static inline void
pgsh_deadline_end(const ShieldDeadline *d)
{
	if (d->enforce && pgsh_deadline_armed_token == d->token)
		pgsh_deadline_release();
}

/* Monitor mode: did the statement, now ending, outlive its deadline? */
static inline bool
pgsh_deadline_overran(const ShieldDeadline *d)
{
	return d->at != 0 && !d->enforce && GetCurrentTimestamp() > d->at;
}
extern void pgsh_deadline_subxact_aborted(void);

/*
 * A top-level transaction ended outside any CALL: no deadline may cancel
 * anything any more.  Nearly always none can, and this costs a load.
 */
static inline void
pgsh_deadline_xact_end(void)
{
	/* (the timer requests a cancel only while it is allowed) */
	if (unlikely(pgsh_deadline_cancel_allowed))
		pgsh_deadline_release();
}

PGSH_END_INTERNAL

#endif							/* PGSH_DEADLINE_H */
