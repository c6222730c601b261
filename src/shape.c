/*-------------------------------------------------------------------------
 *
 * shape.c
 *		The shape of a statement: the key query policies match on.
 *
 * Core's query identifier, the fingerprint, jumbles a constant by its type
 * and a parameter by its number and type, so the same statement sent by
 * two drivers gets two fingerprints: "WHERE id = 5" as psycopg2 inlines it
 * and "WHERE id = $1" as JDBC sends it, "bigint_col = 5" (operator
 * int8 = int4) and "bigint_col = $1" (int8 = int8), "IN (1, 2)" and
 * "IN (1, 2, 3)".  A policy declared with one form would miss the others.
 *
 * The shape is core's own jumble of a copy of the analyzed query in which
 * those differences are erased, bottom-up:
 *
 *	- every constant, and every parameter of the client ($n, or a PL/pgSQL
 *	  variable), becomes one canonical parameter, without number or type;
 *	- a cast of a canonical parameter (implicit or explicit, a relabeling,
 *	  an I/O conversion, an array or domain coercion) is that parameter;
 *	- an ARRAY[...] or IN list made only of canonical parameters is one;
 *	- an operator with a canonical parameter among its operands is known by
 *	  its name, not by its OID (which encodes the operand types), and the
 *	  implicit casts the constant's type made the parser put on its other
 *	  operands are dropped.
 *
 * Everything else (tables, columns, functions, operators without a constant
 * or parameter, the structure of the statement) is jumbled as core jumbles
 * it, by core's JumbleQuery, so a shape is as specific as a fingerprint
 * apart from the above.  Jumbling calls no hook of any extension, and the
 * copy is made by query_tree_mutator, so the statement's own Query is never
 * changed.
 *
 * Computing a shape costs a copy of the query tree and a second jumble:
 * too much for every statement.  So this file also keeps a backend-local
 * map from fingerprint to shape, filled after parse analysis, only while
 * the database has query policies declared with a shape (or the policy
 * cache does not know yet): policy resolution then finds a statement's
 * shape by its fingerprint with one probe, and a statement that was seen
 * before costs one probe at parse time and no computation.
 *
 * Owns: the computation of shapes and the backend-local map from
 *		  fingerprint to shape.
 * Calls: policy.c (pgsh_policy_shape_noted).
 * Locking: backend-local state only, no lock.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/shape.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "nodes/nodeFuncs.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "compat.h"
#include "policy.h"
#include "shape.h"

/*----
 * Computing a shape
 *----
 */

/* Scratch memory of one computation, emptied after each. */
static MemoryContext shape_cxt = NULL;

/* The canonical parameter: one for every constant and client parameter. */
static Node *
shape_canonical_param(int location)
{
	Param	   *p = makeNode(Param);

	p->paramkind = PARAM_EXTERN;
	p->paramid = 1;
	p->paramtype = InvalidOid;
	p->paramtypmod = -1;
	p->paramcollid = InvalidOid;
	p->location = location;
	return (Node *) p;
}

/*
 * Bottom-up, every client parameter is canonical by the time its parent is
 * looked at, so any PARAM_EXTERN parameter of the copy is.
 */
static inline bool
shape_is_canonical(Node *node)
{
	return node != NULL && IsA(node, Param) &&
		((Param *) node)->paramkind == PARAM_EXTERN;
}

/*
 * Whether every expression of a list is the canonical parameter: such a
 * list (an ARRAY[...], an IN list, a cast's arguments) becomes one itself.
 */
static bool
shape_all_canonical(List *args)
{
	ListCell   *lc;

	foreach(lc, args)
	{
		if (!shape_is_canonical((Node *) lfirst(lc)))
			return false;
	}
	return true;
}

/*
 * The operand of the implicit casts wrapped around an expression: what
 * "int_col = 3.0" compares once the numeric constant no longer makes the
 * parser cast int_col to numeric.  Explicit casts are the statement's own
 * and stay.
 */
static Node *
shape_strip_implicit(Node *node)
{
	for (;;)
	{
		if (IsA(node, FuncExpr) &&
			((FuncExpr *) node)->funcformat == COERCE_IMPLICIT_CAST &&
			((FuncExpr *) node)->args != NIL)
			node = (Node *) linitial(((FuncExpr *) node)->args);
		else if (IsA(node, RelabelType) &&
				 ((RelabelType *) node)->relabelformat == COERCE_IMPLICIT_CAST)
			node = (Node *) ((RelabelType *) node)->arg;
		else if (IsA(node, CoerceViaIO) &&
				 ((CoerceViaIO *) node)->coerceformat == COERCE_IMPLICIT_CAST)
			node = (Node *) ((CoerceViaIO *) node)->arg;
		else
			return node;
	}
}

