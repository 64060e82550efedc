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
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "replication/walreceiver.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

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
 * remote_text
 *		The first column of the first row of a query run over a
 *		replication connection, as text, or NULL (no row, or NULL).
 */
static char *
remote_text(WalReceiverConn *wrconn, const char *sql)
{
	Oid			types[1] = {TEXTOID};
	WalRcvExecResult *res;
	TupleTableSlot *slot;
	char	   *value = NULL;
	bool		isnull;

	res = walrcv_exec(wrconn, sql, 1, types);
	if (res->status != WALRCV_OK_TUPLES)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not read from headquarters: %s", res->err)));
	slot = MakeSingleTupleTableSlot(res->tupledesc, &TTSOpsMinimalTuple);
	if (tuplestore_gettupleslot(res->tuplestore, true, false, slot))
	{
		Datum		d = slot_getattr(slot, 1, &isnull);

		if (!isnull)
			value = TextDatumGetCString(d);
	}
	ExecDropSingleTupleTableSlot(slot);
	walrcv_clear_result(res);
	return value;
}

/*
 * remote_command
 *		Run a command over a replication connection; an error unless it
 *		succeeds with the expected status.
 */
static void
remote_command(WalReceiverConn *wrconn, const char *sql, int nretcols,
			   WalRcvExecStatus expected)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	WalRcvExecResult *res = walrcv_exec(wrconn, sql, nretcols, types);

	if (res->status != expected)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("headquarters refused the initial copy: %s", res->err ? res->err : "unexpected result")));
	walrcv_clear_result(res);
}

/*
 * seed_from_slot
 *		The initial copy, made by the store itself, when HQ made the
 *		store's slot with the loyalty output plugin (it trusts that plugin,
 *		typically alone: output_plugin_libraries = 'loyalty'): PG15's own
 *		initial copy makes pgoutput slots, which such an HQ refuses.  Over one replication connection with the
 *		store's login: drop the (inactive) slot HQ made, make it again with
 *		the loyalty plugin and SNAPSHOT 'use', read every published table
 *		as the publication holds it in that very snapshot (row level
 *		security applies: the login's own store's rows), and load the rows
 *		here as the apply worker would (session_replication_role =
 *		replica: the ENABLE REPLICA and ALWAYS triggers fire, foreign keys
 *		are not checked), in batches of SEED_BATCH_ROWS rows (a cursor at
 *		HQ).  The subscription then streams from the slot's start, so
 *		nothing is missed or applied twice.  Needs an SPI connection.
 */
/* rows per batch of the store's own initial copy */
#define SEED_BATCH_ROWS 10000

static void
seed_from_slot(WalReceiverConn *wrconn, const char *slotname, const char *code)
{
	const char *relname;
	char	   *select;
	char	   *where;
	int			i;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	where = remote_text(wrconn, psprintf("SELECT CASE WHEN s.database = pg_catalog.current_database() THEN 'here' "
										 "ELSE COALESCE(s.database::pg_catalog.text, '(physical)') END "
										 "FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = %s",
										 quote_literal_cstr(slotname)));
	if (where != NULL && strcmp(where, "here") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("replication slot \"%s\" belongs to database \"%s\"", slotname, where)));
	if (where != NULL)
		remote_command(wrconn, psprintf("DROP_REPLICATION_SLOT %s", quote_identifier(slotname)),
					   0, WALRCV_OK_COMMAND);
	remote_command(wrconn, "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ", 0, WALRCV_OK_COMMAND);
	remote_command(wrconn, psprintf("CREATE_REPLICATION_SLOT %s LOGICAL %s (SNAPSHOT 'use')",
									quote_identifier(slotname), REPLICA_OUTPUT_PLUGIN),
				   4, WALRCV_OK_TUPLES);
	lspi_exec("SELECT pg_catalog.set_config('session_replication_role', 'replica', true)",
			  0, NULL, NULL, NULL, false, 0, SPI_OK_SELECT);
	for (i = 0; (select = replica_published_select(i, code, &relname)) != NULL; i++)
	{
		char	   *insert;

		if (*select == '\0')
			continue;
		insert = psprintf("INSERT INTO loyalty.%s OVERRIDING SYSTEM VALUE "
						  "SELECT * FROM pg_catalog.json_populate_recordset(NULL::loyalty.%s, $1::pg_catalog.json)",
						  quote_identifier(relname), quote_identifier(relname));
		/* in batches: no table is ever one value in memory, at HQ or here */
		remote_command(wrconn, psprintf("DECLARE loyalty_seed NO SCROLL CURSOR FOR %s", select),
					   0, WALRCV_OK_COMMAND);
		for (;;)
		{
			StringInfoData rows;
			WalRcvExecResult *res;
			TupleTableSlot *slot;
			int			n = 0;
			bool		isnull;

			res = walrcv_exec(wrconn, "FETCH " CppAsString2(SEED_BATCH_ROWS) " FROM loyalty_seed", 1, types);
			if (res->status != WALRCV_OK_TUPLES)
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("could not read from headquarters: %s", res->err)));
			initStringInfo(&rows);
			appendStringInfoChar(&rows, '[');
			slot = MakeSingleTupleTableSlot(res->tupledesc, &TTSOpsMinimalTuple);
			while (tuplestore_gettupleslot(res->tuplestore, true, false, slot))
			{
				Datum		d = slot_getattr(slot, 1, &isnull);

				if (n++ > 0)
					appendStringInfoChar(&rows, ',');
				appendStringInfoString(&rows, TextDatumGetCString(d));
			}
			appendStringInfoChar(&rows, ']');
			ExecDropSingleTupleTableSlot(slot);
			walrcv_clear_result(res);
			if (n == 0)
				break;
			values[0] = CStringGetTextDatum(rows.data);
			lspi_exec(insert, 1, types, values, NULL, false, 0, SPI_OK_INSERT);
			pfree(rows.data);
			if (n < SEED_BATCH_ROWS)
				break;
		}
		remote_command(wrconn, "CLOSE loyalty_seed", 0, WALRCV_OK_COMMAND);
	}
	lspi_exec("SELECT pg_catalog.set_config('session_replication_role', 'origin', true)",
			  0, NULL, NULL, NULL, false, 0, SPI_OK_SELECT);
	remote_command(wrconn, "COMMIT", 0, WALRCV_OK_COMMAND);
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
	WalReceiverConn *wrconn;
	char	   *err = NULL;
	bool		confined = false;

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

	/* 5 (before the copy: the store's own row makes its roles on arrival) */
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

	/*
	 * 4: HQ made the store's slot with the loyalty plugin (it trusts that
	 * plugin, and maybe no other: PG15's own initial copy would need
	 * pgoutput), so the store copies the data itself
	 */
	load_file("libpqwalreceiver", false);
	wrconn = walrcv_connect(conninfo, true, name, &err);
	if (wrconn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not connect to headquarters: %s", err)));
	PG_TRY();
	{
		char	   *plugin;

		plugin = remote_text(wrconn, psprintf("SELECT s.plugin::pg_catalog.text FROM pg_catalog.pg_replication_slots s "
											  "WHERE s.slot_name = %s AND s.database = pg_catalog.current_database()",
											  quote_literal_cstr(name)));
		confined = plugin != NULL && strcmp(plugin, REPLICA_OUTPUT_PLUGIN) == 0;
		if (confined)
			seed_from_slot(wrconn, name, strcmp(want, "hub") == 0 ? NULL : code);
	}
	PG_FINALLY();
	{
		walrcv_disconnect(wrconn);
	}
	PG_END_TRY();
	replica_create_subscription(name, conninfo, name, name, !confined);
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
