/*-------------------------------------------------------------------------
 *
 * reward_sale.c
 *	  Points sold (issue 17 item 4): bought by a member for themselves
 *	  (points_buy) or as a gift for another member (points_gift), and
 *	  refunded within a window (points_sale_refund).
 *
 * A sale, in one transaction: locks both members' balance rows (in uuid
 * order, so two gifts in opposite directions cannot deadlock) and looks
 * the key up under the lock; checks the step and prices the points with
 * the band table (loyalty.points_sale_price); checks the yearly cap of the
 * recipient (points received, bought or gifted) and of the buyer (points
 * bought, for themselves or as gifts) in the calendar year of each one's
 * time zone (LY025); credits the recipient through the ledger as a lot of
 * source "purchase", which tier qualification never reads (it counts
 * stays); records the sale and the audit record.
 *
 * A refund, within refundable_until, reverses the whole accrual through
 * ledger_reverse: the points come back from the lot, and if the recipient
 * has spent some of them, from their other lots; the ledger's policy
 * decides when the balance does not cover them (within_balance refuses).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "args.h"
#include "ledger.h"
#include "reward.h"
#include "roles_caller.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_points_sell);
PG_FUNCTION_INFO_V1(loyalty_points_sale_refund);

#define RIGHTS_SELL		(DEPT_BIT(DEPT_FRONTDESK) | DEPT_BIT(DEPT_STORE_MANAGER) | \
						 DEPT_BIT(DEPT_CRM))

/*
 * sale_year_total
 *		Points of the member's unrefunded sales this calendar year (the
 *		member's time zone, falling back to the home store's), as
 *		recipient (column "member_id") or as buyer ("buyer_id").
 */
static int64
sale_year_total(const pg_uuid_t *member, bool as_buyer)
{
	Datum		v[2] = {UUIDPGetDatum(member),
	TimestampTzGetDatum(GetCurrentTransactionStartTimestamp())};

	reward_sql(as_buyer ?
			   "SELECT coalesce(sum(s.points), 0)::bigint FROM loyalty.points_sale s, loyalty.member m "
			   "  JOIN loyalty.store h ON h.store_code = m.home_store "
			   " WHERE m.member_id = $1 AND s.buyer_id = $1 AND s.state = 'sold' "
			   "   AND s.sold_at >= (pg_catalog.date_trunc('year', $2 AT TIME ZONE "
			   "       coalesce(m.time_zone, h.time_zone)) AT TIME ZONE coalesce(m.time_zone, h.time_zone))" :
			   "SELECT coalesce(sum(s.points), 0)::bigint FROM loyalty.points_sale s, loyalty.member m "
			   "  JOIN loyalty.store h ON h.store_code = m.home_store "
			   " WHERE m.member_id = $1 AND s.member_id = $1 AND s.state = 'sold' "
			   "   AND s.sold_at >= (pg_catalog.date_trunc('year', $2 AT TIME ZONE "
			   "       coalesce(m.time_zone, h.time_zone)) AT TIME ZONE coalesce(m.time_zone, h.time_zone))",
			   2, (Oid[]) {UUIDOID, TIMESTAMPTZOID}, v, NULL, SPI_OK_SELECT);
	return reward_get_int64(0, 1, NULL);
}

/*
 * check_cap
 *		LY025 unless points more keep the member within the yearly cap.
 */
static void
check_cap(const pg_uuid_t *member, bool as_buyer, int64 points, int64 cap)
{
	int64		used = sale_year_total(member, as_buyer);

	if (used + points > cap)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_SALE_CAP),
				 errmsg("the yearly cap of points %s is reached", as_buyer ? "bought" : "received"),
				 errdetail("A member may %s at most " INT64_FORMAT " points a calendar year; "
						   INT64_FORMAT " so far, " INT64_FORMAT " asked.",
						   as_buyer ? "buy" : "receive", cap, used, points)));
}

/*
 * loyalty._points_sell(idempotency_key, buyer_id, member_id, store_code,
 *		points, payment_reference) returns jsonb
 *		buyer_id = member_id: a purchase; otherwise a gift.
 */
