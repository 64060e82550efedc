/*-------------------------------------------------------------------------
 *
 * crm_case.c
 *	  Service cases and the interaction log (docs/crm.md): complaints,
 *	  requests, feedback and praise, with channel, store, department,
 *	  assignee, status, a due time by severity, automatic escalation of
 *	  overdue cases, resolution and the member's satisfaction score.
 *
 * Rules here, shape in src/sql/67_service.sql.  Store staff act for their
 * own store's cases; HQ CRM for every store.  Every change is audited
 * (loyalty._audit_change, no free text in the detail) and announced on the
 * event outbox.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "event.h"
#include "member.h"
#include "spi.h"
#include "roles_caller.h"

PG_FUNCTION_INFO_V1(loyalty_case_open);
PG_FUNCTION_INFO_V1(loyalty_case_assign);
PG_FUNCTION_INFO_V1(loyalty_case_resolve);
PG_FUNCTION_INFO_V1(loyalty_case_escalate_overdue);
PG_FUNCTION_INFO_V1(loyalty_interaction_log);

#define STORE_DEPTS (DEPT_BIT(DEPT_FRONTDESK) | DEPT_BIT(DEPT_HOUSEKEEPING) | \
					 DEPT_BIT(DEPT_FNB) | DEPT_BIT(DEPT_STORE_MANAGER))

static const char *const case_kinds[] = {"complaint", "request", "feedback", "praise", NULL};
static const char *const case_channels[] = {"front_desk", "phone", "email", "app", "web",
	"social", "survey", "letter", "other", NULL};
static const char *const interaction_kinds[] = {"call", "email", "sms", "visit", "care",
	"note", "other", NULL};
static const char *const departments[] = {"frontdesk", "housekeeping", "fnb",
	"store_manager", "crm", NULL};

/*
 * case_due_hours
 *		Hours until a case of this severity is due (and between
 *		escalations): critical 4, high 24, normal 72, low 168; -1 for an
 *		unknown severity.
 */
static int
case_due_hours(const char *severity)
{
	if (strcmp(severity, "critical") == 0)
		return 4;
	if (strcmp(severity, "high") == 0)
		return 24;
	if (strcmp(severity, "normal") == 0)
		return 72;
	if (strcmp(severity, "low") == 0)
		return 168;
	return -1;
}

/*
 * one_of
 *		Error 22023 unless value is in the NULL-terminated list.
 */
static void
one_of(const char *what, const char *value, const char *const *list)
{
	StringInfoData all;
	int			i;

	for (i = 0; list[i]; i++)
		if (strcmp(list[i], value) == 0)
			return;
	initStringInfo(&all);
	for (i = 0; list[i]; i++)
		appendStringInfo(&all, "%s%s", i ? ", " : "", list[i]);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s \"%s\"", what, value),
			 errhint("Use one of: %s.", all.data)));
}

/*
 * check_text
 *		Error 22023 unless s has 1 to max characters and is not blank.
 */
static void
check_text(const char *what, const char *s, int max)
{
	if (strspn(s, " \t\r\n") == strlen(s) || pg_mbstrlen(s) > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be 1 to %d characters", what, max)));
}

/*
 * arg_text
 *		Text argument or NULL.
 */
static char *
arg_text(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : TextDatumGetCString(PG_GETARG_DATUM(n));
}

/*
 * acting_store
 *		The store a caller acts for: the named one (HQ must name it, a
 *		store's staff may only name their own) or the caller's.
 */
static char *
acting_store(const LoyaltyCaller *caller, char *named)
{
	Oid			types[1] = {TEXTOID};
	Datum		v[1];

	if (named == NULL)
	{
		if (caller->store_code[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("store_code is required for HQ callers")));
		named = pstrdup(caller->store_code);
	}
	loyalty_require_store(caller, named);
	v[0] = CStringGetTextDatum(named);
	if (crm_exec("SELECT 1 FROM loyalty.store WHERE store_code = $1", 1, types, v, NULL, false) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" does not exist", named)));
	return named;
}

/*
 * require_member
 *		Error P0002 unless the member exists and is not erased.
 */
