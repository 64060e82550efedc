/*-------------------------------------------------------------------------
 *
 * replica_ddl.c
 *	  Publications, subscriptions and replication slots for store replicas.
 *
 * Publications and subscriptions are made by building the parse nodes that
 * CREATE PUBLICATION and CREATE SUBSCRIPTION produce and running them
 * through ProcessUtility, never by assembling SQL text: the connection
 * string and the store code are node fields, not SQL.
 *
 * What a store may hold is decided here, table by table (see
 * docs/replication.md): what a store may never hold (full contact data,
 * member_identity, member_consent, staff logins, other stores' notes and
 * tags) lives in tables or columns that are never published, because PG15
 * publications have no ACL and column lists are no security boundary;
 * stores get derived tables instead (src/sql/53_replica_store_data.sql).  Store-scoped rows are row-filtered on store_code; those
 * tables carry a replica identity that includes the filter columns
 * (src/sql/50_replica.sql).  TRUNCATE is not published: it ignores row
 * filters.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_publication.h"
#include "catalog/pg_subscription.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "replication/slot.h"
#include "replication/walreceiver.h"
#include "tcop/dest.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

#include "cache.h"
#include "replica.h"
#include "spi.h"


typedef enum PublishedFilter
{
	FILTER_NONE,				/* every row */
	FILTER_STORE,				/* store_code = <store> */
	FILTER_CHAIN_OR_STORE,		/* scope = 'chain' OR store_code = <store> */
	FILTER_GRANT				/* source <> 'store' OR store_code = <store> */
} PublishedFilter;

typedef struct PublishedTable
{
	const char *relname;
	PublishedFilter filter;
	const char *const *columns; /* NULL: every column */
	bool		optional;		/* another area's table, published if present */
} PublishedTable;

/*
 * risk_tag without its notes: a store gets the notes of its own tags from
 * replica_risk_note (src/sql/53_replica_store_data.sql)
 */
static const char *const risk_tag_columns[] = {
	"tag_id", "member_id", "risk_code", "store_code", "amount_owed",
	"raised_at", "raised_by", "resolved_at", "resolved_by", "resolved_store",
	"resolution", NULL
};

/*
 * What a store's publication holds.  Never here: member_profile (stores get
 * replica_member_contact: masked phone and email, a keyed phone hash, birth
 * month-day), member_identity (ID numbers, bank cards), member_consent,
 * staff_role (role OIDs are local to a server), other stores' stays,
 * store-only preferences, behaviour tags and risk-tag notes.
 */
static const PublishedTable store_tables[] = {
	{"store", FILTER_NONE, NULL, false},
	{"member", FILTER_NONE, NULL, false},
	{"replica_member_contact", FILTER_NONE, NULL, false},
	{"member_preference", FILTER_CHAIN_OR_STORE, NULL, false},
	{"member_tag", FILTER_STORE, NULL, false},
	{"stay", FILTER_STORE, NULL, false},
	{"policy", FILTER_NONE, NULL, false},
	{"replica_store", FILTER_STORE, NULL, false},
	{"outbox_result", FILTER_STORE, NULL, false},
	/* the point ledger's balances (lots and entries stay at HQ) */
	{"point_balance", FILTER_NONE, NULL, true},
	/* risk tags (chain-wide freezes, without notes; the store's own notes)
	 * and benefits: the catalogue, chain grants and this store's own, every
	 * use (limits count them all) */
	{"risk_type", FILTER_NONE, NULL, true},
	{"risk_tag", FILTER_NONE, risk_tag_columns, true},
	{"replica_risk_note", FILTER_STORE, NULL, false},
	{"benefit", FILTER_NONE, NULL, true},
	{"benefit_grant", FILTER_GRANT, NULL, true},
	{"benefit_use", FILTER_NONE, NULL, true},
};

/*
 * replica_store_object_name
 *		The name of a store's publication, slot and subscription.
 */
char *
replica_store_object_name(const char *code)
{
	return psprintf(REPLICA_STORE_PREFIX "%s", code);
}

