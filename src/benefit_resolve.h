/*-------------------------------------------------------------------------
 *
 * benefit_resolve.h
 *	  Which benefits a member may use where and when (provider:
 *	  benefit_resolve.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_BENEFIT_RESOLVE_H
#define LOYALTY_BENEFIT_RESOLVE_H

#include "benefit.h"
#include "policy.h"

extern int	loyalty_benefits_resolve(const BenefitCatalog *catalog,
									 const LoyaltyPolicy *policy,
									 const char *tier, const char *store_code,
									 TimestampTz at, bool tier_grants_only,
									 const BenefitGrant **winners);
extern Jsonb *loyalty_benefit_tier_change(const char *from_tier,
										  const char *to_tier,
										  TimestampTz at);

#endif							/* LOYALTY_BENEFIT_RESOLVE_H */
