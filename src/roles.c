/*-------------------------------------------------------------------------
 *
 * roles.c
 *	  Stores and their department roles; staff logins.
 *
 * loyalty.store_create() inserts a store and gives it one NOLOGIN role per
 * department, loyalty_<store>_<department>, each a member of the chain-wide
 * group role of its department (loyalty_frontdesk, ...), which holds the
 * privileges; loyalty.staff_role maps each to its store and department.
 * loyalty.staff_create() makes a login role in one department.
 *
 * Roles are created and granted by building the same parse nodes that
 * CREATE ROLE and GRANT produce, never by assembling SQL text.  Roles are
 * cluster-wide: a department role that already exists (another database of
 * the cluster hosts the same chain, or a restore) is adopted if it is a
 * plain NOLOGIN role.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/user.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_node.h"
#include "pgtime.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "audit.h"
#include "roles_caller.h"
#include "policy.h"
#include "roles.h"
#include "args.h"
#include "request.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_create_store);
PG_FUNCTION_INFO_V1(loyalty_create_staff);
PG_FUNCTION_INFO_V1(loyalty_valid_time_zone);
PG_FUNCTION_INFO_V1(loyalty_store_create);
PG_FUNCTION_INFO_V1(loyalty_staff_create);


/*
 * text_arg
 *		A required text argument as a C string; errors for NULL, empty or
 *		longer than maxlen characters.
 */
static char *
text_arg(FunctionCallInfo fcinfo, int argno, const char *what, int maxlen)
{
	char	   *s;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	s = TextDatumGetCString(PG_GETARG_DATUM(argno));
	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	if (pg_mbstrlen(s) > maxlen)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is longer than %d characters", what, maxlen)));
	return s;
}

/*
 * check_code
 *		A code (store, brand) is 1 to maxlen lowercase ASCII letters,
 *		digits and underscores, starting with a letter.
 */
static void
check_code(const char *code, int maxlen, const char *what)
{
	const char *c;
	bool		ok = code[0] != '\0' && strlen(code) <= maxlen;

	for (c = code; ok && *c; c++)
		if (!((*c >= 'a' && *c <= 'z') ||
			  (c > code && ((*c >= '0' && *c <= '9') || *c == '_'))))
			ok = false;
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s \"%s\"", what, code),
				 errdetail("A %s is 1 to %d lowercase letters, digits and underscores, starting with a letter.",
						   what, maxlen)));
}

/*
 * loyalty_check_store_code
 *		Store codes become part of role names (loyalty_<store>_<department>).
 */
void
loyalty_check_store_code(const char *code)
{
	check_code(code, STORE_CODE_MAX, "store code");
}

/*
 * time_zone_is_valid
 *		True if name is a time zone of the IANA database (not an
 *		abbreviation and not a POSIX offset string).
 */
static bool
time_zone_is_valid(const char *name)
{
	if (strchr(name, '/') == NULL && strcmp(name, "UTC") != 0)
		return false;
	return pg_tzset(name) != NULL;
}

/*
 * loyalty_check_time_zone
 *		Error unless tz is a time zone of the IANA database (args.h).
 */
void
loyalty_check_time_zone(const char *tz)
{
	if (tz == NULL || !time_zone_is_valid(tz))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid time zone \"%s\"", tz ? tz : "NULL"),
				 errhint("Use a time zone name such as \"Asia/Shanghai\".")));
}

/*
 * loyalty._valid_time_zone(text) returns boolean
 *		For CHECK constraints.  Immutable in practice: the time zone
 *		database only gains zones.
 */
Datum
loyalty_valid_time_zone(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_BOOL(time_zone_is_valid(name));
}

/*
 * make_role
 *		CREATE ROLE name [LOGIN [PASSWORD pw] | NOLOGIN], from parse nodes.
 */
static Oid
make_role(const char *name, bool login, const char *password)
{
	CreateRoleStmt *stmt = makeNode(CreateRoleStmt);
	ParseState *pstate = make_parsestate(NULL);
	Oid			roleid;

	stmt->stmt_type = ROLESTMT_ROLE;
	stmt->role = pstrdup(name);
	stmt->options = list_make1(makeDefElem("canlogin",
										   (Node *) makeBoolean(login), -1));
	if (password != NULL)
		stmt->options = lappend(stmt->options,
								makeDefElem("password",
											(Node *) makeString(pstrdup(password)), -1));
	roleid = CreateRole(pstate, stmt);
	free_parsestate(pstate);
	CommandCounterIncrement();
	return roleid;
}

