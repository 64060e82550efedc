/*-------------------------------------------------------------------------
 *
 * audit_writer.c
 *	  The pool of audit writers and the shared memory queue that feeds it.
 *
 * A read of sensitive member data must stay on record even if the reading
 * transaction rolls back, so its record is committed by another process:
 * an audit writer.  The library must be in shared_preload_libraries (if
 * not, src/audit_session.c gives each auditing session a writer of its
 * own); at server start it reserves one shared memory area (AuditShared):
 *
 *	- a queue of record slots (one per possible backend, plus headroom),
 *	  each FREE, QUEUED (by a backend, in database D), TAKEN (by a writer),
 *	  DONE (committed) or FAILED, with a sequence number that orders the
 *	  chain and a condition variable its backend sleeps on;
 *	- a table of databases in use, each with up to loyalty.audit_writers
 *	  writer slots (pid and latch of a running writer);
 *	- one LWLock protecting all of it.
 *
 * A backend's audited read (loyalty_audit_enqueue_and_wait) fills a FREE
 * slot, sets the latches of its database's writers (starting the missing
 * ones, which is how a database's pool comes up: at its first audited
 * read, or its first staged change record, loyalty_audit_writers_ensure),
 * and sleeps on its slot until a writer marks it DONE.  Only then
 * does the read return, so the answer is never served before its record is
 * durable.  A backend cancelled or killed while waiting has queued its
 * record already: the writer still commits it (the answer was not served);
 * the slot is then freed by the writer.
 *
 * A writer takes every QUEUED record of its database at once (a batch),
 * in sequence order, and in one transaction (loyalty_audit_chain,
 * src/audit_chain.c): becomes the one process extending the chain (the
 * chain's head is kept here, per database, with no table lock), moves the
 * committed change records of loyalty.audit_change_staging onto the chain,
 * then the batch's reads, and commits once: group commit.  The commit does
 * not wait for the disk; the writer marks every record of the batch DONE
 * with the commit's WAL position and goes on, and each backend waits for
 * the WAL flush up to its own record (loyalty_audit_flush) before its read
 * returns: the flushes of many batches are shared.
 * If the writer fails, its TAKEN records are marked FAILED by its exit
 * callback and their reads are refused; the next record starts a new
 * writer.  With no writer able to run (no worker slot), reads are refused.
 *
 * A DROP DATABASE (object access hook) makes the writers of that database
 * exit, so that they do not keep it busy.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/objectaccess.h"
#include "catalog/pg_authid.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/vacuum.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "audit.h"

PGDLLEXPORT void loyalty_audit_pool_writer_main(Datum main_arg);

#define AUDIT_MAX_DBS			16
#define AUDIT_MAX_WRITERS		16
#define AUDIT_STAGING_POLL_MS	5000
#define AUDIT_SWEEP_MIN_MS		100	/* staged changes: a sweep per 100 ms at most */
#define AUDIT_STAGING_VACUUM_ROWS 5000	/* a writer vacuums the staging after this
										 * many rows taken */

typedef enum AuditSlotState
{
	REC_FREE = 0,
	REC_QUEUED,
	REC_TAKEN,
	REC_DONE,
	REC_FAILED
} AuditSlotState;

typedef struct AuditSlot
{
	AuditSlotState state;
	Oid			dboid;
	uint64		seq;
	pid_t		owner;			/* the waiting backend */
	bool		abandoned;		/* its backend stopped waiting */
	int			writer;			/* writer slot that took it */
	XLogRecPtr	commit_lsn;		/* DONE: its commit ends here in the WAL */
	ConditionVariable cv;
	AuditRead	rec;
} AuditSlot;

typedef enum WriterState
{
	WRITER_FREE = 0,
	WRITER_STARTING,
	WRITER_RUNNING
} WriterState;

typedef struct AuditWriterSlot
{
	WriterState state;
	pid_t		pid;
	Latch	   *latch;
} AuditWriterSlot;

