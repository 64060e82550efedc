/*-------------------------------------------------------------------------
 *
 * ledger_accrue.c
 *	  Credits: accrual (each creates a lot, pending or active) and the
 *	  activation of pending lots, by reference (a stay's checkout) or by
 *	  date (a batch).
 *
 * A pending lot counts for neither balance nor expiry: its accrual entry
 * has points 0 (pending_points n), and the activation entry adds n.  The
 * expiry clock of a lot starts at its activation.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "job.h"
#include "ledger_int.h"
#include "spi.h"

static const char *const accrual_sources[] = {
	"stay", "spend", "campaign", "bonus", "milestone", "adjustment", NULL
};

/*
 * check_source
 *		Error unless source is one an accrual may name.
 */
static void
check_source(const char *source, bool sale)
{
	int			i;

	/* points sold by the rewards area: their own source, never tier */
	if (sale && strcmp(source, "purchase") == 0)
		return;
	for (i = 0; accrual_sources[i]; i++)
		if (strcmp(accrual_sources[i], source) == 0)
			return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown point source \"%s\"", source),
			 errhint("Sources are stay, spend, campaign, bonus, milestone and adjustment.")));
}

/*
 * require_backing
 *		Error (42501) unless the accrual names, as its reference, a stay
 *		(stay_id or the PMS's idempotency key) or a charge (charge_id or
 *		its key) of this member at this store, not cancelled, with source
 *		stay or spend.  Needs the ledger's SPI connection.
 */
static void
require_backing(const LedgerAccrual *req)
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
 * accrue_result
 *		The result of an accrual: its entry and its one lot, the member's
 *		balance after it (both paths of ledger_accrue).
 */
static void
accrue_result(const LedgerAccrual *req, pg_uuid_t entry_id, pg_uuid_t lot_id,
			  pg_uuid_t member_id, int64 balance, LedgerResult *res)
{
	StringInfoData lots;

	memset(res, 0, sizeof(*res));
	res->operation = "accrue";
	res->has_entry = true;
	res->entry_id = entry_id;
	res->has_lot = true;
	res->lot_id = lot_id;
	res->has_member = true;
	res->member_id = member_id;
	res->points = req->points;
	res->balance = balance;
	initStringInfo(&lots);
	appendStringInfo(&lots, "[{\"lot_id\": \"%s\", \"points\": " INT64_FORMAT ", \"state\": \"%s\"}]",
					 ledger_uuid_text(&lot_id), req->points,
					 req->pending ? "pending" : "active");
	res->lots_json = lots.data;
}

/*
 * accrue_in_one
 *		The accrual of a locked member who owes no deficit lot: entry, lot,
 *		balance and idempotency record written by one statement (the same
 *		rows ledger_accrue's general path writes one statement each).
 *		Fills res.
 */
