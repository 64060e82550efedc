/*-------------------------------------------------------------------------
 *
 * cache_invalidate.c
 *	  Cache invalidation for extension tables that backends cache.
 *
 * Inserting rows does not invalidate a table's relcache entry, so tables
 * whose contents are cached (the policy history, the staff role map) carry
 * a statement trigger that sends a relcache invalidation for the table.  It
 * is transactional: other backends see it when the change commits, the
 * changing backend at its next command.  Each cache registers a relcache
 * callback and drops its contents when its table's invalidation arrives
 * (the pattern pg_cron uses for cron.job).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "cache.h"

PG_FUNCTION_INFO_V1(loyalty_cache_invalidate);

/*
 * loyalty_relid
 *		OID of table loyalty.<relname>, or InvalidOid if it does not exist
 *		(for example while the extension is being created or dropped).
 */
Oid
loyalty_relid(const char *relname)
{
	Oid			nsp = get_namespace_oid("loyalty", true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid(relname, nsp);
}

/*
 * loyalty_cache_invalidate
 *		Statement trigger: invalidate every backend's cache of this table.
 */
Datum
loyalty_cache_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty._cache_invalidate() must be called as a trigger")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}
