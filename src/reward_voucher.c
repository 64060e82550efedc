/*-------------------------------------------------------------------------
 *
 * reward_voucher.c
 *	  Vouchers and certificates: codes, issue (by a redemption or an
 *	  award), use at a store, and the nightly expiry with its notice.
 *
 * A code is 16 digits: 15 from the strong random source (the first 1-9)
 * and a Luhn check digit (member_card.h), so that a mistyped code is
 * refused before any lookup and codes reveal nothing about how many were
 * issued.  The code is the instrument: it never goes into an event or an
 * audit detail (the voucher id does).
 *
 * States: issued -> used (voucher_use) | expired (voucher_expire) |
 * cancelled (the redemption was cancelled).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/timestamp.h"

#include "event.h"
#include "ledger.h"
#include "member_card.h"
#include "args.h"
#include "reward.h"
#include "spi.h"
#include "risk.h"
#include "roles_caller.h"

PG_FUNCTION_INFO_V1(loyalty_award_issue);
PG_FUNCTION_INFO_V1(loyalty_voucher_use);
PG_FUNCTION_INFO_V1(loyalty_voucher_expire);

#define VOUCHER_DIGITS 16

/*
 * voucher_new_code
 *		A fresh random code with its check digit.
 */
char *
voucher_new_code(void)
{
	char	   *code = palloc(VOUCHER_DIGITS + 1);
	uint8		rnd[VOUCHER_DIGITS];
	int			i;

	if (!pg_strong_random(rnd, sizeof(rnd)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random voucher code")));
	code[0] = '1' + rnd[0] % 9;
	for (i = 1; i < VOUCHER_DIGITS - 1; i++)
		code[i] = '0' + rnd[i] % 10;
	code[VOUCHER_DIGITS - 1] = '0' + luhn_check_digit(code, VOUCHER_DIGITS - 1);
	code[VOUCHER_DIGITS] = '\0';
	return code;
}

/*
 * voucher_code_valid
 *		Sixteen digits, the first not 0, with a correct check digit.
 */
bool
voucher_code_valid(const char *code)
{
	int			i;

	if (strlen(code) != VOUCHER_DIGITS || code[0] == '0')
		return false;
	for (i = 0; i < VOUCHER_DIGITS; i++)
		if (code[i] < '0' || code[i] > '9')
			return false;
	return code[VOUCHER_DIGITS - 1] - '0' == luhn_check_digit(code, VOUCHER_DIGITS - 1);
}

/*
 * voucher_issue
 *		Insert a voucher (the caller is connected to SPI and has checked
 *		the member, the reward and the store) and emit voucher_issued.
 *		Returns its id; *code gets its code.
 */
pg_uuid_t
voucher_issue(const pg_uuid_t *member_id, const char *reward_code,
			  const char *store_code, const DateADT *day, const char *source,
			  const char *reason, TimestampTz expires_at, char **code)
{
	Datum		v[8];
	char		n[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	pg_uuid_t	id;
	int			attempt;

	/* 10^15 codes: a collision is rare, and tried again */
	for (attempt = 0;; attempt++)
	{
		Datum		c[1];

		*code = voucher_new_code();
		c[0] = CStringGetTextDatum(*code);
		if (reward_sql("SELECT 1 FROM loyalty.voucher WHERE code = $1", 1,
					   (Oid[]) {TEXTOID}, c, NULL, SPI_OK_SELECT) == 0)
			break;
		if (attempt >= 5)
			elog(ERROR, "could not find a free voucher code");
	}
	v[0] = CStringGetTextDatum(*code);
	v[1] = UUIDPGetDatum(member_id);
	v[2] = CStringGetTextDatum(reward_code);
	v[3] = store_code ? CStringGetTextDatum(store_code) : (Datum) 0;
	n[3] = store_code ? ' ' : 'n';
	v[4] = day ? DateADTGetDatum(*day) : (Datum) 0;
	n[4] = day ? ' ' : 'n';
	v[5] = CStringGetTextDatum(source);
	v[6] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	n[6] = reason ? ' ' : 'n';
	v[7] = TimestampTzGetDatum(expires_at);
	reward_sql("INSERT INTO loyalty.voucher (code, member_id, reward_code, store_code, day, "
			   "source, reason, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
			   "RETURNING voucher_id",
			   8, (Oid[]) {TEXTOID, UUIDOID, TEXTOID, TEXTOID, DATEOID, TEXTOID, TEXTOID, TIMESTAMPTZOID},
			   v, n, SPI_OK_INSERT_RETURNING);
	id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	loyalty_outbox_emit("voucher_issued", member_id, store_code,
						psprintf("{\"voucher_id\": \"%s\", \"reward_code\": %s, \"source\": \"%s\", "
								 "\"expires_at\": \"%s\"}",
								 reward_uuid_text(&id), reward_json_text(reward_code), source,
								 timestamptz_to_str(expires_at)));
	return id;
}

/*
 * loyalty._award_issue(idempotency_key, member_id, reward_code, reason,
 *		store_code, expires_at) returns jsonb
 *
 * A certificate for one member without points: an anniversary offer, a
 * campaign prize, service-recovery goodwill.  HQ CRM and marketing for
 * any store (store_code NULL: usable at every store); a store manager for
 * their own store only.
 */
Datum
loyalty_award_issue(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	const LoyaltyCaller *caller;
	char	   *key = loyalty_arg_key(fcinfo, 0);
	pg_uuid_t	member;
	char	   *reward;
	char	   *reason;
	char	   *store;
	char	   *args;
	char	   *found;
	char	   *code;
	char	   *json;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz expires_at = 0;
	pg_uuid_t	id;
	bool		isnull;

	reward_arg_required(fcinfo, 1, "member_id");
	reward_arg_required(fcinfo, 2, "reward_code");
	reward_arg_required(fcinfo, 3, "reason");
	member = *PG_GETARG_UUID_P(1);
	reward = reward_text_arg(fcinfo, 2);
	reason = reward_text_arg(fcinfo, 3);
	store = reward_text_arg(fcinfo, 4);

	caller = loyalty_caller();
	loyalty_require_department(caller, DEPT_BIT(DEPT_STORE_MANAGER) | DEPT_BIT(DEPT_CRM) |
							   DEPT_BIT(DEPT_MARKETING));
	if (!caller->is_hq && store == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("a store manager issues certificates for their own store only"),
				 errhint("Pass the store's code as store_code.")));
	if (store != NULL)
		loyalty_require_store(caller, store);
	if (reason[0] == '\0' || strlen(reason) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reason must be 1 to 200 bytes")));
	if (!PG_ARGISNULL(5))
	{
		expires_at = PG_GETARG_TIMESTAMPTZ(5);
		if (TIMESTAMP_NOT_FINITE(expires_at) || expires_at <= now)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("expires_at must be a finite time in the future")));
	}
	args = psprintf("member=%s reward=%s reason=%s store=%s expires=%s",
					reward_uuid_text(&member), reward, reason, store ? store : "",
					PG_ARGISNULL(5) ? "" : timestamptz_to_str(PG_GETARG_TIMESTAMPTZ(5)));

	lspi_connect(LSPI_READ_WRITE);
	if (store != NULL)
		reward_check_store(store);
	(void) ledger_lock(member);
	found = reward_idem_replay(key, "award_issue", args);
	if (found != NULL)
	{
		found = MemoryContextStrdup(outer, found);
		lspi_finish();
		PG_RETURN_DATUM(reward_result(found));
	}
	{
		Datum		v[2] = {CStringGetTextDatum(reward), TimestampTzGetDatum(now)};

		if (reward_sql("SELECT voucher_days::bigint FROM loyalty.reward WHERE reward_code = $1",
					   1, (Oid[]) {TEXTOID}, v, NULL, SPI_OK_SELECT) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("reward \"%s\" does not exist", reward)));
		if (PG_ARGISNULL(5))
			expires_at = now + reward_get_int64(0, 1, &isnull) * USECS_PER_DAY;
	}
	id = voucher_issue(&member, reward, store, NULL, "award", reason, expires_at, &code);
	reward_audit(&member, "award_issue",
				 psprintf("{\"voucher_id\": \"%s\", \"reward_code\": %s, \"store_code\": %s}",
						  reward_uuid_text(&id), reward_json_text(reward), reward_json_text(store)));
	json = psprintf("{\"voucher_id\": \"%s\", \"voucher_code\": \"%s\", \"valid_until\": \"%s\", "
					"\"replayed\": false}",
					reward_uuid_text(&id), code, timestamptz_to_str(expires_at));
	reward_idem_save(key, "award_issue", args, json);
	json = MemoryContextStrdup(outer, json);
	lspi_finish();
	PG_RETURN_DATUM(reward_result(json));
}

