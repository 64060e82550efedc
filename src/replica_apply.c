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
 * Receiving and applying are two stages.  The trigger receives: it
 * checks the event (receive_check: the one per-event verification call
 * point), stores the row and queues it in loyalty.outbox_queue, in the
 * apply worker's transaction, together with the replication origin's
 * progress, so a restart neither loses nor repeats an event.  The
 * database's replica applier (a background worker, one per database,
 * started and woken when a receiving transaction commits) then applies
 * the queue in batches of up to REPLICA_APPLY_BATCH (50) events, in queue
 * order, one transaction per batch: each event in its subtransaction,
 * its verdict, and its queue row's deletion commit together, so an event
 * is applied exactly once whatever crashes.  A redelivered event (queued
 * or decided) only counts a redelivery.  Catching up on a backlog thus
 * costs one commit per batch instead of one per event, and the applier
 * keeps its saved plans (the apply worker's switches of
 * session_replication_role reset the plan cache at every event).
 * A batch's accruals are written set-based (src/replica_apply_batch.c):
 * each is checked in its subtransaction as ledger_accrue checks it, and a
 * run of them is written by one statement; anything else, and any doubt,
 * takes the per-event path (apply_queue).
 * Without shared_preload_libraries = 'loyalty' (no shared memory to find
 * the applier) the trigger applies each event itself, as before.  At
 * server start a launcher starts every database's applier, for events
 * queued before a stop or crash; loyalty.replica_retry() applies what is
 * left queued and re-applies held and conflicting events.
 *
 * The apply worker runs with session_replication_role = replica, in which
 * ordinary triggers (foreign keys, the ledger's own) do not fire: when it
 * applies an event itself, it switches to origin for the duration of the
 * event (the replica applier runs in origin already).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/worker_internal.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/uuid.h"

#include "audit.h"
#include "roles_caller.h"
#include "ledger.h"
#include "replica.h"
#include "replica_apply_batch.h"
#include "replica_reserve.h"
#include "replica_verify.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_outbox_receive);
PG_FUNCTION_INFO_V1(loyalty_replica_retry);

PGDLLEXPORT void loyalty_replica_applier_main(Datum main_arg);
PGDLLEXPORT void loyalty_replica_launcher_main(Datum main_arg);

/*
 * Events applied per transaction by the replica applier: under 64, so
 * that the batch's subtransactions (one per event) stay in the process's
 * subtransaction cache and other sessions' snapshots never overflow to
 * pg_subtrans.
 */
#define REPLICA_APPLY_BATCH		50
/* an idle applier exits after this long (dropdb waits for it otherwise) */
#define REPLICA_APPLIER_IDLE_MS	1000
/* databases with a replica applier at once */
#define REPLICA_APPLIER_MAX_DBS	16

/*
 * The appliers' shared area (only when preloaded): per database, the pid
 * and latch of its running applier, or a start requested.
 */
typedef struct ReplicaApplier
{
	Oid			dboid;			/* InvalidOid: free */
	pid_t		pid;			/* 0: not running */
	Latch	   *latch;
	bool		starting;		/* registered, not yet running */
	TimestampTz requested_at;	/* when it was registered */
	bool		wake;			/* events were queued since it last looked */
} ReplicaApplier;

typedef struct ReplicaApplyShared
{
	slock_t		mutex;
	ReplicaApplier appliers[REPLICA_APPLIER_MAX_DBS];
} ReplicaApplyShared;

static ReplicaApplyShared *apply_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool wake_registered = false;	/* the xact callback is registered */
static bool wake_at_commit = false;		/* this transaction queued events */
static Oid	wake_owner = InvalidOid;	/* the subscription owner who queued */

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
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	char	   *role;

	/* saved: HQ asks at every store event it receives */
	lspi_run(lspi_plan(&plan, "SELECT n.node_role, n.store_code, n.incarnation FROM loyalty.replica_node n",
					   0, NULL),
			 NULL, NULL, false, 0, SPI_OK_SELECT);
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
 * require_member
 *		The member must exist at HQ (foreign keys do not fire in the apply
 *		worker's replica mode, so this is checked explicitly).
 */
static void
require_member(Datum member_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];

	values[0] = member_id;
	lspi_run(lspi_plan(&plan, "SELECT 1 FROM loyalty.member m WHERE m.member_id = $1 FOR KEY SHARE",
					   1, types),
			 values, NULL, false, 0, SPI_OK_SELECT);
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
	char	   *category = replica_json_text(ev->payload, "category");
	char	   *value = replica_json_text(ev->payload, "value");
	char	   *scope = replica_json_text(ev->payload, "scope");

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
	char	   *code = replica_json_text(ev->payload, "risk_code");
	char	   *note = replica_json_text(ev->payload, "note");
	char	   *owed = replica_json_text(ev->payload, "amount_owed");

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
	char	   *benefit = replica_json_text(ev->payload, "benefit");

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
	char	   *text = replica_json_text(payload, "points");
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
	char	   *source = replica_json_text(ev->payload, "source");

	require_member(ev->member_id);
	memcpy(&req.member_id, DatumGetUUIDP(ev->member_id), sizeof(pg_uuid_t));
	req.store_code = ev->store_code;
	req.points = json_points(ev->payload);
	req.source = source ? source : "stay";
	req.reference = replica_json_text(ev->payload, "reference");
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
	char	   *reward = replica_json_text(ev->payload, "reward");

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
	if (replica_json_text(ev->payload, "key") == NULL)
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
							replica_json_text(ev->payload, "key"), ev->store_code)));
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
	char	   *card = replica_json_text(ev->payload, "card_no");

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

	/*
	 * Foreign keys and other areas' triggers fire as for a direct call.
	 * Only the apply worker runs in replica mode; a change of the setting
	 * resets the plan cache, so the replica applier (in origin already)
	 * does not touch it.
	 */
	if (SessionReplicationRole != SESSION_REPLICATION_ROLE_ORIGIN)
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
			   bool redelivery, int32 redeliveries)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[8] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID, INT4OID};
	Datum		values[8];
	char		nulls[8] = "        ";

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
	values[7] = Int32GetDatum(redeliveries);
	/* saved: the replica applier records one verdict per event of a batch */
	lspi_run(lspi_plan(&plan,
					   "INSERT INTO loyalty.outbox_result AS r "
					   "(store_code, event_id, status, sqlstate, detail, result, redeliveries) "
					   "VALUES ($1, $2, $3, $4, $5, "
					   "CASE WHEN $7 IS NOT NULL THEN $7::jsonb "
					   "WHEN $6 IS NOT NULL THEN pg_catalog.jsonb_build_object('balance', $6) END, $8) "
					   "ON CONFLICT (store_code, event_id) DO UPDATE SET status = excluded.status, "
					   "sqlstate = excluded.sqlstate, detail = excluded.detail, result = excluded.result, "
					   "decided_at = pg_catalog.now(), redeliveries = r.redeliveries + excluded.redeliveries",
					   8, types),
			 values, nulls, false, 0, SPI_OK_INSERT);
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
	static SPIPlanPtr plan = NULL;
	static Oid	plan_rowtype = InvalidOid;
	Oid			types[2] = {TEXTOID, desc->tdtypeid};
	Datum		values[2];
	bool		isnull;

	/* saved, for the row type it was made for (a new extension: another) */
	if (plan != NULL && plan_rowtype != desc->tdtypeid)
	{
		SPI_freeplan(plan);
		plan = NULL;
	}
	plan_rowtype = desc->tdtypeid;
	values[0] = CStringGetTextDatum(event_id);
	values[1] = heap_copy_tuple_as_datum(tup, desc);
	/* keyed: the outbox grows with every event this checks */
	replica_run_keyed(lspi_plan(&plan,
								"SELECT (o.store_code, o.incarnation, o.seq, o.kind, o.member_id, o.payload, "
								"o.idem_key, o.recorded_at, o.recorded_by) IS NOT DISTINCT FROM "
								"(n.store_code, n.incarnation, n.seq, n.kind, n.member_id, n.payload, "
								"n.idem_key, n.recorded_at, n.recorded_by) "
								"FROM loyalty.outbox o, (SELECT ($2).*) n WHERE o.event_id = $1",
								2, types),
					  values, NULL, SPI_OK_SELECT);
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
 * receive_check
 *		The per-event verification of an event being received, before it
 *		is stored or queued: well-formed (read_event, which fills ev), and
 *		sent by its store or the store's hub.  Returns a rejection reason,
 *		or NULL.  This is the one call point for checks of each event:
 *		what it rejects is never stored, queued or applied.
 */
