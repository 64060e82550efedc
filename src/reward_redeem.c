/*-------------------------------------------------------------------------
 *
 * reward_redeem.c
 *	  Redeeming a catalogue reward, and cancelling the redemption.
 *
 * reward_redeem, in one transaction:
 *	  1. locks the member's balance row (ledger_lock), so every redemption
 *		 and ledger operation of one member runs one at a time, and the
 *		 idempotency key is looked up under that lock;
 *	  2. prices the reward at the store on the date (reward_price.c:
 *		 validity, stores, category and season), less the cash part at the
 *		 single rate (points + cash);
 *	  3. checks the member's limit (per year in the member's time zone, or
 *		 ever; LY022);
 *	  4. takes one unit of the overall limit and one unit of the capacity
 *		 of the reward at the store on the date, each with one conditional
 *		 UPDATE ("... < limit"): a second redemption of the last unit waits
 *		 for the first and then finds none left (LY020), whichever store
 *		 it comes from;
 *	  5. debits the points through the ledger (ledger_redeem_reward: the
 *		 freeze, the minimum and step, the balance), with the reward code
 *		 as the entry's reference;
 *	  6. issues the voucher or certificate, records the redemption, the
 *		 audit record and the reward_redeemed event.
 * Any error rolls all of it back.
 *
 * reward_redemption_cancel gives the points back (ledger_refund), releases
 * the unit of inventory and of the overall limit, and cancels the voucher;
 * a redemption whose voucher was used or has expired cannot be cancelled.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "event.h"
#include "ledger.h"
#include "args.h"
#include "reward.h"
#include "spi.h"
#include "roles_caller.h"

PG_FUNCTION_INFO_V1(loyalty_reward_redeem);
PG_FUNCTION_INFO_V1(loyalty_reward_redemption_cancel);

#define RIGHTS_REDEEM	(DEPT_BIT(DEPT_FRONTDESK) | DEPT_BIT(DEPT_FNB) | \
						 DEPT_BIT(DEPT_STORE_MANAGER) | DEPT_BIT(DEPT_CRM) | \
						 DEPT_BIT(DEPT_DBA))

/*
 * check_member_limit
 *		LY022 if the member already holds member_limit redemptions of the
 *		reward (not cancelled) this calendar year (member's time zone) or
 *		ever.
 */
static void
check_member_limit(const pg_uuid_t *member, const char *reward, const RewardQuote *q)
{
	Datum		v[4] = {UUIDPGetDatum(member), CStringGetTextDatum(reward),
		BoolGetDatum(strcmp(q->member_limit_per, "year") == 0),
	TimestampTzGetDatum(GetCurrentTransactionStartTimestamp())};
	int64		used;

	reward_sql("SELECT count(*) FROM loyalty.reward_redemption x "
			   "  JOIN loyalty.member m ON m.member_id = x.member_id "
			   "  JOIN loyalty.store h ON h.store_code = m.home_store "
			   " WHERE x.member_id = $1 AND x.reward_code = $2 AND x.state = 'redeemed' "
			   "   AND (NOT $3 OR x.redeemed_at >= (pg_catalog.date_trunc('year', $4 AT TIME ZONE "
			   "        coalesce(m.time_zone, h.time_zone)) AT TIME ZONE coalesce(m.time_zone, h.time_zone)))",
			   4, (Oid[]) {UUIDOID, TEXTOID, BOOLOID, TIMESTAMPTZOID}, v, NULL, SPI_OK_SELECT);
	used = reward_get_int64(0, 1, NULL);
	if (used >= q->member_limit)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_REWARD_LIMIT),
				 errmsg("the member's limit for reward \"%s\" is reached", reward),
				 errdetail("A member may redeem it %d time%s %s.", q->member_limit,
						   q->member_limit == 1 ? "" : "s",
						   strcmp(q->member_limit_per, "year") == 0 ? "per calendar year" : "in all")));
}

