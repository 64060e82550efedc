/*-------------------------------------------------------------------------
 *
 * audit.c
 *	  The backend's side of the audit trail: read records and change
 *	  records.
 *
 * Reads (loyalty._audit, loyalty_audit_record): a read must stay on record
 * even if the reader rolls back, so its record is handed to the shared
 * writer pool (src/audit_writer.c) and the read waits until it is
 * committed.  Refused (an error) if the pool's writers cannot run.  When
 * the library is not preloaded (no pool), or loyalty.audit_mode is
 * 'session', the record goes to a writer of the session's own instead
 * (src/audit_session.c): synchronous, one commit per read, one worker per
 * auditing session.
 *
 * Changes (loyalty._audit_change, loyalty_audit_change): a change's record
 * belongs to the change: it is written by the changing transaction itself,
 * so it commits or rolls back with the change.  It is inserted into
 * loyalty.audit_change_staging, not into the chained log: extending the
 * hash chain needs the chain's head, and holding the chain's lock from the
 * change until its commit would serialise every mutating transaction of
 * the chain.  The writers move committed staged records onto the chain
 * (woken at commit by the transaction callback below, and every few
 * seconds); loyalty.audit_member() and loyalty.audit_role() read both.
 * The staging table is plain (no index, trigger or CHECK), so the record
 * goes in with heap_insert after one probe of the purpose code's index,
 * not through an INSERT statement (stage_direct); the statement stays as
 * the path for anything else.
 *
 * The extension's install and update scripts (CREATE and ALTER EXTENSION)
 * call some API functions (views_regenerate); they record no change.
 *
 * Both kinds carry the login (session user), the role acting (outer user),
 * its store and department (loyalty_caller_lookup()), the member, the
 * action and a purpose.  Limits are checked up front with 22023, before
 * anything is queued or written.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audit.h"
#include "roles_caller.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_audit);
PG_FUNCTION_INFO_V1(loyalty_audit_change_sql);

int			loyalty_audit_mode = AUDIT_MODE_POOL;

/*
 * loyalty.audit_changes_bench_off: a bench aid (bench/audit_change_bench.sh)
 * that lets a superuser's own session run the mutating calls without their
 * change records, so that the cost of a record is measured, not estimated.
 * Honoured only for a session whose login is a superuser, and settable only
 * in that session (SET, or the connection's options): never from
 * postgresql.conf, ALTER SYSTEM, ALTER ROLE or ALTER DATABASE, so a normal
 * login's changes are always recorded.
 */
static bool audit_changes_bench_off = false;

static const struct config_enum_entry audit_mode_options[] = {
	{"pool", AUDIT_MODE_POOL, false},
	{"session", AUDIT_MODE_SESSION, false},
	{NULL, 0, false}
};

/* this transaction staged change records: wake the writers at commit */
static bool staged_in_xact = false;
static SPIPlanPtr stage_plan = NULL;

/*
 * check_action
 *		The action names a function: ^[a-z][a-z_]{0,31}$.
 */
static void
check_action(const char *action)
{
	const char *p;
	int			n = 0;

	if (action == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("audit action must not be null")));
	for (p = action; *p; p++, n++)
		if (!((*p >= 'a' && *p <= 'z') || (*p == '_' && n > 0)))
			break;
	if (*p != '\0' || n == 0 || n > AUDIT_ACTION_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("audit action must be 1 to %d lowercase letters or underscores, starting with a letter",
						AUDIT_ACTION_MAX)));
}

/*
 * check_purpose_length
 *		At most AUDIT_PURPOSE_MAX characters.
 */
static void
check_purpose_length(const char *purpose)
{
	if (purpose != NULL && pg_mbstrlen(purpose) > AUDIT_PURPOSE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("audit purpose must be at most %d characters", AUDIT_PURPOSE_MAX)));
}

/*
 * copy_field
 *		strlcpy that refuses (22023) what does not fit.
 */
static void
copy_field(char *dst, size_t size, const char *src, const char *what)
{
	if (strlen(src) >= size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("audit %s is too long", what)));
	strlcpy(dst, src, size);
}

/*
 * loyalty_audit_record
 *		Record one read and return once it is committed.  Errors (the read
 *		is refused) if it could not be recorded.
 */
