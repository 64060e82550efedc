/*-------------------------------------------------------------------------
 *
 * replica_store_output.c
 *	  The "loyalty" logical decoding output plugin: pgoutput, confined to
 *	  the publications the replication login may read.
 *
 * PG15 publications have no ACL: any REPLICATION login may stream any
 * publication with pgoutput.  loyalty.so is also an output plugin
 * (slots made with plugin 'loyalty'): it is pgoutput, whose callbacks it
 * takes from the server's pgoutput library, with one more check when
 * decoding starts.  A login that is not a superuser may stream
 *	- a store's or hub's publication (loyalty_store_<code>,
 *	  loyalty_hub_<code>) only if loyalty.replica_login maps it to that
 *	  store or hub;
 *	- any other publication only if it may SELECT every table in it (a
 *	  FOR ALL TABLES or TABLES IN SCHEMA publication: never).
 * A store's or hub's slot is decoded only by the login mapped to it
 * (decoding consumes the slot).
 * It confines the stream only where the server trusts no other plugin:
 * output_plugin_libraries = 'loyalty' at HQ (docs/operations.md).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid_d.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "replication/logical.h"
#include "replication/output_plugin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/varlena.h"

#include "replica.h"
#include "spi.h"

extern PGDLLEXPORT void _PG_output_plugin_init(OutputPluginCallbacks *cb);

/* pgoutput's own startup callback */
static LogicalDecodeStartupCB pgoutput_startup = NULL;

/*
 * publication_names
 *		The publication_names option of the decoding request, split, or
 *		NIL (pgoutput then refuses the request itself).
 */
static List *
publication_names(List *options)
{
	ListCell   *lc;
	List	   *names = NIL;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "publication_names") == 0 && def->arg != NULL)
		{
			if (!SplitIdentifierString(pstrdup(strVal(def->arg)), ',', &names))
				return NIL;
		}
	}
	return names;
}

/*
 * ask_as_bootstrap
 *		Run a one-row boolean query with $1 = name (text) and $2 = login
 *		(oid) as the bootstrap superuser (the login cannot read
 *		loyalty.replica_login), and return its answer (NULL is false).
 *		Needs an SPI connection.
 */
static bool
ask_as_bootstrap(const char *sql, Oid login, const char *name)
{
	Oid			types[2] = {TEXTOID, OIDOID};
	Datum		values[2];
	bool		isnull;
	bool		ok;
	Oid			save_userid;
	int			save_sec;

	values[0] = CStringGetTextDatum(name);
	values[1] = ObjectIdGetDatum(login);
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	lspi_exec(sql, 2, types, values, NULL, true, 1, SPI_OK_SELECT);
	ok = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull;
	SetUserIdAndSecContext(save_userid, save_sec);
	return ok;
}

/*
 * may_stream
 *		Whether the login may stream the publication.  Runs as the
 *		bootstrap superuser (the login cannot read loyalty.replica_login),
 *		with the login as a parameter.  Needs an SPI connection.
 */
static bool
may_stream(Oid login, const char *pubname)
{
	/*
	 * A store's or hub's publication: the mapped login only.  Another
	 * publication: every table readable by the login and none under row
	 * level security (pgoutput would stream every row, ignoring it).
	 */
	return ask_as_bootstrap("SELECT CASE "
							"WHEN $1 LIKE 'loyalty\\_store\\_%' OR $1 LIKE 'loyalty\\_hub\\_%' THEN "
							"  EXISTS (SELECT 1 FROM loyalty.replica_login l "
							"          JOIN loyalty.replica_store r USING (store_code) "
							"          JOIN pg_catalog.pg_roles a ON a.rolname = l.login "
							"         WHERE a.oid = $2 AND r.publication = $1::pg_catalog.name) "
							"ELSE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication p "
							"                 WHERE p.pubname = $1 AND (p.puballtables OR EXISTS "
							"                       (SELECT 1 FROM pg_catalog.pg_publication_namespace n WHERE n.pnpubid = p.oid) "
							"                    OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel r "
							"                               JOIN pg_catalog.pg_class c ON c.oid = r.prrelid "
							"                               WHERE r.prpubid = p.oid AND (c.relrowsecurity "
							"                                 OR NOT pg_catalog.has_table_privilege($2, r.prrelid, 'SELECT'))))) "
							"END",
							login, pubname);
}

