/*-------------------------------------------------------------------------
 *
 * earning_stay.c
 *	  Stays and charges: the calls applications make when a guest stays or
 *	  spends, and the crediting of qualification counters.
 *
 * loyalty.stay_record() validates the stay, takes the member's row lock
 * (which serialises everything the engine does for one member), inserts
 * the stay, computes the earning lines and, for a checked-out stay,
 * credits it: nights not already credited by another stay of the member
 * (several rooms or bookings on one night give one night), stays merged
 * with the stays at the same store that end the day it starts or start
 * the day it ends, base points and qualifying spend, milestones, then the
 * instant tier upgrade.  An in-house stay is credited by
 * loyalty.stay_checkout().  Every call carries an idempotency key: a
 * retried call returns the first call's result and changes nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audit.h"
#include "earning.h"
#include "earning_line.h"
#include "replica.h"
#include "roles_caller.h"
#include "tier.h"
#include "args.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_record_stay);
PG_FUNCTION_INFO_V1(loyalty_stay_checkout);
PG_FUNCTION_INFO_V1(loyalty_record_charge);

#define MAX_STAY_NIGHTS 366
#define MAX_MONTHS		16

/* counter changes of one month */
typedef struct MonthDelta
{
	DateADT		month;
	int64		value[LOYALTY_NUM_COUNTERS];
} MonthDelta;

typedef struct Deltas
{
	int			n;
	MonthDelta	m[MAX_MONTHS];
} Deltas;

/*
 * What one statement (stay_facts) reads about a stay under the member's
 * lock: the stay a retried call recorded, an overlapping stay at the same
 * store, the nights no credited stay covers by month, whether credited
 * stays at the same store meet it, and the period's counters before it.
 */
typedef struct StayFacts
{
	bool		overlap;
	DateADT		overlap_in,
				overlap_out;
	bool		left,
				right;
	int			nmonths;
	DateADT		month[MAX_MONTHS];
	int32		nights[MAX_MONTHS];
	DateADT		start,
				end;
	TierCounters before;
	/* the stay already recorded with the call's idempotency key, if any */
	bool		replay;
	pg_uuid_t	replay_id;
	pg_uuid_t	replay_member;
	char	   *replay_store;
	DateADT		replay_in,
				replay_out;
	int32		replay_nights;
} StayFacts;

static SPIPlanPtr store_plan = NULL;
static SPIPlanPtr replay_lines_plan = NULL;
static SPIPlanPtr insert_stay_plan = NULL;
static SPIPlanPtr facts_plan = NULL;
static SPIPlanPtr counter_plan = NULL;
static SPIPlanPtr credit_plan = NULL;
static SPIPlanPtr checkout_plan = NULL;
static SPIPlanPtr credited_nights_plan = NULL;
static SPIPlanPtr base_lines_plan = NULL;
static SPIPlanPtr replay_charge_plan = NULL;
static SPIPlanPtr insert_charge_plan = NULL;

/*
 * uuid_str
 *		A uuid as text, for messages.
 */
static char *
uuid_str(const pg_uuid_t *u)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(u)));
}

/*
 * date_str
 *		A date as text, for messages.
 */
static char *
date_str(DateADT d)
{
	return DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(d)));
}

/*
 * required
 *		Error for a NULL required argument.
 */
static void
required(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/*
 * check_key
 *		The idempotency key (args.h).
 */
static char *
check_key(FunctionCallInfo fcinfo, int argno)
{
	return loyalty_arg_key(fcinfo, argno);
}

/*
 * check_caller
 *		Front desk, store managers (of this store), CRM and DBAs may record
 *		activity.
 */
static void
check_caller(const char *store)
{
	const LoyaltyCaller *caller = loyalty_caller();

	loyalty_require_department(caller,
							   DEPT_BIT(DEPT_FRONTDESK) | DEPT_BIT(DEPT_STORE_MANAGER) |
							   DEPT_BIT(DEPT_CRM) | DEPT_BIT(DEPT_DBA));
	loyalty_require_store(caller, store);
}

/*
 * store_brand
 *		The brand of an open store; errors for unknown or closed stores.
 */
static void
store_brand(const char *store, char *brand, size_t len)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;

	values[0] = CStringGetTextDatum(store);
	if (lspi_run(lspi_plan(&store_plan,
								 "SELECT brand, status FROM loyalty.store WHERE store_code = $1",
								 1, types),
					values, NULL, true, 1, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" does not exist", store)));
	text_to_cstring_buffer(DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 1, &isnull)),
						   brand, len);
	if (strcmp(TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 2, &isnull)),
			   "open") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("store \"%s\" is closed", store)));
}

/*
 * lock_member
 *		Lock and read the member; active and suspended members earn
 *		(suspended ones redeem nothing), closed and erased ones do not.
 */
