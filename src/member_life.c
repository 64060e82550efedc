/*-------------------------------------------------------------------------
 *
 * member_life.c
 *	  Profile maintenance (docs/crm.md): member_update, member_status_set
 *	  and member_home_store_set.  Every field is checked as at enrolment;
 *	  each department changes only the fields it may (a store's front desk
 *	  and manager: phone, email, address and the "verified" mark; HQ CRM:
 *	  every field); every change is audited with old and new values masked
 *	  and announced on the event outbox without personal values.
 *
 * Status rules (enforced by the ledger too, src/ledger_core.c): active
 * members earn and redeem; suspended members earn but redeem nothing;
 * closed members neither earn nor redeem.  Erased members are out of reach.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "event.h"
#include "member.h"
#include "spi.h"
#include "privacy_mask.h"
#include "roles_caller.h"

PG_FUNCTION_INFO_V1(loyalty_member_update);
PG_FUNCTION_INFO_V1(loyalty_member_status_set);
PG_FUNCTION_INFO_V1(loyalty_member_home_store_set);

/* how a field's old and new values appear in the audit detail */
typedef enum FieldShow
{
	SHOW_PLAIN,					/* not personal: gender, nationality, zone */
	SHOW_PHONE,
	SHOW_EMAIL,
	SHOW_NAME,
	SHOW_FULL					/* "****" */
} FieldShow;

typedef struct ProfileField
{
	const char *name;			/* key in "changes" and column name */
	const char *table;			/* "member_profile" or "member" */
	const char *type;			/* SQL type of the column */
	bool		store_may;		/* store front desk and managers may change */
	bool		nullable;
	FieldShow	show;
} ProfileField;

static const ProfileField profile_fields[] = {
	{"full_name", "member_profile", "text", false, false, SHOW_NAME},
	{"gender", "member_profile", "text", false, true, SHOW_PLAIN},
	{"birth_date", "member_profile", "date", false, true, SHOW_FULL},
	{"nationality", "member_profile", "text", false, true, SHOW_PLAIN},
	{"phone", "member_profile", "text", true, true, SHOW_PHONE},
	{"email", "member_profile", "text", true, true, SHOW_EMAIL},
	{"address", "member_profile", "text", true, true, SHOW_FULL},
	{"employer", "member_profile", "text", false, true, SHOW_FULL},
	{"wedding_anniversary", "member_profile", "date", false, true, SHOW_FULL},
	{"time_zone", "member", "text", false, true, SHOW_PLAIN},
};

#define NUM_PROFILE_FIELDS lengthof(profile_fields)

/*
 * find_field
 *		The field of this name, or NULL.
 */
static const ProfileField *
find_field(const char *name)
{
	int			i;

	for (i = 0; i < NUM_PROFILE_FIELDS; i++)
		if (strcmp(profile_fields[i].name, name) == 0)
			return &profile_fields[i];
	return NULL;
}

/*
 * email_valid
 *		Same rule as enrolment: at most 254 bytes, no space, one "@" with
 *		text before it, and a domain with a dot that is neither first nor
 *		last.
 */
static bool
email_valid(const char *s)
{
	const char *at = strchr(s, '@');
	const char *p;

	if (strlen(s) > 254 || at == NULL || at == s || strchr(at + 1, '@') != NULL)
		return false;
	for (p = s; *p; p++)
		if (isspace((unsigned char) *p))
			return false;
	/* some dot with text on both sides inside the domain */
	for (p = at + 2; *p; p++)
		if (*p == '.' && p[1] != '\0')
			return true;
	return false;
}

/*
 * phone_valid
 *		5 to 20 ASCII digits with an optional leading "+".
 */
static bool
phone_valid(const char *s)
{
	int			n = 0;

	if (*s == '+')
		s++;
	for (; *s; s++, n++)
		if (*s < '0' || *s > '9')
			return false;
	return n >= 5 && n <= 20;
}

/*
 * check_date
 *		A date from 1900-01-01 to today; bad text gives 22007.
 */
static void
check_date(const char *field, const char *value)
{
	DateADT		d = DatumGetDateADT(DirectFunctionCall1(date_in, CStringGetDatum(value)));
	DateADT		today = GetSQLCurrentDate();

	if (DATE_NOT_FINITE(d) || d < date2j(1900, 1, 1) - POSTGRES_EPOCH_JDATE || d > today)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_FIELD_OVERFLOW),
				 errmsg("%s is out of range", field),
				 errdetail("A date from 1900-01-01 to today is expected.")));
}

/*
 * check_field
 *		Check one new value as enrolment does; value NULL clears the field.
 */
