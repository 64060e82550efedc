/*-------------------------------------------------------------------------
 *
 * replica_store.c
 *	  A server in store mode: subscribes to its store's publication at HQ
 *	  (or at its regional hub), publishes its outbox, follows its batch
 *	  window.  A hub subscribes the same way to its own publication at HQ.
 *
 * loyalty.store_subscribe(hq_conninfo, store_code) turns a server with the
 * extension into the replica of one store:
 *	1. check: not HQ (no stores registered here), not another store's
 *	   replica;
 *	2. publish the outbox (loyalty_outbox); its slot is made on this
 *	   server by HQ's loyalty.replica_outbox_attach(), once this
 *	   transaction has committed (pgoutput needs the publication to exist
 *	   before the slot);
 *	3. empty the tables HQ publishes (the default policy and anything from
 *	   a previous subscription: the initial copy brings them back);
 *	4. subscribe to loyalty_store_<code> at HQ, using the slot HQ made in
 *	   loyalty.replica_slot_create();
 *	5. record the node with a new incarnation (a re-seed starts one too,
 *	   so that a store restored from an older backup and re-seeded never
 *	   reuses an event id HQ holds).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "audit.h"
#include "roles_caller.h"
#include "replica.h"
#include "roles.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_store_subscribe);
PG_FUNCTION_INFO_V1(loyalty_hub_subscribe);
PG_FUNCTION_INFO_V1(loyalty_store_unsubscribe);
PG_FUNCTION_INFO_V1(loyalty_store_window_tick);

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
 * subscribe_node
 *		loyalty.store_subscribe and loyalty.hub_subscribe: make this server
 *		the replica of one store (want "store") or a regional hub (want
 *		"hub"), subscribed at conninfo (HQ, or the store's hub).
 */
static Datum
subscribe_node(FunctionCallInfo fcinfo, const char *want)
{
	char	   *conninfo;
	char	   *code;
	char	   *name;
	char		current[LOYALTY_CODE_LEN];
	const char *role;
	Oid			types[3] = {TEXTOID, INT8OID, TEXTOID};
	Datum		values[3];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("connection string and %s code must not be null", want)));
	conninfo = TextDatumGetCString(PG_GETARG_DATUM(0));
	code = TextDatumGetCString(PG_GETARG_DATUM(1));
	loyalty_check_store_code(code);
	replica_check_conninfo(conninfo);
	name = strcmp(want, "hub") == 0 ? replica_hub_object_name(code) :
		replica_store_object_name(code);
	spi_begin();

	role = replica_node_role(current, NULL);
	if (strcmp(role, "hq") != 0 && (strcmp(role, want) != 0 || strcmp(current, code) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this server is the replica of %s \"%s\", not \"%s\"", role, current, code),
				 errhint("A server subscribes only to its own store's (or hub's) publication.")));
	/* at HQ (no node row yet), registered stores mean this is HQ itself */
	if (strcmp(role, "hq") == 0)
		lspi_exec("SELECT 1 FROM loyalty.replica_store", 0, NULL, NULL, NULL, false, 0, SPI_OK_SELECT);
	if (strcmp(role, "hq") == 0 && SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this server replicates stores of its own"),
				 errdetail("Headquarters and hubs do not subscribe as a store.")));
	/*
	 * A database that is not a replica yet must be empty of HQ data: the
	 * subscription empties every published table.  Members, ledger entries,
	 * stays or store events mean this is (a copy of) a headquarters
	 * database.
	 */
	if (strcmp(role, "hq") == 0)
	{
		lspi_exec("SELECT (SELECT pg_catalog.count(*) FROM loyalty.member)::pg_catalog.text, "
						 "EXISTS (SELECT 1 FROM loyalty.point_entry) OR EXISTS (SELECT 1 FROM loyalty.stay) "
						 "OR EXISTS (SELECT 1 FROM loyalty.outbox) OR EXISTS (SELECT 1 FROM loyalty.member)",
						 0, NULL, NULL, NULL, true, 0, SPI_OK_SELECT);
		if (strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2), "t") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("this database holds headquarters data"),
					 errdetail("It has %s members and may have ledger entries, stays or store events; subscribing would empty the published tables.",
							   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
					 errhint("Make a %s replica from a new database with only CREATE EXTENSION loyalty.", want)));
	}
	if (replica_subscription_exists(name))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("this server already subscribes to store \"%s\"", code),
				 errhint("Use loyalty.store_unsubscribe() first to re-seed it.")));
	/* never a subscription to this very server (it would empty itself) */
	replica_check_remote_not_self(conninfo);

	/* 2: HQ makes the slot later (loyalty.replica_outbox_attach) */
	replica_ensure_outbox_publication();

	/* 3: the initial copy brings every published row back */
	lspi_exec("TRUNCATE loyalty.store, loyalty.member, loyalty.member_profile, "
					 "loyalty.replica_member_contact, loyalty.replica_risk_note, "
					 "loyalty.member_preference, loyalty.member_tag, loyalty.stay, "
					 "loyalty.policy, loyalty.replica_store, loyalty.outbox_result, "
					 "loyalty.risk_type, loyalty.risk_tag, loyalty.benefit, "
					 "loyalty.benefit_grant, loyalty.benefit_use CASCADE",
					 0, NULL, NULL, NULL, false, 0, SPI_OK_UTILITY);
	/* TRUNCATE ... CASCADE emptied the role map: keep HQ's fixed rows */
	lspi_exec("INSERT INTO loyalty.staff_role (role, store_code, department) VALUES "
					 "('loyalty_crm', NULL, 'crm'), ('loyalty_marketing', NULL, 'marketing'), "
					 "('loyalty_bi', NULL, 'bi'), ('loyalty_dba', NULL, 'dba') "
					 "ON CONFLICT DO NOTHING",
					 0, NULL, NULL, NULL, false, 0, SPI_OK_INSERT);

	/* 4 */
	replica_create_subscription(name, conninfo, name, name, true);

	/* 5 */
	values[0] = CStringGetTextDatum(code);
	values[1] = Int64GetDatum((int64) (GetCurrentTimestamp() / USECS_PER_SEC +
									   (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY));
	values[2] = CStringGetTextDatum(want);
	/*
	 * A re-seed starts a new incarnation (later than the last one): a
	 * store restored from an older backup and re-seeded never numbers an
	 * operation with an id HQ already holds (issue 14.2).
	 */
	lspi_exec("INSERT INTO loyalty.replica_node (node_role, store_code, incarnation) "
					 "VALUES ($3, $1, $2) ON CONFLICT (singleton) DO UPDATE SET incarnation = "
					 "GREATEST(excluded.incarnation, loyalty.replica_node.incarnation + 1)",
					 3, types, values, NULL, false, 0, SPI_OK_INSERT);
	/* this server and database are the node from now on */
	replica_identity_claim(true);
	lspi_finish();
	{
		static const char *const keys[2] = {"store_code", "subscription"};
		static const bool quoted[2] = {true, true};
		const char *vals[2] = {code, name};

		loyalty_audit_change(NULL, strcmp(want, "hub") == 0 ? "hub_subscribe" : "store_subscribe",
							 "operations", loyalty_audit_detail(2, keys, vals, quoted));
	}
	PG_RETURN_TEXT_P(cstring_to_text(name));
}