static void
require_member(const pg_uuid_t *member_id)
{
	char	   *status = member_status_of(member_id, false);

	if (status == NULL || strcmp(status, "erased") == 0)
		crm_member_not_found();
}

/*
 * lock_case
 *		Lock a case the caller may act on (its store's staff, HQ): returns
 *		its member, store and status through the SPI result row 0.
 */
static void
lock_case(const LoyaltyCaller *caller, const pg_uuid_t *case_id)
{
	Oid			types[1] = {UUIDOID};
	Datum		v[1];

	v[0] = UUIDPGetDatum(case_id);
	if (crm_exec("SELECT member_id, store_code, status, severity, kind "
				 "FROM loyalty.service_case WHERE case_id = $1 FOR UPDATE",
				 1, types, v, NULL, false) == 0 ||
		(!caller->is_hq && !caller->is_superuser &&
		 strcmp(crm_get_text(0, 2), caller->store_code) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("service case not found")));
}

/*
 * replay_or_null
 *		Shared start of every mutating call: SPI connect and idempotency.
 */
static char *
start_call(const char *key, const char *operation, const char *args)
{
	lspi_connect(LSPI_READ_WRITE);
	return crm_idem_replay(key, operation, args);
}

/*
 * loyalty.case_open(idempotency_key text, member_id uuid, kind text,
 *		channel text, severity text, subject text, store_code text,
 *		department text) returns uuid
 *		Open a case at the caller's store (HQ names the store), due by its
 *		severity; department defaults to the caller's.
 */
Datum
loyalty_case_open(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *caller = loyalty_caller();
	char	   *key;
	pg_uuid_t	member_id;
	char	   *kind,
			   *channel,
			   *severity,
			   *subject,
			   *store,
			   *dept;
	char	   *args;
	char	   *replay;
	char	   *case_id;
	char	   *json;
	Oid			types[8] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID};
	Datum		v[8];

	loyalty_require_department(caller, STORE_DEPTS | DEPT_BIT(DEPT_CRM));
	key = crm_key_arg(fcinfo, 0);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3) || PG_ARGISNULL(4) || PG_ARGISNULL(5))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("member_id, kind, channel, severity and subject must not be null")));
	member_id = *PG_GETARG_UUID_P(1);
	kind = arg_text(fcinfo, 2);
	channel = arg_text(fcinfo, 3);
	severity = arg_text(fcinfo, 4);
	subject = arg_text(fcinfo, 5);
	store = arg_text(fcinfo, 6);
	dept = arg_text(fcinfo, 7);
	one_of("case kind", kind, case_kinds);
	one_of("channel", channel, case_channels);
	if (case_due_hours(severity) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid severity \"%s\"", severity),
				 errhint("Use low, normal, high or critical.")));
	check_text("subject", subject, 500);
	if (dept == NULL)
		dept = pstrdup(caller->is_superuser || caller->department == DEPT_NONE ? "crm" :
					   loyalty_department_names[caller->department]);
	if (strcmp(dept, "dba") == 0)
		dept = pstrdup("crm");
	one_of("department", dept, departments);

	args = psprintf("%s %s %s %s %s %s %s", crm_uuid_text(&member_id), kind, channel,
					severity, subject, store ? store : "", dept);
	replay = start_call(key, "case_open", args);
	if (replay)
	{
		lspi_finish();
		PG_RETURN_DATUM(DirectFunctionCall1(uuid_in, CStringGetDatum(replay)));
	}
	store = acting_store(caller, store);
	require_member(&member_id);

	v[0] = UUIDPGetDatum(&member_id);
	v[1] = CStringGetTextDatum(kind);
	v[2] = CStringGetTextDatum(channel);
	v[3] = CStringGetTextDatum(severity);
	v[4] = CStringGetTextDatum(subject);
	v[5] = CStringGetTextDatum(store);
	v[6] = CStringGetTextDatum(dept);
	v[7] = Int32GetDatum(case_due_hours(severity));
	crm_exec("INSERT INTO loyalty.service_case (member_id, kind, channel, severity, subject, "
			 "store_code, department, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7, "
			 "pg_catalog.now() + pg_catalog.make_interval(hours => $8)) RETURNING case_id",
			 8, types, v, NULL, false);
	case_id = crm_get_text(0, 1);
	json = psprintf("{\"case_id\": \"%s\", \"kind\": \"%s\", \"severity\": \"%s\", "
					"\"department\": \"%s\"}", case_id, kind, severity, dept);
	crm_audit_change(&member_id, "case_open", crm_purpose(), json);
	loyalty_outbox_emit("case_opened", &member_id, store, json);
	crm_idem_record(key, "case_open", args, case_id);
	lspi_finish();
	PG_RETURN_DATUM(DirectFunctionCall1(uuid_in, CStringGetDatum(case_id)));
}

