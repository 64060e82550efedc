/*-------------------------------------------------------------------------
 *
 * tier_batch.c
 *	  Batch requalification and period-end downgrades.
 *
 * loyalty.tier_requalify (a procedure, src/sql/24_tier_batch.sql) walks
 * the members in key order, one batch per transaction.  Each batch reads
 * its members' period counters in one set-based query and picks the
 * candidates (validity ended, counters that earn a higher tier, or the
 * same tier again with a later validity).  The candidates are then locked,
 * with the row lock stays take, so the batch is safe while stays keep
 * arriving, and decided again under it: those whose counters earn an
 * upgrade or a longer validity all at once (one statement locks them, one
 * reads their rows and counters again, one writes every change with its
 * history and event rows: upgrade_locked), those whose validity has ended
 * one by one (grants and floors, requalify_one).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "roles_caller.h"
#include "tier.h"
#include "spi.h"

/*
 * The qualifying period's totals of member b (a row with member_id and ps,
 * the period's first month) from its monthly counters, as columns n
 * (nights), s (stays), b (base points) and q (qualifying spend): the
 * lateral join both batch reads below use.
 */
#define TIER_PERIOD_TOTALS_SQL \
	" CROSS JOIN LATERAL ( " \
	"       SELECT coalesce(sum(c.nights), 0)::int8 AS n, coalesce(sum(c.stays), 0)::int8 AS s, " \
	"              coalesce(sum(c.base_points), 0)::int8 AS b, " \
	"              coalesce(sum(c.qualifying_spend), 0)::int8 AS q " \
	"         FROM loyalty.tier_counter c WHERE c.member_id = b.member_id " \
	"          AND c.month >= b.ps AND c.month < (b.ps + interval '12 months')::date) c "

PG_FUNCTION_INFO_V1(loyalty_tier_period_start);
PG_FUNCTION_INFO_V1(loyalty_tier_decide);
PG_FUNCTION_INFO_V1(loyalty_tier_requalify_batch);

static SPIPlanPtr batch_plan = NULL;
static SPIPlanPtr lock_plan = NULL;
static SPIPlanPtr lock_next_plan = NULL;
static SPIPlanPtr locked_plan = NULL;

/*
 * The last batch this backend ran: its last member and whether most of its
 * members were candidates.  The next batch of the same run (it starts
 * after that member) then locks its members first and reads them once
 * (a first run, where most members change); otherwise it reads first and
 * locks the candidates only (the nightly run, where few do).
 */
static pg_uuid_t prev_last;
static bool prev_valid = false;
static bool prev_dense = false;

static const char *const action_names[] = {"keep", "extend", "change"};

/*
 * plan_custom
 *		A kept plan that is planned again with the values of every call
 *		(CURSOR_OPT_CUSTOM_PLAN): the walk in member key order with
 *		"member_id > $1 ... LIMIT $2", which a generic plan runs as a scan
 *		of every member after $1 and a sort, once per batch.
 */
static SPIPlanPtr
plan_custom(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_CUSTOM_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*slot = plan;
	}
	return *slot;
}

/*
 * loyalty._tier_period_start(period int4, local date, enrolled date)
 *		The first month of the qualification period containing "local"
 *		(period: 0 calendar year, 1 rolling 12 months, 2 anniversary).
 */
