/*-------------------------------------------------------------------------
 *
 * ledger_core.c
 *	  What every ledger operation shares: prepared statements, argument
 *	  checks, the member lock, idempotency records, and writing entries,
 *	  lots and draws.
 *
 * Concurrency: every operation on a member starts by locking the member's
 * row of loyalty.point_balance (FOR NO KEY UPDATE), so operations on one
 * member run one after another whatever store they come from.  In READ
 * COMMITTED every later statement takes a fresh snapshot and sees what the
 * previous holder of the lock committed; in REPEATABLE READ and
 * SERIALIZABLE a conflicting operation fails with a serialization error
 * and can be retried with the same idempotency key.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "args.h"
#include "cache.h"
#include "ledger_int.h"
#include "spi.h"

/* the ledger's statements, by LedgerQuery (ledger_int.h); see spi.h */
static const LspiQuery ledger_queries[LEDGER_NUM_QUERIES] = {
	[LQ_MEMBER] = {
		"SELECT m.status, m.tier, coalesce(m.time_zone, s.time_zone), m.home_store "
		"FROM loyalty.member m JOIN loyalty.store s ON s.store_code = m.home_store "
		"WHERE m.member_id = $1",
		1, {UUIDOID}
	},
	/*
	 * the member and, by the call's idempotency key ($2, may be NULL), the
	 * first call's result: one statement after the lock instead of two
	 */
	[LQ_MEMBER_REQUEST] = {
		"SELECT m.status, m.tier, coalesce(m.time_zone, s.time_zone), m.home_store, "
		"r.operation, r.args, r.entry_id, r.lot_id, r.member_id, r.points, r.balance, "
		"r.cash_amount, r.lots::text "
		"FROM loyalty.member m JOIN loyalty.store s ON s.store_code = m.home_store "
		"LEFT JOIN loyalty.ledger_request r ON r.idem_key = $2 "
		"WHERE m.member_id = $1",
		2, {UUIDOID, TEXTOID}
	},
	[LQ_LOCK] = {
		"SELECT balance FROM loyalty.point_balance WHERE member_id = $1 "
		"FOR NO KEY UPDATE",
		1, {UUIDOID}
	},
	[LQ_BALANCE_INSERT] = {
		"INSERT INTO loyalty.point_balance (member_id) VALUES ($1) "
		"ON CONFLICT DO NOTHING",
		1, {UUIDOID}
	},
	[LQ_BALANCE_UPDATE] = {
		"UPDATE loyalty.point_balance SET balance = $2, "
		"last_activity_at = CASE WHEN $3 THEN GREATEST(last_activity_at, $4) "
		"ELSE coalesce(last_activity_at, $4) END, updated_at = pg_catalog.now() "
		"WHERE member_id = $1",
		4, {UUIDOID, INT8OID, BOOLOID, TIMESTAMPTZOID}
	},
	[LQ_STORE] = {
		"SELECT 1 FROM loyalty.store WHERE store_code = $1",
		1, {TEXTOID}
	},
	[LQ_REQUEST_GET] = {
		"SELECT operation, args, entry_id, lot_id, member_id, points, balance, "
		"cash_amount, lots::text FROM loyalty.ledger_request WHERE idem_key = $1",
		1, {TEXTOID}
	},
	[LQ_REQUEST_INSERT] = {
		"INSERT INTO loyalty.ledger_request (idem_key, operation, args, entry_id, "
		"lot_id, member_id, points, balance, cash_amount, lots) "
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)",
		10, {TEXTOID, TEXTOID, TEXTOID, UUIDOID, UUIDOID, UUIDOID, INT8OID,
		INT8OID, NUMERICOID, TEXTOID}
	},
	[LQ_ENTRY_INSERT] = {
		"INSERT INTO loyalty.point_entry (member_id, store_code, kind, points, "
		"pending_points, balance_after, occurred_at, reference, related_entry, "
		"cash_amount, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
		"RETURNING entry_id",
		11, {UUIDOID, TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID,
		TIMESTAMPTZOID, TEXTOID, UUIDOID, NUMERICOID, TEXTOID}
	},
	[LQ_LOT_INSERT] = {
		"INSERT INTO loyalty.point_lot (member_id, store_code, source, rule, "
		"reference, points, remaining, state, earned_at, activate_at, "
		"active_from, expires_at, entry_id) "
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
		"RETURNING lot_id",
		13, {UUIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID,
		TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
		TIMESTAMPTZOID, UUIDOID}
	},
	[LQ_DRAW_INSERT] = {
		"INSERT INTO loyalty.point_draw (entry_id, lot_id, points) "
		"VALUES ($1, $2, $3)",
		3, {UUIDOID, UUIDOID, INT8OID}
	},
	[LQ_LOT_TAKE] = {
		"UPDATE loyalty.point_lot SET remaining = remaining - $2, "
		"state = coalesce($3, state) WHERE lot_id = $1",
		3, {UUIDOID, INT8OID, TEXTOID}
	},
	/*
	 * the draws of one debit on its lots, in one statement: the draw rows,
	 * and each lot's remaining lowered by what was drawn from it
	 */
	[LQ_DRAW_BATCH] = {
		"WITH d AS (INSERT INTO loyalty.point_draw (entry_id, lot_id, points) "
		"SELECT $1, u.lot_id, u.points "
		"FROM ROWS FROM (pg_catalog.unnest($2::uuid[]), pg_catalog.unnest($3::bigint[])) "
		"AS u (lot_id, points) "
		"RETURNING lot_id, points) "
		"UPDATE loyalty.point_lot l SET remaining = l.remaining - d.points "
		"FROM d WHERE l.lot_id = d.lot_id",
		3, {UUIDOID, UUIDARRAYOID, INT8ARRAYOID}
	},
	/*
	 * an accrual of a member without deficit lots, in one statement: its
	 * entry, its lot, the balance and the idempotency record (issue 19:
	 * one executor start-up instead of four).  The ids come from the
	 * caller (ledger_new_id), so no write waits for another's RETURNING.
	 */
	[LQ_ACCRUE] = {
		"WITH e AS (INSERT INTO loyalty.point_entry (entry_id, member_id, store_code, "
		"kind, points, pending_points, balance_after, occurred_at, reference, note) "
		"VALUES ($1, $2, $3, 'accrue', $4, $5, $6, $7, $8, $9)), "
		"l AS (INSERT INTO loyalty.point_lot (lot_id, member_id, store_code, source, "
		"rule, reference, points, remaining, state, earned_at, activate_at, "
		"active_from, expires_at, entry_id) "
		"VALUES ($10, $2, $3, $11, $9, $8, $12, $12, $13, $7, $14, $15, $16, $1)), "
		"r AS (INSERT INTO loyalty.ledger_request (idem_key, operation, args, entry_id, "
		"lot_id, member_id, points, balance, lots) "
		"SELECT $17, 'accrue', $18, $1, $10, $2, $12, $6, $19::jsonb WHERE $17 IS NOT NULL) "
		"UPDATE loyalty.point_balance SET balance = $6, "
		"last_activity_at = GREATEST(last_activity_at, $7), updated_at = pg_catalog.now() "
		"WHERE member_id = $2",
		19, {UUIDOID, UUIDOID, TEXTOID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID,
			TEXTOID, TEXTOID, UUIDOID, TEXTOID, INT8OID, TEXTOID, TIMESTAMPTZOID,
		TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID}
	},
	[LQ_LOTS_SOONEST] = {
		"SELECT lot_id, remaining, expires_at FROM loyalty.point_lot "
		"WHERE member_id = $1 AND state = 'active' AND spendable "
		"ORDER BY expires_at NULLS LAST, active_from, lot_id",
		1, {UUIDOID}, CURSOR_OPT_FAST_PLAN
	},
	[LQ_LOTS_OLDEST] = {
		"SELECT lot_id, remaining, expires_at FROM loyalty.point_lot "
		"WHERE member_id = $1 AND state = 'active' AND spendable "
		"ORDER BY active_from, lot_id",
		1, {UUIDOID}, CURSOR_OPT_FAST_PLAN
	},
	[LQ_DEFICITS] = {
		"SELECT lot_id, remaining FROM loyalty.point_lot "
		"WHERE member_id = $1 AND state = 'active' AND NOT spendable AND remaining < 0 "
		"ORDER BY active_from, lot_id",
		1, {UUIDOID}
	},
	[LQ_PENDING_BY_REF] = {
		"SELECT lot_id, remaining, store_code FROM loyalty.point_lot "
		"WHERE member_id = $1 AND reference = $2 AND state = 'pending' "
		"ORDER BY earned_at, lot_id",
		2, {UUIDOID, TEXTOID}
	},
	[LQ_PENDING_DUE_MEMBERS] = {
		"SELECT DISTINCT member_id FROM loyalty.point_lot "
		"WHERE state = 'pending' AND activate_at <= $1 ORDER BY member_id",
		1, {TIMESTAMPTZOID}
	},
	[LQ_PENDING_DUE] = {
		"SELECT lot_id, remaining, store_code FROM loyalty.point_lot "
		"WHERE member_id = $1 AND state = 'pending' AND activate_at <= $2 "
		"ORDER BY earned_at, lot_id",
		2, {UUIDOID, TIMESTAMPTZOID}
	},
	[LQ_LOT_ACTIVATE] = {
		"UPDATE loyalty.point_lot SET state = 'active', active_from = $2, "
		"expires_at = $3 WHERE lot_id = $1 AND state = 'pending'",
		3, {UUIDOID, TIMESTAMPTZOID, TIMESTAMPTZOID}
	},
};

