/*-------------------------------------------------------------------------
 *
 * replica_apply.c
 *	  HQ's side of the store outbox: every event a store recorded is
 *	  applied exactly once, and its verdict is recorded for the store.
 *
 * HQ subscribes to each store's outbox (loyalty_outbox_<store>).  The
 * apply worker inserts each event into HQ's loyalty.outbox; the BEFORE
 * INSERT trigger loyalty._outbox_receive (ENABLE ALWAYS, so it fires in
 * the apply worker) does the work:
 *
 *	- malformed events, and events that claim to come from another store
 *	  than the subscription delivering them, are rejected: a verdict row,
 *	  and the event is not stored;
 *	- an event already stored (redelivered, replayed after a re-seed, sent
 *	  twice through a hub) only counts a redelivery; the same id with other
 *	  content (a store restored from an older backup) is kept in
 *	  loyalty.outbox_reused with a WARNING, never dropped silently;
 *	- otherwise the event is applied in a subtransaction, through the same
 *	  code an HQ call uses (the ledger's C API for accruals and
 *	  redemptions, loyalty.benefit_use() and loyalty.risk_tag_raise()).  An error (unknown member, a redemption HQ can
 *	  no longer cover) rolls back only the subtransaction and becomes a
 *	  'conflict' verdict: the stream never stalls and nothing is half
 *	  written.  Kinds whose applier is not installed yet are 'held'.
 *
 * The event row and its verdict commit with the apply worker's
 * transaction, together with the replication origin's progress, so a
 * restart neither loses nor repeats an event.  loyalty.replica_retry()
 * re-applies held and conflicting events.
 *
 * The apply worker runs with session_replication_role = replica, in which
 * ordinary triggers (foreign keys, the ledger's own) do not fire: the
 * applier switches to origin for the duration of each event.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "replication/worker_internal.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/uuid.h"

#include "audit.h"
#include "roles_caller.h"
#include "ledger.h"
#include "replica.h"
#include "replica_reserve.h"
#include "replica_verify.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_outbox_receive);
PG_FUNCTION_INFO_V1(loyalty_replica_retry);

typedef struct OutboxEvent
{
	char	   *event_id;
	char	   *store_code;
	int64		incarnation;
	int64		seq;
	char	   *kind;
	Datum		member_id;
	Datum		payload;		/* jsonb */
	Datum		personal;		/* jsonb: an enrolment's profile fields, or NULL */
	bool		personal_null;
	Datum		recorded_at;
	Datum		recorded_by;
	bool		member_null;
	bool		payload_null;
} OutboxEvent;

typedef struct Verdict
{
	const char *status;
	char	   *sqlstate;
	char	   *detail;
	bool		has_balance;
	int64		balance;		/* the member's balance after a ledger event */
	char	   *result;			/* HQ's answer to a stay, checkout or charge (jsonb text) */
} Verdict;

/*
 * replica_node_role
 *		"hq", "store" or "hub"; fills store_code (LOYALTY_CODE_LEN bytes)
 *		and incarnation when not NULL and the server is no HQ.  Needs an SPI
 *		connection.
 */
const char *
replica_node_role(char *store_code, int64 *incarnation)
{
	bool		isnull;
	char	   *role;

	lspi_exec("SELECT n.node_role, n.store_code, n.incarnation FROM loyalty.replica_node n",
					 0, NULL, NULL, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return "hq";
	role = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (store_code)
		strlcpy(store_code, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2),
				LOYALTY_CODE_LEN);
	if (incarnation)
		*incarnation = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 3, &isnull));
	return strcmp(role, "store") == 0 ? "store" : "hub";
}

/*
 * json_text
 *		payload->>key as a C string, or NULL.
 */
