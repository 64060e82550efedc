/*-------------------------------------------------------------------------
 *
 * replica_guard.c
 *	  DROP EXTENSION loyalty and store replicas.
 *
 * Publications and replication slots cannot belong to an extension, so
 * DROP EXTENSION would leave them: an empty publication, and a slot that
 * pins WAL for ever.  The event trigger loyalty_drop_guard (ddl_command_start,
 * DROP EXTENSION) runs before the extension is dropped:
 *	- while stores are attached (a loyalty_* replication slot of this
 *	  database, or a loyalty_* subscription in it) it refuses, naming
 *	  them, with the runbook's hint;
 *	- otherwise it drops the loyalty_* publications of this database, in
 *	  the DROP's transaction (so a failed DROP keeps them).
 * Slots are never dropped here: dropping one cannot be rolled back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"

#include "replica.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_drop_guard);

/*
 * drops_loyalty
 *		Whether a DROP EXTENSION statement names loyalty.
 */
static bool
drops_loyalty(Node *parsetree)
{
	DropStmt   *stmt;
	ListCell   *lc;

	if (parsetree == NULL || !IsA(parsetree, DropStmt))
		return false;
	stmt = (DropStmt *) parsetree;
	if (stmt->removeType != OBJECT_EXTENSION)
		return false;
	foreach(lc, stmt->objects)
	{
		Node	   *obj = lfirst(lc);

		if (IsA(obj, String) && strcmp(strVal(obj), "loyalty") == 0)
			return true;
	}
	return false;
}

/*
 * loyalty._drop_guard() returns event_trigger
 */
Datum
loyalty_drop_guard(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	char	   *attached;
	uint64		i;
	uint64		n;
	List	   *pubs = NIL;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty._drop_guard() must be called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!drops_loyalty(trigdata->parsetree))
		PG_RETURN_NULL();

	lspi_connect(LSPI_READ_WRITE);
	lspi_exec("SELECT pg_catalog.string_agg(x.what, ', ' ORDER BY x.what) FROM ("
					 " SELECT 'slot ' || s.slot_name AS what FROM pg_catalog.pg_replication_slots s"
					 "  WHERE s.slot_name LIKE 'loyalty\\_%' AND s.database = pg_catalog.current_database()"
					 " UNION ALL"
					 " SELECT 'subscription ' || b.subname FROM pg_catalog.pg_subscription b"
					 "  JOIN pg_catalog.pg_database d ON d.oid = b.subdbid"
					 "  WHERE b.subname LIKE 'loyalty\\_%' AND d.datname = pg_catalog.current_database()) x",
					 0, NULL, NULL, NULL, true, 0, SPI_OK_SELECT);
	attached = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (attached != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop extension loyalty while store replicas are attached"),
				 errdetail("This database still has %s.", attached),
				 errhint("Remove each store first: loyalty.replica_remove_store() at headquarters or a hub, loyalty.store_unsubscribe(drop_outbox_slot => true) at a store (docs/operations.md).")));

	lspi_exec("SELECT p.pubname::pg_catalog.text FROM pg_catalog.pg_publication p "
					 "WHERE p.pubname LIKE 'loyalty\\_%' ORDER BY 1",
					 0, NULL, NULL, NULL, true, 0, SPI_OK_SELECT);
	n = SPI_processed;
	for (i = 0; i < n; i++)
		pubs = lappend(pubs, pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1)));
	foreach(lc, pubs)
		replica_drop_publication((const char *) lfirst(lc));
	lspi_finish();
	PG_RETURN_NULL();
}
