/*-------------------------------------------------------------------------
 *
 * ledger_expire.c
 *	  The expiry batch: notices of points about to expire and the expiry
 *	  of points that are due, both as events in the outbox.
 *
 * Policy "inactivity" (default): a member's whole balance expires when
 * inactivity_months have passed since the last accrual or redemption
 * (loyalty.point_balance.last_activity_at; transfers do not count).
 * Policy "lot_lifetime": each lot expires at its expires_at (the end of the
 * month lot_lifetime_months after activation).  Members whose tier ranks
 * at or above the policy's exempt tier never expire.  A notice
 * (points_expiring) is emitted once per deadline, notice_days ahead.
 *
 * Each member is locked and the condition re-checked before anything is
 * expired, so a redemption or an accrual committed in the meantime (which
 * resets the clock or spends the points) is never overridden.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "job.h"
#include "ledger_int.h"
#include "event.h"

/*
 * The members with points due to expire at $1 ($2 the inactivity months,
 * $3 the exempt tiers), under each expiry mode: shared by the one-shot
 * batch, the committed batches and their count.
 */
#define DUE_INACTIVE \
	"FROM loyalty.point_balance b " \
	"JOIN loyalty.member m ON m.member_id = b.member_id " \
	"WHERE b.balance > 0 AND m.status <> 'erased' AND m.tier <> ALL ($3) " \
	"AND b.last_activity_at + pg_catalog.make_interval(months => $2) <= $1 "
#define DUE_LOTS \
	"FROM loyalty.point_lot l " \
	"JOIN loyalty.member m ON m.member_id = l.member_id " \
	"WHERE l.state = 'active' AND l.remaining > 0 AND l.expires_at <= $1 " \
	"AND m.status <> 'erased' AND m.tier <> ALL ($3) AND $2 IS NOT NULL "

/*
 * exempt_array
 *		The exempt tier codes as a text[] datum.
 */
static Datum
exempt_array(const LedgerPolicy *lp)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(lp->nexempt, 1));
	int			i;

	for (i = 0; i < lp->nexempt; i++)
		elems[i] = CStringGetTextDatum(lp->exempt[i]);
	return PointerGetDatum(construct_array(elems, lp->nexempt, TEXTOID, -1,
										   false, TYPALIGN_INT));
}

/*
 * run_select
 *		A one-off parameterised statement; error unless it returns
 *		"expected".  Returns the rows processed.
 */
static uint64
run_sql(const char *sql, int nargs, Oid *types, Datum *values, int expected)
{
	int			ret = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);

	if (ret != expected)
		elog(ERROR, "expiry statement failed: %s", SPI_result_code_string(ret));
	return SPI_processed;
}

/*
 * collect_uuids
 *		Column 1 of the last result as an array of uuids.
 */
static pg_uuid_t *
collect_uuids(uint64 n)
{
	pg_uuid_t  *out = palloc(sizeof(pg_uuid_t) * Max(n, 1));
	SPITupleTable *t = SPI_tuptable;
	uint64		i;

	for (i = 0; i < n; i++)
	{
		bool		isnull;

		out[i] = *DatumGetUUIDP(SPI_getbinval(t->vals[i], t->tupdesc, 1, &isnull));
	}
	return out;
}

/*
 * emit_notices
 *		Record and emit points_expiring events due at as_of; returns how
 *		many.  The UPDATE marks each deadline as noticed, so that a notice
 *		is sent once per deadline.
 */
