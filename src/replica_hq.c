/*-------------------------------------------------------------------------
 *
 * replica_hq.c
 *	  DBA functions for store replicas, at HQ and at regional hubs: add a
 *	  store or a hub (its publication), make its slot, subscribe to its
 *	  outbox, remove it.
 *
 * HQ keeps the registry (loyalty.replica_store), which reaches hubs and
 * stores by replication.  A store added with via_hub has its publication
 * and slot at the hub: the hub's DBA runs replica_add_store,
 * replica_create_slot and replica_attach_outbox there, and HQ subscribes
 * to the hub's outbox, which carries all of its stores' events.
 *
 * Adding a store takes two calls because PostgreSQL orders them: the
 * publication must exist before the slot is made (a walsender decoding
 * changes from before the publication existed fails with "publication
 * does not exist" in PG15), and a slot can only be made before the first
 * write of a transaction.  So loyalty.replica_store_add() writes (the
 * publication and the registry row) and loyalty.replica_slot_create(),
 * in a transaction of its own, makes the slot.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "audit.h"
#include "roles_caller.h"
#include "replica.h"
#include "request.h"
#include "roles.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_replica_add_store);
PG_FUNCTION_INFO_V1(loyalty_replica_add_hub);
PG_FUNCTION_INFO_V1(loyalty_replica_create_slot);
PG_FUNCTION_INFO_V1(loyalty_replica_remove_store);
PG_FUNCTION_INFO_V1(loyalty_replica_attach_outbox);
PG_FUNCTION_INFO_V1(loyalty_replica_adopt);
PG_FUNCTION_INFO_V1(loyalty_replica_store_add);
PG_FUNCTION_INFO_V1(loyalty_replica_hub_add);
PG_FUNCTION_INFO_V1(loyalty_replica_store_remove);
PG_FUNCTION_INFO_V1(loyalty_replica_outbox_attach);

/*
 * audit_admin
 *		The change record of one replica administration call (purpose
 *		operations, no member): the action and the store or hub code, with
 *		a second key and value when given.  Called after lspi_finish(), in
 *		the call's transaction.
 */
static void
audit_admin(const char *action, const char *code, const char *key2,
			const char *value2, bool quoted2)
{
	const char *keys[2] = {"store_code", key2};
	const char *values[2] = {code, value2};
	bool		quoted[2] = {true, quoted2};

	loyalty_audit_change(NULL, action, "operations",
						 loyalty_audit_detail(key2 ? 2 : 1, keys, values, quoted));
}

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
	loyalty_check_store_code(code);
	return code;
}

/*
 * spi_begin
 *		Check the caller is a DBA and connect to SPI.
 */
static void
spi_begin(void)
{

	loyalty_require_department(loyalty_caller(), DEPT_BIT(DEPT_DBA));
	lspi_connect(LSPI_READ_WRITE);
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
 * RegistryRow
 *		A store's or hub's row of loyalty.replica_store.
 */
typedef struct RegistryRow
{
	bool		found;
	bool		is_hub;
	char	   *via_hub;		/* NULL: direct */
	char	   *slot_name;
} RegistryRow;

/*
 * lookup
 *		The registry row of code, locked if lock (at HQ, which owns the
 *		registry).
 */
static RegistryRow
lookup(const char *code, bool lock)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	RegistryRow row = {0};

	values[0] = CStringGetTextDatum(code);
	lspi_exec(lock ?
					 "SELECT r.kind, r.via_hub, r.slot_name FROM loyalty.replica_store r "
					 "WHERE r.store_code = $1 FOR UPDATE" :
					 "SELECT r.kind, r.via_hub, r.slot_name FROM loyalty.replica_store r "
					 "WHERE r.store_code = $1",
					 1, types, values, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return row;
	row.found = true;
	row.is_hub = strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "hub") == 0;
	row.via_hub = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	row.slot_name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	return row;
}

/*
 * registered
 *		Whether code has a row in loyalty.replica_store (locked).
 */
static bool
registered(const char *code)
{
	return lookup(code, true).found;
}

