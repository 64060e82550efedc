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
 * accrual that names a stay or charge of that member at that store.  A
 * credit with nothing behind it is a manual adjustment: a store manager or
 * an HQ role, a reason code, and the caps below; above them it waits for
 * an HQ approval.
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
#include "roles_caller.h"
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
 * ledger_accrue_authority
 *		The authority rules of a direct loyalty.points_accrue() call, before
 *		the ledger writes: source "adjustment" only through points_adjust
 *		(a superuser, who can do anything, excepted), and a store login's
 *		accrual needs a stay or charge behind it (checked by ledger_accrue
 *		after the idempotency replay, so that a retry still replays).
 */
void
ledger_accrue_authority(const LoyaltyCaller *caller, LedgerAccrual *req)
{
	if (req->source != NULL && strcmp(req->source, "adjustment") == 0 &&
		!caller->is_superuser)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("points_accrue does not credit manual adjustments"),
				 errdetail("An adjustment has no stay or charge behind it: it needs a reason code and is capped per call and per day."),
				 errhint("Use loyalty.points_adjust() as a store manager or an HQ role.")));
	if (!caller->is_hq)
		req->require_backing = true;
}

/*
 * ledger_require_backing
 *		Error (42501) unless the accrual names, as its reference, a stay
 *		(stay_id or the PMS's idempotency key) or a charge (charge_id or
 *		its key) of this member at this store, not cancelled, with source
 *		stay or spend.  Needs the ledger's SPI connection.
 */
void
ledger_require_backing(const LedgerAccrual *req)
{
	Oid			types[3] = {UUIDOID, TEXTOID, TEXTOID};
	Datum		values[3];
	bool		isnull;

	if (req->reference == NULL ||
		(strcmp(req->source, "stay") != 0 && strcmp(req->source, "spend") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("a store may credit points only for a stay or a charge"),
				 errdetail("Store staff accruals need source stay or spend and a reference that names a stay or charge of the member at store \"%s\".",
						   req->store_code),
				 errhint("Record the stay with loyalty.stay_record() or the charge with loyalty.charge_record(), which earn the points; a credit without one is a manual adjustment (loyalty.points_adjust()).")));
	values[0] = UUIDPGetDatum(&req->member_id);
	values[1] = CStringGetTextDatum(req->store_code);
	values[2] = CStringGetTextDatum(req->reference);
	lspi_exec("SELECT EXISTS (SELECT 1 FROM loyalty.stay s "
			  "  WHERE s.member_id = $1 AND s.store_code = $2 AND s.status <> 'cancelled' "
			  "    AND (s.idempotency_key = $3 OR s.stay_id::text = $3)) "
			  "OR EXISTS (SELECT 1 FROM loyalty.charge c "
			  "  WHERE c.member_id = $1 AND c.store_code = $2 "
			  "    AND (c.idempotency_key = $3 OR c.charge_id::text = $3))",
			  3, types, values, NULL, true, 1, SPI_OK_SELECT);
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("reference \"%s\" is no stay or charge of this member at store \"%s\"",
						req->reference, req->store_code),
				 errhint("Record the stay with loyalty.stay_record() or the charge with loyalty.charge_record(), which earn the points; a credit without one is a manual adjustment (loyalty.points_adjust()).")));
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
