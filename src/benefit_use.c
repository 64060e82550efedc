/*-------------------------------------------------------------------------
 *
 * benefit_use.c
 *	  Recording a benefit used at a store: loyalty.benefit_use().
 *
 * A use names the member, the store, the benefit and a client idempotency
 * key (unique per store).  In one transaction it
 *	  1. locks the member row (FOR NO KEY UPDATE): uses of one member, and
 *		 risk tags raised against it, are serialised, so a limit cannot be
 *		 overrun by two stores at once and a freeze is never missed;
 *	  2. returns the first call's result if the key was used before for the
 *		 same request (and refuses a key reused for another request);
 *	  3. resolves the member's benefits at the store now (benefit_resolve.c)
 *		 and refuses a benefit that does not apply (LY002);
 *	  4. refuses a benefit whose kind a risk tag freezes (LY001, through
 *		 loyalty_assert_not_frozen());
 *	  5. counts earlier uses against the grant's limit, per stay or per day,
 *		 month or year in the member's time zone, or ever (LY003);
 *	  6. inserts the use into loyalty.benefit_use.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audit.h"
#include "benefit.h"
#include "benefit_catalog.h"
#include "benefit_resolve.h"
#include "args.h"
#include "request.h"
#include "roles_caller.h"
#include "risk.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_use_benefit);
PG_FUNCTION_INFO_V1(loyalty_benefit_use);

#define USE_NATTS 8

/*
 * run_nulls
 *		Execute a statement with parameters, checking the result code.
 */
static void
run_nulls(const char *sql, int nargs, Oid *types, Datum *values,
		  const char *nulls, int expected)
{
	int			ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (ret != expected)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
}

/*
 * run
 *		run_nulls() without NULL arguments.
 */
static void
run(const char *sql, int nargs, Oid *types, Datum *values, int expected)
{
	run_nulls(sql, nargs, types, values, NULL, expected);
}

/*
 * uuid_text
 *		A uuid as a C string, for messages.
 */
static char *
uuid_text(const pg_uuid_t *u)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(u)));
}

/*
 * unavailable_detail
 *		Why no grant of a benefit applies to this member here and now.
 */
static char *
unavailable_detail(const BenefitCatalog *catalog, const LoyaltyPolicy *policy,
				   const char *code, const char *tier, const char *store,
				   TimestampTz at)
{
	int			i;
	bool		any = false,
				now = false,
				here = false;
	const char *other_store = NULL;
	const char *needs_tier = NULL;

	for (i = 0; i < catalog->ngrants; i++)
	{
		const BenefitGrant *g = &catalog->grants[i];

		if (strcmp(g->benefit_code, code) != 0)
			continue;
		any = true;
		if (at < g->valid_from || at >= g->valid_until)
			continue;
		now = true;
		if (g->store_code != NULL && strcmp(g->store_code, store) != 0)
		{
			other_store = g->store_code;
			continue;
		}
		here = true;
		if (g->min_tier != NULL)
			needs_tier = g->min_tier;
	}
	if (!any)
		return psprintf("Benefit \"%s\" is granted to nobody.", code);
	if (!now)
		return psprintf("No grant of benefit \"%s\" is valid now.", code);
	if (!here)
		return psprintf("Benefit \"%s\" is valid at other stores (such as \"%s\"), not at store \"%s\".",
						code, other_store, store);
	if (needs_tier)
		return psprintf("Benefit \"%s\" needs tier \"%s\" or above here; the member's tier is \"%s\".",
						code, needs_tier, tier);
	return psprintf("No grant of benefit \"%s\" applies to this member at store \"%s\" now.",
					code, store);
}

/*
 * loyalty.benefit_use(member_id, store_code, benefit_code, idempotency_key,
 *					   stay_id) returns (use_id, grant_id, params, reason,
 *					   use_number, use_limit, limit_per, replayed)
 */