/*
 * loyalty.store_subscribe(conninfo text, store_code text) returns text
 *		(the subscription's name)
 */
Datum
loyalty_store_subscribe(PG_FUNCTION_ARGS)
{
	return subscribe_node(fcinfo, "store");
}

/*
 * loyalty.hub_subscribe(hq_conninfo text, hub_code text) returns text
 *		(the subscription's name)
 */
Datum
loyalty_hub_subscribe(PG_FUNCTION_ARGS)
{
	return subscribe_node(fcinfo, "hub");
}

/*
 * loyalty.store_unsubscribe(drop_outbox_slot boolean DEFAULT false)
 *		returns void
 *		Drop the subscription to HQ (HQ's slot stays: HQ's DBA drops or
 *		re-makes it).  The outbox and the node's identity stay, so events
 *		recorded since still reach HQ; drop_outbox_slot also drops the
 *		outbox slot (when the store leaves the chain).
 */
Datum
loyalty_store_unsubscribe(PG_FUNCTION_ARGS)
{
	char		code[LOYALTY_CODE_LEN];

	spi_begin();
	if (strcmp(replica_node_role(code, NULL), "store") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this server is not a store replica")));
	replica_drop_subscription(replica_store_object_name(code));
	{
		static const char *const keys[2] = {"store_code", "drop_outbox_slot"};
		static const bool quoted[2] = {true, false};
		const char *vals[2] = {code, !PG_ARGISNULL(0) && PG_GETARG_BOOL(0) ? "true" : "false"};

		/* before the slot goes: dropping a slot cannot be rolled back */
		loyalty_audit_change(NULL, "store_unsubscribe", "operations",
							 loyalty_audit_detail(2, keys, vals, quoted));
	}
	if (!PG_ARGISNULL(0) && PG_GETARG_BOOL(0))
		replica_drop_slot(REPLICA_OUTBOX_SLOT, true);
	lspi_finish();
	PG_RETURN_VOID();
}

/*
 * loyalty.store_window_tick() returns text
 *		For a store in batch mode, enable the subscription inside its
 *		window and disable it outside; in streaming mode keep it enabled.
 *		Schedule it every few minutes with pg_cron.  Returns 'enabled' or
 *		'disabled'.
 */
Datum
loyalty_store_window_tick(PG_FUNCTION_ARGS)
{
	char		code[LOYALTY_CODE_LEN];
	char	   *name;
	bool		want = true;
	bool		isnull;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	spi_begin();
	if (strcmp(replica_node_role(code, NULL), "store") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this server is not a store replica")));
	name = replica_store_object_name(code);
	values[0] = CStringGetTextDatum(code);
	lspi_exec("SELECT r.mode <> 'batch' OR CASE WHEN r.window_start <= r.window_end "
					 "THEN t.now BETWEEN r.window_start AND r.window_end "
					 "ELSE t.now >= r.window_start OR t.now <= r.window_end END "
					 "FROM loyalty.replica_store r JOIN loyalty.store s USING (store_code), "
					 "LATERAL (SELECT (pg_catalog.now() AT TIME ZONE s.time_zone)::time AS now) t "
					 "WHERE r.store_code = $1",
					 1, types, values, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed > 0)
		want = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	if (replica_subscription_exists(name))
		replica_set_subscription_enabled(name, want);
	lspi_finish();
	{
		static const char *const keys[2] = {"store_code", "subscription"};
		static const bool quoted[2] = {true, true};
		const char *vals[2] = {code, want ? "enabled" : "disabled"};

		loyalty_audit_change(NULL, "store_window_tick", "operations",
							 loyalty_audit_detail(2, keys, vals, quoted));
	}
	PG_RETURN_TEXT_P(cstring_to_text(want ? "enabled" : "disabled"));
}
