/*-------------------------------------------------------------------------
 *
 * roles_caller.c
 *	  The caller's store and department, from role membership.
 *
 * loyalty.staff_role maps department roles (loyalty_<store>_frontdesk, ...,
 * and the HQ roles loyalty_crm, ...) to a store and a department.  The
 * caller is the outer user (GetOuterUserId()): the session user or the role
 * it SET ROLE to, unchanged inside SECURITY DEFINER functions, which is
 * what makes every permission check of the API functions trustworthy.  No
 * setting the caller can change is consulted.
 *
 * Superusers are treated as HQ DBAs.  A role that is a member of department
 * roles of more than one store, or of more than one department, is refused:
 * one login, one job.
 *
 * The answer is cached per backend and dropped when role membership
 * (pg_auth_members, pg_authid) or loyalty.staff_role changes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "lib/stringinfo.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "roles_caller.h"
#include "cache.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_whoami);
PG_FUNCTION_INFO_V1(loyalty_caller_store);
PG_FUNCTION_INFO_V1(loyalty_caller_is_hq);
PG_FUNCTION_INFO_V1(loyalty_check_access);

const char *const loyalty_department_names[LOYALTY_NUM_DEPARTMENTS] = {
	"", "frontdesk", "housekeeping", "fnb", "store_manager",
	"crm", "marketing", "bi", "dba"
};

static LoyaltyCaller cached_caller;
static bool cached_valid = false;
static Oid	staff_role_relid = InvalidOid;

/*
 * identity_syscache_cb / identity_relcache_cb
 *		Drop the cached caller when memberships or the role map change.
 */
static void
identity_syscache_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	cached_valid = false;
}

static void
identity_relcache_cb(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == staff_role_relid)
	{
		cached_valid = false;
		if (relid == InvalidOid)
			staff_role_relid = InvalidOid;
	}
}

/*
 * loyalty_identity_init
 *		Register the invalidation callbacks (from _PG_init).
 */
void
loyalty_identity_init(void)
{
	CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, identity_syscache_cb, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, identity_syscache_cb, (Datum) 0);
	CacheRegisterRelcacheCallback(identity_relcache_cb, (Datum) 0);
}

/*
 * loyalty_department_from_name
 *		DEPT_NONE for an unknown name.
 */
LoyaltyDepartment
loyalty_department_from_name(const char *name)
{
	int			d;

	for (d = 1; d < LOYALTY_NUM_DEPARTMENTS; d++)
		if (strcmp(loyalty_department_names[d], name) == 0)
			return (LoyaltyDepartment) d;
	return DEPT_NONE;
}

/*
 * resolve_caller
 *		Scan loyalty.staff_role for the department roles userid belongs to.
 *
 * The table is read directly rather than through SPI: row level security
 * policies call this as the querying user, who holds no privilege on the
 * role map.
 */
static void
resolve_caller(Oid userid, LoyaltyCaller *out)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	memset(out, 0, sizeof(*out));
	out->userid = userid;
	out->staff_role = InvalidOid;

	if (superuser_arg(userid))
	{
		out->is_superuser = true;
		out->is_hq = true;
		out->department = DEPT_DBA;
		return;
	}
	if (!OidIsValid(staff_role_relid))
		return;

	rel = table_open(staff_role_relid, AccessShareLock);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Datum		values[3];
		bool		isnull[3];
		Oid			role;

		heap_deform_tuple(tup, RelationGetDescr(rel), values, isnull);
		role = DatumGetObjectId(values[0]);
		if (!is_member_of_role_nosuper(userid, role))
			continue;
		if (OidIsValid(out->staff_role))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("role \"%s\" belongs to more than one loyalty department",
							GetUserNameFromId(userid, false)),
					 errdetail("It is a member of both \"%s\" and \"%s\".",
							   GetUserNameFromId(out->staff_role, false),
							   GetUserNameFromId(role, false)),
					 errhint("Give each login role exactly one store department or HQ role.")));
		out->staff_role = role;
		out->department = loyalty_department_from_name(TextDatumGetCString(values[2]));
		out->is_hq = isnull[1];
		if (!isnull[1])
			text_to_cstring_buffer(DatumGetTextPP(values[1]), out->store_code,
								   sizeof(out->store_code));
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * loyalty_caller_lookup
 *		The caller's identity; department DEPT_NONE if the caller is no
 *		loyalty staff at all.
 */
const LoyaltyCaller *
loyalty_caller_lookup(void)
{
	Oid			userid = GetOuterUserId();

	if (!OidIsValid(staff_role_relid))
	{
		staff_role_relid = loyalty_relid("staff_role");
		cached_valid = false;
	}
	if (!cached_valid || cached_caller.userid != userid)
	{
		LoyaltyCaller fresh;

		resolve_caller(userid, &fresh);
		cached_caller = fresh;
		cached_valid = true;
	}
	return &cached_caller;
}

/*
 * loyalty_caller
 *		The caller's identity, or an error if the caller is no staff.
 */
const LoyaltyCaller *
loyalty_caller(void)
{
	const LoyaltyCaller *c = loyalty_caller_lookup();

	if (c->department == DEPT_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" is not loyalty staff",
						GetUserNameFromId(c->userid, false)),
				 errhint("Grant it a store department role (loyalty_<store>_<department>) or an HQ role.")));
	return c;
}

