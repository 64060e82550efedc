/*-------------------------------------------------------------------------
 *
 * earning.h
 *	  Earning: the points a stay or a charge produces, one line per rule,
 *	  in the fixed order of docs/tiers.md: base, elite bonus, campaigns by
 *	  priority, milestones.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_EARNING_H
#define LOYALTY_EARNING_H

#include "tier.h"

#define EARN_MAX_LINES	64

typedef enum EarnKind
{
	EARN_BASE,
	EARN_ELITE,
	EARN_CAMPAIGN,
	EARN_MILESTONE
} EarnKind;

typedef struct EarnLine
{
	EarnKind	kind;
	char		rule[80];		/* the rule that produced the line */
	bool		has_campaign;
	pg_uuid_t	campaign_id;
	int64		points;
} EarnLine;

typedef struct EarnInput
{
	const LoyaltyPolicy *policy;
	TierMember *member;			/* locked; local_date is at occurred_at */
	const char *store;
	const char *brand;
	int64		eligible_minor; /* eligible revenue in minor units */
	TimestampTz occurred_at;
} EarnInput;

typedef struct EarnResult
{
	int			nlines;
	EarnLine	lines[EARN_MAX_LINES];
} EarnResult;

/* earning.c */
/*
 * What loyalty.stay_record(), loyalty.stay_checkout() and
 * loyalty.charge_record() return (src/earning_stay.c); a store replica
 * answers with provisional figures of the same shape (src/replica_offline.c).
 */
typedef struct StayResult
{
	pg_uuid_t	id;
	bool		replayed;
	int32		nights;
	int64		base_points;
	int64		bonus_points;
	bool		pending;
	char		tier[LOYALTY_CODE_LEN];
	bool		tier_changed;
} StayResult;

extern int64 earning_amount_minor(Datum numeric, int scale, const char *what);
extern void earning_compute(const EarnInput *in, EarnResult *out);
extern void earning_milestones(const LoyaltyPolicy *p, int64 nights_before,
							   int64 nights_after, EarnResult *out);
extern int64 earning_base_points(const EarnResult *r);
extern int64 earning_bonus_points(const EarnResult *r);

#endif							/* LOYALTY_EARNING_H */
