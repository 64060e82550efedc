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
#include "commands/async.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
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
static SPIPlanPtr many_plan = NULL;

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
 * benefits_text
 *		The benefits a change from one tier to another brings and takes
 *		away at "at", as JSON text.
 */
static char *
benefits_text(const char *old_tier, const char *new_tier, TimestampTz at)
{
	Jsonb	   *benefits = loyalty_benefit_tier_change(old_tier, new_tier, at);

	return JsonbToCString(NULL, &benefits->root, VARSIZE(benefits));
}

/*
 * event_payload
 *		The tier_changed event's JSON: history_id, member_id, old_tier,
 *		new_tier, valid_until, reason, store, detail (the counters that
 *		earned an upgrade) and benefits (the chain benefits gained, lost and
 *		changed).
 */
static char *
event_payload(const char *event_id, const pg_uuid_t *member_id,
			  const char *old_tier, const char *new_tier, bool has_valid,
			  TimestampTz valid_until, const char *reason, const char *store,
			  const char *detail_json, const char *benefits_json)
{
	StringInfoData buf;

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
	appendStringInfo(&buf, ", \"benefits\": %s}",
					 benefits_json ? benefits_json :
					 benefits_text(old_tier, new_tier, GetCurrentTimestamp()));
	return buf.data;
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
	loyalty_outbox_emit("tier_changed", member_id, store,
						event_payload(event_id, member_id, old_tier, new_tier,
									  has_valid, valid_until, reason, store,
									  detail_json, NULL));
}

/*
 * random_uuid
 *		A version 4 uuid, as gen_random_uuid() makes them.
 */
static void
random_uuid(pg_uuid_t *u)
{
	if (!pg_strong_random(u->data, UUID_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values")));
	u->data[6] = (u->data[6] & 0x0f) | 0x40;
	u->data[8] = (u->data[8] & 0x3f) | 0x80;
}

/*
 * text_array
 *		A text[] of n strings (NULL entries are SQL NULLs).
 */
static Datum
text_array(char **v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	for (i = 0; i < n; i++)
	{
		nulls[i] = v[i] == NULL;
		d[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(v[i]);
	}
	return PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * tier_set_many
 *		tier_set for many locked members at once (the requalification
 *		batch): one statement changes their tiers and validity and writes
 *		their history rows and tier_changed events, the same rows and
 *		payloads tier_set writes one by one, in the order given; then the
 *		events are announced.  The benefits a change brings are computed
 *		once per pair of tiers, at the start of the call.
 */
void
tier_set_many(const TierChange *changes, int n)
{
	Oid			types[9] = {UUIDARRAYOID, UUIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[9];
	Datum	   *member_ids,
			   *event_ids,
			   *old_valid,
			   *valid;
	bool	   *old_valid_null,
			   *valid_null;
	char	  **old_tier,
			  **new_tier,
			  **reason,
			  **detail,
			  **payload;
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i,
				j;
	uint64		k;
	TimestampTz now = GetCurrentTimestamp();
	struct
	{
		const char *old_tier;
		const char *new_tier;
		char	   *json;
	}			cached[16];
	int			ncached = 0;

	if (n == 0)
		return;
	member_ids = palloc(sizeof(Datum) * n);
	event_ids = palloc(sizeof(Datum) * n);
	old_valid = palloc(sizeof(Datum) * n);
	valid = palloc(sizeof(Datum) * n);
	old_valid_null = palloc(sizeof(bool) * n);
	valid_null = palloc(sizeof(bool) * n);
	old_tier = palloc(sizeof(char *) * n);
	new_tier = palloc(sizeof(char *) * n);
	reason = palloc(sizeof(char *) * n);
	detail = palloc(sizeof(char *) * n);
	payload = palloc(sizeof(char *) * n);
	for (i = 0; i < n; i++)
	{
		const TierChange *c = &changes[i];
		pg_uuid_t  *eid = palloc(sizeof(pg_uuid_t));

		random_uuid(eid);
		member_ids[i] = UUIDPGetDatum(&c->member_id);
		event_ids[i] = UUIDPGetDatum(eid);
		old_valid[i] = TimestampTzGetDatum(c->old_valid);
		old_valid_null[i] = !c->has_old_valid;
		valid[i] = TimestampTzGetDatum(c->valid_until);
		valid_null[i] = !c->has_valid;
		old_tier[i] = (char *) c->old_tier;
		new_tier[i] = (char *) c->new_tier;
		reason[i] = (char *) c->reason;
		detail[i] = c->detail_json;
		/* the benefits of one tier change, computed once per batch */
		for (j = 0; j < ncached; j++)
			if (strcmp(cached[j].old_tier, c->old_tier) == 0 &&
				strcmp(cached[j].new_tier, c->new_tier) == 0)
				break;
		if (j == ncached)
		{
			if (ncached == lengthof(cached))
				j = ncached - 1;	/* more pairs than slots: reuse the last */
			else
				ncached++;
			cached[j].old_tier = c->old_tier;
			cached[j].new_tier = c->new_tier;
			cached[j].json = benefits_text(c->old_tier, c->new_tier, now);
		}
		payload[i] = event_payload(DatumGetCString(DirectFunctionCall1(uuid_out, event_ids[i])),
								   &c->member_id, c->old_tier, c->new_tier,
								   c->has_valid, c->valid_until, c->reason, NULL,
								   c->detail_json, cached[j].json);
	}
	values[0] = PointerGetDatum(construct_array(member_ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	values[1] = PointerGetDatum(construct_array(event_ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	values[2] = text_array(old_tier, n);
	values[3] = text_array(new_tier, n);
	values[4] = PointerGetDatum(construct_md_array(old_valid, old_valid_null, 1, dims, lbs,
												   TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[5] = PointerGetDatum(construct_md_array(valid, valid_null, 1, dims, lbs,
												   TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[6] = text_array(reason, n);
	values[7] = text_array(detail, n);
	values[8] = text_array(payload, n);
	k = lspi_run(lspi_plan(&many_plan,
						   "WITH c AS ( "
						   "  SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9) WITH ORDINALITY "
						   "    AS c(member_id, event_id, old_tier, new_tier, old_valid_until, valid_until, "
						   "         reason, detail, payload, ord)), "
						   "u AS ( "
						   "  UPDATE loyalty.member m SET tier = c.new_tier, tier_valid_until = c.valid_until, "
						   "         updated_at = now() FROM c WHERE m.member_id = c.member_id), "
						   "h AS ( "
						   "  INSERT INTO loyalty.tier_history (event_id, member_id, changed_at, old_tier, new_tier, "
						   "         old_valid_until, valid_until, reason, store_code, detail) "
						   "  SELECT c.event_id, c.member_id, clock_timestamp(), c.old_tier, c.new_tier, "
						   "         c.old_valid_until, c.valid_until, c.reason, NULL, c.detail::jsonb "
						   "    FROM c ORDER BY c.ord) "
						   "INSERT INTO loyalty.event_outbox (kind, member_id, store_code, payload) "
						   "SELECT 'tier_changed', c.member_id, NULL, c.payload::jsonb FROM c ORDER BY c.ord "
						   "RETURNING event_id",
						   9, types),
				 values, NULL, false, 0, SPI_OK_INSERT_RETURNING);
	for (k = 0; k < SPI_processed; k++)
	{
		bool		isnull;

		Async_Notify(LOYALTY_EVENT_CHANNEL,
					 psprintf("tier_changed " INT64_FORMAT,
							  DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[k],
														  SPI_tuptable->tupdesc, 1, &isnull))));
	}
}