/*
 * grant_membership
 *		GRANT group TO member, from parse nodes; no-op if already a member.
 */
static void
grant_membership(const char *group, const char *member)
{
	GrantRoleStmt *stmt;
	AccessPriv *priv;
	RoleSpec   *grantee;

	if (is_member_of_role_nosuper(get_role_oid(member, false),
								  get_role_oid(group, false)))
		return;
	stmt = makeNode(GrantRoleStmt);
	priv = makeNode(AccessPriv);
	priv->priv_name = pstrdup(group);
	grantee = makeNode(RoleSpec);
	grantee->roletype = ROLESPEC_CSTRING;
	grantee->rolename = pstrdup(member);
	grantee->location = -1;
	stmt->granted_roles = list_make1(priv);
	stmt->grantee_roles = list_make1(grantee);
	stmt->is_grant = true;
	stmt->admin_opt = false;
	stmt->grantor = NULL;
	GrantRole(stmt);
	CommandCounterIncrement();
}

/*
 * department_role
 *		Create (or adopt) the NOLOGIN role for one store department.
 */
static Oid
department_role(const char *name)
{
	HeapTuple	tup;
	Oid			roleid;

	tup = SearchSysCache1(AUTHNAME, CStringGetDatum(name));
	if (!HeapTupleIsValid(tup))
		return make_role(name, false, NULL);

	{
		Form_pg_authid form = (Form_pg_authid) GETSTRUCT(tup);
		bool		plain = !form->rolcanlogin && !form->rolsuper &&
			!form->rolcreaterole && !form->rolcreatedb &&
			!form->rolreplication && !form->rolbypassrls;

		roleid = form->oid;
		ReleaseSysCache(tup);
		if (!plain)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("role \"%s\" already exists and is not a plain NOLOGIN role", name),
					 errhint("Drop or rename that role, or choose another store code.")));
	}
	return roleid;
}

/*
 * loyalty_create_store_roles
 *		Create (or adopt) the four department roles of a store, make each a
 *		member of its department's group role and map it in
 *		loyalty.staff_role.  The caller is connected to SPI.  Used by
 *		loyalty.store_create() at HQ and, at a store replica, when the
 *		store's own row arrives (replica_store_roles.c).
 */
void
loyalty_create_store_roles(const char *code)
{
	static const LoyaltyDepartment depts[] = {
		DEPT_FRONTDESK, DEPT_HOUSEKEEPING, DEPT_FNB, DEPT_STORE_MANAGER
	};
	int			i;

	for (i = 0; i < lengthof(depts); i++)
	{
		const char *dept = loyalty_department_names[depts[i]];
		char	   *rolename = psprintf("loyalty_%s_%s", code, dept);
		char	   *group = psprintf("loyalty_%s", dept);
		Oid			roleid = department_role(rolename);
		Oid			mtypes[3] = {OIDOID, TEXTOID, TEXTOID};
		Datum		mvalues[3];

		grant_membership(group, rolename);
		mvalues[0] = ObjectIdGetDatum(roleid);
		mvalues[1] = CStringGetTextDatum(code);
		mvalues[2] = CStringGetTextDatum(dept);
		lspi_exec("INSERT INTO loyalty.staff_role (role, store_code, department) "
				 "VALUES ($1::regrole, $2, $3) ON CONFLICT (role) DO NOTHING",
				 3, mtypes, mvalues, NULL, false, 0, SPI_OK_INSERT);
	}
}

/*
 * loyalty.store_create(code, name, brand, region, time_zone)
 *		returns text (the store code)
 */