/*
 * loyalty.case_assign(idempotency_key text, case_id uuid, department text,
 *		assignee text) returns void
 *		Hand a case to a department (and a login in it); the case is then
 *		in progress.  Store managers of the case's store and HQ CRM.
 */
Datum
loyalty_case_assign(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *caller = loyalty_caller();
	char	   *key;
	pg_uuid_t	case_id;
	char	   *dept,
			   *assignee;
	char	   *args;
	char	   *status;
	pg_uuid_t	member_id;
	char	   *store;
	char	   *json;
	Oid			types[3] = {UUIDOID, TEXTOID, TEXTOID};
	Datum		v[3];
	char		n[3] = {' ', ' ', ' '};

	loyalty_require_department(caller, DEPT_BIT(DEPT_STORE_MANAGER) | DEPT_BIT(DEPT_CRM));
	key = crm_key_arg(fcinfo, 0);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("case_id and department must not be null")));
	case_id = *PG_GETARG_UUID_P(1);
	dept = arg_text(fcinfo, 2);
	assignee = arg_text(fcinfo, 3);
	one_of("department", dept, departments);
	if (assignee)
		check_text("assignee", assignee, 63);

	args = psprintf("%s %s %s", crm_uuid_text(&case_id), dept, assignee ? assignee : "");
	if (start_call(key, "case_assign", args))
	{
		lspi_finish();
		PG_RETURN_VOID();
	}
	lock_case(caller, &case_id);
	member_id = *DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(crm_get_text(0, 1))));
	store = crm_get_text(0, 2);
	status = crm_get_text(0, 3);
	if (strcmp(status, "resolved") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("service case is resolved")));
	v[0] = UUIDPGetDatum(&case_id);
	v[1] = CStringGetTextDatum(dept);
	if (assignee)
		v[2] = CStringGetTextDatum(assignee);
	else
		n[2] = 'n';
	crm_exec("UPDATE loyalty.service_case SET department = $2, assignee = $3, "
			 "status = CASE WHEN status = 'open' THEN 'in_progress' ELSE status END, "
			 "updated_at = pg_catalog.now() WHERE case_id = $1", 3, types, v, n, false);
	json = psprintf("{\"case_id\": \"%s\", \"department\": \"%s\", \"assigned\": %s}",
					crm_uuid_text(&case_id), dept, assignee ? "true" : "false");
	crm_audit_change(&member_id, "case_assign", crm_purpose(), json);
	loyalty_outbox_emit("case_assigned", &member_id, store, json);
	crm_idem_record(key, "case_assign", args, NULL);
	lspi_finish();
	PG_RETURN_VOID();
}

/*
 * loyalty.case_resolve(idempotency_key text, case_id uuid, resolution text,
 *		satisfaction integer) returns void
 *		Resolve a case with what was done and (when the member gave it) a
 *		satisfaction score from 1 to 5.
 */
