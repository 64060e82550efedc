/*-------------------------------------------------------------------------
 *
 * earning_line.c
 *	  The one place where the engine's points leave it: each line is
 *	  recorded in loyalty.earning_line with the rule that produced it and
 *	  posted to the point ledger; pending lines are activated at checkout.
 *
 * The lines of one call are inserted in one statement.  Each line becomes
 * one lot of the point ledger (src/ledger.h): source
 * stay or spend for base points, bonus for the elite bonus, campaign,
 * milestone; the rule; the stay or charge id as the reference by which
 * pending lots are activated at checkout.  The ledger call takes no
 * idempotency key of its own: the stay's or charge's unique key, written
 * in the same transaction, is the idempotency record.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "earning.h"
#include "earning_line.h"
#include "ledger.h"
#include "spi.h"

static SPIPlanPtr line_plan = NULL;
static SPIPlanPtr activate_plan = NULL;

static const char *const kind_names[] = {"base", "elite", "campaign", "milestone"};

/*
 * ledger_source
 *		The ledger's lot source for a line.
 */
static const char *
ledger_source(EarnKind kind, const char *source)
{
	switch (kind)
	{
		case EARN_BASE:
			return strcmp(source, "stay") == 0 ? "stay" : "spend";
		case EARN_ELITE:
			return "bonus";
		case EARN_CAMPAIGN:
			return "campaign";
		case EARN_MILESTONE:
			return "milestone";
	}
	return "adjustment";
}

/*
 * earning_post
 *		Record and post lines from_line .. nlines-1 of a result: the lines
 *		in one statement (one row per line), then each line to the ledger.
 */
void
earning_post(const EarnResult *r, int from_line, const char *source,
			 const pg_uuid_t *source_id, const pg_uuid_t *member_id,
			 const char *store, bool pending, TimestampTz occurred_at)
{
	Oid			types[10] = {UUIDOID, TEXTOID, TEXTOID, UUIDOID, TEXTARRAYOID,
	TEXTARRAYOID, UUIDARRAYOID, INT8ARRAYOID, BOOLOID, TIMESTAMPTZOID};
	Datum		values[10];
	int			n = r->nlines - from_line;
	int			i;
	char	   *reference;

	if (n <= 0)
		return;
	reference = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(source_id)));
	{
		Datum	   *kinds = palloc(sizeof(Datum) * n);
		Datum	   *rules = palloc(sizeof(Datum) * n);
		Datum	   *campaigns = palloc(sizeof(Datum) * n);
		Datum	   *points = palloc(sizeof(Datum) * n);
		bool	   *no_campaign = palloc(sizeof(bool) * n);
		int			dims[1] = {n};
		int			lbs[1] = {1};

		for (i = 0; i < n; i++)
		{
			const EarnLine *l = &r->lines[from_line + i];

			kinds[i] = CStringGetTextDatum(kind_names[l->kind]);
			rules[i] = CStringGetTextDatum(l->rule);
			campaigns[i] = UUIDPGetDatum(&l->campaign_id);
			no_campaign[i] = !l->has_campaign;
			points[i] = Int64GetDatum(l->points);
		}
		values[0] = UUIDPGetDatum(member_id);
		values[1] = CStringGetTextDatum(store);
		values[2] = CStringGetTextDatum(source);
		values[3] = UUIDPGetDatum(source_id);
		values[4] = PointerGetDatum(construct_array(kinds, n, TEXTOID, -1, false, TYPALIGN_INT));
		values[5] = PointerGetDatum(construct_array(rules, n, TEXTOID, -1, false, TYPALIGN_INT));
		values[6] = PointerGetDatum(construct_md_array(campaigns, no_campaign, 1, dims, lbs,
													   UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
		values[7] = PointerGetDatum(construct_array(points, n, INT8OID, 8, FLOAT8PASSBYVAL,
													TYPALIGN_DOUBLE));
		values[8] = BoolGetDatum(pending);
		values[9] = TimestampTzGetDatum(occurred_at);
		lspi_run(lspi_plan(&line_plan,
						   "INSERT INTO loyalty.earning_line (member_id, store_code, source, source_id, "
						   "       kind, rule, campaign_id, points, pending, occurred_at) "
						   "SELECT $1, $2, $3, $4, l.kind, l.rule, l.campaign_id, l.points, $9, $10 "
						   "  FROM unnest($5, $6, $7, $8) WITH ORDINALITY AS l(kind, rule, campaign_id, points, ord) "
						   " ORDER BY l.ord",
						   10, types),
				 values, NULL, false, 0, SPI_OK_INSERT);
	}

	for (i = from_line; i < r->nlines; i++)
	{
		const EarnLine *l = &r->lines[i];
		LedgerAccrual req;
		LedgerResult lres;

		memset(&req, 0, sizeof(req));
		req.member_id = *member_id;
		req.store_code = store;
		req.points = l->points;
		req.source = ledger_source(l->kind, source);
		req.rule = l->rule;
		req.reference = reference;
		req.has_occurred_at = true;
		req.occurred_at = occurred_at;
		req.pending = pending;
		req.idem_key = NULL;
		ledger_accrue(&req, &lres);
	}
}

/*
 * earning_activate
 *		Pending lines of one stay become active (checkout), and so do the
 *		ledger's pending lots with the stay as reference.
 */
void
earning_activate(const pg_uuid_t *source_id, const pg_uuid_t *member_id,
				 const char *store)
{
	Oid			types[1] = {UUIDOID};
	Datum		values[1];

	values[0] = UUIDPGetDatum(source_id);
	if (lspi_run(lspi_plan(&activate_plan,
								 "UPDATE loyalty.earning_line SET pending = false "
								 " WHERE source_id = $1 AND pending", 1, types),
					values, NULL, false, 0, SPI_OK_UPDATE) > 0)
	{
		LedgerResult lres;

		ledger_activate(*member_id, store,
						DatumGetCString(DirectFunctionCall1(uuid_out, values[0])),
						NULL, &lres);
	}
}

/*
 * earning_add_line
 *		Append a line (points > 0 only; a zero line is not recorded).
 */
EarnLine *
earning_add_line(EarnResult *out, EarnKind kind, int64 points)
{
	EarnLine   *l;

	if (points <= 0)
		return NULL;
	if (out->nlines >= EARN_MAX_LINES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("more than %d earning lines for one activity", EARN_MAX_LINES)));
	l = &out->lines[out->nlines++];
	memset(l, 0, sizeof(*l));
	l->kind = kind;
	l->points = points;
	return l;
}
