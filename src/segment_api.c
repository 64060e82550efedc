/*-------------------------------------------------------------------------
 *
 * segment_api.c
 *	  Checks shared by the mutating functions of segments, audiences and
 *	  campaign registration (docs/segments.md):
 *
 *	loyalty._segment_key_check(idempotency_key text)
 *		the client idempotency key of every mutating call: not null, 1 to
 *		200 characters (22004 / 22023, the messages of every API)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(loyalty_segment_key_check);

/*
 * loyalty._segment_key_check(idempotency_key text)
 *		Error unless the key is 1 to 200 characters.
 */
Datum
loyalty_segment_key_check(PG_FUNCTION_ARGS)
{
	text	   *key;
	int			len;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("idempotency_key must not be null")));
	key = PG_GETARG_TEXT_PP(0);
	len = pg_mbstrlen_with_len(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	if (len < 1 || len > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency_key must be 1 to 200 characters")));
	PG_RETURN_VOID();
}
