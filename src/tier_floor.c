/*-------------------------------------------------------------------------
 *
 * tier_floor.c
 *	  What happens to a member whose tier validity has ended: the floors
 *	  (lifetime status, manual grants) and the downgrade rule of the
 *	  policy (one tier down, or recompute from the counters).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "tier.h"
#include "spi.h"

static SPIPlanPtr lifetime_plan = NULL;
static SPIPlanPtr grant_plan = NULL;

/*
 * tier_floor_rank
 *		The lowest rank the member may hold at "at": the highest of the
 *		lifetime tier (by lifetime nights) and every manual grant in force.
 *		*has_until / *until say how long the floor holds (no end for
 *		lifetime status); "why" names it.
 */
int
tier_floor_rank(const TierMember *m, const LoyaltyPolicy *p, TimestampTz at,
				bool *has_until, TimestampTz *until, char *why, size_t whylen)
{
	Oid			types[2] = {UUIDOID, TIMESTAMPTZOID};
	Datum		values[2];
	bool		isnull;
	int64		nights;
	int			floor = 0;
	int			i;
	uint64		row;

	*has_until = false;
	*until = 0;
	why[0] = '\0';
	values[0] = UUIDPGetDatum(&m->member_id);
	values[1] = TimestampTzGetDatum(at);

	lspi_run(lspi_plan(&lifetime_plan,
							 "SELECT coalesce(sum(nights), 0)::int8 FROM loyalty.tier_counter "
							 " WHERE member_id = $1", 1, types),
				values, NULL, true, 1, SPI_OK_SELECT);
	nights = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	for (i = p->ntiers - 1; i > 0; i--)
		if (p->tiers[i].lifetime_nights >= 0 && nights >= p->tiers[i].lifetime_nights)
		{
			floor = i;
			snprintf(why, whylen, "lifetime %s", p->tiers[i].code);
			break;
		}

	lspi_run(lspi_plan(&grant_plan,
							 "SELECT tier, expires_at FROM loyalty.tier_grant "
							 " WHERE member_id = $1 AND granted_at <= $2 "
							 "   AND (expires_at IS NULL OR expires_at > $2)",
							 2, types),
				values, NULL, true, 0, SPI_OK_SELECT);
	for (row = 0; row < SPI_processed; row++)
	{
		char	   *code = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[row],
															 SPI_tuptable->tupdesc, 1, &isnull));
		Datum		exp = SPI_getbinval(SPI_tuptable->vals[row],
										SPI_tuptable->tupdesc, 2, &isnull);
		int			r = tier_rank_of(p, code);

		if (r > floor || (r == floor && r > 0 && *has_until &&
						  (isnull || DatumGetTimestampTz(exp) > *until)))
		{
			floor = r;
			*has_until = !isnull;
			*until = isnull ? 0 : DatumGetTimestampTz(exp);
			snprintf(why, whylen, "manual grant %s", code);
		}
	}
	return floor;
}

/*
 * tier_decide_expired
 *		The decision for a member whose validity ended at or before "at":
 *		the rule's tier (one down, or the base tier when recomputing), raised
 *		to what the member qualified for in the current or the previous
 *		period, raised to the floor; never above the tier held.
 */
void
tier_decide_expired(const TierMember *m, const LoyaltyPolicy *p, TimestampTz at,
					TierDecision *d)
{
	int			r = tier_rank_of(p, m->tier);
	DateADT		start,
				end,
				pstart,
				pend;
	TierCounters c;
	int			q_cur,
				q_prev,
				floor;
	bool		floor_has_until;
	TimestampTz floor_until;
	char		floor_why[64];

	memset(d, 0, sizeof(*d));
	tier_period_bounds(p, m->local_date, m->enrolled_local, &start, &end);
	tier_counters_sum(&m->member_id, start, end, false, at, &c);
	q_cur = tier_qualified_rank(p, &c);
	tier_period_bounds(p, start - 1, m->enrolled_local, &pstart, &pend);
	tier_counters_sum(&m->member_id, pstart, pend, false, at, &c);
	q_prev = tier_qualified_rank(p, &c);
	floor = tier_floor_rank(m, p, at, &floor_has_until, &floor_until,
							floor_why, sizeof(floor_why));

	if (p->downgrade == DOWNGRADE_ONE_TIER && r > 0)
	{
		d->new_rank = r - 1;
		snprintf(d->reason, sizeof(d->reason), "one tier down");
		if (d->new_rank > 0)
		{
			/* the lower tier holds for one more year */
			Interval	year = {0, 0, 12};

			d->has_valid_until = true;
			d->valid_until = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
																	 TimestampTzGetDatum(m->valid_until),
																	 PointerGetDatum(&year)));
		}
	}
	else
	{
		d->new_rank = 0;
		snprintf(d->reason, sizeof(d->reason), "recomputed");
	}
	if (q_cur >= d->new_rank && q_cur > 0)
	{
		d->new_rank = q_cur;
		d->has_valid_until = true;
		d->valid_until = tier_validity_end(p, loyalty_date_year(start), m->time_zone);
		snprintf(d->reason, sizeof(d->reason), "qualified %s this period", p->tiers[q_cur].code);
	}
	if (q_prev >= d->new_rank && q_prev > 0)
	{
		d->new_rank = q_prev;
		d->has_valid_until = true;
		d->valid_until = tier_validity_end(p, loyalty_date_year(pstart), m->time_zone);
		snprintf(d->reason, sizeof(d->reason), "qualified %s last period", p->tiers[q_prev].code);
	}
	if (floor > d->new_rank || (floor == d->new_rank && floor > 0 &&
								(!floor_has_until ||
								 (d->has_valid_until && floor_until > d->valid_until))))
	{
		d->new_rank = floor;
		d->has_valid_until = floor_has_until;
		d->valid_until = floor_until;
		snprintf(d->reason, sizeof(d->reason), "floor: %s", floor_why);
	}
	if (d->new_rank == 0)
	{
		d->has_valid_until = false;
		d->valid_until = 0;
	}
	if (d->new_rank >= r)
	{
		d->new_rank = r;
		d->action = (d->has_valid_until == m->has_valid_until &&
					 d->valid_until == m->valid_until) ? TIER_KEEP : TIER_EXTEND;
		if (d->action == TIER_EXTEND && d->has_valid_until && m->has_valid_until &&
			d->valid_until <= m->valid_until)
			d->action = TIER_KEEP;
	}
	else
		d->action = TIER_CHANGE;
}