/*
 * take_units
 *		One unit of the reward's overall limit and of its capacity at the
 *		store on the day.  Returns whether an inventory unit is held
 *		(false: the reward has no capacity there, it is unlimited).
 */
static bool
take_units(const char *reward, const char *store, DateADT day, const RewardQuote *q)
{
	Datum		v[3] = {CStringGetTextDatum(reward), CStringGetTextDatum(store), DateADTGetDatum(day)};
	Oid			t[3] = {TEXTOID, TEXTOID, DATEOID};

	if (q->has_total_limit &&
		reward_sql("UPDATE loyalty.reward SET redeemed = redeemed + 1 "
				   " WHERE reward_code = $1 AND redeemed < total_limit",
				   1, t, v, NULL, SPI_OK_UPDATE) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_SOLD_OUT),
				 errmsg("reward \"%s\" is sold out", reward),
				 errdetail("Its overall limit is reached.")));

	/* the day's row, from the reward's nightly capacity, on first use */
	reward_sql("INSERT INTO loyalty.reward_inventory (reward_code, store_code, day, capacity) "
			   "SELECT r.reward_code, $2, $3, r.nightly_capacity FROM loyalty.reward r "
			   " WHERE r.reward_code = $1 AND r.nightly_capacity IS NOT NULL "
			   "ON CONFLICT ON CONSTRAINT reward_inventory_pkey DO NOTHING",
			   3, t, v, NULL, SPI_OK_INSERT);
	if (reward_sql("UPDATE loyalty.reward_inventory SET reserved = reserved + 1 "
				   " WHERE reward_code = $1 AND store_code = $2 AND day = $3 AND reserved < capacity",
				   3, t, v, NULL, SPI_OK_UPDATE) == 1)
		return true;
	if (reward_sql("SELECT 1 FROM loyalty.reward_inventory "
				   " WHERE reward_code = $1 AND store_code = $2 AND day = $3",
				   3, t, v, NULL, SPI_OK_SELECT) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_SOLD_OUT),
				 errmsg("reward \"%s\" is sold out at store \"%s\" on %s", reward, store,
						DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(day))))));
	return false;
}

/*
 * loyalty._reward_redeem(idempotency_key, member_id, store_code,
 *		reward_code, stay_date, cash_amount) returns jsonb
 */
