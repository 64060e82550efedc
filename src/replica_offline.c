/*-------------------------------------------------------------------------
 *
 * replica_offline.c
 *	  Stays, check-outs and charges at a store replica: the front desk
 *	  calls loyalty.stay_record(), loyalty.stay_checkout() and
 *	  loyalty.charge_record() with the same signatures as at HQ, gets
 *	  provisional figures at once, and the call goes to the outbox as a
 *	  'stay', 'checkout' or 'charge' event.  HQ applies each event once by
 *	  calling the same SQL function (the same C in src/earning_stay.c), as
 *	  of the time the store recorded it.
 *
 * At the store (src/earning_stay.c calls in here once it has validated the
 * arguments, read the replicated policy, store and member, and locked the
 * member row):
 *	- the outbox's idempotency key is "<kind>:<PMS key>", so a stay and its
 *	  check-out (which carries the stay's key) are two events;
 *	- a call whose key is already in the outbox returns the answer recorded
 *	  for it (replayed = true): once HQ's verdict is back, what a retry at
 *	  HQ returns (HQ's stay id and figures, the member's current tier, no
 *	  tier change: the verdict's result keeps the first answer), before it
 *	  the provisional figures;
 *	- provisional figures: the nights of the stay, base and elite points by
 *	  the replicated policy and tier (campaigns and milestones are decided
 *	  at HQ), points_pending = true, the replicated tier, no tier change.
 *
 * At HQ (src/replica_apply.c) an applied event's verdict carries HQ's
 * answer in outbox_result.result, published back to the store.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "earning.h"
#include "replica.h"
#include "roles_caller.h"
#include "spi.h"

static SPIPlanPtr here_plan = NULL;

/*
 * replica_offline_here
 *		Whether this server is a replica (a store or hub), where stays are
 *		not written but recorded in the outbox.  Needs an SPI connection.
 */
bool
replica_offline_here(void)
{
	return lspi_run(lspi_plan(&here_plan,
							  "SELECT 1 FROM loyalty.replica_node", 0, NULL),
					NULL, NULL, true, 1, SPI_OK_SELECT) > 0;
}

/*
 * answer_from_row
 *		Fill res from columns 3.. of the current SPI row: id, nights,
 *		base_points, bonus_points, pending, tier, tier_changed (as text).
 */
static void
answer_from_row(int row, StayResult *res)
{
	char	   *id = lspi_text(row, 3);
	char	   *nights = lspi_text(row, 4);
	char	   *base = lspi_text(row, 5);
	char	   *bonus = lspi_text(row, 6);
	char	   *pending = lspi_text(row, 7);
	char	   *tier = lspi_text(row, 8);
	char	   *changed = lspi_text(row, 9);

	memset(res, 0, sizeof(*res));
	if (id)
		memcpy(&res->id, DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(id))),
			   sizeof(pg_uuid_t));
	res->nights = nights ? pg_strtoint32(nights) : 0;
	res->base_points = base ? pg_strtoint64(base) : 0;
	res->bonus_points = bonus ? pg_strtoint64(bonus) : 0;
	res->pending = pending == NULL || strcmp(pending, "true") == 0;
	if (tier)
		strlcpy(res->tier, tier, sizeof(res->tier));
	res->tier_changed = changed != NULL && strcmp(changed, "true") == 0;
	res->replayed = true;
}

/*
 * prior_event
 *		The event this store recorded with outbox key "<kind>:<key>", if
 *		any: fills *member and *payload (jsonb) and the answer (HQ's verdict
 *		if applied, else the provisional figures).  Serialises calls with
 *		one key first, so a concurrent retry waits and replays.
 */
