/*-------------------------------------------------------------------------
 *
 * benefit_owner.c
 *	  Running the body of a SECURITY INVOKER C function as its owner, with
 *	  a pinned search path, without the cost of SECURITY DEFINER.
 *
 * loyalty.benefits() is called once per guest lookup at a front desk; a
 * SECURITY DEFINER function with SET search_path pays for a GUC nest
 * level, the search_path GUC set and restored, and the namespace search
 * path recomputed twice on every call (about 8% of the call measured by
 * perf).  benefits() is declared SECURITY INVOKER instead and does here
 * what fmgr_security_definer() does, more cheaply:
 *
 * - after its own access checks (loyalty_caller(), which names the outer
 *	 user either way), it switches the current user to the function's
 *	 owner with SECURITY_LOCAL_USERID_CHANGE, as PostgreSQL's RI triggers
 *	 do (ri_triggers.c), so that the catalogue, risk tag and policy reloads
 *	 that run SPI read the extension's tables with the owner's rights;
 * - it pushes an override search path of pg_catalog alone (not even the
 *	 caller's temporary schema) for the same span, so that every name the
 *	 reload queries resolve is the extension's or the system's.
 *
 * Both are undone in reverse order on the normal path.  On error, the
 * (sub)transaction abort restores the user id and pops the override
 * search path (AtEOSubXact_Namespace), as it does for SECURITY DEFINER.
 *
 * The owner is read from pg_proc once per backend and function, and
 * forgotten when pg_proc changes (ALTER FUNCTION ... OWNER TO).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "miscadmin.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "benefit.h"
#include "benefit_owner.h"

static Oid	owner_fn = InvalidOid;
static Oid	owner_id = InvalidOid;
static bool owner_cb_registered = false;

/*
 * owner_syscache_cb
 *		pg_proc changed: read the owner again at the next call.
 */
static void
owner_syscache_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	owner_fn = InvalidOid;
}

/*
 * function_owner
 *		The owner of function fn, cached.
 */
static Oid
function_owner(Oid fn)
{
	if (fn != owner_fn)
	{
		HeapTuple	tup;

		if (!owner_cb_registered)
		{
			CacheRegisterSyscacheCallback(PROCOID, owner_syscache_cb, (Datum) 0);
			owner_cb_registered = true;
		}
		tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for function %u", fn);
		owner_id = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
		ReleaseSysCache(tup);
		owner_fn = fn;
	}
	return owner_id;
}

/*
 * loyalty_become_owner
 *		Switch to the owner of the calling function (fcinfo) and pin the
 *		search path to pg_catalog; save what to restore in *save.  Call
 *		only after the caller's access checks.
 */
void
loyalty_become_owner(FunctionCallInfo fcinfo, LoyaltyOwnerSave *save)
{
	OverrideSearchPath path;

	GetUserIdAndSecContext(&save->userid, &save->sec_context);
	SetUserIdAndSecContext(function_owner(fcinfo->flinfo->fn_oid),
						   save->sec_context | SECURITY_LOCAL_USERID_CHANGE);
	path.schemas = NIL;
	path.addCatalog = true;
	path.addTemp = false;
	path.generation = 0;
	PushOverrideSearchPath(&path);
}

/*
 * loyalty_return_from_owner
 *		Undo loyalty_become_owner().
 */
void
loyalty_return_from_owner(const LoyaltyOwnerSave *save)
{
	PopOverrideSearchPath();
	SetUserIdAndSecContext(save->userid, save->sec_context);
}
