/*-------------------------------------------------------------------------
 *
 * policy.c
 *		Where policies are stored.
 *
 * Policies live in the extension table shield.policy of each database, so
 * pg_dump includes them and physical standbys receive them through WAL.
 *
 * Copyright (c) 2026, The pg_shield Developers
 *
 * IDENTIFICATION
 *	  src/policy.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/extension.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "policy.h"

/*
 * The OID of shield.policy in this database, or InvalidOid if pg_shield is
 * not installed here.  Only a table that belongs to the extension counts, so
 * a look-alike created by a user is never read.
 */
Oid
pgsh_policy_relid(void)
{
	Oid			extoid = get_extension_oid("pg_shield", true);
	Oid			nspoid;
	Oid			relid;

	if (!OidIsValid(extoid))
		return InvalidOid;
	nspoid = get_namespace_oid(PGSH_SCHEMA, true);
	if (!OidIsValid(nspoid))
		return InvalidOid;
	relid = get_relname_relid(PGSH_POLICY_TABLE, nspoid);
	if (!OidIsValid(relid) ||
		getExtensionOfObject(RelationRelationId, relid) != extoid)
		return InvalidOid;
	return relid;
}

/* Owner of shield.policy: the role its writes run as. */
Oid
pgsh_policy_owner(Oid relid)
{
	HeapTuple	tuple;
	Oid			owner;

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}