static bool
prior_event(const char *kind, const char *key, pg_uuid_t *member, Datum *payload,
			StayResult *res)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		isnull;
	char	   *idem = psprintf("%s:%s", kind, key);

	values[0] = CStringGetTextDatum(kind);
	values[1] = CStringGetTextDatum(idem);
	lspi_exec("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('loyalty.outbox'), "
			  "pg_catalog.hashtext($2))", 2, types, values, NULL, false, 0, SPI_OK_SELECT);
	if (lspi_exec("SELECT o.member_id, o.payload, a ->> 'id', a ->> 'nights', a ->> 'base_points', "
				  "       a ->> 'bonus_points', a ->> 'pending', a ->> 'tier', a ->> 'tier_changed' "
				  "  FROM loyalty.outbox o "
				  "  JOIN loyalty.replica_node n ON n.store_code = o.store_code "
				  "  LEFT JOIN loyalty.outbox_result r ON r.store_code = o.store_code AND r.event_id = o.event_id, "
				  "  LATERAL (SELECT CASE WHEN r.status = 'applied' AND r.result ? 'id' THEN r.result "
				  "          || pg_catalog.jsonb_build_object('tier_changed', false, 'tier', "
				  "             (SELECT m.tier FROM loyalty.member m WHERE m.member_id = o.member_id)) "
				  "                       ELSE o.payload -> 'provisional' END AS a) x "
				  " WHERE o.kind = $1 AND o.idem_key = $2",
				  2, types, values, NULL, false, 1, SPI_OK_SELECT) == 0)
		return false;
	memcpy(member, DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
		   sizeof(pg_uuid_t));
	*payload = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull),
								 false, -1);
	answer_from_row(0, res);
	return true;
}

/*
 * json_text
 *		payload->>key, or NULL.
 */
static char *
json_text(Datum payload, const char *key)
{
	Oid			types[2] = {JSONBOID, TEXTOID};
	Datum		values[2];

	values[0] = payload;
	values[1] = CStringGetTextDatum(key);
	lspi_exec("SELECT $1 ->> $2", 2, types, values, NULL, false, 0, SPI_OK_SELECT);
	return lspi_text(0, 1);
}

/*
 * append_event
 *		Record the event with its arguments (args, a jsonb object) and the
 *		provisional answer; res->id becomes id, or a new provisional id
 *		when id is NULL.  The
 *		outbox's own function checks the caller's department and store and
 *		that the member is known here.
 */
static void
append_event(const char *kind, const char *key, const pg_uuid_t *member,
			 Datum args, const pg_uuid_t *id, StayResult *res)
{
	Oid			types[11] = {TEXTOID, UUIDOID, JSONBOID, TEXTOID, INT4OID, INT8OID,
	INT8OID, TEXTOID, TEXTOID, TEXTOID, UUIDOID};
	Datum		values[11];
	char		nulls[11] = "           ";
	bool		isnull;

	values[0] = CStringGetTextDatum(kind);
	values[1] = UUIDPGetDatum(member);
	values[2] = args;
	values[3] = CStringGetTextDatum(psprintf("%s:%s", kind, key));
	values[4] = Int32GetDatum(res->nights);
	values[5] = Int64GetDatum(res->base_points);
	values[6] = Int64GetDatum(res->bonus_points);
	values[7] = CStringGetTextDatum(res->tier);
	values[8] = CStringGetTextDatum(strcmp(kind, "charge") == 0 ? "{frontdesk,fnb,store_manager,dba}" :
									"{frontdesk,store_manager,dba}");
	values[9] = CStringGetTextDatum(key);
	if (id)
		values[10] = UUIDPGetDatum(id);
	else
		nulls[10] = 'n';
	lspi_exec("WITH p AS (SELECT coalesce($11, pg_catalog.gen_random_uuid()) AS id) "
			  "SELECT p.id, loyalty._outbox_append($1, $2, "
			  "  $3 || pg_catalog.jsonb_build_object('key', $10, 'provisional', pg_catalog.jsonb_build_object( "
			  "    'id', p.id, 'nights', $5, 'base_points', $6, 'bonus_points', $7, "
			  "    'pending', true, 'tier', $8, 'tier_changed', false)), "
			  "  $4, $9::text[]) FROM p",
			  11, types, values, nulls, false, 0, SPI_OK_SELECT);
	memcpy(&res->id, DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
		   sizeof(pg_uuid_t));
	res->pending = true;
	res->replayed = false;
	res->tier_changed = false;
}

