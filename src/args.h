/*-------------------------------------------------------------------------
 *
 * args.h
 *	  Argument checks shared by every SQL entry point, one message each:
 *	  the idempotency key, points, a store code and a time zone.
 *
 * Every SQL function that takes one of these checks it here, so that a
 * client sees the same SQLSTATE and the same words whichever function it
 * called (docs/development.md, "API conventions").
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_ARGS_H
#define LOYALTY_ARGS_H

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

/* the longest idempotency key, in characters */
#define LOYALTY_KEY_MAX_CHARS	200
/* the most points one call may move */
#define LOYALTY_POINTS_MAX		INT64CONST(100000000)

/*
 * loyalty_check_key
 *		Error unless key (a C string, or NULL) is a valid idempotency key:
 *		not null, 1 to 200 characters (not bytes).
 */
static inline void
loyalty_check_key(const char *key)
{
	if (key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("idempotency_key must not be null"),
				 errhint("Use a fresh UUID per operation, and the same one when retrying it.")));
	if (key[0] == '\0' ||
		pg_mbstrlen_with_len(key, strlen(key)) > LOYALTY_KEY_MAX_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency_key must be 1 to 200 characters"),
				 errhint("Use a fresh UUID per operation, and the same one when retrying it.")));
}

/*
 * loyalty_arg_key
 *		The idempotency key of argument argno, checked, as a C string.
 */
static inline char *
loyalty_arg_key(FunctionCallInfo fcinfo, int argno)
{
	char	   *key = PG_ARGISNULL(argno) ? NULL :
		TextDatumGetCString(PG_GETARG_DATUM(argno));

	loyalty_check_key(key);
	return key;
}

/*
 * loyalty_check_points
 *		Error unless points is 1 to 100,000,000.
 */
static inline void
loyalty_check_points(int64 points)
{
	if (points <= 0 || points > LOYALTY_POINTS_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("points must be between 1 and 100000000")));
}

/*
 * loyalty_check_store_code, loyalty_check_time_zone (src/roles.c)
 *		A store code is 1 to 32 lowercase letters, digits and underscores,
 *		starting with a letter (it becomes part of role names); a time zone
 *		is an IANA name the server knows.  Whether the store exists is the
 *		caller's question.
 */
extern void loyalty_check_store_code(const char *code);
extern void loyalty_check_time_zone(const char *tz);

#endif							/* LOYALTY_ARGS_H */
