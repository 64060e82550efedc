/*-------------------------------------------------------------------------
 *
 * tier.h
 *	  The tier and earning engine: members as the engine sees them,
 *	  qualification periods and counters, tier evaluation and changes.
 *
 * docs/tiers.md describes the semantics.  Every function here runs inside
 * an SPI connection opened by the SQL-callable entry point.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_TIER_H
#define LOYALTY_TIER_H

#include "postgres.h"

#include "executor/spi.h"
#include "utils/date.h"
#include "utils/uuid.h"

#include "policy.h"
#include "spi.h"

#define LOYALTY_TZ_LEN	64

/* a member, locked for the rest of the transaction */
typedef struct TierMember
{
	pg_uuid_t	member_id;
	char		tier[LOYALTY_CODE_LEN];
	bool		has_valid_until;
	TimestampTz valid_until;
	char		time_zone[LOYALTY_TZ_LEN];	/* member's, else home store's */
	DateADT		local_date;		/* the evaluation time, member-local */
	DateADT		enrolled_local; /* enrolment, member-local */
	int			birth_month;	/* 0: unknown */
	char		status[16];
} TierMember;

/* counters of one period */
typedef struct TierCounters
{
	int64		value[LOYALTY_NUM_COUNTERS];
} TierCounters;

/* tier_util.c (SPI: spi.h) */
extern DateADT loyalty_month_start(DateADT d);
extern DateADT loyalty_add_months(DateADT d, int months);
extern int	loyalty_date_year(DateADT d);
extern int	loyalty_date_month(DateADT d);
extern TimestampTz loyalty_local_midnight(int year, int month, int day,
										  const char *tz);

/* tier.c */
extern void tier_member_lock(const pg_uuid_t *member_id, TimestampTz at,
							 bool for_update, TierMember *m);
extern void tier_period_bounds(const LoyaltyPolicy *p, DateADT local,
							   DateADT enrolled, DateADT *start, DateADT *end);
extern void tier_counters_sum(const pg_uuid_t *member_id, DateADT start,
							  DateADT end, bool as_of, TimestampTz at,
							  TierCounters *out);
extern int	tier_rank_of(const LoyaltyPolicy *p, const char *code);
extern int	tier_qualified_rank(const LoyaltyPolicy *p, const TierCounters *c);
extern TimestampTz tier_validity_end(const LoyaltyPolicy *p, int year,
									 const char *tz);
extern bool tier_upgrade_check(TierMember *m, const LoyaltyPolicy *p,
							   TimestampTz at, const char *store,
							   const char *reason);
extern bool tier_upgrade_with(TierMember *m, const LoyaltyPolicy *p,
							  const TierCounters *counters, DateADT start,
							  const char *store, const char *reason);
extern void tier_set(TierMember *m, const char *new_tier, bool has_valid_until,
					 TimestampTz valid_until, const char *reason,
					 const char *store, const char *detail_json);
extern char *tier_counters_json(const TierCounters *c, DateADT start);

/* tier_event.c */
extern void tier_emit_event(const pg_uuid_t *member_id, const char *old_tier,
							const char *new_tier, bool has_old_valid,
							TimestampTz old_valid, bool has_valid,
							TimestampTz valid_until, const char *reason,
							const char *store, const char *detail_json);

/* one tier change of a locked member, for tier_set_many */
typedef struct TierChange
{
	pg_uuid_t	member_id;
	char		old_tier[LOYALTY_CODE_LEN];
	char		new_tier[LOYALTY_CODE_LEN];
	bool		has_old_valid;
	TimestampTz old_valid;
	bool		has_valid;
	TimestampTz valid_until;
	const char *reason;
	char	   *detail_json;
} TierChange;

extern void tier_set_many(const TierChange *changes, int n);

/* tier_floor.c */
typedef struct TierDecision
{
	int			action;			/* TIER_KEEP, TIER_EXTEND, TIER_CHANGE */
	int			new_rank;
	bool		has_valid_until;
	TimestampTz valid_until;
	char		reason[96];
} TierDecision;

#define TIER_KEEP	0
#define TIER_EXTEND 1
#define TIER_CHANGE 2

extern int	tier_floor_rank(const TierMember *m, const LoyaltyPolicy *p,
							TimestampTz at, bool *has_until,
							TimestampTz *until, char *why, size_t whylen);
extern void tier_decide_expired(const TierMember *m, const LoyaltyPolicy *p,
								TimestampTz at, TierDecision *d);

#endif							/* LOYALTY_TIER_H */
