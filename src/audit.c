/*-------------------------------------------------------------------------
 *
 * audit.c
 *	  Audit records that survive the reader's rollback.
 *
 * A read of sensitive member data must stay on record even if the reading
 * transaction rolls back, so the record cannot be written by the reader's
 * transaction.  Each backend that audits starts one dynamic background
 * worker of its own (the "audit writer") and talks to it through a pair of
 * shared memory message queues in a dynamic shared memory segment:
 *
 *	 backend --request--> writer: one record
 *	 backend <--reply---- writer: 'k' once the record is committed
 *
 * loyalty._audit() sends the record and waits for the reply, so when it
 * returns, the record is committed in a transaction of its own, whatever
 * the reader does next.  If the writer cannot be started or dies (for
 * example because the insert failed), loyalty._audit() raises an error:
 * the read is refused rather than left unrecorded.
 *
 * The writer lives as long as its backend: when the backend exits (or
 * gives up the queue after an interrupted exchange), the writer sees the
 * queue detach and exits too.  It needs no shared_preload_libraries entry,
 * only a free max_worker_processes slot per concurrently auditing session.
 *
 * The writer calls loyalty._audit_append(), which serialises writers with
 * a table lock and extends the hash chain (src/sql/43_audit.sql).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audit.h"
#include "roles_caller.h"

PG_FUNCTION_INFO_V1(loyalty_audit);

PGDLLEXPORT void loyalty_audit_writer_main(Datum main_arg);

#define AUDIT_QUEUE_SIZE	16384
#define AUDIT_NFIELDS		9

/* the backend's end of the channel; NULL until the first record */
static dsm_segment *audit_seg = NULL;
static shm_mq_handle *audit_request = NULL;
static shm_mq_handle *audit_reply = NULL;
static bool audit_busy = false;	/* an exchange was interrupted */

/*
 * audit_channel_close
 *		Give up the channel; the writer sees the detach and exits.
 */
static void
audit_channel_close(void)
{
	if (audit_seg != NULL)
		dsm_detach(audit_seg);
	audit_seg = NULL;
	audit_request = NULL;
	audit_reply = NULL;
	audit_busy = false;
}

/*
 * audit_channel_open
 *		Create the queues and start this backend's writer.
 */
static void
audit_channel_open(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	dsm_segment *seg;
	shm_mq	   *req;
	shm_mq	   *rep;
	char	   *base;

	seg = dsm_create(2 * AUDIT_QUEUE_SIZE, 0);
	dsm_pin_mapping(seg);
	base = dsm_segment_address(seg);
	req = shm_mq_create(base, AUDIT_QUEUE_SIZE);
	rep = shm_mq_create(base + AUDIT_QUEUE_SIZE, AUDIT_QUEUE_SIZE);
	shm_mq_set_sender(req, MyProc);
	shm_mq_set_receiver(rep, MyProc);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "loyalty");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "loyalty_audit_writer_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "loyalty audit writer for PID %d",
			 MyProcPid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "loyalty audit writer");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	memcpy(worker.bgw_extra, &MyDatabaseId, sizeof(Oid));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		MemoryContextSwitchTo(old);
		dsm_detach(seg);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the loyalty audit writer"),
				 errdetail("Every session that reads sensitive member data needs a background worker slot, and none is free."),
				 errhint("Raise max_worker_processes.")));
	}
	audit_request = shm_mq_attach(req, seg, handle);
	audit_reply = shm_mq_attach(rep, seg, handle);
	audit_seg = seg;
	MemoryContextSwitchTo(old);
}

/*
 * put_field
 *		Append one field to a request: a NULL flag byte, then the string
 *		with its terminating NUL.
 */
static void
put_field(StringInfo buf, const char *value)
{
	appendStringInfoChar(buf, value == NULL ? 'n' : 'v');
	if (value != NULL)
		appendBinaryStringInfo(buf, value, strlen(value) + 1);
}

/*
 * loyalty_audit_record
 *		Record one audit entry and return once it is committed.  Errors if
 *		it could not be recorded.
 */
void
loyalty_audit_record(const char *member_id, const char *action,
					 const char *fields, const char *purpose)
{
	const LoyaltyCaller *c = loyalty_caller_lookup();
	StringInfoData buf;
	shm_mq_result res;
	Size		len;
	void	   *data;
	int			attempt;

	initStringInfo(&buf);
	put_field(&buf, GetUserNameFromId(GetSessionUserId(), false));
	put_field(&buf, GetUserNameFromId(c->userid, false));
	put_field(&buf, c->is_hq || c->department == DEPT_NONE ? NULL : c->store_code);
	put_field(&buf, c->department == DEPT_NONE ? NULL
			  : loyalty_department_names[c->department]);
	put_field(&buf, member_id);
	put_field(&buf, action);
	put_field(&buf, fields);
	put_field(&buf, purpose);
	put_field(&buf, timestamptz_to_str(GetCurrentTimestamp()));

	if (audit_busy)
		audit_channel_close();
	/* a writer that exited (e.g. after a failed insert) is replaced once */
	for (attempt = 0; attempt < 2; attempt++)
	{
		if (audit_seg == NULL)
			audit_channel_open();
		audit_busy = true;
		res = shm_mq_send(audit_request, buf.len, buf.data, false, true);
		if (res == SHM_MQ_SUCCESS)
			res = shm_mq_receive(audit_reply, &len, &data, false);
		if (res == SHM_MQ_SUCCESS && len == 1 && ((char *) data)[0] == 'k')
		{
			audit_busy = false;
			pfree(buf.data);
			return;
		}
		audit_channel_close();
		/* retry only if the writer was gone before it got the record */
		if (res != SHM_MQ_DETACHED || attempt > 0)
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_SYSTEM_ERROR),
			 errmsg("could not write the audit record"),
			 errdetail("The audit writer stopped before it committed the record, so the access is refused."),
			 errhint("See the server log for the writer's error.")));
}