Datum
loyalty_case_resolve(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *caller = loyalty_caller();
	char	   *key;
	pg_uuid_t	case_id;
	char	   *resolution;
	bool		has_score = !PG_ARGISNULL(3);
	int32		score = has_score ? PG_GETARG_INT32(3) : 0;
	char	   *args;
	pg_uuid_t	member_id;
	char	   *store;
	char	   *json;
	Oid			types[3] = {UUIDOID, TEXTOID, INT4OID};
	Datum		v[3];
	char		n[3] = {' ', ' ', ' '};

	loyalty_require_department(caller, STORE_DEPTS | DEPT_BIT(DEPT_CRM));
	key = crm_key_arg(fcinfo, 0);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("case_id and resolution must not be null")));
	case_id = *PG_GETARG_UUID_P(1);
	resolution = arg_text(fcinfo, 2);
	check_text("resolution", resolution, 2000);
	if (has_score && (score < 1 || score > 5))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("satisfaction must be from 1 to 5")));

	args = psprintf("%s %s %d", crm_uuid_text(&case_id), resolution, has_score ? score : 0);
	if (start_call(key, "case_resolve", args))
	{
		lspi_finish();
		PG_RETURN_VOID();
	}
	lock_case(caller, &case_id);
	member_id = *DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(crm_get_text(0, 1))));
	store = crm_get_text(0, 2);
	if (strcmp(crm_get_text(0, 3), "resolved") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("service case is already resolved")));
	v[0] = UUIDPGetDatum(&case_id);
	v[1] = CStringGetTextDatum(resolution);
	if (has_score)
		v[2] = Int32GetDatum(score);
	else
		n[2] = 'n';
	crm_exec("UPDATE loyalty.service_case SET status = 'resolved', resolution = $2, "
			 "satisfaction = $3, resolved_at = pg_catalog.now(), resolved_by = session_user, "
			 "updated_at = pg_catalog.now() WHERE case_id = $1", 3, types, v, n, false);
	json = has_score ?
		psprintf("{\"case_id\": \"%s\", \"satisfaction\": %d}", crm_uuid_text(&case_id), score) :
		psprintf("{\"case_id\": \"%s\", \"satisfaction\": null}", crm_uuid_text(&case_id));
	crm_audit_change(&member_id, "case_resolve", crm_purpose(), json);
	loyalty_outbox_emit("case_resolved", &member_id, store, json);
	crm_idem_record(key, "case_resolve", args, NULL);
	lspi_finish();
	PG_RETURN_VOID();
}

/*
 * loyalty.case_escalate_overdue(as_of timestamptz) returns integer
 *		The scheduled job: every unresolved case past its due time goes one
 *		escalation level up (to the store manager at level 1, to HQ CRM
 *		from level 2), is due again after its severity's interval, and is
 *		announced with a "case_escalated" event.  Returns the number of
 *		cases escalated.  as_of may not lie in the future.
 */
Datum
loyalty_case_escalate_overdue(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *caller = loyalty_caller();
	TimestampTz as_of = PG_ARGISNULL(0) ? GetCurrentTransactionStartTimestamp() :
	PG_GETARG_TIMESTAMPTZ(0);
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		v[1];
	uint64		n,
				i;
	SPITupleTable *tt;

	loyalty_require_department(caller, DEPT_BIT(DEPT_CRM) | DEPT_BIT(DEPT_DBA));
	if (TIMESTAMP_NOT_FINITE(as_of) || as_of > GetCurrentTransactionStartTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("as_of must be a finite time not in the future")));
	lspi_connect(LSPI_READ_WRITE);
	v[0] = TimestampTzGetDatum(as_of);
	n = crm_exec("UPDATE loyalty.service_case c SET status = 'escalated', "
				 "escalation_level = c.escalation_level + 1, escalated_at = $1, "
				 "department = CASE WHEN c.escalation_level = 0 THEN 'store_manager' ELSE 'crm' END, "
				 "due_at = $1 + pg_catalog.make_interval(hours => CASE c.severity "
				 "  WHEN 'critical' THEN 4 WHEN 'high' THEN 24 WHEN 'normal' THEN 72 ELSE 168 END), "
				 "updated_at = pg_catalog.now() "
				 "WHERE c.case_id IN (SELECT x.case_id FROM loyalty.service_case x "
				 "  WHERE x.status <> 'resolved' AND x.due_at <= $1 "
				 "  ORDER BY x.due_at FOR UPDATE SKIP LOCKED) "
				 "RETURNING c.case_id, c.member_id, c.store_code, c.escalation_level, "
				 "c.severity, c.kind, c.department",
				 1, types, v, NULL, false);
	tt = SPI_tuptable;		/* kept: the calls below run statements of their own */
	for (i = 0; i < n; i++)
	{
		char	   *json;
		pg_uuid_t	member_id;
		char	   *store = SPI_getvalue(tt->vals[i], tt->tupdesc, 3);

		member_id = *DatumGetUUIDP(DirectFunctionCall1(uuid_in,
													   CStringGetDatum(SPI_getvalue(tt->vals[i], tt->tupdesc, 2))));
		json = psprintf("{\"case_id\": \"%s\", \"level\": %s, \"severity\": \"%s\", "
						"\"kind\": \"%s\", \"department\": \"%s\"}",
						SPI_getvalue(tt->vals[i], tt->tupdesc, 1),
						SPI_getvalue(tt->vals[i], tt->tupdesc, 4),
						SPI_getvalue(tt->vals[i], tt->tupdesc, 5),
						SPI_getvalue(tt->vals[i], tt->tupdesc, 6),
						SPI_getvalue(tt->vals[i], tt->tupdesc, 7));
		loyalty_outbox_emit("case_escalated", &member_id, store, json);
		crm_audit_change(&member_id, "case_escalate_overdue", "service", json);
	}
	lspi_finish();
	PG_RETURN_INT32((int32) n);
}