static void
check_field(const ProfileField *f, const char *value)
{
	int			len;

	if (value == NULL)
	{
		if (!f->nullable)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", f->name)));
		return;
	}
	len = pg_mbstrlen(value);
	if (strcmp(f->name, "full_name") == 0)
	{
		if (strspn(value, " \t\r\n") == strlen(value))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("full_name must not be empty")));
		if (len > 100)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("full_name is longer than 100 characters")));
	}
	else if (strcmp(f->name, "phone") == 0)
	{
		if (!phone_valid(value))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid phone number"),
					 errdetail("A phone number is 5 to 20 digits with an optional leading +.")));
	}
	else if (strcmp(f->name, "email") == 0)
	{
		if (!email_valid(value))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid email address"),
					 errdetail("An email address is at most 254 characters: a name, \"@\" and a domain with a dot.")));
	}
	else if (strcmp(f->name, "gender") == 0)
	{
		if (strcmp(value, "female") != 0 && strcmp(value, "male") != 0 &&
			strcmp(value, "other") != 0 && strcmp(value, "unspecified") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid gender \"%s\"", value),
					 errhint("Use female, male, other or unspecified.")));
	}
	else if (strcmp(f->name, "nationality") == 0)
	{
		if (strlen(value) != 2 || value[0] < 'A' || value[0] > 'Z' ||
			value[1] < 'A' || value[1] > 'Z')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid nationality"),
					 errhint("Use an ISO 3166 alpha-2 code such as \"CN\".")));
	}
	else if (strcmp(f->name, "address") == 0 || strcmp(f->name, "employer") == 0)
	{
		int			max = strcmp(f->name, "address") == 0 ? 500 : 200;

		if (strspn(value, " \t\r\n") == strlen(value))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not be empty", f->name),
					 errhint("Use null to clear it.")));
		if (len > max)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("%s is longer than %d characters", f->name, max)));
	}
	else if (strcmp(f->type, "date") == 0)
		check_date(f->name, value);
	else if (strcmp(f->name, "time_zone") == 0)
	{
		Oid			types[1] = {TEXTOID};
		Datum		v[1];

		v[0] = CStringGetTextDatum(value);
		crm_exec("SELECT loyalty._valid_time_zone($1)", 1, types, v, NULL, true);
		if (strcmp(crm_get_text(0, 1), "t") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid time zone \"%s\"", value),
					 errhint("Use a time zone name such as \"Asia/Shanghai\".")));
	}
}

/*
 * shown
 *		A value as the audit detail shows it (JSON-escaped into buf).
 */
static void
append_shown(StringInfo buf, const ProfileField *f, const char *value)
{
	text	   *t;

	if (value == NULL)
	{
		appendStringInfoString(buf, "null");
		return;
	}
	switch (f->show)
	{
		case SHOW_PLAIN:
			escape_json(buf, value);
			return;
		case SHOW_PHONE:
			t = loyalty_mask_text(MASK_PHONE, value, strlen(value));
			break;
		case SHOW_EMAIL:
			t = loyalty_mask_text(MASK_EMAIL, value, strlen(value));
			break;
		case SHOW_NAME:
			t = loyalty_mask_text(MASK_NAME, value, strlen(value));
			break;
		default:
			escape_json(buf, MASK_FULL);
			return;
	}
	escape_json(buf, text_to_cstring(t));
}

/*
 * member_status_of
 *		The member's status (locking the member row FOR NO KEY UPDATE when
 *		lock), or NULL if there is no such member.
 */
char *
member_status_of(const pg_uuid_t *member_id, bool lock)
{
	Oid			types[1] = {UUIDOID};
	Datum		v[1];

	v[0] = UUIDPGetDatum(member_id);
	if (crm_exec(lock ?
				 "SELECT status FROM loyalty.member WHERE member_id = $1 FOR NO KEY UPDATE" :
				 "SELECT status FROM loyalty.member WHERE member_id = $1",
				 1, types, v, NULL, false) == 0)
		return NULL;
	return crm_get_text(0, 1);
}

/*
 * result_jsonb
 *		A JSON text as a jsonb Datum.
 */
