/*-------------------------------------------------------------------------
 *
 * request.h
 *	  Idempotency for the SQL functions that keep no request record of
 *	  their own (enrolment, risk tags, benefit catalogue, stores, staff,
 *	  replicas, schedules): loyalty.request_key, and the adapter that lets
 *	  a C entry point taking its idempotency key first reuse the body of
 *	  its 1.1 entry point.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_REQUEST_H
#define LOYALTY_REQUEST_H

#include "fmgr.h"

/*
 * loyalty_call_keyed
 *		Run impl with fcinfo's arguments 1..n-1 (argument 0 is the
 *		idempotency key), once per (action, key, caller, arguments): a
 *		retry returns the first call's result.  impl must return a scalar
 *		(text) or void.
 */
extern Datum loyalty_call_keyed(FunctionCallInfo fcinfo, const char *action,
								PGFunction impl);

/*
 * loyalty_call_reordered
 *		Run impl with fcinfo's arguments in the order map gives: impl's
 *		argument i is fcinfo's argument map[i].  For 1.2 entry points that
 *		take the idempotency key first while the 1.1 body reads it last.
 */
extern Datum loyalty_call_reordered(FunctionCallInfo fcinfo, PGFunction impl,
									const int *map, int nargs);

#endif							/* LOYALTY_REQUEST_H */
