/*-------------------------------------------------------------------------
 *
 * ledger_sql.c
 *	  The SQL entry points of the ledger: argument NULL checks, caller
 *	  rights, then the C API of ledger.h.
 *
 * Rights (docs/ledger.md, "Who may call what"): store staff act only for
 * their own store, HQ crm and dba for any store.
 *
 *	accrue, redeem, redeem_cash, reverse	frontdesk, fnb, store_manager; crm, dba
 *	activate, transfer						frontdesk, store_manager; crm, dba
 *	activate_due, expire_points				crm, dba
 *
 * The bodies read the 1.1 argument order (key last), which the 1.0/1.1
 * install scripts bind to these symbols; the 1.2 spellings (points_accrue
 * ..., key first) are the loyalty_points_* symbols at the end of the file,
 * which reorder the arguments onto the same bodies.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "roles_caller.h"
#include "ledger.h"
#include "audit.h"
#include "ledger_int.h"
#include "args.h"
#include "request.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_accrue);
PG_FUNCTION_INFO_V1(loyalty_activate);
PG_FUNCTION_INFO_V1(loyalty_activate_due);
PG_FUNCTION_INFO_V1(loyalty_redeem);
PG_FUNCTION_INFO_V1(loyalty_redeem_cash);
PG_FUNCTION_INFO_V1(loyalty_reverse);
PG_FUNCTION_INFO_V1(loyalty_transfer);
PG_FUNCTION_INFO_V1(loyalty_expire_points);
PG_FUNCTION_INFO_V1(loyalty_redemption_check);
PG_FUNCTION_INFO_V1(loyalty_points_accrue);
PG_FUNCTION_INFO_V1(loyalty_points_activate);
PG_FUNCTION_INFO_V1(loyalty_points_redeem);
PG_FUNCTION_INFO_V1(loyalty_points_redeem_cash);
PG_FUNCTION_INFO_V1(loyalty_points_reverse);
PG_FUNCTION_INFO_V1(loyalty_points_transfer);

#define RIGHTS_SPEND	(DEPT_BIT(DEPT_FRONTDESK) | DEPT_BIT(DEPT_FNB) | \
						 DEPT_BIT(DEPT_STORE_MANAGER) | DEPT_BIT(DEPT_CRM) | \
						 DEPT_BIT(DEPT_DBA))
#define RIGHTS_DESK		(DEPT_BIT(DEPT_FRONTDESK) | DEPT_BIT(DEPT_STORE_MANAGER) | \
						 DEPT_BIT(DEPT_CRM) | DEPT_BIT(DEPT_DBA))
#define RIGHTS_BATCH	(DEPT_BIT(DEPT_CRM) | DEPT_BIT(DEPT_DBA))

/*
 * arg_required
 *		Error if argument argno is NULL.
 */
static void
arg_required(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/*
 * text_or_null
 *		An optional text argument as a C string, or NULL.
 */
static char *
text_or_null(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? NULL : TextDatumGetCString(PG_GETARG_DATUM(argno));
}

/*
 * check_key
 *		The idempotency key (args.h).
 */
static char *
check_key(FunctionCallInfo fcinfo, int argno)
{
	return loyalty_arg_key(fcinfo, argno);
}

/*
 * check_rights
 *		Error unless the caller's department is in mask and (store_code not
 *		NULL) the caller may act for that store.
 */
static void
check_rights(uint32 mask, const char *store_code)
{
	const LoyaltyCaller *c = loyalty_caller();

	loyalty_require_department(c, mask);
	if (store_code != NULL)
		loyalty_require_store(c, store_code);
}

/*
 * audit_ledger
 *		The change record of a ledger operation that wrote (not a replay),
 *		in the operation's transaction: action points_<operation>, purpose
 *		loyalty, the points, entry and balance as detail.
 */
static void
audit_ledger(const LedgerResult *res)
{
	static const char *const keys[4] = {"operation", "points", "entry_id", "balance"};
	static const bool quoted[4] = {true, false, true, false};
	const char *values[4];
	char		action[64];

	values[0] = res->operation;
	values[1] = psprintf(INT64_FORMAT, res->points);
	values[2] = res->has_entry
		? DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&res->entry_id)))
		: NULL;
	values[3] = res->has_member ? psprintf(INT64_FORMAT, res->balance) : NULL;
	snprintf(action, sizeof(action), "points_%s%s", res->operation,
			 res->has_cash && strcmp(res->operation, "redeem") == 0 ? "_cash" : "");
	loyalty_audit_change(res->has_member ? &res->member_id : NULL, action, "loyalty",
						 loyalty_audit_detail(4, keys, values, quoted));
}