static Datum
result_jsonb(const char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/*
 * loyalty.member_update(idempotency_key text, member_id uuid, changes jsonb)
 *		returns jsonb
 *		Change profile fields: changes is a JSON object of field -> new
 *		value (null clears the field), plus "verified": true to record that
 *		the member confirmed the data now (last_verified_at).  Returns
 *		{"member_id", "changed": [fields], "verified"}.
 */
Datum
loyalty_member_update(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *caller = loyalty_caller();
	char	   *key;
	pg_uuid_t	member_id;
	char	   *changes;
	char	   *args;
	char	   *replay;
	char	   *status;
	bool		store_caller;
	bool		verified = false;
	int			nfields,
				i;
	char	  **names;
	char	  **values;
	char	  **types;
	StringInfoData detail,
				changed,
				result,
				event;
	bool		any = false;
	Oid			argtypes[2] = {UUIDOID, TEXTOID};
	Datum		v[2];
	char		n[2];

	loyalty_require_department(caller, DEPT_BIT(DEPT_FRONTDESK) |
							   DEPT_BIT(DEPT_STORE_MANAGER) | DEPT_BIT(DEPT_CRM));
	key = crm_key_arg(fcinfo, 0);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("member_id and changes must not be null")));
	member_id = *PG_GETARG_UUID_P(1);
	changes = DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(2)));
	store_caller = !caller->is_hq && !caller->is_superuser;

	lspi_connect(LSPI_READ_WRITE);
	args = psprintf("%s %s", crm_uuid_text(&member_id), changes);
	replay = crm_idem_replay(key, "member_update", args);
	if (replay)
	{
		Datum		r = result_jsonb(replay);

		lspi_finish();
		PG_RETURN_DATUM(r);
	}

	/* the changes: an object of known fields */
	v[0] = PG_GETARG_DATUM(2);
	{
		Oid			t[1] = {JSONBOID};

		crm_exec("SELECT jsonb_typeof($1)", 1, t, v, NULL, true);
		if (strcmp(crm_get_text(0, 1), "object") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("changes must be a JSON object of field names and new values")));
		nfields = crm_exec("SELECT e.key, e.value #>> '{}', jsonb_typeof(e.value) "
						   "FROM pg_catalog.jsonb_each($1) e ORDER BY e.key",
						   1, t, v, NULL, true);
	}
	if (nfields == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("changes must name at least one field")));
	names = palloc(sizeof(char *) * nfields);
	values = palloc(sizeof(char *) * nfields);
	types = palloc(sizeof(char *) * nfields);
	for (i = 0; i < nfields; i++)
	{
		names[i] = crm_get_text(i, 1);
		values[i] = crm_get_text(i, 2);
		types[i] = crm_get_text(i, 3);
	}

	for (i = 0; i < nfields; i++)
	{
		const ProfileField *f;

		if (strcmp(names[i], "verified") == 0)
		{
			if (strcmp(types[i], "boolean") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("\"verified\" must be true or false")));
			verified = strcmp(values[i], "true") == 0;
			continue;
		}
		f = find_field(names[i]);
		if (f == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown member field \"%s\"", names[i]),
					 errhint("Fields are full_name, gender, birth_date, nationality, phone, email, address, employer, wedding_anniversary, time_zone and verified.")));
		if (store_caller && !f->store_may)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to change field \"%s\"", f->name),
					 errdetail("Store staff may change phone, email and address; HQ CRM every field.")));
		if (strcmp(types[i], "null") == 0)
			values[i] = NULL;
		else if (strcmp(types[i], "string") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be a JSON string or null", f->name)));
		check_field(f, values[i]);
	}

	/* the member, locked; erased ones are out of reach, closed ones frozen */
	status = member_status_of(&member_id, true);
	if (status == NULL || strcmp(status, "erased") == 0)
		crm_member_not_found();
	if (strcmp(status, "closed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("member is closed"),
				 errhint("Reopen the account with loyalty.member_status_set first.")));

	initStringInfo(&detail);
	initStringInfo(&changed);
	appendStringInfoString(&detail, "{\"fields\": {");
	appendStringInfoChar(&changed, '[');
	for (i = 0; i < nfields; i++)
	{
		const ProfileField *f = find_field(names[i]);
		char	   *old;
		char	   *sql;

		if (f == NULL)
			continue;
		v[0] = UUIDPGetDatum(&member_id);
		sql = psprintf("SELECT %s::text FROM loyalty.%s WHERE member_id = $1",
					   f->name, f->table);
		crm_exec(sql, 1, argtypes, v, NULL, false);
		old = SPI_processed ? crm_get_text(0, 1) : NULL;
		if ((old == NULL && values[i] == NULL) ||
			(old != NULL && values[i] != NULL && strcmp(old, values[i]) == 0))
			continue;
		/* column names come from the fixed table above, never from input */
		sql = psprintf("UPDATE loyalty.%s SET %s = $2::%s WHERE member_id = $1",
					   f->table, f->name, f->type);
		n[0] = ' ';
		n[1] = values[i] ? ' ' : 'n';
		v[1] = values[i] ? CStringGetTextDatum(values[i]) : (Datum) 0;
		crm_exec(sql, 2, argtypes, v, n, false);
		if (any)
		{
			appendStringInfoString(&detail, ", ");
			appendStringInfoString(&changed, ", ");
		}
		any = true;
		escape_json(&detail, f->name);
		appendStringInfoString(&detail, ": {\"old\": ");
		append_shown(&detail, f, old);
		appendStringInfoString(&detail, ", \"new\": ");
		append_shown(&detail, f, values[i]);
		appendStringInfoChar(&detail, '}');
		escape_json(&changed, f->name);
	}
	appendStringInfoString(&detail, "}");
	appendStringInfoChar(&changed, ']');
	appendStringInfo(&detail, ", \"verified\": %s}", verified ? "true" : "false");

	v[0] = UUIDPGetDatum(&member_id);
	crm_exec(verified ?
			 "UPDATE loyalty.member SET updated_at = pg_catalog.now(), "
			 "last_verified_at = pg_catalog.now() WHERE member_id = $1" :
			 "UPDATE loyalty.member SET updated_at = pg_catalog.now() WHERE member_id = $1",
			 1, argtypes, v, NULL, false);

	crm_audit_change(&member_id, "member_update", crm_purpose(), detail.data);
	initStringInfo(&event);
	appendStringInfo(&event, "{\"fields\": %s, \"verified\": %s}",
					 changed.data, verified ? "true" : "false");
	if (any || verified)
		loyalty_outbox_emit("member_updated", &member_id,
							caller->store_code[0] ? caller->store_code : NULL,
							event.data);

	initStringInfo(&result);
	appendStringInfo(&result, "{\"member_id\": \"%s\", \"changed\": %s, \"verified\": %s}",
					 crm_uuid_text(&member_id), changed.data, verified ? "true" : "false");
	crm_idem_record(key, "member_update", args, result.data);
	lspi_finish();
	PG_RETURN_DATUM(result_jsonb(result.data));
}