void
loyalty_audit_record(const char *member_id, const char *action,
					 const char *fields, const char *purpose)
{
	const LoyaltyCaller *c;
	AuditRead	rec;

	check_action(action);
	check_purpose_length(purpose);
	if (fields != NULL && strlen(fields) > AUDIT_FIELDS_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("audit field list must be at most %d bytes", AUDIT_FIELDS_MAX)));

	c = loyalty_caller_lookup();
	memset(&rec, 0, sizeof(rec));
	rec.at = GetCurrentTimestamp();
	copy_field(rec.login, sizeof(rec.login), GetUserNameFromId(GetSessionUserId(), false), "login");
	copy_field(rec.role, sizeof(rec.role), GetUserNameFromId(c->userid, false), "role");
	rec.has_store = !(c->is_hq || c->department == DEPT_NONE);
	if (rec.has_store)
		copy_field(rec.store_code, sizeof(rec.store_code), c->store_code, "store code");
	rec.has_department = (c->department != DEPT_NONE);
	if (rec.has_department)
		copy_field(rec.department, sizeof(rec.department),
				   loyalty_department_names[c->department], "department");
	if (member_id != NULL)
	{
		pg_uuid_t  *u = DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(member_id)));

		rec.has_member = true;
		memcpy(&rec.member, u, sizeof(pg_uuid_t));
	}
	copy_field(rec.action, sizeof(rec.action), action, "action");
	rec.has_fields = (fields != NULL);
	if (fields)
		copy_field(rec.fields, sizeof(rec.fields), fields, "field list");
	rec.has_purpose = (purpose != NULL);
	if (purpose)
		copy_field(rec.purpose, sizeof(rec.purpose), purpose, "purpose");

	if (loyalty_audit_mode == AUDIT_MODE_POOL && loyalty_audit_pool_available())
		loyalty_audit_enqueue_and_wait(&rec);
	else
		loyalty_audit_session_write(&rec);
}

/*
 * loyalty._audit(member_id uuid, action text, fields text[], purpose text)
 *		SQL face of loyalty_audit_record, for the SECURITY DEFINER API
 *		functions.  Granted to nobody.
 */
Datum
loyalty_audit(PG_FUNCTION_ARGS)
{
	char	   *member = PG_ARGISNULL(0) ? NULL
		: DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(0)));
	char	   *fields = NULL;

	if (!PG_ARGISNULL(2))
	{
		Oid			outfunc;
		bool		isvarlena;

		getTypeOutputInfo(TEXTARRAYOID, &outfunc, &isvarlena);
		fields = OidOutputFunctionCall(outfunc, PG_GETARG_DATUM(2));
	}

	loyalty_audit_record(member, PG_ARGISNULL(1) ? NULL : TextDatumGetCString(PG_GETARG_DATUM(1)),
						 fields,
						 PG_ARGISNULL(3) ? NULL : TextDatumGetCString(PG_GETARG_DATUM(3)));
	PG_RETURN_VOID();
}

/*
 * audit_xact_cb
 *		At commit of a transaction that staged change records, wake the
 *		writers to chain them.
 */
static void
audit_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (staged_in_xact)
			{
				staged_in_xact = false;
				loyalty_audit_changes_committed();
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			staged_in_xact = false;
			break;
		default:
			break;
	}
}

/*
 * check_bench_off
 *		GUC check hook of loyalty.audit_changes_bench_off: on only from a
 *		session's own SET or its connection options.
 */
static bool
check_bench_off(bool *newval, void **extra, GucSource source)
{
	if (!*newval || source == PGC_S_SESSION || source == PGC_S_CLIENT)
		return true;
	GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
	GUC_check_errmsg("loyalty.audit_changes_bench_off can only be set in a session (SET or connection options)");
	GUC_check_errdetail("It is a benchmark aid; change records cannot be switched off for a role, a database or the server.");
	return false;
}

/*
 * loyalty_audit_xact_init
 *		Define loyalty.audit_mode and register the transaction callback
 *		(from _PG_init, preloaded or not).
 */