static int
emit_notices(const LedgerPolicy *lp, TimestampTz as_of, Datum exempt)
{
	Datum		v[4];
	uint64		n;
	uint64		i;
	SPITupleTable *t;

	v[0] = TimestampTzGetDatum(as_of);
	v[1] = Int32GetDatum(lp->expiry_mode == EXPIRY_INACTIVITY ?
						 lp->inactivity_months : lp->lot_lifetime_months);
	v[2] = exempt;
	v[3] = Int32GetDatum(lp->notice_days);
	if (lp->expiry_mode == EXPIRY_INACTIVITY)
		n = run_sql("UPDATE loyalty.point_balance b "
					"SET notice_for = b.last_activity_at + pg_catalog.make_interval(months => $2) "
					"FROM loyalty.member m "
					"WHERE m.member_id = b.member_id AND m.status <> 'erased' "
					"AND m.tier <> ALL ($3) AND b.balance > 0 "
					"AND b.last_activity_at + pg_catalog.make_interval(months => $2) > $1 "
					"AND b.last_activity_at + pg_catalog.make_interval(months => $2) "
					"    <= $1 + pg_catalog.make_interval(days => $4) "
					"AND b.notice_for IS DISTINCT FROM b.last_activity_at + pg_catalog.make_interval(months => $2) "
					"RETURNING b.member_id, m.home_store, "
					"pg_catalog.jsonb_build_object('points', b.balance, 'expires_at', b.notice_for)::text",
					4, (Oid[]) {TIMESTAMPTZOID, INT4OID, TEXTARRAYOID, INT4OID}, v,
					SPI_OK_UPDATE_RETURNING);
	else
		n = run_sql("UPDATE loyalty.point_lot l SET notice_sent_at = pg_catalog.now() "
					"FROM loyalty.member m "
					"WHERE m.member_id = l.member_id AND m.status <> 'erased' "
					"AND m.tier <> ALL ($3) AND l.state = 'active' AND l.remaining > 0 "
					"AND l.expires_at > $1 AND l.expires_at <= $1 + pg_catalog.make_interval(days => $4) "
					"AND l.notice_sent_at IS NULL AND $2 IS NOT NULL "
					"RETURNING l.member_id, m.home_store, "
					"pg_catalog.jsonb_build_object('points', l.remaining, 'expires_at', l.expires_at, "
					"'lot_id', l.lot_id)::text",
					4, (Oid[]) {TIMESTAMPTZOID, INT4OID, TEXTARRAYOID, INT4OID}, v,
					SPI_OK_UPDATE_RETURNING);
	t = SPI_tuptable;
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		pg_uuid_t	member = *DatumGetUUIDP(SPI_getbinval(t->vals[i], t->tupdesc, 1, &isnull));

		loyalty_outbox_emit("points_expiring", &member,
							SPI_getvalue(t->vals[i], t->tupdesc, 2),
							SPI_getvalue(t->vals[i], t->tupdesc, 3));
	}
	return (int) n;
}

/*
 * expire_member
 *		Expire a member's due lots (all active lots under the inactivity
 *		policy, if the member is still inactive once locked; the lots past
 *		their date under lot_lifetime).  Returns the points expired and adds
 *		to *nlots.
 */