/*
 * status_allowed
 *		Whether a department may move a member from one status to another;
 *		errors explain why not.
 */
static void
status_check(const LoyaltyCaller *caller, const char *from, const char *to,
			 bool merged)
{
	bool		hq = caller->is_hq || caller->is_superuser;

	if (strcmp(from, to) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("member is already %s", to)));
	if (strcmp(to, "closed") == 0 && !hq)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only HQ CRM may close an account")));
	if (strcmp(from, "closed") == 0)
	{
		if (!hq)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("only HQ CRM may reopen a closed account")));
		if (merged)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("member was merged into another member and cannot be reopened")));
		if (strcmp(to, "active") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("a closed account can only be reopened as active")));
	}
}

/*
 * loyalty.member_status_set(idempotency_key text, member_id uuid,
 *		status text, reason text) returns jsonb
 *		active, suspended (reason required: redeems nothing, earns) or
 *		closed (reason required, HQ CRM only: earns and redeems nothing).
 *		Returns {"member_id", "old_status", "status"}.
 */
Datum
loyalty_member_status_set(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *caller = loyalty_caller();
	char	   *key;
	pg_uuid_t	member_id;
	char	   *to;
	char	   *reason = NULL;
	char	   *args;
	char	   *replay;
	char	   *from;
	bool		merged;
	char	   *json;
	Oid			types[3] = {UUIDOID, TEXTOID, TEXTOID};
	Datum		v[3];
	char		n[3] = {' ', ' ', ' '};

	loyalty_require_department(caller, DEPT_BIT(DEPT_STORE_MANAGER) | DEPT_BIT(DEPT_CRM));
	key = crm_key_arg(fcinfo, 0);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("member_id and status must not be null")));
	member_id = *PG_GETARG_UUID_P(1);
	to = TextDatumGetCString(PG_GETARG_DATUM(2));
	if (!PG_ARGISNULL(3))
		reason = TextDatumGetCString(PG_GETARG_DATUM(3));
	if (strcmp(to, "active") != 0 && strcmp(to, "suspended") != 0 && strcmp(to, "closed") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid member status \"%s\"", to),
				 errhint("Use active, suspended or closed.")));
	if (reason && (strspn(reason, " \t\r\n") == strlen(reason) || pg_mbstrlen(reason) > 500))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reason must be 1 to 500 characters")));
	if (reason == NULL && strcmp(to, "active") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a member can be %s only with a reason", to)));

	lspi_connect(LSPI_READ_WRITE);
	args = psprintf("%s %s %s", crm_uuid_text(&member_id), to, reason ? reason : "");
	replay = crm_idem_replay(key, "member_status_set", args);
	if (replay)
	{
		Datum		r = result_jsonb(replay);

		lspi_finish();
		PG_RETURN_DATUM(r);
	}

	v[0] = UUIDPGetDatum(&member_id);
	if (crm_exec("SELECT status, merged_into IS NOT NULL FROM loyalty.member "
				 "WHERE member_id = $1 FOR NO KEY UPDATE", 1, types, v, NULL, false) == 0)
		crm_member_not_found();
	from = crm_get_text(0, 1);
	merged = strcmp(crm_get_text(0, 2), "t") == 0;
	if (strcmp(from, "erased") == 0)
		crm_member_not_found();
	status_check(caller, from, to, merged);

	v[1] = CStringGetTextDatum(to);
	if (reason)
		v[2] = CStringGetTextDatum(reason);
	else
		n[2] = 'n';
	crm_exec("UPDATE loyalty.member SET status = $2, status_reason = $3, "
			 "updated_at = pg_catalog.now() WHERE member_id = $1",
			 3, types, v, n, false);

	json = psprintf("{\"old_status\": \"%s\", \"status\": \"%s\"}", from, to);
	crm_audit_change(&member_id, "member_status_set", crm_purpose(), json);
	loyalty_outbox_emit("member_status_changed", &member_id,
						caller->store_code[0] ? caller->store_code : NULL, json);
	json = psprintf("{\"member_id\": \"%s\", \"old_status\": \"%s\", \"status\": \"%s\"}",
					crm_uuid_text(&member_id), from, to);
	crm_idem_record(key, "member_status_set", args, json);
	lspi_finish();
	PG_RETURN_DATUM(result_jsonb(json));
}