static void
lock_member(const pg_uuid_t *member_id, TimestampTz at, TierMember *m)
{
	tier_member_lock(member_id, at, true, m);
	if (strcmp(m->status, "active") != 0 && strcmp(m->status, "suspended") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("member %s is %s and cannot earn", uuid_str(member_id), m->status)));
}

/*
 * replay_lines
 *		Fill a result's point totals from the recorded lines of a source.
 */
static void
replay_lines(const pg_uuid_t *source_id, StayResult *res)
{
	Oid			types[1] = {UUIDOID};
	Datum		values[1];
	bool		isnull;

	values[0] = UUIDPGetDatum(source_id);
	lspi_run(lspi_plan(&replay_lines_plan,
							 "SELECT coalesce(sum(points) FILTER (WHERE kind = 'base'), 0)::int8, "
							 "       coalesce(sum(points) FILTER (WHERE kind <> 'base'), 0)::int8, "
							 "       coalesce(bool_or(pending), false) "
							 "  FROM loyalty.earning_line WHERE source_id = $1",
							 1, types),
				values, NULL, true, 1, SPI_OK_SELECT);
	res->base_points = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	res->bonus_points = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	res->pending = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
}

/*
 * delta_add
 *		Add to one counter of one month.
 */
static void
delta_add(Deltas *d, DateADT month, LoyaltyCounter c, int64 v)
{
	int			i;

	if (v == 0)
		return;
	for (i = 0; i < d->n; i++)
		if (d->m[i].month == month)
			break;
	if (i == d->n)
	{
		if (d->n >= MAX_MONTHS)
			elog(ERROR, "too many months in one stay");
		memset(&d->m[i], 0, sizeof(MonthDelta));
		d->m[i].month = month;
		d->n++;
	}
	d->m[i].value[c] += v;
}

/*
 * apply_deltas
 *		Append the changes to tier_activity and add them to tier_counter:
 *		one statement per month.
 */
static void
apply_deltas(const pg_uuid_t *member_id, const Deltas *d, const char *source,
			 const pg_uuid_t *source_id)
{
	Oid			types[8] = {UUIDOID, DATEOID, INT4OID, INT4OID, INT8OID, INT8OID,
	TEXTOID, UUIDOID};
	Datum		values[8];
	int			i;

	for (i = 0; i < d->n; i++)
	{
		const MonthDelta *md = &d->m[i];

		if (md->value[0] == 0 && md->value[1] == 0 && md->value[2] == 0 && md->value[3] == 0)
			continue;
		values[0] = UUIDPGetDatum(member_id);
		values[1] = DateADTGetDatum(md->month);
		values[2] = Int32GetDatum((int32) md->value[COUNTER_NIGHTS]);
		values[3] = Int32GetDatum((int32) md->value[COUNTER_STAYS]);
		values[4] = Int64GetDatum(md->value[COUNTER_BASE_POINTS]);
		values[5] = Int64GetDatum(md->value[COUNTER_QUALIFYING_SPEND]);
		values[6] = CStringGetTextDatum(source);
		values[7] = UUIDPGetDatum(source_id);
		lspi_run(lspi_plan(&counter_plan,
						   "WITH a AS (INSERT INTO loyalty.tier_activity (member_id, month, nights, stays, "
						   "       base_points, qualifying_spend, source, source_id) "
						   "       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)) "
						   "INSERT INTO loyalty.tier_counter AS c (member_id, month, nights, stays, "
						   "       base_points, qualifying_spend) VALUES ($1, $2, $3, $4, $5, $6) "
						   "ON CONFLICT (member_id, month) DO UPDATE SET "
						   "  nights = c.nights + excluded.nights, stays = c.stays + excluded.stays, "
						   "  base_points = c.base_points + excluded.base_points, "
						   "  qualifying_spend = c.qualifying_spend + excluded.qualifying_spend",
						   8, types),
				 values, NULL, false, 0, SPI_OK_INSERT);
	}
}

/*
 * stay_facts
 *		One statement under the member's lock, before the stay is written
 *		(or, at checkout, with the in-house stay "self" left out): the stay
 *		recorded with idempotency key "key" (a retried call), an
 *		overlapping stay at the same store (not the one with idempotency
 *		key "key": a retried call), the nights of [ci, co) that no credited
 *		stay of the member covers, by month, whether a credited stay at the
 *		same store ends the day this one starts (left) or starts the day it
 *		ends (right), and the counters of the member's current period.  The
 *		member's stays are read once, through (member_id, check_in).
 */