/*
 * loyalty_require_department
 *		Error unless the caller's department is in allowed_mask (DEPT_BIT
 *		values).  Superusers pass.
 */
void
loyalty_require_department(const LoyaltyCaller *caller, uint32 allowed_mask)
{
	StringInfoData allowed;
	int			d;

	if (caller->is_superuser)
		return;
	if ((DEPT_BIT(caller->department) & allowed_mask) != 0)
		return;
	initStringInfo(&allowed);
	for (d = DEPT_NONE + 1; d < LOYALTY_NUM_DEPARTMENTS; d++)
		if (allowed_mask & DEPT_BIT(d))
			appendStringInfo(&allowed, "%sloyalty_%s", allowed.len > 0 ? ", " : "",
							 loyalty_department_names[d]);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for department \"%s\"",
					loyalty_department_names[caller->department]),
			 allowed.len > 0 ?
			 errdetail("Only members of these department roles may call it: %s.", allowed.data) :
			 errdetail("No department may call it."),
			 errhint("Use a login of one of those departments, or ask an HQ DBA (docs/roles.md).")));
}

/*
 * store_code_known
 *		Whether store_code names a store; if it does not but its lowercase
 *		form does, that form is copied into lower (LOYALTY_CODE_LEN).  Only
 *		called on the error path of loyalty_require_store.
 */
static bool
store_code_known(const char *store_code, char *lower)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		found = false;
	uint64		i;

	lower[0] = '\0';
	values[0] = CStringGetTextDatum(store_code);
	lspi_connect(LSPI_READ_ONLY);
	lspi_exec("SELECT store_code FROM loyalty.store"
			  " WHERE store_code IN ($1, pg_catalog.lower($1))",
			  1, argtypes, values, NULL, true, 2, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *code = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		if (strcmp(code, store_code) == 0)
			found = true;
		else
			strlcpy(lower, code, LOYALTY_CODE_LEN);
	}
	lspi_finish();
	return found;
}

/*
 * loyalty_require_store
 *		Error unless the caller may act for store_code: HQ may act for any
 *		store, a store's staff only for their own.
 */
void
loyalty_require_store(const LoyaltyCaller *caller, const char *store_code)
{
	char		lower[LOYALTY_CODE_LEN];

	if (caller->is_hq)
		return;
	if (strcmp(caller->store_code, store_code) == 0)
		return;
	/* an unknown store is not a permission problem: say which it is */
	if (!store_code_known(store_code, lower))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" does not exist", store_code),
				 lower[0] != '\0' ?
				 errhint("Store codes are lowercase: \"%s\".", lower) :
				 errhint("The chain's store codes are in loyalty.store; yours is \"%s\".",
						 caller->store_code)));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for store \"%s\"", store_code),
			 errdetail("Staff of store \"%s\" may act only for their own store.",
					   caller->store_code)));
}

/*
 * loyalty.whoami()
 *		(login, role, store_code, department, is_hq) of the caller; NULL
 *		store and department for a role that is no loyalty staff.
 */
Datum
loyalty_whoami(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *c = loyalty_caller_lookup();
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	values[0] = CStringGetTextDatum(GetUserNameFromId(GetSessionUserId(), false));
	values[1] = CStringGetTextDatum(GetUserNameFromId(c->userid, false));
	if (c->is_hq || c->department == DEPT_NONE)
		nulls[2] = true;
	else
		values[2] = CStringGetTextDatum(c->store_code);
	if (c->department == DEPT_NONE)
	{
		nulls[3] = true;
		nulls[4] = true;
	}
	else
	{
		values[3] = CStringGetTextDatum(loyalty_department_names[c->department]);
		values[4] = BoolGetDatum(c->is_hq);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * loyalty.caller_store()
 *		The caller's store code; NULL at HQ and for non-staff.  For row
 *		level security policies.
 */
Datum
loyalty_caller_store(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *c = loyalty_caller_lookup();

	if (c->is_hq || c->department == DEPT_NONE)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(c->store_code));
}

/*
 * loyalty.caller_is_hq()
 *		True for HQ roles and superusers.
 */
Datum
loyalty_caller_is_hq(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *c = loyalty_caller_lookup();

	PG_RETURN_BOOL(c->is_hq && c->department != DEPT_NONE);
}

/*
 * loyalty._check_access(store_code text, departments text[]) returns void
 *		For SQL and PL/pgSQL API functions: error unless the caller is staff
 *		of one of the departments and (when store_code is not NULL) may act
 *		for that store.
 */
Datum
loyalty_check_access(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *c = loyalty_caller();
	uint32		mask = 0;

	if (!PG_ARGISNULL(1))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
		Datum	   *elems;
		bool	   *nulls;
		int			n,
					i;

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
		for (i = 0; i < n; i++)
			if (!nulls[i])
				mask |= DEPT_BIT(loyalty_department_from_name(TextDatumGetCString(elems[i])));
		mask &= ~DEPT_BIT(DEPT_NONE);
		loyalty_require_department(c, mask);
	}
	if (!PG_ARGISNULL(0))
		loyalty_require_store(c, TextDatumGetCString(PG_GETARG_DATUM(0)));
	PG_RETURN_VOID();
}
