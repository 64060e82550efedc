/*-------------------------------------------------------------------------
 *
 * job_batch.c
 *	  SQL entry points of the ledger's long jobs in committed batches
 *	  (docs/operations.md, "Long jobs and their progress"):
 *
 *	loyalty._expire_points_batch(as_of, after, batch_size)
 *	loyalty._activate_due_batch(as_of, after, batch_size)
 *		one batch; returns (last_key uuid, processed int4, changed int4)
 *	loyalty._expire_points_count(as_of), loyalty._activate_due_count(as_of)
 *		the members the job will look at, its total
 *
 * The procedures of the job mechanism (loyalty._job_run) call them and
 * commit after each batch.  Only HQ CRM and DBA logins may run them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/timestamp.h"

#include "roles_caller.h"
#include "job.h"

PG_FUNCTION_INFO_V1(loyalty_expire_points_batch);
PG_FUNCTION_INFO_V1(loyalty_activate_due_batch);
PG_FUNCTION_INFO_V1(loyalty_expire_points_count);
PG_FUNCTION_INFO_V1(loyalty_activate_due_count);

#define JOB_RIGHTS	(DEPT_BIT(DEPT_CRM) | DEPT_BIT(DEPT_DBA))
#define JOB_MAX_BATCH	100000

/*
 * batch_args
 *		Check the caller and the arguments (as_of, after, batch_size) of a
 *		batch function.
 */
static void
batch_args(FunctionCallInfo fcinfo, TimestampTz *as_of, pg_uuid_t *after,
		   int *batch_size)
{
	loyalty_require_department(loyalty_caller(), JOB_RIGHTS);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("as_of, after and batch_size must not be null")));
	*as_of = PG_GETARG_TIMESTAMPTZ(0);
	*after = *PG_GETARG_UUID_P(1);
	*batch_size = PG_GETARG_INT32(2);
	if (*batch_size < 1 || *batch_size > JOB_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be between 1 and %d", JOB_MAX_BATCH),
				 errdetail("The batch size given was %d.", *batch_size)));
}

/*
 * batch_result
 *		A JobBatch as the (last_key, processed, changed) row.
 */
static Datum
batch_result(FunctionCallInfo fcinfo, const JobBatch *b)
{
	TupleDesc	tupdesc;
	Datum		v[3];
	bool		n[3] = {b->processed == 0, false, false};
	pg_uuid_t  *key = palloc(sizeof(pg_uuid_t));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	*key = b->last_key;
	v[0] = UUIDPGetDatum(key);
	v[1] = Int32GetDatum(b->processed);
	v[2] = Int32GetDatum(b->changed);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, v, n));
}

/*
 * count_arg
 *		Check the caller and as_of of a count function.
 */
static TimestampTz
count_arg(FunctionCallInfo fcinfo)
{
	loyalty_require_department(loyalty_caller(), JOB_RIGHTS);
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("as_of must not be null")));
	return PG_GETARG_TIMESTAMPTZ(0);
}

/*
 * loyalty._expire_points_batch(as_of, after, batch_size)
 */
Datum
loyalty_expire_points_batch(PG_FUNCTION_ARGS)
{
	TimestampTz as_of;
	pg_uuid_t	after;
	int			batch_size;
	JobBatch	b;

	batch_args(fcinfo, &as_of, &after, &batch_size);
	ledger_expire_batch(as_of, after, batch_size, &b);
	PG_RETURN_DATUM(batch_result(fcinfo, &b));
}

/*
 * loyalty._activate_due_batch(as_of, after, batch_size)
 */
Datum
loyalty_activate_due_batch(PG_FUNCTION_ARGS)
{
	TimestampTz as_of;
	pg_uuid_t	after;
	int			batch_size;
	JobBatch	b;

	batch_args(fcinfo, &as_of, &after, &batch_size);
	ledger_activate_due_batch(as_of, after, batch_size, &b);
	PG_RETURN_DATUM(batch_result(fcinfo, &b));
}

/*
 * loyalty._expire_points_count(as_of)
 */
Datum
loyalty_expire_points_count(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(ledger_expire_due_count(count_arg(fcinfo)));
}

/*
 * loyalty._activate_due_count(as_of)
 */
Datum
loyalty_activate_due_count(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(ledger_activate_due_count(count_arg(fcinfo)));
}