static void
stay_facts(const LoyaltyPolicy *p, const TierMember *m, const char *store,
		   DateADT ci, DateADT co, const pg_uuid_t *self, const char *key,
		   StayFacts *f)
{
	Oid			types[8] = {UUIDOID, DATEOID, DATEOID, UUIDOID, TEXTOID, TEXTOID,
	DATEOID, DATEOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int			n,
				i,
				c;
	bool		isnull;

	memset(f, 0, sizeof(*f));
	tier_period_bounds(p, m->local_date, m->enrolled_local, &f->start, &f->end);
	values[0] = UUIDPGetDatum(&m->member_id);
	values[1] = DateADTGetDatum(ci);
	values[2] = DateADTGetDatum(co);
	values[3] = self ? UUIDPGetDatum(self) : (Datum) 0;
	if (self == NULL)
		nulls[3] = 'n';
	values[4] = CStringGetTextDatum(store);
	values[5] = key ? CStringGetTextDatum(key) : (Datum) 0;
	if (key == NULL)
		nulls[5] = 'n';
	values[6] = DateADTGetDatum(f->start);
	values[7] = DateADTGetDatum(f->end);
	n = lspi_run(lspi_plan(&facts_plan,
						   "WITH ms AS MATERIALIZED ( "
						   "  SELECT s.stay_id, s.store_code, s.check_in, s.check_out, s.status, "
						   "         s.nights_credited, s.idempotency_key "
						   "    FROM loyalty.stay s WHERE s.member_id = $1 AND s.check_in <= $3 "
						   "     AND s.stay_id IS DISTINCT FROM $4), "
						   "cr AS MATERIALIZED ( "
						   "  SELECT * FROM ms WHERE ms.nights_credited IS NOT NULL AND ms.status = 'checked_out'), "
						   "n AS ( "
						   "  SELECT date_trunc('month', g.d)::date AS month, count(*)::int4 AS nights "
						   "    FROM generate_series($2::timestamp, $3::timestamp - interval '1 day', "
						   "                         interval '1 day') AS g(d) "
						   "   WHERE NOT EXISTS (SELECT 1 FROM cr WHERE cr.check_in <= g.d::date "
						   "                        AND cr.check_out > g.d::date) "
						   "   GROUP BY 1) "
						   "SELECT n.month, n.nights, a.l, a.r, a.oi, a.oo, c.n, c.s, c.b, c.q, "
						   "       rp.stay_id, rp.member_id, rp.store_code, rp.check_in, rp.check_out, "
						   "       coalesce(rp.nights_credited, 0) FROM ( "
						   "  SELECT EXISTS (SELECT 1 FROM cr WHERE cr.store_code = $5 AND cr.check_out = $2) AS l, "
						   "         EXISTS (SELECT 1 FROM cr WHERE cr.store_code = $5 AND cr.check_in = $3) AS r, "
						   "         (SELECT ARRAY[o.check_in, o.check_out] FROM ms o WHERE o.store_code = $5 "
						   "             AND o.status <> 'cancelled' AND o.check_in < $3 AND o.check_out > $2 "
						   "             AND o.idempotency_key IS DISTINCT FROM $6 LIMIT 1) AS o) x "
						   "  CROSS JOIN LATERAL (SELECT x.l, x.r, x.o[1] AS oi, x.o[2] AS oo) a "
						   "  CROSS JOIN (SELECT coalesce(sum(t.nights), 0)::int8 AS n, coalesce(sum(t.stays), 0)::int8 AS s, "
						   "         coalesce(sum(t.base_points), 0)::int8 AS b, "
						   "         coalesce(sum(t.qualifying_spend), 0)::int8 AS q "
						   "    FROM loyalty.tier_counter t "
						   "   WHERE t.member_id = $1 AND t.month >= $7 AND t.month < $8) c "
						   "  LEFT JOIN loyalty.stay rp ON rp.idempotency_key = $6 "
						   "  LEFT JOIN n ON true",
						   8, types),
				 values, nulls, true, 0, SPI_OK_SELECT);
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum		month;

		if (i == 0)
		{
			Datum		oi;

			f->left = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
			f->right = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
			oi = SPI_getbinval(tup, desc, 5, &isnull);
			f->overlap = !isnull;
			if (f->overlap)
			{
				f->overlap_in = DatumGetDateADT(oi);
				f->overlap_out = DatumGetDateADT(SPI_getbinval(tup, desc, 6, &isnull));
			}
			for (c = 0; c < LOYALTY_NUM_COUNTERS; c++)
				f->before.value[c] = DatumGetInt64(SPI_getbinval(tup, desc, 7 + c, &isnull));
			oi = SPI_getbinval(tup, desc, 11, &isnull);
			f->replay = !isnull;
			if (f->replay)
			{
				f->replay_id = *DatumGetUUIDP(oi);
				f->replay_member = *DatumGetUUIDP(SPI_getbinval(tup, desc, 12, &isnull));
				f->replay_store = TextDatumGetCString(SPI_getbinval(tup, desc, 13, &isnull));
				f->replay_in = DatumGetDateADT(SPI_getbinval(tup, desc, 14, &isnull));
				f->replay_out = DatumGetDateADT(SPI_getbinval(tup, desc, 15, &isnull));
				f->replay_nights = DatumGetInt32(SPI_getbinval(tup, desc, 16, &isnull));
			}
		}
		month = SPI_getbinval(tup, desc, 1, &isnull);
		if (!isnull)
		{
			if (f->nmonths >= MAX_MONTHS)
				elog(ERROR, "too many months in one stay");
			f->month[f->nmonths] = DatumGetDateADT(month);
			f->nights[f->nmonths] = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
			f->nmonths++;
		}
	}
}