static char *
receive_check(HeapTuple tup, TupleDesc desc, const char *sender, OutboxEvent *ev)
{
	char	   *reject = read_event(tup, desc, ev);

	if (reject == NULL && sender != NULL && !may_send(sender, ev->store_code))
		reject = psprintf("store \"%s\" may not send events of store \"%s\"",
						  sender, ev->store_code);
	return reject;
}

/*
 * count_redelivery
 *		An event HQ already holds came again: one more redelivery on its
 *		queue row if it is still queued, else on its verdict.
 */
static void
count_redelivery(const char *store_code, const char *event_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	values[0] = CStringGetTextDatum(event_id);
	if (lspi_exec("UPDATE loyalty.outbox_queue q SET redeliveries = q.redeliveries + 1 "
				  " WHERE q.event_id = $1",
				  1, types, values, NULL, false, 0, SPI_OK_UPDATE) > 0)
		return;
	record_verdict(store_code, event_id, NULL, true, 0);
}

/*
 * enqueue_event
 *		Queue a received event for the replica applier and have it woken
 *		when this transaction commits.  Needs an SPI connection.
 */
static void
enqueue_event(const char *event_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	values[0] = CStringGetTextDatum(event_id);
	lspi_run(lspi_plan(&plan, "INSERT INTO loyalty.outbox_queue (event_id) VALUES ($1)",
					   1, types),
			 values, NULL, false, 0, SPI_OK_INSERT);
	wake_at_commit = true;
	wake_owner = GetUserId();
}

