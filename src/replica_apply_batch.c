/*-------------------------------------------------------------------------
 *
 * replica_apply_batch.c
 *	  The replica applier's set-based path for store accruals: a run of
 *	  accrual events of distinct members in a batch is checked event by
 *	  event as ledger_accrue() checks it, then written by one statement
 *	  (their entries, lots, idempotency records and balances) instead of
 *	  one statement each.
 *
 * Catching up on a store's backlog at HQ is mostly accruals.  Applied one
 * by one, each accrual's write statement paid its executor start-up, the
 * ledger tables' CHECK constraints rebuilt from the catalog and its
 * triggers' set-up (half of the applier's time, docs/performance.md).
 *
 * replica_batch_accrual_prepare() does what ledger_accrue() does before
 * its write, with the same functions in the same order (the checks of the
 * request, the store, the member's lock, the idempotency record, the
 * member's status, the policy), and computes the rows its one-statement
 * path (accrue_in_one, LQ_ACCRUE) would write.  It answers false where
 * ledger_accrue would take another path (a replayed idempotency key, a
 * member owing a deficit lot, an amount or time it refuses): the applier
 * then applies that event through the full API as before.
 * replica_batch_accrual_write() writes a run in one statement.  The
 * orchestration (subtransactions, verification, verdicts, falling back to
 * the per-event path on any error) is the applier's (replica_apply.c,
 * apply_queue).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "ledger_int.h"
#include "replica_apply_batch.h"
#include "spi.h"

/*
 * replica_batch_accrual_prepare
 *		ledger_accrue()'s work for a->req up to its one write: the same
 *		checks (errors raised as it raises them), the member locked, and
 *		the rows of the write computed into *a.  False if ledger_accrue
 *		would take another path (the caller applies the event through it).
 *		balance_before, if not NULL, is the member's balance after the
 *		run's earlier accruals of the same member (not yet written: the
 *		balance row still holds the balance before them).  Needs an SPI
 *		connection; the caller's subtransaction undoes what a false or an
 *		error leaves.
 */
bool
replica_batch_accrual_prepare(ReplicaBatchAccrual *a, const int64 *balance_before)
{
	MemoryContext outer = CurrentMemoryContext;
	const LedgerAccrual *req = &a->req;
	TimestampTz now = ledger_now();
	TimestampTz occurred_at = req->has_occurred_at ? req->occurred_at : now;
	LedgerMember m;
	LedgerPolicy lp;
	LedgerResult replay;

	/* only what the store's accruals send: no rule, no pending points */
	if (req->pending || req->has_activate_at || req->rule != NULL || req->sale ||
		req->require_backing || req->idem_key == NULL ||
		(strcmp(req->source, "stay") != 0 && strcmp(req->source, "spend") != 0))
		return false;
	ledger_check_points(req->points, "points");
	ledger_check_text(req->reference, "reference", 200);
	if (TIMESTAMP_NOT_FINITE(occurred_at) || occurred_at > now)
		return false;

	/* ledger_accrue's idempotency arguments, to the byte */
	a->args = psprintf("member=%s store=%s points=" INT64_FORMAT " source=%s rule=%s "
					   "reference=%s occurred_at=%s pending=%d activate_at=%s",
					   ledger_uuid_text(&req->member_id), req->store_code, req->points,
					   req->source, "", req->reference ? req->reference : "",
					   req->has_occurred_at ? ledger_ts_text(occurred_at) : "", 0, "");

	lspi_connect(LSPI_READ_WRITE);
	ledger_check_store(req->store_code);
	ledger_lock_member(req->member_id, &m);
	if (ledger_idem_replay(req->idem_key, "accrue", a->args, &replay))
	{
		lspi_finish();
		return false;
	}
	ledger_require_status(&m, false);
	ledger_get_policy(now, &lp);
	if (balance_before)
		m.balance = *balance_before;
	if (m.balance < 0)
	{
		/* a deficit lot to settle: ledger_accrue's general path */
		lspi_finish();
		return false;
	}
	MemoryContextSwitchTo(outer);
	a->entry_id = ledger_new_id();
	a->lot_id = ledger_new_id();
	a->has_expiry = ledger_lot_expiry(&lp, &m, occurred_at, &a->expires_at);
	a->balance = m.balance + req->points;
	a->req.occurred_at = occurred_at;
	a->req.has_occurred_at = true;
	a->lots_json = psprintf("[{\"lot_id\": \"%s\", \"points\": " INT64_FORMAT ", \"state\": \"active\"}]",
							ledger_uuid_text(&a->lot_id), req->points);
	lspi_finish();
	return true;
}

/*
 * replica_datum_array
 *		A one-dimensional array of n values of elemtype, NULLs where nulls
 *		says so (nulls may be NULL); the parameters of the applier's
 *		set-based statements (here and in replica_apply.c).
 */
Datum
replica_datum_array(Datum *values, bool *nulls, int n, Oid elemtype)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, elemtype,
											  typlen, typbyval, typalign));
}

/*
 * replica_batch_accrual_write
 *		Write a run of prepared accruals (their members locked) in one
 *		statement: per accrual the rows LQ_ACCRUE writes (entry, lot,
 *		idempotency record), and per member its balance after its last
 *		accrual of the run, its activity clock moved to the latest.
 *		Raises an error if a balance row was not updated (the caller's
 *		subtransaction rolls the run back).
 *		Needs an SPI connection.
 */