static void
accrue_in_one(const LedgerAccrual *req, LedgerMember *m, const LedgerPolicy *lp,
			  const char *args, TimestampTz occurred_at, LedgerResult *res)
{
	Datum		v[19];
	char		n[19];
	pg_uuid_t	entry_id = ledger_new_id();
	pg_uuid_t	lot_id = ledger_new_id();
	int64		entry_points = req->pending ? 0 : req->points;
	TimestampTz expires_at;
	bool		has_expiry = false;

	Assert(req->pending || m->balance >= 0);
	if (!req->pending)
		has_expiry = ledger_lot_expiry(lp, m, occurred_at, &expires_at);
	m->balance += entry_points;

	accrue_result(req, entry_id, lot_id, m->id, m->balance, res);

	memset(n, ' ', sizeof(n));
	v[0] = UUIDPGetDatum(&res->entry_id);
	v[1] = UUIDPGetDatum(&res->member_id);
	v[2] = CStringGetTextDatum(req->store_code);
	v[3] = Int64GetDatum(entry_points);
	v[4] = Int64GetDatum(req->pending ? req->points : 0);
	v[5] = Int64GetDatum(m->balance);
	v[6] = TimestampTzGetDatum(occurred_at);
	v[7] = req->reference ? CStringGetTextDatum(req->reference) : (Datum) 0;
	n[7] = req->reference ? ' ' : 'n';
	v[8] = req->rule ? CStringGetTextDatum(req->rule) : (Datum) 0;
	n[8] = req->rule ? ' ' : 'n';
	v[9] = UUIDPGetDatum(&res->lot_id);
	v[10] = CStringGetTextDatum(req->source);
	v[11] = Int64GetDatum(req->points);
	v[12] = CStringGetTextDatum(req->pending ? "pending" : "active");
	v[13] = req->has_activate_at ? TimestampTzGetDatum(req->activate_at) : (Datum) 0;
	n[13] = req->has_activate_at ? ' ' : 'n';
	v[14] = TimestampTzGetDatum(occurred_at);
	n[14] = req->pending ? 'n' : ' ';
	v[15] = has_expiry ? TimestampTzGetDatum(expires_at) : (Datum) 0;
	n[15] = has_expiry ? ' ' : 'n';
	v[16] = req->idem_key ? CStringGetTextDatum(req->idem_key) : (Datum) 0;
	n[16] = req->idem_key ? ' ' : 'n';
	v[17] = CStringGetTextDatum(args);
	v[18] = CStringGetTextDatum(res->lots_json);
	if (ledger_run(LQ_ACCRUE, v, n, SPI_OK_UPDATE) != 1)
		elog(ERROR, "balance row of member %s not updated", ledger_uuid_text(&m->id));
}

/*
 * ledger_accrue
 *		Credit points to a member at a store: one entry and one lot.
 */
void
ledger_accrue(const LedgerAccrual *req, LedgerResult *res)
{
	MemoryContext outer = CurrentMemoryContext;
	TimestampTz now = ledger_now();
	LedgerMember m;
	LedgerPolicy lp;
	LedgerEntry e;
	char	   *args;
	pg_uuid_t	entry_id;
	pg_uuid_t	lot_id;
	int64		settled;
	TimestampTz expires_at;
	bool		has_expiry = false;

	TimestampTz occurred_at = req->has_occurred_at ? req->occurred_at : now;

	ledger_check_points(req->points, "points");
	check_source(req->source, req->sale);
	ledger_check_text(req->rule, "rule", 100);
	ledger_check_text(req->reference, "reference", 200);
	if (TIMESTAMP_NOT_FINITE(occurred_at) || occurred_at > now)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("occurred_at must be a finite time not later than now"),
				 errdetail("Points are credited for activity that has happened.")));
	if (req->has_activate_at && !req->pending)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("activate_at applies to pending points only")));
	if (req->has_activate_at && TIMESTAMP_NOT_FINITE(req->activate_at))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("activate_at must be a finite time")));

	args = psprintf("member=%s store=%s points=" INT64_FORMAT " source=%s rule=%s "
					"reference=%s occurred_at=%s pending=%d activate_at=%s",
					ledger_uuid_text(&req->member_id), req->store_code, req->points,
					req->source, req->rule ? req->rule : "", req->reference ? req->reference : "",
					req->has_occurred_at ? ledger_ts_text(occurred_at) : "", (int) req->pending,
					req->has_activate_at ? ledger_ts_text(req->activate_at) : "");

	lspi_connect(LSPI_READ_WRITE);
	ledger_check_store(req->store_code);
	if (ledger_lock_member_replay(req->member_id, req->idem_key, "accrue", args, &m, res))
	{
		ledger_export(res, outer);
		lspi_finish();
		return;
	}
	ledger_require_status(&m, false);
	if (req->require_backing)
		require_backing(req);
	ledger_get_policy(now, &lp);

	/* no deficit lot to settle: one statement writes everything */
	if (req->pending || m.balance >= 0)
	{
		accrue_in_one(req, &m, &lp, args, occurred_at, res);
		ledger_export(res, outer);
		lspi_finish();
		return;
	}

	memset(&e, 0, sizeof(e));
	e.member_id = m.id;
	e.store_code = req->store_code;
	e.kind = "accrue";
	e.points = req->pending ? 0 : req->points;
	e.pending_points = req->pending ? req->points : 0;
	e.balance_after = m.balance + e.points;
	e.occurred_at = occurred_at;
	e.reference = req->reference;
	e.note = req->rule;
	entry_id = ledger_insert_entry(&e);

	if (!req->pending)
		has_expiry = ledger_lot_expiry(&lp, &m, occurred_at, &expires_at);
	lot_id = ledger_insert_lot(m.id, req->store_code, req->source, req->rule,
							   req->reference, req->points, req->points,
							   req->pending ? "pending" : "active",
							   occurred_at,
							   req->has_activate_at ? &req->activate_at : NULL,
							   req->pending ? NULL : &occurred_at,
							   has_expiry ? &expires_at : NULL, entry_id);
	if (!req->pending)
	{
		settled = ledger_settle_deficits(&m, entry_id, req->points);
		if (settled > 0)
			ledger_take(entry_id, lot_id, settled, NULL);
	}
	m.balance = e.balance_after;
	ledger_set_balance(&m, true, occurred_at);

	accrue_result(req, entry_id, lot_id, m.id, m.balance, res);
	ledger_idem_record(req->idem_key, "accrue", args, res);
	ledger_export(res, outer);
	lspi_finish();
}