/*
 * ledger_result_datum
 *		A LedgerResult as a loyalty.ledger_result row; records the change
 *		(audit_ledger) unless the call was a replay.
 */
Datum
ledger_result_datum(FunctionCallInfo fcinfo, const LedgerResult *res)
{
	TupleDesc	tupdesc;
	Datum		v[9];
	bool		n[9];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	memset(n, 0, sizeof(n));
	v[0] = UUIDPGetDatum(&res->entry_id);
	n[0] = !res->has_entry;
	v[1] = UUIDPGetDatum(&res->lot_id);
	n[1] = !res->has_lot;
	v[2] = CStringGetTextDatum(res->operation);
	v[3] = UUIDPGetDatum(&res->member_id);
	n[3] = !res->has_member;
	v[4] = Int64GetDatum(res->points);
	v[5] = Int64GetDatum(res->balance);
	n[5] = !res->has_member;
	if (res->has_cash)
		v[6] = NumericGetDatum(int64_div_fast_to_numeric(res->cash_minor, res->cash_scale));
	else
		n[6] = true;
	if (res->lots_json)
		v[7] = DirectFunctionCall1(jsonb_in, CStringGetDatum(res->lots_json));
	else
		n[7] = true;
	v[8] = BoolGetDatum(res->replayed);
	if (!res->replayed)
		audit_ledger(res);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, v, n));
}

/*
 * accrue_authority
 *		The authority rules of a direct loyalty.points_accrue() call, before
 *		the ledger writes (docs/ledger.md, "Authority limits"): a store
 *		login makes no adjustment here (points_adjust is theirs), and its
 *		accrual needs a stay or charge behind it (checked by ledger_accrue
 *		after the idempotency replay, so that a retry still replays).  HQ
 *		keeps source "adjustment" for bulk loads (the CRM import's opening
 *		balances).
 */
static void
accrue_authority(const LoyaltyCaller *caller, LedgerAccrual *req)
{
	if (req->source != NULL && strcmp(req->source, "adjustment") == 0 &&
		!caller->is_hq)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("points_accrue does not credit manual adjustments"),
				 errdetail("An adjustment has no stay or charge behind it: it needs a reason code and is capped per call and per day."),
				 errhint("A store manager uses loyalty.points_adjust().")));
	if (!caller->is_hq)
		req->require_backing = true;
}

/*
 * 1.1 order, loyalty.accrue(member_id, store_code, points, source, idem_key, rule,
 *				  reference, occurred_at, pending, activate_at)
 */
Datum
loyalty_accrue(PG_FUNCTION_ARGS)
{
	LedgerAccrual req;
	LedgerResult res;

	arg_required(fcinfo, 0, "member_id");
	arg_required(fcinfo, 1, "store_code");
	arg_required(fcinfo, 2, "points");
	arg_required(fcinfo, 3, "source");
	arg_required(fcinfo, 8, "pending");
	memset(&req, 0, sizeof(req));
	req.idem_key = check_key(fcinfo, 4);
	req.member_id = *PG_GETARG_UUID_P(0);
	req.store_code = text_or_null(fcinfo, 1);
	req.points = PG_GETARG_INT64(2);
	req.source = text_or_null(fcinfo, 3);
	req.rule = text_or_null(fcinfo, 5);
	req.reference = text_or_null(fcinfo, 6);
	req.has_occurred_at = !PG_ARGISNULL(7);
	if (req.has_occurred_at)
		req.occurred_at = PG_GETARG_TIMESTAMPTZ(7);
	req.pending = PG_GETARG_BOOL(8);
	req.has_activate_at = !PG_ARGISNULL(9);
	if (req.has_activate_at)
		req.activate_at = PG_GETARG_TIMESTAMPTZ(9);
	check_rights(RIGHTS_SPEND, req.store_code);
	accrue_authority(loyalty_caller(), &req);
	ledger_accrue(&req, &res);
	PG_RETURN_DATUM(ledger_result_datum(fcinfo, &res));
}

/*
 * 1.1 order, loyalty.activate(member_id, store_code, reference, idem_key)
 */
Datum
loyalty_activate(PG_FUNCTION_ARGS)
{
	LedgerResult res;
	char	   *key;
	char	   *store;

	arg_required(fcinfo, 0, "member_id");
	arg_required(fcinfo, 1, "store_code");
	arg_required(fcinfo, 2, "reference");
	key = check_key(fcinfo, 3);
	store = text_or_null(fcinfo, 1);
	check_rights(RIGHTS_DESK, store);
	ledger_activate(*PG_GETARG_UUID_P(0), store, text_or_null(fcinfo, 2), key, &res);
	PG_RETURN_DATUM(ledger_result_datum(fcinfo, &res));
}