/*
 * check_here
 *		A store records only its own activity.
 */
static void
check_here(const char *store)
{
	char		code[LOYALTY_CODE_LEN];

	if (strcmp(replica_node_role(code, NULL), "store") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this server is not a store replica"),
				 errhint("Record stays and charges at headquarters or at the store's own replica.")));
	if (strcmp(code, store) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the replica of store \"%s\" records only its own stays and charges, not store \"%s\"'s",
						code, store)));
}

/*
 * replica_offline_stay
 *		loyalty.stay_record() at a store.  res holds the provisional
 *		figures on entry; on return the answer (a replay's, if the key was
 *		used before here).
 */
void
replica_offline_stay(const char *key, const pg_uuid_t *member, const char *store,
					 DateADT ci, DateADT co, int32 rooms, Datum room_revenue,
					 Datum other_revenue, bool checked_out, TimestampTz occurred_at,
					 StayResult *res)
{
	pg_uuid_t	prior_member;
	Datum		payload;
	StayResult	prior;
	Oid			types[7] = {DATEOID, DATEOID, INT4OID, NUMERICOID, NUMERICOID, BOOLOID,
	TIMESTAMPTZOID};
	Datum		values[7];
	bool		isnull;

	check_here(store);
	if (prior_event("stay", key, &prior_member, &payload, &prior))
	{
		char	   *pci = json_text(payload, "check_in");
		char	   *pco = json_text(payload, "check_out");

		if (memcmp(&prior_member, member, sizeof(pg_uuid_t)) != 0 ||
			pci == NULL || pco == NULL ||
			DatumGetDateADT(DirectFunctionCall1(date_in, CStringGetDatum(pci))) != ci ||
			DatumGetDateADT(DirectFunctionCall1(date_in, CStringGetDatum(pco))) != co)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("idempotency key \"%s\" was already used for another stay", key),
					 errdetail("A retried call must repeat the first call's member, store and dates.")));
		*res = prior;
		return;
	}
	values[0] = DateADTGetDatum(ci);
	values[1] = DateADTGetDatum(co);
	values[2] = Int32GetDatum(rooms);
	values[3] = room_revenue;
	values[4] = other_revenue;
	values[5] = BoolGetDatum(checked_out);
	values[6] = TimestampTzGetDatum(occurred_at);
	lspi_exec("SELECT pg_catalog.jsonb_build_object('check_in', $1, 'check_out', $2, 'rooms', $3, "
			  "  'room_revenue', $4, 'other_revenue', $5, 'checked_out', $6, 'occurred_at', $7)",
			  7, types, values, NULL, false, 0, SPI_OK_SELECT);
	payload = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
								false, -1);
	append_event("stay", key, member, payload, NULL, res);
}

/*
 * replica_offline_charge
 *		loyalty.charge_record() at a store, as replica_offline_stay.
 */
void
replica_offline_charge(const char *key, const pg_uuid_t *member, const char *store,
					   Datum amount, TimestampTz occurred_at, StayResult *res)
{
	pg_uuid_t	prior_member;
	Datum		payload;
	StayResult	prior;
	Oid			types[2] = {NUMERICOID, TIMESTAMPTZOID};
	Datum		values[2];
	bool		isnull;

	check_here(store);
	if (prior_event("charge", key, &prior_member, &payload, &prior))
	{
		if (memcmp(&prior_member, member, sizeof(pg_uuid_t)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("idempotency key \"%s\" was already used for another charge", key)));
		*res = prior;
		return;
	}
	values[0] = amount;
	values[1] = TimestampTzGetDatum(occurred_at);
	lspi_exec("SELECT pg_catalog.jsonb_build_object('amount', $1, 'occurred_at', $2)",
			  2, types, values, NULL, false, 0, SPI_OK_SELECT);
	payload = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
								false, -1);
	append_event("charge", key, member, payload, NULL, res);
}