/*
 * replica_hub_object_name
 *		The name of a hub's publication and slot at HQ, and of the hub's
 *		subscription.
 */
char *
replica_hub_object_name(const char *code)
{
	return psprintf(REPLICA_HUB_PREFIX "%s", code);
}

/*
 * replica_outbox_sub_name
 *		The name of HQ's subscription to a store's outbox.
 */
char *
replica_outbox_sub_name(const char *code)
{
	return psprintf(REPLICA_OUTBOX_PREFIX "%s", code);
}

/*
 * run_utility
 *		Execute a utility statement parse tree as a sub-command.
 */
static void
run_utility(Node *stmt, const char *what)
{
	PlannedStmt *pstmt = makeNode(PlannedStmt);

	pstmt->commandType = CMD_UTILITY;
	pstmt->canSetTag = false;
	pstmt->utilityStmt = stmt;
	pstmt->stmt_location = -1;
	pstmt->stmt_len = 0;
	ProcessUtility(pstmt, what, false, PROCESS_UTILITY_QUERY, NULL, NULL,
				   None_Receiver, NULL);
	CommandCounterIncrement();
}

/*
 * column_ref
 *		A raw column reference.
 */
static Node *
column_ref(const char *name)
{
	ColumnRef  *ref = makeNode(ColumnRef);

	ref->fields = list_make1(makeString(pstrdup(name)));
	ref->location = -1;
	return (Node *) ref;
}

/*
 * string_const
 *		A raw string constant.
 */
static Node *
string_const(const char *value)
{
	A_Const    *c = makeNode(A_Const);

	c->val.sval.type = T_String;
	c->val.sval.sval = pstrdup(value);
	c->location = -1;
	return (Node *) c;
}

/*
 * equals
 *		column = 'value' as a raw expression.
 */
static Node *
equals(const char *column, const char *value)
{
	return (Node *) makeSimpleA_Expr(AEXPR_OP, "=", column_ref(column),
									 string_const(value), -1);
}

/*
 * replica_create_store_publication
 *		CREATE PUBLICATION pubname FOR TABLE ... (the store's tables, with
 *		column lists and row filters) WITH (publish = 'insert, update,
 *		delete').  store_code NULL: a hub's publication, the same tables
 *		and columns without row filters (the hub filters per store).
 */
void
replica_create_store_publication(const char *pubname, const char *store_code)
{
	CreatePublicationStmt *stmt = makeNode(CreatePublicationStmt);
	int			i;

	stmt->pubname = pstrdup(pubname);
	stmt->for_all_tables = false;
	stmt->options = list_make1(makeDefElem("publish",
										   (Node *) makeString("insert, update, delete"), -1));
	for (i = 0; i < lengthof(store_tables); i++)
	{
		const PublishedTable *t = &store_tables[i];
		PublicationObjSpec *obj;
		PublicationTable *pt;

		if (t->optional && !OidIsValid(loyalty_relid(t->relname)))
			continue;
		pt = makeNode(PublicationTable);
		pt->relation = makeRangeVar("loyalty", pstrdup(t->relname), -1);
		if (t->columns != NULL)
		{
			const char *const *col;

			for (col = t->columns; *col; col++)
				pt->columns = lappend(pt->columns, makeString(pstrdup(*col)));
		}
		switch (store_code == NULL ? FILTER_NONE : t->filter)
		{
			case FILTER_NONE:
				break;
			case FILTER_STORE:
				pt->whereClause = equals("store_code", store_code);
				break;
			case FILTER_CHAIN_OR_STORE:
				pt->whereClause = (Node *)
					makeBoolExpr(OR_EXPR,
								 list_make2(equals("scope", "chain"),
											equals("store_code", store_code)),
								 -1);
				break;
			case FILTER_GRANT:
				pt->whereClause = (Node *)
					makeBoolExpr(OR_EXPR,
								 list_make2(makeSimpleA_Expr(AEXPR_OP, "<>",
															 column_ref("source"),
															 string_const("store"), -1),
											equals("store_code", store_code)),
								 -1);
				break;
		}
		obj = makeNode(PublicationObjSpec);
		obj->pubobjtype = PUBLICATIONOBJ_TABLE;
		obj->pubtable = pt;
		obj->location = -1;
		stmt->pubobjects = lappend(stmt->pubobjects, obj);
	}
	run_utility((Node *) stmt, "CREATE PUBLICATION (loyalty store replica)");
}

