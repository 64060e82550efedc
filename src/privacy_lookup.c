/*-------------------------------------------------------------------------
 *
 * privacy_lookup.c
 *	  What a store may reach: the members its lookups found, and the rate
 *	  at which a login may look members up (issue 12.1).
 *
 * Store views list only the members with an enrolment, a stay or a booking
 * at the caller's store; any other member is reached through a lookup
 * (loyalty.frontdesk_lookup() and friends), which needs what the guest's
 * presence justifies and is audited, hits and misses alike.  A member
 * found by a lookup stays in reach of the caller until the end of the
 * transaction, so the lookup's rows come through the same masked view.
 * The reach is backend memory, not a setting: nothing the caller can SET
 * widens it, and only the SECURITY DEFINER lookups (granted to nobody
 * directly) add to it.
 *
 * The rate budget is counted from the audit trail, whose records are
 * committed by the audit writer whatever the caller's transaction does,
 * and read with the latest snapshot, so neither a rollback nor a
 * REPEATABLE READ transaction resets the count.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "privacy.h"
#include "roles_caller.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_reach_grant);
PG_FUNCTION_INFO_V1(loyalty_member_in_reach);
PG_FUNCTION_INFO_V1(loyalty_audit_recent);
PG_FUNCTION_INFO_V1(loyalty_privacy_setting);

int			loyalty_lookup_budget = 60;
int			loyalty_verify_failures = 3;
int			loyalty_bi_k_anonymity = 5;

/*
 * Members found by this transaction's lookups (TopTransactionContext), each
 * with the login that looked it up: a SET ROLE to another login later in
 * the transaction does not inherit the reach.
 */
typedef struct ReachEntry
{
	Oid			userid;
	pg_uuid_t	member;
} ReachEntry;

static ReachEntry *reach = NULL;
static int	reach_len = 0;
static int	reach_cap = 0;

/*
 * reach_xact_cb
 *		The reach ends with the transaction, committed or not.
 */
static void
reach_xact_cb(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		reach = NULL;
		reach_len = reach_cap = 0;
	}
}

/*
 * loyalty_privacy_settings_init
 *		Define the privacy settings and the end-of-transaction callback
 *		(from _PG_init).  Every setting is superuser-only: a login cannot
 *		raise its own budget.
 */