/*
 * replica_offline_checkout
 *		loyalty.stay_checkout() at a store: the stay is one recorded here
 *		(an outbox 'stay' event with the key) or one HQ recorded for this
 *		store (the replicated loyalty.stay).  A stay already checked out
 *		answers as its stay; a check-out retried answers as the first one;
 *		otherwise a 'checkout' event with provisional figures (the stay's
 *		nights, its provisional points, or points by the replicated policy
 *		for a stay recorded at HQ).
 */
void
replica_offline_checkout(const char *key, TimestampTz occurred_at, StayResult *res)
{
	const LoyaltyCaller *caller = loyalty_caller();
	pg_uuid_t	member;
	Datum		payload;
	StayResult	stay;
	char		code[LOYALTY_CODE_LEN];
	bool		recorded_here;
	bool		checked_out;
	DateADT		ci = 0,
				co = 0;
	Oid			types[2] = {TEXTOID, TIMESTAMPTZOID};
	Datum		values[2];
	bool		isnull;

	loyalty_require_department(caller,
							   DEPT_BIT(DEPT_FRONTDESK) | DEPT_BIT(DEPT_STORE_MANAGER) |
							   DEPT_BIT(DEPT_CRM) | DEPT_BIT(DEPT_DBA));
	if (strcmp(replica_node_role(code, NULL), "store") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this server is not a store replica")));
	loyalty_require_store(caller, code);

	recorded_here = prior_event("stay", key, &member, &payload, &stay);
	if (recorded_here)
	{
		char	   *s = json_text(payload, "checked_out");

		checked_out = s != NULL && strcmp(s, "true") == 0;
		ci = DatumGetDateADT(DirectFunctionCall1(date_in, CStringGetDatum(json_text(payload, "check_in"))));
		co = DatumGetDateADT(DirectFunctionCall1(date_in, CStringGetDatum(json_text(payload, "check_out"))));
	}
	else
	{
		/* a stay HQ recorded for this store, replicated here */
		values[0] = CStringGetTextDatum(key);
		if (lspi_exec("SELECT s.member_id, s.status, s.stay_id::text, "
					  "       coalesce(s.nights_credited, s.check_out - s.check_in)::text, "
					  "       NULL::text, NULL::text, 'true', m.tier, 'false', s.check_in, s.check_out "
					  "  FROM loyalty.stay s JOIN loyalty.member m USING (member_id) "
					  " WHERE s.idempotency_key = $1 AND s.store_code = $2",
					  2, (Oid[]) {TEXTOID, TEXTOID},
					  (Datum[]) {values[0], CStringGetTextDatum(code)},
					  NULL, false, 1, SPI_OK_SELECT) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("no stay was recorded with idempotency key \"%s\"", key)));
		memcpy(&member, DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
			   sizeof(pg_uuid_t));
		checked_out = strcmp(lspi_text(0, 2), "in_house") != 0;
		if (!checked_out || strcmp(lspi_text(0, 2), "checked_out") == 0)
			answer_from_row(0, &stay);
		else
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("stay \"%s\" is %s and cannot be checked out", key, lspi_text(0, 2))));
		ci = DatumGetDateADT(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 10, &isnull));
		co = DatumGetDateADT(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 11, &isnull));
	}
	if (checked_out)
	{
		*res = stay;
		res->replayed = true;
		return;
	}

	/* a check-out retried: the first one's answer */
	{
		pg_uuid_t	m2;
		Datum		p2;

		if (prior_event("checkout", key, &m2, &p2, res))
			return;
	}

	/* the member row lock serialises with this member's other calls here */
	{
		TierMember	m;

		tier_member_lock(&member, occurred_at, true, &m);
		*res = stay;
		res->nights = co - ci;
		strlcpy(res->tier, m.tier, sizeof(res->tier));
	}
	values[1] = TimestampTzGetDatum(occurred_at);
	lspi_exec("SELECT pg_catalog.jsonb_build_object('occurred_at', $1)",
			  1, &types[1], &values[1], NULL, false, 0, SPI_OK_SELECT);
	payload = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
								false, -1);
	append_event("checkout", key, &member, payload, &stay.id, res);
}
