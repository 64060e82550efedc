/*-------------------------------------------------------------------------
 *
 * earning.c
 *	  The earning order: base points per currency unit (store override,
 *	  else brand override, else the policy default), the elite bonus of the
 *	  member's tier on base points only, campaigns (earning_campaign.c), and
 *	  milestone bonuses on the period's night count.
 *
 * Every figure is an integer: revenue in minor currency units, points in
 * int64; every rounding is down, and every product is overflow-checked.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "earning.h"
#include "earning_campaign.h"
#include "earning_line.h"

/*
 * overflow_error
 *		Points or amounts beyond int64.
 */
static void
overflow_error(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("points out of range")));
}

/*
 * earning_amount_minor
 *		A non-negative money amount as minor units of a currency with
 *		"scale" decimal places; more significant decimals than the
 *		currency has are an error, never rounded away.
 */
int64
earning_amount_minor(Datum numeric, int scale, const char *what)
{
	char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out, numeric));
	const char *c = s;
	int64		v = 0;
	int			frac = -1;

	if (*c == '-')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", what)));
	if (strcmp(s, "NaN") == 0 || strchr(s, 'I') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite amount", what)));
	for (; *c; c++)
	{
		if (*c == '.')
		{
			frac = 0;
			continue;
		}
		if (frac >= 0)
		{
			if (frac >= scale)
			{
				if (*c != '0')
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("%s %s has more than %d decimal places", what, s, scale),
							 errdetail("Amounts are in the program currency, which has %d decimal places.", scale),
							 errhint("Pass the amount in currency units, not minor units or a converted rate.")));
				continue;
			}
			frac++;
		}
		if (pg_mul_s64_overflow(v, 10, &v) || pg_add_s64_overflow(v, *c - '0', &v))
			overflow_error();
	}
	if (frac < 0)
		frac = 0;
	for (; frac < scale; frac++)
		if (pg_mul_s64_overflow(v, 10, &v))
			overflow_error();
	return v;
}

/*
 * base_rate
 *		Points per currency unit at a store: the store's override, else its
 *		brand's, else the policy default.
 */
static int64
base_rate(const LoyaltyPolicy *p, const char *store, const char *brand,
		  char *rule, size_t rulelen)
{
	int			i;

	for (i = 0; i < p->noverrides; i++)
		if (p->overrides[i].is_store && strcmp(p->overrides[i].code, store) == 0)
		{
			snprintf(rule, rulelen, "base: store %s, %lld per unit", store,
					 (long long) p->overrides[i].points_per_unit);
			return p->overrides[i].points_per_unit;
		}
	for (i = 0; i < p->noverrides; i++)
		if (!p->overrides[i].is_store && strcmp(p->overrides[i].code, brand) == 0)
		{
			snprintf(rule, rulelen, "base: brand %s, %lld per unit", brand,
					 (long long) p->overrides[i].points_per_unit);
			return p->overrides[i].points_per_unit;
		}
	snprintf(rule, rulelen, "base: %lld per unit", (long long) p->base_points_per_unit);
	return p->base_points_per_unit;
}

/*
 * earning_compute
 *		Base, elite bonus and campaign lines for one activity, in that order.
 */
void
earning_compute(const EarnInput *in, EarnResult *out)
{
	const LoyaltyPolicy *p = in->policy;
	char		rule[80];
	int64		rate = base_rate(p, in->store, in->brand, rule, sizeof(rule));
	int64		divisor = 1;
	int64		base;
	int			i;
	const TierPolicy *t;
	EarnLine   *l;

	out->nlines = 0;
	for (i = 0; i < p->currency_scale; i++)
		divisor *= 10;
	if (pg_mul_s64_overflow(in->eligible_minor, rate, &base))
		overflow_error();
	base /= divisor;
	if ((l = earning_add_line(out, EARN_BASE, base)) != NULL)
		strlcpy(l->rule, rule, sizeof(l->rule));

	t = loyalty_policy_tier(p, in->member->tier);
	if (t != NULL && t->elite_bonus_percent > 0)
	{
		int64		bonus;

		if (pg_mul_s64_overflow(base, t->elite_bonus_percent, &bonus))
			overflow_error();
		if ((l = earning_add_line(out, EARN_ELITE, bonus / 100)) != NULL)
			snprintf(l->rule, sizeof(l->rule), "elite: %s +%d%% of base",
					 t->code, t->elite_bonus_percent);
	}

	campaign_apply(in, base, out);
}

/*
 * earning_milestones
 *		Milestone bonuses for every milestone night count crossed when the
 *		period's nights went from nights_before to nights_after.
 */
void
earning_milestones(const LoyaltyPolicy *p, int64 nights_before,
				   int64 nights_after, EarnResult *out)
{
	int			i;

	for (i = 0; i < p->nmilestones; i++)
	{
		const Milestone *ms = &p->milestones[i];
		int64		at = ms->nights;

		while (at <= nights_after)
		{
			if (at > nights_before)
			{
				EarnLine   *l = earning_add_line(out, EARN_MILESTONE, ms->points);

				if (l != NULL)
					snprintf(l->rule, sizeof(l->rule), "milestone: %lld nights",
							 (long long) at);
			}
			if (ms->every <= 0)
				break;
			at += ms->every;
		}
	}
}

/*
 * earning_base_points
 *		The base points of a result: the only points that count for tier.
 */
int64
earning_base_points(const EarnResult *r)
{
	int64		sum = 0;
	int			i;

	for (i = 0; i < r->nlines; i++)
		if (r->lines[i].kind == EARN_BASE)
			sum += r->lines[i].points;
	return sum;
}

/*
 * earning_bonus_points
 *		Every point of a result that is not base.
 */
int64
earning_bonus_points(const EarnResult *r)
{
	int64		sum = 0;
	int			i;

	for (i = 0; i < r->nlines; i++)
		if (r->lines[i].kind != EARN_BASE)
			sum += r->lines[i].points;
	return sum;
}