typedef struct AuditDb
{
	Oid			dboid;			/* InvalidOid: entry unused */
	bool		dropping;		/* DROP DATABASE in progress */
	bool		changes_pending;	/* staged changes committed */
	TimestampTz last_sweep;		/* a writer last took the staged changes */
	AuditWriterSlot writers[AUDIT_MAX_WRITERS];

	/*
	 * The chain's head: one process at a time extends the chain of a
	 * database (chain_owner), from the head kept here (chain_valid) or, at
	 * the first batch after a start or a failure, read from the table.
	 */
	pid_t		chain_owner;	/* 0: nobody is extending the chain */
	bool		chain_valid;	/* the fields below are the head */
	Oid			chain_relid;	/* of loyalty.audit_log, as cached */
	int64		chain_last_id;
	int			chain_hashlen;
	uint8		chain_hash[AUDIT_HASH_LEN];
	ConditionVariable chain_cv; /* chain_owner became 0 */
} AuditDb;

typedef struct AuditShared
{
	LWLock	   *lock;
	uint64		next_seq;
	int			nslots;
	ConditionVariable space_cv; /* a slot became FREE */
	AuditDb		dbs[AUDIT_MAX_DBS];
	AuditSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} AuditShared;

int			loyalty_audit_writers = 2;

static AuditShared *audit_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static object_access_hook_type prev_object_access_hook = NULL;

/* the backend's record in flight (-1: none) */
static int	pending_slot = -1;
static bool exit_cb_registered = false;

/* a writer's identity */
static int	my_db = -1;
static int	my_writer = -1;

/*
 * audit_nslots
 *		Queue length: every backend can have one record waiting.
 */
static int
audit_nslots(void)
{
	return MaxBackends + 64;
}

static Size
audit_shmem_size(void)
{
	return add_size(offsetof(AuditShared, slots),
					mul_size(audit_nslots(), sizeof(AuditSlot)));
}

/*
 * audit_shmem_request
 *		Reserve the shared area and its lock (shmem_request_hook).
 */
static void
audit_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(audit_shmem_size());
	RequestNamedLWLockTranche("loyalty_audit", 1);
}

/*
 * audit_shmem_startup
 *		Create or attach the shared area (shmem_startup_hook).
 */
static void
audit_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	audit_shared = ShmemInitStruct("loyalty audit queue", audit_shmem_size(), &found);
	if (!found)
	{
		memset(audit_shared, 0, audit_shmem_size());
		audit_shared->lock = &(GetNamedLWLockTranche("loyalty_audit"))->lock;
		audit_shared->next_seq = 1;
		audit_shared->nslots = audit_nslots();
		ConditionVariableInit(&audit_shared->space_cv);
		for (i = 0; i < audit_shared->nslots; i++)
			ConditionVariableInit(&audit_shared->slots[i].cv);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * audit_object_access
 *		On DROP DATABASE, make that database's writers exit so that they do
 *		not keep it busy (dropdb waits a few seconds for other sessions).
 */
static void
audit_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_DROP && classId == DatabaseRelationId && audit_shared != NULL)
	{
		int			d,
					w;

		LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
		for (d = 0; d < AUDIT_MAX_DBS; d++)
		{
			AuditDb    *db = &audit_shared->dbs[d];

			if (db->dboid != objectId)
				continue;
			db->dropping = true;
			for (w = 0; w < AUDIT_MAX_WRITERS; w++)
				if (db->writers[w].state == WRITER_RUNNING && db->writers[w].latch)
					SetLatch(db->writers[w].latch);
		}
		LWLockRelease(audit_shared->lock);
	}
}

/*
 * loyalty_audit_init
 *		Define the settings; when preloaded, reserve the shared area (from
 *		_PG_init).
 */
