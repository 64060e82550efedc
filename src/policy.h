/*-------------------------------------------------------------------------
 *
 * policy.h
 *	  The compiled program policy: tiers, earning, expiry, redemption,
 *	  reversal and transfer rules, as parsed from a policy document.
 *
 * The document format is described in docs/policy.md.  policy_parse.c (the
 * only file that sees jansson) turns a document into a LoyaltyPolicy;
 * policy_cache.c keeps the policy in effect cached per backend.  Every
 * amount is an integer: points as int64, money in minor currency units.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_POLICY_H
#define LOYALTY_POLICY_H

#include "postgres.h"

#include "datatype/timestamp.h"

#define LOYALTY_MAX_TIERS		16
#define LOYALTY_MAX_OVERRIDES	64
#define LOYALTY_MAX_MILESTONES	16
#define LOYALTY_CODE_LEN		32	/* tier, store and brand codes, incl. NUL */

/* the largest points or money figure a policy may name */
#define LOYALTY_POLICY_MAX_NUMBER	INT64CONST(1000000000)

/* qualification counters a tier threshold may name */
typedef enum LoyaltyCounter
{
	COUNTER_NIGHTS = 0,
	COUNTER_STAYS,
	COUNTER_BASE_POINTS,
	COUNTER_QUALIFYING_SPEND,	/* minor currency units */
	LOYALTY_NUM_COUNTERS
} LoyaltyCounter;

extern const char *const loyalty_counter_names[LOYALTY_NUM_COUNTERS];

/* a threshold value of -1 means "not part of this rule" */
typedef struct TierThresholds
{
	int64		value[LOYALTY_NUM_COUNTERS];
} TierThresholds;

typedef struct TierPolicy
{
	char		code[LOYALTY_CODE_LEN];
	char		name[64];
	int			rank;			/* 0 for the base tier, then 1, 2, ... */
	bool		has_any;		/* qualifies when any "any" threshold is met */
	TierThresholds any;
	bool		has_all;		/* ... and, if present, every "all" threshold */
	TierThresholds all;
	int			elite_bonus_percent;	/* on base points only */
	int64		lifetime_nights;	/* -1: no lifetime status by nights */
} TierPolicy;

typedef enum QualificationPeriod
{
	PERIOD_CALENDAR_YEAR,
	PERIOD_ROLLING_12_MONTHS,
	PERIOD_ANNIVERSARY
} QualificationPeriod;

typedef enum DowngradeMode
{
	DOWNGRADE_ONE_TIER,
	DOWNGRADE_RECOMPUTE
} DowngradeMode;

typedef enum PendingUntil
{
	PENDING_UNTIL_CHECKOUT,
	PENDING_NONE
} PendingUntil;

typedef enum ExpiryMode
{
	EXPIRY_INACTIVITY,
	EXPIRY_LOT_LIFETIME,
	EXPIRY_NONE
} ExpiryMode;

typedef enum RedemptionOrder
{
	REDEEM_SOONEST_EXPIRING,
	REDEEM_OLDEST_FIRST
} RedemptionOrder;

typedef enum ReversalMode
{
	REVERSAL_WITHIN_BALANCE,
	REVERSAL_ALLOW_NEGATIVE
} ReversalMode;

/* base earning rate for one brand or one store (store wins over brand) */
typedef struct EarningOverride
{
	bool		is_store;		/* false: brand */
	char		code[LOYALTY_CODE_LEN];
	int64		points_per_unit;
} EarningOverride;

/* a bonus at a night count, optionally repeated every "every" nights */
typedef struct Milestone
{
	int64		nights;
	int64		points;
	int64		every;			/* 0: once */
} Milestone;

typedef struct LoyaltyPolicy
{
	int			format_version;

	/* currency */
	char		currency_code[4];
	int			currency_scale; /* digits after the decimal point */

	/* tiers, in rank order; tiers[0] is the base tier */
	int			ntiers;
	TierPolicy	tiers[LOYALTY_MAX_TIERS];

	/* qualification */
	QualificationPeriod period;
	int			validity_years_after;	/* default 2 */
	int			validity_month; /* valid through the end of this month */
	DowngradeMode downgrade;

	/* earning */
	int64		base_points_per_unit;
	int			noverrides;
	EarningOverride overrides[LOYALTY_MAX_OVERRIDES];
	PendingUntil pending_until;
	int			nmilestones;
	Milestone	milestones[LOYALTY_MAX_MILESTONES];

	/* expiry */
	ExpiryMode	expiry_mode;
	int			inactivity_months;
	int			lot_lifetime_months;
	int			expiry_exempt_rank; /* -1: nobody is exempt */
	int			notice_days;

	/* redemption: rate_points points are worth rate_amount minor units */
	int64		rate_points;
	int64		rate_amount;
	int64		minimum_points;
	int64		step_points;
	RedemptionOrder redemption_order;

	/* reversal */
	ReversalMode reversal_mode;

	/* transfer */
	bool		transfer_enabled;
	int64		transfer_yearly_cap_out;
	int64		transfer_yearly_cap_in;
} LoyaltyPolicy;

/* policy_parse.c */
extern void loyalty_policy_parse(const char *text, size_t len,
								 LoyaltyPolicy *policy);
extern char *loyalty_policy_to_json(const LoyaltyPolicy *policy);

/* policy_cache.c */
extern void loyalty_policy_cache_init(void);
extern const LoyaltyPolicy *loyalty_policy_at(TimestampTz at);
extern const TierPolicy *loyalty_policy_tier(const LoyaltyPolicy *policy,
											 const char *code);

#endif							/* LOYALTY_POLICY_H */