/*
 * local_row
 *		The registry row of a store or hub this server serves: at HQ a
 *		store registered without hub, or a hub; at a hub a store registered
 *		at HQ under this hub.  Errors otherwise.  lock: lock the row at HQ
 *		(a row lock is a write: not before making a slot).
 */
static RegistryRow
local_row(const char *code, bool lock)
{
	char		me[LOYALTY_CODE_LEN];
	const char *role = replica_node_role(me, NULL);
	RegistryRow row = lookup(code, lock && strcmp(role, "hq") == 0);

	if (!row.found)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" has no replica", code),
				 errhint("Add it with loyalty.replica_store_add() at headquarters first, and commit.")));
	if (strcmp(role, "hq") == 0 && row.via_hub != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("store \"%s\" is replicated through hub \"%s\"", code, row.via_hub),
				 errhint("Run this function at the hub.")));
	if (strcmp(role, "hub") == 0 && (row.via_hub == NULL || strcmp(row.via_hub, me) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("store \"%s\" is not replicated through this hub \"%s\"", code, me)));
	return row;
}

/*
 * loyalty.replica_store_add(store_code, offline_redeem_cap, via_hub)
 *		returns text (the publication's name)
 *
 * At HQ: register the store and, unless it goes through a hub, create its
 * publication.  At a hub: create the publication of a store HQ registered
 * under this hub (the registry row arrives by replication).
 */
Datum
loyalty_replica_add_store(PG_FUNCTION_ARGS)
{
	char	   *code = code_arg(fcinfo, 0);
	char	   *pubname = replica_store_object_name(code);
	char	   *hub = NULL;
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = "     ";

	if (PG_ARGISNULL(1) || PG_GETARG_INT64(1) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("offline redemption cap must be zero or more points")));
	if (!PG_ARGISNULL(2))
	{
		hub = TextDatumGetCString(PG_GETARG_DATUM(2));
		loyalty_check_store_code(hub);
	}
	spi_begin();
	require_not_store();

	if (strcmp(replica_node_role(NULL, NULL), "hub") == 0)
	{
		(void) local_row(code, true);
		if (replica_publication_exists(pubname))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("store \"%s\" already has a replica", code)));
		replica_create_store_publication(pubname, code);
		lspi_finish();
		audit_admin("replica_store_add", code, "publication", pubname, true);
		PG_RETURN_TEXT_P(cstring_to_text(pubname));
	}

	/* HQ: this database applies the store's events (not a restored copy) */
	replica_identity_claim(false);
	values[0] = CStringGetTextDatum(code);
	lspi_exec("SELECT 1 FROM loyalty.store s WHERE s.store_code = $1",
					 1, types, values, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" does not exist", code),
				 errhint("Create it with loyalty.store_create() first.")));
	if (registered(code))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("store \"%s\" already has a replica", code),
				 errhint("Use loyalty.replica_slot_create() to re-seed it, or loyalty.replica_store_remove() first.")));
	if (hub != NULL)
	{
		RegistryRow h = lookup(hub, true);

		if (!h.found || !h.is_hub)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("hub \"%s\" does not exist", hub),
					 errhint("Add it with loyalty.replica_hub_add() first.")));
	}
	else
	{
		if (replica_publication_exists(pubname))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("publication \"%s\" already exists", pubname),
					 errhint("Drop the stray publication, or remove the store with loyalty.replica_store_remove().")));
		replica_create_store_publication(pubname, code);
	}

	values[1] = CStringGetTextDatum(pubname);
	values[2] = CStringGetTextDatum(pubname);
	values[3] = PG_GETARG_DATUM(1);
	if (hub == NULL)
		nulls[4] = 'n';
	else
		values[4] = CStringGetTextDatum(hub);
	lspi_exec("INSERT INTO loyalty.replica_store "
					 "(store_code, publication, slot_name, offline_redeem_cap, via_hub) "
					 "VALUES ($1, $2, $3, $4, $5)",
					 5, types, values, nulls, false, 0, SPI_OK_INSERT);
	lspi_finish();
	audit_admin("replica_store_add", code, "via_hub", hub, true);
	PG_RETURN_TEXT_P(cstring_to_text(pubname));
}

