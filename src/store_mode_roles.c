/*-------------------------------------------------------------------------
 *
 * store_mode_roles.c
 *	  At a store replica, the store's department roles appear with its
 *	  store row.
 *
 * A store server does not run loyalty.create_store(): the store row comes
 * from HQ by replication, and role OIDs are local to each server, so the
 * role map (loyalty.staff_role) is never replicated.  The row trigger
 * loyalty._store_arrived (ENABLE ALWAYS, so the apply worker fires it)
 * creates, when this server's own store row arrives, the NOLOGIN roles
 * loyalty_<store>_<department> (adopting plain NOLOGIN roles of that name),
 * makes each a member of its chain-wide group role and maps it in
 * loyalty.staff_role.  Staff logins are then made at the store with
 * loyalty.create_staff().  Roles are made from parse nodes, never SQL text.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "commands/user.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_node.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "identity.h"
#include "invalidate.h"
#include "replica.h"

PG_FUNCTION_INFO_V1(loyalty_store_arrived);

/*
 * store_role
 *		The OID of NOLOGIN role name, created if missing; an existing role
 *		that is not a plain NOLOGIN role is an error.
 */
static Oid
store_role(const char *name)
{
	HeapTuple	tup = SearchSysCache1(AUTHNAME, CStringGetDatum(name));
	CreateRoleStmt *stmt;
	ParseState *pstate;
	Oid			roleid;

	if (HeapTupleIsValid(tup))
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
					 errhint("Drop or rename that role on the store server.")));
		return roleid;
	}
	stmt = makeNode(CreateRoleStmt);
	stmt->stmt_type = ROLESTMT_ROLE;
	stmt->role = pstrdup(name);
	stmt->options = list_make1(makeDefElem("canlogin", (Node *) makeBoolean(false), -1));
	pstate = make_parsestate(NULL);
	roleid = CreateRole(pstate, stmt);
	free_parsestate(pstate);
	CommandCounterIncrement();
	return roleid;
}

/*
 * grant_group
 *		GRANT group TO member, unless it already is a member.
 */
static void
grant_group(const char *group, Oid member, const char *member_name)
{
	GrantRoleStmt *stmt;
	AccessPriv *priv;
	RoleSpec   *grantee;

	if (is_member_of_role_nosuper(member, get_role_oid(group, false)))
		return;
	stmt = makeNode(GrantRoleStmt);
	priv = makeNode(AccessPriv);
	priv->priv_name = pstrdup(group);
	grantee = makeNode(RoleSpec);
	grantee->roletype = ROLESPEC_CSTRING;
	grantee->rolename = pstrdup(member_name);
	grantee->location = -1;
	stmt->granted_roles = list_make1(priv);
	stmt->grantee_roles = list_make1(grantee);
	stmt->is_grant = true;
	GrantRole(stmt);
	CommandCounterIncrement();
}

/*
 * loyalty._store_arrived() trigger
 *		AFTER INSERT ON loyalty.store FOR EACH ROW, ENABLE ALWAYS.  Does
 *		nothing except at a store replica, for its own store's row.
 */
Datum
loyalty_store_arrived(PG_FUNCTION_ARGS)
{
	static const LoyaltyDepartment depts[] = {
		DEPT_FRONTDESK, DEPT_HOUSEKEEPING, DEPT_FNB, DEPT_STORE_MANAGER
	};
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	char		me[LOYALTY_CODE_LEN];
	char	   *code;
	bool		isnull;
	int			ret;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty._store_arrived() must be an INSERT row trigger")));
	code = TextDatumGetCString(heap_getattr(trigdata->tg_trigtuple,
											SPI_fnumber(trigdata->tg_relation->rd_att, "store_code"),
											trigdata->tg_relation->rd_att, &isnull));

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	if (strcmp(replica_node_role(me, NULL), "store") != 0 || strcmp(me, code) != 0)
	{
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	for (i = 0; i < lengthof(depts); i++)
	{
		const char *dept = loyalty_department_names[depts[i]];
		char	   *name = psprintf("loyalty_%s_%s", code, dept);
		Oid			roleid = store_role(name);
		Oid			types[3] = {OIDOID, TEXTOID, TEXTOID};
		Datum		values[3];

		grant_group(psprintf("loyalty_%s", dept), roleid, name);
		values[0] = ObjectIdGetDatum(roleid);
		values[1] = CStringGetTextDatum(code);
		values[2] = CStringGetTextDatum(dept);
		replica_spi_exec("INSERT INTO loyalty.staff_role (role, store_code, department) "
						 "VALUES ($1::regrole, $2, $3) ON CONFLICT (role) DO NOTHING",
						 3, types, values, NULL, SPI_OK_INSERT);
	}
	/* the statement trigger that does this does not fire in the apply worker */
	CacheInvalidateRelcacheByRelid(loyalty_relid("staff_role"));
	SPI_finish();
	return PointerGetDatum(NULL);
}