/*
 * activate_lots
 *		Activate the pending lots returned by the last query (lot_id,
 *		remaining, store_code) of a locked member: one "activate" entry
 *		crediting their remaining points.  Returns the points activated.
 */
static int64
activate_lots(LedgerMember *m, const LedgerPolicy *lp, const char *store_code,
			  const char *reference, StringInfo lots, int *nlots_out)
{
	SPITupleTable *tuptable = SPI_tuptable;
	uint64		nlots = SPI_processed;
	uint64		i;
	int64		total = 0;
	LedgerEntry e;
	pg_uuid_t	entry_id;
	TimestampTz now = ledger_now();
	TimestampTz expires_at;
	bool		has_expiry;
	pg_uuid_t  *ids;
	int64	   *remaining;
	int64		to_settle;

	ids = palloc(sizeof(pg_uuid_t) * Max(nlots, 1));
	remaining = palloc(sizeof(int64) * Max(nlots, 1));
	for (i = 0; i < nlots; i++)
	{
		bool		isnull;

		ids[i] = *DatumGetUUIDP(SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 1, &isnull));
		remaining[i] = DatumGetInt64(SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 2, &isnull));
		total += remaining[i];
		if (store_code == NULL)
			store_code = SPI_getvalue(tuptable->vals[i], tuptable->tupdesc, 3);
	}

	memset(&e, 0, sizeof(e));
	e.member_id = m->id;
	e.store_code = store_code;
	e.kind = "activate";
	e.points = total;
	e.balance_after = m->balance + total;
	e.occurred_at = now;
	e.reference = reference;
	entry_id = ledger_insert_entry(&e);

	has_expiry = ledger_lot_expiry(lp, m, now, &expires_at);
	to_settle = ledger_settle_deficits(m, entry_id, total);
	for (i = 0; i < nlots; i++)
	{
		Datum		v[3];
		char		n[3] = {' ', ' ', has_expiry ? ' ' : 'n'};

		v[0] = UUIDPGetDatum(&ids[i]);
		v[1] = TimestampTzGetDatum(now);
		v[2] = has_expiry ? TimestampTzGetDatum(expires_at) : (Datum) 0;
		if (ledger_run(LQ_LOT_ACTIVATE, v, n, SPI_OK_UPDATE) != 1)
			elog(ERROR, "pending lot %s not activated", ledger_uuid_text(&ids[i]));
		if (to_settle > 0)
		{
			int64		s = Min(to_settle, remaining[i]);

			if (s > 0)
				ledger_take(entry_id, ids[i], s, NULL);
			to_settle -= s;
		}
		appendStringInfo(lots, "%s{\"lot_id\": \"%s\", \"points\": " INT64_FORMAT "}",
						 lots->len > 1 ? ", " : "", ledger_uuid_text(&ids[i]), remaining[i]);
	}
	m->balance += total;
	ledger_set_balance(m, false, now);
	*nlots_out = (int) nlots;
	return total;
}