/*
 * loyalty._voucher_use(idempotency_key, code, store_code) returns jsonb
 *
 * Use a voucher at a store: once, before it expires, at its store (or any
 * store when it names none); not while a risk tag freezes redemption (or
 * room upgrades, for an upgrade).  The voucher row is locked first, so two
 * stores using one code at once get one use and one LY023.
 */
Datum
loyalty_voucher_use(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	const LoyaltyCaller *caller;
	char	   *key = loyalty_arg_key(fcinfo, 0);
	char	   *code;
	char	   *store;
	char	   *args;
	char	   *found;
	char	   *json;
	char	   *state;
	char	   *only_store;
	char	   *kind;
	char	   *reward;
	bool		expired;
	bool		isnull;
	pg_uuid_t	id;
	pg_uuid_t	member;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	reward_arg_required(fcinfo, 1, "code");
	reward_arg_required(fcinfo, 2, "store_code");
	code = reward_text_arg(fcinfo, 1);
	store = reward_text_arg(fcinfo, 2);
	caller = loyalty_caller();
	loyalty_require_department(caller, DEPT_BIT(DEPT_FRONTDESK) | DEPT_BIT(DEPT_FNB) |
							   DEPT_BIT(DEPT_STORE_MANAGER) | DEPT_BIT(DEPT_CRM) |
							   DEPT_BIT(DEPT_DBA));
	loyalty_require_store(caller, store);
	if (!voucher_code_valid(code))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("voucher code is not valid"),
				 errdetail("A voucher code is 16 digits with a check digit; this one was probably mistyped.")));
	args = psprintf("code=%s store=%s", code, store);

	lspi_connect(LSPI_READ_WRITE);
	reward_check_store(store);
	{
		Datum		v[2] = {CStringGetTextDatum(code), TimestampTzGetDatum(now)};

		if (reward_sql("SELECT v.voucher_id, v.member_id, v.state, v.store_code, r.kind, "
					   "       v.expires_at <= $2, v.reward_code "
					   "  FROM loyalty.voucher v JOIN loyalty.reward r ON r.reward_code = v.reward_code "
					   " WHERE v.code = $1 FOR UPDATE OF v",
					   2, (Oid[]) {TEXTOID, TIMESTAMPTZOID}, v, NULL, SPI_OK_SELECT) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("voucher not found")));
	}
	id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	member = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	state = reward_get_text(0, 3);
	only_store = reward_get_text(0, 4);
	kind = reward_get_text(0, 5);
	expired = reward_get_bool(0, 6);
	reward = reward_get_text(0, 7);

	found = reward_idem_replay(key, "voucher_use", args);
	if (found != NULL)
	{
		found = MemoryContextStrdup(outer, found);
		lspi_finish();
		PG_RETURN_DATUM(reward_result(found));
	}
	if (strcmp(state, "issued") != 0 || expired)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_VOUCHER_UNUSABLE),
				 strcmp(state, "used") == 0 ? errmsg("voucher has already been used") :
				 strcmp(state, "cancelled") == 0 ? errmsg("voucher has been cancelled") :
				 errmsg("voucher has expired")));
	if (only_store != NULL && strcmp(only_store, store) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_VOUCHER_UNUSABLE),
				 errmsg("voucher is usable at store \"%s\" only", only_store)));
	loyalty_assert_not_frozen(&member, "redemption");
	if (strcmp(kind, "upgrade") == 0)
		loyalty_assert_not_frozen(&member, "room_upgrade");

	{
		Datum		v[3] = {UUIDPGetDatum(&id), CStringGetTextDatum(store), TimestampTzGetDatum(now)};

		reward_sql("UPDATE loyalty.voucher SET state = 'used', used_at = $3, used_store = $2, "
				   "changed_at = $3 WHERE voucher_id = $1",
				   3, (Oid[]) {UUIDOID, TEXTOID, TIMESTAMPTZOID}, v, NULL, SPI_OK_UPDATE);
	}
	reward_audit(&member, "voucher_use",
				 psprintf("{\"voucher_id\": \"%s\", \"reward_code\": %s, \"store_code\": %s}",
						  reward_uuid_text(&id), reward_json_text(reward), reward_json_text(store)));
	loyalty_outbox_emit("voucher_used", &member, store,
						psprintf("{\"voucher_id\": \"%s\", \"reward_code\": %s, \"kind\": \"%s\"}",
								 reward_uuid_text(&id), reward_json_text(reward), kind));
	json = psprintf("{\"voucher_id\": \"%s\", \"member_id\": \"%s\", \"reward_code\": %s, "
					"\"kind\": \"%s\", \"used_at\": \"%s\", \"replayed\": false}",
					reward_uuid_text(&id), reward_uuid_text(&member), reward_json_text(reward),
					kind, timestamptz_to_str(now));
	reward_idem_save(key, "voucher_use", args, json);
	json = MemoryContextStrdup(outer, json);
	lspi_finish();
	PG_RETURN_DATUM(reward_result(json));
}

