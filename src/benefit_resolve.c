/*-------------------------------------------------------------------------
 *
 * benefit_resolve.c
 *	  Benefit resolution: loyalty.benefits(member, store, at), and the
 *	  chain benefits gained and lost by a tier change.
 *
 * A grant applies to a member of tier T at store S at time t when t is in
 * its validity window, T ranks at or above its min_tier (if any) in the
 * policy in effect at t, and its store (if any) is S.  Of the grants of one
 * benefit that apply, one wins, by precedence: campaign over store over
 * tier; a grant for one store over a chain-wide one; the higher min_tier;
 * the later valid_from; the greater grant id (for determinism).  A winning
 * benefit is frozen while a risk tag that was raised at or before t and
 * not resolved by t freezes its kind.
 *
 * Per call, the member's tier and status and the risk tags in effect are
 * read by index scans (benefit_member.c); the catalogue and the policy come
 * from per-backend caches.  No SPI, no executor.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "benefit.h"
#include "benefit_resolve.h"
#include "benefit_owner.h"
#include "benefit_catalog.h"
#include "benefit_member.h"
#include "roles_caller.h"
#include "risk.h"

PG_FUNCTION_INFO_V1(loyalty_benefits);
PG_FUNCTION_INFO_V1(loyalty_tier_change_benefits);

#define BENEFITS_NATTS 13

/*
 * tier_rank
 *		Rank of a tier in the policy, or -1 if the policy has no such tier.
 */
static int
tier_rank(const LoyaltyPolicy *policy, const char *code)
{
	const TierPolicy *t;

	if (code == NULL)
		return -1;
	t = loyalty_policy_tier(policy, code);
	return t ? t->rank : -1;
}

/*
 * grant_beats
 *		True if grant a (of min_tier rank arank) takes precedence over b.
 */
static bool
grant_beats(const BenefitGrant *a, int arank, const BenefitGrant *b, int brank)
{
	int			c;

	if (a->source != b->source)
		return a->source > b->source;
	if ((a->store_code != NULL) != (b->store_code != NULL))
		return a->store_code != NULL;
	if (arank != brank)
		return arank > brank;
	if (a->valid_from != b->valid_from)
		return a->valid_from > b->valid_from;
	c = memcmp(&a->grant_id, &b->grant_id, sizeof(pg_uuid_t));
	return c > 0;
}

/*
 * loyalty_benefits_resolve
 *		Fill winners[] (room for catalog->ngrants) with the winning grant of
 *		each benefit that applies to a member of tier at store_code (NULL:
 *		chain-wide grants only) at "at", in benefit code order; returns how
 *		many.  With tier_grants_only, only grants of source tier count.
 */
int
loyalty_benefits_resolve(const BenefitCatalog *catalog, const LoyaltyPolicy *policy,
						 const char *tier, const char *store_code, TimestampTz at,
						 bool tier_grants_only, const BenefitGrant **winners)
{
	int			rank = tier_rank(policy, tier);
	int			n = 0;
	int			i = 0;

	while (i < catalog->ngrants)
	{
		const char *code = catalog->grants[i].benefit_code;
		const BenefitGrant *best = NULL;
		int			best_rank = -1;
		int			j;

		for (j = i; j < catalog->ngrants &&
			 strcmp(catalog->grants[j].benefit_code, code) == 0; j++)
		{
			const BenefitGrant *g = &catalog->grants[j];
			int			grank = -1;

			if (at < g->valid_from || at >= g->valid_until)
				continue;
			if (tier_grants_only && g->source != SOURCE_TIER)
				continue;
			if (g->store_code != NULL &&
				(store_code == NULL || strcmp(g->store_code, store_code) != 0))
				continue;
			if (g->min_tier != NULL)
			{
				grank = tier_rank(policy, g->min_tier);
				if (grank < 0 || rank < grank)
					continue;
			}
			if (best == NULL || grant_beats(g, grank, best, best_rank))
			{
				best = g;
				best_rank = grank;
			}
		}
		if (best != NULL)
			winners[n++] = best;
		i = j;
	}
	return n;
}

/*
 * benefits_result_desc
 *		The result row type of loyalty.benefits(), built from the function's
 *		declaration once per backend (building it costs more than resolving
 *		the benefits) and returned as a copy in the current context.
 */
static TupleDesc
benefits_result_desc(FunctionCallInfo fcinfo)
{
	static TupleDesc cached = NULL;
	static Oid	cached_fn = InvalidOid;
	Oid			fn = fcinfo->flinfo->fn_oid;

	if (cached == NULL || cached_fn != fn)
	{
		TupleDesc	desc;
		MemoryContext old;

		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		if (desc->natts != BENEFITS_NATTS)
			elog(ERROR, "loyalty.benefits() must return %d columns", BENEFITS_NATTS);
		old = MemoryContextSwitchTo(TopMemoryContext);
		if (cached != NULL)
			FreeTupleDesc(cached);
		cached = CreateTupleDescCopy(desc);
		MemoryContextSwitchTo(old);
		cached_fn = fn;
	}
	return CreateTupleDescCopy(cached);
}