static SPIPlanPtr ledger_plans[LEDGER_NUM_QUERIES];
static const LspiQueryTable ledger_table =
	LSPI_QUERY_TABLE("ledger", ledger_queries, ledger_plans);

/*
 * ledger_run
 *		Execute one of the ledger's statements with parameters; error
 *		unless SPI returns "expected".  Returns the number of rows
 *		processed.  The ledger only runs in read-write sessions: every
 *		statement sees the operation's earlier writes.
 */
uint64
ledger_run(LedgerQuery q, Datum *values, const char *nulls, int expected)
{
	return lspi_query(&ledger_table, q, values, nulls, false, 0, expected);
}

/*
 * ledger_now
 *		The time ledger operations record: the transaction's start.
 */
TimestampTz
ledger_now(void)
{
	return GetCurrentTransactionStartTimestamp();
}

/*
 * ledger_get_policy
 *		Copy the figures the ledger needs from the policy in effect at "at"
 *		(the cached policy may be replaced by the next lookup).
 */
void
ledger_get_policy(TimestampTz at, LedgerPolicy *lp)
{
	const LoyaltyPolicy *p = loyalty_policy_at(at);
	int			i;

	lp->currency_scale = p->currency_scale;
	lp->expiry_mode = p->expiry_mode;
	lp->inactivity_months = p->inactivity_months;
	lp->lot_lifetime_months = p->lot_lifetime_months;
	lp->notice_days = p->notice_days;
	lp->rate_points = p->rate_points;
	lp->rate_amount = p->rate_amount;
	lp->minimum_points = p->minimum_points;
	lp->step_points = p->step_points;
	lp->redemption_order = p->redemption_order;
	lp->reversal_mode = p->reversal_mode;
	lp->transfer_enabled = p->transfer_enabled;
	lp->transfer_cap_out = p->transfer_yearly_cap_out;
	lp->transfer_cap_in = p->transfer_yearly_cap_in;
	lp->nexempt = 0;
	if (p->expiry_exempt_rank >= 0)
		for (i = 0; i < p->ntiers; i++)
			if (p->tiers[i].rank >= p->tiers[p->expiry_exempt_rank].rank)
				strlcpy(lp->exempt[lp->nexempt++], p->tiers[i].code, LOYALTY_CODE_LEN);
}