Datum
loyalty_use_benefit(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *caller;
	pg_uuid_t  *member;
	char	   *store;
	char	   *code;
	char	   *key;
	pg_uuid_t  *stay = NULL;
	TupleDesc	tupdesc;
	Datum		values[USE_NATTS];
	bool		nulls[USE_NATTS];
	HeapTuple	result;
	bool		isnull;
	char		tier[LOYALTY_CODE_LEN];
	char	   *tz;
	bool		active;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	const BenefitCatalog *catalog;
	const LoyaltyPolicy *policy;
	const BenefitGrant **winners;
	const BenefitGrant *g = NULL;
	int			nwinners,
				w;
	int64		used = 0;
	MemoryContext callercxt = CurrentMemoryContext;

	key = loyalty_arg_key(fcinfo, 3);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("member_id, store_code and benefit_code must not be null")));
	member = PG_GETARG_UUID_P(0);
	store = TextDatumGetCString(PG_GETARG_DATUM(1));
	code = TextDatumGetCString(PG_GETARG_DATUM(2));
	if (!PG_ARGISNULL(4))
		stay = PG_GETARG_UUID_P(4);

	caller = loyalty_caller();
	loyalty_require_department(caller, DEPT_BIT(DEPT_FRONTDESK) | DEPT_BIT(DEPT_FNB) |
							   DEPT_BIT(DEPT_STORE_MANAGER) | DEPT_BIT(DEPT_CRM) |
							   DEPT_BIT(DEPT_DBA));
	loyalty_require_store(caller, store);

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	memset(nulls, 0, sizeof(nulls));

	lspi_connect(LSPI_READ_WRITE);

	/* the store, then the member, locked */
	{
		Oid			types[1] = {TEXTOID};
		Datum		args[1] = {CStringGetTextDatum(store)};

		run("SELECT 1 FROM loyalty.store WHERE store_code = $1", 1, types, args, SPI_OK_SELECT);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("store \"%s\" does not exist", store)));
	}
	{
		Oid			types[1] = {UUIDOID};
		Datum		args[1] = {UUIDPGetDatum(member)};
		HeapTuple	tup;
		TupleDesc	desc;

		run("SELECT m.tier, m.status = 'active', coalesce(m.time_zone, h.time_zone) "
			"  FROM loyalty.member m JOIN loyalty.store h ON h.store_code = m.home_store "
			" WHERE m.member_id = $1 FOR NO KEY UPDATE OF m",
			1, types, args, SPI_OK_SELECT);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("member %s does not exist", uuid_text(member))));
		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		text_to_cstring_buffer(DatumGetTextPP(SPI_getbinval(tup, desc, 1, &isnull)),
							   tier, sizeof(tier));
		active = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
		tz = SPI_getvalue(tup, desc, 3);
	}

	/* a key seen before: the same request returns the first result */
	{
		Datum		args[2] = {CStringGetTextDatum(store), CStringGetTextDatum(key)};

		run_nulls("SELECT u.use_id, u.member_id = $3 AND u.benefit_code = $4 "
			"       AND u.stay_id IS NOT DISTINCT FROM $5, "
			"       u.grant_id, u.params, u.reason, u.use_number, g.use_limit, g.limit_per "
			"  FROM loyalty.benefit_use u "
			"  JOIN loyalty.benefit_grant g ON g.grant_id = u.grant_id "
			" WHERE u.store_code = $1 AND u.idempotency_key = $2",
			5, (Oid[]) {TEXTOID, TEXTOID, UUIDOID, TEXTOID, UUIDOID},
			(Datum[]) {args[0], args[1], UUIDPGetDatum(member), CStringGetTextDatum(code),
				stay ? UUIDPGetDatum(stay) : (Datum) 0},
			stay ? "     " : "    n", SPI_OK_SELECT);
	}
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		same = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
		int			c;

		if (isnull || !same)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("idempotency key \"%s\" was already used at store \"%s\" for another request",
							key, store),
					 errdetail("Another member, benefit or stay was recorded under this key."),
					 errhint("Give every distinct use its own idempotency key.")));
		for (c = 0; c < USE_NATTS - 1; c++)
		{
			int			attno = c == 0 ? 1 : c + 2;
			Datum		d = SPI_getbinval(tup, desc, attno, &nulls[c]);

			values[c] = nulls[c] ? (Datum) 0 :
				SPI_datumTransfer(d, TupleDescAttr(desc, attno - 1)->attbyval,
								  TupleDescAttr(desc, attno - 1)->attlen);
		}
		values[USE_NATTS - 1] = BoolGetDatum(true);
		lspi_finish();
		result = heap_form_tuple(tupdesc, values, nulls);
		PG_RETURN_DATUM(HeapTupleGetDatum(result));
	}

	/* the benefit must apply to the member here, now */
	policy = loyalty_policy_at(now);
	catalog = loyalty_benefit_catalog();
	winners = palloc(sizeof(BenefitGrant *) * Max(catalog->ngrants, 1));
	nwinners = active ? loyalty_benefits_resolve(catalog, policy, tier, store, now,
												 false, winners) : 0;
	for (w = 0; w < nwinners; w++)
		if (strcmp(winners[w]->benefit_code, code) == 0)
			g = winners[w];
	if (g == NULL)
	{
		Oid			types[1] = {TEXTOID};
		Datum		args[1] = {CStringGetTextDatum(code)};

		run("SELECT 1 FROM loyalty.benefit WHERE benefit_code = $1", 1, types, args, SPI_OK_SELECT);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("benefit \"%s\" does not exist", code)));
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_BENEFIT_UNAVAILABLE),
				 errmsg("benefit \"%s\" is not available to this member at store \"%s\"",
						code, store),
				 active ? errdetail_internal("%s", unavailable_detail(catalog, policy, code, tier, store, now))
				 : errdetail("The member's account is not active.")));
	}

	/* a risk tag may freeze its kind */
	loyalty_assert_not_frozen(member, loyalty_capability_names[g->kind]);

	/* the stay, when named, is this member's at this store */
	if (stay != NULL)
	{
		HeapTuple	tup;
		TupleDesc	desc;

		run("SELECT member_id = $2, store_code = $3, status <> 'cancelled' "
			"  FROM loyalty.stay WHERE stay_id = $1",
			3, (Oid[]) {UUIDOID, UUIDOID, TEXTOID},
			(Datum[]) {UUIDPGetDatum(stay), UUIDPGetDatum(member), CStringGetTextDatum(store)},
			SPI_OK_SELECT);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("stay %s does not exist", uuid_text(stay))));
		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		if (!DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull)) ||
			!DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("stay %s is not this member's stay at store \"%s\"",
							uuid_text(stay), store)));
		if (!DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("stay %s is cancelled", uuid_text(stay))));
	}

	/* the limit: count earlier uses of this benefit in the window */
	if (g->limit_per == LIMIT_STAY)
	{
		if (stay == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("benefit \"%s\" is limited per stay: stay_id must not be null", code)));
		run("SELECT count(*) FROM loyalty.benefit_use WHERE stay_id = $1 AND benefit_code = $2",
			2, (Oid[]) {UUIDOID, TEXTOID},
			(Datum[]) {UUIDPGetDatum(stay), CStringGetTextDatum(code)}, SPI_OK_SELECT);
	}
	else if (g->limit_per == LIMIT_EVER)
		run("SELECT count(*) FROM loyalty.benefit_use WHERE member_id = $1 AND benefit_code = $2",
			2, (Oid[]) {UUIDOID, TEXTOID},
			(Datum[]) {UUIDPGetDatum(member), CStringGetTextDatum(code)}, SPI_OK_SELECT);
	else if (g->limit_per != LIMIT_NONE)
		/* the day, month or year of "now" in the member's time zone */
		run("SELECT count(*) FROM loyalty.benefit_use u, "
			"       LATERAL (SELECT date_trunc($3, $4 AT TIME ZONE $5) AS s) p "
			" WHERE u.member_id = $1 AND u.benefit_code = $2 "
			"   AND u.used_at >= (p.s AT TIME ZONE $5) "
			"   AND u.used_at < ((p.s + ('1 ' || $3)::interval) AT TIME ZONE $5)",
			5, (Oid[]) {UUIDOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID},
			(Datum[]) {UUIDPGetDatum(member), CStringGetTextDatum(code),
				CStringGetTextDatum(loyalty_benefit_limit_names[g->limit_per]),
				TimestampTzGetDatum(now), CStringGetTextDatum(tz)},
			SPI_OK_SELECT);
	if (g->limit_per != LIMIT_NONE)
	{
		used = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (used >= g->use_limit)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_BENEFIT_USED_UP),
					 errmsg("benefit \"%s\" is used up", code),
					 errdetail("It may be used %d time%s per %s; this member has used it %lld time%s%s.",
							   g->use_limit, g->use_limit == 1 ? "" : "s",
							   loyalty_benefit_limit_names[g->limit_per],
							   (long long) used, used == 1 ? "" : "s",
							   g->limit_per == LIMIT_EVER ? "" :
							   g->limit_per == LIMIT_STAY ? " during this stay" :
							   psprintf(" this %s", loyalty_benefit_limit_names[g->limit_per]))));
	}

	/* record it */
	{
		char	   *reason = loyalty_benefit_reason(g);
		HeapTuple	tup;
		TupleDesc	desc;
		Datum		args[11];
		char		argnulls[11];
		Oid			types[11] = {TEXTOID, TEXTOID, UUIDOID, TEXTOID, UUIDOID, UUIDOID,
		JSONBOID, TEXTOID, INT4OID, TEXTOID, TEXTOID};

		memset(argnulls, ' ', sizeof(argnulls));
		args[0] = CStringGetTextDatum(store);
		args[1] = CStringGetTextDatum(key);
		args[2] = UUIDPGetDatum(member);
		args[3] = CStringGetTextDatum(code);
		args[4] = UUIDPGetDatum(&g->grant_id);
		args[5] = stay ? UUIDPGetDatum(stay) : (Datum) 0;
		if (stay == NULL)
			argnulls[5] = 'n';
		args[6] = JsonbPGetDatum(g->params);
		args[7] = CStringGetTextDatum(reason);
		args[8] = Int32GetDatum((int32) used + 1);
		if (g->limit_per == LIMIT_NONE)
			argnulls[8] = 'n';
		args[9] = CStringGetTextDatum(GetUserNameFromId(GetSessionUserId(), false));
		args[10] = CStringGetTextDatum(GetUserNameFromId(caller->userid, false));
		lspi_exec("INSERT INTO loyalty.benefit_use (store_code, idempotency_key, "
									"  member_id, benefit_code, grant_id, stay_id, params, reason, "
									"  use_number, recorded_by, role) "
									"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
									"RETURNING use_id",
									11, types, args, argnulls, false, 0, SPI_OK_INSERT_RETURNING);
		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		values[0] = SPI_datumTransfer(SPI_getbinval(tup, desc, 1, &isnull), false, 16);
		MemoryContextSwitchTo(callercxt);
		values[1] = UUIDPGetDatum(&g->grant_id);
		values[2] = JsonbPGetDatum(g->params);
		values[3] = CStringGetTextDatum(reason);
		if (g->limit_per == LIMIT_NONE)
			nulls[4] = nulls[5] = nulls[6] = true;
		else
		{
			values[4] = Int32GetDatum((int32) used + 1);
			values[5] = Int32GetDatum(g->use_limit);
			values[6] = CStringGetTextDatum(loyalty_benefit_limit_names[g->limit_per]);
		}
		values[7] = BoolGetDatum(false);
		/* form the result before SPI_finish: the catalogue may be reloaded later */
		result = heap_form_tuple(tupdesc, values, nulls);
	}
	lspi_finish();
	{
		static const char *const keys[3] = {"use_id", "store_code", "benefit_code"};
		static const bool quoted[3] = {true, true, true};
		const char *vals[3];

		vals[0] = DatumGetCString(DirectFunctionCall1(uuid_out, values[0]));
		vals[1] = store;
		vals[2] = code;
		loyalty_audit_change(member, "benefit_use", "service",
							 loyalty_audit_detail(3, keys, vals, quoted));
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(result));
}

/*
 * loyalty.benefit_use(idempotency_key, member_id, store_code, benefit_code, stay_id)
 *		The 1.2 spelling: the idempotency key first; the body is
 *		loyalty_use_benefit's (whose symbol the 1.0/1.1 scripts reference).
 */
Datum
loyalty_benefit_use(PG_FUNCTION_ARGS)
{
	static const int map[] = {1, 2, 3, 0, 4};

	return loyalty_call_reordered(fcinfo, loyalty_use_benefit, map, lengthof(map));
}