static int64
expire_member(const LedgerPolicy *lp, pg_uuid_t member_id, TimestampTz as_of,
			  int *nlots)
{
	LedgerMember m;
	Datum		v[3];
	uint64		n;
	uint64		i;
	int64		total = 0;
	SPITupleTable *t;
	LedgerEntry e;
	pg_uuid_t	entry_id;
	pg_uuid_t  *ids;
	int64	   *points;
	StringInfoData payload;
	TimestampTz deadline = 0;

	ledger_lock_member(member_id, &m);
	v[0] = UUIDPGetDatum(&member_id);
	v[1] = TimestampTzGetDatum(as_of);
	v[2] = Int32GetDatum(lp->inactivity_months);
	if (lp->expiry_mode == EXPIRY_INACTIVITY)
	{
		bool		isnull;

		if (run_sql("SELECT last_activity_at + pg_catalog.make_interval(months => $3) "
					"FROM loyalty.point_balance "
					"WHERE member_id = $1 AND balance > 0 "
					"AND last_activity_at + pg_catalog.make_interval(months => $3) <= $2",
					3, (Oid[]) {UUIDOID, TIMESTAMPTZOID, INT4OID}, v, SPI_OK_SELECT) == 0)
			return 0;			/* active again, or nothing left */
		deadline = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull));
		n = run_sql("SELECT lot_id, remaining FROM loyalty.point_lot "
					"WHERE member_id = $1 AND state = 'active' AND spendable "
					"AND $2 IS NOT NULL ORDER BY lot_id",
					2, (Oid[]) {UUIDOID, TIMESTAMPTZOID}, v, SPI_OK_SELECT);
	}
	else
		n = run_sql("SELECT lot_id, remaining FROM loyalty.point_lot "
					"WHERE member_id = $1 AND state = 'active' AND spendable "
					"AND expires_at <= $2 ORDER BY lot_id",
					2, (Oid[]) {UUIDOID, TIMESTAMPTZOID}, v, SPI_OK_SELECT);
	if (n == 0)
		return 0;
	t = SPI_tuptable;
	ids = palloc(sizeof(pg_uuid_t) * n);
	points = palloc(sizeof(int64) * n);
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		ids[i] = *DatumGetUUIDP(SPI_getbinval(t->vals[i], t->tupdesc, 1, &isnull));
		points[i] = DatumGetInt64(SPI_getbinval(t->vals[i], t->tupdesc, 2, &isnull));
		total += points[i];
	}

	memset(&e, 0, sizeof(e));
	e.member_id = m.id;
	e.store_code = m.home_store;
	e.kind = "expire";
	e.points = -total;
	e.balance_after = m.balance - total;
	e.occurred_at = as_of;
	e.note = lp->expiry_mode == EXPIRY_INACTIVITY ? "inactivity" : "lot lifetime";
	entry_id = ledger_insert_entry(&e);
	for (i = 0; i < n; i++)
		ledger_take(entry_id, ids[i], points[i], "expired");
	m.balance -= total;
	ledger_set_balance(&m, false, as_of);
	*nlots += (int) n;

	initStringInfo(&payload);
	appendStringInfo(&payload, "{\"points\": " INT64_FORMAT ", \"entry_id\": \"%s\", \"balance\": " INT64_FORMAT,
					 total, ledger_uuid_text(&entry_id), m.balance);
	if (deadline != 0)
		appendStringInfo(&payload, ", \"reason\": \"inactivity\", \"deadline\": \"%s\"",
						 timestamptz_to_str(deadline));
	appendStringInfoChar(&payload, '}');
	loyalty_outbox_emit("points_expired", &m.id, m.home_store, payload.data);
	return total;
}

/*
 * ledger_expire
 *		The batch: emit notices, then expire what is due at as_of.
 */
void
ledger_expire(TimestampTz as_of, const char *idem_key, LedgerResult *res)
{
	MemoryContext outer = CurrentMemoryContext;
	LedgerPolicy lp;
	char	   *args;
	Datum		v[3];
	Datum		exempt;
	uint64		n;
	uint64		i;
	pg_uuid_t  *members;
	int64		total = 0;
	int			nmembers = 0;
	int			nlots = 0;
	int			notices = 0;

	ledger_check_as_of(as_of);
	args = psprintf("as_of=%s", ledger_ts_text(as_of));
	lspi_connect(LSPI_READ_WRITE);
	if (ledger_idem_replay(idem_key, "expire", args, res))
	{
		ledger_export(res, outer);
		lspi_finish();
		return;
	}
	ledger_get_policy(ledger_now(), &lp);
	if (lp.expiry_mode != EXPIRY_NONE)
	{
		exempt = exempt_array(&lp);
		notices = emit_notices(&lp, as_of, exempt);

		v[0] = TimestampTzGetDatum(as_of);
		v[1] = Int32GetDatum(lp.inactivity_months);
		v[2] = exempt;
		if (lp.expiry_mode == EXPIRY_INACTIVITY)
			n = run_sql("SELECT b.member_id " DUE_INACTIVE "ORDER BY b.member_id",
						3, (Oid[]) {TIMESTAMPTZOID, INT4OID, TEXTARRAYOID}, v, SPI_OK_SELECT);
		else
			n = run_sql("SELECT DISTINCT l.member_id " DUE_LOTS "ORDER BY l.member_id",
						3, (Oid[]) {TIMESTAMPTZOID, INT4OID, TEXTARRAYOID}, v, SPI_OK_SELECT);
		members = collect_uuids(n);
		for (i = 0; i < n; i++)
		{
			int64		p = expire_member(&lp, members[i], as_of, &nlots);

			if (p > 0)
			{
				total += p;
				nmembers++;
			}
		}
	}

	memset(res, 0, sizeof(*res));
	res->operation = "expire";
	res->points = total;
	res->lots_json = psprintf("{\"members\": %d, \"lots\": %d, \"notices\": %d}",
							  nmembers, nlots, notices);
	ledger_idem_record(idem_key, "expire", args, res);
	ledger_export(res, outer);
	lspi_finish();
}

