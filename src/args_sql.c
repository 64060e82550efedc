/*-------------------------------------------------------------------------
 *
 * args_sql.c
 *	  The argument checks of args.h for PL/pgSQL bodies:
 *	  loyalty._idempotency_key_check() and loyalty._points_check(), so that
 *	  a SQL function says what a C one says, with the same SQLSTATE.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

#include "args.h"

PG_FUNCTION_INFO_V1(loyalty_idempotency_key_check);
PG_FUNCTION_INFO_V1(loyalty_points_check);

/*
 * loyalty._idempotency_key_check(idempotency_key text) returns void
 */
Datum
loyalty_idempotency_key_check(PG_FUNCTION_ARGS)
{
	(void) loyalty_arg_key(fcinfo, 0);
	PG_RETURN_VOID();
}

/*
 * loyalty._points_check(points bigint) returns void
 */
Datum
loyalty_points_check(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("points must not be null")));
	loyalty_check_points(PG_GETARG_INT64(0));
	PG_RETURN_VOID();
}
