/*-------------------------------------------------------------------------
 *
 * audit_session.c
 *	  Synchronous audit: a writer of the session's own, for servers where
 *	  the library is not preloaded (or loyalty.audit_mode = 'session').
 *
 * Without shared_preload_libraries there is no shared queue and no pool
 * (src/audit_writer.c).  A read must still stay on record even if the
 * reader rolls back, so its record is still committed by another process:
 * the first audited read of a backend starts one dynamic background worker
 * of its own and talks to it through a pair of shared memory message queues
 * in a dynamic shared memory segment:
 *
 *	 backend --request--> writer: one AuditRead
 *	 backend <--reply---- writer: 'k' once the record is committed
 *
 * Each record is chained and committed on its own (loyalty_audit_chain with
 * a batch of one, which also chains the committed staged change records):
 * synchronous, one commit per read, no group commit.  The writer lives as
 * long as its backend.  It needs a free max_worker_processes slot per
 * concurrently auditing session: if none is free, the read is refused.
 * This is the 1.1 design, kept as the fallback.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "audit.h"

PGDLLEXPORT void loyalty_audit_session_writer_main(Datum main_arg);

#define AUDIT_QUEUE_SIZE	16384

/* the backend's end of the channel; NULL until the first record */
static dsm_segment *audit_seg = NULL;
static shm_mq_handle *audit_request = NULL;
static shm_mq_handle *audit_reply = NULL;
static bool audit_busy = false;	/* an exchange was interrupted */

/*
 * channel_close
 *		Give up the channel; the writer sees the detach and exits.
 */
static void
channel_close(void)
{
	if (audit_seg != NULL)
		dsm_detach(audit_seg);
	audit_seg = NULL;
	audit_request = NULL;
	audit_reply = NULL;
	audit_busy = false;
}

/*
 * channel_open
 *		Create the queues and start this backend's writer.
 */
static void
channel_open(void)
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
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "loyalty_audit_session_writer_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "loyalty audit writer for PID %d",
			 MyProcPid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "loyalty audit session writer");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	memcpy(worker.bgw_extra, &MyDatabaseId, sizeof(Oid));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		MemoryContextSwitchTo(old);
		dsm_detach(seg);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not write the audit record"),
				 errdetail("Without the audit writer pool every session that reads sensitive member data needs a background worker slot, and none is free, so the access is refused."),
				 errhint("Add loyalty to shared_preload_libraries and restart the server, or raise max_worker_processes.")));
	}
	audit_request = shm_mq_attach(req, seg, handle);
	audit_reply = shm_mq_attach(rep, seg, handle);
	audit_seg = seg;
	MemoryContextSwitchTo(old);
}

/*
 * loyalty_audit_session_write
 *		Record one read through the session's own writer and return once
 *		it is committed.  Errors (the read is refused) if it could not be.
 */
void
loyalty_audit_session_write(const AuditRead *rec)
{
	shm_mq_result res;
	Size		len;
	void	   *data;
	int			attempt;

	if (audit_busy)
		channel_close();
	/* a writer that exited (e.g. after a failed insert) is replaced once */
	for (attempt = 0; attempt < 2; attempt++)
	{
		if (audit_seg == NULL)
			channel_open();
		audit_busy = true;
		res = shm_mq_send(audit_request, sizeof(AuditRead), rec, false, true);
		if (res == SHM_MQ_SUCCESS)
			res = shm_mq_receive(audit_reply, &len, &data, false);
		if (res == SHM_MQ_SUCCESS && len == 1 && ((char *) data)[0] == 'k')
		{
			audit_busy = false;
			return;
		}
		channel_close();
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
 * loyalty_audit_session_writer_main
 *		Background worker entry point: serve one backend until it goes.
 *		Any error ends the worker, which its backend reports as a refused
 *		read.
 */
void
loyalty_audit_session_writer_main(Datum main_arg)
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

	CurrentResourceOwner = ResourceOwnerCreate(NULL, "loyalty audit session writer");
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

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "loyalty audit session writer",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		Size		len;
		void	   *data;
		shm_mq_result res;
		MemoryContext old;
		AuditRead	rec;

		res = shm_mq_receive(reqh, &len, &data, false);
		if (res != SHM_MQ_SUCCESS)
			break;				/* the backend has gone */
		if (len != sizeof(AuditRead))
			elog(FATAL, "malformed audit request");
		memcpy(&rec, data, sizeof(AuditRead));
		old = MemoryContextSwitchTo(loop_cxt);
		(void) loyalty_audit_chain(&rec, 1, true, true, loyalty_audit_chain_ops());
		MemoryContextSwitchTo(old);
		MemoryContextReset(loop_cxt);
		res = shm_mq_send(reph, 1, "k", false, true);
		if (res != SHM_MQ_SUCCESS)
			break;
	}
	dsm_detach(seg);
	proc_exit(0);
}