/*
 * replica_grant_replication_group
 *		GRANT (or REVOKE) loyalty_replication TO login, from parse nodes.
 */
void
replica_grant_replication_group(const char *login, bool grant)
{
	GrantRoleStmt *stmt = makeNode(GrantRoleStmt);
	AccessPriv *priv = makeNode(AccessPriv);
	RoleSpec   *grantee = makeNode(RoleSpec);

	priv->priv_name = pstrdup(REPLICA_LOGIN_GROUP);
	grantee->roletype = ROLESPEC_CSTRING;
	grantee->rolename = pstrdup(login);
	grantee->location = -1;
	stmt->granted_roles = list_make1(priv);
	stmt->grantee_roles = list_make1(grantee);
	stmt->is_grant = grant;
	stmt->admin_opt = false;
	stmt->grantor = NULL;
	stmt->behavior = DROP_RESTRICT;
	run_utility((Node *) stmt, grant ? "GRANT loyalty_replication" : "REVOKE loyalty_replication");
}

/*
 * replica_published_select
 *		For a store's own initial copy (src/replica_store.c): the SQL that
 *		reads, at HQ, the i-th published table as the store's publication
 *		holds it (its columns, its row filter), one JSON text per row; its
 *		table name in *relname.  NULL past the last table, "" for another
 *		area's table that is not installed.  store_code NULL: a hub's
 *		(no row filter).  The store code was checked against
 *		^[a-z][a-z0-9_]{0,15}$ and is quoted as a literal.
 */
