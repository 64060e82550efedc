/*-------------------------------------------------------------------------
 *
 * request_key.c
 *	  Idempotency records for the SQL functions without a ledger of their
 *	  own: loyalty._request_begin()/_request_end() for PL/pgSQL bodies and
 *	  loyalty_call_keyed() for C entry points.
 *
 * A request is identified by (action, idempotency_key).  What is stored is
 * a hash of the caller's login and the arguments, never the arguments
 * (they may be personal data), and the response as jsonb.  A retry with
 * the same key, caller and arguments returns the stored response; the same
 * key with anything else is an error that shows nothing of the first call.
 * Concurrent calls with one key are serialised by a transaction advisory
 * lock on the key, so the second sees the first's record once it commits.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "args.h"
#include "request.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_request_begin);
PG_FUNCTION_INFO_V1(loyalty_request_end);

/*
 * request_lookup
 *		Lock (action, key), then look the request up.  Returns false if
 *		there is none; else true with *response the stored response (jsonb
 *		text) and *scalar its scalar text form (NULL for JSON null).
 *		Errors if the key was used with another caller or other arguments.
 *		request is jsonb or text[] (reqtype).  Inside SPI; the strings are
 *		allocated in the caller's memory context.
 */
static bool
request_lookup(const char *action, const char *key, Datum request, Oid reqtype,
			   MemoryContext mcxt, char **response, char **scalar)
{
	Datum		v[3];
	char	   *s;

	v[0] = CStringGetTextDatum(action);
	v[1] = CStringGetTextDatum(key);
	v[2] = request;
	lspi_exec("SELECT pg_catalog.pg_advisory_xact_lock("
								"pg_catalog.hashtext($1), pg_catalog.hashtext($2))",
								2, (Oid[]) {TEXTOID, TEXTOID}, v, NULL, false, 0, SPI_OK_SELECT);
	lspi_exec("SELECT r.request_hash = loyalty._request_hash(pg_catalog.to_jsonb($3)), "
								"r.response::text, r.response #>> '{}' "
								"FROM loyalty.request_key r "
								"WHERE r.action = $1 AND r.idempotency_key = $2",
								3, (Oid[]) {TEXTOID, TEXTOID, reqtype}, v, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	if (strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency_key \"%s\" was already used for another %s request", key, action),
				 errhint("Use a fresh key for a new operation, and the same key and arguments when retrying one.")));
	*response = MemoryContextStrdup(mcxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	*scalar = s ? MemoryContextStrdup(mcxt, s) : NULL;
	return true;
}

/*
 * request_store
 *		Record the response of a new request: response is jsonb text
 *		(restype JSONBOID) or a scalar's text form stored as a JSON string
 *		(TEXTOID), NULL for JSON null.  Inside SPI.
 */
static void
request_store(const char *action, const char *key, Datum request, Oid reqtype,
			  const char *response, Oid restype)
{
	Datum		v[4];
	char		n[4] = {' ', ' ', ' ', ' '};

	v[0] = CStringGetTextDatum(action);
	v[1] = CStringGetTextDatum(key);
	v[2] = request;
	if (response)
		v[3] = CStringGetTextDatum(response);
	else
		n[3] = 'n';
	lspi_exec(restype == JSONBOID ?
								"INSERT INTO loyalty.request_key "
								"(action, idempotency_key, request_hash, response) "
								"VALUES ($1, $2, loyalty._request_hash(pg_catalog.to_jsonb($3)), "
								"coalesce($4::jsonb, 'null'))" :
								"INSERT INTO loyalty.request_key "
								"(action, idempotency_key, request_hash, response) "
								"VALUES ($1, $2, loyalty._request_hash(pg_catalog.to_jsonb($3)), "
								"coalesce(pg_catalog.to_jsonb($4), 'null'))",
								4, (Oid[]) {TEXTOID, TEXTOID, reqtype, TEXTOID},
								v, n, false, 0, SPI_OK_INSERT);
}

/*
 * loyalty._request_begin(action text, idempotency_key text, request jsonb)
 *		returns jsonb: the first call's response on a retry, else NULL.
 */
Datum
loyalty_request_begin(PG_FUNCTION_ARGS)
{
	char	   *action = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *key = loyalty_arg_key(fcinfo, 1);
	char	   *prior = NULL;
	char	   *scalar;
	bool		found;

	lspi_connect(LSPI_READ_WRITE);
	found = request_lookup(action, key, PG_GETARG_DATUM(2), JSONBOID,
						   CurrentMemoryContext, &prior, &scalar);
	lspi_finish();
	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(prior)));
}