void
loyalty_audit_init(void)
{
	/* a PGC_POSTMASTER setting can only be defined while preloading */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("loyalty.audit_writers",
							"Number of audit writer processes per database.",
							"Writers commit audited reads in batches; they start at a database's first audited record.",
							&loyalty_audit_writers,
							2, 1, AUDIT_MAX_WRITERS,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = audit_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = audit_shmem_startup;
	prev_object_access_hook = object_access_hook;
	object_access_hook = audit_object_access;
}

/*
 * loyalty_audit_pool_available
 *		Whether the library was preloaded (the queue exists).
 */
bool
loyalty_audit_pool_available(void)
{
	return audit_shared != NULL;
}

/*
 * find_db
 *		The entry of dboid, created if create; -1 if none (lock held
 *		exclusively when create).
 */
static int
find_db(Oid dboid, bool create)
{
	int			d,
				w,
				unused = -1;

	for (d = 0; d < AUDIT_MAX_DBS; d++)
	{
		if (audit_shared->dbs[d].dboid == dboid)
			return d;
		if (unused < 0)
		{
			bool		empty = true;

			for (w = 0; w < AUDIT_MAX_WRITERS; w++)
				if (audit_shared->dbs[d].writers[w].state != WRITER_FREE)
					empty = false;
			if (audit_shared->dbs[d].chain_owner != 0)
				empty = false;
			if (empty)
				unused = d;
		}
	}
	if (!create || unused < 0)
		return -1;
	memset(&audit_shared->dbs[unused], 0, sizeof(AuditDb));
	audit_shared->dbs[unused].dboid = dboid;
	ConditionVariableInit(&audit_shared->dbs[unused].chain_cv);
	return unused;
}

/*
 * lock_own_db
 *		Take the queue's lock and this database's entry, made if new; the
 *		lock stays held.  Error (lock released) when every entry serves
 *		another database.
 */
static int
lock_own_db(void)
{
	int			d;

	LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
	d = find_db(MyDatabaseId, true);
	if (d < 0)
	{
		LWLockRelease(audit_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not write the audit record"),
				 errdetail("The audit writers serve at most %d databases at a time, so the access is refused.",
						   AUDIT_MAX_DBS)));
	}
	return d;
}

/*
 * wake_writers
 *		Set the latch of every running writer of a database (lock held).
 */
static void
wake_writers(AuditDb *db)
{
	int			w;

	for (w = 0; w < AUDIT_MAX_WRITERS; w++)
		if (db->writers[w].state == WRITER_RUNNING && db->writers[w].latch)
			SetLatch(db->writers[w].latch);
}

/*
 * db_has_writers
 *		Whether a database has a writer running or starting (lock held).
 */
static bool
db_has_writers(AuditDb *db)
{
	int			w;

	for (w = 0; w < AUDIT_MAX_WRITERS; w++)
		if (db->writers[w].state != WRITER_FREE)
			return true;
	return false;
}

/*
 * release_pending
 *		Give up the backend's record in flight: free it if it is finished,
 *		else leave it to the writer (abandoned).
 */
static void
release_pending(void)
{
	AuditSlot  *s;

	if (pending_slot < 0 || audit_shared == NULL)
		return;
	s = &audit_shared->slots[pending_slot];
	LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
	if (s->owner == MyProcPid)
	{
		if (s->state == REC_DONE || s->state == REC_FAILED)
		{
			s->state = REC_FREE;
			s->owner = 0;
			ConditionVariableBroadcast(&audit_shared->space_cv);
		}
		else if (s->state != REC_FREE)
			s->abandoned = true;
	}
	LWLockRelease(audit_shared->lock);
	pending_slot = -1;
}

/*
 * backend_exit_cb
 *		A backend that exits while waiting leaves its record to the writer.
 */
static void
backend_exit_cb(int code, Datum arg)
{
	release_pending();
}

/*
 * start_writers
 *		Start the missing writers of database d; returns whether at least
 *		one writer is running or starting afterwards.
 */
