/*-------------------------------------------------------------------------
 *
 * replica_store_roles.c
 *	  At a store replica, the store's department roles appear with its
 *	  store row.
 *
 * A store server does not run loyalty.store_create(): the store row comes
 * from HQ by replication, and role OIDs are local to each server, so the
 * role map (loyalty.staff_role) is never replicated.  The row trigger
 * loyalty._store_arrived (ENABLE ALWAYS, so the apply worker fires it)
 * creates, when this server's own store row arrives, the NOLOGIN roles
 * loyalty_<store>_<department> (adopting plain NOLOGIN roles of that name),
 * makes each a member of its chain-wide group role and maps it in
 * loyalty.staff_role.  Staff logins are then made at the store with
 * loyalty.staff_create().  Roles are made from parse nodes, never SQL text.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"

#include "roles_caller.h"
#include "cache.h"
#include "replica.h"
#include "roles.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_store_arrived);

/*
 * loyalty._store_arrived() trigger
 *		AFTER INSERT ON loyalty.store FOR EACH ROW, ENABLE ALWAYS.  Does
 *		nothing except at a store replica, for its own store's row.
 */
Datum
loyalty_store_arrived(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	char		me[LOYALTY_CODE_LEN];
	char	   *code;
	bool		isnull;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty._store_arrived() must be an INSERT row trigger")));
	code = TextDatumGetCString(heap_getattr(trigdata->tg_trigtuple,
											SPI_fnumber(trigdata->tg_relation->rd_att, "store_code"),
											trigdata->tg_relation->rd_att, &isnull));

	lspi_connect(LSPI_READ_WRITE);
	if (strcmp(replica_node_role(me, NULL), "store") != 0 || strcmp(me, code) != 0)
	{
		lspi_finish();
		return PointerGetDatum(NULL);
	}
	loyalty_create_store_roles(code);
	/* the statement trigger that does this does not fire in the apply worker */
	CacheInvalidateRelcacheByRelid(loyalty_relid("staff_role"));
	lspi_finish();
	return PointerGetDatum(NULL);
}
