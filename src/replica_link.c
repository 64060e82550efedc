/*-------------------------------------------------------------------------
 *
 * replica_link.c
 *	  The other end of a replication link, as it is (issue 14.11,
 *	  docs/replication.md "The DBA view"): loyalty._replica_probe() connects
 *	  with a subscription's own connection string to the server it reads
 *	  from (a store's HQ or hub; HQ's store) and asks that server about
 *	  the slot the subscription reads (missing, or its wal_status: 'lost'
 *	  when max_slot_wal_keep_size removed its WAL) and, for an outbox,
 *	  how many events it holds after the last one this server received;
 *	  a store also asks HQ for the last event of its incarnation HQ has
 *	  seen, which is beyond the store's own numbering only if the store
 *	  was restored from an older backup.
 *	  A subscriber's own statistics do not show a slot lost at the other
 *	  end (its worker may go on showing as streaming while nothing comes),
 *	  and only the other server knows its events.  loyalty.replica_link_check()
 *	  (src/sql/54_replica_status.sql) puts the answers together with what
 *	  this server knows of its own slots and subscriptions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "replication/walreceiver.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "replica.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_replica_probe);

/* settings of loyalty.replica_link_watch() (src/sql/56_replica_link_watch.sql) */
static int	replica_link_wait_warn = 15;	/* minutes; 0: never */
static int	replica_link_log_keep = 288;	/* checks kept per link */

/*
 * replica_link_init
 *		Define the settings of the scheduled link check (from _PG_init).
 *		loyalty.replica_link_watch() reads them by name, so that a value
 *		set in postgresql.conf holds before this library is loaded.
 */