Datum
loyalty_points_sell(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	const LoyaltyCaller *caller;
	char	   *key = loyalty_arg_key(fcinfo, 0);
	pg_uuid_t	buyer;
	pg_uuid_t	member;
	char	   *store;
	int64		points;
	char	   *payment;
	bool		gift;
	char	   *args;
	char	   *found;
	char	   *json;
	char	   *price;
	int64		cap;
	int64		step;
	int32		refund_days;
	TimestampTz refundable_until;
	LedgerAccrual req;
	LedgerResult res;
	pg_uuid_t	sale;
	bool		isnull;

	reward_arg_required(fcinfo, 1, "buyer_id");
	reward_arg_required(fcinfo, 2, "member_id");
	reward_arg_required(fcinfo, 3, "store_code");
	reward_arg_required(fcinfo, 4, "points");
	reward_arg_required(fcinfo, 5, "payment_reference");
	buyer = *PG_GETARG_UUID_P(1);
	member = *PG_GETARG_UUID_P(2);
	store = reward_text_arg(fcinfo, 3);
	points = PG_GETARG_INT64(4);
	payment = reward_text_arg(fcinfo, 5);
	loyalty_check_points(points);
	if (payment[0] == '\0' || strlen(payment) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payment_reference must be 1 to 200 bytes")));
	gift = memcmp(&buyer, &member, sizeof(pg_uuid_t)) != 0;
	caller = loyalty_caller();
	loyalty_require_department(caller, RIGHTS_SELL);
	loyalty_require_store(caller, store);
	args = psprintf("buyer=%s member=%s store=%s points=" INT64_FORMAT " payment=%s",
					reward_uuid_text(&buyer), reward_uuid_text(&member), store, points, payment);

	lspi_connect(LSPI_READ_WRITE);
	reward_check_store(store);
	/* both balance rows, in uuid order */
	if (gift && memcmp(&buyer, &member, sizeof(pg_uuid_t)) < 0)
	{
		(void) ledger_lock(buyer);
		(void) ledger_lock(member);
	}
	else
	{
		(void) ledger_lock(member);
		if (gift)
			(void) ledger_lock(buyer);
	}
	found = reward_idem_replay(key, gift ? "points_gift" : "points_buy", args);
	if (found != NULL)
	{
		found = MemoryContextStrdup(outer, found);
		lspi_finish();
		PG_RETURN_DATUM(reward_result(found));
	}

	/* the rules (defaults without a row) and the price */
	reward_sql("SELECT coalesce((SELECT yearly_cap FROM loyalty.points_sale_rule), 100000), "
			   "       coalesce((SELECT step FROM loyalty.points_sale_rule), 1000), "
			   "       coalesce((SELECT refund_days FROM loyalty.points_sale_rule), 30)::bigint",
			   0, NULL, NULL, NULL, SPI_OK_SELECT);
	cap = reward_get_int64(0, 1, NULL);
	step = reward_get_int64(0, 2, NULL);
	refund_days = (int32) reward_get_int64(0, 3, NULL);
	if (points % step != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("points must be a multiple of " INT64_FORMAT, step)));
	{
		Datum		v[1] = {Int64GetDatum(points)};

		reward_sql("SELECT pg_catalog.round($1::numeric * p.price_per_thousand / 1000, 2)::text "
				   "  FROM loyalty.points_sale_price p WHERE p.min_points <= $1 "
				   " ORDER BY p.min_points DESC LIMIT 1",
				   1, (Oid[]) {INT8OID}, v, NULL, SPI_OK_SELECT);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_REWARD_UNAVAILABLE),
					 errmsg("points are not sold in a quantity of " INT64_FORMAT, points),
					 errhint("HQ sets the price table with loyalty.points_sale_price_set().")));
		price = reward_get_text(0, 1);
	}
	check_cap(&member, false, points, cap);
	check_cap(&buyer, true, points, cap);

	/* the points: a lot of their own source, never read by tier */
	memset(&req, 0, sizeof(req));
	req.member_id = member;
	req.store_code = store;
	req.points = points;
	req.source = "purchase";
	req.rule = gift ? "points_gift" : "points_buy";
	req.reference = payment;
	req.sale = true;
	ledger_accrue(&req, &res);

	refundable_until = GetCurrentTransactionStartTimestamp() + (int64) refund_days * USECS_PER_DAY;
	{
		Datum		v[9];

		v[0] = UUIDPGetDatum(&member);
		v[1] = UUIDPGetDatum(&buyer);
		v[2] = CStringGetTextDatum(gift ? "gift" : "purchase");
		v[3] = CStringGetTextDatum(store);
		v[4] = Int64GetDatum(points);
		v[5] = CStringGetTextDatum(price);
		v[6] = CStringGetTextDatum(payment);
		v[7] = UUIDPGetDatum(&res.entry_id);
		v[8] = TimestampTzGetDatum(refundable_until);
		reward_sql("INSERT INTO loyalty.points_sale (member_id, buyer_id, kind, store_code, points, "
				   "price, payment_reference, entry_id, refundable_until) "
				   "VALUES ($1, $2, $3, $4, $5, $6::numeric, $7, $8, $9) RETURNING sale_id",
				   9, (Oid[]) {UUIDOID, UUIDOID, TEXTOID, TEXTOID, INT8OID, TEXTOID, TEXTOID,
				   UUIDOID, TIMESTAMPTZOID}, v, NULL, SPI_OK_INSERT_RETURNING);
		sale = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	reward_audit(&member, gift ? "points_gift" : "points_buy",
				 psprintf("{\"sale_id\": \"%s\", \"buyer_id\": \"%s\", \"points\": " INT64_FORMAT
						  ", \"price\": %s, \"store_code\": %s}",
						  reward_uuid_text(&sale), reward_uuid_text(&buyer), points, price,
						  reward_json_text(store)));
	json = psprintf("{\"sale_id\": \"%s\", \"price\": %s, \"balance\": " INT64_FORMAT
					", \"entry_id\": \"%s\", \"refundable_until\": \"%s\", \"replayed\": false}",
					reward_uuid_text(&sale), price, res.balance, reward_uuid_text(&res.entry_id),
					timestamptz_to_str(refundable_until));
	reward_idem_save(key, gift ? "points_gift" : "points_buy", args, json);
	json = MemoryContextStrdup(outer, json);
	lspi_finish();
	PG_RETURN_DATUM(reward_result(json));
}