char *
replica_published_select(int i, const char *store_code, const char **relname)
{
	const PublishedTable *t;
	StringInfoData sql;
	const char *lit;

	if (i >= lengthof(store_tables))
		return NULL;
	t = &store_tables[i];
	*relname = t->relname;
	if (t->optional && !OidIsValid(loyalty_relid(t->relname)))
		return "";
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT pg_catalog.row_to_json(t)::pg_catalog.text FROM (SELECT ");
	if (t->columns == NULL)
		appendStringInfoString(&sql, "*");
	else
	{
		const char *const *col;

		for (col = t->columns; *col; col++)
			appendStringInfo(&sql, "%s%s", col == t->columns ? "" : ", ", quote_identifier(*col));
	}
	appendStringInfo(&sql, " FROM ONLY loyalty.%s", quote_identifier(t->relname));
	lit = store_code == NULL ? NULL : quote_literal_cstr(store_code);
	switch (store_code == NULL ? FILTER_NONE : t->filter)
	{
		case FILTER_NONE:
			break;
		case FILTER_STORE:
			appendStringInfo(&sql, " WHERE store_code = %s", lit);
			break;
		case FILTER_CHAIN_OR_STORE:
			appendStringInfo(&sql, " WHERE scope = 'chain' OR store_code = %s", lit);
			break;
		case FILTER_GRANT:
			appendStringInfo(&sql, " WHERE source <> 'store' OR store_code = %s", lit);
			break;
	}
	appendStringInfoString(&sql, ") t");
	return sql.data;
}

/*
 * replica_publication_exists
 */
bool
replica_publication_exists(const char *pubname)
{
	return OidIsValid(get_publication_oid(pubname, true));
}

/*
 * replica_drop_publication
 *		DROP PUBLICATION IF EXISTS pubname.
 */
void
replica_drop_publication(const char *pubname)
{
	DropStmt   *stmt = makeNode(DropStmt);

	stmt->removeType = OBJECT_PUBLICATION;
	stmt->objects = list_make1(makeString(pstrdup(pubname)));
	stmt->behavior = DROP_RESTRICT;
	stmt->missing_ok = true;
	stmt->concurrent = false;
	run_utility((Node *) stmt, "DROP PUBLICATION (loyalty store replica)");
}

/*
 * replica_create_subscription
 *		CREATE SUBSCRIPTION subname CONNECTION conninfo PUBLICATION pubname
 *		WITH (create_slot = false, slot_name = slotname, copy_data = ...).
 *
 * The slot is made beforehand on the publisher: CREATE SUBSCRIPTION
 * refuses to create one inside a transaction block, which a function call
 * always is.  It connects to the publisher to check the publication.
 */
void
replica_create_subscription(const char *subname, const char *conninfo,
							const char *pubname, const char *slotname,
							bool copy_data)
{
	CreateSubscriptionStmt *stmt = makeNode(CreateSubscriptionStmt);

	stmt->subname = pstrdup(subname);
	stmt->conninfo = pstrdup(conninfo);
	stmt->publication = list_make1(makeString(pstrdup(pubname)));
	stmt->options = list_make3(makeDefElem("create_slot", (Node *) makeBoolean(false), -1),
							   makeDefElem("slot_name", (Node *) makeString(pstrdup(slotname)), -1),
							   makeDefElem("copy_data", (Node *) makeBoolean(copy_data), -1));
	run_utility((Node *) stmt, "CREATE SUBSCRIPTION (loyalty store replica)");
}

/*
 * replica_subscription_exists
 */
bool
replica_subscription_exists(const char *subname)
{
	return OidIsValid(get_subscription_oid(subname, true));
}

/*
 * replica_set_subscription_enabled
 *		ALTER SUBSCRIPTION subname ENABLE | DISABLE.
 */
void
replica_set_subscription_enabled(const char *subname, bool enabled)
{
	AlterSubscriptionStmt *stmt = makeNode(AlterSubscriptionStmt);

	stmt->kind = ALTER_SUBSCRIPTION_ENABLED;
	stmt->subname = pstrdup(subname);
	stmt->options = list_make1(makeDefElem("enabled", (Node *) makeBoolean(enabled), -1));
	run_utility((Node *) stmt, "ALTER SUBSCRIPTION (loyalty store replica)");
}

/*
 * replica_drop_subscription
 *		Disable the subscription, detach it from its slot (which lives on
 *		the publisher and is dropped there by its own DBA function), and
 *		drop it.  Detaching is what lets DROP SUBSCRIPTION run inside a
 *		transaction block.
 */
void
replica_drop_subscription(const char *subname)
{
	AlterSubscriptionStmt *alter;
	DropSubscriptionStmt *drop;

	if (!replica_subscription_exists(subname))
		return;
	replica_set_subscription_enabled(subname, false);

	alter = makeNode(AlterSubscriptionStmt);
	alter->kind = ALTER_SUBSCRIPTION_OPTIONS;
	alter->subname = pstrdup(subname);
	alter->options = list_make1(makeDefElem("slot_name", (Node *) makeString("none"), -1));
	run_utility((Node *) alter, "ALTER SUBSCRIPTION (loyalty store replica)");

	drop = makeNode(DropSubscriptionStmt);
	drop->subname = pstrdup(subname);
	drop->missing_ok = true;
	drop->behavior = DROP_RESTRICT;
	run_utility((Node *) drop, "DROP SUBSCRIPTION (loyalty store replica)");
}

/*
 * replica_slot_exists
 *		Whether a logical replication slot of this name exists in this
 *		database, and whether a walsender is using it.  Slot names are per
 *		server: a slot of the same name made by another database of the
 *		cluster (or a physical slot) is not this database's, and is never
 *		reported, reused or dropped here (replica_slot_elsewhere).  Needs
 *		an SPI connection.
 */
bool
replica_slot_exists(const char *slotname, bool *active)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;

	values[0] = CStringGetTextDatum(slotname);
	lspi_exec("SELECT s.active FROM pg_catalog.pg_replication_slots s "
			  "WHERE s.slot_name = $1::pg_catalog.name "
			  "AND s.database = pg_catalog.current_database()",
			  1, types, values, NULL, true, 0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	if (active)
		*active = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));
	return true;
}

