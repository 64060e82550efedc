/*-------------------------------------------------------------------------
 *
 * benefit_catalog.h
 *	  The benefit catalogue, cached per backend (provider: benefit_catalog.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_BENEFIT_CATALOG_H
#define LOYALTY_BENEFIT_CATALOG_H

#include "benefit.h"

extern void loyalty_benefit_cache_init(void);
extern const BenefitCatalog *loyalty_benefit_catalog(void);
extern uint32 loyalty_risk_type_freezes(const BenefitCatalog *catalog,
										const char *risk_code);

extern char *loyalty_benefit_reason(const BenefitGrant *grant);

#endif							/* LOYALTY_BENEFIT_CATALOG_H */