/*
 * loyalty._voucher_expire(idempotency_key, as_of, notice_days) returns jsonb
 *
 * The nightly batch: issued vouchers whose expires_at has come become
 * expired (event voucher_expired); issued vouchers expiring within
 * notice_days get one voucher_expiring notice.  as_of may not be in the
 * future.
 */
Datum
loyalty_voucher_expire(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	const LoyaltyCaller *caller;
	char	   *key = loyalty_arg_key(fcinfo, 0);
	TimestampTz as_of;
	int32		notice_days;
	char	   *args;
	char	   *found;
	char	   *json;
	uint64		expired;
	uint64		notices;
	uint64		i;
	SPITupleTable *rows;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	reward_arg_required(fcinfo, 1, "as_of");
	reward_arg_required(fcinfo, 2, "notice_days");
	caller = loyalty_caller();
	loyalty_require_department(caller, DEPT_BIT(DEPT_CRM) | DEPT_BIT(DEPT_DBA));
	as_of = PG_GETARG_TIMESTAMPTZ(1);
	notice_days = PG_GETARG_INT32(2);
	if (TIMESTAMP_NOT_FINITE(as_of) || as_of > now)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("as_of must be a finite time not later than now"),
				 errdetail("A batch never acts ahead of time.")));
	if (notice_days < 0 || notice_days > 365)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("notice_days must be 0 to 365")));
	args = psprintf("as_of=%s notice_days=%d", timestamptz_to_str(as_of), notice_days);

	lspi_connect(LSPI_READ_WRITE);
	found = reward_idem_replay(key, "voucher_expire", args);
	if (found != NULL)
	{
		found = MemoryContextStrdup(outer, found);
		lspi_finish();
		PG_RETURN_DATUM(reward_result(found));
	}
	{
		Datum		v[2] = {TimestampTzGetDatum(as_of), Int32GetDatum(notice_days)};

		expired = reward_sql("UPDATE loyalty.voucher SET state = 'expired', changed_at = pg_catalog.now() "
							 " WHERE state = 'issued' AND expires_at <= $1 "
							 "RETURNING voucher_id, member_id, store_code, reward_code",
							 1, (Oid[]) {TIMESTAMPTZOID}, v, NULL, SPI_OK_UPDATE_RETURNING);
		rows = SPI_tuptable;
		for (i = 0; i < expired; i++)
		{
			bool		isnull;
			pg_uuid_t	member = *DatumGetUUIDP(SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull));

			loyalty_outbox_emit("voucher_expired", &member,
								SPI_getvalue(rows->vals[i], rows->tupdesc, 3),
								psprintf("{\"voucher_id\": \"%s\", \"reward_code\": %s}",
										 SPI_getvalue(rows->vals[i], rows->tupdesc, 1),
										 reward_json_text(SPI_getvalue(rows->vals[i], rows->tupdesc, 4))));
		}
		notices = reward_sql("UPDATE loyalty.voucher SET notice_sent_at = pg_catalog.now() "
							 " WHERE state = 'issued' AND notice_sent_at IS NULL "
							 "   AND expires_at <= $1 + pg_catalog.make_interval(days => $2) "
							 "RETURNING voucher_id, member_id, store_code, reward_code, expires_at",
							 2, (Oid[]) {TIMESTAMPTZOID, INT4OID}, v, NULL, SPI_OK_UPDATE_RETURNING);
		rows = SPI_tuptable;
		for (i = 0; i < notices; i++)
		{
			bool		isnull;
			pg_uuid_t	member = *DatumGetUUIDP(SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull));

			loyalty_outbox_emit("voucher_expiring", &member,
								SPI_getvalue(rows->vals[i], rows->tupdesc, 3),
								psprintf("{\"voucher_id\": \"%s\", \"reward_code\": %s, \"expires_at\": \"%s\"}",
										 SPI_getvalue(rows->vals[i], rows->tupdesc, 1),
										 reward_json_text(SPI_getvalue(rows->vals[i], rows->tupdesc, 4)),
										 SPI_getvalue(rows->vals[i], rows->tupdesc, 5)));
		}
	}
	reward_audit(NULL, "voucher_expire",
				 psprintf("{\"expired\": " UINT64_FORMAT ", \"notices\": " UINT64_FORMAT "}",
						  expired, notices));
	json = psprintf("{\"expired\": " UINT64_FORMAT ", \"notices\": " UINT64_FORMAT ", \"replayed\": false}",
					expired, notices);
	reward_idem_save(key, "voucher_expire", args, json);
	json = MemoryContextStrdup(outer, json);
	lspi_finish();
	PG_RETURN_DATUM(reward_result(json));
}