Datum
loyalty_tier_period_start(PG_FUNCTION_ARGS)
{
	LoyaltyPolicy *p = palloc0(sizeof(LoyaltyPolicy));
	DateADT		start,
				end;
	int32		kind = PG_GETARG_INT32(0);

	if (kind < PERIOD_CALENDAR_YEAR || kind > PERIOD_ANNIVERSARY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown qualification period %d", kind)));
	p->period = (QualificationPeriod) kind;
	tier_period_bounds(p, PG_GETARG_DATEADT(1), PG_GETARG_DATEADT(2), &start, &end);
	PG_RETURN_DATEADT(start);
}

/*
 * is_expired
 *		The member holds a tier above the base whose validity has ended.
 */
static bool
is_expired(const TierMember *m, const LoyaltyPolicy *p, TimestampTz at)
{
	return tier_rank_of(p, m->tier) > 0 && m->has_valid_until && m->valid_until <= at;
}

/*
 * loyalty._tier_decide(member_id uuid, at timestamptz)
 *		What the downgrade batch would do to one member at "at", without
 *		changing anything: action (keep, extend, change), tier, validity
 *		and reason.
 */
Datum
loyalty_tier_decide(PG_FUNCTION_ARGS)
{
	pg_uuid_t	member_id = *PG_GETARG_UUID_P(0);
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(1);
	const LoyaltyPolicy *p;
	TierMember	m;
	TierDecision d;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {0};
	char		tier[LOYALTY_CODE_LEN];

	lspi_connect(LSPI_READ_ONLY);
	p = loyalty_policy_at(at);
	tier_member_lock(&member_id, at, false, &m);
	if (is_expired(&m, p, at))
		tier_decide_expired(&m, p, at, &d);
	else
	{
		memset(&d, 0, sizeof(d));
		d.action = TIER_KEEP;
		d.new_rank = tier_rank_of(p, m.tier);
		d.has_valid_until = m.has_valid_until;
		d.valid_until = m.valid_until;
		strlcpy(d.reason, "valid", sizeof(d.reason));
	}
	strlcpy(tier, d.action == TIER_KEEP ? m.tier : p->tiers[d.new_rank].code, sizeof(tier));
	lspi_finish();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = CStringGetTextDatum(action_names[d.action]);
	values[1] = CStringGetTextDatum(tier);
	values[2] = TimestampTzGetDatum(d.valid_until);
	nulls[2] = !d.has_valid_until;
	values[3] = CStringGetTextDatum(d.reason);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/*
 * requalify_one
 *		Lock one member and apply the decision: a downgrade or extension
 *		when its validity has ended, else (unless expired_only) an upgrade
 *		or extension its counters earn.  Returns true if anything changed.
 */
static bool
requalify_one(const pg_uuid_t *member_id, const LoyaltyPolicy *p,
			  TimestampTz at, bool expired_only)
{
	TierMember	m;

	tier_member_lock(member_id, at, true, &m);
	if (strcmp(m.status, "active") != 0)
		return false;
	if (is_expired(&m, p, at))
	{
		TierDecision d;
		char		reason[128];

		tier_decide_expired(&m, p, at, &d);
		if (d.action == TIER_KEEP)
			return false;
		snprintf(reason, sizeof(reason), "%s: %s",
				 d.action == TIER_CHANGE ? "downgrade" : "extended", d.reason);
		tier_set(&m, p->tiers[d.new_rank].code, d.has_valid_until, d.valid_until,
				 reason, NULL, NULL);
		return true;
	}
	if (expired_only)
		return false;
	return tier_upgrade_check(&m, p, at, NULL, "qualified (batch)");
}

/*
 * upgrade_locked
 *		The upgrade candidates of a batch (member ids in key order): lock
 *		them all (unless "lock" is false: the caller locked them), read their rows and current period's counters again under
 *		the lock (a new snapshot, which sees every stay that held a lock
 *		before), and apply what tier_upgrade_check would apply to each, in
 *		one statement (tier_set_many).  Members whose validity has ended by
 *		now go to requalify_one.  Returns the number changed.
 */
static int
upgrade_locked(const pg_uuid_t *ids, int nids, const LoyaltyPolicy *p,
			   TimestampTz at, const char *reason, bool lock)
{
	Oid			types[3] = {UUIDARRAYOID, TIMESTAMPTZOID, INT4OID};
	Datum		values[3];
	Datum	   *d;
	TierChange *changes;
	pg_uuid_t  *expired;
	int			nchanges = 0,
				nexpired = 0,
				changed = 0,
				n,
				i;

	if (nids == 0)
		return 0;
	d = palloc(sizeof(Datum) * nids);
	for (i = 0; i < nids; i++)
		d[i] = UUIDPGetDatum(&ids[i]);
	values[0] = PointerGetDatum(construct_array(d, nids, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	values[1] = TimestampTzGetDatum(at);
	values[2] = Int32GetDatum((int32) p->period);
	if (lock)
		lspi_run(lspi_plan(&lock_plan,
						   "SELECT m.member_id FROM loyalty.member m WHERE m.member_id = ANY ($1) "
						   " ORDER BY m.member_id FOR NO KEY UPDATE OF m",
						   1, types),
				 values, NULL, false, 0, SPI_OK_SELECT);
	n = lspi_run(lspi_plan(&locked_plan,
						   "WITH b AS ( "
						   "  SELECT m.member_id, m.tier, m.tier_valid_until, m.status, "
						   "         coalesce(m.time_zone, s.time_zone) AS tz, "
						   "         ($2 AT TIME ZONE coalesce(m.time_zone, s.time_zone))::date AS local, "
						   "         loyalty._tier_period_start($3, "
						   "             ($2 AT TIME ZONE coalesce(m.time_zone, s.time_zone))::date, "
						   "             (m.enrolled_at AT TIME ZONE coalesce(m.time_zone, s.time_zone))::date) AS ps "
						   "    FROM loyalty.member m JOIN loyalty.store s ON s.store_code = m.home_store "
						   "   WHERE m.member_id = ANY ($1)) "
						   "SELECT b.member_id, b.tier, b.tier_valid_until, b.status, b.tz, b.local, b.ps, "
						   "       c.n, c.s, c.b, c.q "
						   "  FROM b" TIER_PERIOD_TOTALS_SQL
						   " ORDER BY b.member_id",
						   3, types),
				 values, NULL, false, 0, SPI_OK_SELECT);
	changes = palloc(sizeof(TierChange) * Max(n, 1));
	expired = palloc(sizeof(pg_uuid_t) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		TierMember	m;
		TierCounters c;
		DateADT		start;
		Datum		vu;
		int			k,
					q,
					r;
		TimestampTz until;
		TierChange *ch;

		memset(&m, 0, sizeof(m));
		m.member_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
		text_to_cstring_buffer(DatumGetTextPP(SPI_getbinval(tup, desc, 2, &isnull)),
							   m.tier, sizeof(m.tier));
		vu = SPI_getbinval(tup, desc, 3, &isnull);
		m.has_valid_until = !isnull;
		m.valid_until = isnull ? 0 : DatumGetTimestampTz(vu);
		text_to_cstring_buffer(DatumGetTextPP(SPI_getbinval(tup, desc, 4, &isnull)),
							   m.status, sizeof(m.status));
		text_to_cstring_buffer(DatumGetTextPP(SPI_getbinval(tup, desc, 5, &isnull)),
							   m.time_zone, sizeof(m.time_zone));
		m.local_date = DatumGetDateADT(SPI_getbinval(tup, desc, 6, &isnull));
		start = DatumGetDateADT(SPI_getbinval(tup, desc, 7, &isnull));
		for (k = 0; k < LOYALTY_NUM_COUNTERS; k++)
			c.value[k] = DatumGetInt64(SPI_getbinval(tup, desc, 8 + k, &isnull));

		if (strcmp(m.status, "active") != 0)
			continue;
		if (is_expired(&m, p, at))
		{
			expired[nexpired++] = m.member_id;
			continue;
		}
		/* as tier_upgrade_with */
		q = tier_qualified_rank(p, &c);
		if (q == 0)
			continue;
		r = tier_rank_of(p, m.tier);
		if (q < r)
			continue;
		until = tier_validity_end(p, loyalty_date_year(m.local_date), m.time_zone);
		if (q == r && (!m.has_valid_until || m.valid_until >= until))
			continue;
		ch = &changes[nchanges++];
		ch->member_id = m.member_id;
		strlcpy(ch->old_tier, m.tier, sizeof(ch->old_tier));
		strlcpy(ch->new_tier, p->tiers[q].code, sizeof(ch->new_tier));
		ch->has_old_valid = m.has_valid_until;
		ch->old_valid = m.valid_until;
		ch->has_valid = true;
		ch->valid_until = until;
		ch->reason = q > r ? reason : "requalified";
		ch->detail_json = tier_counters_json(&c, start);
	}
	tier_set_many(changes, nchanges);
	changed = nchanges;
	for (i = 0; i < nexpired; i++)
		if (requalify_one(&expired[i], p, at, false))
			changed++;
	return changed;
}

/*
 * loyalty._tier_requalify_batch(after uuid, batch_size int4, at timestamptz,
 *		expired_only bool) returns (last_member uuid, processed int4,
 *		changed int4)
 *		One batch of the requalification procedure.
 */
Datum
loyalty_tier_requalify_batch(PG_FUNCTION_ARGS)
{
	pg_uuid_t	after = *PG_GETARG_UUID_P(0);
	int32		batch = PG_GETARG_INT32(1);
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(2);
	bool		expired_only = PG_GETARG_BOOL(3);
	const LoyaltyPolicy *p;
	Oid			types[4] = {UUIDOID, INT4OID, TIMESTAMPTZOID, INT4OID};
	Datum		values[4];
	int			n,
				i,
				ncand = 0,
				changed = 0;
	pg_uuid_t  *cand;
	bool	   *cand_expired;
	int			nup;
	bool		dense = false;
	pg_uuid_t	last;
	TupleDesc	tupdesc;
	Datum		out[3];
	bool		nulls[3] = {0};

	loyalty_require_department(loyalty_caller(), DEPT_BIT(DEPT_CRM) | DEPT_BIT(DEPT_DBA));
	/* previews (loyalty.tier_downgrade_preview) may look ahead; the batch may not */
	if (at > GetCurrentTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("as_of must not be in the future"),
				 errdetail("A tier batch changes tiers only as of now or an earlier time."),
				 errhint("loyalty.tier_downgrade_preview() shows what a later run would do.")));
	if (batch < 1 || batch > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be between 1 and 1000000")));
	lspi_connect(LSPI_READ_WRITE);
	p = loyalty_policy_at(at);

	values[0] = UUIDPGetDatum(&after);
	values[1] = Int32GetDatum(batch);
	values[2] = TimestampTzGetDatum(at);
	values[3] = Int32GetDatum((int32) p->period);

	/*
	 * The batch after a batch where most members were candidates: lock its
	 * members in key order first, then read and decide them once under the
	 * lock.
	 */
	if (!expired_only && prev_valid && prev_dense &&
		memcmp(&prev_last, &after, sizeof(pg_uuid_t)) == 0)
	{
		n = lspi_run(plan_custom(&lock_next_plan,
								 "SELECT m.member_id FROM loyalty.member m "
								 " WHERE m.member_id > $1 AND m.status = 'active' "
								 " ORDER BY m.member_id LIMIT $2 FOR NO KEY UPDATE OF m",
								 2, types),
					 values, NULL, false, 0, SPI_OK_SELECT);
		if (n > 0)
		{
			bool		isnull;

			cand = palloc(sizeof(pg_uuid_t) * n);
			for (i = 0; i < n; i++)
				cand[i] = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i],
													   SPI_tuptable->tupdesc, 1, &isnull));
			last = cand[n - 1];
			changed = upgrade_locked(cand, n, p, at, "qualified (batch)", false);
			dense = changed * 2 > n;
			goto done;
		}
	}

	n = lspi_run(plan_custom(&batch_plan,
								 "WITH b AS ( "
								 "  SELECT m.member_id, m.tier, m.tier_valid_until, coalesce(m.time_zone, s.time_zone) AS tz, "
								 "         extract(year FROM $3 AT TIME ZONE coalesce(m.time_zone, s.time_zone))::int4 AS y, "
								 "         loyalty._tier_period_start($4, "
								 "             ($3 AT TIME ZONE coalesce(m.time_zone, s.time_zone))::date, "
								 "             (m.enrolled_at AT TIME ZONE coalesce(m.time_zone, s.time_zone))::date) AS ps "
								 "    FROM loyalty.member m JOIN loyalty.store s ON s.store_code = m.home_store "
								 "   WHERE m.member_id > $1 AND m.status = 'active' "
								 "   ORDER BY m.member_id LIMIT $2) "
								 "SELECT b.member_id, b.tier, coalesce(b.tier_valid_until <= $3, false), "
								 "       c.n, c.s, c.b, c.q, b.tier_valid_until, b.tz, b.y "
								 "  FROM b" TIER_PERIOD_TOTALS_SQL
								 " ORDER BY b.member_id",
								 4, types),
					values, NULL, true, 0, SPI_OK_SELECT);
	cand = palloc(sizeof(pg_uuid_t) * Max(n, 1));
	cand_expired = palloc0(sizeof(bool) * Max(n, 1));
	last = after;
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		TierCounters c;
		int			k,
					r,
					q;
		bool		expired = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));

		last = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
		for (k = 0; k < LOYALTY_NUM_COUNTERS; k++)
			c.value[k] = DatumGetInt64(SPI_getbinval(tup, desc, 4 + k, &isnull));
		r = tier_rank_of(p, TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull)));
		q = tier_qualified_rank(p, &c);
		cand_expired[ncand] = expired && r > 0;
		if (expired && r > 0)
			cand[ncand++] = last;
		else if (!expired_only && q > 0 && q > r)
			cand[ncand++] = last;
		else if (!expired_only && q > 0 && q == r)
		{
			/* earned again: a candidate if the validity would grow */
			Datum		vu = SPI_getbinval(tup, desc, 8, &isnull);

			if (!isnull &&
				tier_validity_end(p, DatumGetInt32(SPI_getbinval(tup, desc, 10, &isnull)),
								  TextDatumGetCString(SPI_getbinval(tup, desc, 9, &isnull))) >
				DatumGetTimestampTz(vu))
				cand[ncand++] = last;
		}
	}
	/* ended validity one by one; upgrades and extensions all at once */
	for (i = 0; i < ncand; i++)
		if (cand_expired[i] && requalify_one(&cand[i], p, at, expired_only))
			changed++;
	nup = 0;
	for (i = 0; i < ncand; i++)
		if (!cand_expired[i])
			cand[nup++] = cand[i];
	changed += upgrade_locked(cand, nup, p, at, "qualified (batch)", true);
	dense = ncand * 2 > n;

done:
	prev_last = last;
	prev_valid = n > 0;
	prev_dense = dense;
	lspi_finish();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	{
		pg_uuid_t  *lastp = palloc(sizeof(pg_uuid_t));

		*lastp = last;
		out[0] = UUIDPGetDatum(lastp);
	}
	out[1] = Int32GetDatum(n);
	out[2] = Int32GetDatum(changed);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), out, nulls)));
}
