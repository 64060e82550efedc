/*-------------------------------------------------------------------------
 *
 * tier.c
 *	  Tier evaluation: the member as the engine sees it, qualification
 *	  periods, counters, the rank a member qualifies for, validity, and
 *	  instant upgrades.
 *
 * Counters are kept per member and calendar month of the member's time
 * zone (loyalty.tier_counter); a period is a range of months, so that a
 * period's counters are at most twelve rows whatever the period kind.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "tier.h"
#include "spi.h"

static SPIPlanPtr member_plan_lock = NULL;
static SPIPlanPtr member_plan_read = NULL;
static SPIPlanPtr counters_plan = NULL;
static SPIPlanPtr counters_asof_plan = NULL;
static SPIPlanPtr set_tier_plan = NULL;

#define MEMBER_SQL \
	"SELECT m.tier, m.tier_valid_until, coalesce(m.time_zone, s.time_zone), " \
	"       ($2 AT TIME ZONE coalesce(m.time_zone, s.time_zone))::date, " \
	"       (m.enrolled_at AT TIME ZONE coalesce(m.time_zone, s.time_zone))::date, " \
	"       extract(month FROM p.birth_date)::int4, m.status " \
	"  FROM loyalty.member m JOIN loyalty.store s ON s.store_code = m.home_store " \
	"  LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id " \
	" WHERE m.member_id = $1"

/*
 * tier_member_lock
 *		Read a member (locking the row FOR NO KEY UPDATE if asked, which
 *		serialises every tier and counter change of that member but lets
 *		other sessions insert rows that reference the member) and resolve
 *		its time zone and the member-local date of "at".
 */
void
tier_member_lock(const pg_uuid_t *member_id, TimestampTz at, bool for_update,
				 TierMember *m)
{
	Oid			types[2] = {UUIDOID, TIMESTAMPTZOID};
	Datum		values[2];
	SPIPlanPtr	plan;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	values[0] = UUIDPGetDatum(member_id);
	values[1] = TimestampTzGetDatum(at);
	if (for_update)
		plan = lspi_plan(&member_plan_lock, MEMBER_SQL " FOR NO KEY UPDATE OF m", 2, types);
	else
		plan = lspi_plan(&member_plan_read, MEMBER_SQL, 2, types);
	if (lspi_run(plan, values, NULL, !for_update, 1, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("member %s does not exist",
						DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(member_id))))));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	memset(m, 0, sizeof(*m));
	m->member_id = *member_id;
	text_to_cstring_buffer(DatumGetTextPP(SPI_getbinval(tup, desc, 1, &isnull)),
						   m->tier, sizeof(m->tier));
	d = SPI_getbinval(tup, desc, 2, &isnull);
	m->has_valid_until = !isnull;
	m->valid_until = isnull ? 0 : DatumGetTimestampTz(d);
	text_to_cstring_buffer(DatumGetTextPP(SPI_getbinval(tup, desc, 3, &isnull)),
						   m->time_zone, sizeof(m->time_zone));
	m->local_date = DatumGetDateADT(SPI_getbinval(tup, desc, 4, &isnull));
	m->enrolled_local = DatumGetDateADT(SPI_getbinval(tup, desc, 5, &isnull));
	d = SPI_getbinval(tup, desc, 6, &isnull);
	m->birth_month = isnull ? 0 : DatumGetInt32(d);
	text_to_cstring_buffer(DatumGetTextPP(SPI_getbinval(tup, desc, 7, &isnull)),
						   m->status, sizeof(m->status));
}

/*
 * tier_period_bounds
 *		The qualification period containing the member-local date "local",
 *		as months [start, end).  Calendar year: January to December;
 *		rolling 12 months: the month of "local" and the eleven before it;
 *		anniversary: twelve months from the month of enrolment.
 */