void
replica_batch_accrual_write(ReplicaBatchAccrual *items, int n, int members)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[13] = {UUIDARRAYOID, UUIDARRAYOID, TEXTARRAYOID, INT8ARRAYOID,
		INT8ARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID, UUIDARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[13];
	Datum	   *cols[13];
	bool	   *ref_null = palloc(sizeof(bool) * n);
	bool	   *exp_null = palloc(sizeof(bool) * n);
	int			c;
	int			i;

	for (c = 0; c < 13; c++)
		cols[c] = palloc0(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
	{
		ReplicaBatchAccrual *a = &items[i];

		cols[0][i] = UUIDPGetDatum(&a->entry_id);
		cols[1][i] = UUIDPGetDatum(&a->req.member_id);
		cols[2][i] = CStringGetTextDatum(a->req.store_code);
		cols[3][i] = Int64GetDatum(a->req.points);
		cols[4][i] = Int64GetDatum(a->balance);
		cols[5][i] = TimestampTzGetDatum(a->req.occurred_at);
		ref_null[i] = a->req.reference == NULL;
		if (a->req.reference)
			cols[6][i] = CStringGetTextDatum(a->req.reference);
		cols[7][i] = UUIDPGetDatum(&a->lot_id);
		cols[8][i] = CStringGetTextDatum(a->req.source);
		exp_null[i] = !a->has_expiry;
		if (a->has_expiry)
			cols[9][i] = TimestampTzGetDatum(a->expires_at);
		cols[10][i] = CStringGetTextDatum(a->req.idem_key);
		cols[11][i] = CStringGetTextDatum(a->args);
		cols[12][i] = CStringGetTextDatum(a->lots_json);
	}
	values[0] = replica_datum_array(cols[0], NULL, n, UUIDOID);
	values[1] = replica_datum_array(cols[1], NULL, n, UUIDOID);
	values[2] = replica_datum_array(cols[2], NULL, n, TEXTOID);
	values[3] = replica_datum_array(cols[3], NULL, n, INT8OID);
	values[4] = replica_datum_array(cols[4], NULL, n, INT8OID);
	values[5] = replica_datum_array(cols[5], NULL, n, TIMESTAMPTZOID);
	values[6] = replica_datum_array(cols[6], ref_null, n, TEXTOID);
	values[7] = replica_datum_array(cols[7], NULL, n, UUIDOID);
	values[8] = replica_datum_array(cols[8], NULL, n, TEXTOID);
	values[9] = replica_datum_array(cols[9], exp_null, n, TIMESTAMPTZOID);
	values[10] = replica_datum_array(cols[10], NULL, n, TEXTOID);
	values[11] = replica_datum_array(cols[11], NULL, n, TEXTOID);
	values[12] = replica_datum_array(cols[12], NULL, n, TEXTOID);

	/* LQ_ACCRUE (src/ledger_core.c) for a set of accruals, in their order */
	if (lspi_run(lspi_plan(&plan,
						   "WITH u AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
						   "  pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), "
						   "  pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8), "
						   "  pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($11), "
						   "  pg_catalog.unnest($12), pg_catalog.unnest($13)) WITH ORDINALITY "
						   "  AS u (entry_id, member_id, store_code, points, balance, occurred_at, "
						   "        reference, lot_id, source, expires_at, idem_key, args, lots, i)), "
						   "e AS (INSERT INTO loyalty.point_entry (entry_id, member_id, store_code, "
						   "  kind, points, pending_points, balance_after, occurred_at, reference, note) "
						   "  SELECT u.entry_id, u.member_id, u.store_code, 'accrue', u.points, 0, u.balance, "
						   "         u.occurred_at, u.reference, NULL FROM u ORDER BY u.i), "
						   "l AS (INSERT INTO loyalty.point_lot (lot_id, member_id, store_code, source, "
						   "  rule, reference, points, remaining, state, earned_at, activate_at, "
						   "  active_from, expires_at, entry_id) "
						   "  SELECT u.lot_id, u.member_id, u.store_code, u.source, NULL, u.reference, "
						   "         u.points, u.points, 'active', u.occurred_at, NULL, u.occurred_at, "
						   "         u.expires_at, u.entry_id FROM u ORDER BY u.i), "
						   "r AS (INSERT INTO loyalty.ledger_request (idem_key, operation, args, entry_id, "
						   "  lot_id, member_id, points, balance, lots) "
						   "  SELECT u.idem_key, 'accrue', u.args, u.entry_id, u.lot_id, u.member_id, "
						   "         u.points, u.balance, u.lots::jsonb FROM u ORDER BY u.i) "
						   "UPDATE loyalty.point_balance b SET balance = x.balance, "
						   "last_activity_at = GREATEST(b.last_activity_at, x.occurred_at), "
						   "updated_at = pg_catalog.now() "
						   "FROM (SELECT u.member_id, (pg_catalog.array_agg(u.balance ORDER BY u.i DESC))[1] AS balance, "
						   "             pg_catalog.max(u.occurred_at) AS occurred_at "
						   "        FROM u GROUP BY u.member_id) x "
						   "WHERE b.member_id = x.member_id",
						   13, types),
				 values, NULL, false, 0, SPI_OK_UPDATE) != (uint64) members)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("balance rows of a run of %d accruals not all updated", n)));
}
