/*-------------------------------------------------------------------------
 *
 * audit_read.c
 *	  Statement-level audit of plain reads of the member views by store,
 *	  marketing and BI logins: an executor hook.
 *
 * The API functions that return member data record their reads
 * themselves (loyalty._audit).  A store, marketing or BI login may also
 * read its views directly (SELECT ... FROM loyalty.member_frontdesk); this
 * file records those reads, one read record per statement:
 *
 *	- member views (loyalty.member_<department>, member_preferences,
 *	  member_tags, member_consents, member_scores, stays): the member ids
 *	  the statement returned, taken from its output column member_id (when
 *	  it has one), and the number of rows;
 *	- BI views (loyalty.bi_*): the number of rows only (they are
 *	  pseudonymous and return many).
 *
 * Only top-level statements of a login whose department is frontdesk,
 * housekeeping, fnb, store_manager, marketing or bi are looked at, and only
 * when the statement's range table names one of those views (the view's
 * range table entry stays in the plan for its permission check).  HQ CRM
 * and DBA read through audited functions and are not recorded here.
 *
 * The record is written at the end of the statement (ExecutorEnd) through
 * loyalty_audit_record() (src/audit.c): the shared writer pool, or the
 * session's writer, as loyalty.audit_mode says, committed outside the
 * reader's transaction, so it stays if the reader rolls back.  If it
 * cannot be written, the statement fails.  The rows themselves are counted
 * by a DestReceiver wrapped around the statement's own, which passes
 * every row on unchanged.
 *
 * The views' OIDs are cached per backend and dropped on any change of
 * pg_class or pg_namespace (views re-created, the extension created or
 * dropped); the cache is only built when a statement names a view.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/dest.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/uuid.h"

#include "audit.h"
#include "audit_read.h"
#include "roles_caller.h"

/* the watched views: member views record ids, BI views a count */
static const char *const member_views[] = {
	"member_frontdesk", "member_housekeeping", "member_fnb", "member_store_manager",
	"member_marketing", "member_preferences", "member_tags", "member_consents",
	"member_scores", "stays"
};
static const char *const bi_views[] = {
	"bi_members", "bi_stays", "bi_segments", "bi_scores", "bi_segment_sizes", "bi_points"
};

#define NUM_MEMBER_VIEWS	lengthof(member_views)
#define NUM_WATCHED			(lengthof(member_views) + lengthof(bi_views))

/* member ids listed in one record: what fits the field list (1000 bytes) */
#define AUDIT_READ_MAX_IDS	24

/* setting loyalty.audit_view_reads */
static bool audit_view_reads = true;

/* the views' OIDs in this database, in the order of the arrays above */
static Oid	watched_oids[NUM_WATCHED];
static bool watched_valid = false;

/* executor nesting (top-level statements only) */
static int	nesting_level = 0;

static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;

/* one watched statement */
typedef struct ReadState
{
	QueryDesc  *query;
	SubTransactionId subid;		/* started in this subtransaction */
	bool		member_view;	/* reads a member view (else only BI) */
	char		views[NUM_WATCHED][NAMEDATALEN];
	int			nviews;
	uint64		rows;
	int			id_attno;		/* 1-based output column member_id, 0: none */
	int			nids;			/* distinct ids seen (up to the cap + 1) */
	pg_uuid_t	ids[AUDIT_READ_MAX_IDS + 1];
} ReadState;

/* open watched statements (cursors may interleave); cleared at abort */
static List *open_reads = NIL;

/* the DestReceiver wrapped around the statement's own */
typedef struct ReadReceiver
{
	DestReceiver pub;
	DestReceiver *inner;
	ReadState  *state;
} ReadReceiver;

/*
 * watched_invalidate
 *		pg_class or pg_namespace changed: look the views up again.
 */
static void
watched_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	watched_valid = false;
}

/*
 * watched_load
 *		The OIDs of the watched views in schema loyalty (InvalidOid for
 *		those missing).  Kept only once all were found, so that a cache
 *		built halfway through CREATE EXTENSION is built again.
 */
static void
watched_load(void)
{
	Oid			nsp = get_namespace_oid("loyalty", true);
	bool		all = OidIsValid(nsp);
	int			i;

	for (i = 0; i < (int) NUM_WATCHED; i++)
	{
		const char *name = i < (int) NUM_MEMBER_VIEWS ? member_views[i]
			: bi_views[i - NUM_MEMBER_VIEWS];

		watched_oids[i] = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
		if (!OidIsValid(watched_oids[i]))
			all = false;
	}
	watched_valid = all;
}

/*
 * watched_index
 *		The index of relid among the watched views, or -1.
 */
static int
watched_index(Oid relid)
{
	int			i;

	for (i = 0; i < (int) NUM_WATCHED; i++)
		if (watched_oids[i] == relid)
			return i;
	return -1;
}

/*
 * read_state_for
 *		The state of a watched statement, or NULL.
 */