/*
 * replica_slot_elsewhere
 *		The database that holds a replication slot of this name when it is
 *		not this one ("(physical)" for a physical slot), or NULL.  Needs an
 *		SPI connection.
 */
char *
replica_slot_elsewhere(const char *slotname)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	values[0] = CStringGetTextDatum(slotname);
	lspi_exec("SELECT COALESCE(s.database::pg_catalog.text, '(physical)') "
			  "FROM pg_catalog.pg_replication_slots s "
			  "WHERE s.slot_name = $1::pg_catalog.name "
			  "AND s.database IS DISTINCT FROM pg_catalog.current_database()",
			  1, types, values, NULL, true, 0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;
	return lspi_text(0, 1);
}

/*
 * replica_create_slot
 *		A logical slot with pgoutput.  PostgreSQL refuses to create one in
 *		a transaction that has written anything, so this must come first in
 *		its transaction.  A slot of that name that belongs to another
 *		database of this server is an error (42710): it serves that
 *		database's store and is left alone.  Needs an SPI connection.
 */
void
replica_create_slot(const char *slotname)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char	   *elsewhere;

	if (GetTopTransactionIdIfAny() != InvalidTransactionId)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cannot create replication slot \"%s\" in a transaction that has written data", slotname),
				 errdetail("PostgreSQL creates a logical replication slot only before the transaction's first write."),
				 errhint("Call this function in a transaction of its own.")));
	if ((elsewhere = replica_slot_elsewhere(slotname)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("replication slot \"%s\" belongs to database \"%s\"", slotname, elsewhere),
				 errdetail("Replication slot names are per server, and that database's store replica uses this one."),
				 errhint("Serve this store code from one database per server: remove its replica in database \"%s\" first, or use another server.", elsewhere)));
	values[0] = CStringGetTextDatum(slotname);
	values[1] = CStringGetTextDatum(replica_slot_plugin());
	lspi_exec("SELECT pg_catalog.pg_create_logical_replication_slot($1::pg_catalog.name, $2::pg_catalog.name)",
					 2, types, values, NULL, false, 0, SPI_OK_SELECT);
}

/*
 * replica_slot_plugin
 *		The output plugin of a store's slot: "loyalty" (pgoutput confined
 *		to the login's own publication, src/replica_store_output.c) where
 *		this server trusts it (output_plugin_libraries names it), else
 *		"pgoutput".
 */
const char *
replica_slot_plugin(void)
{
	const char *libs = GetConfigOption("output_plugin_libraries", true, false);
	List	   *names = NIL;
	ListCell   *lc;

	if (libs == NULL || !SplitIdentifierString(pstrdup(libs), ',', &names))
		return "pgoutput";
	foreach(lc, names)
		if (strcmp((const char *) lfirst(lc), REPLICA_OUTPUT_PLUGIN) == 0)
			return REPLICA_OUTPUT_PLUGIN;
	return "pgoutput";
}


/*
 * replica_drop_slot
 *		Drop this database's slot of that name (a slot of that name in
 *		another database is left alone).  An active slot is an error unless force, which ends
 *		the walsender using it and waits for the slot to be released.
 *		Not transactional: callers drop slots last.  Needs an SPI
 *		connection.
 */
void
replica_drop_slot(const char *slotname, bool force)
{
	bool		active = false;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	if (!replica_slot_exists(slotname, &active))
		return;
	if (active && !force)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("replication slot \"%s\" is in use", slotname),
				 errdetail("A subscriber is connected to it."),
				 errhint("Unsubscribe the store first, or pass force => true to disconnect it.")));
	if (active)
	{
		values[0] = CStringGetTextDatum(slotname);
		lspi_exec("SELECT pg_catalog.pg_terminate_backend(s.active_pid) "
						 "FROM pg_catalog.pg_replication_slots s "
						 "WHERE s.slot_name = $1::pg_catalog.name AND s.active_pid IS NOT NULL "
						 "AND s.database = pg_catalog.current_database()",
						 1, types, values, NULL, false, 0, SPI_OK_SELECT);
	}
	/* waits until a terminated walsender has released the slot */
	ReplicationSlotDrop(slotname, !active);
}

