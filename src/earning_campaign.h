/*-------------------------------------------------------------------------
 *
 * earning_campaign.h
 *	  Campaign bonuses of the earning engine (provider: earning_campaign.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_EARNING_CAMPAIGN_H
#define LOYALTY_EARNING_CAMPAIGN_H

#include "earning.h"

extern void campaign_apply(const EarnInput *in, int64 base, EarnResult *out);

#endif							/* LOYALTY_EARNING_CAMPAIGN_H */