static char *
json_text(Datum payload, const char *key)
{
	Oid			types[2] = {JSONBOID, TEXTOID};
	Datum		values[2];
	bool		isnull;
	Datum		d;

	values[0] = payload;
	values[1] = CStringGetTextDatum(key);
	lspi_exec("SELECT $1 ->> $2", 2, types, values, NULL, false, 0, SPI_OK_SELECT);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * require_member
 *		The member must exist at HQ (foreign keys do not fire in the apply
 *		worker's replica mode, so this is checked explicitly).
 */
static void
require_member(Datum member_id)
{
	Oid			types[1] = {UUIDOID};
	Datum		values[1];

	values[0] = member_id;
	lspi_exec("SELECT 1 FROM loyalty.member m WHERE m.member_id = $1 FOR KEY SHARE",
					 1, types, values, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("member %s does not exist at HQ",
						DatumGetCString(DirectFunctionCall1(uuid_out, member_id)))));
}

/*
 * apply_preference
 *		A preference recorded at the store: the same row HQ's own call
 *		writes, attributed to the store, the time and the login that
 *		recorded it.
 */
static void
apply_preference(const OutboxEvent *ev)
{
	Oid			types[7] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	TIMESTAMPTZOID, NAMEOID};
	Datum		values[7];
	char		nulls[7] = "       ";
	char	   *category = json_text(ev->payload, "category");
	char	   *value = json_text(ev->payload, "value");
	char	   *scope = json_text(ev->payload, "scope");

	if (category == NULL || value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("preference event has no category or value")));
	require_member(ev->member_id);
	values[0] = ev->member_id;
	values[1] = CStringGetTextDatum(category);
	values[2] = CStringGetTextDatum(value);
	values[3] = CStringGetTextDatum(scope ? scope : "chain");
	values[4] = CStringGetTextDatum(ev->store_code);
	values[5] = ev->recorded_at;
	values[6] = ev->recorded_by;
	lspi_exec("INSERT INTO loyalty.member_preference "
					 "(member_id, category, value, scope, store_code, recorded_at, recorded_by) "
					 "VALUES ($1, $2, $3, $4, $5, $6, $7)",
					 7, types, values, nulls, false, 0, SPI_OK_INSERT);
}

/*
 * apply_risk_tag
 *		A risk tag (e.g. an unpaid damage) raised at the store, through
 *		loyalty.risk_tag_raise() as an HQ call would: the same checks, the
 *		freeze and the audit trail (its actor is the subscription's owner;
 *		the outbox row keeps the store login).
 */
