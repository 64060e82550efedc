/*-------------------------------------------------------------------------
 *
 * replica_store_login.c
 *	  Replication logins per store: who may copy a store's publication.
 *
 * A store (or hub) subscribes at HQ with a login of its own: a LOGIN
 * REPLICATION role that the DBA makes, then hands to
 * loyalty.replica_login_grant(key, store_code, login).  That records the
 * login's store in loyalty.replica_login and makes it a member of
 * loyalty_replication, which holds SELECT on the published tables and
 * columns; row level security (src/sql/53_replica_store_data.sql) lets it
 * copy only its own store's rows of the store-scoped tables.  The role is
 * granted from parse nodes, never from SQL text.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "replica.h"
#include "request.h"
#include "roles.h"
#include "roles_caller.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_replica_login_grant);
PG_FUNCTION_INFO_V1(loyalty_replica_login_revoke);

/*
 * login_arg
 *		A required login argument: an existing role that may log in and
 *		replicate, and is no superuser (a superuser reads everything, so it
 *		cannot be confined to one store).
 */
static char *
login_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *login;
	HeapTuple	tup;
	Form_pg_authid auth;
	bool		ok;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("login must not be null")));
	login = pstrdup(NameStr(*PG_GETARG_NAME(argno)));
	tup = SearchSysCache1(AUTHNAME, CStringGetDatum(login));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\" does not exist", login),
				 errhint("Create it first: CREATE ROLE ... LOGIN REPLICATION PASSWORD ... (docs/operations.md).")));
	auth = (Form_pg_authid) GETSTRUCT(tup);
	ok = auth->rolcanlogin && auth->rolreplication && !auth->rolsuper && !auth->rolbypassrls;
	ReleaseSysCache(tup);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("role \"%s\" must have LOGIN and REPLICATION, and neither SUPERUSER nor BYPASSRLS", login),
				 errdetail("A store's replication login is confined to its store's rows by row level security.")));
	return login;
}

/*
 * loyalty_replica_login_grant_impl
 *		Body of loyalty.replica_login_grant, after the idempotency key:
 *		(store_code text, login name).
 */
static Datum
loyalty_replica_login_grant_impl(PG_FUNCTION_ARGS)
{
	char	   *code;
	char	   *login;
	Oid			types[2] = {NAMEOID, TEXTOID};
	Datum		values[2];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("store code must not be null")));
	code = TextDatumGetCString(PG_GETARG_DATUM(0));
	loyalty_check_store_code(code);
	login = login_arg(fcinfo, 1);

	loyalty_require_department(loyalty_caller(), DEPT_BIT(DEPT_DBA));
	lspi_connect(LSPI_READ_WRITE);
	values[0] = CStringGetDatum(login);
	values[1] = CStringGetTextDatum(code);
	lspi_exec("SELECT 1 FROM loyalty.replica_store r WHERE r.store_code = $2",
			  2, types, values, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" has no replica", code),
				 errhint("Add it with loyalty.replica_store_add() (or loyalty.replica_hub_add()) first.")));
	lspi_exec("SELECT l.store_code FROM loyalty.replica_login l WHERE l.login = $1",
			  2, types, values, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed > 0 && strcmp(lspi_text(0, 1), code) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("login \"%s\" already replicates another store", login),
				 errhint("Give each store a login of its own; loyalty.replica_login_revoke() ends the other one first.")));
	if (SPI_processed == 0)
	{
		lspi_exec("INSERT INTO loyalty.replica_login (login, store_code) VALUES ($1, $2)",
				  2, types, values, NULL, false, 0, SPI_OK_INSERT);
		lspi_exec("SELECT loyalty._audit_change(NULL, 'replica_login_grant', 'operations', "
				  "pg_catalog.jsonb_build_object('login', $1::text, 'store_code', $2))",
				  2, types, values, NULL, false, 0, SPI_OK_SELECT);
	}
	if (!is_member_of_role(get_role_oid(login, false), get_role_oid(REPLICA_LOGIN_GROUP, false)))
		replica_grant_replication_group(login, true);
	lspi_finish();
	PG_RETURN_VOID();
}

/*
 * loyalty.replica_login_grant(idempotency_key text, store_code text,
 *		login name) returns void
 */
Datum
loyalty_replica_login_grant(PG_FUNCTION_ARGS)
{
	return loyalty_call_keyed(fcinfo, "replica_login_grant", loyalty_replica_login_grant_impl);
}

/*
 * loyalty_replica_login_revoke_impl
 *		Body of loyalty.replica_login_revoke, after the idempotency key:
 *		(login name).  An unknown login is an error (P0002).
 */
static Datum
loyalty_replica_login_revoke_impl(PG_FUNCTION_ARGS)
{
	char	   *login;
	Oid			types[1] = {NAMEOID};
	Datum		values[1];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("login must not be null")));
	login = pstrdup(NameStr(*PG_GETARG_NAME(0)));
	loyalty_require_department(loyalty_caller(), DEPT_BIT(DEPT_DBA));
	lspi_connect(LSPI_READ_WRITE);
	values[0] = CStringGetDatum(login);
	lspi_exec("DELETE FROM loyalty.replica_login l WHERE l.login = $1",
			  1, types, values, NULL, false, 0, SPI_OK_DELETE);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("\"%s\" is not a replication login", login)));
	lspi_exec("SELECT loyalty._audit_change(NULL, 'replica_login_revoke', 'operations', "
			  "pg_catalog.jsonb_build_object('login', $1::text))",
			  1, types, values, NULL, false, 0, SPI_OK_SELECT);
	if (OidIsValid(get_role_oid(login, true)) &&
		is_member_of_role(get_role_oid(login, false), get_role_oid(REPLICA_LOGIN_GROUP, false)))
		replica_grant_replication_group(login, false);
	lspi_finish();
	PG_RETURN_VOID();
}

/*
 * loyalty.replica_login_revoke(idempotency_key text, login name) returns void
 */
Datum
loyalty_replica_login_revoke(PG_FUNCTION_ARGS)
{
	return loyalty_call_keyed(fcinfo, "replica_login_revoke", loyalty_replica_login_revoke_impl);
}
