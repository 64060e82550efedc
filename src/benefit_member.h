/*-------------------------------------------------------------------------
 *
 * benefit_member.h
 *	  A member as benefit resolution sees it: tier, tags, freezes (provider:
 *	  benefit_member.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_BENEFIT_MEMBER_H
#define LOYALTY_BENEFIT_MEMBER_H

#include "benefit.h"

extern void loyalty_benefit_member_init(void);
extern bool loyalty_store_exists(const char *store_code);
extern bool loyalty_benefit_member(const pg_uuid_t *member_id, TimestampTz at,
								   bool current, const BenefitCatalog *catalog,
								   BenefitMember *out);

#endif							/* LOYALTY_BENEFIT_MEMBER_H */