/*
 * replica_ensure_remote_slot
 *		Make slot REPLICA_OUTBOX_SLOT on the server at conninfo (a store)
 *		unless it exists, over a replication connection, as CREATE
 *		SUBSCRIPTION does with create_slot = true.  Making it from here
 *		lets the caller run in a transaction block; the store's outbox
 *		publication exists before the slot (made by store_subscribe in an
 *		earlier transaction), as pgoutput requires.  Returns true if the
 *		slot was made now.
 */
bool
replica_ensure_remote_slot(const char *conninfo, const char *appname)
{
	WalReceiverConn *wrconn;
	WalRcvExecResult *res;
	Oid			rettypes[1] = {INT4OID};
	char	   *err = NULL;
	bool		exists;
	TupleTableSlot *slot;

	load_file("libpqwalreceiver", false);
	wrconn = walrcv_connect(conninfo, true, appname, &err);
	if (wrconn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not connect to the store: %s", err)));
	PG_TRY();
	{
		res = walrcv_exec(wrconn,
						  "SELECT pg_catalog.count(*)::int4 FROM pg_catalog.pg_replication_slots "
						  "WHERE slot_name = '" REPLICA_OUTBOX_SLOT "'",
						  1, rettypes);
		if (res->status != WALRCV_OK_TUPLES)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not read the store's replication slots: %s", res->err)));
		slot = MakeSingleTupleTableSlot(res->tupledesc, &TTSOpsMinimalTuple);
		if (!tuplestore_gettupleslot(res->tuplestore, true, false, slot))
			elog(ERROR, "no result counting the store's replication slots");
		{
			bool		isnull;

			exists = DatumGetInt32(slot_getattr(slot, 1, &isnull)) > 0;
		}
		ExecDropSingleTupleTableSlot(slot);
		walrcv_clear_result(res);
		if (!exists)
			(void) walrcv_create_slot(wrconn, REPLICA_OUTBOX_SLOT, false, false,
									  CRS_NOEXPORT_SNAPSHOT, NULL);
	}
	PG_FINALLY();
	{
		walrcv_disconnect(wrconn);
	}
	PG_END_TRY();
	return !exists;
}

/*
 * replica_ensure_outbox_publication
 *		CREATE PUBLICATION loyalty_outbox FOR TABLE loyalty.outbox WITH
 *		(publish = 'insert') unless it exists.  Inserts only: a store never
 *		updates an event, and pruning acknowledged events must not reach
 *		HQ.  Publications cannot belong to an extension, so this is made
 *		when a server becomes a store, not by CREATE EXTENSION.
 */
void
replica_ensure_outbox_publication(void)
{
	CreatePublicationStmt *stmt;
	PublicationObjSpec *obj;
	PublicationTable *pt;

	if (replica_publication_exists(REPLICA_OUTBOX_PUB))
		return;
	stmt = makeNode(CreatePublicationStmt);
	stmt->pubname = pstrdup(REPLICA_OUTBOX_PUB);
	stmt->options = list_make1(makeDefElem("publish", (Node *) makeString("insert"), -1));
	pt = makeNode(PublicationTable);
	pt->relation = makeRangeVar("loyalty", "outbox", -1);
	obj = makeNode(PublicationObjSpec);
	obj->pubobjtype = PUBLICATIONOBJ_TABLE;
	obj->pubtable = pt;
	obj->location = -1;
	stmt->pubobjects = list_make1(obj);
	run_utility((Node *) stmt, "CREATE PUBLICATION (loyalty outbox)");
}

/*
 * replica_check_conninfo
 *		A connection string must name something: an empty one makes libpq
 *		connect to the local defaults, that is, back to this server.
 */
void
replica_check_conninfo(const char *conninfo)
{
	const char *p;

	for (p = conninfo; *p; p++)
		if (strchr(" \t\n\r\f\v", *p) == NULL)
			return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("connection string must not be empty"),
			 errhint("Give the other server's host, port, database and replication login.")));
}

