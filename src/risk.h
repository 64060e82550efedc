/*-------------------------------------------------------------------------
 *
 * risk.h
 *	  Risk tags and the freeze: which capabilities of a member an
 *	  unresolved risk tag freezes.
 *
 * A capability is "redemption" (points redemption, checked by the ledger),
 * "transfer", or a benefit kind ("room_upgrade", ...).  loyalty.risk_type
 * says which capabilities an unresolved tag of each type freezes; the
 * freeze holds at every store from the moment the tag commits until it is
 * resolved.  See docs/benefits.md.
 *
 * Errors:
 *	  LY001  the capability is frozen by an unresolved risk tag
 *			 (ERRCODE_LOYALTY_FROZEN); the message names the tag's risk
 *			 code, the detail its id, raising store and time.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_RISK_H
#define LOYALTY_RISK_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/uuid.h"

#include "policy.h"

/* SQLSTATEs of the benefit and risk area (class LY, "loyalty") */
#define ERRCODE_LOYALTY_FROZEN				MAKE_SQLSTATE('L','Y','0','0','1')
#define ERRCODE_LOYALTY_BENEFIT_UNAVAILABLE MAKE_SQLSTATE('L','Y','0','0','2')
#define ERRCODE_LOYALTY_BENEFIT_USED_UP		MAKE_SQLSTATE('L','Y','0','0','3')

typedef enum LoyaltyCapability
{
	CAP_REDEMPTION = 0,
	CAP_TRANSFER,
	/* benefit kinds, in the order of loyalty.benefit's kind check */
	CAP_ROOM_DISCOUNT,
	CAP_BREAKFAST,
	CAP_LATE_CHECKOUT,
	CAP_ROOM_UPGRADE,
	CAP_GIFT,
	CAP_VOUCHER,
	CAP_AMENITY,
	CAP_OTHER,
	LOYALTY_NUM_CAPABILITIES
} LoyaltyCapability;

#define CAP_BIT(c)		(1U << (c))

extern const char *const loyalty_capability_names[LOYALTY_NUM_CAPABILITIES];

/* one risk tag in effect, and what it freezes */
typedef struct RiskFreeze
{
	pg_uuid_t	tag_id;
	char		risk_code[LOYALTY_CODE_LEN];
	char		store_code[LOYALTY_CODE_LEN];	/* "" if raised by HQ */
	TimestampTz raised_at;
	uint32		freezes;		/* CAP_BIT mask */
} RiskFreeze;

extern int	loyalty_capability_from_name(const char *name);
extern uint32 loyalty_capability_mask(Datum freezes_array);
extern bool loyalty_frozen_by(const pg_uuid_t *member_id, int capability,
							  RiskFreeze *tag);
extern void loyalty_assert_not_frozen(const pg_uuid_t *member_id,
									  const char *capability);

#endif							/* LOYALTY_RISK_H */