static ReadState *
read_state_for(QueryDesc *queryDesc)
{
	ListCell   *lc;

	foreach(lc, open_reads)
	{
		ReadState  *st = (ReadState *) lfirst(lc);

		if (st->query == queryDesc)
			return st;
	}
	return NULL;
}

/*
 * caller_watched
 *		Is the caller a store, marketing or BI login?
 */
static bool
caller_watched(void)
{
	const LoyaltyCaller *c = loyalty_caller_lookup();

	if (c->is_superuser)
		return false;
	switch (c->department)
	{
		case DEPT_FRONTDESK:
		case DEPT_HOUSEKEEPING:
		case DEPT_FNB:
		case DEPT_STORE_MANAGER:
		case DEPT_MARKETING:
		case DEPT_BI:
			return true;
		default:
			return false;
	}
}

/*
 * audit_read_start
 *		ExecutorStart: a top-level statement naming a watched view, by a
 *		watched login, gets a ReadState.
 */
static void
audit_read_start(QueryDesc *queryDesc, int eflags)
{
	ReadState  *st = NULL;
	ListCell   *lc;

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	if (!audit_view_reads || nesting_level > 0 || IsParallelWorker() ||
		creating_extension || (eflags & EXEC_FLAG_EXPLAIN_ONLY) ||
		queryDesc->plannedstmt == NULL)
		return;

	foreach(lc, queryDesc->plannedstmt->rtable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);
		int			i;

		/*
		 * A view the statement names is checked as the current user; the
		 * views and tables inside a view's definition (and a view's own
		 * OLD and NEW entries) as the view's owner: those are not reads
		 * of the caller's choosing.
		 */
		if (rte->rtekind != RTE_RELATION || rte->relkind != RELKIND_VIEW ||
			OidIsValid(rte->checkAsUser))
			continue;
		if (!watched_valid)
			watched_load();
		if ((i = watched_index(rte->relid)) < 0)
			continue;
		if (st == NULL)
		{
			if (!caller_watched())
				return;
			st = MemoryContextAllocZero(TopMemoryContext, sizeof(ReadState));
			st->query = queryDesc;
			st->subid = GetCurrentSubTransactionId();
		}
		if (i < (int) NUM_MEMBER_VIEWS)
			st->member_view = true;
		{
			const char *name = i < (int) NUM_MEMBER_VIEWS ? member_views[i]
				: bi_views[i - NUM_MEMBER_VIEWS];
			int			j;

			for (j = 0; j < st->nviews; j++)
				if (strcmp(st->views[j], name) == 0)
					break;
			if (j == st->nviews)
				strlcpy(st->views[st->nviews++], name, NAMEDATALEN);
		}
	}
	if (st != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		open_reads = lappend(open_reads, st);
		MemoryContextSwitchTo(old);
	}
}

/*
 * receiver_startup
 *		Find the output column member_id (uuid), then start the inner
 *		receiver.
 */
static void
receiver_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	ReadReceiver *r = (ReadReceiver *) self;
	int			i;

	r->state->id_attno = 0;
	for (i = 0; i < typeinfo->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(typeinfo, i);

		if (!att->attisdropped && att->atttypid == UUIDOID &&
			strcmp(NameStr(att->attname), "member_id") == 0)
		{
			r->state->id_attno = i + 1;
			break;
		}
	}
	r->inner->rStartup(r->inner, operation, typeinfo);
}

/*
 * receiver_slot
 *		Count the row and note its member (member views), then pass it on.
 */
static bool
receiver_slot(TupleTableSlot *slot, DestReceiver *self)
{
	ReadReceiver *r = (ReadReceiver *) self;
	ReadState  *st = r->state;

	st->rows++;
	if (st->member_view && st->id_attno > 0 && st->nids <= AUDIT_READ_MAX_IDS)
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, st->id_attno, &isnull);

		if (!isnull)
		{
			pg_uuid_t  *u = DatumGetUUIDP(d);
			int			i;

			for (i = 0; i < st->nids; i++)
				if (memcmp(&st->ids[i], u, sizeof(pg_uuid_t)) == 0)
					break;
			if (i == st->nids)
				memcpy(&st->ids[st->nids++], u, sizeof(pg_uuid_t));
		}
	}
	return r->inner->receiveSlot(slot, r->inner);
}

/*
 * receiver_shutdown
 *		Shut the inner receiver down.
 */
static void
receiver_shutdown(DestReceiver *self)
{
	ReadReceiver *r = (ReadReceiver *) self;

	r->inner->rShutdown(r->inner);
}

/*
 * receiver_destroy
 *		Nothing: the wrapper lives in the statement's memory, and the inner
 *		receiver belongs to the caller.
 */
static void
receiver_destroy(DestReceiver *self)
{
}

/*
 * audit_read_run
 *		ExecutorRun: wrap the statement's receiver while it runs (a portal
 *		sets queryDesc->dest before each run).
 */
