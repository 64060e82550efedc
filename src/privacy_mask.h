/*-------------------------------------------------------------------------
 *
 * privacy_mask.h
 *	  Character-aware masks for member fields (docs/privacy.md).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_MASK_H
#define LOYALTY_MASK_H

/* what a fully masked value looks like, whatever its length */
#define MASK_FULL "****"

typedef enum LoyaltyMask
{
	MASK_PHONE,
	MASK_NAME,
	MASK_EMAIL,
	MASK_LAST4,
	MASK_FULL_VALUE
} LoyaltyMask;

extern int	loyalty_split_clusters(const char *s, int len, int **starts);
extern text *loyalty_mask_text(LoyaltyMask mask, const char *s, int len);

#endif							/* LOYALTY_MASK_H */