/*
 * replica_local_system_id
 *		This server's system identifier (pg_control_system()), as text.
 */
char *
replica_local_system_id(void)
{
	return psprintf(UINT64_FORMAT, GetSystemIdentifier());
}

/*
 * replica_check_remote_not_self
 *		Connect to conninfo over a replication connection and compare the
 *		server's system identifier (IDENTIFY_SYSTEM) with ours: a store,
 *		hub or HQ subscribing to itself would empty its own tables and
 *		loop.  Every node of the chain is a server of its own.
 */
void
replica_check_remote_not_self(const char *conninfo)
{
	WalReceiverConn *wrconn;
	char	   *err = NULL;
	char	   *remote;
	TimeLineID	tli;

	replica_check_conninfo(conninfo);
	load_file("libpqwalreceiver", false);
	wrconn = walrcv_connect(conninfo, true, "loyalty_identity_check", &err);
	if (wrconn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not connect to the other server: %s", err)));
	PG_TRY();
	{
		remote = walrcv_identify_system(wrconn, &tli);
	}
	PG_FINALLY();
	{
		walrcv_disconnect(wrconn);
	}
	PG_END_TRY();
	if (strcmp(remote, replica_local_system_id()) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the connection string points back at this server"),
				 errdetail("The server reached has this server's system identifier %s.", remote),
				 errhint("Headquarters, hubs and stores each run on a server of their own.")));
}

/*
 * replica_identity_state
 *		Whether this database is the one that recorded loyalty.replica_identity
 *		(this server's system identifier and this database's OID): a
 *		restored copy, or a database that never attached a store, is not.
 *		Needs an SPI connection.
 */
ReplicaIdentityState
replica_identity_state(void)
{
	static SPIPlanPtr plan = NULL;
	char	   *sysid;
	char	   *dboid;

	/* saved: HQ asks at every store event it receives */
	lspi_run(lspi_plan(&plan, "SELECT i.system_identifier, i.database_oid::pg_catalog.text "
					   "FROM loyalty.replica_identity i", 0, NULL),
			 NULL, NULL, true, 0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return REPLICA_IDENTITY_NONE;
	sysid = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	dboid = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (strcmp(sysid, replica_local_system_id()) == 0 &&
		strcmp(dboid, psprintf("%u", MyDatabaseId)) == 0)
		return REPLICA_IDENTITY_THIS;
	return REPLICA_IDENTITY_OTHER;
}

/*
 * replica_identity_claim
 *		Record this server and database in loyalty.replica_identity.  A row
 *		of another server or database (a restored copy) is an error unless
 *		adopt.  Needs an SPI connection.
 */
void
replica_identity_claim(bool adopt)
{
	Oid			types[2] = {TEXTOID, OIDOID};
	Datum		values[2];

	if (!adopt && replica_identity_state() == REPLICA_IDENTITY_OTHER)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this database is a restored copy of another loyalty database"),
				 errdetail("Its replication identity names another server or database, so store events are not applied here."),
				 errhint("If this database is to serve as that node from now on, call loyalty.replica_adopt() first (docs/operations.md).")));
	values[0] = CStringGetTextDatum(replica_local_system_id());
	values[1] = ObjectIdGetDatum(MyDatabaseId);
	lspi_exec("INSERT INTO loyalty.replica_identity (system_identifier, database_oid) "
					 "VALUES ($1, $2) ON CONFLICT (singleton) DO UPDATE "
					 "SET system_identifier = excluded.system_identifier, "
					 "database_oid = excluded.database_oid, recorded_at = pg_catalog.now() "
					 "WHERE (loyalty.replica_identity.system_identifier, loyalty.replica_identity.database_oid) "
					 "IS DISTINCT FROM (excluded.system_identifier, excluded.database_oid)",
					 2, types, values, NULL, false, 0, SPI_OK_INSERT);
}
