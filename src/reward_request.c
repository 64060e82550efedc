/*-------------------------------------------------------------------------
 *
 * reward_request.c
 *	  What every rewards function shares: argument checks, the few SPI
 *	  helpers (kept here so that they move to the one SPI layer easily),
 *	  the idempotency record (loyalty.reward_request), the audit record
 *	  and the jsonb result.
 *
 * Idempotency: a mutating call stores its result under its key, in the
 * same transaction as its change.  The same key with the same operation
 * and arguments returns the stored result with "replayed": true; the same
 * key with anything else is an error (22023) that shows nothing of the
 * other call.  Callers take their lock (the member, the voucher) before
 * looking the key up, so a retry in flight waits for the first attempt.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "args.h"
#include "reward.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_reward_request);
PG_FUNCTION_INFO_V1(loyalty_reward_request_save);

/*
 * reward_arg_required
 *		Error if argument argno is NULL.
 */
void
reward_arg_required(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/*
 * reward_text_arg
 *		An optional text argument as a C string, or NULL.
 */
char *
reward_text_arg(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? NULL : TextDatumGetCString(PG_GETARG_DATUM(argno));
}

/*
 * reward_sql
 *		Run one statement with parameters through the SPI layer (spi.h);
 *		error unless SPI returns "expected".  Returns the number of rows.
 */
uint64
reward_sql(const char *sql, int nargs, const Oid *types, const Datum *values,
		   const char *nulls, int expected)
{
	return lspi_exec(sql, nargs, types, values, nulls,
					 expected == SPI_OK_SELECT, 0, expected);
}

/*
 * reward_get_text / reward_get_bool / reward_get_int64
 *		Column col (1-based) of row "row" of the last result.
 */
char *
reward_get_text(int row, int col)
{
	return lspi_text(row, col);
}

bool
reward_get_bool(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return !isnull && DatumGetBool(d);
}

int64
reward_get_int64(int row, int col, bool *isnull)
{
	bool		n;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &n);

	if (isnull)
		*isnull = n;
	return n ? 0 : DatumGetInt64(d);
}

/*
 * reward_uuid_text
 *		A uuid as text.
 */
char *
reward_uuid_text(const pg_uuid_t *u)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(u)));
}

/*
 * reward_json_text
 *		A C string as a JSON string literal (or null).
 */
char *
reward_json_text(const char *s)
{
	StringInfoData buf;

	if (s == NULL)
		return "null";
	initStringInfo(&buf);
	escape_json(&buf, s);
	return buf.data;
}

/*
 * reward_check_store
 *		Error unless the store exists.
 */
void
reward_check_store(const char *store_code)
{
	Datum		v[1] = {CStringGetTextDatum(store_code)};

	if (reward_sql("SELECT 1 FROM loyalty.store WHERE store_code = $1",
				   1, (Oid[]) {TEXTOID}, v, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" does not exist", store_code)));
}

/*
 * reward_idem_replay
 *		The stored result (jsonb text, with "replayed": true) of a key used
 *		before for the same operation and arguments; NULL for a new key.
 *		The caller is connected to SPI and holds its lock.
 */
char *
reward_idem_replay(const char *key, const char *operation, const char *args)
{
	Datum		v[3] = {CStringGetTextDatum(key), CStringGetTextDatum(operation),
	CStringGetTextDatum(args)};

	if (reward_sql("SELECT operation = $2 AND args = $3, "
				   "(result || '{\"replayed\": true}')::text "
				   "FROM loyalty.reward_request WHERE idempotency_key = $1",
				   3, (Oid[]) {TEXTOID, TEXTOID, TEXTOID}, v, NULL, SPI_OK_SELECT) == 0)
		return NULL;
	if (!reward_get_bool(0, 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency_key was already used for another request"),
				 errhint("Give every distinct operation its own key, and reuse a key only to retry the same call.")));
	return reward_get_text(0, 2);
}

/*
 * reward_idem_save
 *		Store a call's result under its key (a JSON object, without
 *		"replayed").
 */
void
reward_idem_save(const char *key, const char *operation, const char *args,
				 const char *result_json)
{
	Datum		v[4] = {CStringGetTextDatum(key), CStringGetTextDatum(operation),
		CStringGetTextDatum(args), CStringGetTextDatum(result_json)};

	reward_sql("INSERT INTO loyalty.reward_request (idempotency_key, operation, args, result) "
			   "VALUES ($1, $2, $3, $4::jsonb)",
			   4, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TEXTOID}, v, NULL, SPI_OK_INSERT);
}

/*
 * reward_result
 *		A JSON object (text) as the jsonb Datum the C functions return; the
 *		string is copied into the caller's context by jsonb_in.
 */
Datum
reward_result(const char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/*
 * reward_audit
 *		Record the change through loyalty._audit_change (purpose loyalty),
 *		in the caller's transaction.  detail_json never holds a personal
 *		value.
 */
void
reward_audit(const pg_uuid_t *member_id, const char *action, const char *detail_json)
{
	Datum		v[3];
	char		n[3] = {' ', ' ', ' '};

	v[0] = member_id ? UUIDPGetDatum(member_id) : (Datum) 0;
	n[0] = member_id ? ' ' : 'n';
	v[1] = CStringGetTextDatum(action);
	v[2] = CStringGetTextDatum(detail_json);
	reward_sql("SELECT loyalty._audit_change($1, $2, 'loyalty', $3::jsonb)",
			   3, (Oid[]) {UUIDOID, TEXTOID, TEXTOID}, v, n, SPI_OK_SELECT);
}

/*
 * loyalty._reward_request(idempotency_key, operation, args) returns jsonb
 *		For the PL/pgSQL catalogue functions: the stored result of a key,
 *		NULL if it is new; an error if it was used for another request.
 */
Datum
loyalty_reward_request(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	char	   *key = loyalty_arg_key(fcinfo, 0);
	char	   *found;

	reward_arg_required(fcinfo, 1, "operation");
	reward_arg_required(fcinfo, 2, "args");
	lspi_connect(LSPI_READ_WRITE);
	found = reward_idem_replay(key, reward_text_arg(fcinfo, 1), reward_text_arg(fcinfo, 2));
	if (found != NULL)
		found = MemoryContextStrdup(outer, found);
	lspi_finish();
	if (found == NULL)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(reward_result(found));
}

/*
 * loyalty._reward_request_save(idempotency_key, operation, args, result)
 */
Datum
loyalty_reward_request_save(PG_FUNCTION_ARGS)
{
	char	   *key = loyalty_arg_key(fcinfo, 0);

	reward_arg_required(fcinfo, 1, "operation");
	reward_arg_required(fcinfo, 2, "args");
	reward_arg_required(fcinfo, 3, "result");
	lspi_connect(LSPI_READ_WRITE);
	reward_idem_save(key, reward_text_arg(fcinfo, 1), reward_text_arg(fcinfo, 2),
					 DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(3))));
	lspi_finish();
	PG_RETURN_VOID();
}