/*
 * loyalty._request_end(action text, idempotency_key text, request jsonb,
 *						response jsonb) returns void
 */
Datum
loyalty_request_end(PG_FUNCTION_ARGS)
{
	char	   *action = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *key = loyalty_arg_key(fcinfo, 1);
	char	   *response = PG_ARGISNULL(3) ? NULL :
		DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(3)));

	lspi_connect(LSPI_READ_WRITE);
	request_store(action, key, PG_GETARG_DATUM(2), JSONBOID, response, JSONBOID);
	lspi_finish();
	PG_RETURN_VOID();
}

/*
 * request_of_args
 *		fcinfo's arguments 1..n-1 as a text[] of their text forms.
 */
static Datum
request_of_args(FunctionCallInfo fcinfo)
{
	Oid			fn = fcinfo->flinfo->fn_oid;
	Oid		   *argtypes;
	char	  **argnames;
	char	   *argmodes;
	HeapTuple	proc;
	Datum	   *elems;
	bool	   *nulls;
	int			n = fcinfo->nargs - 1;
	int			dims[1];
	int			lbs[1] = {1};
	int			i;

	proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(proc))
		elog(ERROR, "cache lookup failed for function %u", fn);
	(void) get_func_arg_info(proc, &argtypes, &argnames, &argmodes);
	ReleaseSysCache(proc);
	elems = palloc(sizeof(Datum) * Max(n, 1));
	nulls = palloc(sizeof(bool) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		Oid			out;
		bool		varlena;

		nulls[i] = fcinfo->args[i + 1].isnull;
		if (nulls[i])
			continue;
		getTypeOutputInfo(argtypes[i + 1], &out, &varlena);
		elems[i] = CStringGetTextDatum(OidOutputFunctionCall(out, fcinfo->args[i + 1].value));
	}
	dims[0] = n;
	if (n == 0)
		return PointerGetDatum(construct_empty_array(TEXTOID));
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * loyalty_call_keyed
 *		See request.h.
 */
Datum
loyalty_call_keyed(FunctionCallInfo fcinfo, const char *action, PGFunction impl)
{
	char	   *key = loyalty_arg_key(fcinfo, 0);
	Datum		request = request_of_args(fcinfo);
	Oid			rettype = get_func_rettype(fcinfo->flinfo->fn_oid);
	char	   *prior;
	char	   *scalar = NULL;
	char	   *response = NULL;
	bool		found;
	Datum		result;

	LOCAL_FCINFO(sub, FUNC_MAX_ARGS);

	lspi_connect(LSPI_READ_WRITE);
	found = request_lookup(action, key, request, TEXTARRAYOID,
						   CurrentMemoryContext, &prior, &scalar);
	lspi_finish();
	if (found)
	{
		Oid			in;
		Oid			ioparam;

		if (rettype == VOIDOID)
			PG_RETURN_VOID();
		if (scalar == NULL)
			PG_RETURN_NULL();
		getTypeInputInfo(rettype, &in, &ioparam);
		return OidInputFunctionCall(in, scalar, ioparam, -1);
	}

	InitFunctionCallInfoData(*sub, fcinfo->flinfo, fcinfo->nargs - 1,
							 fcinfo->fncollation, fcinfo->context, fcinfo->resultinfo);
	memcpy(sub->args, fcinfo->args + 1, sizeof(NullableDatum) * (fcinfo->nargs - 1));
	result = impl(sub);
	fcinfo->isnull = sub->isnull;
	if (rettype != VOIDOID && !sub->isnull)
	{
		Oid			out;
		bool		varlena;

		getTypeOutputInfo(rettype, &out, &varlena);
		response = OidOutputFunctionCall(out, result);
	}
	lspi_connect(LSPI_READ_WRITE);
	request_store(action, key, request, TEXTARRAYOID, response, TEXTOID);
	lspi_finish();
	return result;
}

/*
 * loyalty_call_reordered
 *		See request.h.
 */
Datum
loyalty_call_reordered(FunctionCallInfo fcinfo, PGFunction impl,
					   const int *map, int nargs)
{
	Datum		result;
	int			i;

	LOCAL_FCINFO(sub, FUNC_MAX_ARGS);

	InitFunctionCallInfoData(*sub, fcinfo->flinfo, nargs, fcinfo->fncollation,
							 fcinfo->context, fcinfo->resultinfo);
	for (i = 0; i < nargs; i++)
		sub->args[i] = fcinfo->args[map[i]];
	result = impl(sub);
	fcinfo->isnull = sub->isnull;
	return result;
}