/*
 * stay_nights
 *		The nights a stay's credit adds (see stay_facts).
 */
static int32
stay_nights(const StayFacts *f)
{
	int32		nights = 0;
	int			i;

	for (i = 0; i < f->nmonths; i++)
		nights += f->nights[i];
	return nights;
}

/*
 * period_counters_after
 *		The counters of the period (known to start at "start" and end
 *		before "end", counters "before" this activity) after adding its
 *		deltas.
 */
static void
period_counters_after(const Deltas *d, DateADT start, DateADT end,
					  const TierCounters *before, TierCounters *after)
{
	int			i,
				c;

	*after = *before;
	for (i = 0; i < d->n; i++)
		if (d->m[i].month >= start && d->m[i].month < end)
			for (c = 0; c < LOYALTY_NUM_COUNTERS; c++)
				after->value[c] += d->m[i].value[c];
}

/*
 * period_counters_now
 *		The period's bounds and counters read now (charges, which read
 *		nothing else about the member's stays).
 */
static void
period_counters_now(const LoyaltyPolicy *p, TierMember *m, DateADT *start,
					DateADT *end, TierCounters *before)
{
	tier_period_bounds(p, m->local_date, m->enrolled_local, start, end);
	tier_counters_sum(&m->member_id, *start, *end, false, 0, before);
}

/*
 * credit_stay
 *		Credit a stay to the (locked) member's counters: new nights, merged
 *		stays, base points and spend (from "f", read by stay_facts);
 *		milestone lines; activation of the stay's pending lines (if it may
 *		have any); the instant upgrade.  "earned" holds the stay's lines
 *		(its base points), milestone lines are appended.  The stay row is
 *		marked credited here when update_row is set (checkout); stay_record
 *		writes a checked-out stay credited in its INSERT.
 */
static void
credit_stay(const LoyaltyPolicy *p, TierMember *m, const pg_uuid_t *stay_id,
			const char *store, DateADT ci, DateADT co, int64 spend,
			TimestampTz occurred_at, bool had_pending, bool update_row,
			const StayFacts *f, EarnResult *earned, StayResult *res)
{
	Deltas		d;
	int			i,
				first_milestone;
	int32		nights = stay_nights(f);
	TierCounters after;

	memset(&d, 0, sizeof(d));
	for (i = 0; i < f->nmonths; i++)
		delta_add(&d, f->month[i], COUNTER_NIGHTS, f->nights[i]);

	/*
	 * Consecutive nights at one store are one stay: a credited stay at the
	 * same store that ends the day this one starts (left) or starts the day
	 * it ends (right) merges with it.
	 */
	if (nights > 0 || f->left || f->right)
	{
		/* a stay counts in the month of its first night */
		if (!f->left)
			delta_add(&d, loyalty_month_start(ci), COUNTER_STAYS, 1);
		if (f->right)
			delta_add(&d, loyalty_month_start(co), COUNTER_STAYS, -1);
	}

	/* base points and spend count in the member-local month of the activity */
	delta_add(&d, loyalty_month_start(m->local_date), COUNTER_BASE_POINTS,
			  earning_base_points(earned));
	delta_add(&d, loyalty_month_start(m->local_date), COUNTER_QUALIFYING_SPEND, spend);

	period_counters_after(&d, f->start, f->end, &f->before, &after);
	apply_deltas(&m->member_id, &d, "stay", stay_id);
	first_milestone = earned->nlines;
	earning_milestones(p, f->before.value[COUNTER_NIGHTS], after.value[COUNTER_NIGHTS], earned);
	earning_post(earned, first_milestone, "stay", stay_id, &m->member_id, store,
				 false, occurred_at);

	if (update_row)
	{
		Oid			ctypes[2] = {UUIDOID, INT4OID};
		Datum		cvalues[2];

		cvalues[0] = UUIDPGetDatum(stay_id);
		cvalues[1] = Int32GetDatum(nights);
		lspi_run(lspi_plan(&credit_plan,
								 "UPDATE loyalty.stay SET status = 'checked_out', nights_credited = $2, "
								 "       credited_at = now() WHERE stay_id = $1", 2, ctypes),
					cvalues, NULL, false, 0, SPI_OK_UPDATE);
	}
	if (had_pending)
		earning_activate(stay_id, &m->member_id, store);

	res->nights = nights;
	res->tier_changed = tier_upgrade_with(m, p, &after, f->start, store, "qualified");
	strlcpy(res->tier, m->tier, sizeof(res->tier));
}

/*
 * result_tuple
 *		The SQL result of every call.
 */