/*
 * loyalty._audit(member_id uuid, action text, fields text[], purpose text)
 *		SQL face of loyalty_audit_record, for the SECURITY DEFINER API
 *		functions.  Granted to nobody.
 */
Datum
loyalty_audit(PG_FUNCTION_ARGS)
{
	char	   *member = PG_ARGISNULL(0) ? NULL
		: DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(0)));
	char	   *fields = NULL;

	if (!PG_ARGISNULL(2))
	{
		Oid			outfunc;
		bool		isvarlena;

		getTypeOutputInfo(TEXTARRAYOID, &outfunc, &isvarlena);
		fields = OidOutputFunctionCall(outfunc, PG_GETARG_DATUM(2));
	}

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("audit action must not be null")));
	loyalty_audit_record(member, TextDatumGetCString(PG_GETARG_DATUM(1)),
						 fields,
						 PG_ARGISNULL(3) ? NULL : TextDatumGetCString(PG_GETARG_DATUM(3)));
	PG_RETURN_VOID();
}

/*
 * writer_store
 *		Insert one request in a transaction of its own and commit it.  Any
 *		error ends the worker (no error handler is set up), which the
 *		backend reports as a failed audit.
 */
static void
writer_store(char *data, Size len)
{
	Datum		values[AUDIT_NFIELDS];
	char		nulls[AUDIT_NFIELDS];
	Oid			types[AUDIT_NFIELDS];
	char	   *p = data;
	char	   *end = data + len;
	int			i;
	int			ret;

	for (i = 0; i < AUDIT_NFIELDS; i++)
	{
		types[i] = TEXTOID;
		if (p >= end)
			elog(FATAL, "truncated audit request");
		if (*p++ == 'n')
		{
			nulls[i] = 'n';
			values[i] = (Datum) 0;
			continue;
		}
		if (memchr(p, '\0', end - p) == NULL)
			elog(FATAL, "malformed audit request");
		nulls[i] = ' ';
		values[i] = CStringGetTextDatum(p);
		p += strlen(p) + 1;
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(FATAL, "SPI_connect failed: %s", SPI_result_code_string(ret));
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "loyalty audit append");
	ret = SPI_execute_with_args("SELECT loyalty._audit_append($1, $2, $3, $4, "
								"$5::uuid, $6, $7::text[], $8, $9::timestamptz)",
								AUDIT_NFIELDS, types, values, nulls, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(FATAL, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * loyalty_audit_writer_main
 *		Background worker entry point: serve one backend until it goes.
 */
void
loyalty_audit_writer_main(Datum main_arg)
{
	dsm_segment *seg;
	shm_mq	   *req;
	shm_mq	   *rep;
	shm_mq_handle *reqh;
	shm_mq_handle *reph;
	char	   *base;
	Oid			dboid;
	MemoryContext loop_cxt;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	CurrentResourceOwner = ResourceOwnerCreate(NULL, "loyalty audit writer");
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not map the audit queue segment")));
	base = dsm_segment_address(seg);
	req = (shm_mq *) base;
	rep = (shm_mq *) (base + AUDIT_QUEUE_SIZE);
	shm_mq_set_receiver(req, MyProc);
	shm_mq_set_sender(rep, MyProc);
	reqh = shm_mq_attach(req, seg, NULL);
	reph = shm_mq_attach(rep, seg, NULL);

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	BackgroundWorkerInitializeConnectionByOid(dboid, BOOTSTRAP_SUPERUSERID, 0);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "loyalty audit writer",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		Size		len;
		void	   *data;
		shm_mq_result res;
		MemoryContext old;

		res = shm_mq_receive(reqh, &len, &data, false);
		if (res != SHM_MQ_SUCCESS)
			break;				/* the backend has gone */
		old = MemoryContextSwitchTo(loop_cxt);
		writer_store(data, len);
		MemoryContextSwitchTo(old);
		MemoryContextReset(loop_cxt);
		res = shm_mq_send(reph, 1, "k", false, true);
		if (res != SHM_MQ_SUCCESS)
			break;
	}
	dsm_detach(seg);
	proc_exit(0);
}
