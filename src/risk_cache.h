/*-------------------------------------------------------------------------
 *
 * risk_cache.h
 *	  Unresolved risk tags per member, cached per backend (provider:
 *	  risk_cache.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_RISK_CACHE_H
#define LOYALTY_RISK_CACHE_H

#include "benefit.h"

extern void loyalty_risk_cache_init(void);
extern int	loyalty_risk_cache_lookup(const pg_uuid_t *member_id,
									  const BenefitTag **tags);

#endif							/* LOYALTY_RISK_CACHE_H */
