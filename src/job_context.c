/*-------------------------------------------------------------------------
 *
 * job_context.c
 *	  Where a long job may run: the batch procedures (points_expire_batch,
 *	  points_activate_due_batch, retention_purge_batch, member_erase_batch,
 *	  tier_requalify, tier_downgrade_apply) commit after every batch, which
 *	  PostgreSQL allows only in a CALL that is not inside a transaction
 *	  block nor inside a function.  Checked up front, so that the caller
 *	  reads what to do instead of a bare "invalid transaction termination"
 *	  (docs/operations.md, "Long jobs and their progress").
 *
 *	loyalty._job_require_nonatomic(kind text) returns void
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_job_require_nonatomic);

/*
 * job_procedure_name
 *		The procedure a user CALLs for a job kind of loyalty._job_run.
 */
static const char *
job_procedure_name(const char *kind)
{
	static const struct
	{
		const char *kind;
		const char *procedure;
	}			names[] = {
		{"expire", "loyalty.points_expire_batch"},
		{"activate", "loyalty.points_activate_due_batch"},
		{"retention", "loyalty.retention_purge_batch"},
		{"erase", "loyalty.member_erase_batch"},
		{"requalify", "loyalty.tier_requalify"},
		{"downgrade", "loyalty.tier_downgrade_apply"},
	};
	int			i;

	for (i = 0; i < lengthof(names); i++)
		if (strcmp(names[i].kind, kind) == 0)
			return names[i].procedure;
	return "this procedure";
}

/*
 * loyalty._job_require_nonatomic(kind text)
 *		Error unless the calling procedure may commit: it must be called by
 *		a procedure (loyalty._job_run) that was itself CALLed as a top-level
 *		statement outside a transaction block.  It reads the SPI connection
 *		of the calling PL/pgSQL procedure, so it must not be SECURITY
 *		DEFINER nor have a SET clause, and must not open a connection.
 */
Datum
loyalty_job_require_nonatomic(PG_FUNCTION_ARGS)
{
	const char *proc = job_procedure_name(PG_ARGISNULL(0) ? "" :
										  text_to_cstring(PG_GETARG_TEXT_PP(0)));

	if (IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("%s cannot run inside a transaction block", proc),
				 errdetail("It commits after every batch of members, so that a long job holds no lock for long and its progress is visible."),
				 errhint("CALL it on its own, outside BEGIN ... COMMIT (in psql, with AUTOCOMMIT on).")));
	if (!lspi_caller_nonatomic())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("%s cannot run inside a function or an atomic CALL", proc),
				 errdetail("It commits after every batch of members, which PostgreSQL allows only in a CALL made as a statement of its own."),
				 errhint("CALL it as a top-level statement (a pg_cron job, psql, or an application's own statement), not from a function or a DO block inside a transaction.")));
	PG_RETURN_VOID();
}