/*
 * ledger_check_points
 *		Points moved by one call: the check of args.h (what is always
 *		"points" since 1.2; kept for the callers' readability).
 */
void
ledger_check_points(int64 points, const char *what)
{
	loyalty_check_points(points);
}

/*
 * ledger_check_text
 *		An optional text argument is at most maxlen bytes and not empty.
 */
void
ledger_check_text(const char *s, const char *what, int maxlen)
{
	if (s == NULL)
		return;
	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	if (strlen(s) > maxlen)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is longer than %d bytes", what, maxlen)));
}

/*
 * The stores known to exist, cached per backend (issue 19: the store check
 * was a statement on every ledger call).  Only stores found are cached; a
 * statement trigger on loyalty.store (10_ledger.sql) sends a relcache
 * invalidation on every change, and the callback drops the whole set.
 * known_stores_gen counts invalidations, so that a lookup an invalidation
 * overtook while it ran does not refill the set from an older snapshot.
 */
static HTAB *known_stores = NULL;
static Oid	store_relid = InvalidOid;
static uint64 known_stores_gen = 0;
static bool store_callback_registered = false;

/*
 * store_relcache_cb
 *		Drop the known stores when loyalty.store changes (or every relcache
 *		entry is reset).
 */
static void
store_relcache_cb(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == store_relid)
	{
		known_stores_gen++;
		if (known_stores != NULL)
		{
			hash_destroy(known_stores);
			known_stores = NULL;
		}
		if (relid == InvalidOid)
			store_relid = InvalidOid;
	}
}

/*
 * ledger_check_store
 *		Error unless the store exists (the backend's set of known stores,
 *		else a lookup).
 */
void
ledger_check_store(const char *store_code)
{
	Datum		v[1];
	uint64		gen;
	bool		cacheable = strlen(store_code) < LOYALTY_CODE_LEN;

	if (!store_callback_registered)
	{
		CacheRegisterRelcacheCallback(store_relcache_cb, (Datum) 0);
		store_callback_registered = true;
	}
	if (!OidIsValid(store_relid))
	{
		store_relid = loyalty_relid("store");
		if (known_stores != NULL)
		{
			hash_destroy(known_stores);
			known_stores = NULL;
		}
	}
	if (cacheable && known_stores != NULL &&
		hash_search(known_stores, store_code, HASH_FIND, NULL) != NULL)
		return;

	gen = known_stores_gen;
	v[0] = CStringGetTextDatum(store_code);
	if (ledger_run(LQ_STORE, v, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" does not exist", store_code)));
	if (!cacheable || gen != known_stores_gen || !OidIsValid(store_relid))
		return;
	if (known_stores == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = LOYALTY_CODE_LEN;
		ctl.entrysize = LOYALTY_CODE_LEN;
		known_stores = hash_create("loyalty known stores", 64, &ctl,
								   HASH_ELEM | HASH_STRINGS);
	}
	(void) hash_search(known_stores, store_code, HASH_ENTER, NULL);
}