void
tier_period_bounds(const LoyaltyPolicy *p, DateADT local, DateADT enrolled,
				   DateADT *start, DateADT *end)
{
	int			year = loyalty_date_year(local);

	switch (p->period)
	{
		case PERIOD_CALENDAR_YEAR:
			*start = date2j(year, 1, 1) - POSTGRES_EPOCH_JDATE;
			break;
		case PERIOD_ROLLING_12_MONTHS:
			*start = loyalty_add_months(local, -11);
			break;
		case PERIOD_ANNIVERSARY:
			{
				int			em = loyalty_date_month(enrolled);

				if (loyalty_date_month(local) < em)
					year--;
				*start = date2j(year, em, 1) - POSTGRES_EPOCH_JDATE;
				break;
			}
	}
	*end = loyalty_add_months(*start, 12);
}

/*
 * tier_counters_sum
 *		A member's counters over the months [start, end): live, or as they
 *		were recorded at "at" when as_of is set.
 */
void
tier_counters_sum(const pg_uuid_t *member_id, DateADT start, DateADT end,
				  bool as_of, TimestampTz at, TierCounters *out)
{
	Oid			types[4] = {UUIDOID, DATEOID, DATEOID, TIMESTAMPTZOID};
	Datum		values[4];
	SPIPlanPtr	plan;
	int			c;

	values[0] = UUIDPGetDatum(member_id);
	values[1] = DateADTGetDatum(start);
	values[2] = DateADTGetDatum(end);
	values[3] = TimestampTzGetDatum(at);
	if (as_of)
		plan = lspi_plan(&counters_asof_plan,
							"SELECT coalesce(sum(nights), 0)::int8, coalesce(sum(stays), 0)::int8, "
							"       coalesce(sum(base_points), 0)::int8, coalesce(sum(qualifying_spend), 0)::int8 "
							"  FROM loyalty.tier_activity "
							" WHERE member_id = $1 AND month >= $2 AND month < $3 AND recorded_at <= $4",
							4, types);
	else
		plan = lspi_plan(&counters_plan,
							"SELECT coalesce(sum(nights), 0)::int8, coalesce(sum(stays), 0)::int8, "
							"       coalesce(sum(base_points), 0)::int8, coalesce(sum(qualifying_spend), 0)::int8 "
							"  FROM loyalty.tier_counter "
							" WHERE member_id = $1 AND month >= $2 AND month < $3",
							3, types);
	lspi_run(plan, values, NULL, true, 1, SPI_OK_SELECT);
	for (c = 0; c < LOYALTY_NUM_COUNTERS; c++)
	{
		bool		isnull;

		out->value[c] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc,
													c + 1, &isnull));
	}
}

/*
 * tier_rank_of
 *		The rank of a tier code in the policy; a code the policy no longer
 *		knows ranks as the base tier.
 */
int
tier_rank_of(const LoyaltyPolicy *p, const char *code)
{
	const TierPolicy *t = loyalty_policy_tier(p, code);

	return t ? t->rank : 0;
}

/*
 * thresholds_met
 *		any: at least one named threshold is reached; all: every one is.
 */
static bool
thresholds_met(const TierThresholds *t, const TierCounters *c, bool all)
{
	int			i;

	for (i = 0; i < LOYALTY_NUM_COUNTERS; i++)
	{
		if (t->value[i] < 0)
			continue;
		if (!all && c->value[i] >= t->value[i])
			return true;
		if (all && c->value[i] < t->value[i])
			return false;
	}
	return all;
}

/*
 * tier_qualified_rank
 *		The highest rank whose rule the counters meet: the "any" part (if
 *		present) and the "all" part (if present).
 */
int
tier_qualified_rank(const LoyaltyPolicy *p, const TierCounters *c)
{
	int			i;

	for (i = p->ntiers - 1; i > 0; i--)
	{
		const TierPolicy *t = &p->tiers[i];

		if (t->has_any && !thresholds_met(&t->any, c, false))
			continue;
		if (t->has_all && !thresholds_met(&t->all, c, true))
			continue;
		if (t->has_any || t->has_all)
			return i;
	}
	return 0;
}