Datum
loyalty_create_store(PG_FUNCTION_ARGS)
{
	char	   *code = text_arg(fcinfo, 0, "store code", STORE_CODE_MAX);
	char	   *brand = text_arg(fcinfo, 2, "brand", 32);
	char	   *tz = text_arg(fcinfo, 4, "time zone", 64);
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[5];
	int			i;

	(void) text_arg(fcinfo, 1, "store name", 200);
	(void) text_arg(fcinfo, 3, "region", 100);
	loyalty_check_store_code(code);
	check_code(brand, 32, "brand");
	loyalty_check_time_zone(tz);
	loyalty_require_department(loyalty_caller(), DEPT_BIT(DEPT_DBA));

	lspi_connect(LSPI_READ_WRITE);

	values[0] = PG_GETARG_DATUM(0);
	lspi_exec("SELECT 1 FROM loyalty.store WHERE store_code = $1",
								1, types, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("store \"%s\" already exists", code)));

	for (i = 0; i < 5; i++)
		values[i] = PG_GETARG_DATUM(i);
	lspi_exec("INSERT INTO loyalty.store (store_code, name, brand, region, time_zone) "
			 "VALUES ($1, $2, $3, $4, $5)", 5, types, values, NULL, false, 0, SPI_OK_INSERT);

	loyalty_create_store_roles(code);
	lspi_finish();
	{
		static const char *const keys[3] = {"store_code", "brand", "time_zone"};
		static const bool quoted[3] = {true, true, true};
		const char *vals[3] = {code, brand, tz};

		loyalty_audit_change(NULL, "store_create", "operations",
							 loyalty_audit_detail(3, keys, vals, quoted));
	}
	PG_RETURN_TEXT_P(cstring_to_text(code));
}

/*
 * loyalty.staff_create(login, store_code, department, password)
 *		returns text (the login)
 *
 * Creates a LOGIN role that is a member of one store department role, or
 * of one HQ role when store_code is NULL.
 */
Datum
loyalty_create_staff(PG_FUNCTION_ARGS)
{
	char	   *login = text_arg(fcinfo, 0, "login", NAMEDATALEN - 1);
	char	   *dept = text_arg(fcinfo, 2, "department", 32);
	char	   *store = PG_ARGISNULL(1) ? NULL
		: text_arg(fcinfo, 1, "store code", STORE_CODE_MAX);
	char	   *password = PG_ARGISNULL(3) ? NULL
		: text_arg(fcinfo, 3, "password", 200);
	LoyaltyDepartment d = loyalty_department_from_name(dept);
	char	   *group;
	bool		store_dept;

	loyalty_require_department(loyalty_caller(), DEPT_BIT(DEPT_DBA));
	if (d == DEPT_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown department \"%s\"", dept),
				 errhint("Store departments are frontdesk, housekeeping, fnb and store_manager; HQ departments are crm, marketing, bi and dba.")));
	store_dept = (DEPT_BIT(d) & DEPTS_STORE) != 0;
	if (store_dept && store == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("department \"%s\" needs a store code", dept)));
	if (!store_dept && store != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("HQ department \"%s\" takes no store code", dept)));
	if (store != NULL)
	{
		loyalty_check_store_code(store);
		group = psprintf("loyalty_%s_%s", store, dept);
		if (!OidIsValid(get_role_oid(group, true)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("store \"%s\" does not exist", store)));
	}
	else
		group = psprintf("loyalty_%s", dept);
	if (OidIsValid(get_role_oid(login, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("role \"%s\" already exists", login),
				 errhint("Grant an existing role its department with GRANT %s TO ...", group)));

	make_role(login, true, password);
	grant_membership(group, login);
	{
		/* never the password */
		static const char *const keys[3] = {"login", "store_code", "department"};
		static const bool quoted[3] = {true, true, true};
		const char *vals[3] = {login, store, dept};

		loyalty_audit_change(NULL, "staff_create", "operations",
							 loyalty_audit_detail(3, keys, vals, quoted));
	}
	PG_RETURN_TEXT_P(cstring_to_text(login));
}

/*
 * loyalty.store_create(idempotency_key, store_code, name, brand, region, time_zone)
 *		The 1.2 spelling: an idempotency key first, then loyalty_create_store's
 *		arguments; a retry returns the first call's result (request.h).
 */
Datum
loyalty_store_create(PG_FUNCTION_ARGS)
{
	return loyalty_call_keyed(fcinfo, "store_create", loyalty_create_store);
}

/*
 * loyalty.staff_create(idempotency_key, login, store_code, department, password)
 *		The 1.2 spelling: an idempotency key first, then loyalty_create_staff's
 *		arguments; a retry returns the first call's result (request.h).
 */
Datum
loyalty_staff_create(PG_FUNCTION_ARGS)
{
	return loyalty_call_keyed(fcinfo, "staff_create", loyalty_create_staff);
}