/*
 * loyalty.member_home_store_set(idempotency_key text, member_id uuid,
 *		store_code text) returns jsonb
 *		Move a member's home store (HQ CRM); the store must be open.
 *		Returns {"member_id", "old_home_store", "home_store"}.
 */
Datum
loyalty_member_home_store_set(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *caller = loyalty_caller();
	char	   *key;
	pg_uuid_t	member_id;
	char	   *store;
	char	   *args;
	char	   *replay;
	char	   *from;
	char	   *json;
	Oid			types[2] = {UUIDOID, TEXTOID};
	Datum		v[2];

	loyalty_require_department(caller, DEPT_BIT(DEPT_CRM));
	key = crm_key_arg(fcinfo, 0);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("member_id and store_code must not be null")));
	member_id = *PG_GETARG_UUID_P(1);
	store = TextDatumGetCString(PG_GETARG_DATUM(2));

	lspi_connect(LSPI_READ_WRITE);
	args = psprintf("%s %s", crm_uuid_text(&member_id), store);
	replay = crm_idem_replay(key, "member_home_store_set", args);
	if (replay)
	{
		Datum		r = result_jsonb(replay);

		lspi_finish();
		PG_RETURN_DATUM(r);
	}
	v[1] = CStringGetTextDatum(store);
	if (crm_exec("SELECT status FROM loyalty.store WHERE store_code = $1",
				 1, types + 1, v + 1, NULL, false) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" does not exist", store)));
	if (strcmp(crm_get_text(0, 1), "open") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("store \"%s\" is closed", store)));
	v[0] = UUIDPGetDatum(&member_id);
	if (crm_exec("SELECT status, home_store FROM loyalty.member WHERE member_id = $1 "
				 "FOR NO KEY UPDATE", 1, types, v, NULL, false) == 0 ||
		strcmp(crm_get_text(0, 1), "erased") == 0)
		crm_member_not_found();
	from = crm_get_text(0, 2);
	if (strcmp(from, store) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("store \"%s\" is already the member's home store", store)));
	crm_exec("UPDATE loyalty.member SET home_store = $2, updated_at = pg_catalog.now() "
			 "WHERE member_id = $1", 2, types, v, NULL, false);

	json = psprintf("{\"old_home_store\": \"%s\", \"home_store\": \"%s\"}", from, store);
	crm_audit_change(&member_id, "member_home_store_set", crm_purpose(), json);
	loyalty_outbox_emit("member_home_store_changed", &member_id, store, json);
	json = psprintf("{\"member_id\": \"%s\", \"old_home_store\": \"%s\", \"home_store\": \"%s\"}",
					crm_uuid_text(&member_id), from, store);
	crm_idem_record(key, "member_home_store_set", args, json);
	lspi_finish();
	PG_RETURN_DATUM(result_jsonb(json));
}