/*
 * The verdicts of a batch, written by one statement at its end
 * (record_verdicts) instead of one per event: what each event's
 * record_verdict() would have written, in the same transaction.
 */
typedef struct VerdictBatch
{
	int			n;
	Datum	   *store_code;
	Datum	   *event_id;
	Datum	   *status;
	Datum	   *sqlstate;
	Datum	   *detail;
	Datum	   *balance;
	Datum	   *result;
	Datum	   *redeliveries;
	bool	   *sqlstate_null;
	bool	   *detail_null;
	bool	   *balance_null;
	bool	   *result_null;
} VerdictBatch;

/*
 * verdicts_init
 *		An empty batch of up to max verdicts.
 */
static void
verdicts_init(VerdictBatch *b, int max)
{
	b->n = 0;
	b->store_code = palloc(sizeof(Datum) * max);
	b->event_id = palloc(sizeof(Datum) * max);
	b->status = palloc(sizeof(Datum) * max);
	b->sqlstate = palloc0(sizeof(Datum) * max);
	b->detail = palloc0(sizeof(Datum) * max);
	b->balance = palloc0(sizeof(Datum) * max);
	b->result = palloc0(sizeof(Datum) * max);
	b->redeliveries = palloc(sizeof(Datum) * max);
	b->sqlstate_null = palloc(sizeof(bool) * max);
	b->detail_null = palloc(sizeof(bool) * max);
	b->balance_null = palloc(sizeof(bool) * max);
	b->result_null = palloc(sizeof(bool) * max);
}

/*
 * verdicts_add
 *		Add the verdict of a well-formed event (a distinct store and id:
 *		the queue holds each event once).
 */
static void
verdicts_add(VerdictBatch *b, const char *store_code, const char *event_id,
			 const Verdict *v, int32 redeliveries)
{
	int			i = b->n++;

	b->store_code[i] = CStringGetTextDatum(store_code);
	b->event_id[i] = CStringGetTextDatum(event_id);
	b->status[i] = CStringGetTextDatum(v->status);
	b->sqlstate_null[i] = v->sqlstate == NULL;
	if (v->sqlstate)
		b->sqlstate[i] = CStringGetTextDatum(v->sqlstate);
	b->detail_null[i] = v->detail == NULL;
	if (v->detail)
		b->detail[i] = CStringGetTextDatum(v->detail);
	b->balance_null[i] = !v->has_balance;
	if (v->has_balance)
		b->balance[i] = Int64GetDatum(v->balance);
	b->result_null[i] = v->result == NULL;
	if (v->result)
		b->result[i] = CStringGetTextDatum(v->result);
	b->redeliveries[i] = Int32GetDatum(redeliveries);
}

/*
 * record_verdicts
 *		Write a batch's verdicts in one statement: record_verdict()'s
 *		insert or update of each (store, event), from arrays.
 */