/*
 * 1.1 order, loyalty.activate_due(idem_key, as_of)
 */
Datum
loyalty_activate_due(PG_FUNCTION_ARGS)
{
	LedgerResult res;
	char	   *key = check_key(fcinfo, 0);

	arg_required(fcinfo, 1, "as_of");
	check_rights(RIGHTS_BATCH, NULL);
	ledger_activate_due(PG_GETARG_TIMESTAMPTZ(1), key, &res);
	PG_RETURN_DATUM(ledger_result_datum(fcinfo, &res));
}

/*
 * 1.1 order, loyalty.redeem(member_id, store_code, points, reward, idem_key)
 */
Datum
loyalty_redeem(PG_FUNCTION_ARGS)
{
	LedgerResult res;
	char	   *key;
	char	   *store;

	arg_required(fcinfo, 0, "member_id");
	arg_required(fcinfo, 1, "store_code");
	arg_required(fcinfo, 2, "points");
	arg_required(fcinfo, 3, "reward");
	key = check_key(fcinfo, 4);
	store = text_or_null(fcinfo, 1);
	check_rights(RIGHTS_SPEND, store);
	ledger_redeem_reward(*PG_GETARG_UUID_P(0), store, PG_GETARG_INT64(2),
						 text_or_null(fcinfo, 3), key, &res);
	PG_RETURN_DATUM(ledger_result_datum(fcinfo, &res));
}

/*
 * 1.1 order, loyalty.redeem_cash(member_id, store_code, amount, idem_key)
 */
Datum
loyalty_redeem_cash(PG_FUNCTION_ARGS)
{
	LedgerResult res;
	char	   *key;
	char	   *store;

	arg_required(fcinfo, 0, "member_id");
	arg_required(fcinfo, 1, "store_code");
	arg_required(fcinfo, 2, "amount");
	key = check_key(fcinfo, 3);
	store = text_or_null(fcinfo, 1);
	check_rights(RIGHTS_SPEND, store);
	ledger_redeem_cash(*PG_GETARG_UUID_P(0), store, PG_GETARG_DATUM(2), key, &res);
	PG_RETURN_DATUM(ledger_result_datum(fcinfo, &res));
}

/*
 * 1.1 order, loyalty.reverse(accrual_entry, store_code, refund_amount, original_amount,
 *				   idem_key)
 *
 * Store staff may reverse only accruals recorded at their own store.
 */
Datum
loyalty_reverse(PG_FUNCTION_ARGS)
{
	LedgerResult res;
	char	   *key;
	char	   *store;
	const LoyaltyCaller *c;

	arg_required(fcinfo, 0, "accrual_entry");
	arg_required(fcinfo, 1, "store_code");
	arg_required(fcinfo, 2, "refund_amount");
	arg_required(fcinfo, 3, "original_amount");
	key = check_key(fcinfo, 4);
	store = text_or_null(fcinfo, 1);
	check_rights(RIGHTS_SPEND, store);
	c = loyalty_caller();
	if (!c->is_hq)
	{
		Datum		v[1];

		lspi_connect(LSPI_READ_WRITE);
		v[0] = PG_GETARG_DATUM(0);
		lspi_exec("SELECT store_code FROM loyalty.point_entry WHERE entry_id = $1",
									1, (Oid[]) {UUIDOID}, v, NULL, true, 1, SPI_OK_SELECT);
		if (SPI_processed == 1)
			loyalty_require_store(c, SPI_getvalue(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1));
		lspi_finish();
	}
	ledger_reverse(*PG_GETARG_UUID_P(0), store, PG_GETARG_DATUM(2),
				   PG_GETARG_DATUM(3), key, &res);
	PG_RETURN_DATUM(ledger_result_datum(fcinfo, &res));
}

/*
 * 1.1 order, loyalty.transfer(from_member, to_member, store_code, points, idem_key)
 */
Datum
loyalty_transfer(PG_FUNCTION_ARGS)
{
	LedgerResult res;
	char	   *key;
	char	   *store;

	arg_required(fcinfo, 0, "from_member");
	arg_required(fcinfo, 1, "to_member");
	arg_required(fcinfo, 2, "store_code");
	arg_required(fcinfo, 3, "points");
	key = check_key(fcinfo, 4);
	store = text_or_null(fcinfo, 2);
	check_rights(RIGHTS_DESK, store);
	ledger_transfer(*PG_GETARG_UUID_P(0), *PG_GETARG_UUID_P(1), store,
					PG_GETARG_INT64(3), key, &res);
	PG_RETURN_DATUM(ledger_result_datum(fcinfo, &res));
}