/*
 * lock_and_read
 *		ledger_lock_member's work; leaves the member's row (LQ_MEMBER_REQUEST,
 *		with the request stored under key if any) as SPI_tuptable's first.
 */
static void
lock_and_read(pg_uuid_t id, const char *key, LedgerMember *m)
{
	Datum		v[2];
	char		n[2] = {' ', key ? ' ' : 'n'};
	bool		isnull;
	int64		balance;
	char	   *status;

	v[0] = UUIDPGetDatum(&id);
	/*
	 * Lock first, then read the member: a status change or a merge that
	 * committed while we waited for the lock is seen (READ COMMITTED takes
	 * a fresh snapshot per statement), and so is the idempotency record of
	 * a call with the same key that held the lock before us.
	 */
	if (ledger_run(LQ_LOCK, v, NULL, SPI_OK_SELECT) == 0)
	{
		if (ledger_run(LQ_MEMBER, v, NULL, SPI_OK_SELECT) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("member %s does not exist", ledger_uuid_text(&id))));
		ledger_run(LQ_BALANCE_INSERT, v, NULL, SPI_OK_INSERT);
		if (ledger_run(LQ_LOCK, v, NULL, SPI_OK_SELECT) == 0)
			elog(ERROR, "balance row of member %s vanished", ledger_uuid_text(&id));
	}
	balance = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	v[1] = key ? CStringGetTextDatum(key) : (Datum) 0;
	if (ledger_run(LQ_MEMBER_REQUEST, v, n, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("member %s does not exist", ledger_uuid_text(&id))));
	status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (strcmp(status, "erased") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("member %s has been erased", ledger_uuid_text(&id)),
				 errdetail("An erased member's points can no longer change.")));
	m->id = id;
	strlcpy(m->status, status, sizeof(m->status));
	strlcpy(m->tier, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2),
			sizeof(m->tier));
	strlcpy(m->time_zone, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3),
			sizeof(m->time_zone));
	strlcpy(m->home_store, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4),
			sizeof(m->home_store));
	m->balance = balance;
}

/*
 * ledger_lock_member
 *		Check that the member exists and is not erased, create the balance
 *		row on first use, and lock it for the rest of the transaction.
 */
void
ledger_lock_member(pg_uuid_t id, LedgerMember *m)
{
	lock_and_read(id, NULL, m);
}

/*
 * ledger_require_status
 *		Error unless the member's status allows the operation (docs/crm.md):
 *		a closed member earns nothing, a suspended or closed one redeems
 *		nothing.  Called after the idempotency replay, so that a retry of an
 *		earlier call still returns its first answer.
 */
void
ledger_require_status(const LedgerMember *m, bool spending)
{
	if (strcmp(m->status, "closed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("member %s is closed", ledger_uuid_text(&m->id)),
				 errdetail("A closed account earns and redeems nothing."),
				 errhint("A merged account's points are with the member it was merged into.")));
	if (spending && strcmp(m->status, "suspended") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("member %s is suspended", ledger_uuid_text(&m->id)),
				 errdetail("A suspended member earns points but redeems nothing.")));
}

/*
 * ledger_set_balance
 *		Store m->balance; touch_clock moves the inactivity clock forward to
 *		activity_at (earning and redeeming do, transfers and expiry do not,
 *		except that a member's first points start the clock).
 */
void
ledger_set_balance(LedgerMember *m, bool touch_clock, TimestampTz activity_at)
{
	Datum		v[4];

	v[0] = UUIDPGetDatum(&m->id);
	v[1] = Int64GetDatum(m->balance);
	v[2] = BoolGetDatum(touch_clock);
	v[3] = TimestampTzGetDatum(activity_at);
	if (ledger_run(LQ_BALANCE_UPDATE, v, NULL, SPI_OK_UPDATE) != 1)
		elog(ERROR, "balance row of member %s not updated", ledger_uuid_text(&m->id));
}

/*
 * ledger_insufficient
 *		The error for a debit larger than the balance.
 */
void
ledger_insufficient(const LedgerMember *m, int64 wanted)
{
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("insufficient points"),
			 errdetail("Member %s has " INT64_FORMAT " active points; " INT64_FORMAT " are needed.",
					   ledger_uuid_text(&m->id), m->balance, wanted),
			 errhint("Pending and expired points cannot be used.")));
}

/*
 * idem_replay_row
 *		The replay of ledger_idem_replay from a row whose columns off+1 to
 *		off+9 are ledger_request's operation, args, entry_id, lot_id,
 *		member_id, points, balance, cash_amount and lots (all NULL: the key
 *		is new).
 */
