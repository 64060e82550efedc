/*-------------------------------------------------------------------------
 *
 * reward_price.c
 *	  The catalogue's pricing rule: what a reward costs at a store on a
 *	  date, and how many units are left.
 *
 * A free night costs the points of loyalty.reward_night_price for the
 * store's category (loyalty.store_category) and the date's season: peak if
 * a peak period of loyalty.reward_season (chain-wide or the store's own)
 * covers the date, standard otherwise; without a price row, the reward's
 * fixed points.  Every other reward costs its fixed points; a reward
 * without a price is awarded only (award_issue), never sold.
 *
 * Units left: the capacity of the reward at the store on the date
 * (loyalty.reward_inventory, or the reward's nightly_capacity when no row
 * exists yet) minus what redemptions hold, and at most what the overall
 * limit leaves.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/timestamp.h"

#include "args.h"
#include "reward.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_reward_quote);

/*
 * reward_store_time_zone
 *		The store's time zone (the store must exist).
 */
char *
reward_store_time_zone(const char *store_code)
{
	Datum		v[1] = {CStringGetTextDatum(store_code)};

	if (reward_sql("SELECT time_zone FROM loyalty.store WHERE store_code = $1",
				   1, (Oid[]) {TEXTOID}, v, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" does not exist", store_code)));
	return reward_get_text(0, 1);
}

/*
 * reward_store_today
 *		Today's date at the store (the transaction's start, in its time
 *		zone).
 */
DateADT
reward_store_today(const char *store_code)
{
	Datum		v[2] = {CStringGetTextDatum(store_code),
	TimestampTzGetDatum(GetCurrentTransactionStartTimestamp())};
	bool		isnull;

	if (reward_sql("SELECT ($2 AT TIME ZONE time_zone)::date FROM loyalty.store WHERE store_code = $1",
				   2, (Oid[]) {TEXTOID, TIMESTAMPTZOID}, v, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" does not exist", store_code)));
	return DatumGetDateADT(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * reward_price
 *		Price reward_code at store_code on day (at: the time of the sale).
 *		for_sale: error unless the reward may be redeemed here and now
 *		(LY021); otherwise q->points is -1 when there is no price.  The
 *		caller is connected to SPI and has checked the store.
 */
void
reward_price(const char *reward_code, const char *store_code, DateADT day,
			 TimestampTz at, bool for_sale, RewardQuote *q)
{
	Datum		v[4];
	bool		isnull;
	bool		valid_now;
	bool		offered_here;
	bool		has_points;
	int64		fixed_points;
	bool		has_capacity;
	int64		nightly_capacity;
	bool		has_total;
	int64		total_left = 0;

	memset(q, 0, sizeof(*q));
	v[0] = CStringGetTextDatum(reward_code);
	v[1] = CStringGetTextDatum(store_code);
	v[2] = TimestampTzGetDatum(at);
	if (reward_sql("SELECT r.kind, r.points, r.cash_max::text, "
				   "       r.valid_from <= $3 AND $3 < r.valid_until, "
				   "       NOT EXISTS (SELECT 1 FROM loyalty.reward_store s WHERE s.reward_code = r.reward_code) "
				   "       OR EXISTS (SELECT 1 FROM loyalty.reward_store s "
				   "                   WHERE s.reward_code = r.reward_code AND s.store_code = $2), "
				   "       r.voucher_days::bigint, r.nightly_capacity::bigint, "
				   "       (r.total_limit - r.redeemed)::bigint, r.member_limit::bigint, r.member_limit_per "
				   "  FROM loyalty.reward r WHERE r.reward_code = $1",
				   3, (Oid[]) {TEXTOID, TEXTOID, TIMESTAMPTZOID}, v, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("reward \"%s\" does not exist", reward_code)));
	strlcpy(q->kind, reward_get_text(0, 1), sizeof(q->kind));
	fixed_points = reward_get_int64(0, 2, &isnull);
	has_points = !isnull;
	q->cash_max = reward_get_text(0, 3);
	q->has_cash_max = q->cash_max != NULL;
	valid_now = reward_get_bool(0, 4);
	offered_here = reward_get_bool(0, 5);
	q->voucher_days = (int) reward_get_int64(0, 6, NULL);
	nightly_capacity = reward_get_int64(0, 7, &isnull);
	has_capacity = !isnull;
	total_left = reward_get_int64(0, 8, &isnull);
	has_total = !isnull;
	q->member_limit = (int) reward_get_int64(0, 9, &isnull);
	q->has_member_limit = !isnull;
	if (q->has_member_limit)
		strlcpy(q->member_limit_per, reward_get_text(0, 10), sizeof(q->member_limit_per));
	q->has_total_limit = has_total;

	if (for_sale && !valid_now)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_REWARD_UNAVAILABLE),
				 errmsg("reward \"%s\" is not available now", reward_code),
				 errdetail("The reward is outside its validity period.")));
	if (for_sale && !offered_here)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_REWARD_UNAVAILABLE),
				 errmsg("reward \"%s\" is not offered at store \"%s\"", reward_code, store_code)));

	q->points = has_points ? fixed_points : -1;
	if (strcmp(q->kind, "free_night") == 0)
	{
		v[0] = CStringGetTextDatum(reward_code);
		v[1] = CStringGetTextDatum(store_code);
		v[2] = DateADTGetDatum(day);
		if (reward_sql("SELECT c.category::bigint, "
					   "       CASE WHEN EXISTS (SELECT 1 FROM loyalty.reward_season p "
					   "                          WHERE (p.store_code IS NULL OR p.store_code = $2) "
					   "                            AND $3 BETWEEN p.first_day AND p.last_day) "
					   "            THEN 'peak' ELSE 'standard' END "
					   "  FROM loyalty.store_category c WHERE c.store_code = $2",
					   3, (Oid[]) {TEXTOID, TEXTOID, DATEOID}, v, NULL, SPI_OK_SELECT) == 0)
		{
			if (for_sale)
				ereport(ERROR,
						(errcode(ERRCODE_LOYALTY_REWARD_UNAVAILABLE),
						 errmsg("store \"%s\" has no award category", store_code),
						 errdetail("Free nights are priced by the store's category."),
						 errhint("HQ sets it with loyalty.store_category_set().")));
		}
		else
		{
			q->category = (int) reward_get_int64(0, 1, NULL);
			strlcpy(q->season, reward_get_text(0, 2), sizeof(q->season));
			v[1] = Int16GetDatum((int16) q->category);
			v[2] = CStringGetTextDatum(q->season);
			if (reward_sql("SELECT points FROM loyalty.reward_night_price "
						   " WHERE reward_code = $1 AND category = $2 AND season = $3",
						   3, (Oid[]) {TEXTOID, INT2OID, TEXTOID}, v, NULL, SPI_OK_SELECT) > 0)
				q->points = reward_get_int64(0, 1, NULL);
		}
	}
	if (for_sale && q->points < 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_REWARD_UNAVAILABLE),
				 errmsg("reward \"%s\" has no price in points here", reward_code),
				 q->category > 0 ?
				 errdetail("No price is set for category %d in the %s season.",
						   q->category, q->season) :
				 errdetail("The reward is awarded only (award_issue), not sold for points.")));

	/* units left: capacity at the store on the day, then the overall limit */
	v[0] = CStringGetTextDatum(reward_code);
	v[1] = CStringGetTextDatum(store_code);
	v[2] = DateADTGetDatum(day);
	if (reward_sql("SELECT (capacity - reserved)::bigint FROM loyalty.reward_inventory "
				   " WHERE reward_code = $1 AND store_code = $2 AND day = $3",
				   3, (Oid[]) {TEXTOID, TEXTOID, DATEOID}, v, NULL, SPI_OK_SELECT) > 0)
	{
		q->limited = true;
		q->units_left = (int) reward_get_int64(0, 1, NULL);
	}
	else if (has_capacity)
	{
		q->limited = true;
		q->units_left = (int) nightly_capacity;
	}
	if (has_total && (!q->limited || total_left < q->units_left))
	{
		q->limited = true;
		q->units_left = (int) total_left;
	}
}