/*
 * ledger_expire_due_count
 *		How many members have points due to expire at as_of: the total a
 *		job of committed batches starts with.
 */
int64
ledger_expire_due_count(TimestampTz as_of)
{
	LedgerPolicy lp;
	Datum		v[3];
	bool		isnull;
	int64		count = 0;

	ledger_check_as_of(as_of);
	lspi_connect(LSPI_READ_WRITE);
	ledger_get_policy(ledger_now(), &lp);
	if (lp.expiry_mode != EXPIRY_NONE)
	{
		v[0] = TimestampTzGetDatum(as_of);
		v[1] = Int32GetDatum(lp.inactivity_months);
		v[2] = exempt_array(&lp);
		run_sql(lp.expiry_mode == EXPIRY_INACTIVITY ?
				"SELECT pg_catalog.count(*) " DUE_INACTIVE :
				"SELECT pg_catalog.count(DISTINCT l.member_id) " DUE_LOTS,
				3, (Oid[]) {TIMESTAMPTZOID, INT4OID, TEXTARRAYOID}, v, SPI_OK_SELECT);
		count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
	}
	lspi_finish();
	return count;
}

/*
 * ledger_expire_batch
 *		One batch of the expiry job: the next batch_size members after
 *		"after" (in member_id order) with points due at as_of, each locked
 *		and re-checked as in ledger_expire.  The first batch (after is the
 *		nil uuid) also emits the notices.  The caller commits.
 */
void
ledger_expire_batch(TimestampTz as_of, pg_uuid_t after, int batch_size,
					JobBatch *out)
{
	LedgerPolicy lp;
	Datum		v[5];
	uint64		n;
	uint64		i;
	pg_uuid_t	nil;
	pg_uuid_t  *members;
	int			nlots = 0;

	ledger_check_as_of(as_of);
	memset(out, 0, sizeof(*out));
	memset(&nil, 0, sizeof(nil));
	lspi_connect(LSPI_READ_WRITE);
	ledger_get_policy(ledger_now(), &lp);
	if (lp.expiry_mode != EXPIRY_NONE)
	{
		v[0] = TimestampTzGetDatum(as_of);
		v[1] = Int32GetDatum(lp.inactivity_months);
		v[2] = exempt_array(&lp);
		v[3] = UUIDPGetDatum(&after);
		v[4] = Int32GetDatum(batch_size);
		if (memcmp(&after, &nil, sizeof(nil)) == 0)
			emit_notices(&lp, as_of, v[2]);
		n = run_sql(lp.expiry_mode == EXPIRY_INACTIVITY ?
					"SELECT b.member_id " DUE_INACTIVE
					"AND b.member_id > $4 ORDER BY b.member_id LIMIT $5" :
					"SELECT DISTINCT l.member_id " DUE_LOTS
					"AND l.member_id > $4 ORDER BY l.member_id LIMIT $5",
					5, (Oid[]) {TIMESTAMPTZOID, INT4OID, TEXTARRAYOID, UUIDOID, INT4OID},
					v, SPI_OK_SELECT);
		members = collect_uuids(n);
		for (i = 0; i < n; i++)
		{
			if (expire_member(&lp, members[i], as_of, &nlots) > 0)
				out->changed++;
		}
		out->processed = (int) n;
		if (n > 0)
			out->last_key = members[n - 1];
	}
	lspi_finish();
}