static bool
start_writers(int d)
{
	AuditDb    *db = &audit_shared->dbs[d];
	int			reserve[AUDIT_MAX_WRITERS];
	int			nreserve = 0;
	int			w;
	bool		any;

	LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
	if (db->dropping && !db_has_writers(db))
		db->dropping = false;	/* a DROP DATABASE that did not happen */
	for (w = 0; w < loyalty_audit_writers; w++)
		if (db->writers[w].state == WRITER_FREE)
		{
			db->writers[w].state = WRITER_STARTING;
			db->writers[w].pid = 0;
			db->writers[w].latch = NULL;
			reserve[nreserve++] = w;
		}
	LWLockRelease(audit_shared->lock);

	for (w = 0; w < nreserve; w++)
	{
		BackgroundWorker worker;
		BackgroundWorkerHandle *handle;
		pid_t		pid;
		bool		ok = false;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
			BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_ConsistentState;
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "loyalty");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "loyalty_audit_pool_writer_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "loyalty audit writer %d for database %u",
				 reserve[w] + 1, MyDatabaseId);
		snprintf(worker.bgw_type, BGW_MAXLEN, "loyalty audit writer");
		worker.bgw_main_arg = Int32GetDatum(d * AUDIT_MAX_WRITERS + reserve[w]);
		memcpy(worker.bgw_extra, &MyDatabaseId, sizeof(Oid));
		worker.bgw_notify_pid = MyProcPid;

		if (RegisterDynamicBackgroundWorker(&worker, &handle))
			ok = (WaitForBackgroundWorkerStartup(handle, &pid) == BGWH_STARTED);
		if (!ok)
		{
			LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
			if (db->writers[reserve[w]].state == WRITER_STARTING)
				db->writers[reserve[w]].state = WRITER_FREE;
			LWLockRelease(audit_shared->lock);
		}
	}

	LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
	any = db_has_writers(db);
	LWLockRelease(audit_shared->lock);
	return any;
}

/*
 * loyalty_audit_enqueue_and_wait
 *		Queue one read record and return once a writer has committed it.
 *		Errors (and the read is refused) if the pool is not there, no writer
 *		can run, or the writer failed.
 */