/*
 * loyalty.reward_quote(reward_code, store_code, day) returns (points,
 *		season, category, units_left): the price and availability, for
 *		display (no rights needed beyond EXECUTE; nothing personal).
 */
Datum
loyalty_reward_quote(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	RewardQuote q;
	char	   *code;
	char	   *store;
	DateADT		day;
	HeapTuple	tup;

	reward_arg_required(fcinfo, 0, "reward_code");
	reward_arg_required(fcinfo, 1, "store_code");
	code = reward_text_arg(fcinfo, 0);
	store = reward_text_arg(fcinfo, 1);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	lspi_connect(LSPI_READ_ONLY);
	reward_check_store(store);
	day = PG_ARGISNULL(2) ? reward_store_today(store) : PG_GETARG_DATEADT(2);
	if (DATE_NOT_FINITE(day))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("day must be a finite date")));
	reward_price(code, store, day, GetCurrentTransactionStartTimestamp(), false, &q);
	lspi_finish();

	values[0] = Int64GetDatum(q.points);
	nulls[0] = q.points < 0;
	values[1] = q.season[0] ? CStringGetTextDatum(q.season) : (Datum) 0;
	nulls[1] = q.season[0] == '\0';
	values[2] = Int16GetDatum((int16) q.category);
	nulls[2] = q.category == 0;
	values[3] = Int32GetDatum(q.units_left);
	nulls[3] = !q.limited;
	tup = heap_form_tuple(tupdesc, values, nulls);
	PG_RETURN_DATUM(HeapTupleGetDatum(tup));
}