/*
 * loyalty.replica_hub_add(hub_code) returns text (the publication's name)
 *		At HQ: a regional hub, with a publication of every store's data
 *		(no row filters: the hub is chain infrastructure and filters for
 *		each of its stores).  Then loyalty.replica_slot_create(hub_code).
 */
Datum
loyalty_replica_add_hub(PG_FUNCTION_ARGS)
{
	char	   *code = code_arg(fcinfo, 0);
	char	   *pubname = replica_hub_object_name(code);
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];

	spi_begin();
	if (strcmp(replica_node_role(NULL, NULL), "hq") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("hubs are added at headquarters")));
	replica_identity_claim(false);
	values[0] = CStringGetTextDatum(code);
	lspi_exec("SELECT 1 FROM loyalty.store s WHERE s.store_code = $1",
					 1, types, values, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed > 0 || registered(code))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("\"%s\" is already a store or a hub", code),
				 errhint("Give the hub a code of its own.")));
	if (replica_publication_exists(pubname))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("publication \"%s\" already exists", pubname)));
	replica_create_store_publication(pubname, NULL);
	values[1] = CStringGetTextDatum(pubname);
	values[2] = CStringGetTextDatum(pubname);
	lspi_exec("INSERT INTO loyalty.replica_store (store_code, kind, publication, slot_name) "
					 "VALUES ($1, 'hub', $2, $3)",
					 3, types, values, NULL, false, 0, SPI_OK_INSERT);
	lspi_finish();
	audit_admin("replica_hub_add", code, NULL, NULL, false);
	PG_RETURN_TEXT_P(cstring_to_text(pubname));
}

/*
 * loyalty.replica_slot_create(code) returns text (the slot's name)
 *		Make the slot of a store (or, at HQ, of a hub) served by this
 *		server; an existing, inactive one is dropped first (re-seeding a
 *		store whose slot was lost or invalidated).  Must be the first thing
 *		its transaction does.
 */
Datum
loyalty_replica_create_slot(PG_FUNCTION_ARGS)
{
	char	   *code = code_arg(fcinfo, 0);
	RegistryRow row;

	spi_begin();
	row = local_row(code, false);
	replica_drop_slot(row.slot_name, false);
	replica_create_slot(row.slot_name);
	lspi_finish();
	/* after the slot: a slot is made before the transaction's first write */
	audit_admin("replica_slot_create", code, "slot", row.slot_name, true);
	PG_RETURN_TEXT_P(cstring_to_text(row.slot_name));
}

/*
 * loyalty.replica_outbox_attach(store_code, store_conninfo) returns text
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
	replica_check_conninfo(conninfo);
	spi_begin();
	require_not_store();
	if (strcmp(replica_node_role(NULL, NULL), "hq") == 0)
		replica_identity_claim(false);
	(void) local_row(code, true);
	if (replica_subscription_exists(subname))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("the outbox of store \"%s\" is already attached", code)));
	replica_check_remote_not_self(conninfo);
	replica_ensure_remote_slot(conninfo, subname);
	replica_create_subscription(subname, conninfo, REPLICA_OUTBOX_PUB,
								REPLICA_OUTBOX_SLOT, true);
	lspi_finish();
	audit_admin("replica_outbox_attach", code, "subscription", subname, true);
	PG_RETURN_TEXT_P(cstring_to_text(subname));
}

/*
 * loyalty.replica_store_remove(store_code, force) returns void
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
	bool		at_hq;
	RegistryRow row;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	spi_begin();
	require_not_store();
	at_hq = strcmp(replica_node_role(NULL, NULL), "hq") == 0;
	row = lookup(code, at_hq);
	if (row.is_hub)
		name = replica_hub_object_name(code);
	if (!row.found && !replica_slot_exists(name, NULL) &&
		!replica_publication_exists(name) &&
		!replica_subscription_exists(replica_outbox_sub_name(code)))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" has no replica", code)));
	values[0] = CStringGetTextDatum(code);
	if (row.is_hub)
	{
		lspi_exec("SELECT 1 FROM loyalty.replica_store r WHERE r.via_hub = $1",
						 1, types, values, NULL, false, 0, SPI_OK_SELECT);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("hub \"%s\" still serves " UINT64_FORMAT " stores", code, SPI_processed),
					 errhint("Remove or move its stores first.")));
	}

	replica_drop_subscription(replica_outbox_sub_name(code));
	replica_drop_publication(name);
	/* the registry is HQ's: a hub only drops what it made */
	if (at_hq)
		lspi_exec("DELETE FROM loyalty.replica_store r WHERE r.store_code = $1",
						 1, types, values, NULL, false, 0, SPI_OK_DELETE);
	/* recorded before the slot goes: dropping a slot cannot be rolled back */
	audit_admin("replica_store_remove", code, "force", force ? "true" : "false", false);
	/* last: dropping a slot cannot be rolled back */
	replica_drop_slot(name, force);
	lspi_finish();
	PG_RETURN_VOID();
}

