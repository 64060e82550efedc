/*-------------------------------------------------------------------------
 *
 * member_card.c
 *	  Membership card numbers.
 *
 * A card number is 12 digits: 11 drawn from the strong random source and a
 * Luhn check digit, so that typing errors at a front desk are caught
 * before a lookup and numbers reveal nothing about how many members exist.
 * HQ's numbers start with 1 to 8.  A store replica enrolling offline issues
 * 9, its three-digit card block (assigned by HQ, unique per store), a
 * seven-digit number in the block and the check digit
 * (loyalty._card_number_offline), so no two servers can issue one number.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "member_card.h"

PG_FUNCTION_INFO_V1(loyalty_new_card_number);
PG_FUNCTION_INFO_V1(loyalty_card_number_valid);
PG_FUNCTION_INFO_V1(loyalty_card_number_offline);

#define CARD_DIGITS 12

/*
 * luhn_check_digit
 *		The digit that makes payload (n digits) plus it pass the Luhn test.
 */
int
luhn_check_digit(const char *payload, int n)
{
	int			sum = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		int			d = payload[n - 1 - i] - '0';

		if (i % 2 == 0)
		{
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
	}
	return (10 - sum % 10) % 10;
}

/*
 * loyalty.card_number_new() returns text
 */
Datum
loyalty_new_card_number(PG_FUNCTION_ARGS)
{
	char		card[CARD_DIGITS + 1];
	uint8		rnd[CARD_DIGITS];
	int			i;

	if (!pg_strong_random(rnd, sizeof(rnd)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random card number")));
	/*
	 * first digit 1-8, so numbers never lose a leading zero in spreadsheets;
	 * 9 is the stores' offline range
	 */
	card[0] = '1' + rnd[0] % 8;
	for (i = 1; i < CARD_DIGITS - 1; i++)
		card[i] = '0' + rnd[i] % 10;
	card[CARD_DIGITS - 1] = '0' + luhn_check_digit(card, CARD_DIGITS - 1);
	card[CARD_DIGITS] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(card));
}

/*
 * loyalty.card_number_valid(text) returns boolean
 *		Twelve digits with a correct check digit.
 */
Datum
loyalty_card_number_valid(PG_FUNCTION_ARGS)
{
	char	   *s = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			i;

	if (strlen(s) != CARD_DIGITS)
		PG_RETURN_BOOL(false);
	for (i = 0; i < CARD_DIGITS; i++)
		if (s[i] < '0' || s[i] > '9')
			PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(s[CARD_DIGITS - 1] - '0' == luhn_check_digit(s, CARD_DIGITS - 1));
}

/*
 * loyalty._card_number_offline(block integer, seq bigint) returns text
 *		A store's offline card number: 9, the block (1-999), seq (1 to
 *		9,999,999) and the Luhn check digit.
 */
Datum
loyalty_card_number_offline(PG_FUNCTION_ARGS)
{
	int32		block = PG_GETARG_INT32(0);
	int64		seq = PG_GETARG_INT64(1);
	char		card[CARD_DIGITS + 1];

	if (block < 1 || block > 999)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("card block %d is not between 1 and 999", block)));
	if (seq < 1 || seq > 9999999)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("card block %d has no offline card number left", block),
				 errhint("Enrol at headquarters, or give the store another card block.")));
	snprintf(card, sizeof(card), "9%03d%07d", block, (int) seq);
	card[CARD_DIGITS - 1] = '0' + luhn_check_digit(card, CARD_DIGITS - 1);
	card[CARD_DIGITS] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(card));
}