static bool
idem_replay_row(HeapTuple tup, TupleDesc desc, int off, const char *key,
				const char *operation, const char *args, LedgerResult *res)
{
	bool		isnull;
	Datum		d;
	char	   *op;
	char	   *stored;

	op = SPI_getvalue(tup, desc, off + 1);
	if (op == NULL)
		return false;
	stored = SPI_getvalue(tup, desc, off + 2);
	if (strcmp(op, operation) != 0 || strcmp(stored, args) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("idempotency key \"%s\" was already used with other arguments", key),
				 /* never the first call's arguments: it may be another store's */
				 errdetail("This call is %s(%s).", operation, args),
				 errhint("Use a new key for a new operation.")));

	memset(res, 0, sizeof(*res));
	res->operation = operation;
	d = SPI_getbinval(tup, desc, off + 3, &isnull);
	if ((res->has_entry = !isnull))
		res->entry_id = *DatumGetUUIDP(d);
	d = SPI_getbinval(tup, desc, off + 4, &isnull);
	if ((res->has_lot = !isnull))
		res->lot_id = *DatumGetUUIDP(d);
	d = SPI_getbinval(tup, desc, off + 5, &isnull);
	if ((res->has_member = !isnull))
		res->member_id = *DatumGetUUIDP(d);
	d = SPI_getbinval(tup, desc, off + 6, &isnull);
	res->points = isnull ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(tup, desc, off + 7, &isnull);
	res->balance = isnull ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(tup, desc, off + 8, &isnull);
	if ((res->has_cash = !isnull))
	{
		/* stored with the currency's scale; recover minor units */
		char	   *s = SPI_getvalue(tup, desc, off + 8);
		char	   *dot = strchr(s, '.');
		int			scale = dot ? (int) strlen(dot + 1) : 0;
		StringInfoData digits;

		initStringInfo(&digits);
		for (; *s; s++)
			if (*s != '.')
				appendStringInfoChar(&digits, *s);
		res->cash_minor = pg_strtoint64(digits.data);
		res->cash_scale = scale;
	}
	res->lots_json = SPI_getvalue(tup, desc, off + 9);
	res->replayed = true;
	return true;
}

/*
 * ledger_idem_replay
 *		If key was used before, fill res with the first call's result and
 *		return true; error if it was used with other arguments.
 */
bool
ledger_idem_replay(const char *key, const char *operation, const char *args,
				   LedgerResult *res)
{
	Datum		v[1];

	if (key == NULL)
		return false;
	v[0] = CStringGetTextDatum(key);
	if (ledger_run(LQ_REQUEST_GET, v, NULL, SPI_OK_SELECT) == 0)
		return false;
	return idem_replay_row(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 0,
						   key, operation, args, res);
}

/*
 * ledger_lock_member_replay
 *		ledger_lock_member followed by ledger_idem_replay, with the member
 *		and the key's record read by one statement after the lock (the
 *		same checks in the same order).
 */
bool
ledger_lock_member_replay(pg_uuid_t id, const char *key, const char *operation,
						  const char *args, LedgerMember *m, LedgerResult *res)
{
	lock_and_read(id, key, m);
	if (key == NULL)
		return false;
	return idem_replay_row(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4,
						   key, operation, args, res);
}

/*
 * ledger_idem_record
 *		Store the result of a call under its key (no-op without a key).
 *		The primary key makes a concurrent second use of the key wait for
 *		the first transaction and then fail.
 */
void
ledger_idem_record(const char *key, const char *operation, const char *args,
				   const LedgerResult *res)
{
	Datum		v[10];
	char		n[10];

	if (key == NULL)
		return;
	memset(n, ' ', sizeof(n));
	v[0] = CStringGetTextDatum(key);
	v[1] = CStringGetTextDatum(operation);
	v[2] = CStringGetTextDatum(args);
	v[3] = UUIDPGetDatum(&res->entry_id);
	n[3] = res->has_entry ? ' ' : 'n';
	v[4] = UUIDPGetDatum(&res->lot_id);
	n[4] = res->has_lot ? ' ' : 'n';
	v[5] = UUIDPGetDatum(&res->member_id);
	n[5] = res->has_member ? ' ' : 'n';
	v[6] = Int64GetDatum(res->points);
	v[7] = Int64GetDatum(res->balance);
	if (res->has_cash)
		v[8] = NumericGetDatum(int64_div_fast_to_numeric(res->cash_minor, res->cash_scale));
	else
	{
		v[8] = (Datum) 0;
		n[8] = 'n';
	}
	if (res->lots_json)
		v[9] = CStringGetTextDatum(res->lots_json);
	else
	{
		v[9] = (Datum) 0;
		n[9] = 'n';
	}
	ledger_run(LQ_REQUEST_INSERT, v, n, SPI_OK_INSERT);
}

/*
 * ledger_export
 *		Copy what res points to into "outer" (the caller's context), before
 *		SPI_finish releases the memory it was built in.
 */
void
ledger_export(LedgerResult *res, MemoryContext outer)
{
	if (res->lots_json)
		res->lots_json = MemoryContextStrdup(outer, res->lots_json);
}

/*
 * ledger_new_id
 *		A new time-ordered id (UUID version 7: milliseconds since 1970 in
 *		the first 48 bits, then random bits) for an entry or a lot written
 *		by an accrual: appended rows land on the right-hand leaf of their
 *		primary key instead of a random one (fewer pages dirtied, split
 *		and logged in full after a checkpoint as the ledger grows).
 */