static void
record_verdicts(VerdictBatch *b)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[8] = {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID};
	Datum		values[8];

	if (b->n == 0)
		return;
	values[0] = replica_datum_array(b->store_code, NULL, b->n, TEXTOID);
	values[1] = replica_datum_array(b->event_id, NULL, b->n, TEXTOID);
	values[2] = replica_datum_array(b->status, NULL, b->n, TEXTOID);
	values[3] = replica_datum_array(b->sqlstate, b->sqlstate_null, b->n, TEXTOID);
	values[4] = replica_datum_array(b->detail, b->detail_null, b->n, TEXTOID);
	values[5] = replica_datum_array(b->balance, b->balance_null, b->n, INT8OID);
	values[6] = replica_datum_array(b->result, b->result_null, b->n, TEXTOID);
	values[7] = replica_datum_array(b->redeliveries, NULL, b->n, INT4OID);
	lspi_run(lspi_plan(&plan,
					   "INSERT INTO loyalty.outbox_result AS r "
					   "(store_code, event_id, status, sqlstate, detail, result, redeliveries) "
					   "SELECT u.store_code, u.event_id, u.status, u.sqlstate, u.detail, "
					   "CASE WHEN u.result IS NOT NULL THEN u.result::jsonb "
					   "WHEN u.balance IS NOT NULL THEN pg_catalog.jsonb_build_object('balance', u.balance) END, "
					   "u.redeliveries "
					   "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), "
					   "pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), "
					   "pg_catalog.unnest($7), pg_catalog.unnest($8)) WITH ORDINALITY "
					   "AS u (store_code, event_id, status, sqlstate, detail, balance, result, redeliveries, i) "
					   "ORDER BY u.i "
					   "ON CONFLICT (store_code, event_id) DO UPDATE SET status = excluded.status, "
					   "sqlstate = excluded.sqlstate, detail = excluded.detail, result = excluded.result, "
					   "decided_at = pg_catalog.now(), redeliveries = r.redeliveries + excluded.redeliveries",
					   8, types),
			 values, NULL, false, 0, SPI_OK_INSERT);
	b->n = 0;
}

/*
 * Subtransactions one batch may begin (each event's, a run's): under 64,
 * the process's cache (see REPLICA_APPLY_BATCH).  Events left when it is
 * spent stay queued for the next batch.
 */
#define REPLICA_APPLY_SUBXACTS	60

/*
 * A run of accrual events, prepared one by one (prepare_accrual, a
 * member's later accrual from the balance its earlier one leaves) and
 * written by one statement (flush_run).
 */
typedef struct AccrualRun
{
	int			n;
	ReplicaBatchAccrual *items;
	const char **store_code;
	const char **event_id;
	int32	   *redeliveries;
	OutboxEvent *events;
} AccrualRun;

/*
 * run_member_balance
 *		The balance after the run's last accrual of this member, or NULL
 *		if the run holds none.
 */
static const int64 *
run_member_balance(const AccrualRun *run, Datum member_id)
{
	int			i;

	for (i = run->n - 1; i >= 0; i--)
		if (memcmp(&run->items[i].req.member_id, DatumGetUUIDP(member_id),
				   sizeof(pg_uuid_t)) == 0)
			return &run->items[i].balance;
	return NULL;
}

/*
 * run_members
 *		The distinct members of the run.
 */
static int
run_members(const AccrualRun *run)
{
	int			i;
	int			k;
	int			members = 0;

	for (i = 0; i < run->n; i++)
	{
		for (k = 0; k < i; k++)
			if (memcmp(&run->items[k].req.member_id, &run->items[i].req.member_id,
					   sizeof(pg_uuid_t)) == 0)
				break;
		if (k == i)
			members++;
	}
	return members;
}

/*
 * prepare_accrual
 *		In a subtransaction, what apply_event() does for an accrual before
 *		the ledger writes: verification, the request (as apply_accrual
 *		builds it) and ledger_accrue's checks
 *		(replica_batch_accrual_prepare).  True: the accrual is prepared
 *		into *a, its locks kept.  False (another path of the ledger, or an
 *		error): nothing of it is kept, and the caller applies the event
 *		through apply_guarded(), which gives it today's verdict.
 */
static bool
prepare_accrual(const OutboxEvent *ev, ReplicaBatchAccrual *a, const int64 *balance_before)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	bool		ok = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		TimestampTz now = GetCurrentTransactionStartTimestamp();
		TimestampTz at = DatumGetTimestampTz(ev->recorded_at);
		char	   *source;

		memset(a, 0, sizeof(*a));
		replica_verify_event(ev->event_id, ev->store_code, ev->kind, ev->incarnation,
							 ev->member_id, ev->payload, ev->recorded_at, ev->recorded_by);

		/*
		 * apply_accrual's require_member() is left to ledger_lock_member(),
		 * which refuses an unknown member too: the event then takes
		 * apply_guarded(), whose require_member() gives today's message.
		 */
		source = replica_json_text(ev->payload, "source");
		memcpy(&a->req.member_id, DatumGetUUIDP(ev->member_id), sizeof(pg_uuid_t));
		a->req.store_code = ev->store_code;
		a->req.points = json_points(ev->payload);
		a->req.source = source ? source : "stay";
		a->req.reference = replica_json_text(ev->payload, "reference");
		a->req.has_occurred_at = true;
		a->req.occurred_at = at < now ? at : now;
		a->req.pending = false;
		a->req.idem_key = ev->event_id;
		ok = replica_batch_accrual_prepare(a, balance_before);
		if (ok)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * flush_run
 *		Write the run's accruals in one statement, in a subtransaction,
 *		and add their verdicts ('applied', the balance after).  If the
 *		statement fails, it is rolled back and each accrual of the run is
 *		applied as any event is (apply_guarded).  Returns the
 *		subtransactions begun.
 */
