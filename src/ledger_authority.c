/*-------------------------------------------------------------------------
 *
 * ledger_authority.c
 *	  Authority limits on points (docs/ledger.md, "Authority limits"):
 *	  what a store's own call to points_accrue must have behind it, the
 *	  settings that cap manual adjustments, and the ledger write of an
 *	  adjustment (loyalty.points_adjust() and points_adjust_approve() in
 *	  src/sql/11_ledger_authority.sql decide whether it may be written).
 *
 * A store login (front desk, F&B, store manager) earns points for a member
 * only through the stay path (stay_record, charge_record) or with an
 * accrual that names a stay or charge of that member at that store
 * (checked by ledger_accrue.c, asked for by ledger_sql.c).  A credit with
 * nothing behind it is a manual adjustment: a store manager or an HQ role,
 * a reason code, and the caps below; above them it waits for an HQ
 * approval.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/uuid.h"

#include "args.h"
#include "ledger_int.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_adjust_caps);
PG_FUNCTION_INFO_V1(loyalty_adjust_credit);

/* loyalty.adjust_cap_per_call, loyalty.adjust_cap_per_day (superuser only) */
static int	adjust_cap_per_call = 10000;
static int	adjust_cap_per_day = 50000;

/*
 * ledger_authority_init
 *		Define the adjustment caps (from _PG_init).  Both are PGC_SUSET: a
 *		login cannot raise its own cap; a superuser sets them in
 *		postgresql.conf, per database or per role (ALTER ROLE ... SET), or
 *		grants SET on them to an HQ administrator (GRANT SET ON PARAMETER).
 */
void
ledger_authority_init(void)
{
	DefineCustomIntVariable("loyalty.adjust_cap_per_call",
							"Points one manual adjustment may credit without an HQ approval.",
							"Above it the adjustment is stored as pending until an HQ role approves it.",
							&adjust_cap_per_call, 10000, 0, 100000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("loyalty.adjust_cap_per_day",
							"Points one login may credit by manual adjustments in 24 hours without an HQ approval.",
							"An adjustment that would exceed it is stored as pending until an HQ role approves it.",
							&adjust_cap_per_day, 50000, 0, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/*
 * loyalty._adjust_caps(OUT per_call bigint, OUT per_day bigint)
 *		The adjustment caps in effect for this session.  Called by
 *		loyalty.points_adjust() only (granted to nobody).
 */
Datum
loyalty_adjust_caps(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		v[2];
	bool		n[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	v[0] = Int64GetDatum((int64) adjust_cap_per_call);
	v[1] = Int64GetDatum((int64) adjust_cap_per_day);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, v, n)));
}

/*
 * loyalty._adjust_credit(idempotency_key text, member_id uuid, store_code text,
 *						  points bigint, reason_code text, request_id uuid)
 *		returns loyalty.ledger_result
 *		The ledger write of an adjustment that points_adjust (within caps)
 *		or points_adjust_approve decided to apply: an accrual with source
 *		adjustment, rule "adjust:<reason>", reference the request id; the
 *		change record is the ledger's (points_accrue).  No rights check:
 *		granted to nobody, called by those SECURITY DEFINER functions.
 */
Datum
loyalty_adjust_credit(PG_FUNCTION_ARGS)
{
	LedgerAccrual req;
	LedgerResult res;
	int			i;

	for (i = 0; i < 6; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("adjustment argument %d must not be null", i + 1)));
	memset(&req, 0, sizeof(req));
	req.idem_key = loyalty_arg_key(fcinfo, 0);
	req.member_id = *PG_GETARG_UUID_P(1);
	req.store_code = TextDatumGetCString(PG_GETARG_DATUM(2));
	req.points = PG_GETARG_INT64(3);
	req.source = "adjustment";
	req.rule = psprintf("adjust:%s", TextDatumGetCString(PG_GETARG_DATUM(4)));
	req.reference = DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(5)));
	ledger_accrue(&req, &res);
	PG_RETURN_DATUM(ledger_result_datum(fcinfo, &res));
}