static void
apply_risk_tag(const OutboxEvent *ev)
{
	Oid			types[6] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID, NUMERICOID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = "      ";
	char	   *code = json_text(ev->payload, "risk_code");
	char	   *note = json_text(ev->payload, "note");
	char	   *owed = json_text(ev->payload, "amount_owed");

	values[0] = ev->member_id;
	values[1] = CStringGetTextDatum(ev->store_code);
	if (code)
		values[2] = CStringGetTextDatum(code);
	else
		nulls[2] = 'n';
	if (note)
		values[3] = CStringGetTextDatum(note);
	else
		nulls[3] = 'n';
	if (owed)
		values[4] = DirectFunctionCall3(numeric_in, CStringGetDatum(owed),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	else
		nulls[4] = 'n';
	/* the event id, unique chain-wide, is the idempotency key */
	values[5] = CStringGetTextDatum(ev->event_id);
	lspi_exec("SELECT loyalty.risk_tag_raise('replica:' || $6, $1, $2, $3, $4, $5)",
					 6, types, values, nulls, false, 0, SPI_OK_SELECT);
}

/*
 * apply_benefit_use
 *		A benefit used at the store, through loyalty.benefit_use() (the
 *		benefits area's C) with the event id as its idempotency key.  A
 *		benefit HQ finds frozen, used up or not valid there is a conflict.
 */
static void
apply_benefit_use(const OutboxEvent *ev)
{
	Oid			types[4] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = "    ";
	char	   *benefit = json_text(ev->payload, "benefit");

	values[0] = ev->member_id;
	values[1] = CStringGetTextDatum(ev->store_code);
	if (benefit)
		values[2] = CStringGetTextDatum(benefit);
	else
		nulls[2] = 'n';
	values[3] = CStringGetTextDatum(ev->event_id);
	lspi_exec("SELECT u.use_id FROM loyalty.benefit_use($4, $1, $2, $3) u",
					 4, types, values, nulls, false, 0, SPI_OK_SELECT);
}

/*
 * json_points
 *		payload->>'points' as a positive int64, or an error.
 */
static int64
json_points(Datum payload)
{
	char	   *text = json_text(payload, "points");
	int64		points = text ? pg_strtoint64(text) : 0;

	if (points <= 0 || points > LEDGER_MAX_POINTS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event has no valid point amount")));
	return points;
}

/*
 * apply_accrual
 *		Points earned at the store, through the ledger's C API as HQ's
 *		loyalty.points_accrue() does.  The event id is the ledger's idempotency
 *		key, a second guard against applying it twice.  The points are
 *		earned when the store recorded them (clamped to HQ's clock).
 */
static void
apply_accrual(const OutboxEvent *ev, Verdict *v)
{
	LedgerAccrual req = {0};
	LedgerResult res = {0};
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz at = DatumGetTimestampTz(ev->recorded_at);
	char	   *source = json_text(ev->payload, "source");

	require_member(ev->member_id);
	memcpy(&req.member_id, DatumGetUUIDP(ev->member_id), sizeof(pg_uuid_t));
	req.store_code = ev->store_code;
	req.points = json_points(ev->payload);
	req.source = source ? source : "stay";
	req.reference = json_text(ev->payload, "reference");
	req.has_occurred_at = true;
	req.occurred_at = at < now ? at : now;
	req.pending = false;
	req.idem_key = ev->event_id;
	ledger_accrue(&req, &res);
	v->balance = res.balance;
	v->has_balance = true;
}

/*
 * apply_redemption
 *		Points redeemed at the store.  If HQ can no longer cover them (the
 *		member spent them elsewhere meanwhile) the ledger refuses and the
 *		event becomes a conflict for the store to settle.
 */
static void
apply_redemption(const OutboxEvent *ev, Verdict *v)
{
	LedgerResult res = {0};
	pg_uuid_t	member;
	char	   *reward = json_text(ev->payload, "reward");

	require_member(ev->member_id);
	memcpy(&member, DatumGetUUIDP(ev->member_id), sizeof(pg_uuid_t));
	ledger_redeem_reward(member, ev->store_code, json_points(ev->payload),
						 reward ? reward : "store redemption", ev->event_id, &res);
	v->balance = res.balance;
	v->has_balance = true;
}

/*
 * The answer of loyalty.stay_record(), stay_checkout() and charge_record()
 * as the verdict's result: the shape of a store's provisional answer
 * (src/replica_offline.c), with "replayed" telling a stay HQ already had.
 */
#define STAY_ANSWER_SQL(id) \
	"SELECT pg_catalog.jsonb_build_object('id', r." id ", 'replayed', r.replayed, " \
	"  'nights', r.nights_credited, 'base_points', r.base_points, 'bonus_points', r.bonus_points, " \
	"  'pending', r.points_pending, 'tier', r.tier, 'tier_changed', r.tier_changed)::text "

/*
 * apply_stay
 *		A stay, check-out or charge recorded at the store, through the SQL
 *		function HQ's own callers use (the C of src/earning_stay.c): the
 *		same checks, counters, stay merging, earning (base, elite, campaigns,
 *		milestones), instant upgrade and tier events, as of the time the
 *		store recorded it (clamped to HQ's clock).  The PMS's idempotency
 *		key is the function's, so a stay HQ recorded itself (or an event
 *		seen before) is replayed, never counted twice.  A check-out must be
 *		of a stay of the sending store.
 */
static void
apply_stay(const OutboxEvent *ev, Verdict *v)
{
	Oid			types[3] = {JSONBOID, TEXTOID, UUIDOID};
	Datum		values[3];
	int64		ret;

	require_member(ev->member_id);
	values[0] = ev->payload;
	values[1] = CStringGetTextDatum(ev->store_code);
	values[2] = ev->member_id;
	if (json_text(ev->payload, "key") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s event has no idempotency key", ev->kind)));
	if (strcmp(ev->kind, "stay") == 0)
		ret = lspi_exec(STAY_ANSWER_SQL("stay_id")
						"  FROM loyalty.stay_record($1 ->> 'key', $2, $3, ($1 ->> 'check_in')::date, "
						"       ($1 ->> 'check_out')::date, ($1 ->> 'rooms')::integer, "
						"       ($1 ->> 'room_revenue')::numeric, ($1 ->> 'other_revenue')::numeric, "
						"       ($1 ->> 'checked_out')::boolean, "
						"       LEAST(($1 ->> 'occurred_at')::timestamptz, pg_catalog.now())) r",
						3, types, values, NULL, false, 0, SPI_OK_SELECT);
	else if (strcmp(ev->kind, "charge") == 0)
		ret = lspi_exec(STAY_ANSWER_SQL("charge_id")
						"  FROM loyalty.charge_record($1 ->> 'key', $2, $3, ($1 ->> 'amount')::numeric, "
						"       LEAST(($1 ->> 'occurred_at')::timestamptz, pg_catalog.now())) r",
						3, types, values, NULL, false, 0, SPI_OK_SELECT);
	else
	{
		lspi_exec("SELECT s.store_code = $2 AND s.member_id = $3 FROM loyalty.stay s "
				  " WHERE s.idempotency_key = $1 ->> 'key'",
				  3, types, values, NULL, false, 0, SPI_OK_SELECT);
		if (SPI_processed > 0 && strcmp(lspi_text(0, 1), "t") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("stay \"%s\" is not a stay of this member at store \"%s\"",
							json_text(ev->payload, "key"), ev->store_code)));
		ret = lspi_exec(STAY_ANSWER_SQL("stay_id")
						"  FROM loyalty.stay_checkout($1 ->> 'key', "
						"       LEAST(($1 ->> 'occurred_at')::timestamptz, pg_catalog.now())) r",
						3, types, values, NULL, false, 0, SPI_OK_SELECT);
	}
	if (ret > 0)
		v->result = lspi_text(0, 1);
}

/*
 * apply_enrol
 *		A member enrolled at the store, through loyalty.member_enroll() as
 *		an HQ call (the same checks and rows; the event id is its
 *		idempotency key), then given the card number the store issued from
 *		its own block (src/sql/52_replica_offline.sql).  A number outside
 *		the sending store's block, or one already taken, is a conflict.
 *		The verdict's result holds HQ's member id and the card.
 */
static void
apply_enrol(const OutboxEvent *ev, Verdict *v)
{
	Oid			types[4] = {JSONBOID, TEXTOID, TEXTOID, JSONBOID};
	Datum		values[4];
	char	   *card = json_text(ev->payload, "card_no");

	if (ev->personal_null)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("enrolment event has no profile fields")));
	values[0] = ev->payload;
	values[1] = CStringGetTextDatum(ev->store_code);
	values[2] = CStringGetTextDatum(ev->event_id);
	values[3] = ev->personal;
	lspi_exec("SELECT 1 FROM loyalty.replica_store r WHERE r.store_code = $2 "
			  "   AND $1 ->> 'card_no' LIKE '9' || pg_catalog.lpad(r.card_block::text, 3, '0') || '________'",
			  3, types, values, NULL, false, 0, SPI_OK_SELECT);
	if (card == NULL || SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("card number \"%s\" is not of store \"%s\"'s block",
						card ? card : "", ev->store_code)));
	lspi_exec("SELECT e.member_id::text FROM loyalty.member_enroll('replica:' || $3, $2, "
			  "       $4 ->> 'full_name', $4 ->> 'phone', $4 ->> 'email', ($4 ->> 'birth_date')::date, "
			  "       $4 ->> 'gender', $4 ->> 'nationality', $1 ->> 'time_zone') e",
			  4, types, values, NULL, false, 0, SPI_OK_SELECT);
	values[2] = CStringGetTextDatum(lspi_text(0, 1));
	lspi_exec("UPDATE loyalty.member m SET card_no = $1 ->> 'card_no' "
			  " WHERE m.member_id = $3::uuid "
			  "RETURNING pg_catalog.jsonb_build_object('member_id', m.member_id, 'card_no', m.card_no)::text",
			  3, types, values, NULL, false, 0, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed > 0)
		v->result = lspi_text(0, 1);
}