/*
 * loyalty._points_sale_refund(idempotency_key, sale_id, store_code)
 *		returns jsonb
 */
Datum
loyalty_points_sale_refund(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	const LoyaltyCaller *caller;
	char	   *key = loyalty_arg_key(fcinfo, 0);
	pg_uuid_t	sale;
	char	   *store;
	char	   *args;
	char	   *found;
	char	   *json;
	char	   *price;
	char	   *state;
	bool		in_window;
	pg_uuid_t	member;
	pg_uuid_t	entry;
	LedgerResult res;
	Datum		v[2];
	bool		isnull;

	reward_arg_required(fcinfo, 1, "sale_id");
	reward_arg_required(fcinfo, 2, "store_code");
	sale = *PG_GETARG_UUID_P(1);
	store = reward_text_arg(fcinfo, 2);
	caller = loyalty_caller();
	loyalty_require_department(caller, RIGHTS_SELL);
	loyalty_require_store(caller, store);
	args = psprintf("sale=%s store=%s", reward_uuid_text(&sale), store);

	lspi_connect(LSPI_READ_WRITE);
	reward_check_store(store);
	v[0] = UUIDPGetDatum(&sale);
	if (reward_sql("SELECT member_id FROM loyalty.points_sale WHERE sale_id = $1",
				   1, (Oid[]) {UUIDOID}, v, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("points sale %s does not exist", reward_uuid_text(&sale))));
	member = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	(void) ledger_lock(member);
	found = reward_idem_replay(key, "points_sale_refund", args);
	if (found != NULL)
	{
		found = MemoryContextStrdup(outer, found);
		lspi_finish();
		PG_RETURN_DATUM(reward_result(found));
	}
	v[1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	reward_sql("SELECT state, $2 < refundable_until, entry_id, price::text "
			   "  FROM loyalty.points_sale WHERE sale_id = $1 FOR UPDATE",
			   2, (Oid[]) {UUIDOID, TIMESTAMPTZOID}, v, NULL, SPI_OK_SELECT);
	state = reward_get_text(0, 1);
	in_window = reward_get_bool(0, 2);
	entry = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	price = reward_get_text(0, 4);
	if (strcmp(state, "sold") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("points sale %s was already refunded", reward_uuid_text(&sale))));
	if (!in_window)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the refund window of points sale %s has passed", reward_uuid_text(&sale))));

	/* the whole accrual back: refund amount = original amount */
	{
		Datum		one = DirectFunctionCall3(numeric_in, CStringGetDatum("1"),
											  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));

		ledger_reverse(entry, store, one, one, NULL, &res);
	}
	{
		Datum		u[2] = {UUIDPGetDatum(&sale), UUIDPGetDatum(&res.entry_id)};

		reward_sql("UPDATE loyalty.points_sale SET state = 'refunded', refunded_at = pg_catalog.now(), "
				   "refund_entry_id = $2 WHERE sale_id = $1",
				   2, (Oid[]) {UUIDOID, UUIDOID}, u, NULL, SPI_OK_UPDATE);
	}
	reward_audit(&member, "points_sale_refund",
				 psprintf("{\"sale_id\": \"%s\", \"points\": " INT64_FORMAT ", \"store_code\": %s}",
						  reward_uuid_text(&sale), res.points, reward_json_text(store)));
	json = psprintf("{\"points\": " INT64_FORMAT ", \"price\": %s, \"balance\": " INT64_FORMAT
					", \"entry_id\": \"%s\", \"replayed\": false}",
					res.points, price, res.balance, reward_uuid_text(&res.entry_id));
	reward_idem_save(key, "points_sale_refund", args, json);
	json = MemoryContextStrdup(outer, json);
	lspi_finish();
	PG_RETURN_DATUM(reward_result(json));
}
