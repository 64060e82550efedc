/*-------------------------------------------------------------------------
 *
 * tier_batch.c
 *	  Batch requalification and period-end downgrades.
 *
 * loyalty.tier_requalify (a procedure, src/sql/24_tier_batch.sql) walks
 * the members in key order, one batch per transaction.  Each batch reads
 * its members' period counters in one set-based query and picks the
 * candidates (validity ended, counters that earn a higher tier, or the
 * same tier again with a later validity); each candidate is then locked and decided again
 * under its row lock, the same lock stays take, so the batch is safe while
 * stays keep arriving.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "roles_caller.h"
#include "tier.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_tier_period_start);
PG_FUNCTION_INFO_V1(loyalty_tier_decide);
PG_FUNCTION_INFO_V1(loyalty_tier_requalify_batch);

static SPIPlanPtr batch_plan = NULL;

static const char *const action_names[] = {"keep", "extend", "change"};

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
	n = lspi_run(lspi_plan(&batch_plan,
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
								 "       coalesce(sum(c.nights), 0)::int8, coalesce(sum(c.stays), 0)::int8, "
								 "       coalesce(sum(c.base_points), 0)::int8, coalesce(sum(c.qualifying_spend), 0)::int8, "
								 "       b.tier_valid_until, b.tz, b.y "
								 "  FROM b LEFT JOIN loyalty.tier_counter c ON c.member_id = b.member_id "
								 "   AND c.month >= b.ps AND c.month < (b.ps + interval '12 months')::date "
								 " GROUP BY b.member_id, b.tier, b.tier_valid_until, b.tz, b.y "
								 " ORDER BY b.member_id",
								 4, types),
					values, NULL, true, 0, SPI_OK_SELECT);
	cand = palloc(sizeof(pg_uuid_t) * Max(n, 1));
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
	for (i = 0; i < ncand; i++)
		if (requalify_one(&cand[i], p, at, expired_only))
			changed++;
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
