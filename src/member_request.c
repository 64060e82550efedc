/*-------------------------------------------------------------------------
 *
 * member_request.c
 *	  What the CRM functions share: the idempotency key argument, the
 *	  record of answered calls (loyalty.crm_request), the change record in
 *	  the audit trail, and the few SPI calls they make (on the one SPI layer, src/spi.h).
 *
 * A retried call (same key, same operation, same arguments) returns the
 * first call's answer and changes nothing.  The same key with another
 * operation or other arguments is refused with 22023 and a message that
 * shows nothing of the other call: the arguments are kept only as their
 * SHA-256 hash.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "args.h"
#include "member.h"
#include "spi.h"
#include "roles_caller.h"

/*
 * crm_key_arg
 *		The idempotency key of argument argno, checked by args.h (one message
 *		and one SQLSTATE for every entry point).
 */
char *
crm_key_arg(FunctionCallInfo fcinfo, int argno)
{
	return loyalty_arg_key(fcinfo, argno);
}

/*
 * crm_expected
 *		The SPI result code a CRM statement returns, from its main keyword
 *		(the first one outside parentheses and quotes, so that WITH skips
 *		its common table expressions) and RETURNING: the statements here
 *		are fixed strings.
 */
static int
crm_expected(const char *sql)
{
	bool		returning = strstr(sql, "RETURNING") != NULL;
	int			depth = 0;
	bool		quoted = false;
	const char *p;

	if (strncmp(sql, "CREATE", 6) == 0)
		return SPI_OK_UTILITY;
	for (p = sql; *p; p++)
	{
		if (*p == '\'')
			quoted = !quoted;
		if (quoted)
			continue;
		if (*p == '(')
			depth++;
		else if (*p == ')')
			depth--;
		else if (depth == 0 && (p == sql || p[-1] == ' ' || p[-1] == ')'))
		{
			if (strncmp(p, "INSERT", 6) == 0)
				return returning ? SPI_OK_INSERT_RETURNING : SPI_OK_INSERT;
			if (strncmp(p, "UPDATE", 6) == 0)
				return returning ? SPI_OK_UPDATE_RETURNING : SPI_OK_UPDATE;
			if (strncmp(p, "DELETE", 6) == 0)
				return returning ? SPI_OK_DELETE_RETURNING : SPI_OK_DELETE;
			if (strncmp(p, "SELECT", 6) == 0)
				return SPI_OK_SELECT;
		}
	}
	return SPI_OK_SELECT;
}

/*
 * crm_exec
 *		Run one parameterised statement in the current SPI session through
 *		the one SPI layer (lspi_exec, which checks the result code);
 *		returns the number of rows processed.
 */
uint64
crm_exec(const char *sql, int nargs, const Oid *types, const Datum *values,
		 const char *nulls, bool read_only)
{
	return lspi_exec(sql, nargs, types, values, nulls, read_only, 0,
					 crm_expected(sql));
}

/*
 * crm_get_text
 *		Column col (1-based) of row of the last result as a C string, or
 *		NULL.
 */
char *
crm_get_text(int row, int col)
{
	return lspi_text(row, col);
}

/*
 * crm_uuid_text
 *		A uuid as text.
 */
char *
crm_uuid_text(const pg_uuid_t *id)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id)));
}

/*
 * crm_member_not_found
 *		The one error for a member that does not exist or is out of reach
 *		(erased), as the privacy API gives it.
 */
void
crm_member_not_found(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("member not found")));
}

/*
 * crm_idem_replay
 *		The stored answer of an earlier call with this key, or NULL if the
 *		key is new.  Errors if the key was used for another call.
 */
char *
crm_idem_replay(const char *key, const char *operation, const char *args)
{
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		v[3];

	v[0] = CStringGetTextDatum(key);
	v[1] = CStringGetTextDatum(operation);
	v[2] = CStringGetTextDatum(args);
	if (crm_exec("SELECT r.operation = $2 AND r.args_hash = "
				 "pg_catalog.sha256(pg_catalog.convert_to($3, 'UTF8')), r.result "
				 "FROM loyalty.crm_request r WHERE r.idem_key = $1",
				 3, types, v, NULL, false) == 0)
		return NULL;
	if (strcmp(crm_get_text(0, 1), "t") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency_key was already used for another call"),
				 errhint("Use a new key for a new call.")));
	return crm_get_text(0, 2);
}

/*
 * crm_idem_record
 *		Record the answer of a call under its key, in the caller's
 *		transaction.  A concurrent call with the same key fails here with
 *		23505 and can be retried.
 */
void
crm_idem_record(const char *key, const char *operation, const char *args,
				const char *result)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		v[4];
	char		n[4] = {' ', ' ', ' ', ' '};

	v[0] = CStringGetTextDatum(key);
	v[1] = CStringGetTextDatum(operation);
	v[2] = CStringGetTextDatum(args);
	if (result)
		v[3] = CStringGetTextDatum(result);
	else
		n[3] = 'n';
	crm_exec("INSERT INTO loyalty.crm_request (idem_key, operation, args_hash, result) "
			 "VALUES ($1, $2, pg_catalog.sha256(pg_catalog.convert_to($3, 'UTF8')), $4)",
			 4, types, v, n, false);
}

/*
 * crm_audit_change
 *		Record one change in the audit trail (loyalty._audit_change); the
 *		detail never holds an unmasked personal value.
 */
void
crm_audit_change(const pg_uuid_t *member_id, const char *action,
				 const char *purpose, const char *detail_json)
{
	Oid			types[4] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		v[4];
	char		n[4] = {' ', ' ', ' ', ' '};

	if (member_id)
		v[0] = UUIDPGetDatum(member_id);
	else
		n[0] = 'n';
	v[1] = CStringGetTextDatum(action);
	v[2] = CStringGetTextDatum(purpose);
	if (detail_json)
		v[3] = CStringGetTextDatum(detail_json);
	else
		n[3] = 'n';
	crm_exec("SELECT loyalty._audit_change($1, $2, $3, $4::jsonb)",
			 4, types, v, n, false);
}

/*
 * crm_purpose
 *		The audit purpose of a change made by the caller: "service" at a
 *		store, "crm" at HQ.
 */
const char *
crm_purpose(void)
{
	return loyalty_caller()->is_hq ? "crm" : "service";
}
