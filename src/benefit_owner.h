/*-------------------------------------------------------------------------
 *
 * benefit_owner.h
 *	  SECURITY INVOKER functions that run as their owner (provider:
 *	  benefit_owner.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_BENEFIT_OWNER_H
#define LOYALTY_BENEFIT_OWNER_H

#include "fmgr.h"

/* benefit_owner.c: SECURITY INVOKER functions that run as their owner */
typedef struct LoyaltyOwnerSave
{
	Oid			userid;
	int			sec_context;
} LoyaltyOwnerSave;

extern void loyalty_become_owner(FunctionCallInfo fcinfo, LoyaltyOwnerSave *save);
extern void loyalty_return_from_owner(const LoyaltyOwnerSave *save);

#endif							/* LOYALTY_BENEFIT_OWNER_H */