/*
 * ledger_activate
 *		Activate a member's pending lots with this reference (a stay id at
 *		checkout).  store_code, if not NULL, is recorded on the entry;
 *		otherwise the first lot's store is.
 */
void
ledger_activate(pg_uuid_t member_id, const char *store_code,
				const char *reference, const char *idem_key, LedgerResult *res)
{
	MemoryContext outer = CurrentMemoryContext;
	LedgerMember m;
	LedgerPolicy lp;
	Datum		v[2];
	char	   *args;
	StringInfoData lots;
	int			nlots;
	int64		points;

	ledger_check_text(reference, "reference", 200);
	args = psprintf("member=%s store=%s reference=%s",
					ledger_uuid_text(&member_id), store_code ? store_code : "", reference);
	lspi_connect(LSPI_READ_WRITE);
	if (store_code)
		ledger_check_store(store_code);
	if (ledger_lock_member_replay(member_id, idem_key, "activate", args, &m, res))
	{
		ledger_export(res, outer);
		lspi_finish();
		return;
	}
	ledger_get_policy(ledger_now(), &lp);
	v[0] = UUIDPGetDatum(&member_id);
	v[1] = CStringGetTextDatum(reference);
	if (ledger_run(LQ_PENDING_BY_REF, v, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no pending points for reference \"%s\"", reference),
				 errdetail("Member %s has no pending lot with this reference.",
						   ledger_uuid_text(&member_id))));
	initStringInfo(&lots);
	appendStringInfoChar(&lots, '[');
	points = activate_lots(&m, &lp, store_code, reference, &lots, &nlots);
	appendStringInfoChar(&lots, ']');

	memset(res, 0, sizeof(*res));
	res->operation = "activate";
	res->has_member = true;
	res->member_id = m.id;
	res->points = points;
	res->balance = m.balance;
	res->lots_json = lots.data;
	ledger_idem_record(idem_key, "activate", args, res);
	ledger_export(res, outer);
	lspi_finish();
}

/*
 * activate_due_members
 *		For each member in the first column of tuptable (nmembers rows),
 *		lock the member, re-read its due pending lots (another session may
 *		have activated them) and activate them.  Adds to *points, *members
 *		and *lots; *last is the last member id seen.
 */
static void
activate_due_members(SPITupleTable *tuptable, uint64 nmembers, TimestampTz as_of,
					 LedgerPolicy *lp, int64 *points, int *members, int *lots,
					 pg_uuid_t *last)
{
	pg_uuid_t  *ids = palloc(sizeof(pg_uuid_t) * Max(nmembers, 1));
	Datum		v[2];
	uint64		i;

	/* copy the ids first: the statements below replace SPI_tuptable */
	for (i = 0; i < nmembers; i++)
	{
		bool		isnull;

		ids[i] = *DatumGetUUIDP(SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 1, &isnull));
	}
	for (i = 0; i < nmembers; i++)
	{
		LedgerMember m;
		StringInfoData lotlist;
		int			n;

		ledger_lock_member(ids[i], &m);
		v[0] = UUIDPGetDatum(&ids[i]);
		v[1] = TimestampTzGetDatum(as_of);
		if (ledger_run(LQ_PENDING_DUE, v, NULL, SPI_OK_SELECT) == 0)
			continue;
		initStringInfo(&lotlist);
		appendStringInfoChar(&lotlist, '[');
		*points += activate_lots(&m, lp, NULL, NULL, &lotlist, &n);
		(*members)++;
		*lots += n;
	}
	if (nmembers > 0)
		*last = ids[nmembers - 1];
}