void
loyalty_audit_enqueue_and_wait(const AuditRead *rec)
{
	AuditSlot  *s = NULL;
	int			d;
	int			i;
	bool		need_start = false;

	if (audit_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not write the audit record"),
				 errdetail("The loyalty audit writers are not running, so the access is refused."),
				 errhint("Add loyalty to shared_preload_libraries and restart the server.")));

	release_pending();
	if (!exit_cb_registered)
	{
		before_shmem_exit(backend_exit_cb, (Datum) 0);
		exit_cb_registered = true;
	}

	/* a free slot, waiting for one if the queue is full */
	for (;;)
	{
		d = lock_own_db();
		for (i = 0; i < audit_shared->nslots; i++)
			if (audit_shared->slots[i].state == REC_FREE)
				break;
		if (i < audit_shared->nslots)
			break;
		LWLockRelease(audit_shared->lock);
		ConditionVariableSleep(&audit_shared->space_cv, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();

	s = &audit_shared->slots[i];
	s->state = REC_QUEUED;
	s->dboid = MyDatabaseId;
	s->seq = audit_shared->next_seq++;
	s->owner = MyProcPid;
	s->abandoned = false;
	s->writer = -1;
	memcpy(&s->rec, rec, sizeof(AuditRead));
	pending_slot = i;
	{
		AuditDb    *db = &audit_shared->dbs[d];
		int			running = 0,
					w;

		for (w = 0; w < loyalty_audit_writers; w++)
			if (db->writers[w].state != WRITER_FREE)
				running++;
		need_start = (running < loyalty_audit_writers);
		wake_writers(db);
	}
	LWLockRelease(audit_shared->lock);

	if (need_start && !start_writers(d))
	{
		/* nobody will write it: withdraw the record, refuse the read */
		LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
		if (s->state == REC_QUEUED)
		{
			s->state = REC_FREE;
			s->owner = 0;
			ConditionVariableBroadcast(&audit_shared->space_cv);
			pending_slot = -1;
		}
		LWLockRelease(audit_shared->lock);
		if (pending_slot < 0)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not write the audit record"),
					 errdetail("No audit writer could be started, so the access is refused."),
					 errhint("Raise max_worker_processes.")));
	}
	else if (need_start)
	{
		LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
		wake_writers(&audit_shared->dbs[d]);
		LWLockRelease(audit_shared->lock);
	}

	/* wait until a writer has committed it */
	ConditionVariablePrepareToSleep(&s->cv);
	for (;;)
	{
		AuditSlotState st;
		bool		orphan = false;
		XLogRecPtr	lsn = InvalidXLogRecPtr;

		LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
		st = s->state;
		if (st == REC_QUEUED && !db_has_writers(&audit_shared->dbs[d]))
		{
			s->state = REC_FREE;
			s->owner = 0;
			ConditionVariableBroadcast(&audit_shared->space_cv);
			orphan = true;
		}
		else if (st == REC_DONE || st == REC_FAILED)
		{
			lsn = s->commit_lsn;
			s->state = REC_FREE;
			s->owner = 0;
			ConditionVariableBroadcast(&audit_shared->space_cv);
		}
		else if (st == REC_QUEUED)
			wake_writers(&audit_shared->dbs[d]);
		LWLockRelease(audit_shared->lock);

		if (orphan || st == REC_DONE || st == REC_FAILED)
		{
			ConditionVariableCancelSleep();
			pending_slot = -1;
			if (st == REC_DONE)
			{
				/* committed: served once durable (with the others' flush) */
				loyalty_audit_flush(lsn);
				return;
			}
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not write the audit record"),
					 errdetail("The audit writer stopped before it committed the record, so the access is refused."),
					 errhint("See the server log for the writer's error.")));
		}
		/* the timeout only re-checks that a writer is still there */
		ConditionVariableTimedSleep(&s->cv, 1000, PG_WAIT_EXTENSION);
	}
}

/*
 * loyalty_audit_writers_ensure
 *		A transaction stages change records: make sure its database's
 *		writers run, so that they chain the records within seconds even if
 *		no audited read has started them yet.  Never an error for want of a
 *		writer (the records stay staged until one runs).
 */
void
loyalty_audit_writers_ensure(void)
{
	int			d;
	bool		running;

	if (audit_shared == NULL)
		return;
	LWLockAcquire(audit_shared->lock, LW_SHARED);
	d = find_db(MyDatabaseId, false);
	running = (d >= 0 && db_has_writers(&audit_shared->dbs[d]));
	LWLockRelease(audit_shared->lock);
	if (running)
		return;
	LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
	d = find_db(MyDatabaseId, true);
	LWLockRelease(audit_shared->lock);
	if (d >= 0)
		(void) start_writers(d);
}

/*
 * loyalty_audit_changes_committed
 *		A transaction that staged change records committed: wake one of
 *		the database's writers to chain them, unless a sweep is already
 *		pending.
 *
 * The pending flag is read without the lock first: a writer clears it
 * under the lock before it takes the snapshot its sweep reads, and this
 * transaction's commit is visible before the flag is read here (the
 * barrier), so a flag still seen set means a sweep that will see these
 * records.  The writers sweep at most every AUDIT_SWEEP_MIN_MS, so many
 * transactions' records go onto the chain in one writer transaction.
 */
void
loyalty_audit_changes_committed(void)
{
	int			d;
	int			w;

	if (audit_shared == NULL)
		return;
	pg_memory_barrier();
	for (d = 0; d < AUDIT_MAX_DBS; d++)
		if (audit_shared->dbs[d].dboid == MyDatabaseId &&
			audit_shared->dbs[d].changes_pending)
			return;
	LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
	d = find_db(MyDatabaseId, false);
	if (d >= 0 && !audit_shared->dbs[d].changes_pending)
	{
		AuditDb    *db = &audit_shared->dbs[d];

		db->changes_pending = true;
		for (w = 0; w < AUDIT_MAX_WRITERS; w++)
			if (db->writers[w].state == WRITER_RUNNING && db->writers[w].latch)
			{
				SetLatch(db->writers[w].latch);
				break;
			}
	}
	LWLockRelease(audit_shared->lock);
}

