/*-------------------------------------------------------------------------
 *
 * event_outbox.c
 *	  Emit an event: one row in loyalty.event_outbox, in the caller's
 *	  transaction, and a NOTIFY on channel "loyalty_event" whose payload is
 *	  the event kind and id ("points_expired 42").  Both become visible
 *	  when the transaction commits and vanish if it rolls back.
 *
 * Consumers (docs/ledger.md, "Events") LISTEN loyalty_event as a wake-up
 * call only and read the table through loyalty.event_read() and
 * loyalty.event_ack(), which order events by (txid, event_id) and return
 * only events of transactions older than every running one, so that a
 * consumer never skips an event that commits late.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "event.h"
#include "spi.h"

/*
 * loyalty_outbox_emit
 *		Insert one event (payload_json: a JSON object, or NULL for {}) and
 *		notify listeners.  Returns the event id.  Usable with or without an
 *		open SPI connection.
 */
int64
loyalty_outbox_emit(const char *kind, const pg_uuid_t *member_id,
					const char *store_code, const char *payload_json)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {TEXTOID, UUIDOID, TEXTOID, TEXTOID};
	Datum		v[4];
	char		n[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
	int64		event_id;

	lspi_connect(LSPI_READ_WRITE);
	if (plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare("INSERT INTO loyalty.event_outbox (kind, member_id, store_code, payload) "
									"VALUES ($1, $2, $3, coalesce($4::jsonb, '{}')) RETURNING event_id",
									4, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		plan = p;
	}
	v[0] = CStringGetTextDatum(kind);
	v[1] = member_id ? UUIDPGetDatum(member_id) : (Datum) 0;
	n[1] = member_id ? ' ' : 'n';
	v[2] = store_code ? CStringGetTextDatum(store_code) : (Datum) 0;
	n[2] = store_code ? ' ' : 'n';
	v[3] = payload_json ? CStringGetTextDatum(payload_json) : (Datum) 0;
	n[3] = payload_json ? ' ' : 'n';
	lspi_run(plan, v, n, false, 0, SPI_OK_INSERT_RETURNING);
	event_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	lspi_finish();

	Async_Notify(LOYALTY_EVENT_CHANNEL, psprintf("%s " INT64_FORMAT, kind, event_id));
	return event_id;
}

PG_FUNCTION_INFO_V1(loyalty_event_emit);

/*
 * loyalty._event_emit(kind text, member_id uuid, store_code text,
 *					   payload jsonb) returns bigint
 *		The outbox for SQL and PL/pgSQL code of the extension (risk tags);
 *		granted to nobody.
 */
Datum
loyalty_event_emit(PG_FUNCTION_ARGS)
{
	char	   *kind;
	char	   *store = NULL;
	char	   *payload = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event kind must not be null")));
	kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(2))
		store = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		payload = DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(3)));
	PG_RETURN_INT64(loyalty_outbox_emit(kind,
										PG_ARGISNULL(1) ? NULL : PG_GETARG_UUID_P(1),
										store, payload));
}