/*
 * loyalty.benefits(member_id uuid, store_code text, at timestamptz)
 *		The benefits the member may use at the store at "at": one row per
 *		benefit with its winning grant, why it applies, its parameters and
 *		limit, and whether (and by which tag) it is frozen.  With "at" NULL
 *		(the default): grants valid at the transaction's now(), and frozen
 *		by every tag unresolved now, also one raised by another store since
 *		this transaction began.
 */
Datum
loyalty_benefits(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const LoyaltyCaller *caller;
	pg_uuid_t  *member;
	char	   *store;
	TimestampTz at;
	bool		current = PG_ARGISNULL(2);
	BenefitMember state;
	const BenefitCatalog *catalog;
	const LoyaltyPolicy *policy;
	const BenefitGrant **winners;
	int			nwinners,
				w;
	LoyaltyOwnerSave owner;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("member_id and store_code must not be null")));
	member = PG_GETARG_UUID_P(0);
	store = TextDatumGetCString(PG_GETARG_DATUM(1));
	at = PG_ARGISNULL(2) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(2);
	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("the time asked about must be finite")));

	caller = loyalty_caller();
	loyalty_require_department(caller, DEPTS_STORE | DEPT_BIT(DEPT_CRM) |
							   DEPT_BIT(DEPT_MARKETING) | DEPT_BIT(DEPT_DBA));
	loyalty_require_store(caller, store);

	/* materialize mode, as InitMaterializedSRF() sets it up */
	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	{
		MemoryContext old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);

		rsinfo->returnMode = SFRM_Materialize;
		rsinfo->setDesc = benefits_result_desc(fcinfo);
		rsinfo->setResult =
			tuplestore_begin_heap((rsinfo->allowedModes & SFRM_Materialize_Random) != 0,
								  false, work_mem);
		MemoryContextSwitchTo(old);
	}

	/*
	 * The function is SECURITY INVOKER: the checks above are the access
	 * control; the rest runs as the owner with a pinned search path
	 * (benefit_owner.c).
	 */
	loyalty_become_owner(fcinfo, &owner);
	policy = loyalty_policy_at(at);
	catalog = loyalty_benefit_catalog();

	/*
	 * A store's own staff name their store, which exists (staff roles go
	 * with their store); HQ may name any code.
	 */
	if ((caller->is_hq || strcmp(caller->store_code, store) != 0) &&
		!loyalty_store_exists(store))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("store \"%s\" does not exist", store)));
	if (!loyalty_benefit_member(member, at, current, catalog, &state))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("member %s does not exist",
						DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(member))))));
	if (!state.active)
	{
		/* suspended and erased members have none */
		loyalty_return_from_owner(&owner);
		return (Datum) 0;
	}

	winners = palloc(sizeof(BenefitGrant *) * Max(catalog->ngrants, 1));
	nwinners = loyalty_benefits_resolve(catalog, policy, state.tier, store, at, false, winners);

	for (w = 0; w < nwinners; w++)
	{
		const BenefitGrant *g = winners[w];
		Datum		values[BENEFITS_NATTS];
		bool		nulls[BENEFITS_NATTS];
		int			t;

		memset(nulls, 0, sizeof(nulls));
		/* text columns prebuilt in the catalogue; the tuplestore copies them */
		values[0] = PointerGetDatum(g->code_text);
		values[1] = PointerGetDatum(g->name_text);
		values[2] = PointerGetDatum(g->kind_text);
		values[3] = PointerGetDatum(g->source_text);
		values[4] = PointerGetDatum(g->reason_text);
		values[5] = JsonbPGetDatum(g->params);
		if (g->use_limit > 0)
		{
			values[6] = Int32GetDatum(g->use_limit);
			values[7] = PointerGetDatum(g->limit_per_text);
		}
		else
			nulls[6] = nulls[7] = true;
		if (TIMESTAMP_IS_NOEND(g->valid_until))
			nulls[8] = true;
		else
			values[8] = TimestampTzGetDatum(g->valid_until);
		values[9] = BoolGetDatum(false);
		nulls[10] = nulls[11] = true;
		for (t = 0; t < state.ntags; t++)
			if (state.tags[t].freezes & CAP_BIT(g->kind))
			{
				values[9] = BoolGetDatum(true);
				values[10] = CStringGetTextDatum(state.tags[t].risk_code);
				values[11] = UUIDPGetDatum(&state.tags[t].tag_id);
				nulls[10] = nulls[11] = false;
				break;
			}
		values[12] = UUIDPGetDatum(&g->grant_id);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	loyalty_return_from_owner(&owner);
	return (Datum) 0;
}

/*
 * append_benefit_json
 *		{"benefit_code": .., "name": .., "kind": .., <key>: params} of a
 *		grant, or with two parameter sets for a changed benefit.
 */