Datum
loyalty_reward_redeem(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	const LoyaltyCaller *caller;
	char	   *key = loyalty_arg_key(fcinfo, 0);
	pg_uuid_t	member;
	char	   *store;
	char	   *reward;
	char	   *cash = NULL;
	char	   *args;
	char	   *found;
	char	   *json;
	char	   *code;
	DateADT		today;
	DateADT		day;
	bool		dated;
	bool		held;
	RewardQuote q;
	int64		points;
	LedgerResult res;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz expires_at;
	pg_uuid_t	voucher;
	pg_uuid_t	redemption;
	bool		isnull;

	reward_arg_required(fcinfo, 1, "member_id");
	reward_arg_required(fcinfo, 2, "store_code");
	reward_arg_required(fcinfo, 3, "reward_code");
	member = *PG_GETARG_UUID_P(1);
	store = reward_text_arg(fcinfo, 2);
	reward = reward_text_arg(fcinfo, 3);
	dated = !PG_ARGISNULL(4);
	if (!PG_ARGISNULL(5))
		cash = DatumGetCString(DirectFunctionCall1(numeric_out, PG_GETARG_DATUM(5)));
	caller = loyalty_caller();
	loyalty_require_department(caller, RIGHTS_REDEEM);
	loyalty_require_store(caller, store);
	args = psprintf("member=%s store=%s reward=%s day=%s cash=%s", reward_uuid_text(&member),
					store, reward,
					dated ? DatumGetCString(DirectFunctionCall1(date_out, PG_GETARG_DATUM(4))) : "",
					cash ? cash : "");

	lspi_connect(LSPI_READ_WRITE);
	reward_check_store(store);
	(void) ledger_lock(member);
	found = reward_idem_replay(key, "reward_redeem", args);
	if (found != NULL)
	{
		found = MemoryContextStrdup(outer, found);
		lspi_finish();
		PG_RETURN_DATUM(reward_result(found));
	}

	/* the date: a stay date from today at the store on, or today */
	today = reward_store_today(store);
	day = dated ? PG_GETARG_DATEADT(4) : today;
	if (DATE_NOT_FINITE(day) || day < today || day > today + 731)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stay_date must be a date from today to two years ahead at store \"%s\"", store)));
	reward_price(reward, store, day, now, true, &q);
	if (strcmp(q.kind, "free_night") == 0 && !dated)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a free night needs stay_date")));

	/* points + cash: the cash part is worth points at the single rate */
	points = q.points;
	if (cash != NULL)
	{
		int64		minor;
		Datum		amount = PG_GETARG_DATUM(5);

		if (!q.has_cash_max)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("reward \"%s\" cannot be paid partly in cash", reward)));
		if (DatumGetBool(DirectFunctionCall2(numeric_gt, amount,
											 DirectFunctionCall3(numeric_in, CStringGetDatum(q.cash_max),
																 ObjectIdGetDatum(InvalidOid),
																 Int32GetDatum(-1)))))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cash_amount %s is more than the %s reward \"%s\" allows", cash,
							q.cash_max, reward)));
		points -= ledger_cash_points(amount, &minor);
		if (points <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cash_amount %s covers the whole price", cash),
					 errdetail("Some of the price must be paid in points.")));
	}
	if (q.has_member_limit)
		check_member_limit(&member, reward, &q);
	held = take_units(reward, store, day, &q);

	/* the points, through the ledger (freeze, minimum, step, balance) */
	ledger_redeem_reward(member, store, points, reward, NULL, &res);

	/* the voucher: a dated one until the end of its day at the store */
	{
		Datum		v[4] = {BoolGetDatum(dated), DateADTGetDatum(day), Int32GetDatum(q.voucher_days),
		CStringGetTextDatum(store)};

		reward_sql("SELECT CASE WHEN $1 THEN (($2 + 1)::timestamp AT TIME ZONE s.time_zone) "
				   "       ELSE pg_catalog.now() + pg_catalog.make_interval(days => $3) END "
				   "  FROM loyalty.store s WHERE s.store_code = $4",
				   4, (Oid[]) {BOOLOID, DATEOID, INT4OID, TEXTOID}, v, NULL, SPI_OK_SELECT);
		expires_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1, &isnull));
	}
	voucher = voucher_issue(&member, reward, store, &day, "redemption", NULL, expires_at, &code);
	{
		Datum		v[10];
		char		n[10] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

		v[0] = UUIDPGetDatum(&member);
		v[1] = CStringGetTextDatum(store);
		v[2] = CStringGetTextDatum(reward);
		v[3] = DateADTGetDatum(day);
		v[4] = q.season[0] ? CStringGetTextDatum(q.season) : (Datum) 0;
		n[4] = q.season[0] ? ' ' : 'n';
		v[5] = Int64GetDatum(points);
		v[6] = cash ? PG_GETARG_DATUM(5) : (Datum) 0;
		n[6] = cash ? ' ' : 'n';
		v[7] = UUIDPGetDatum(&res.entry_id);
		v[8] = UUIDPGetDatum(&voucher);
		v[9] = BoolGetDatum(held);
		reward_sql("INSERT INTO loyalty.reward_redemption (member_id, store_code, reward_code, day, "
				   "season, points, cash_amount, entry_id, voucher_id, inventory_held) "
				   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING redemption_id",
				   10, (Oid[]) {UUIDOID, TEXTOID, TEXTOID, DATEOID, TEXTOID, INT8OID, NUMERICOID,
				   UUIDOID, UUIDOID, BOOLOID}, v, n, SPI_OK_INSERT_RETURNING);
		redemption = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	reward_audit(&member, "reward_redeem",
				 psprintf("{\"redemption_id\": \"%s\", \"reward_code\": %s, \"store_code\": %s, "
						  "\"points\": " INT64_FORMAT ", \"voucher_id\": \"%s\"}",
						  reward_uuid_text(&redemption), reward_json_text(reward),
						  reward_json_text(store), points, reward_uuid_text(&voucher)));
	loyalty_outbox_emit("reward_redeemed", &member, store,
						psprintf("{\"redemption_id\": \"%s\", \"reward_code\": %s, \"kind\": \"%s\", "
								 "\"day\": \"%s\", \"points\": " INT64_FORMAT ", \"voucher_id\": \"%s\"}",
								 reward_uuid_text(&redemption), reward_json_text(reward), q.kind,
								 DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(day))),
								 points, reward_uuid_text(&voucher)));
	json = psprintf("{\"redemption_id\": \"%s\", \"points\": " INT64_FORMAT ", \"paid_cash\": %s, "
					"\"balance\": " INT64_FORMAT ", \"season\": %s, \"voucher_code\": \"%s\", "
					"\"expires_at\": \"%s\", \"entry_id\": \"%s\", \"replayed\": false}",
					reward_uuid_text(&redemption), points, cash ? cash : "null", res.balance,
					q.season[0] ? reward_json_text(q.season) : "null", code,
					timestamptz_to_str(expires_at), reward_uuid_text(&res.entry_id));
	reward_idem_save(key, "reward_redeem", args, json);
	json = MemoryContextStrdup(outer, json);
	lspi_finish();
	PG_RETURN_DATUM(reward_result(json));
}