/*
 * loyalty.replica_adopt() returns text
 *		Make this database the node its replication identity names: after
 *		a restore into a new database or onto a new server, the restored
 *		identity names the old one, and HQ's applier leaves store events
 *		alone (they are data of the restore).  Call this when the restored
 *		database is to serve as that HQ (or hub or store) from now on.
 *		Returns the identity recorded, system identifier/database OID.
 */
Datum
loyalty_replica_adopt(PG_FUNCTION_ARGS)
{
	spi_begin();
	replica_identity_claim(true);
	lspi_finish();
	{
		char	   *identity = psprintf("%s/%u", replica_local_system_id(), MyDatabaseId);
		static const char *const keys[1] = {"identity"};
		static const bool quoted[1] = {true};
		const char *values[1] = {identity};

		loyalty_audit_change(NULL, "replica_adopt", "operations",
							 loyalty_audit_detail(1, keys, values, quoted));
		PG_RETURN_TEXT_P(cstring_to_text(identity));
	}
}

/*
 * loyalty.replica_store_add(idempotency_key, store_code, offline_redeem_cap, via_hub)
 *		The 1.2 spelling: an idempotency key first, then loyalty_replica_add_store's
 *		arguments; a retry returns the first call's result (request.h).
 */
Datum
loyalty_replica_store_add(PG_FUNCTION_ARGS)
{
	return loyalty_call_keyed(fcinfo, "replica_store_add", loyalty_replica_add_store);
}

/*
 * loyalty.replica_hub_add(idempotency_key, hub_code)
 *		The 1.2 spelling: an idempotency key first, then loyalty_replica_add_hub's
 *		arguments; a retry returns the first call's result (request.h).
 */
Datum
loyalty_replica_hub_add(PG_FUNCTION_ARGS)
{
	return loyalty_call_keyed(fcinfo, "replica_hub_add", loyalty_replica_add_hub);
}

/*
 * loyalty.replica_store_remove(idempotency_key, store_code, force)
 *		The 1.2 spelling: an idempotency key first, then loyalty_replica_remove_store's
 *		arguments; a retry returns the first call's result (request.h).
 */
Datum
loyalty_replica_store_remove(PG_FUNCTION_ARGS)
{
	return loyalty_call_keyed(fcinfo, "replica_store_remove", loyalty_replica_remove_store);
}

/*
 * loyalty.replica_outbox_attach(idempotency_key, store_code, store_conninfo)
 *		The 1.2 spelling: an idempotency key first, then loyalty_replica_attach_outbox's
 *		arguments; a retry returns the first call's result (request.h).
 */
Datum
loyalty_replica_outbox_attach(PG_FUNCTION_ARGS)
{
	return loyalty_call_keyed(fcinfo, "replica_outbox_attach", loyalty_replica_attach_outbox);
}