static int
flush_run(AccrualRun *run, VerdictBatch *verdicts, int *applied)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	bool		written = false;
	int			subxacts = 1;
	int			i;

	if (run->n == 0)
		return 0;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		replica_batch_accrual_write(run->items, run->n, run_members(run));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		written = true;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();
	for (i = 0; i < run->n; i++)
	{
		Verdict		v = {0};

		if (written)
		{
			v.status = "applied";
			v.has_balance = true;
			v.balance = run->items[i].balance;
		}
		else
		{
			apply_guarded(&run->events[i], &v);
			subxacts++;
		}
		verdicts_add(verdicts, run->store_code[i], run->event_id[i], &v, run->redeliveries[i]);
		if (strcmp(v.status, "applied") == 0)
			(*applied)++;
	}
	run->n = 0;
	return subxacts;
}

/*
 * apply_queue
 *		Apply up to limit queued events, in queue order, in the current
 *		transaction: each in its subtransaction (an error is its
 *		'conflict'), then the batch's verdicts in one statement (each
 *		carrying the redeliveries counted while it was queued) and the
 *		deletion of its queue rows.  Adds the
 *		events applied to *applied; returns how many were taken (0: the
 *		queue is empty, or this database may not apply: not HQ, or a
 *		restored copy not adopted).  Needs an SPI connection.
 */
static uint64
apply_queue(int limit, int *applied)
{
	static SPIPlanPtr take_plan = NULL;
	static SPIPlanPtr done_plan = NULL;
	Oid			take_types[1] = {INT4OID};
	Oid			done_types[1] = {INT8ARRAYOID};
	Datum		values[1];
	SPITupleTable *events;
	Datum	   *positions;
	VerdictBatch verdicts;
	AccrualRun	run;
	int			subxacts = 0;
	int			done = 0;
	uint64		n;
	uint64		i;

	if (strcmp(replica_node_role(NULL, NULL), "hq") != 0 ||
		replica_identity_state() != REPLICA_IDENTITY_THIS)
		return 0;
	values[0] = Int32GetDatum(limit);
	replica_run_keyed(lspi_plan(&take_plan,
								"SELECT q.position, q.redeliveries, o.* "
								"  FROM loyalty.outbox_queue q JOIN loyalty.outbox o USING (event_id) "
								" ORDER BY q.position LIMIT $1 FOR UPDATE OF q",
								1, take_types),
					  values, NULL, SPI_OK_SELECT);
	events = SPI_tuptable;
	n = SPI_processed;
	if (n == 0)
		return 0;
	positions = palloc(sizeof(Datum) * n);
	verdicts_init(&verdicts, (int) n);
	run.n = 0;
	run.items = palloc(sizeof(ReplicaBatchAccrual) * n);
	run.store_code = palloc(sizeof(char *) * n);
	run.event_id = palloc(sizeof(char *) * n);
	run.redeliveries = palloc(sizeof(int32) * n);
	run.events = palloc(sizeof(OutboxEvent) * n);
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = events->vals[i];
		OutboxEvent ev;
		Verdict		v = {0};
		bool		isnull;
		int32		redeliveries;

		/*
		 * The rest waits for the next batch.  Each event takes one
		 * subtransaction, a run's write one more; only a run whose write
		 * fails (its accruals then applied one by one) takes more.
		 */
		if (subxacts + 3 > REPLICA_APPLY_SUBXACTS)
			break;
		positions[done++] = SPI_getbinval(tup, events->tupdesc, 1, &isnull);
		redeliveries = DatumGetInt32(SPI_getbinval(tup, events->tupdesc, 2, &isnull));
		/* checked when received (receive_check); this only reads it */
		if (read_event(tup, events->tupdesc, &ev) != NULL)
		{
			v.status = "rejected";
			v.sqlstate = "22023";
			v.detail = "the queued event is malformed";
			/* at once: two malformed events may share the key "?" */
			record_verdict(ev.store_code ? ev.store_code : "?", ev.event_id ? ev.event_id : "?",
						   &v, false, redeliveries);
			continue;
		}

		/*
		 * An accrual joins the run of accruals; anything else (and an
		 * accrual the ledger takes another path for) is applied alone,
		 * after the run is written.
		 */
		if (strcmp(ev.kind, "accrual") == 0 &&
			SessionReplicationRole == SESSION_REPLICATION_ROLE_ORIGIN)
		{
			subxacts++;
			if (prepare_accrual(&ev, &run.items[run.n], run_member_balance(&run, ev.member_id)))
			{
				run.store_code[run.n] = ev.store_code;
				run.event_id[run.n] = ev.event_id;
				run.redeliveries[run.n] = redeliveries;
				run.events[run.n] = ev;
				run.n++;
				continue;
			}
		}
		subxacts += flush_run(&run, &verdicts, applied);
		apply_guarded(&ev, &v);
		subxacts++;
		verdicts_add(&verdicts, ev.store_code, ev.event_id, &v, redeliveries);
		if (strcmp(v.status, "applied") == 0)
			(*applied)++;
	}
	(void) flush_run(&run, &verdicts, applied);
	record_verdicts(&verdicts);
	values[0] = PointerGetDatum(construct_array(positions, done, INT8OID, 8,
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	lspi_run(lspi_plan(&done_plan,
					   "DELETE FROM loyalty.outbox_queue q WHERE q.position = ANY ($1)",
					   1, done_types),
			 values, NULL, false, 0, SPI_OK_DELETE);
	return done;
}

/*
 * replica_apply_shmem_size
 *		Size of the appliers' shared area.
 */
static Size
replica_apply_shmem_size(void)
{
	return sizeof(ReplicaApplyShared);
}

/*
 * replica_apply_shmem_request
 *		Reserve the appliers' shared area (shmem_request_hook).
 */
static void
replica_apply_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(replica_apply_shmem_size());
}

