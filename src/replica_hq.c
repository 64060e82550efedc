/*-------------------------------------------------------------------------
 *
 * replica_hq.c
 *	  HQ's DBA functions for store replicas: add a store (its publication),
 *	  make its slot, subscribe to its outbox, remove it.
 *
 * Adding a store takes two calls because PostgreSQL orders them: the
 * publication must exist before the slot is made (a walsender decoding
 * changes from before the publication existed fails with "publication
 * does not exist" in PG15), and a slot can only be made before the first
 * write of a transaction.  So loyalty.replica_add_store() writes (the
 * publication and the registry row) and loyalty.replica_create_slot(),
 * in a transaction of its own, makes the slot.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "identity.h"
#include "replica.h"

PG_FUNCTION_INFO_V1(loyalty_replica_add_store);
PG_FUNCTION_INFO_V1(loyalty_replica_create_slot);
PG_FUNCTION_INFO_V1(loyalty_replica_remove_store);
PG_FUNCTION_INFO_V1(loyalty_replica_attach_outbox);

/*
 * code_arg
 *		A required store code argument, checked.
 */
static char *
code_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *code;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("store code must not be null")));
	code = TextDatumGetCString(PG_GETARG_DATUM(argno));
	replica_check_store_code(code);
	return code;
}

/*
 * spi_begin
 *		Check the caller is a DBA and connect to SPI.
 */
static void
spi_begin(void)
{
	int			ret;

	loyalty_require_department(loyalty_caller(), DEPT_BIT(DEPT_DBA));
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
}

/*
 * require_not_store
 *		Stores are added at HQ or at a hub, never at a store replica.
 */
static void
require_not_store(void)
{
	char		code[LOYALTY_CODE_LEN];

	if (strcmp(replica_node_role(code, NULL), "store") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("this server is the replica of store \"%s\"", code),
				 errhint("Add stores at headquarters or at a hub.")));
}

/*
 * registered
 *		Whether the store has a row in loyalty.replica_store.
 */
static bool
registered(const char *code)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	values[0] = CStringGetTextDatum(code);
	replica_spi_exec("SELECT 1 FROM loyalty.replica_store r WHERE r.store_code = $1 FOR UPDATE",
					 1, types, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * loyalty.replica_add_store(store_code, offline_redeem_cap, via_hub)
 *		returns text (the publication's name)
 */
Datum
loyalty_replica_add_store(PG_FUNCTION_ARGS)
{
	char	   *code = code_arg(fcinfo, 0);
	char	   *pubname = replica_store_object_name(code);
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = "     ";

	if (PG_ARGISNULL(1) || PG_GETARG_INT64(1) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("offline redemption cap must be zero or more points")));
	if (!PG_ARGISNULL(2))
		replica_check_store_code(TextDatumGetCString(PG_GETARG_DATUM(2)));
	spi_begin();
	require_not_store();

	values[0] = CStringGetTextDatum(code);
	replica_spi_exec("SELECT 1 FROM loyalty.store s WHERE s.store_code = $1",
					 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" does not exist", code),
				 errhint("Create it with loyalty.create_store() first.")));
	if (registered(code))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("store \"%s\" already has a replica", code),
				 errhint("Use loyalty.replica_create_slot() to re-seed it, or loyalty.replica_remove_store() first.")));
	if (replica_publication_exists(pubname))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("publication \"%s\" already exists", pubname),
				 errhint("Drop the stray publication, or remove the store with loyalty.replica_remove_store().")));

	replica_create_store_publication(pubname, code);

	values[1] = CStringGetTextDatum(pubname);
	values[2] = CStringGetTextDatum(pubname);
	values[3] = PG_GETARG_DATUM(1);
	if (PG_ARGISNULL(2))
		nulls[4] = 'n';
	else
		values[4] = PG_GETARG_DATUM(2);
	replica_spi_exec("INSERT INTO loyalty.replica_store "
					 "(store_code, publication, slot_name, offline_redeem_cap, via_hub) "
					 "VALUES ($1, $2, $3, $4, $5)",
					 5, types, values, nulls, SPI_OK_INSERT);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(pubname));
}

/*
 * loyalty.replica_create_slot(store_code) returns text (the slot's name)
 *		Make the store's slot; an existing, inactive one is dropped first
 *		(re-seeding a store whose slot was lost or invalidated).  Must be
 *		the first thing its transaction does.
 */
Datum
loyalty_replica_create_slot(PG_FUNCTION_ARGS)
{
	char	   *code = code_arg(fcinfo, 0);
	char	   *slotname = replica_store_object_name(code);
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	spi_begin();
	values[0] = CStringGetTextDatum(code);
	replica_spi_exec("SELECT 1 FROM loyalty.replica_store r WHERE r.store_code = $1",
					 1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" has no replica", code),
				 errhint("Add it with loyalty.replica_add_store() first, and commit.")));
	replica_drop_slot(slotname, false);
	replica_create_slot(slotname);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(slotname));
}

/*
 * loyalty.replica_attach_outbox(store_code, store_conninfo) returns text
 *		HQ subscribes to the store's outbox (publication loyalty_outbox,
 *		made by loyalty.store_subscribe(); its slot loyalty_outbox is made
 *		on the store from here if missing).  Events already in the
 *		outbox are copied and applied once; any already applied are
 *		counted as redeliveries.
 */
Datum
loyalty_replica_attach_outbox(PG_FUNCTION_ARGS)
{
	char	   *code = code_arg(fcinfo, 0);
	char	   *subname = replica_outbox_sub_name(code);
	char	   *conninfo;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("store connection string must not be null")));
	conninfo = TextDatumGetCString(PG_GETARG_DATUM(1));
	spi_begin();
	require_not_store();
	if (!registered(code))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" has no replica", code),
				 errhint("Add it with loyalty.replica_add_store() first.")));
	if (replica_subscription_exists(subname))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("the outbox of store \"%s\" is already attached", code)));
	replica_ensure_remote_slot(conninfo, subname);
	replica_create_subscription(subname, conninfo, REPLICA_OUTBOX_PUB,
								REPLICA_OUTBOX_SLOT, true);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(subname));
}

/*
 * loyalty.replica_remove_store(store_code, force) returns void
 *		Drop HQ's subscription to the store's outbox, the store's
 *		publication and its slot (so HQ's disk cannot fill), and its
 *		registry row.  The outbox history and verdicts stay.  An unknown
 *		store is an error; a stray slot or publication of that name
 *		without a registry row is removed all the same.
 */
Datum
loyalty_replica_remove_store(PG_FUNCTION_ARGS)
{
	char	   *code = code_arg(fcinfo, 0);
	char	   *name = replica_store_object_name(code);
	bool		force = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	bool		known;
	bool		has_slot;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	spi_begin();
	known = registered(code);
	has_slot = replica_slot_exists(name, NULL);
	if (!known && !has_slot && !replica_publication_exists(name) &&
		!replica_subscription_exists(replica_outbox_sub_name(code)))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" has no replica", code)));

	replica_drop_subscription(replica_outbox_sub_name(code));
	replica_drop_publication(name);
	values[0] = CStringGetTextDatum(code);
	replica_spi_exec("DELETE FROM loyalty.replica_store r WHERE r.store_code = $1",
					 1, types, values, NULL, SPI_OK_DELETE);
	/* last: dropping a slot cannot be rolled back */
	replica_drop_slot(name, force);
	SPI_finish();
	PG_RETURN_VOID();
}