/* ---------------------------------------------------------------------
 * The chain's head
 * ---------------------------------------------------------------------
 */

static bool chain_exit_cb_registered = false;

/*
 * chain_exit_cb
 *		A process that exits while extending the chain (its transaction
 *		failed) gives the chain up; the head it held is forgotten, so that
 *		the next writer reads it from the table.
 */
static void
chain_exit_cb(int code, Datum arg)
{
	int			d;

	if (audit_shared == NULL)
		return;
	LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
	for (d = 0; d < AUDIT_MAX_DBS; d++)
	{
		AuditDb    *db = &audit_shared->dbs[d];

		if (db->chain_owner == MyProcPid)
		{
			db->chain_owner = 0;
			db->chain_valid = false;
			ConditionVariableBroadcast(&db->chain_cv);
		}
	}
	LWLockRelease(audit_shared->lock);
}

/*
 * chain_acquire
 *		Become the one process extending this database's chain, waiting
 *		while another one does (it holds the chain only until its
 *		transaction has committed, not until it is durable).  Returns true
 *		with the head in *last_id, hash and *hashlen if it is known for this
 *		log (relid), false if the caller must read it from the table.
 */
static bool
chain_acquire(Oid relid, int64 *last_id, uint8 *hash, int *hashlen)
{
	AuditDb    *db;
	int			d;
	bool		known;

	if (!chain_exit_cb_registered)
	{
		before_shmem_exit(chain_exit_cb, (Datum) 0);
		chain_exit_cb_registered = true;
	}
	for (;;)
	{
		d = lock_own_db();
		db = &audit_shared->dbs[d];
		if (db->chain_owner == 0)
			break;
		LWLockRelease(audit_shared->lock);
		ConditionVariableSleep(&db->chain_cv, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	db->chain_owner = MyProcPid;
	known = db->chain_valid && db->chain_relid == relid;
	if (known)
	{
		*last_id = db->chain_last_id;
		*hashlen = db->chain_hashlen;
		memcpy(hash, db->chain_hash, db->chain_hashlen);
	}
	LWLockRelease(audit_shared->lock);
	return known;
}

/*
 * chain_release
 *		Give the chain up after the transaction that extended it committed,
 *		leaving its new head for the next one.
 */
static void
chain_release(Oid relid, int64 last_id, const uint8 *hash, int hashlen)
{
	int			d;

	LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
	d = find_db(MyDatabaseId, false);
	if (d >= 0 && audit_shared->dbs[d].chain_owner == MyProcPid)
	{
		AuditDb    *db = &audit_shared->dbs[d];

		db->chain_valid = OidIsValid(relid);
		db->chain_relid = relid;
		db->chain_last_id = last_id;
		db->chain_hashlen = hashlen;
		memcpy(db->chain_hash, hash, hashlen);
		db->chain_owner = 0;
		ConditionVariableBroadcast(&db->chain_cv);
	}
	LWLockRelease(audit_shared->lock);
}

static const AuditChainOps pool_chain_ops = {chain_acquire, chain_release};

/*
 * loyalty_audit_chain_ops
 *		The shared chain head's operations, NULL without the pool.
 */
const AuditChainOps *
loyalty_audit_chain_ops(void)
{
	return audit_shared != NULL ? &pool_chain_ops : NULL;
}

/* ---------------------------------------------------------------------
 * The writer
 * ---------------------------------------------------------------------
 */

/*
 * writer_exit_cb
 *		The writer's records not yet committed are failed (their reads are
 *		refused); its slot is freed.
 */
static void
writer_exit_cb(int code, Datum arg)
{
	int			i;
	AuditWriterSlot *ws;

	if (audit_shared == NULL || my_db < 0)
		return;
	LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < audit_shared->nslots; i++)
	{
		AuditSlot  *s = &audit_shared->slots[i];

		if (s->state == REC_TAKEN && s->writer == my_db * AUDIT_MAX_WRITERS + my_writer)
		{
			s->state = s->abandoned ? REC_FREE : REC_FAILED;
			ConditionVariableBroadcast(&s->cv);
		}
	}
	ws = &audit_shared->dbs[my_db].writers[my_writer];
	ws->state = WRITER_FREE;
	ws->pid = 0;
	ws->latch = NULL;
	ConditionVariableBroadcast(&audit_shared->space_cv);
	LWLockRelease(audit_shared->lock);
}

/*
 * vacuum_staging
 *		VACUUM loyalty.audit_change_staging (skipping it if it is locked,
 *		never truncating it: no exclusive lock that would stop the changing
 *		transactions).  Every sweep scans the whole table, so its dead rows
 *		must not wait for autovacuum (a visit per autovacuum_naptime, a
 *		minute by default: a minute of changes, a few megabytes, scanned
 *		ten times a second).  Outside any transaction, as a VACUUM
 *		statement runs.
 */
static void
vacuum_staging(void)
{
	VacuumStmt *stmt;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (!loyalty_audit_schema_12())
	{
		CommitTransactionCommand();
		return;
	}
	pgstat_report_activity(STATE_RUNNING, "loyalty audit: vacuum of the staged change records");
	stmt = makeNode(VacuumStmt);
	stmt->options = list_make2(makeDefElem("skip_locked", NULL, -1),
							   makeDefElem("truncate", (Node *) makeString("false"), -1));
	stmt->rels = list_make1(makeVacuumRelation(makeRangeVar("loyalty", "audit_change_staging", -1),
											   InvalidOid, NIL));
	stmt->is_vacuumcmd = true;
	ExecVacuum(make_parsestate(NULL), stmt, true);
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * loyalty_audit_pool_writer_main
 *		Background worker entry point: one writer of one database's pool.
 */
void
loyalty_audit_pool_writer_main(Datum main_arg)
{
	int			me = DatumGetInt32(main_arg);
	Oid			dboid;
	MemoryContext loop_cxt;
	AuditRead  *batch;
	int		   *batch_slots;
	bool		first = true;
	uint64		taken_at_vacuum = 0;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	if (audit_shared == NULL)
		proc_exit(1);
	my_db = me / AUDIT_MAX_WRITERS;
	my_writer = me % AUDIT_MAX_WRITERS;
	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	before_shmem_exit(writer_exit_cb, (Datum) 0);

	LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
	audit_shared->dbs[my_db].writers[my_writer].state = WRITER_RUNNING;
	audit_shared->dbs[my_db].writers[my_writer].pid = MyProcPid;
	audit_shared->dbs[my_db].writers[my_writer].latch = MyLatch;
	LWLockRelease(audit_shared->lock);

	BackgroundWorkerInitializeConnectionByOid(dboid, BOOTSTRAP_SUPERUSERID, 0);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "loyalty audit writer",
									 ALLOCSET_DEFAULT_SIZES);
	batch = MemoryContextAlloc(TopMemoryContext, sizeof(AuditRead) * audit_shared->nslots);
	batch_slots = MemoryContextAlloc(TopMemoryContext, sizeof(int) * audit_shared->nslots);

	for (;;)
	{
		int			n = 0;
		int			i;
		bool		sweep;
		bool		pending;
		bool		dropping;
		long		wait_ms = AUDIT_STAGING_POLL_MS;
		TimestampTz now;
		int			me_id = my_db * AUDIT_MAX_WRITERS + my_writer;
		MemoryContext old;
		XLogRecPtr	commit_lsn;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* take the batch: every queued record of this database */
		LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
		dropping = audit_shared->dbs[my_db].dropping;
		for (i = 0; i < audit_shared->nslots && !dropping; i++)
		{
			AuditSlot  *s = &audit_shared->slots[i];

			if (s->state == REC_QUEUED && s->dboid == dboid)
			{
				s->state = REC_TAKEN;
				s->writer = me_id;
				batch_slots[n++] = i;
			}
		}
		/*
		 * the staged changes: when committed ones are pending, with a batch
		 * of reads (so that a change committed before a read comes before
		 * it on the chain) or once the last sweep is AUDIT_SWEEP_MIN_MS old;
		 * every AUDIT_STAGING_POLL_MS in any case, and at a writer's start
		 */
		now = GetCurrentTimestamp();
		pending = audit_shared->dbs[my_db].changes_pending;
		sweep = first || (pending && n > 0) ||
			TimestampDifferenceExceeds(audit_shared->dbs[my_db].last_sweep, now,
									   pending ? AUDIT_SWEEP_MIN_MS : AUDIT_STAGING_POLL_MS);
		if (sweep)
		{
			audit_shared->dbs[my_db].changes_pending = false;
			audit_shared->dbs[my_db].last_sweep = now;
			first = false;
		}
		else if (pending)
		{
			long		secs;
			int			usecs;

			TimestampDifference(now, TimestampTzPlusMilliseconds(audit_shared->dbs[my_db].last_sweep,
																 AUDIT_SWEEP_MIN_MS),
								&secs, &usecs);
			wait_ms = Max(1, secs * 1000 + usecs / 1000);
		}
		LWLockRelease(audit_shared->lock);
		if (dropping)
			proc_exit(0);

		/* in queue order */
		for (i = 1; i < n; i++)
		{
			int			o = batch_slots[i];
			int			k;

			for (k = i; k > 0 && audit_shared->slots[batch_slots[k - 1]].seq >
				 audit_shared->slots[o].seq; k--)
				batch_slots[k] = batch_slots[k - 1];
			batch_slots[k] = o;
		}
		for (i = 0; i < n; i++)
			memcpy(&batch[i], &audit_shared->slots[batch_slots[i]].rec, sizeof(AuditRead));

		if (n == 0 && !sweep)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 wait_ms, PG_WAIT_EXTENSION);
			continue;
		}

		elog(DEBUG1, "loyalty audit writer %d: %d records in one transaction%s",
			 my_writer + 1, n, sweep ? " (with staged changes)" : "");
		old = MemoryContextSwitchTo(loop_cxt);
		commit_lsn = loyalty_audit_chain(batch, n, sweep, false, &pool_chain_ops);
		MemoryContextSwitchTo(old);
		MemoryContextReset(loop_cxt);

		/*
		 * committed: release every waiting backend of the batch, which waits
		 * for the flush itself while this writer goes on
		 */
		LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
		for (i = 0; i < n; i++)
		{
			AuditSlot  *s = &audit_shared->slots[batch_slots[i]];

			if (s->abandoned)
			{
				/* nobody is served: the WAL writer flushes it soon */
				s->state = REC_FREE;
				s->owner = 0;
			}
			else
			{
				s->commit_lsn = commit_lsn;
				s->state = REC_DONE;
			}
			ConditionVariableBroadcast(&s->cv);
		}
		if (n > 0)
			ConditionVariableBroadcast(&audit_shared->space_cv);
		LWLockRelease(audit_shared->lock);
		/* the writers' WAL and commits in pg_stat_wal, pg_stat_database */
		pgstat_report_stat(false);

		/* the staging's dead rows, once this writer has taken enough */
		if (loyalty_audit_staged_taken - taken_at_vacuum >= AUDIT_STAGING_VACUUM_ROWS)
		{
			taken_at_vacuum = loyalty_audit_staged_taken;
			old = MemoryContextSwitchTo(loop_cxt);
			vacuum_staging();
			MemoryContextSwitchTo(old);
			MemoryContextReset(loop_cxt);
		}
	}
}