/*
 * ledger_activate_due
 *		Batch: activate every pending lot whose activate_at has passed at
 *		as_of, member by member.  Returns the total points and, as lots,
 *		{"members": n, "lots": n}.
 */
void
ledger_activate_due(TimestampTz as_of, const char *idem_key, LedgerResult *res)
{
	MemoryContext outer = CurrentMemoryContext;
	LedgerPolicy lp;
	Datum		v[2];
	char	   *args;
	uint64		nmembers;
	int64		total = 0;
	int			members_done = 0;
	int			lots_done = 0;
	pg_uuid_t	last;

	ledger_check_as_of(as_of);
	args = psprintf("as_of=%s", ledger_ts_text(as_of));
	lspi_connect(LSPI_READ_WRITE);
	if (ledger_idem_replay(idem_key, "activate_due", args, res))
	{
		ledger_export(res, outer);
		lspi_finish();
		return;
	}
	ledger_get_policy(ledger_now(), &lp);
	v[0] = TimestampTzGetDatum(as_of);
	nmembers = ledger_run(LQ_PENDING_DUE_MEMBERS, v, NULL, SPI_OK_SELECT);
	activate_due_members(SPI_tuptable, nmembers, as_of, &lp, &total,
						 &members_done, &lots_done, &last);

	memset(res, 0, sizeof(*res));
	res->operation = "activate_due";
	res->points = total;
	res->lots_json = psprintf("{\"members\": %d, \"lots\": %d}", members_done, lots_done);
	ledger_idem_record(idem_key, "activate_due", args, res);
	ledger_export(res, outer);
	lspi_finish();
}

/*
 * ledger_activate_due_count
 *		How many members have pending points due at as_of: the total a job
 *		of committed batches starts with.
 */
int64
ledger_activate_due_count(TimestampTz as_of)
{
	Datum		v[1];
	bool		isnull;
	int64		count;

	ledger_check_as_of(as_of);
	lspi_connect(LSPI_READ_WRITE);
	v[0] = TimestampTzGetDatum(as_of);
	lspi_exec("SELECT pg_catalog.count(DISTINCT member_id) FROM loyalty.point_lot "
							  "WHERE state = 'pending' AND activate_at <= $1",
							  1, (Oid[]) {TIMESTAMPTZOID}, v, NULL, true, 0, SPI_OK_SELECT);
	count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	lspi_finish();
	return count;
}

/*
 * ledger_activate_due_batch
 *		One batch of the activation job: the next batch_size members after
 *		"after" (in member_id order) with pending lots due at as_of, each
 *		locked and re-read as in ledger_activate_due.  The caller commits.
 */
void
ledger_activate_due_batch(TimestampTz as_of, pg_uuid_t after, int batch_size,
						  JobBatch *out)
{
	LedgerPolicy lp;
	Datum		v[3];
	uint64		nmembers;
	int64		points = 0;
	int			lots = 0;

	ledger_check_as_of(as_of);
	memset(out, 0, sizeof(*out));
	lspi_connect(LSPI_READ_WRITE);
	ledger_get_policy(ledger_now(), &lp);
	v[0] = TimestampTzGetDatum(as_of);
	v[1] = UUIDPGetDatum(&after);
	v[2] = Int32GetDatum(batch_size);
	lspi_exec("SELECT DISTINCT member_id FROM loyalty.point_lot "
							  "WHERE state = 'pending' AND activate_at <= $1 AND member_id > $2 "
							  "ORDER BY member_id LIMIT $3",
							  3, (Oid[]) {TIMESTAMPTZOID, UUIDOID, INT4OID}, v, NULL,
							  false, 0, SPI_OK_SELECT);
	nmembers = SPI_processed;
	activate_due_members(SPI_tuptable, nmembers, as_of, &lp, &points,
						 &out->changed, &lots, &out->last_key);
	out->processed = (int) nmembers;
	lspi_finish();
}