/*
 * replica_apply_shmem_startup
 *		Create or attach the appliers' shared area (shmem_startup_hook).
 */
static void
replica_apply_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	apply_shared = ShmemInitStruct("loyalty replica appliers", replica_apply_shmem_size(), &found);
	if (!found)
	{
		memset(apply_shared, 0, replica_apply_shmem_size());
		SpinLockInit(&apply_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * applier_slot
 *		The entry of dboid, taken if create and free; NULL if none.  Spin
 *		lock held.
 */
static ReplicaApplier *
applier_slot(Oid dboid, bool create)
{
	int			i;
	ReplicaApplier *free_slot = NULL;

	for (i = 0; i < REPLICA_APPLIER_MAX_DBS; i++)
	{
		ReplicaApplier *a = &apply_shared->appliers[i];

		if (a->dboid == dboid)
			return a;
		if (free_slot == NULL && a->dboid == InvalidOid)
			free_slot = a;
	}
	if (create && free_slot != NULL)
	{
		memset(free_slot, 0, sizeof(*free_slot));
		free_slot->dboid = dboid;
	}
	return create ? free_slot : NULL;
}

/*
 * applier_starting
 *		Whether an applier was registered and may still come up (one that
 *		did not within 10 s never will: another may be started).  Spin
 *		lock held.
 */
static bool
applier_starting(const ReplicaApplier *a)
{
	return a->starting &&
		!TimestampDifferenceExceeds(a->requested_at, GetCurrentTimestamp(), 10000);
}

/*
 * start_applier_for
 *		Register the replica applier of database dboid, connecting as role;
 *		false if no background worker slot is free.
 */
static bool
start_applier_for(Oid dboid, Oid role)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	Oid			extra[2];

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "loyalty");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "loyalty_replica_applier_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "loyalty replica applier for database %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "loyalty replica applier");
	extra[0] = dboid;
	extra[1] = role;
	memcpy(worker.bgw_extra, extra, sizeof(extra));
	worker.bgw_notify_pid = 0;
	return RegisterDynamicBackgroundWorker(&worker, &handle);
}

/*
 * start_applier
 *		Register this database's replica applier, connecting as role.
 */
static bool
start_applier(Oid role)
{
	return start_applier_for(MyDatabaseId, role);
}

