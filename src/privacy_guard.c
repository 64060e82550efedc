/*-------------------------------------------------------------------------
 *
 * privacy_guard.c
 *	  EXPLAIN is refused for store, BI and marketing logins (issue 12.2).
 *
 * A plan is a side channel: EXPLAIN ANALYZE of a query on a store-scoped
 * view prints "Rows Removed by Filter" for the rows row level security
 * hides, so a loop of predicates recovers another store's data, and even a
 * plain EXPLAIN shows row estimates drawn from statistics of columns the
 * caller cannot read.  Store departments, BI and marketing have no need of
 * plans; HQ CRM, DBAs and roles that are no loyalty staff keep EXPLAIN.
 *
 * Two hooks, because the library may be loaded in two ways:
 *
 * - ProcessUtility_hook refuses an ExplainStmt before anything is planned.
 *   This covers every EXPLAIN once the library is loaded, i.e. always when
 *   it is in shared_preload_libraries (or session_preload_libraries).
 * - When the library is loaded per session, on the first call of one of
 *   its functions, the very statement that loads it may be an EXPLAIN
 *   (executor start-up loads the library to look up a mask function): the
 *   utility hook was not there yet.  ExecutorEnd_hook catches that case:
 *   for the statement during which the library was loaded, a query
 *   descriptor that was only explained (EXEC_FLAG_EXPLAIN_ONLY) or run with
 *   instrumentation (EXPLAIN ANALYZE) ends in the same error, before
 *   EXPLAIN returns its text.
 *
 * The caller is the outer user (roles_caller.c), as for every check of the
 * extension; in a database without the extension nothing is refused.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "privacy.h"
#include "roles_caller.h"

static ProcessUtility_hook_type prev_process_utility = NULL;
static ExecutorEnd_hook_type prev_executor_end = NULL;

/* start of the statement during which the library was loaded */
static TimestampTz loaded_in_statement = 0;

/*
 * explain_refused_for_caller
 *		Whether the caller may not see plans: a store department, BI or
 *		marketing, in a database where the extension is installed.
 */
static bool
explain_refused_for_caller(void)
{
	const LoyaltyCaller *caller;
	bool		pushed = false;
	bool		refused;

	if (!IsTransactionState() || !OidIsValid(get_extension_oid("loyalty", true)))
		return false;
	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	caller = loyalty_caller_lookup();
	refused = (DEPT_BIT(caller->department) &
			   (DEPTS_STORE | DEPT_BIT(DEPT_BI) | DEPT_BIT(DEPT_MARKETING))) != 0;
	if (pushed)
		PopActiveSnapshot();
	return refused;
}

/*
 * explain_refuse
 *		The one error of a refused EXPLAIN.
 */
static void
explain_refuse(void)
{
	const LoyaltyCaller *caller = loyalty_caller_lookup();

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to explain queries"),
			 errdetail("Department \"%s\" may not see query plans.",
					   loyalty_department_names[caller->department]),
			 errhint("Plans are available to HQ CRM and DBA roles.")));
}

/*
 * guard_process_utility
 *		Refuse EXPLAIN (with or without ANALYZE) for restricted callers.
 */
static void
guard_process_utility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	if (IsA(pstmt->utilityStmt, ExplainStmt) && explain_refused_for_caller())
		explain_refuse();
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * guard_executor_end
 *		The statement that loaded the library: an explained or instrumented
 *		query of a restricted caller fails here, before its plan is sent.
 */
static void
guard_executor_end(QueryDesc *queryDesc)
{
	if (loaded_in_statement != 0 &&
		loaded_in_statement == GetCurrentStatementStartTimestamp() &&
		((queryDesc->estate != NULL &&
		  (queryDesc->estate->es_top_eflags & EXEC_FLAG_EXPLAIN_ONLY) != 0) ||
		 queryDesc->instrument_options != 0) &&
		explain_refused_for_caller())
		explain_refuse();
	if (prev_executor_end)
		prev_executor_end(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

/*
 * loyalty_privacy_guard_init
 *		Install the hooks (from _PG_init).
 */
void
loyalty_privacy_guard_init(void)
{
	if (IsTransactionState())
		loaded_in_statement = GetCurrentStatementStartTimestamp();
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = guard_process_utility;
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = guard_executor_end;
}
