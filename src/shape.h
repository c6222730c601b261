/*-------------------------------------------------------------------------
 *
 * shape.h
 *		The shape of a statement: the key query policies match on, where a
 *		constant and a parameter in the same place are alike.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/shape.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSH_SHAPE_H
#define PGSH_SHAPE_H

#include "nodes/parsenodes.h"

#include "compat.h"

PGSH_BEGIN_INTERNAL

/* The shape of an analyzed, jumbled, plannable Query; never 0. */
extern uint64 pgsh_shape_compute(Query *query);

/*
 * Remember the shape of a query just analyzed (or jumbled by pg_shield
 * itself), under its fingerprint, if some query policy may need it.
 */
extern void pgsh_shape_note(Query *query);

/* The shape remembered for a fingerprint; 0 if none is. */
extern uint64 pgsh_shape_of(uint64 queryid);

PGSH_END_INTERNAL

#endif							/* PGSH_SHAPE_H */