/*
 * 1.1 order, loyalty.expire_points(idem_key, as_of)
 */
Datum
loyalty_expire_points(PG_FUNCTION_ARGS)
{
	LedgerResult res;
	char	   *key = check_key(fcinfo, 0);

	arg_required(fcinfo, 1, "as_of");
	check_rights(RIGHTS_BATCH, NULL);
	ledger_expire(PG_GETARG_TIMESTAMPTZ(1), key, &res);
	PG_RETURN_DATUM(ledger_result_datum(fcinfo, &res));
}

/*
 * loyalty.points_accrue(idempotency_key, member_id, store_code, points, source, rule, reference, occurred_at, pending, activate_at)
 *		The 1.2 spelling: the idempotency key first; the body is
 *		loyalty_accrue's (whose symbol the 1.0/1.1 scripts reference).
 */
Datum
loyalty_points_accrue(PG_FUNCTION_ARGS)
{
	static const int map[] = {1, 2, 3, 4, 0, 5, 6, 7, 8, 9};

	return loyalty_call_reordered(fcinfo, loyalty_accrue, map, lengthof(map));
}

/*
 * loyalty.points_activate(idempotency_key, member_id, store_code, reference)
 *		The 1.2 spelling: the idempotency key first; the body is
 *		loyalty_activate's (whose symbol the 1.0/1.1 scripts reference).
 */
Datum
loyalty_points_activate(PG_FUNCTION_ARGS)
{
	static const int map[] = {1, 2, 3, 0};

	return loyalty_call_reordered(fcinfo, loyalty_activate, map, lengthof(map));
}

/*
 * loyalty.points_redeem(idempotency_key, member_id, store_code, points, reward)
 *		The 1.2 spelling: the idempotency key first; the body is
 *		loyalty_redeem's (whose symbol the 1.0/1.1 scripts reference).
 */
Datum
loyalty_points_redeem(PG_FUNCTION_ARGS)
{
	static const int map[] = {1, 2, 3, 4, 0};

	return loyalty_call_reordered(fcinfo, loyalty_redeem, map, lengthof(map));
}

/*
 * loyalty.points_redeem_cash(idempotency_key, member_id, store_code, amount)
 *		The 1.2 spelling: the idempotency key first; the body is
 *		loyalty_redeem_cash's (whose symbol the 1.0/1.1 scripts reference).
 */
Datum
loyalty_points_redeem_cash(PG_FUNCTION_ARGS)
{
	static const int map[] = {1, 2, 3, 0};

	return loyalty_call_reordered(fcinfo, loyalty_redeem_cash, map, lengthof(map));
}

/*
 * loyalty.points_reverse(idempotency_key, accrual_entry, store_code, refund_amount, original_amount)
 *		The 1.2 spelling: the idempotency key first; the body is
 *		loyalty_reverse's (whose symbol the 1.0/1.1 scripts reference).
 */
Datum
loyalty_points_reverse(PG_FUNCTION_ARGS)
{
	static const int map[] = {1, 2, 3, 4, 0};

	return loyalty_call_reordered(fcinfo, loyalty_reverse, map, lengthof(map));
}

/*
 * loyalty.points_transfer(idempotency_key, from_member, to_member, store_code, points)
 *		The 1.2 spelling: the idempotency key first; the body is
 *		loyalty_transfer's (whose symbol the 1.0/1.1 scripts reference).
 */
Datum
loyalty_points_transfer(PG_FUNCTION_ARGS)
{
	static const int map[] = {1, 2, 3, 4, 0};

	return loyalty_call_reordered(fcinfo, loyalty_transfer, map, lengthof(map));
}

/*
 * loyalty._redemption_check(points bigint) returns void
 *		The ledger's redemption rules (points, then the minimum and step of
 *		the policy in effect) for a store's offline redemption, which is
 *		written to the store's outbox before HQ's ledger sees it.
 */
Datum
loyalty_redemption_check(PG_FUNCTION_ARGS)
{
	LedgerPolicy lp;

	arg_required(fcinfo, 0, "points");
	loyalty_check_points(PG_GETARG_INT64(0));
	ledger_get_policy(GetCurrentTransactionStartTimestamp(), &lp);
	ledger_check_redemption(&lp, PG_GETARG_INT64(0));
	PG_RETURN_VOID();
}
