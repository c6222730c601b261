/*-------------------------------------------------------------------------
 *
 * admission.h
 *		Admission control: cost ceilings, rate limits, and concurrency
 *		slots with a bounded priority queue.
 *
 * Implemented by admission.c (pgsh_admit) and the admission_*.c files its
 * header lists, which share admission_int.h.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/admission.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_ADMISSION_H
#define PGSH_ADMISSION_H

#include "utils/timestamp.h"

#include "breaker.h"
#include "compat.h"
#include "policy.h"

PGSH_BEGIN_INTERNAL

/* A statement asking to run. */
typedef struct ShieldAdmitRequest
{
	Oid			userid;
	uint64		queryid;
	double		cost;			/* estimated total cost, < 0 if none */
	TimestampTz arrived;		/* start of the statement: deadlines count
								 * from here */
	const ShieldEffectivePolicy *policy;
	uint64		policy_tag;		/* names that resolution, 0 if unknown (see
								 * pgsh_policy_resolve_tagged) */
} ShieldAdmitRequest;

/* What admission decided for a statement it let through. */
typedef struct ShieldAdmission
{
	bool		governed;		/* false: exempt, or pg_shield is off */
	uint32		slot_id;		/* names the slots it holds (see
								 * pgsh_admission_release), 0: none */
	bool		queued;			/* it waited in the queue */
	double		queue_ms;
	bool		would_reject;	/* monitor mode: enforce would have rejected
								 * it */
	bool		would_queue;	/* monitor mode: enforce would have queued it */
	int32		role_active;	/* its role's running statements, itself
								 * included, once admitted */
	ShieldBreakerTicket breaker;	/* its fingerprint's breaker, if any */
} ShieldAdmission;

extern Size pgsh_admission_shmem_size(void);
extern void pgsh_admission_shmem_init(void);
extern void pgsh_admission_init(void);
extern void pgsh_admission_publish_max_active(int max_active);

extern void pgsh_admit(const ShieldAdmitRequest *req, ShieldAdmission *adm);
extern void pgsh_admission_release(uint32 slot_id);
extern void pgsh_admission_cleanup(void);

/* For the views. */
typedef struct ShieldActivity
{
	int			pid;
	Oid			dbid;
	Oid			userid;
	uint64		queryid;
	bool		queued;
	ShieldPriority priority;
	TimestampTz since;
	TimestampTz deadline_at;	/* 0: none */
} ShieldActivity;

extern ShieldActivity *pgsh_activity_copy(int *n);

/* A scope of this database as shield.policy_usage shows it. */
typedef struct ShieldScopeUsage
{
	Oid			userid;			/* InvalidOid: every role */
	uint64		queryid;		/* 0: a role scope */
	int32		running;		/* slots held */
	int32		waiting;		/* queued statements that need it */
	double		tokens;			/* its rate bucket now, < 0: none used */
} ShieldScopeUsage;

extern ShieldScopeUsage *pgsh_scopes_usage(int *n);

/*
 * The overload controller's verdict: which priorities arriving statements
 * are shed at.  Read without a lock (a single atomic), so the planner may
 * ask it for every statement.
 */
typedef enum ShieldShedding
{
	PGSH_SHED_NONE,				/* not overloaded */
	PGSH_SHED_LOW,				/* overloaded: low is shed */
	PGSH_SHED_NORMAL			/* severe: low and normal are shed */
} ShieldShedding;

extern ShieldShedding pgsh_admission_shedding(void);
extern ShieldShedding pgsh_admission_overload(double *queue_delay_ms);
extern const char *pgsh_shedding_name(ShieldShedding level);

PGSH_END_INTERNAL

#endif							/* PGSH_ADMISSION_H */
