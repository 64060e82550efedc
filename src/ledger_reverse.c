/*-------------------------------------------------------------------------
 *
 * ledger_reverse.c
 *	  Reversal of an accrual after a refund or a cancelled stay.
 *
 * The points taken back are the accrual's points times refund / original
 * amount, rounded down; over all reversals of one accrual at most what it
 * earned.  Pending points are cancelled from their own lot.  Active points
 * come from the accrual's lot first and then, if some of them were already
 * spent, from the member's other lots; if the balance does not cover them
 * the policy decides: within_balance (default) refuses, allow_negative
 * takes what there is and records the rest in a deficit lot that later
 * credits pay back first.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "ledger_int.h"
#include "spi.h"

typedef struct AccrualLot
{
	pg_uuid_t	lot_id;
	pg_uuid_t	member_id;
	int64		points;
	int64		remaining;
	int64		reversed;
	char		state[16];
} AccrualLot;

/*
 * find_lot
 *		The lot created by an accrual entry; false if there is none.
 */
static bool
find_lot(pg_uuid_t entry_id, AccrualLot *lot)
{
	Datum		v[1];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;

	v[0] = UUIDPGetDatum(&entry_id);
	lspi_exec("SELECT l.lot_id, l.member_id, l.points, l.remaining, l.reversed, l.state "
							  "FROM loyalty.point_lot l JOIN loyalty.point_entry e ON e.entry_id = l.entry_id "
							  "WHERE l.entry_id = $1 AND e.kind = 'accrue'",
							  1, (Oid[]) {UUIDOID}, v, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	lot->lot_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
	lot->member_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull));
	lot->points = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	lot->remaining = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
	lot->reversed = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
	strlcpy(lot->state, SPI_getvalue(tup, desc, 6), sizeof(lot->state));
	return true;
}

/*
 * ledger_reverse
 *		Reverse the accrual accrual_entry in proportion to refund_amount
 *		out of original_amount (numeric, in the program's currency).
 */
void
ledger_reverse(pg_uuid_t accrual_entry, const char *store_code,
			   Datum refund_amount, Datum original_amount,
			   const char *idem_key, LedgerResult *res)
{
	MemoryContext outer = CurrentMemoryContext;
	LedgerPolicy lp;
	LedgerMember m;
	AccrualLot lot;
	int64		refund;
	int64		original;
	int64		product;
	int64		points;
	char	   *args;
	LedgerEntry e;
	pg_uuid_t	entry_id;
	StringInfoData lots;
	bool		pending;
	Datum		v[2];

	ledger_get_policy(ledger_now(), &lp);
	refund = ledger_amount_to_minor(refund_amount, lp.currency_scale, "refund amount");
	original = ledger_amount_to_minor(original_amount, lp.currency_scale, "original amount");
	if (refund > original)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("refund amount is larger than the original amount"),
				 errdetail("A reversal takes back at most what the accrual earned.")));
	args = psprintf("entry=%s store=%s refund_minor=" INT64_FORMAT " original_minor=" INT64_FORMAT,
					ledger_uuid_text(&accrual_entry), store_code, refund, original);

	lspi_connect(LSPI_READ_WRITE);
	ledger_check_store(store_code);
	if (!find_lot(accrual_entry, &lot))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("accrual entry %s does not exist", ledger_uuid_text(&accrual_entry))));
	ledger_lock_member(lot.member_id, &m);
	if (ledger_idem_replay(idem_key, "reverse", args, res))
	{
		ledger_export(res, outer);
		lspi_finish();
		return;
	}
	/* read the lot again under the member's lock */
	find_lot(accrual_entry, &lot);

	if (pg_mul_s64_overflow(lot.points, refund, &product))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("refund amount is out of range")));
	points = product / original;
	if (lot.reversed + points > lot.points)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("reversal of more points than the accrual earned"),
				 errdetail("The accrual earned " INT64_FORMAT " points, " INT64_FORMAT " were already reversed, and this refund reverses " INT64_FORMAT ".",
						   lot.points, lot.reversed, points)));
	if (strcmp(lot.state, "expired") == 0 || strcmp(lot.state, "cancelled") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the points of accrual %s are %s", ledger_uuid_text(&accrual_entry),
						lot.state),
				 errdetail("Expired or cancelled points cannot be reversed.")));
	pending = strcmp(lot.state, "pending") == 0;
	if (!pending && points > m.balance && lp.reversal_mode == REVERSAL_WITHIN_BALANCE)
		ledger_insufficient(&m, points);

	memset(&e, 0, sizeof(e));
	e.member_id = m.id;
	e.store_code = store_code;
	e.kind = "reverse";
	e.points = pending ? 0 : -points;
	e.pending_points = pending ? -points : 0;
	e.balance_after = m.balance + e.points;
	e.occurred_at = ledger_now();
	e.related_entry = &accrual_entry;
	entry_id = ledger_insert_entry(&e);

	initStringInfo(&lots);
	appendStringInfoChar(&lots, '[');
	if (points > 0)
	{
		int64		own = Min(lot.remaining, points);
		int64		rest = points - own;

		if (own > 0)
		{
			ledger_take(entry_id, lot.lot_id, own,
						pending && own == lot.remaining ? "cancelled" : NULL);
			appendStringInfo(&lots, "{\"lot_id\": \"%s\", \"points\": " INT64_FORMAT "}",
							 ledger_uuid_text(&lot.lot_id), own);
		}
		if (rest > 0)
		{
			int64		available = Max(m.balance - own, 0);
			int64		from_lots = Min(rest, available);
			LedgerDrawn *drawn;
			int			n = 0;
			int			i;

			if (from_lots > 0)
				n = ledger_draw(&m, &lp, entry_id, from_lots, &drawn);
			for (i = 0; i < n; i++)
				appendStringInfo(&lots, "%s{\"lot_id\": \"%s\", \"points\": " INT64_FORMAT "}",
								 lots.len > 1 ? ", " : "",
								 ledger_uuid_text(&drawn[i].lot_id), drawn[i].points);
			if (rest > from_lots)
			{
				/* allow_negative: the shortfall becomes a deficit lot */
				TimestampTz now = ledger_now();
				pg_uuid_t	deficit = ledger_insert_lot(m.id, store_code, "deficit", NULL,
														NULL, 0, 0, "active", now,
														NULL, &now, NULL, entry_id);

				ledger_take(entry_id, deficit, rest - from_lots, NULL);
				appendStringInfo(&lots, "%s{\"lot_id\": \"%s\", \"points\": " INT64_FORMAT ", \"deficit\": true}",
								 lots.len > 1 ? ", " : "",
								 ledger_uuid_text(&deficit), rest - from_lots);
			}
		}
		v[0] = UUIDPGetDatum(&lot.lot_id);
		v[1] = Int64GetDatum(points);
		lspi_exec("UPDATE loyalty.point_lot SET reversed = reversed + $2 WHERE lot_id = $1",
								  2, (Oid[]) {UUIDOID, INT8OID}, v, NULL, false, 0, SPI_OK_UPDATE);
	}
	appendStringInfoChar(&lots, ']');
	m.balance += e.points;
	ledger_set_balance(&m, false, ledger_now());

	memset(res, 0, sizeof(*res));
	res->operation = "reverse";
	res->has_entry = true;
	res->entry_id = entry_id;
	res->has_lot = true;
	res->lot_id = lot.lot_id;
	res->has_member = true;
	res->member_id = m.id;
	res->points = points;
	res->balance = m.balance;
	res->lots_json = lots.data;
	ledger_idem_record(idem_key, "reverse", args, res);
	ledger_export(res, outer);
	lspi_finish();
}