static Datum
result_tuple(FunctionCallInfo fcinfo, const StayResult *r)
{
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8] = {0};
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	*id = r->id;
	values[0] = UUIDPGetDatum(id);
	values[1] = BoolGetDatum(r->replayed);
	values[2] = Int32GetDatum(r->nights);
	values[3] = Int64GetDatum(r->base_points);
	values[4] = Int64GetDatum(r->bonus_points);
	values[5] = BoolGetDatum(r->pending);
	values[6] = CStringGetTextDatum(r->tier);
	values[7] = BoolGetDatum(r->tier_changed);
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls));
}

/*
 * audit_earning
 *		The change record of a stay, checkout or charge that wrote (not a
 *		replay), in its transaction: purpose service, what was earned as
 *		detail.
 */
static void
audit_earning(const pg_uuid_t *member_id, const char *action, const char *store,
			  const StayResult *r)
{
	static const char *const keys[6] = {"id", "store_code", "nights", "base_points",
	"bonus_points", "tier"};
	static const bool quoted[6] = {true, true, false, false, false, true};
	const char *values[6];

	values[0] = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&r->id)));
	values[1] = store;
	values[2] = psprintf("%d", r->nights);
	values[3] = psprintf(INT64_FORMAT, r->base_points);
	values[4] = psprintf(INT64_FORMAT, r->bonus_points);
	values[5] = r->tier;
	loyalty_audit_change(member_id, action, "service",
						 loyalty_audit_detail(6, keys, values, quoted));
}

/*
 * activity_time
 *		The time of the activity: the argument, else the transaction's.
 */
static TimestampTz
activity_time(FunctionCallInfo fcinfo, int argno)
{
	TimestampTz t;

	if (PG_ARGISNULL(argno))
		return GetCurrentTransactionStartTimestamp();
	t = PG_GETARG_TIMESTAMPTZ(argno);
	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("occurred_at must be a finite time")));
	return t;
}

/*
 * loyalty.stay_record(idempotency_key, store_code, member_id, check_in,
 *		check_out, rooms, room_revenue, other_revenue, checked_out,
 *		occurred_at)
 */