void
replica_link_init(void)
{
	DefineCustomIntVariable("loyalty.replica_link_wait_warn",
							"How long events may wait on a replication link before replica_link_watch() warns.",
							"0 turns the warning off; a link that is down is warned about at once.",
							&replica_link_wait_warn, 15, 0, 7 * 24 * 60,
							PGC_SUSET, GUC_UNIT_MIN, NULL, NULL, NULL);
	DefineCustomIntVariable("loyalty.replica_link_log_keep",
							"How many checks of each replication link loyalty.replica_link_log keeps.",
							NULL,
							&replica_link_log_keep, 288, 1, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/* seconds a probe waits for the other server to answer a connection */
#define PROBE_CONNECT_TIMEOUT	"10"

/*
 * subscription_conninfo
 *		The connection string of subscription "subname" of this database,
 *		or NULL if there is none.  Copied to the caller's memory context.
 */
static char *
subscription_conninfo(const char *subname, MemoryContext outer)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char	   *conninfo = NULL;

	values[0] = CStringGetTextDatum(subname);
	lspi_connect(LSPI_READ_WRITE);
	if (lspi_exec("SELECT s.subconninfo FROM pg_catalog.pg_subscription s "
				  " WHERE s.subname = $1 AND s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d "
				  "                                        WHERE d.datname = pg_catalog.current_database())",
				  1, types, values, NULL, true, 1, SPI_OK_SELECT) > 0)
	{
		char	   *text = lspi_text(0, 1);

		if (text)
			conninfo = MemoryContextStrdup(outer, text);
	}
	lspi_finish();
	return conninfo;
}

/*
 * with_timeout
 *		conninfo with a connect_timeout, unless it has one or is a URI (whose
 *		parameters cannot simply be appended): a probe of an unreachable
 *		server must not hang.
 */
static char *
with_timeout(const char *conninfo)
{
	if (strstr(conninfo, "connect_timeout") != NULL ||
		strncmp(conninfo, "postgres://", 11) == 0 ||
		strncmp(conninfo, "postgresql://", 13) == 0)
		return pstrdup(conninfo);
	return psprintf("%s connect_timeout=" PROBE_CONNECT_TIMEOUT, conninfo);
}

/*
 * loyalty_replica_probe
 *		loyalty._replica_probe(subscription name, slot_name text, after_seq
 *		bigint, verdict_prefix text, OUT reachable boolean, OUT slot_found
 *		boolean, OUT wal_status text, OUT events_after bigint, OUT error
 *		text).  Connects to the publisher of "subscription" and reads its
 *		slot "slot_name" (of the database the subscription reads); with
 *		after_seq (HQ asking a store), also the number of that server's
 *		outbox events whose sequence number is above it; with
 *		verdict_prefix "<store>-<incarnation>-" (a store asking HQ), the
 *		highest sequence number of that incarnation HQ has a verdict for.  A connection or query failure is an answer (reachable
 *		false, or error set), never an error.
 */
Datum
loyalty_replica_probe(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		result[5] = {0};
	bool		nulls[5] = {false, true, true, true, true};
	char	   *subname;
	char	   *slotname;
	char	   *conninfo;
	char	   *err = NULL;
	char	   *sql;
	WalReceiverConn *wrconn;
	WalRcvExecResult *res;
	Oid			rettypes[3] = {BOOLOID, TEXTOID, INT8OID};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("subscription and slot must not be null")));
	subname = NameStr(*PG_GETARG_NAME(0));
	slotname = text_to_cstring(PG_GETARG_TEXT_PP(1));
	conninfo = subscription_conninfo(subname, CurrentMemoryContext);
	if (conninfo == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("subscription \"%s\" does not exist in this database", subname)));

	if (!PG_ARGISNULL(2))
		sql = psprintf("SELECT s.slot_name IS NOT NULL, s.wal_status::text, "
					   "       (SELECT pg_catalog.count(*) FROM loyalty.outbox o WHERE o.seq > " INT64_FORMAT ")::int8 "
					   "  FROM (SELECT 1) x LEFT JOIN pg_catalog.pg_replication_slots s "
					   "    ON s.slot_name = %s AND s.database = pg_catalog.current_database()",
					   PG_GETARG_INT64(2), quote_literal_cstr(slotname));
	else if (!PG_ARGISNULL(3))
	{
		char	   *prefix = text_to_cstring(PG_GETARG_TEXT_PP(3));

		sql = psprintf("SELECT s.slot_name IS NOT NULL, s.wal_status::text, "
					   "       (SELECT pg_catalog.max(pg_catalog.substr(r.event_id, %d)::int8) "
					   "          FROM loyalty.outbox_result r "
					   "         WHERE pg_catalog.starts_with(r.event_id, %s) "
					   "           AND pg_catalog.substr(r.event_id, %d) ~ '^[0-9]{1,18}$') "
					   "  FROM (SELECT 1) x LEFT JOIN pg_catalog.pg_replication_slots s "
					   "    ON s.slot_name = %s AND s.database = pg_catalog.current_database()",
					   (int) strlen(prefix) + 1, quote_literal_cstr(prefix), (int) strlen(prefix) + 1,
					   quote_literal_cstr(slotname));
	}
	else
		sql = psprintf("SELECT s.slot_name IS NOT NULL, s.wal_status::text, NULL::int8 "
					   "  FROM (SELECT 1) x LEFT JOIN pg_catalog.pg_replication_slots s "
					   "    ON s.slot_name = %s AND s.database = pg_catalog.current_database()",
					   quote_literal_cstr(slotname));

	load_file("libpqwalreceiver", false);
	wrconn = walrcv_connect(with_timeout(conninfo), true, "loyalty_link_check", &err);
	if (wrconn == NULL)
	{
		result[0] = BoolGetDatum(false);
		result[4] = CStringGetTextDatum(err ? err : "could not connect");
		nulls[4] = false;
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, result, nulls)));
	}
	result[0] = BoolGetDatum(true);
	PG_TRY();
	{
		res = walrcv_exec(wrconn, sql, 3, rettypes);
		if (res->status != WALRCV_OK_TUPLES)
		{
			result[4] = CStringGetTextDatum(res->err ? res->err : "the query failed");
			nulls[4] = false;
		}
		else
		{
			TupleTableSlot *slot = MakeSingleTupleTableSlot(res->tupledesc, &TTSOpsMinimalTuple);

			if (tuplestore_gettupleslot(res->tuplestore, true, false, slot))
			{
				bool		isnull;
				Datum		d;

				d = slot_getattr(slot, 1, &isnull);
				result[1] = d;
				nulls[1] = isnull;
				d = slot_getattr(slot, 2, &isnull);
				if (!isnull)
					result[2] = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
				nulls[2] = isnull;
				d = slot_getattr(slot, 3, &isnull);
				result[3] = d;
				nulls[3] = isnull;
			}
			ExecDropSingleTupleTableSlot(slot);
		}
		walrcv_clear_result(res);
	}
	PG_FINALLY();
	{
		walrcv_disconnect(wrconn);
	}
	PG_END_TRY();
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, result, nulls)));
}