void
loyalty_audit_xact_init(void)
{
	DefineCustomEnumVariable("loyalty.audit_mode",
							 "How audited reads are committed: by the shared writer pool or by a writer per session.",
							 "pool (the default) uses the pool when the library is preloaded and a writer per session otherwise; session always uses a writer per session (synchronous, one commit per read).",
							 &loyalty_audit_mode,
							 AUDIT_MODE_POOL, audit_mode_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("loyalty.audit_changes_bench_off",
							 "Benchmark aid: a superuser's own session writes no change records.",
							 "Honoured only when the session's login is a superuser; settable only with SET or the connection's options.",
							 &audit_changes_bench_off,
							 false,
							 PGC_SUSET, GUC_NOT_IN_SAMPLE,
							 check_bench_off, NULL, NULL);
	RegisterXactCallback(audit_xact_cb, NULL);
}

/*
 * purpose_known
 *		Is code a row of loyalty.audit_purpose?  One probe of its primary
 *		key index under the active snapshot, without the executor.
 */
static bool
purpose_known(Oid nsp, const char *code)
{
	Oid			relid = get_relname_relid("audit_purpose", nsp);
	Oid			indexid = get_relname_relid("audit_purpose_pkey", nsp);
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	bool		found;

	if (!OidIsValid(relid) || !OidIsValid(indexid) || !ActiveSnapshotSet())
		return false;
	rel = table_open(relid, AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(code));
	key.sk_collation = DEFAULT_COLLATION_OID;
	scan = systable_beginscan(rel, indexid, true, GetActiveSnapshot(), 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * stage_direct
 *		Insert one staged change record with heap_insert, without the
 *		executor: the staging table has no index, trigger, rule or CHECK
 *		of its own (src/sql/42_audit_trail.sql), so a one-row INSERT
 *		statement would only add an executor start-up per mutating call
 *		(5.6% of the server's CPU in the change-record bench).  Returns
 *		false, writing nothing, when the table is not that plain (a DBA
 *		added an index or a trigger): the caller then uses the INSERT
 *		statement.  The values are set by column name; staged_id is the
 *		identity's next value.
 */
static bool
stage_direct(Oid nsp, Datum *v, char *n)
{
	static const char *const names[9] = {"login", "role", "store_code", "department",
		"member_id", "action", "purpose", "detail", "at"};
	Oid			relid = get_relname_relid("audit_change_staging", nsp);
	Oid			seqid = get_relname_relid("audit_change_staging_staged_id_seq", nsp);
	Relation	rel;
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
	HeapTuple	tup;
	int			i;
	int			j;

	if (!OidIsValid(relid) || !OidIsValid(seqid))
		return false;
	rel = table_open(relid, RowExclusiveLock);
	desc = RelationGetDescr(rel);
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relhasindex ||
		rel->rd_rel->relhastriggers || rel->rd_rel->relhasrules ||
		(desc->constr && desc->constr->num_check > 0))
	{
		table_close(rel, RowExclusiveLock);
		return false;
	}
	values = palloc0(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);

		nulls[i] = true;
		if (att->attisdropped)
			continue;
		if (strcmp(name, "staged_id") == 0)
		{
			values[i] = Int64GetDatum(nextval_internal(seqid, false));
			nulls[i] = false;
			continue;
		}
		for (j = 0; j < 9; j++)
			if (strcmp(name, names[j]) == 0)
				break;
		if (j == 9)
		{
			/* a column this code does not know: let the statement fill it */
			table_close(rel, RowExclusiveLock);
			return false;
		}
		values[i] = v[j];
		nulls[i] = (n[j] == 'n');
	}
	tup = heap_form_tuple(desc, values, nulls);
	simple_heap_insert(rel, tup);
	heap_freetuple(tup);
	table_close(rel, RowExclusiveLock);
	return true;
}

/*
 * loyalty_audit_change
 *		Record one change in the current transaction.  purpose must be a
 *		code of loyalty.audit_purpose (22023 otherwise); nothing is written
 *		on error.  member_id may be NULL (changes of no one member).
 */
void
loyalty_audit_change(const pg_uuid_t *member_id, const char *action,
					 const char *purpose, Jsonb *detail)
{
	const LoyaltyCaller *c;
	Datum		v[9];
	char		n[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	static const Oid stage_types[9] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, UUIDOID,
		TEXTOID, TEXTOID, JSONBOID, TIMESTAMPTZOID};
	uint64		processed;
	Oid			nsp;

	check_action(action);
	if (!loyalty_audit_schema_12())
		return;					/* a 1.0/1.1 schema has nowhere to put it */
	if (creating_extension)
		return;					/* the extension's own script, not an API call */
	if (audit_changes_bench_off && superuser_arg(GetSessionUserId()))
		return;					/* a superuser's bench session (see above) */
	if (purpose == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("audit purpose must not be null"),
				 errhint("Use a code of loyalty.audit_purpose.")));
	check_purpose_length(purpose);

	c = loyalty_caller_lookup();
	v[0] = CStringGetTextDatum(GetUserNameFromId(GetSessionUserId(), false));
	v[1] = CStringGetTextDatum(GetUserNameFromId(c->userid, false));
	if (c->is_hq || c->department == DEPT_NONE)
		n[2] = 'n', v[2] = (Datum) 0;
	else
		v[2] = CStringGetTextDatum(c->store_code);
	if (c->department == DEPT_NONE)
		n[3] = 'n', v[3] = (Datum) 0;
	else
		v[3] = CStringGetTextDatum(loyalty_department_names[c->department]);
	if (member_id == NULL)
		n[4] = 'n', v[4] = (Datum) 0;
	else
		v[4] = UUIDPGetDatum(member_id);
	v[5] = CStringGetTextDatum(action);
	v[6] = CStringGetTextDatum(purpose);
	if (detail == NULL)
		n[7] = 'n', v[7] = (Datum) 0;
	else
		v[7] = JsonbPGetDatum(detail);
	v[8] = TimestampTzGetDatum(GetCurrentTimestamp());

	nsp = get_namespace_oid("loyalty", false);
	if (purpose_known(nsp, purpose) && stage_direct(nsp, v, n))
	{
		if (!staged_in_xact)
			loyalty_audit_writers_ensure();
		staged_in_xact = true;
		return;
	}

	/* an unknown purpose, or a staging table with more to it: a statement */
	lspi_connect(LSPI_READ_WRITE);
	processed = lspi_run(lspi_plan(&stage_plan,
								   "INSERT INTO loyalty.audit_change_staging "
								   "(at, login, role, store_code, department, member_id, action, purpose, detail) "
								   "SELECT $9, $1, $2, $3, $4, $5, $6, $7, $8 "
								   "WHERE EXISTS (SELECT 1 FROM loyalty.audit_purpose p WHERE p.code = $7)",
								   9, stage_types),
						 v, n, false, 0, SPI_OK_INSERT);
	if (processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown audit purpose \"%s\"", purpose),
				 errhint("Use a code of loyalty.audit_purpose.")));
	lspi_finish();
	if (!staged_in_xact)
		loyalty_audit_writers_ensure();
	staged_in_xact = true;
}