/*
 * loyalty._reward_redemption_cancel(idempotency_key, redemption_id,
 *		store_code) returns jsonb
 *
 * Store staff cancel the redemptions of their own store; HQ CRM and DBA
 * any.
 */
Datum
loyalty_reward_redemption_cancel(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	const LoyaltyCaller *caller;
	char	   *key = loyalty_arg_key(fcinfo, 0);
	pg_uuid_t	redemption;
	pg_uuid_t	member;
	pg_uuid_t	entry;
	pg_uuid_t	voucher;
	char	   *store;
	char	   *args;
	char	   *found;
	char	   *json;
	char	   *reward;
	char	   *state;
	char	   *voucher_state;
	char	   *day;
	bool		held;
	int64		points;
	bool		isnull;
	LedgerResult res;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	Datum		v[1];

	reward_arg_required(fcinfo, 1, "redemption_id");
	reward_arg_required(fcinfo, 2, "store_code");
	redemption = *PG_GETARG_UUID_P(1);
	store = reward_text_arg(fcinfo, 2);
	caller = loyalty_caller();
	loyalty_require_department(caller, RIGHTS_REDEEM);
	loyalty_require_store(caller, store);
	args = psprintf("redemption=%s store=%s", reward_uuid_text(&redemption), store);

	lspi_connect(LSPI_READ_WRITE);
	reward_check_store(store);
	v[0] = UUIDPGetDatum(&redemption);
	if (reward_sql("SELECT member_id, store_code FROM loyalty.reward_redemption WHERE redemption_id = $1",
				   1, (Oid[]) {UUIDOID}, v, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("redemption %s does not exist", reward_uuid_text(&redemption))));
	member = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/* store staff: only their own store's redemptions */
	loyalty_require_store(caller, reward_get_text(0, 2));
	(void) ledger_lock(member);
	found = reward_idem_replay(key, "reward_redemption_cancel", args);
	if (found != NULL)
	{
		found = MemoryContextStrdup(outer, found);
		lspi_finish();
		PG_RETURN_DATUM(reward_result(found));
	}
	reward_sql("SELECT x.state, x.entry_id, x.voucher_id, v.state, x.inventory_held, x.reward_code, "
			   "       x.day::text, x.points, v.expires_at <= pg_catalog.now() "
			   "  FROM loyalty.reward_redemption x JOIN loyalty.voucher v ON v.voucher_id = x.voucher_id "
			   " WHERE x.redemption_id = $1 FOR UPDATE OF x, v",
			   1, (Oid[]) {UUIDOID}, v, NULL, SPI_OK_SELECT);
	state = reward_get_text(0, 1);
	entry = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	voucher = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	voucher_state = reward_get_text(0, 4);
	held = reward_get_bool(0, 5);
	reward = reward_get_text(0, 6);
	day = reward_get_text(0, 7);
	points = reward_get_int64(0, 8, NULL);
	if (strcmp(state, "cancelled") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("redemption %s is already cancelled", reward_uuid_text(&redemption))));
	if (strcmp(voucher_state, "issued") != 0 || reward_get_bool(0, 9))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("redemption %s cannot be cancelled: its voucher is %s",
						reward_uuid_text(&redemption),
						strcmp(voucher_state, "issued") == 0 ? "expired" : voucher_state)));

	ledger_refund(entry, store, reward_uuid_text(&redemption), NULL, &res);
	{
		Datum		u[3] = {CStringGetTextDatum(reward), CStringGetTextDatum(store),
		DirectFunctionCall1(date_in, CStringGetDatum(day))};

		if (held)
			reward_sql("UPDATE loyalty.reward_inventory SET reserved = reserved - 1 "
					   " WHERE reward_code = $1 AND store_code = $2 AND day = $3",
					   3, (Oid[]) {TEXTOID, TEXTOID, DATEOID}, u, NULL, SPI_OK_UPDATE);
		reward_sql("UPDATE loyalty.reward SET redeemed = redeemed - 1 "
				   " WHERE reward_code = $1 AND total_limit IS NOT NULL AND redeemed > 0",
				   1, (Oid[]) {TEXTOID}, u, NULL, SPI_OK_UPDATE);
	}
	{
		Datum		u[4] = {UUIDPGetDatum(&redemption), UUIDPGetDatum(&voucher),
		TimestampTzGetDatum(now), UUIDPGetDatum(&res.entry_id)};

		reward_sql("UPDATE loyalty.voucher SET state = 'cancelled', changed_at = $3 WHERE voucher_id = $2",
				   3, (Oid[]) {UUIDOID, UUIDOID, TIMESTAMPTZOID}, u, NULL, SPI_OK_UPDATE);
		reward_sql("UPDATE loyalty.reward_redemption SET state = 'cancelled', cancelled_at = $3, "
				   "refund_entry_id = $4 WHERE redemption_id = $1",
				   4, (Oid[]) {UUIDOID, UUIDOID, TIMESTAMPTZOID, UUIDOID}, u, NULL, SPI_OK_UPDATE);
	}
	reward_audit(&member, "reward_redemption_cancel",
				 psprintf("{\"redemption_id\": \"%s\", \"reward_code\": %s, \"points\": " INT64_FORMAT "}",
						  reward_uuid_text(&redemption), reward_json_text(reward), res.points));
	loyalty_outbox_emit("reward_cancelled", &member, store,
						psprintf("{\"redemption_id\": \"%s\", \"reward_code\": %s, \"points_refunded\": "
								 INT64_FORMAT ", \"voucher_id\": \"%s\"}",
								 reward_uuid_text(&redemption), reward_json_text(reward), res.points,
								 reward_uuid_text(&voucher)));
	json = psprintf("{\"points_refunded\": " INT64_FORMAT ", \"points_forfeited\": " INT64_FORMAT ", "
					"\"balance\": " INT64_FORMAT ", \"entry_id\": \"%s\", \"replayed\": false}",
					res.points, points - res.points, res.balance, reward_uuid_text(&res.entry_id));
	reward_idem_save(key, "reward_redemption_cancel", args, json);
	json = MemoryContextStrdup(outer, json);
	lspi_finish();
	PG_RETURN_DATUM(reward_result(json));
}
