/*-------------------------------------------------------------------------
 *
 * tier_event.c
 *	  Tier events: every tier change is recorded in loyalty.tier_history
 *	  and announced with NOTIFY loyalty_tier, both part of the transaction
 *	  that made the change (a rolled back change announces nothing).
 *
 * This is the one place that emits tier events: when the generic event
 * outbox of the point ledger (src/event.h) lands, the event is appended
 * to it here as well.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "benefit.h"
#include "benefit_resolve.h"
#include "event.h"
#include "tier.h"
#include "spi.h"

static SPIPlanPtr history_plan = NULL;

/*
 * json_field
 *		Append ', "key": "value"' (or null) with JSON escaping.
 */
static void
json_field(StringInfo buf, const char *key, const char *value)
{
	appendStringInfo(buf, ", \"%s\": ", key);
	if (value == NULL)
		appendStringInfoString(buf, "null");
	else
		escape_json(buf, value);
}

/*
 * tier_emit_event
 *		Record one tier change and emit it.  The event payload is a JSON
 *		object: history_id, member_id, old_tier, new_tier, valid_until,
 *		reason, store, detail (the counters that earned an upgrade) and
 *		benefits (the chain benefits gained, lost and changed).
 */
void
tier_emit_event(const pg_uuid_t *member_id, const char *old_tier,
				const char *new_tier, bool has_old_valid, TimestampTz old_valid,
				bool has_valid, TimestampTz valid_until, const char *reason,
				const char *store, const char *detail_json)
{
	Oid			types[8] = {UUIDOID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
	TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	char	   *event_id;
	StringInfoData buf;
	bool		isnull;

	values[0] = UUIDPGetDatum(member_id);
	values[1] = CStringGetTextDatum(old_tier);
	values[2] = CStringGetTextDatum(new_tier);
	values[3] = TimestampTzGetDatum(old_valid);
	if (!has_old_valid)
		nulls[3] = 'n';
	values[4] = TimestampTzGetDatum(valid_until);
	if (!has_valid)
		nulls[4] = 'n';
	values[5] = CStringGetTextDatum(reason);
	values[6] = store ? CStringGetTextDatum(store) : (Datum) 0;
	if (store == NULL)
		nulls[6] = 'n';
	values[7] = detail_json ? CStringGetTextDatum(detail_json) : (Datum) 0;
	if (detail_json == NULL)
		nulls[7] = 'n';
	lspi_run(lspi_plan(&history_plan,
							 "INSERT INTO loyalty.tier_history (member_id, changed_at, old_tier, new_tier, "
							 "       old_valid_until, valid_until, reason, store_code, detail) "
							 "VALUES ($1, clock_timestamp(), $2, $3, $4, $5, $6, $7, $8::jsonb) "
							 "RETURNING event_id",
							 8, types),
				values, nulls, false, 0, SPI_OK_INSERT_RETURNING);
	event_id = DatumGetCString(DirectFunctionCall1(uuid_out,
												   SPI_getbinval(SPI_tuptable->vals[0],
																 SPI_tuptable->tupdesc, 1, &isnull)));

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"history_id\": ");
	escape_json(&buf, event_id);
	json_field(&buf, "member_id",
			   DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(member_id))));
	json_field(&buf, "old_tier", old_tier);
	json_field(&buf, "new_tier", new_tier);
	json_field(&buf, "valid_until", has_valid ? timestamptz_to_str(valid_until) : NULL);
	json_field(&buf, "reason", reason);
	json_field(&buf, "store", store);
	appendStringInfo(&buf, ", \"detail\": %s", detail_json ? detail_json : "null");
	/* the chain benefits the change brings and takes away (docs/benefits.md) */
	{
		Jsonb	   *benefits = loyalty_benefit_tier_change(old_tier, new_tier,
														   GetCurrentTimestamp());

		appendStringInfo(&buf, ", \"benefits\": %s}",
						 JsonbToCString(NULL, &benefits->root, VARSIZE(benefits)));
	}
	loyalty_outbox_emit("tier_changed", member_id, store, buf.data);
}
