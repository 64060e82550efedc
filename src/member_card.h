/*-------------------------------------------------------------------------
 *
 * member_card.h
 *	  The Luhn check digit of card numbers, also used by voucher codes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_MEMBER_CARD_H
#define LOYALTY_MEMBER_CARD_H

/* the digit that makes payload (n ASCII digits) plus it pass the Luhn test */
extern int	luhn_check_digit(const char *payload, int n);

#endif							/* LOYALTY_MEMBER_CARD_H */
