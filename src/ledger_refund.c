/*-------------------------------------------------------------------------
 *
 * ledger_refund.c
 *	  A redemption given back: a cancelled reward, a partner transfer the
 *	  partner rejected.
 *
 * The refund is one entry of kind "refund" (related_entry: the redemption)
 * that returns the points to the lots the redemption drew on, so they keep
 * their expiry dates.  Points drawn from a lot that has expired or been
 * cancelled since are not returned (they would have expired anyway); the
 * caller learns how many were returned.  If the balance is negative
 * (allow_negative reversals), the refund first pays back the deficit lots,
 * as every credit does.  A redemption is refunded at most once.  The
 * inactivity clock does not move.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "ledger_int.h"
#include "spi.h"

/*
 * ledger_refund
 *		Give back the redemption entry redeem_entry at store_code (the
 *		refund's reference: e.g. the redemption or transfer id).
 */
void
ledger_refund(pg_uuid_t redeem_entry, const char *store_code,
			  const char *reference, const char *idem_key, LedgerResult *res)
{
	MemoryContext outer = CurrentMemoryContext;
	LedgerMember m;
	LedgerEntry e;
	Datum		v[1];
	bool		isnull;
	pg_uuid_t	member_id;
	pg_uuid_t	entry_id;
	char	   *args;
	int64		restored = 0;
	int64		settle;
	uint64		ndraws;
	uint64		i;
	SPITupleTable *draws;
	StringInfoData lots;

	ledger_check_text(reference, "reference", 200);
	args = psprintf("entry=%s store=%s reference=%s", ledger_uuid_text(&redeem_entry),
					store_code, reference ? reference : "");

	lspi_connect(LSPI_READ_WRITE);
	ledger_check_store(store_code);
	v[0] = UUIDPGetDatum(&redeem_entry);
	lspi_exec("SELECT member_id, kind = 'redeem' FROM loyalty.point_entry WHERE entry_id = $1",
			  1, (Oid[]) {UUIDOID}, v, NULL, true, 0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("ledger entry %s does not exist", ledger_uuid_text(&redeem_entry))));
	member_id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ledger entry %s is not a redemption", ledger_uuid_text(&redeem_entry))));
	if (ledger_lock_member_replay(member_id, idem_key, "refund", args, &m, res))
	{
		ledger_export(res, outer);
		lspi_finish();
		return;
	}
	lspi_exec("SELECT 1 FROM loyalty.point_entry WHERE kind = 'refund' AND related_entry = $1",
			  1, (Oid[]) {UUIDOID}, v, NULL, true, 0, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("redemption %s was already refunded", ledger_uuid_text(&redeem_entry))));

	/* the lots drawn on, and which of them can take points back */
	lspi_exec("SELECT d.lot_id, d.points, l.state = 'active' "
			  "  FROM loyalty.point_draw d JOIN loyalty.point_lot l ON l.lot_id = d.lot_id "
			  " WHERE d.entry_id = $1 AND d.points > 0 "
			  " ORDER BY l.expires_at NULLS LAST, l.active_from, l.lot_id",
			  1, (Oid[]) {UUIDOID}, v, NULL, true, 0, SPI_OK_SELECT);
	draws = SPI_tuptable;
	ndraws = SPI_processed;
	for (i = 0; i < ndraws; i++)
		if (DatumGetBool(SPI_getbinval(draws->vals[i], draws->tupdesc, 3, &isnull)))
			restored += DatumGetInt64(SPI_getbinval(draws->vals[i], draws->tupdesc, 2, &isnull));

	memset(&e, 0, sizeof(e));
	e.member_id = m.id;
	e.store_code = store_code;
	e.kind = "refund";
	e.points = restored;
	e.balance_after = m.balance + restored;
	e.occurred_at = ledger_now();
	e.reference = reference;
	e.related_entry = &redeem_entry;
	entry_id = ledger_insert_entry(&e);
	settle = ledger_settle_deficits(&m, entry_id, restored);

	initStringInfo(&lots);
	appendStringInfoChar(&lots, '[');
	for (i = 0; i < ndraws; i++)
	{
		pg_uuid_t	lot = *DatumGetUUIDP(SPI_getbinval(draws->vals[i], draws->tupdesc, 1, &isnull));
		int64		points = DatumGetInt64(SPI_getbinval(draws->vals[i], draws->tupdesc, 2, &isnull));
		bool		active = DatumGetBool(SPI_getbinval(draws->vals[i], draws->tupdesc, 3, &isnull));
		int64		s = active ? Min(settle, points) : 0;

		/* what pays a deficit back does not return to the lot */
		if (active && points - s > 0)
			ledger_take(entry_id, lot, -(points - s), NULL);
		settle -= s;
		appendStringInfo(&lots, "%s{\"lot_id\": \"%s\", \"points\": " INT64_FORMAT "%s}",
						 i > 0 ? ", " : "", ledger_uuid_text(&lot), points,
						 active ? "" : ", \"forfeited\": true");
	}
	appendStringInfoChar(&lots, ']');
	m.balance += restored;
	ledger_set_balance(&m, false, ledger_now());

	memset(res, 0, sizeof(*res));
	res->operation = "refund";
	res->has_entry = true;
	res->entry_id = entry_id;
	res->has_member = true;
	res->member_id = m.id;
	res->points = restored;
	res->balance = m.balance;
	res->lots_json = lots.data;
	ledger_idem_record(idem_key, "refund", args, res);
	ledger_export(res, outer);
	lspi_finish();
}