/*
 * loyalty.interaction_log(idempotency_key text, member_id uuid,
 *		channel text, kind text, summary text, case_id uuid,
 *		store_code text) returns uuid
 *		Record a contact with the member (a call-back, an email, a care
 *		visit), optionally about a case.
 */
Datum
loyalty_interaction_log(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *caller = loyalty_caller();
	char	   *key;
	pg_uuid_t	member_id;
	char	   *channel,
			   *kind,
			   *summary,
			   *store;
	bool		has_case = !PG_ARGISNULL(5);
	pg_uuid_t	case_id;
	char	   *args;
	char	   *replay;
	char	   *id;
	char	   *json;
	Oid			types[6] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID, UUIDOID, TEXTOID};
	Datum		v[6];
	char		n[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	loyalty_require_department(caller, STORE_DEPTS | DEPT_BIT(DEPT_CRM));
	key = crm_key_arg(fcinfo, 0);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("member_id, channel, kind and summary must not be null")));
	member_id = *PG_GETARG_UUID_P(1);
	channel = arg_text(fcinfo, 2);
	kind = arg_text(fcinfo, 3);
	summary = arg_text(fcinfo, 4);
	if (has_case)
		case_id = *PG_GETARG_UUID_P(5);
	store = arg_text(fcinfo, 6);
	one_of("channel", channel, case_channels);
	one_of("interaction kind", kind, interaction_kinds);
	check_text("summary", summary, 2000);

	args = psprintf("%s %s %s %s %s %s", crm_uuid_text(&member_id), channel, kind, summary,
					has_case ? crm_uuid_text(&case_id) : "", store ? store : "");
	replay = start_call(key, "interaction_log", args);
	if (replay)
	{
		lspi_finish();
		PG_RETURN_DATUM(DirectFunctionCall1(uuid_in, CStringGetDatum(replay)));
	}
	store = acting_store(caller, store);
	require_member(&member_id);
	if (has_case)
	{
		lock_case(caller, &case_id);
		if (strcmp(crm_get_text(0, 1), crm_uuid_text(&member_id)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("service case is about another member")));
	}
	v[0] = UUIDPGetDatum(&member_id);
	v[1] = CStringGetTextDatum(channel);
	v[2] = CStringGetTextDatum(kind);
	v[3] = CStringGetTextDatum(summary);
	if (has_case)
		v[4] = UUIDPGetDatum(&case_id);
	else
		n[4] = 'n';
	v[5] = CStringGetTextDatum(store);
	crm_exec("INSERT INTO loyalty.service_interaction (member_id, channel, kind, summary, "
			 "case_id, store_code) VALUES ($1, $2, $3, $4, $5, $6) RETURNING interaction_id",
			 6, types, v, n, false);
	id = crm_get_text(0, 1);
	json = psprintf("{\"interaction_id\": \"%s\", \"channel\": \"%s\", \"kind\": \"%s\"}",
					id, channel, kind);
	crm_audit_change(&member_id, "interaction_log", crm_purpose(), json);
	crm_idem_record(key, "interaction_log", args, id);
	lspi_finish();
	PG_RETURN_DATUM(DirectFunctionCall1(uuid_in, CStringGetDatum(id)));
}