/*
 * tier_validity_end
 *		Status earned in "year" is valid through the end of month
 *		validity_month of year + validity_years_after, member-local: the
 *		returned instant is the first moment it is no longer valid.
 */
TimestampTz
tier_validity_end(const LoyaltyPolicy *p, int year, const char *tz)
{
	int			y = year + p->validity_years_after;
	int			mth = p->validity_month + 1;

	if (mth > 12)
	{
		mth = 1;
		y++;
	}
	return loyalty_local_midnight(y, mth, 1, tz);
}

/*
 * tier_counters_json
 *		The counters and period as a JSON object for events.
 */
char *
tier_counters_json(const TierCounters *c, DateADT start)
{
	StringInfoData buf;
	int			i;
	int			y,
				mth,
				d;

	j2date(start + POSTGRES_EPOCH_JDATE, &y, &mth, &d);
	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"period_start\": \"%04d-%02d-%02d\"", y, mth, d);
	for (i = 0; i < LOYALTY_NUM_COUNTERS; i++)
		appendStringInfo(&buf, ", \"%s\": " INT64_FORMAT,
						 loyalty_counter_names[i], c->value[i]);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * tier_upgrade_check
 *		After activity, in the same transaction: upgrade the (locked)
 *		member to the highest tier the current period's counters earn, or
 *		extend the validity of the tier held when it is earned again.
 *		Returns true if anything changed.
 */
bool
tier_upgrade_check(TierMember *m, const LoyaltyPolicy *p, TimestampTz at,
				   const char *store, const char *reason)
{
	DateADT		start,
				end;
	TierCounters c;

	tier_period_bounds(p, m->local_date, m->enrolled_local, &start, &end);
	tier_counters_sum(&m->member_id, start, end, false, at, &c);
	return tier_upgrade_with(m, p, &c, start, store, reason);
}

/*
 * tier_upgrade_with
 *		tier_upgrade_check with the current period's counters (starting at
 *		"start") already known to the caller.
 */
bool
tier_upgrade_with(TierMember *m, const LoyaltyPolicy *p, const TierCounters *counters,
				  DateADT start, const char *store, const char *reason)
{
	TierCounters c = *counters;
	int			q,
				r;
	TimestampTz until;

	q = tier_qualified_rank(p, &c);
	if (q == 0)
		return false;
	r = tier_rank_of(p, m->tier);
	if (q < r)
		return false;
	until = tier_validity_end(p, loyalty_date_year(m->local_date), m->time_zone);
	if (q == r && (!m->has_valid_until || m->valid_until >= until))
		return false;
	tier_set(m, p->tiers[q].code, true, until,
			 q > r ? reason : "requalified", store, tier_counters_json(&c, start));
	return true;
}

/*
 * tier_set
 *		Change a locked member's tier and validity, and emit the event.
 */
void
tier_set(TierMember *m, const char *new_tier, bool has_valid_until,
		 TimestampTz valid_until, const char *reason, const char *store,
		 const char *detail_json)
{
	Oid			types[3] = {UUIDOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = UUIDPGetDatum(&m->member_id);
	values[1] = CStringGetTextDatum(new_tier);
	values[2] = TimestampTzGetDatum(valid_until);
	if (!has_valid_until)
		nulls[2] = 'n';
	lspi_run(lspi_plan(&set_tier_plan,
							 "UPDATE loyalty.member SET tier = $2, tier_valid_until = $3, "
							 "       updated_at = now() WHERE member_id = $1",
							 3, types),
				values, nulls, false, 0, SPI_OK_UPDATE);
	tier_emit_event(&m->member_id, m->tier, new_tier,
					m->has_valid_until, m->valid_until,
					has_valid_until, valid_until, reason, store, detail_json);
	strlcpy(m->tier, new_tier, sizeof(m->tier));
	m->has_valid_until = has_valid_until;
	m->valid_until = valid_until;
}