/*
 * loyalty_audit_detail
 *		A change record's detail: a jsonb object of npairs keys; a value is
 *		a JSON string if quoted, else a JSON literal given as text (a
 *		number, true, false); NULL values are JSON nulls.
 */
Jsonb *
loyalty_audit_detail(int npairs, const char *const *keys,
					 const char *const *values, const bool *quoted)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < npairs; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, keys[i]);
		appendStringInfoString(&buf, ": ");
		if (values[i] == NULL)
			appendStringInfoString(&buf, "null");
		else if (quoted[i])
			escape_json(&buf, values[i]);
		else
			appendStringInfoString(&buf, values[i]);
	}
	appendStringInfoChar(&buf, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/*
 * loyalty_audit_change_cstr
 *		loyalty_audit_change with the member as uuid text (or NULL).
 */
void
loyalty_audit_change_cstr(const char *member_id, const char *action,
						  const char *purpose, Jsonb *detail)
{
	pg_uuid_t  *u = NULL;

	if (member_id != NULL)
		u = DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(member_id)));
	loyalty_audit_change(u, action, purpose, detail);
}

/*
 * loyalty._audit_change(member_id uuid, action text, purpose text,
 *						 detail jsonb DEFAULT NULL)
 *		SQL face of loyalty_audit_change, for the SQL and PL/pgSQL API
 *		functions.  Granted to nobody.
 */
Datum
loyalty_audit_change_sql(PG_FUNCTION_ARGS)
{
	loyalty_audit_change(PG_ARGISNULL(0) ? NULL : PG_GETARG_UUID_P(0),
						 PG_ARGISNULL(1) ? NULL : TextDatumGetCString(PG_GETARG_DATUM(1)),
						 PG_ARGISNULL(2) ? NULL : TextDatumGetCString(PG_GETARG_DATUM(2)),
						 PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3));
	PG_RETURN_VOID();
}