Datum
loyalty_record_stay(PG_FUNCTION_ARGS)
{
	char	   *key = check_key(fcinfo, 0);
	char	   *store;
	pg_uuid_t	member_id;
	DateADT		ci,
				co;
	int32		rooms;
	int64		room_minor,
				other_minor;
	bool		checked_out;
	TimestampTz occurred_at;
	const LoyaltyPolicy *p;
	char		brand[LOYALTY_CODE_LEN];
	TierMember	m;
	StayResult	res;
	EarnInput	in;
	EarnResult *earned;
	StayFacts	facts;
	bool		isnull;

	required(fcinfo, 1, "store_code");
	required(fcinfo, 2, "member_id");
	required(fcinfo, 3, "check_in");
	required(fcinfo, 4, "check_out");
	store = TextDatumGetCString(PG_GETARG_DATUM(1));
	member_id = *PG_GETARG_UUID_P(2);
	ci = PG_GETARG_DATEADT(3);
	co = PG_GETARG_DATEADT(4);
	rooms = PG_ARGISNULL(5) ? 1 : PG_GETARG_INT32(5);
	checked_out = PG_ARGISNULL(8) ? true : PG_GETARG_BOOL(8);
	occurred_at = activity_time(fcinfo, 9);
	check_caller(store);

	if (DATE_NOT_FINITE(ci) || DATE_NOT_FINITE(co))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("check-in and check-out must be finite dates")));
	if (co < ci)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("check-out %s is before check-in %s", date_str(co), date_str(ci))));
	if (co == ci)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a stay needs at least one night"),
				 errdetail("Check-in and check-out are both %s.", date_str(ci)),
				 errhint("Record a day use as a charge with loyalty.charge_record().")));
	if (co - ci > MAX_STAY_NIGHTS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a stay of %d nights is longer than %d nights", co - ci, MAX_STAY_NIGHTS)));
	if (rooms < 1 || rooms > 50)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rooms must be between 1 and 50")));

	lspi_connect(LSPI_READ_WRITE);
	p = loyalty_policy_at(occurred_at);
	room_minor = PG_ARGISNULL(6) ? 0 :
		earning_amount_minor(PG_GETARG_DATUM(6), p->currency_scale, "room revenue");
	other_minor = PG_ARGISNULL(7) ? 0 :
		earning_amount_minor(PG_GETARG_DATUM(7), p->currency_scale, "other revenue");
	if (room_minor > INT64CONST(99999999999) || other_minor > INT64CONST(99999999999))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("revenue of one stay must be below 1,000,000,000 currency units")));
	store_brand(store, brand, sizeof(brand));
	lock_member(&member_id, occurred_at, &m);
	memset(&res, 0, sizeof(res));

	/*
	 * At a store replica: provisional figures by the replicated policy and
	 * tier, and a 'stay' event HQ applies through this function
	 * (src/replica_offline.c).
	 */
	if (replica_offline_here())
	{
		earned = palloc0(sizeof(EarnResult));
		in.policy = p;
		in.member = &m;
		in.store = store;
		in.brand = brand;
		in.eligible_minor = room_minor + other_minor;
		in.occurred_at = occurred_at;
		earning_compute(&in, earned);
		res.nights = checked_out ? co - ci : 0;
		res.base_points = earning_base_points(earned);
		res.bonus_points = earning_bonus_points(earned);
		strlcpy(res.tier, m.tier, sizeof(res.tier));
		replica_offline_stay(key, &member_id, store, ci, co, rooms,
							 PG_ARGISNULL(6) ? DirectFunctionCall1(int8_numeric, Int64GetDatum(0)) : PG_GETARG_DATUM(6),
							 PG_ARGISNULL(7) ? DirectFunctionCall1(int8_numeric, Int64GetDatum(0)) : PG_GETARG_DATUM(7),
							 checked_out, occurred_at, &res);
		lspi_finish();
		PG_RETURN_DATUM(result_tuple(fcinfo, &res));
	}

	/*
	 * What the member's stays say about this one, in one statement: a
	 * retried call returns the first call's result; overlapping stays of
	 * one member at one store are a booking error; the nights it credits.
	 */
	stay_facts(p, &m, store, ci, co, NULL, key, &facts);
	if (facts.replay)
	{
		res.id = facts.replay_id;
		if (memcmp(&facts.replay_member, &member_id, sizeof(pg_uuid_t)) != 0 ||
			strcmp(facts.replay_store, store) != 0 ||
			facts.replay_in != ci || facts.replay_out != co)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("idempotency key \"%s\" was already used for another stay", key),
					 errdetail("A retried call must repeat the first call's member, store and dates.")));
		res.nights = facts.replay_nights;
		res.replayed = true;
		replay_lines(&res.id, &res);
		strlcpy(res.tier, m.tier, sizeof(res.tier));
		lspi_finish();
		PG_RETURN_DATUM(result_tuple(fcinfo, &res));
	}
	if (facts.overlap)
		ereport(ERROR,
				(errcode(ERRCODE_EXCLUSION_VIOLATION),
				 errmsg("stay from %s to %s overlaps the member's stay from %s to %s at store \"%s\"",
						date_str(ci), date_str(co), date_str(facts.overlap_in),
						date_str(facts.overlap_out), store),
				 errhint("Record several rooms of one booking with the rooms argument.")));

	/* the stay; a checked-out one is written credited (credit_stay) */
	{
		Oid			types[11] = {UUIDOID, TEXTOID, DATEOID, DATEOID, INT4OID,
		NUMERICOID, NUMERICOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, INT4OID};
		Datum		values[11];
		char		nulls[11] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

		values[0] = UUIDPGetDatum(&member_id);
		values[1] = CStringGetTextDatum(store);
		values[2] = DateADTGetDatum(ci);
		values[3] = DateADTGetDatum(co);
		values[4] = Int32GetDatum(rooms);
		values[5] = PG_ARGISNULL(6) ? DirectFunctionCall1(int8_numeric, Int64GetDatum(0)) : PG_GETARG_DATUM(6);
		values[6] = PG_ARGISNULL(7) ? DirectFunctionCall1(int8_numeric, Int64GetDatum(0)) : PG_GETARG_DATUM(7);
		values[7] = CStringGetTextDatum(checked_out ? "checked_out" : "in_house");
		values[8] = CStringGetTextDatum(key);
		values[9] = TimestampTzGetDatum(occurred_at);
		values[10] = Int32GetDatum(stay_nights(&facts));
		if (!checked_out)
			nulls[10] = 'n';
		lspi_run(lspi_plan(&insert_stay_plan,
								 "INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, rooms, "
								 "       room_revenue, other_revenue, status, idempotency_key, occurred_at, "
								 "       nights_credited, credited_at) "
								 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
								 "        CASE WHEN $11 IS NOT NULL THEN now() END) RETURNING stay_id",
								 11, types),
					values, nulls, false, 0, SPI_OK_INSERT_RETURNING);
		res.id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}

	/* earning: base, elite, campaigns */
	earned = palloc0(sizeof(EarnResult));
	in.policy = p;
	in.member = &m;
	in.store = store;
	in.brand = brand;
	in.eligible_minor = room_minor + other_minor;
	in.occurred_at = occurred_at;
	earning_compute(&in, earned);
	res.pending = !checked_out && p->pending_until == PENDING_UNTIL_CHECKOUT;
	earning_post(earned, 0, "stay", &res.id, &member_id, store, res.pending, occurred_at);

	if (checked_out)
		credit_stay(p, &m, &res.id, store, ci, co, room_minor + other_minor,
					occurred_at, res.pending, false, &facts, earned, &res);
	else
		strlcpy(res.tier, m.tier, sizeof(res.tier));
	res.base_points = earning_base_points(earned);
	res.bonus_points = earning_bonus_points(earned);
	lspi_finish();
	audit_earning(&member_id, "stay_record", store, &res);
	PG_RETURN_DATUM(result_tuple(fcinfo, &res));
}