/*
 * apply_event
 *		Apply one event, or raise an error (caught by the caller).  Returns
 *		false if no applier for the kind is installed (the event is held).
 */
static bool
apply_event(const OutboxEvent *ev, Verdict *v)
{
	int			save_nestlevel = NewGUCNestLevel();

	/* foreign keys and other areas' triggers fire as for a direct call */
	(void) set_config_option("session_replication_role", "origin",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	/* the event's actor, time and source (replica_verify.c) */
	replica_verify_event(ev->event_id, ev->store_code, ev->kind, ev->incarnation,
						 ev->member_id, ev->payload, ev->recorded_at, ev->recorded_by);
	if (strcmp(ev->kind, "preference") == 0)
		apply_preference(ev);
	else if (strcmp(ev->kind, "risk_tag") == 0)
		apply_risk_tag(ev);
	else if (strcmp(ev->kind, "accrual") == 0)
		apply_accrual(ev, v);
	else if (strcmp(ev->kind, "redemption") == 0)
		apply_redemption(ev, v);
	else if (strcmp(ev->kind, "benefit_use") == 0)
		apply_benefit_use(ev);
	else if (strcmp(ev->kind, "enrol") == 0)
		apply_enrol(ev, v);
	else if (strcmp(ev->kind, "stay") == 0 || strcmp(ev->kind, "checkout") == 0 ||
			 strcmp(ev->kind, "charge") == 0)
		apply_stay(ev, v);
	else
	{
		AtEOXact_GUC(true, save_nestlevel);
		return false;
	}
	AtEOXact_GUC(true, save_nestlevel);
	return true;
}

/*
 * apply_guarded
 *		Apply in a subtransaction; an error becomes a 'conflict' verdict.
 */
static void
apply_guarded(const OutboxEvent *ev, Verdict *v)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	/* a store's redemption draws on the offline reserve HQ kept for it */
	replica_reserve_applying(true);
	PG_TRY();
	{
		bool		applied = apply_event(ev, v);

		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (applied)
			v->status = "applied";
		else
		{
			v->status = "held";
			v->detail = psprintf("no applier for event kind \"%s\" is installed at HQ", ev->kind);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		v->status = "conflict";
		v->has_balance = false;
		v->result = NULL;
		v->sqlstate = pstrdup(unpack_sql_state(edata->sqlerrcode));
		v->detail = pstrdup(edata->message);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	replica_reserve_applying(false);
}

/*
 * record_verdict
 *		Insert or update the verdict row for (store, event).  redelivery
 *		only counts one more delivery of an event already decided.
 */
static void
record_verdict(const char *store_code, const char *event_id, const Verdict *v,
			   bool redelivery)
{
	Oid			types[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = "       ";

	values[0] = CStringGetTextDatum(store_code);
	values[1] = CStringGetTextDatum(event_id);
	if (redelivery)
	{
		lspi_exec("INSERT INTO loyalty.outbox_result AS r (store_code, event_id, status, redeliveries) "
						 "VALUES ($1, $2, 'rejected', 1) "
						 "ON CONFLICT (store_code, event_id) DO UPDATE SET redeliveries = r.redeliveries + 1",
						 2, types, values, NULL, false, 0, SPI_OK_INSERT);
		return;
	}
	values[2] = CStringGetTextDatum(v->status);
	if (v->sqlstate)
		values[3] = CStringGetTextDatum(v->sqlstate);
	else
		nulls[3] = 'n';
	if (v->detail)
		values[4] = CStringGetTextDatum(v->detail);
	else
		nulls[4] = 'n';
	if (v->has_balance)
		values[5] = Int64GetDatum(v->balance);
	else
		nulls[5] = 'n';
	if (v->result)
		values[6] = CStringGetTextDatum(v->result);
	else
		nulls[6] = 'n';
	lspi_exec("INSERT INTO loyalty.outbox_result AS r (store_code, event_id, status, sqlstate, detail, result) "
					 "VALUES ($1, $2, $3, $4, $5, "
					 "CASE WHEN $7 IS NOT NULL THEN $7::jsonb "
					 "WHEN $6 IS NOT NULL THEN pg_catalog.jsonb_build_object('balance', $6) END) "
					 "ON CONFLICT (store_code, event_id) DO UPDATE SET status = excluded.status, "
					 "sqlstate = excluded.sqlstate, detail = excluded.detail, result = excluded.result, "
					 "decided_at = pg_catalog.now()",
					 7, types, values, nulls, false, 0, SPI_OK_INSERT);
}

/*
 * column
 *		Attribute of a tuple by name; NULL-safe.
 */
static Datum
column(HeapTuple tup, TupleDesc desc, const char *name, bool *isnull)
{
	int			attno = SPI_fnumber(desc, name);

	if (attno <= 0)
		elog(ERROR, "loyalty.outbox has no column \"%s\"", name);
	return SPI_getbinval(tup, desc, attno, isnull);
}

/*
 * read_event
 *		Fill ev from an outbox tuple; returns a rejection reason, or NULL
 *		if the event is well-formed.
 */
static char *
read_event(HeapTuple tup, TupleDesc desc, OutboxEvent *ev)
{
	static const char *const kinds[] = {
		"accrual", "redemption", "benefit_use", "preference", "risk_tag",
		"stay", "checkout", "charge", "enrol"
	};
	bool		isnull;
	Datum		d;
	char	   *expected;
	int			i;
	bool		known = false;

	memset(ev, 0, sizeof(*ev));
	d = column(tup, desc, "event_id", &isnull);
	ev->event_id = isnull ? NULL : TextDatumGetCString(d);
	d = column(tup, desc, "store_code", &isnull);
	ev->store_code = isnull ? NULL : TextDatumGetCString(d);
	d = column(tup, desc, "incarnation", &isnull);
	ev->incarnation = isnull ? -1 : DatumGetInt64(d);
	d = column(tup, desc, "seq", &isnull);
	ev->seq = isnull ? -1 : DatumGetInt64(d);
	d = column(tup, desc, "kind", &isnull);
	ev->kind = isnull ? NULL : TextDatumGetCString(d);
	ev->member_id = column(tup, desc, "member_id", &ev->member_null);
	ev->payload = column(tup, desc, "payload", &ev->payload_null);
	/* absent from an older store's outbox */
	if (SPI_fnumber(desc, "personal") > 0)
		ev->personal = column(tup, desc, "personal", &ev->personal_null);
	else
		ev->personal_null = true;
	ev->recorded_at = column(tup, desc, "recorded_at", &isnull);
	if (isnull)
		ev->recorded_at = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	ev->recorded_by = column(tup, desc, "recorded_by", &isnull);
	if (isnull)
		ev->recorded_by = DirectFunctionCall1(namein, CStringGetDatum("unknown"));

	if (ev->event_id == NULL || ev->store_code == NULL || ev->kind == NULL ||
		ev->member_null || ev->payload_null || ev->incarnation <= 0 || ev->seq <= 0)
		return "the event has a missing field";
	if (strlen(ev->store_code) > 16)
		return "the event's store code is malformed";
	for (i = 0; ev->store_code[i]; i++)
		if (!((ev->store_code[i] >= 'a' && ev->store_code[i] <= 'z') ||
			  (i > 0 && ((ev->store_code[i] >= '0' && ev->store_code[i] <= '9') ||
						 ev->store_code[i] == '_'))))
			return "the event's store code is malformed";
	expected = psprintf("%s-" INT64_FORMAT "-" INT64_FORMAT,
						ev->store_code, ev->incarnation, ev->seq);
	if (strcmp(expected, ev->event_id) != 0)
		return psprintf("the event id is not \"%s\"", expected);
	for (i = 0; i < lengthof(kinds); i++)
		if (strcmp(kinds[i], ev->kind) == 0)
			known = true;
	if (!known)
		return psprintf("unknown event kind \"%s\"", ev->kind);
	return NULL;
}

/*
 * sender_store
 *		The store whose subscription is delivering (loyalty_outbox_<code>),
 *		or NULL outside an apply worker.
 */
static const char *
sender_store(void)
{
	if (MySubscription == NULL || MySubscription->name == NULL)
		return NULL;
	if (strncmp(MySubscription->name, REPLICA_OUTBOX_PREFIX,
				strlen(REPLICA_OUTBOX_PREFIX)) != 0)
		return NULL;
	return MySubscription->name + strlen(REPLICA_OUTBOX_PREFIX);
}

/*
 * may_send
 *		Whether sender may deliver events of store: itself, or a hub the
 *		store is registered under.
 */
static bool
may_send(const char *sender, const char *store)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	if (strcmp(sender, store) == 0)
		return true;
	values[0] = CStringGetTextDatum(store);
	values[1] = CStringGetTextDatum(sender);
	lspi_exec("SELECT 1 FROM loyalty.replica_store r WHERE r.store_code = $1 AND r.via_hub = $2",
					 2, types, values, NULL, false, 0, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * event_seen
 *		Whether HQ's outbox already holds an event with this id, and if so
 *		(*same) whether the row received now says the same: store,
 *		incarnation, sequence, kind, member, payload, key, time and login.
 *		Needs an SPI connection.
 */
static bool
event_seen(HeapTuple tup, TupleDesc desc, const char *event_id, bool *same)
{
	Oid			types[2] = {TEXTOID, desc->tdtypeid};
	Datum		values[2];
	bool		isnull;

	values[0] = CStringGetTextDatum(event_id);
	values[1] = heap_copy_tuple_as_datum(tup, desc);
	lspi_exec("SELECT (o.store_code, o.incarnation, o.seq, o.kind, o.member_id, o.payload, "
			  "o.idem_key, o.recorded_at, o.recorded_by) IS NOT DISTINCT FROM "
			  "(n.store_code, n.incarnation, n.seq, n.kind, n.member_id, n.payload, "
			  "n.idem_key, n.recorded_at, n.recorded_by) "
			  "FROM loyalty.outbox o, (SELECT ($2).*) n WHERE o.event_id = $1",
			  2, types, values, NULL, true, 0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	*same = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return true;
}

/*
 * record_reused
 *		Keep an event whose id HQ has already seen with other content in
 *		loyalty.outbox_reused, and warn: it is another operation under a
 *		reused id (a store restored from an older backup), not a
 *		redelivery.  Needs an SPI connection.
 */
static void
record_reused(HeapTuple tup, TupleDesc desc, const char *store_code, const char *event_id)
{
	Oid			types[3] = {TEXTOID, TEXTOID, desc->tdtypeid};
	Datum		values[3];

	values[0] = CStringGetTextDatum(store_code);
	values[1] = CStringGetTextDatum(event_id);
	values[2] = heap_copy_tuple_as_datum(tup, desc);
	/* once per content: the same reused event may come again */
	lspi_exec("INSERT INTO loyalty.outbox_reused (store_code, event_id, event) "
			  "SELECT $1, $2, pg_catalog.to_jsonb($3) WHERE NOT EXISTS ("
			  "SELECT 1 FROM loyalty.outbox_reused r WHERE r.store_code = $1 "
			  "AND r.event_id = $2 AND r.event = pg_catalog.to_jsonb($3))",
			  3, types, values, NULL, false, 0, SPI_OK_INSERT);
	ereport(WARNING,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
			 errmsg("store event id \"%s\" was reused for another operation", event_id),
			 errdetail("HQ already holds an event with this id and other content; the new one is kept in loyalty.outbox_reused, not applied."),
			 errhint("The store was probably restored from an older backup: see docs/replication.md, \"Restoring a store\".")));
}

/*
 * loyalty._outbox_receive() trigger
 *		BEFORE INSERT ON loyalty.outbox, ENABLE ALWAYS.  At a store or hub
 *		the row passes through; at HQ see the file header.
 */
Datum
loyalty_outbox_receive(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	OutboxEvent ev;
	Verdict		v = {0};
	const char *sender;
	char	   *reject;
	bool		same;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty._outbox_receive() must be a BEFORE INSERT row trigger")));
	tup = trigdata->tg_trigtuple;

	lspi_connect(LSPI_READ_WRITE);
	if (strcmp(replica_node_role(NULL, NULL), "hq") != 0)
	{
		lspi_finish();
		return PointerGetDatum(tup);
	}

	/*
	 * Only the HQ database that attached the stores applies their events.
	 * A restore (pg_restore's COPY into a new database, onto a new server,
	 * or with -j) loads outbox rows as the data they are: the identity it
	 * restores names the original database, or is not loaded yet.  Rows
	 * written with session_replication_role = replica outside an apply
	 * worker (pg_restore --disable-triggers style loads) are data too.
	 */
	if (replica_identity_state() != REPLICA_IDENTITY_THIS ||
		(MySubscription == NULL && SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA))
	{
		lspi_finish();
		return PointerGetDatum(tup);
	}

	sender = sender_store();
	reject = read_event(tup, trigdata->tg_relation->rd_att, &ev);
	if (reject == NULL && sender != NULL && !may_send(sender, ev.store_code))
		reject = psprintf("store \"%s\" may not send events of store \"%s\"",
						  sender, ev.store_code);
	if (reject != NULL)
	{
		v.status = "rejected";
		v.sqlstate = "22023";
		v.detail = reject;
		record_verdict(sender ? sender : (ev.store_code ? ev.store_code : "?"),
					   ev.event_id ? ev.event_id : "?", &v, false);
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("store event \"%s\" rejected: %s",
						ev.event_id ? ev.event_id : "?", reject)));
		lspi_finish();
		return PointerGetDatum(NULL);
	}

	/*
	 * Already here: a redelivery, never applied twice.  The same id with
	 * other content (a store restored from an older backup numbers its new
	 * operations again from where the backup left off) is another
	 * operation: it is recorded in loyalty.outbox_reused with a WARNING,
	 * never taken for a redelivery and dropped silently.
	 */
	if (event_seen(tup, trigdata->tg_relation->rd_att, ev.event_id, &same))
	{
		if (same)
			record_verdict(ev.store_code, ev.event_id, NULL, true);
		else
			record_reused(tup, trigdata->tg_relation->rd_att, ev.store_code, ev.event_id);
		lspi_finish();
		return PointerGetDatum(NULL);
	}

	apply_guarded(&ev, &v);
	record_verdict(ev.store_code, ev.event_id, &v, false);
	lspi_finish();
	return PointerGetDatum(tup);
}

/*
 * loyalty.replica_retry(event_id text DEFAULT NULL) returns integer
 *		Re-apply held and conflicting events (one, or all); returns how
 *		many are applied now.  Each is tried in its own subtransaction.
 */
Datum
loyalty_replica_retry(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char		nulls[1] = {' '};
	SPITupleTable *events;
	uint64		n;
	uint64		i;
	int			applied = 0;

	loyalty_require_department(loyalty_caller(), DEPT_BIT(DEPT_DBA));
	lspi_connect(LSPI_READ_WRITE);
	/* a restored copy applies nothing until adopted */
	replica_identity_claim(false);
	if (PG_ARGISNULL(0))
		nulls[0] = 'n';
	else
		values[0] = PG_GETARG_DATUM(0);
	lspi_exec("SELECT o.* FROM loyalty.outbox o "
					 "JOIN loyalty.outbox_result r USING (store_code, event_id) "
					 "WHERE r.status IN ('held', 'conflict') AND ($1 IS NULL OR o.event_id = $1) "
					 "ORDER BY o.store_code, o.incarnation, o.seq FOR UPDATE OF r",
					 1, types, values, nulls, false, 0, SPI_OK_SELECT);
	events = SPI_tuptable;
	n = SPI_processed;
	for (i = 0; i < n; i++)
	{
		OutboxEvent ev;
		Verdict		v = {0};

		if (read_event(events->vals[i], events->tupdesc, &ev) != NULL)
			continue;
		apply_guarded(&ev, &v);
		record_verdict(ev.store_code, ev.event_id, &v, false);
		if (strcmp(v.status, "applied") == 0)
			applied++;
	}
	lspi_finish();
	{
		static const char *const keys[3] = {"event_id", "retried", "applied"};
		static const bool quoted[3] = {true, false, false};
		const char *vals[3] = {PG_ARGISNULL(0) ? NULL : TextDatumGetCString(PG_GETARG_DATUM(0)),
			psprintf(UINT64_FORMAT, n), psprintf("%d", applied)};

		loyalty_audit_change(NULL, "replica_retry", "operations",
							 loyalty_audit_detail(3, keys, vals, quoted));
	}
	PG_RETURN_INT32(applied);
}