/*
 * applier_available
 *		Whether events received now may be queued: the library is
 *		preloaded and this database has an applier running, starting, or
 *		startable now (a background worker slot was free).  Otherwise the
 *		trigger applies the event itself: nothing waits on a worker that
 *		cannot run.
 */
static bool
applier_available(void)
{
	ReplicaApplier *a;
	bool		running;

	if (apply_shared == NULL)
		return false;
	SpinLockAcquire(&apply_shared->mutex);
	a = applier_slot(MyDatabaseId, true);
	if (a == NULL)
	{
		SpinLockRelease(&apply_shared->mutex);
		return false;
	}
	running = a->pid != 0 || applier_starting(a);
	if (!running)
	{
		a->starting = true;
		a->requested_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&apply_shared->mutex);
	if (running)
		return true;
	if (start_applier(GetUserId()))
		return true;
	SpinLockAcquire(&apply_shared->mutex);
	a->starting = false;
	SpinLockRelease(&apply_shared->mutex);
	return false;
}

/*
 * wake_applier_callback
 *		After a transaction that queued events commits, wake the
 *		database's applier, or start one if it exited meanwhile.  Never
 *		raises an error (the transaction is committed): if no applier can
 *		start, the events wait for the next delivery or
 *		loyalty.replica_retry().
 */
static void
wake_applier_callback(XactEvent event, void *arg)
{
	ReplicaApplier *a;
	bool		start = false;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	if (!wake_at_commit)
		return;
	wake_at_commit = false;
	if (event != XACT_EVENT_COMMIT || apply_shared == NULL)
		return;
	SpinLockAcquire(&apply_shared->mutex);
	a = applier_slot(MyDatabaseId, true);
	if (a != NULL)
	{
		a->wake = true;
		if (a->pid != 0 && a->latch != NULL)
			SetLatch(a->latch);
		else if (!applier_starting(a))
		{
			start = a->starting = true;
			a->requested_at = GetCurrentTimestamp();
		}
	}
	SpinLockRelease(&apply_shared->mutex);
	if (start && !start_applier(wake_owner))
	{
		SpinLockAcquire(&apply_shared->mutex);
		a->starting = false;
		SpinLockRelease(&apply_shared->mutex);
	}
}

/*
 * applier_exit
 *		Free the applier's entry (on_shmem_exit).
 */
static void
applier_exit(int code, Datum arg)
{
	ReplicaApplier *a = (ReplicaApplier *) DatumGetPointer(arg);

	SpinLockAcquire(&apply_shared->mutex);
	if (a->pid == MyProcPid)
	{
		a->pid = 0;
		a->latch = NULL;
	}
	SpinLockRelease(&apply_shared->mutex);
}

/*
 * loyalty_replica_applier_main
 *		The replica applier of one database (bgw_extra: the database and
 *		the role to connect as, the subscription owner who queued): apply
 *		the queue a batch per transaction until it is empty, sleep until
 *		woken, exit after REPLICA_APPLIER_IDLE_MS without work.  An error
 *		outside an event's subtransaction ends the process; the batch
 *		rolls back whole and its events stay queued for the next applier.
 */
void
loyalty_replica_applier_main(Datum main_arg)
{
	Oid			extra[2];
	ReplicaApplier *a;

	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	memcpy(extra, MyBgworkerEntry->bgw_extra, sizeof(extra));
	if (apply_shared == NULL)
		proc_exit(0);
	SpinLockAcquire(&apply_shared->mutex);
	a = applier_slot(extra[0], true);
	if (a == NULL || a->pid != 0)
	{
		/* another applier runs for this database */
		if (a != NULL && a->starting && a->pid != 0)
			a->starting = false;
		SpinLockRelease(&apply_shared->mutex);
		proc_exit(0);
	}
	a->pid = MyProcPid;
	a->latch = MyLatch;
	a->starting = false;
	SpinLockRelease(&apply_shared->mutex);
	before_shmem_exit(applier_exit, PointerGetDatum(a));

	BackgroundWorkerInitializeConnectionByOid(extra[0], extra[1], 0);
	pgstat_report_appname("loyalty replica applier");

	/*
	 * A batch's commit need not wait for its flush, as the apply worker's
	 * does not (a subscription's default): a batch lost in a crash comes
	 * back with its queue rows, which it deleted, and is applied again;
	 * WAL order keeps a later commit from surviving an earlier lost one.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/* started for every database at server start: most have no loyalty */
	StartTransactionCommand();
	if (!OidIsValid(get_extension_oid("loyalty", true)))
	{
		CommitTransactionCommand();
		proc_exit(0);
	}
	CommitTransactionCommand();

	for (;;)
	{
		uint64		taken;
		int			applied = 0;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			break;
		SpinLockAcquire(&apply_shared->mutex);
		a->wake = false;
		SpinLockRelease(&apply_shared->mutex);

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "applying store events");
		lspi_connect(LSPI_READ_WRITE);
		taken = apply_queue(REPLICA_APPLY_BATCH, &applied);
		lspi_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_stat(false);
		pgstat_report_activity(STATE_IDLE, NULL);
		if (taken > 0)
			continue;

		/* idle: sleep until woken; exit when nothing came */
		if (WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					  REPLICA_APPLIER_IDLE_MS, PG_WAIT_EXTENSION) & WL_TIMEOUT)
		{
			bool		woken;

			SpinLockAcquire(&apply_shared->mutex);
			woken = a->wake;
			if (!woken)
			{
				/* from here a committing receiver starts a new applier */
				a->pid = 0;
				a->latch = NULL;
			}
			SpinLockRelease(&apply_shared->mutex);
			if (!woken)
				break;
		}
	}
	proc_exit(0);
}