/*
 * loyalty.stay_checkout(idempotency_key, occurred_at)
 *		Check out an in-house stay recorded with checked_out => false:
 *		credit it and activate its pending points.  Checking out a stay
 *		that is already checked out returns its result again.
 */
Datum
loyalty_stay_checkout(PG_FUNCTION_ARGS)
{
	char	   *key = check_key(fcinfo, 0);
	TimestampTz occurred_at = activity_time(fcinfo, 1);
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	const LoyaltyPolicy *p;
	pg_uuid_t	member_id;
	char	   *store;
	DateADT		ci,
				co;
	int64		spend;
	char	   *status;
	TierMember	m;
	StayResult	res;
	EarnResult *earned;
	StayFacts	facts;
	bool		isnull;
	int			ret,
				i;
	HeapTuple	tup;
	TupleDesc	desc;

	lspi_connect(LSPI_READ_WRITE);
	/* at a store replica: a 'checkout' event (src/replica_offline.c) */
	if (replica_offline_here())
	{
		memset(&res, 0, sizeof(res));
		replica_offline_checkout(key, occurred_at, &res);
		lspi_finish();
		PG_RETURN_DATUM(result_tuple(fcinfo, &res));
	}
	values[0] = CStringGetTextDatum(key);
	if (lspi_run(lspi_plan(&checkout_plan,
								 "SELECT stay_id, member_id, store_code, check_in, check_out, status, "
								 "       room_revenue + other_revenue "
								 "  FROM loyalty.stay WHERE idempotency_key = $1", 1, types),
					values, NULL, true, 1, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no stay was recorded with idempotency key \"%s\"", key)));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	memset(&res, 0, sizeof(res));
	res.id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
	member_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull));
	store = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
	ci = DatumGetDateADT(SPI_getbinval(tup, desc, 4, &isnull));
	co = DatumGetDateADT(SPI_getbinval(tup, desc, 5, &isnull));
	status = TextDatumGetCString(SPI_getbinval(tup, desc, 6, &isnull));
	check_caller(store);

	p = loyalty_policy_at(occurred_at);
	spend = earning_amount_minor(SPI_getbinval(tup, desc, 7, &isnull),
								 p->currency_scale, "stay revenue");
	lock_member(&member_id, occurred_at, &m);

	/* re-read under the member lock: a concurrent checkout may have won */
	if (lspi_run(checkout_plan, values, NULL, true, 1, SPI_OK_SELECT) > 0)
		status = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 6, &isnull));
	if (strcmp(status, "in_house") != 0)
	{
		if (strcmp(status, "checked_out") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("stay \"%s\" is %s and cannot be checked out", key, status)));
		res.replayed = true;
		replay_lines(&res.id, &res);
		{
			Oid			t1[1] = {UUIDOID};
			Datum		v1[1];
			v1[0] = UUIDPGetDatum(&res.id);
			lspi_run(lspi_plan(&credited_nights_plan,
							   "SELECT coalesce(nights_credited, 0) FROM loyalty.stay WHERE stay_id = $1",
							   1, t1),
					 v1, NULL, true, 1, SPI_OK_SELECT);
			res.nights = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		}
		strlcpy(res.tier, m.tier, sizeof(res.tier));
		lspi_finish();
		PG_RETURN_DATUM(result_tuple(fcinfo, &res));
	}

	/* the stay's lines so far (base points for the counters) */
	earned = palloc0(sizeof(EarnResult));
	{
		Oid			t1[1] = {UUIDOID};
		Datum		v1[1];
		v1[0] = UUIDPGetDatum(&res.id);
		ret = lspi_run(lspi_plan(&base_lines_plan,
								 "SELECT points FROM loyalty.earning_line "
								 " WHERE source_id = $1 AND kind = 'base'", 1, t1),
					   v1, NULL, true, 0, SPI_OK_SELECT);
		for (i = 0; i < ret; i++)
		{
			EarnLine   *l = earning_add_line(earned, EARN_BASE,
											 DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
																		 SPI_tuptable->tupdesc, 1, &isnull)));

			if (l)
				strlcpy(l->rule, "base", sizeof(l->rule));
		}
	}
	stay_facts(p, &m, store, ci, co, &res.id, NULL, &facts);
	credit_stay(p, &m, &res.id, store, ci, co, spend, occurred_at, true, true,
				&facts, earned, &res);
	replay_lines(&res.id, &res);
	/* before lspi_finish: store lives in the SPI context */
	audit_earning(&member_id, "stay_checkout", store, &res);
	lspi_finish();
	PG_RETURN_DATUM(result_tuple(fcinfo, &res));
}

/*
 * loyalty.charge_record(idempotency_key, store_code, member_id, amount,
 *		occurred_at)
 *		An eligible charge outside a stay: base, elite and campaign points
 *		(active at once), base points and qualifying spend counters, and
 *		the instant upgrade.
 */