/*
 * An operator's arguments when one of them is canonical: the others without
 * their implicit casts.  NIL if none is canonical.
 */
static List *
shape_operator_args(List *args)
{
	ListCell   *lc;
	List	   *result = NIL;
	bool		any = false;

	foreach(lc, args)
	{
		if (shape_is_canonical((Node *) lfirst(lc)))
			any = true;
	}
	if (!any)
		return NIL;
	foreach(lc, args)
	{
		Node	   *arg = (Node *) lfirst(lc);

		if (!shape_is_canonical(arg))
			arg = shape_strip_implicit(arg);
		result = lappend(result, arg);
	}
	return result;
}

/*
 * An operator known by its name: "=" whatever the types of its operands
 * (int8 = int4, int8 = int8, numeric = numeric).  The name's hash takes the
 * place of the OID in the jumble.
 */
static Oid
shape_operator_key(Oid opno)
{
	char	   *name = get_opname(opno);

	if (name == NULL)
		return opno;
	return (Oid) hash_bytes((const unsigned char *) name, strlen(name));
}

/*
 * Copy a node of the query with the differences the shape ignores erased
 * (see the file header).  Children are copied first, so a parent sees
 * canonical parameters where its constants and client parameters were.
 * Parameters other than the client's (PARAM_EXTERN) are kept as they are.
 */
static Node *
shape_mutator(Node *node, void *context)
{
	if (node == NULL)
		return NULL;

	/* subqueries: in FROM, in WITH and in sublinks */
	if (IsA(node, Query))
		return (Node *) query_tree_mutator((Query *) node, shape_mutator,
										   context, 0);

	if (IsA(node, Const))
		return shape_canonical_param(((Const *) node)->location);
	if (IsA(node, Param))
	{
		Param	   *param = (Param *) node;

		if (param->paramkind == PARAM_EXTERN)
			return shape_canonical_param(param->location);
		return copyObject(node);
	}

	/* children first: a copy whose canonical parts are already canonical */
	node = expression_tree_mutator(node, shape_mutator, context);

	switch (nodeTag(node))
	{
		case T_FuncExpr:
			{
				FuncExpr   *func = (FuncExpr *) node;

				if ((func->funcformat == COERCE_IMPLICIT_CAST ||
					 func->funcformat == COERCE_EXPLICIT_CAST) &&
					func->args != NIL && shape_all_canonical(func->args))
					return shape_canonical_param(func->location);
				break;
			}
		case T_RelabelType:
			if (shape_is_canonical((Node *) ((RelabelType *) node)->arg))
				return shape_canonical_param(((RelabelType *) node)->location);
			break;
		case T_CoerceViaIO:
			if (shape_is_canonical((Node *) ((CoerceViaIO *) node)->arg))
				return shape_canonical_param(((CoerceViaIO *) node)->location);
			break;
		case T_ArrayCoerceExpr:
			if (shape_is_canonical((Node *) ((ArrayCoerceExpr *) node)->arg))
				return shape_canonical_param(((ArrayCoerceExpr *) node)->location);
			break;
		case T_CoerceToDomain:
			if (shape_is_canonical((Node *) ((CoerceToDomain *) node)->arg))
				return shape_canonical_param(((CoerceToDomain *) node)->location);
			break;
		case T_ArrayExpr:
			if (shape_all_canonical(((ArrayExpr *) node)->elements))
				return shape_canonical_param(((ArrayExpr *) node)->location);
			break;
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:
			{
				OpExpr	   *op = (OpExpr *) node;
				List	   *args = shape_operator_args(op->args);

				if (args != NIL)
				{
					op->opno = shape_operator_key(op->opno);
					op->opfuncid = InvalidOid;
					op->opresulttype = InvalidOid;
					op->args = args;
				}
				break;
			}
		case T_ScalarArrayOpExpr:
			{
				ScalarArrayOpExpr *op = (ScalarArrayOpExpr *) node;
				List	   *args = shape_operator_args(op->args);

				if (args != NIL)
				{
					op->opno = shape_operator_key(op->opno);
					op->opfuncid = InvalidOid;
					op->hashfuncid = InvalidOid;
					op->negfuncid = InvalidOid;
					op->args = args;
				}
				break;
			}
		default:
			break;
	}
	return node;
}

/*
 * The shape of an analyzed plannable query whose fingerprint core has
 * computed (so query identifiers are enabled).  The scratch copy lives in
 * shape_cxt and is gone on return; should anything fail, the next
 * computation empties what is left.
 */