static void
append_benefit_json(StringInfo buf, const BenefitGrant *g, const BenefitGrant *to)
{
	appendStringInfoString(buf, "{\"benefit_code\": ");
	escape_json(buf, g->benefit_code);
	appendStringInfoString(buf, ", \"name\": ");
	escape_json(buf, (to ? to : g)->name);
	appendStringInfoString(buf, ", \"kind\": ");
	escape_json(buf, loyalty_capability_names[g->kind]);
	appendStringInfoString(buf, to ? ", \"from_params\": " : ", \"params\": ");
	appendStringInfoString(buf, JsonbToCString(NULL, &g->params->root, VARSIZE(g->params)));
	if (to)
	{
		appendStringInfoString(buf, ", \"to_params\": ");
		appendStringInfoString(buf, JsonbToCString(NULL, &to->params->root, VARSIZE(to->params)));
	}
	appendStringInfoChar(buf, '}');
}

/*
 * loyalty_benefit_tier_change
 *		The chain benefits (tier grants) gained, lost and changed when a
 *		member moves from from_tier (NULL: from no tier, e.g. on enrolment)
 *		to to_tier at "at", as
 *		{"from_tier", "to_tier", "gained": [..], "lost": [..], "changed": [..]}.
 *		For the tier engine's tier-change events.
 */
Jsonb *
loyalty_benefit_tier_change(const char *from_tier, const char *to_tier, TimestampTz at)
{
	const LoyaltyPolicy *policy = loyalty_policy_at(at);
	const BenefitCatalog *catalog;
	const BenefitGrant **before;
	const BenefitGrant **after;
	int			nbefore = 0,
				nafter,
				b = 0,
				a = 0;
	StringInfoData gained,
				lost,
				changed,
				out;
	bool		first[3] = {true, true, true};

	if (from_tier != NULL && tier_rank(policy, from_tier) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown tier \"%s\"", from_tier),
				 errhint("The tiers are those of the policy in effect at the time of the change.")));
	if (to_tier == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("to_tier must not be null")));
	if (tier_rank(policy, to_tier) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown tier \"%s\"", to_tier),
				 errhint("The tiers are those of the policy in effect at the time of the change.")));

	catalog = loyalty_benefit_catalog();
	before = palloc(sizeof(BenefitGrant *) * Max(catalog->ngrants, 1));
	after = palloc(sizeof(BenefitGrant *) * Max(catalog->ngrants, 1));
	if (from_tier != NULL)
		nbefore = loyalty_benefits_resolve(catalog, policy, from_tier, NULL, at, true, before);
	nafter = loyalty_benefits_resolve(catalog, policy, to_tier, NULL, at, true, after);

	initStringInfo(&gained);
	initStringInfo(&lost);
	initStringInfo(&changed);
	/* both lists are in benefit code order: merge them */
	while (b < nbefore || a < nafter)
	{
		int			c;

		if (b >= nbefore)
			c = 1;
		else if (a >= nafter)
			c = -1;
		else
			c = strcmp(before[b]->benefit_code, after[a]->benefit_code);
		if (c < 0)
		{
			if (!first[1])
				appendStringInfoString(&lost, ", ");
			append_benefit_json(&lost, before[b++], NULL);
			first[1] = false;
		}
		else if (c > 0)
		{
			if (!first[0])
				appendStringInfoString(&gained, ", ");
			append_benefit_json(&gained, after[a++], NULL);
			first[0] = false;
		}
		else
		{
			if (compareJsonbContainers(&before[b]->params->root, &after[a]->params->root) != 0)
			{
				if (!first[2])
					appendStringInfoString(&changed, ", ");
				append_benefit_json(&changed, before[b], after[a]);
				first[2] = false;
			}
			a++;
			b++;
		}
	}

	initStringInfo(&out);
	appendStringInfoString(&out, "{\"from_tier\": ");
	if (from_tier)
		escape_json(&out, from_tier);
	else
		appendStringInfoString(&out, "null");
	appendStringInfoString(&out, ", \"to_tier\": ");
	escape_json(&out, to_tier);
	appendStringInfo(&out, ", \"gained\": [%s], \"lost\": [%s], \"changed\": [%s]}",
					 gained.data, lost.data, changed.data);
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}

/*
 * loyalty.tier_change_benefits(from_tier text, to_tier text, at timestamptz)
 *		SQL face of loyalty_benefit_tier_change().
 */
Datum
loyalty_tier_change_benefits(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *caller = loyalty_caller();
	TimestampTz at;

	loyalty_require_department(caller, DEPTS_STORE | DEPT_BIT(DEPT_CRM) |
							   DEPT_BIT(DEPT_MARKETING) | DEPT_BIT(DEPT_DBA));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("to_tier must not be null")));
	at = PG_ARGISNULL(2) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(2);
	PG_RETURN_JSONB_P(loyalty_benefit_tier_change(PG_ARGISNULL(0) ? NULL : TextDatumGetCString(PG_GETARG_DATUM(0)),
												  TextDatumGetCString(PG_GETARG_DATUM(1)),
												  at));
}