Datum
loyalty_record_charge(PG_FUNCTION_ARGS)
{
	char	   *key = check_key(fcinfo, 0);
	char	   *store;
	pg_uuid_t	member_id;
	int64		amount;
	TimestampTz occurred_at;
	const LoyaltyPolicy *p;
	char		brand[LOYALTY_CODE_LEN];
	TierMember	m;
	StayResult	res;
	EarnInput	in;
	EarnResult *earned;
	Deltas		d;
	TierCounters before,
				after;
	DateADT		start,
				end;
	bool		isnull;
	Oid			types[5] = {TEXTOID, UUIDOID, TEXTOID, NUMERICOID, TIMESTAMPTZOID};
	Datum		values[5];

	required(fcinfo, 1, "store_code");
	required(fcinfo, 2, "member_id");
	required(fcinfo, 3, "amount");
	store = TextDatumGetCString(PG_GETARG_DATUM(1));
	member_id = *PG_GETARG_UUID_P(2);
	occurred_at = activity_time(fcinfo, 4);
	check_caller(store);

	lspi_connect(LSPI_READ_WRITE);
	p = loyalty_policy_at(occurred_at);
	amount = earning_amount_minor(PG_GETARG_DATUM(3), p->currency_scale, "amount");
	if (amount == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount must be positive")));
	if (amount > INT64CONST(99999999999))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("a charge must be below 1,000,000,000 currency units")));
	store_brand(store, brand, sizeof(brand));
	lock_member(&member_id, occurred_at, &m);
	memset(&res, 0, sizeof(res));

	/* at a store replica: provisional figures and a 'charge' event */
	if (replica_offline_here())
	{
		earned = palloc0(sizeof(EarnResult));
		in.policy = p;
		in.member = &m;
		in.store = store;
		in.brand = brand;
		in.eligible_minor = amount;
		in.occurred_at = occurred_at;
		earning_compute(&in, earned);
		res.base_points = earning_base_points(earned);
		res.bonus_points = earning_bonus_points(earned);
		strlcpy(res.tier, m.tier, sizeof(res.tier));
		replica_offline_charge(key, &member_id, store, PG_GETARG_DATUM(3), occurred_at, &res);
		lspi_finish();
		PG_RETURN_DATUM(result_tuple(fcinfo, &res));
	}

	values[0] = CStringGetTextDatum(key);
	values[1] = UUIDPGetDatum(&member_id);
	values[2] = CStringGetTextDatum(store);
	lspi_plan(&replay_charge_plan,
				 "SELECT charge_id, member_id = $2 AND store_code = $3 "
				 "  FROM loyalty.charge WHERE idempotency_key = $1", 3, types);
	if (lspi_run(replay_charge_plan, values, NULL, true, 1, SPI_OK_SELECT) > 0)
	{
		res.id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("idempotency key \"%s\" was already used for another charge", key)));
		res.replayed = true;
		replay_lines(&res.id, &res);
		strlcpy(res.tier, m.tier, sizeof(res.tier));
		lspi_finish();
		PG_RETURN_DATUM(result_tuple(fcinfo, &res));
	}

	values[3] = PG_GETARG_DATUM(3);
	values[4] = TimestampTzGetDatum(occurred_at);
	lspi_run(lspi_plan(&insert_charge_plan,
							 "INSERT INTO loyalty.charge (idempotency_key, member_id, store_code, amount, occurred_at) "
							 "VALUES ($1, $2, $3, $4, $5) RETURNING charge_id", 5, types),
				values, NULL, false, 0, SPI_OK_INSERT_RETURNING);
	res.id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	earned = palloc0(sizeof(EarnResult));
	in.policy = p;
	in.member = &m;
	in.store = store;
	in.brand = brand;
	in.eligible_minor = amount;
	in.occurred_at = occurred_at;
	earning_compute(&in, earned);
	earning_post(earned, 0, "charge", &res.id, &member_id, store, false, occurred_at);

	memset(&d, 0, sizeof(d));
	delta_add(&d, loyalty_month_start(m.local_date), COUNTER_BASE_POINTS, earning_base_points(earned));
	delta_add(&d, loyalty_month_start(m.local_date), COUNTER_QUALIFYING_SPEND, amount);
	period_counters_now(p, &m, &start, &end, &before);
	period_counters_after(&d, start, end, &before, &after);
	apply_deltas(&member_id, &d, "charge", &res.id);

	res.base_points = earning_base_points(earned);
	res.bonus_points = earning_bonus_points(earned);
	res.tier_changed = tier_upgrade_with(&m, p, &after, start, store, "qualified");
	strlcpy(res.tier, m.tier, sizeof(res.tier));
	lspi_finish();
	audit_earning(&member_id, "charge_record", store, &res);
	PG_RETURN_DATUM(result_tuple(fcinfo, &res));
}