/*
 * may_decode_slot
 *		Whether the login may decode (and so consume, advancing it) the
 *		slot: a store's or hub's slot (loyalty.replica_store.slot_name)
 *		only for the login mapped to that store or hub; any other slot
 *		(one the login made itself) yes.  Same context as may_stream.
 */
static bool
may_decode_slot(Oid login, const char *slotname)
{
	return ask_as_bootstrap("SELECT NOT EXISTS (SELECT 1 FROM loyalty.replica_store r WHERE r.slot_name = $1::pg_catalog.name) "
							"OR EXISTS (SELECT 1 FROM loyalty.replica_login l "
							"           JOIN loyalty.replica_store r USING (store_code) "
							"           JOIN pg_catalog.pg_roles a ON a.rolname = l.login "
							"          WHERE a.oid = $2 AND r.slot_name = $1::pg_catalog.name)",
							login, slotname);
}

/*
 * check_publications
 *		Refuse (42501) a publication the login may not stream, or another
 *		store's slot (decoding it would consume it: that store would miss
 *		the changes; making it, after that store's slot was dropped, would
 *		start that store's stream at a point of the login's choosing).
 *		Runs in a transaction of its own when decoding starts in a
 *		walsender (which has none then), in the caller's for the SQL slot
 *		functions.
 */
static void
check_publications(const char *slotname, List *names, bool making)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	bool		own_xact = !IsTransactionState();
	bool		pushed = false;
	ListCell   *lc;

	if (own_xact)
	{
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
	}
	else if (!ActiveSnapshotSet())
	{
		/*
		 * Making a slot with SNAPSHOT 'use' (a store's own copy): the
		 * transaction's snapshot is the slot's, installed after this, so
		 * the checks (read-only) read with a catalog snapshot instead
		 */
		PushActiveSnapshot(GetCatalogSnapshot(InvalidOid));
		pushed = true;
	}
	if (!superuser())
	{
		/*
		 * The checks run as a superuser: never with the login's own
		 * search_path (which it sets itself), restored when they end
		 */
		int			save_nestlevel = NewGUCNestLevel();

		(void) set_config_option("search_path", "pg_catalog, pg_temp",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
		lspi_connect(LSPI_READ_ONLY);
		if (making && !may_decode_slot(GetSessionUserId(), slotname))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("login \"%s\" may not make replication slot \"%s\"",
							GetUserNameFromId(GetSessionUserId(), false), slotname),
					 errdetail("A store's slot is made only by HQ's DBA (loyalty.replica_slot_create) or that store's replication login.")));
		if (!may_decode_slot(GetSessionUserId(), slotname))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("login \"%s\" may not decode replication slot \"%s\"",
							GetUserNameFromId(GetSessionUserId(), false), slotname),
					 errdetail("A store's slot is decoded only by that store's replication login.")));
		foreach(lc, names)
		{
			const char *pubname = (const char *) lfirst(lc);

			if (!may_stream(GetSessionUserId(), pubname))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("login \"%s\" may not stream publication \"%s\"",
								GetUserNameFromId(GetSessionUserId(), false), pubname),
						 errdetail("A store's replication login streams only its own store's publication."),
						 errhint("Map the login to its store with loyalty.replica_login_grant() (docs/operations.md).")));
		}
		lspi_finish();
		AtEOXact_GUC(true, save_nestlevel);
	}
	if (pushed)
	{
		/* and leave no xmin behind: the slot's snapshot is built next */
		PopActiveSnapshot();
		InvalidateCatalogSnapshot();
	}
	if (own_xact)
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
}

/*
 * loyalty_output_startup
 *		pgoutput's startup, after the check.  Making the slot (is_init)
 *		names no publication: only the slot's name is checked then (a
 *		store's slot name is for that store's login), so that a login
 *		that dropped another store's slot cannot make it again.
 */
static void
loyalty_output_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt,
					   bool is_init)
{
	check_publications(NameStr(ctx->slot->data.name),
					   is_init ? NIL : publication_names(ctx->output_plugin_options),
					   is_init);
	pgoutput_startup(ctx, opt, is_init);
}

/*
 * _PG_output_plugin_init
 *		pgoutput's callbacks, with loyalty_output_startup first.
 */
void
_PG_output_plugin_init(OutputPluginCallbacks *cb)
{
	LogicalOutputPluginInit pgoutput_init;

	pgoutput_init = (LogicalOutputPluginInit)
		load_external_function("pgoutput", "_PG_output_plugin_init", true, NULL);
	pgoutput_init(cb);
	pgoutput_startup = cb->startup_cb;
	cb->startup_cb = loyalty_output_startup;
}