/*
 * loyalty_replica_launcher_main
 *		At server start (preloaded): start the replica applier of every
 *		database that accepts connections, so that events queued before a
 *		stop or crash are applied without waiting for the next delivery.
 *		Each applier exits at once where loyalty is not installed or
 *		nothing is queued.
 */
void
loyalty_replica_launcher_main(Datum main_arg)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	List	   *dbs = NIL;
	ListCell   *lc;

	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn && !db->datistemplate)
			dbs = lappend_oid(dbs, db->oid);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	foreach(lc, dbs)
	{
		ReplicaApplier *a;
		bool		start = false;

		SpinLockAcquire(&apply_shared->mutex);
		a = applier_slot(lfirst_oid(lc), true);
		if (a != NULL && a->pid == 0 && !applier_starting(a))
		{
			start = a->starting = true;
			a->requested_at = GetCurrentTimestamp();
		}
		SpinLockRelease(&apply_shared->mutex);
		if (start && !start_applier_for(lfirst_oid(lc), BOOTSTRAP_SUPERUSERID))
		{
			SpinLockAcquire(&apply_shared->mutex);
			a->starting = false;
			SpinLockRelease(&apply_shared->mutex);
		}
	}
	proc_exit(0);
}

/*
 * loyalty_replica_apply_init
 *		When preloaded, reserve the appliers' shared area; in every
 *		backend, the callback that wakes the applier (from _PG_init).
 */
void
loyalty_replica_apply_init(void)
{
	BackgroundWorker worker;

	if (!wake_registered)
	{
		RegisterXactCallback(wake_applier_callback, NULL);
		wake_registered = true;
	}
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = replica_apply_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = replica_apply_shmem_startup;

	/* the launcher, once per server start (and after a crash) */
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "loyalty");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "loyalty_replica_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "loyalty replica launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "loyalty replica launcher");
	RegisterBackgroundWorker(&worker);
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
	reject = receive_check(tup, trigdata->tg_relation->rd_att, sender, &ev);
	if (reject != NULL)
	{
		v.status = "rejected";
		v.sqlstate = "22023";
		v.detail = reject;
		record_verdict(sender ? sender : (ev.store_code ? ev.store_code : "?"),
					   ev.event_id ? ev.event_id : "?", &v, false, 0);
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
			count_redelivery(ev.store_code, ev.event_id);
		else
			record_reused(tup, trigdata->tg_relation->rd_att, ev.store_code, ev.event_id);
		lspi_finish();
		return PointerGetDatum(NULL);
	}

	/*
	 * Delivered by a subscription: queued for the replica applier.  A row
	 * inserted by a session (a DBA replaying an event by hand), or with no
	 * applier to run, is applied here and now.
	 */
	if (MySubscription != NULL && applier_available())
	{
		enqueue_event(ev.event_id);
		lspi_finish();
		return PointerGetDatum(tup);
	}
	apply_guarded(&ev, &v);
	record_verdict(ev.store_code, ev.event_id, &v, false, 0);
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
		record_verdict(ev.store_code, ev.event_id, &v, false, 0);
		if (strcmp(v.status, "applied") == 0)
			applied++;
	}
	/* what is still queued (no applier ran since a restart), all of it */
	if (PG_ARGISNULL(0))
	{
		uint64		batch;

		while ((batch = apply_queue(REPLICA_APPLY_BATCH, &applied)) > 0)
			;
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