void
loyalty_privacy_settings_init(void)
{
	DefineCustomIntVariable("loyalty.lookup_budget",
							"Member lookups and ID verifications a login may make per hour.",
							"Beyond it lookups are refused and an alert event is emitted.",
							&loyalty_lookup_budget, 60, 1, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("loyalty.verify_failures",
							"Failed ID verifications of one member, in 24 hours, after which verification is refused.",
							NULL,
							&loyalty_verify_failures, 3, 1, 1000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("loyalty.bi_k_anonymity",
							"Smallest number of members that share every combination of quasi-identifiers the BI row views publish (k).",
							"Rows of smaller groups are left out of loyalty.bi_members, bi_stays and bi_points.",
							&loyalty_bi_k_anonymity, 5, 1, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	RegisterXactCallback(reach_xact_cb, NULL);
}

/*
 * loyalty._reach_grant(member_ids uuid[]) returns void
 *		Put members in the caller's reach for the rest of the transaction.
 *		Called by the lookup functions only (granted to nobody).
 */
Datum
loyalty_reach_grant(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *c = loyalty_caller_lookup();
	ArrayType  *a;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;

	if (PG_ARGISNULL(0))
		PG_RETURN_VOID();
	a = PG_GETARG_ARRAYTYPE_P(0);
	deconstruct_array(a, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			continue;
		if (reach_len == reach_cap)
		{
			int			cap = reach_cap == 0 ? 8 : reach_cap * 2;

			reach = reach == NULL
				? MemoryContextAlloc(TopTransactionContext, cap * sizeof(ReachEntry))
				: repalloc(reach, cap * sizeof(ReachEntry));
			reach_cap = cap;
		}
		reach[reach_len].userid = c->userid;
		reach[reach_len].member = *DatumGetUUIDP(elems[i]);
		reach_len++;
	}
	PG_RETURN_VOID();
}

/*
 * loyalty._member_in_reach(member_id uuid, home_store text) returns boolean
 *		For the store views: true for HQ and non-store callers, for members
 *		enrolled at the caller's store and for members this transaction's
 *		lookups found (lookups by the same login).  (Members with a stay or
 *		booking at the store are added by the view itself, from
 *		loyalty.stay.)
 */
Datum
loyalty_member_in_reach(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *c = loyalty_caller_lookup();
	pg_uuid_t  *m;
	int			i;

	if ((DEPT_BIT(c->department) & DEPTS_STORE) == 0)
		PG_RETURN_BOOL(true);
	if (!PG_ARGISNULL(1))
	{
		text	   *home = PG_GETARG_TEXT_PP(1);

		if (strlen(c->store_code) == VARSIZE_ANY_EXHDR(home) &&
			memcmp(c->store_code, VARDATA_ANY(home), VARSIZE_ANY_EXHDR(home)) == 0)
			PG_RETURN_BOOL(true);
	}
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	m = PG_GETARG_UUID_P(0);
	for (i = 0; i < reach_len; i++)
		if (reach[i].userid == c->userid &&
			memcmp(reach[i].member.data, m->data, UUID_LEN) == 0)
			PG_RETURN_BOOL(true);
	PG_RETURN_BOOL(false);
}

/*
 * The actions that the partial role index of each audit partition holds
 * whatever the login (src/sql/42_audit_trail.sql, _audit_partition_ensure:
 * its predicate is "login <> role OR action IN (these)").  A count by role
 * of these actions only names them as a constant, so that the planner
 * proves the index's predicate even for a generic plan.
 */
#define AUDIT_ROLE_ACTIONS \
	"'{lookup,lookup_miss,verify_id,verify_id_miss,lookup_refused}'::pg_catalog.text[]"
static const char *const audit_role_actions[] =
{"lookup", "lookup_miss", "verify_id", "verify_id_miss", "lookup_refused"};

/*
 * actions_role_indexed
 *		Whether every element of actions is one of audit_role_actions.
 */
static bool
actions_role_indexed(ArrayType *actions)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	int			j;

	deconstruct_array(actions, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		char	   *a;

		if (nulls[i])
			return false;
		a = TextDatumGetCString(elems[i]);
		for (j = 0; j < lengthof(audit_role_actions); j++)
			if (strcmp(a, audit_role_actions[j]) == 0)
				break;
		if (j == lengthof(audit_role_actions))
			return false;
	}
	return true;
}

/*
 * loyalty._audit_recent(role text, member_id uuid, actions text[],
 *						 since interval) returns bigint
 *		Audit records of the given actions within the last "since", of one
 *		role and/or one member (NULL: any), counted with the latest
 *		snapshot: records the audit writer committed during this very
 *		transaction count too, whatever its isolation level.  A count by
 *		role of lookup actions (the lookup budget's) reads the partial role
 *		index; any other count by role is correct but scans.
 */
Datum
loyalty_audit_recent(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr role_plan = NULL;
	Oid			types[4] = {TEXTOID, UUIDOID, TEXTARRAYOID, INTERVALOID};
	Datum		v[4];
	char		n[4];
	int			i;
	bool		isnull;
	int64		count;
	SPIPlanPtr	p;

	if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("actions and since must not be null")));
	for (i = 0; i < 4; i++)
	{
		v[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		n[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	lspi_connect(LSPI_READ_ONLY);
	if (!PG_ARGISNULL(0) && actions_role_indexed(PG_GETARG_ARRAYTYPE_P(2)))
		p = lspi_plan(&role_plan, "SELECT count(*) FROM loyalty.audit_log a "
					  "WHERE a.role OPERATOR(pg_catalog.=) $1 "
					  "AND a.action OPERATOR(pg_catalog.=) ANY (" AUDIT_ROLE_ACTIONS ") "
					  "AND a.at > pg_catalog.clock_timestamp() - $4 "
					  "AND a.action OPERATOR(pg_catalog.=) ANY ($3) "
					  "AND ($2 IS NULL OR a.member_id OPERATOR(pg_catalog.=) $2)",
					  4, types);
	else
		p = lspi_plan(&plan, "SELECT count(*) FROM loyalty.audit_log a "
					  "WHERE a.at > pg_catalog.clock_timestamp() - $4 "
					  "AND a.action OPERATOR(pg_catalog.=) ANY ($3) "
					  "AND ($1 IS NULL OR a.role OPERATOR(pg_catalog.=) $1) "
					  "AND ($2 IS NULL OR a.member_id OPERATOR(pg_catalog.=) $2)",
					  4, types);
	if (lspi_run_latest(p, v, n, 1) != 1)
		elog(ERROR, "audit count returned no row");
	count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 1, &isnull));
	lspi_finish();
	PG_RETURN_INT64(count);
}

/*
 * loyalty._privacy_setting(name text) returns integer
 *		The value of an integer privacy setting, for SQL code that must not
 *		depend on the library being loaded already (current_setting() of a
 *		placeholder would fail).
 */
Datum
loyalty_privacy_setting(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (strcmp(name, "lookup_budget") == 0)
		PG_RETURN_INT32(loyalty_lookup_budget);
	if (strcmp(name, "verify_failures") == 0)
		PG_RETURN_INT32(loyalty_verify_failures);
	if (strcmp(name, "bi_k_anonymity") == 0)
		PG_RETURN_INT32(loyalty_bi_k_anonymity);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown privacy setting \"%s\"", name)));
	PG_RETURN_NULL();
}