uint64
pgsh_shape_compute(Query *query)
{
	MemoryContext oldcxt;
	Query	   *copy;
	uint64		shape;

	Assert(query->commandType != CMD_UTILITY);

	if (shape_cxt == NULL)
		shape_cxt = AllocSetContextCreate(TopMemoryContext,
										  "pg_shield shapes",
										  ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(shape_cxt);
	oldcxt = MemoryContextSwitchTo(shape_cxt);

	copy = query_tree_mutator(query, shape_mutator, NULL, 0);
	(void) PGSH_JUMBLE_QUERY(copy, "");
	shape = PGSH_QUERYID(copy->queryId);

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(shape_cxt);
	return shape;
}

/*----
 * The map from fingerprint to shape
 *
 * Open addressing with linear probing, keyed by the fingerprint (already a
 * hash; 0 marks a free slot, and is no fingerprint).  Bounded by
 * generations: when the current one is full it becomes the old one and a
 * new, empty one starts; a fingerprint found only in the old one is copied
 * into the new one.  So what a session keeps using survives a turnover,
 * and what it stopped using is forgotten after two.  A statement sent as
 * text is analyzed at every execution and noted again anyway; only a
 * prepared statement (or a PL/pgSQL plan) left unused for two generations,
 * then executed, goes unmatched by shape, falling back to its fingerprint,
 * until it is analyzed again.
 *----
 */
#define SHAPE_MAP_SLOTS	4096	/* per generation; a power of two */
#define SHAPE_MAP_FILL	3072	/* entries before a generation turns over */

typedef struct ShieldShapeSlot
{
	uint64		queryid;		/* 0: free */
	uint64		shape;
} ShieldShapeSlot;

static ShieldShapeSlot *shape_map_new = NULL;
static ShieldShapeSlot *shape_map_old = NULL;
static int	shape_map_used = 0; /* entries in shape_map_new */

/* The slot of queryid in map, or the free slot where it would go. */
static inline ShieldShapeSlot *
shape_map_probe(ShieldShapeSlot *map, uint64 queryid)
{
	uint32		i = (uint32) queryid & (SHAPE_MAP_SLOTS - 1);

	/* never full: SHAPE_MAP_FILL < SHAPE_MAP_SLOTS */
	while (map[i].queryid != 0 && map[i].queryid != queryid)
		i = (i + 1) & (SHAPE_MAP_SLOTS - 1);
	return &map[i];
}

/*
 * Remember the shape of queryid in the current generation, turning the
 * generations over first if it is full.  Allocates before it changes
 * anything, so that running out of memory leaves the map as it was.
 */
static void
shape_map_put(uint64 queryid, uint64 shape)
{
	ShieldShapeSlot *slot;

	if (shape_map_new == NULL)
		shape_map_new = MemoryContextAllocZero(TopMemoryContext,
											   SHAPE_MAP_SLOTS * sizeof(ShieldShapeSlot));
	else if (shape_map_used >= SHAPE_MAP_FILL)
	{
		ShieldShapeSlot *recycled = shape_map_old;

		if (recycled == NULL)
			recycled = MemoryContextAlloc(TopMemoryContext,
										  SHAPE_MAP_SLOTS * sizeof(ShieldShapeSlot));
		memset(recycled, 0, SHAPE_MAP_SLOTS * sizeof(ShieldShapeSlot));
		shape_map_old = shape_map_new;
		shape_map_new = recycled;
		shape_map_used = 0;
	}
	slot = shape_map_probe(shape_map_new, queryid);
	if (slot->queryid == 0)
	{
		slot->queryid = queryid;
		shape_map_used++;
	}
	slot->shape = shape;
}

/*
 * The shape remembered for queryid, 0 if none is.  One found only in the
 * old generation is copied into the new one, so that what a session keeps
 * using survives the next turnover.
 */
uint64
pgsh_shape_of(uint64 queryid)
{
	ShieldShapeSlot *slot;
	uint64		shape;

	if (shape_map_new == NULL || queryid == 0)
		return 0;
	slot = shape_map_probe(shape_map_new, queryid);
	if (likely(slot->queryid != 0))
		return slot->shape;
	if (shape_map_old == NULL)
		return 0;
	slot = shape_map_probe(shape_map_old, queryid);
	if (slot->queryid == 0)
		return 0;
	shape = slot->shape;
	shape_map_put(queryid, shape);
	return shape;
}

/*
 * Remember the shape of a query just analyzed, under its fingerprint,
 * while some query policy of the database may match by shape.  Computed
 * only for a fingerprint not seen before; the policy cache is told, since
 * a resolution memoized without the shape may be wrong now.
 */
void
pgsh_shape_note(Query *query)
{
	uint64		queryid = PGSH_QUERYID(query->queryId);

	if (!pgsh_policy_shapes_wanted || queryid == 0 ||
		query->commandType == CMD_UTILITY)
		return;
	if (pgsh_shape_of(queryid) != 0)
		return;
	shape_map_put(queryid, pgsh_shape_compute(query));
	pgsh_policy_shape_noted(queryid);
}