static void
audit_read_run(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
			   bool execute_once)
{
	ReadState  *st = nesting_level == 0 ? read_state_for(queryDesc) : NULL;
	DestReceiver *orig = queryDesc->dest;
	ReadReceiver *wrap = NULL;

	if (st != NULL && orig != NULL)
	{
		wrap = palloc0(sizeof(ReadReceiver));
		wrap->pub.receiveSlot = receiver_slot;
		wrap->pub.rStartup = receiver_startup;
		wrap->pub.rShutdown = receiver_shutdown;
		wrap->pub.rDestroy = receiver_destroy;
		wrap->pub.mydest = orig->mydest;
		wrap->inner = orig;
		wrap->state = st;
		queryDesc->dest = (DestReceiver *) wrap;
	}
	nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		nesting_level--;
		if (wrap != NULL)
			queryDesc->dest = orig;
	}
	PG_END_TRY();
}

/*
 * audit_read_finish
 *		ExecutorFinish: nested statements (AFTER triggers) are not top
 *		level.
 */
static void
audit_read_finish(QueryDesc *queryDesc)
{
	nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		nesting_level--;
	}
	PG_END_TRY();
}

/*
 * record_read
 *		Write the statement's read record: action view_read (member views)
 *		or bi_read, the member when the statement returned exactly one,
 *		the views and the member ids returned as the field list, the row
 *		and member counts as the purpose.
 */
static void
record_read(ReadState *st)
{
	StringInfoData fields;
	char		purpose[128];
	char	   *member = NULL;
	int			listed = 0;
	int			i;

	initStringInfo(&fields);
	appendStringInfoChar(&fields, '{');
	for (i = 0; i < st->nviews; i++)
		appendStringInfo(&fields, "%s%s", i > 0 ? "," : "", st->views[i]);
	/* as many ids as fit the field list: 37 bytes each, and the brace */
	for (i = 0; i < Min(st->nids, AUDIT_READ_MAX_IDS) &&
		 fields.len + 1 + UUID_LEN * 2 + 4 + 1 <= AUDIT_FIELDS_MAX; i++, listed++)
		appendStringInfo(&fields, ",%s",
						 DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&st->ids[i]))));
	appendStringInfoChar(&fields, '}');

	if (!st->member_view)
		snprintf(purpose, sizeof(purpose), "rows " UINT64_FORMAT, st->rows);
	else if (st->id_attno == 0)
		snprintf(purpose, sizeof(purpose), "rows " UINT64_FORMAT ", member ids not selected", st->rows);
	else if (st->nids > listed)
		snprintf(purpose, sizeof(purpose), "rows " UINT64_FORMAT ", more than %d members, first %d listed",
				 st->rows, listed, listed);
	else
		snprintf(purpose, sizeof(purpose), "rows " UINT64_FORMAT ", members %d", st->rows, st->nids);

	if (st->member_view && st->nids == 1)
		member = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&st->ids[0])));
	loyalty_audit_record(member, st->member_view ? "view_read" : "bi_read", fields.data, purpose);
}

/*
 * audit_read_end
 *		ExecutorEnd: record a watched statement, then end it.
 */
static void
audit_read_end(QueryDesc *queryDesc)
{
	ReadState  *st = read_state_for(queryDesc);

	if (st != NULL)
	{
		open_reads = list_delete_ptr(open_reads, st);
		PG_TRY();
		{
			record_read(st);
		}
		PG_FINALLY();
		{
			pfree(st);
		}
		PG_END_TRY();
	}
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

/*
 * audit_read_xact_cb
 *		At abort, statements left open end without ExecutorEnd: forget
 *		them (their rows were never all returned: the statement failed).
 */
static void
audit_read_xact_cb(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		list_free_deep(open_reads);
		open_reads = NIL;
		nesting_level = 0;
	}
}

/*
 * audit_read_subxact_cb
 *		At a subtransaction's abort (ROLLBACK TO SAVEPOINT), forget the
 *		statements it left open.
 */
static void
audit_read_subxact_cb(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	foreach(lc, open_reads)
	{
		ReadState  *st = (ReadState *) lfirst(lc);

		if (st->subid >= mySubid)
		{
			open_reads = foreach_delete_current(open_reads, lc);
			pfree(st);
		}
	}
	/* nesting_level is restored by the hooks' PG_FINALLY blocks */
}

/*
 * loyalty_audit_read_init
 *		Define loyalty.audit_view_reads and install the executor hooks
 *		(from _PG_init).
 */
void
loyalty_audit_read_init(void)
{
	DefineCustomBoolVariable("loyalty.audit_view_reads",
							 "Records reads of the member and BI views by store, marketing and BI logins.",
							 "One read record per statement, written through the audit writers.",
							 &audit_view_reads,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	CacheRegisterSyscacheCallback(RELNAMENSP, watched_invalidate, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, watched_invalidate, (Datum) 0);
	RegisterXactCallback(audit_read_xact_cb, NULL);
	RegisterSubXactCallback(audit_read_subxact_cb, NULL);

	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = audit_read_start;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = audit_read_run;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = audit_read_finish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = audit_read_end;
}