pg_uuid_t
ledger_new_id(void)
{
	pg_uuid_t	u;
	uint64		ms;
	int			i;

	if (!pg_strong_random(u.data, UUID_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values")));
	ms = (uint64) (GetCurrentTimestamp() / 1000) +
		(uint64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
	for (i = 0; i < 6; i++)
		u.data[i] = (unsigned char) (ms >> (40 - 8 * i));
	u.data[6] = (u.data[6] & 0x0f) | 0x70;	/* version 7 */
	u.data[8] = (u.data[8] & 0x3f) | 0x80;	/* variant RFC 4122 */
	return u;
}

/*
 * ledger_insert_entry
 *		Append one entry; returns its id.
 */
pg_uuid_t
ledger_insert_entry(const LedgerEntry *e)
{
	Datum		v[11];
	char		n[11];
	bool		isnull;

	memset(n, ' ', sizeof(n));
	v[0] = UUIDPGetDatum(&e->member_id);
	v[1] = CStringGetTextDatum(e->store_code);
	v[2] = CStringGetTextDatum(e->kind);
	v[3] = Int64GetDatum(e->points);
	v[4] = Int64GetDatum(e->pending_points);
	v[5] = Int64GetDatum(e->balance_after);
	v[6] = TimestampTzGetDatum(e->occurred_at);
	v[7] = e->reference ? CStringGetTextDatum(e->reference) : (Datum) 0;
	n[7] = e->reference ? ' ' : 'n';
	v[8] = e->related_entry ? UUIDPGetDatum(e->related_entry) : (Datum) 0;
	n[8] = e->related_entry ? ' ' : 'n';
	if (e->has_cash)
		v[9] = NumericGetDatum(int64_div_fast_to_numeric(e->cash_minor, e->cash_scale));
	else
	{
		v[9] = (Datum) 0;
		n[9] = 'n';
	}
	v[10] = e->note ? CStringGetTextDatum(e->note) : (Datum) 0;
	n[10] = e->note ? ' ' : 'n';
	ledger_run(LQ_ENTRY_INSERT, v, n, SPI_OK_INSERT_RETURNING);
	return *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * ledger_insert_lot
 *		Create one lot; returns its id.
 */
pg_uuid_t
ledger_insert_lot(pg_uuid_t member_id, const char *store_code,
				  const char *source, const char *rule, const char *reference,
				  int64 points, int64 remaining, const char *state,
				  TimestampTz earned_at, const TimestampTz *activate_at,
				  const TimestampTz *active_from, const TimestampTz *expires_at,
				  pg_uuid_t entry_id)
{
	Datum		v[13];
	char		n[13];
	bool		isnull;

	memset(n, ' ', sizeof(n));
	v[0] = UUIDPGetDatum(&member_id);
	v[1] = CStringGetTextDatum(store_code);
	v[2] = CStringGetTextDatum(source);
	v[3] = rule ? CStringGetTextDatum(rule) : (Datum) 0;
	n[3] = rule ? ' ' : 'n';
	v[4] = reference ? CStringGetTextDatum(reference) : (Datum) 0;
	n[4] = reference ? ' ' : 'n';
	v[5] = Int64GetDatum(points);
	v[6] = Int64GetDatum(remaining);
	v[7] = CStringGetTextDatum(state);
	v[8] = TimestampTzGetDatum(earned_at);
	v[9] = activate_at ? TimestampTzGetDatum(*activate_at) : (Datum) 0;
	n[9] = activate_at ? ' ' : 'n';
	v[10] = active_from ? TimestampTzGetDatum(*active_from) : (Datum) 0;
	n[10] = active_from ? ' ' : 'n';
	v[11] = expires_at ? TimestampTzGetDatum(*expires_at) : (Datum) 0;
	n[11] = expires_at ? ' ' : 'n';
	v[12] = UUIDPGetDatum(&entry_id);
	ledger_run(LQ_LOT_INSERT, v, n, SPI_OK_INSERT_RETURNING);
	return *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * ledger_take
 *		Record that entry_id drew points from lot_id (negative: gave back),
 *		and lower the lot's remaining; new_state, if not NULL, replaces the
 *		lot's state.
 */
void
ledger_take(pg_uuid_t entry_id, pg_uuid_t lot_id, int64 points,
			const char *new_state)
{
	Datum		v[3];
	char		n[3] = {' ', ' ', ' '};

	v[0] = UUIDPGetDatum(&entry_id);
	v[1] = UUIDPGetDatum(&lot_id);
	v[2] = Int64GetDatum(points);
	ledger_run(LQ_DRAW_INSERT, v, NULL, SPI_OK_INSERT);
	v[0] = UUIDPGetDatum(&lot_id);
	v[1] = Int64GetDatum(points);
	v[2] = new_state ? CStringGetTextDatum(new_state) : (Datum) 0;
	n[2] = new_state ? ' ' : 'n';
	if (ledger_run(LQ_LOT_TAKE, v, n, SPI_OK_UPDATE) != 1)
		elog(ERROR, "lot %s not updated", ledger_uuid_text(&lot_id));
}

/*
 * ledger_lot_expiry
 *		Under the lot_lifetime policy, the end of the month (in the
 *		member's time zone) lot_lifetime_months after active_from; false
 *		(no expiry date) under the other policies.
 *
 * The SQL expression
 *	 (date_trunc('month', active_from AT TIME ZONE tz)
 *	  + make_interval(months => lifetime + 1)) AT TIME ZONE tz
 * evaluated by calling the same functions directly: one SPI statement less
 * per accrual (this ran once per lot, on the accrual hot path).
 */
bool
ledger_lot_expiry(const LedgerPolicy *lp, const LedgerMember *m,
				  TimestampTz active_from, TimestampTz *expires_at)
{
	Datum		tz;
	Datum		local;
	Interval	months;

	if (lp->expiry_mode != EXPIRY_LOT_LIFETIME)
		return false;
	tz = CStringGetTextDatum(m->time_zone);
	local = DirectFunctionCall2(timestamptz_zone, tz, TimestampTzGetDatum(active_from));
	local = DirectFunctionCall2(timestamp_trunc, CStringGetTextDatum("month"), local);
	months.time = 0;
	months.day = 0;
	months.month = lp->lot_lifetime_months + 1;
	local = DirectFunctionCall2(timestamp_pl_interval, local, IntervalPGetDatum(&months));
	*expires_at = DatumGetTimestampTz(DirectFunctionCall2(timestamp_zone, tz, local));
	return true;
}

/*
 * ledger_draw
 *		Take "points" from the member's active lots in the policy's order
 *		(soonest expiring or oldest first) for entry_id.  The caller has
 *		locked the member and checked the balance.  Returns the number of
 *		lots drawn on and, in *drawn, which and how much.
 */
int
ledger_draw(const LedgerMember *m, const LedgerPolicy *lp, pg_uuid_t entry_id,
			int64 points, LedgerDrawn **drawn)
{
	Datum		v[1];
	int			n = 0;
	int			cap = 8;
	int			i;
	int64		left = points;
	LedgerDrawn *out = palloc(sizeof(LedgerDrawn) * cap);
	LedgerQuery q = lp->redemption_order == REDEEM_OLDEST_FIRST ?
		LQ_LOTS_OLDEST : LQ_LOTS_SOONEST;
	Portal		portal;

	/* read lots in order, a few at a time, until the points are covered */
	v[0] = UUIDPGetDatum(&m->id);
	portal = SPI_cursor_open(NULL, lspi_query_plan(&ledger_table, q), v, NULL, false);
	while (left > 0)
	{
		uint64		k;

		SPI_cursor_fetch(portal, true, 16);
		if (SPI_processed == 0)
			break;
		for (k = 0; k < SPI_processed && left > 0; k++)
		{
			HeapTuple	tup = SPI_tuptable->vals[k];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			int64		remaining;

			if (n == cap)
			{
				cap *= 2;
				out = repalloc(out, sizeof(LedgerDrawn) * cap);
			}
			out[n].lot_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
			remaining = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
			out[n].expires_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
			out[n].has_expires = !isnull;
			out[n].points = Min(remaining, left);
			left -= out[n].points;
			n++;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	if (left > 0)
		elog(ERROR, "active lots of member %s hold less than the stored balance",
			 ledger_uuid_text(&m->id));
	if (n > 0)
	{
		Datum	   *ids = palloc(sizeof(Datum) * n);
		Datum	   *points_drawn = palloc(sizeof(Datum) * n);
		Datum		args[3];

		for (i = 0; i < n; i++)
		{
			ids[i] = UUIDPGetDatum(&out[i].lot_id);
			points_drawn[i] = Int64GetDatum(out[i].points);
		}
		args[0] = UUIDPGetDatum(&entry_id);
		args[1] = PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false,
												  TYPALIGN_CHAR));
		args[2] = PointerGetDatum(construct_array(points_drawn, n, INT8OID, sizeof(int64),
												  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (ledger_run(LQ_DRAW_BATCH, args, NULL, SPI_OK_UPDATE) != (uint64) n)
			elog(ERROR, "lots of member %s not updated", ledger_uuid_text(&m->id));
	}
	*drawn = out;
	return n;
}

/*
 * ledger_lots_json
 *		[{"lot_id": "...", "points": n}, ...] for the lots drawn on.
 */
void
ledger_lots_json(StringInfo buf, const LedgerDrawn *drawn, int n)
{
	int			i;

	appendStringInfoChar(buf, '[');
	for (i = 0; i < n; i++)
		appendStringInfo(buf, "%s{\"lot_id\": \"%s\", \"points\": " INT64_FORMAT "}",
						 i > 0 ? ", " : "", ledger_uuid_text(&drawn[i].lot_id),
						 drawn[i].points);
	appendStringInfoChar(buf, ']');
}

/*
 * ledger_uuid_text
 *		A uuid as text.
 */
char *
ledger_uuid_text(const pg_uuid_t *u)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(u)));
}

/*
 * ledger_ts_text
 *		A timestamptz as text, for idempotency argument strings.
 */
char *
ledger_ts_text(TimestampTz t)
{
	return psprintf(INT64_FORMAT, (int64) t);
}

/*
 * ledger_balance
 *		The stored balance of a member (0 if the member never had points).
 */
int64
ledger_balance(pg_uuid_t member_id)
{
	Datum		v[1];
	int64		balance = 0;
	bool		isnull;

	lspi_connect(LSPI_READ_WRITE);
	v[0] = UUIDPGetDatum(&member_id);
	lspi_exec("SELECT balance FROM loyalty.point_balance WHERE member_id = $1",
							  1, (Oid[]) {UUIDOID}, v, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 1)
		balance = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull));
	lspi_finish();
	return balance;
}

/*
 * ledger_settle_deficits
 *		A credit of "points" first pays back deficit lots (negative
 *		remaining, left by reversals under the allow_negative policy).
 *		Deficit lots exist only while the balance is negative.  Records a
 *		negative draw on each deficit lot for entry_id and returns the
 *		points used; the caller draws the same amount from the new lot.
 */
int64
ledger_settle_deficits(LedgerMember *m, pg_uuid_t entry_id, int64 points)
{
	Datum		v[1];
	uint64		nlots;
	uint64		i;
	int64		settled = 0;
	SPITupleTable *tuptable;

	if (m->balance >= 0)
		return 0;
	v[0] = UUIDPGetDatum(&m->id);
	nlots = ledger_run(LQ_DEFICITS, v, NULL, SPI_OK_SELECT);
	tuptable = SPI_tuptable;
	for (i = 0; i < nlots && settled < points; i++)
	{
		bool		isnull;
		pg_uuid_t	lot = *DatumGetUUIDP(SPI_getbinval(tuptable->vals[i],
													   tuptable->tupdesc, 1, &isnull));
		int64		owed = -DatumGetInt64(SPI_getbinval(tuptable->vals[i],
														tuptable->tupdesc, 2, &isnull));
		int64		s = Min(owed, points - settled);

		ledger_take(entry_id, lot, -s, NULL);
		settled += s;
	}
	return settled;
}

/*
 * ledger_amount_to_minor
 *		A positive money amount as minor currency units; error if it has
 *		more decimals than the currency or is out of range.
 */
int64
ledger_amount_to_minor(Datum amount, int scale, const char *what)
{
	int64		unit = 1;
	Datum		factor;
	Datum		scaled;
	Datum		zero = NumericGetDatum(int64_to_numeric(0));
	int			i;

	for (i = 0; i < scale; i++)
		unit *= 10;
	factor = NumericGetDatum(int64_to_numeric(unit));

	if (numeric_is_nan(DatumGetNumeric(amount)) ||
		numeric_is_inf(DatumGetNumeric(amount)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number", what)));
	if (DatumGetBool(DirectFunctionCall2(numeric_le, amount, zero)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", what)));
	scaled = DirectFunctionCall2(numeric_mul, amount, factor);
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, scaled,
										  DirectFunctionCall2(numeric_trunc, scaled,
															  Int32GetDatum(0)))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s %s has more than %d decimals", what,
						DatumGetCString(DirectFunctionCall1(numeric_out, amount)), scale),
				 errdetail("The program's currency has %d digits after the decimal point.",
						   scale)));
	if (DatumGetBool(DirectFunctionCall2(numeric_gt, scaled,
										 NumericGetDatum(int64_to_numeric(PG_INT64_MAX / 1000000)))))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s %s is out of range", what,
						DatumGetCString(DirectFunctionCall1(numeric_out, amount)))));
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, scaled));
}

/*
 * ledger_check_as_of
 *		The batches (activation, expiry) work as of a finite time that has
 *		come: a batch as of a future time would expire or activate points
 *		that are not due yet (previews may look ahead; batches may not).
 */
void
ledger_check_as_of(TimestampTz as_of)
{
	if (TIMESTAMP_NOT_FINITE(as_of))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("as_of must be a finite time")));
	if (as_of > GetCurrentTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("as_of must not be in the future"),
				 errdetail("A batch changes balances only as of now or an earlier time."),
				 errhint("Run the batch when that time has come.")));
}

/*
 * ledger_lock
 *		Lock a member's balance row for the rest of the transaction (the
 *		first thing every ledger operation does), so that another area can
 *		serialise its own checks of one member with the ledger's before it
 *		debits; returns the balance.  Errors for an unknown or erased
 *		member.
 */
int64
ledger_lock(pg_uuid_t member_id)
{
	LedgerMember m;

	lspi_connect(LSPI_READ_WRITE);
	ledger_lock_member(member_id, &m);
	lspi_finish();
	return m.balance;
}
