/*-------------------------------------------------------------------------
 *
 * policy_cache.c
 *	  The policy in effect, compiled once per backend, and the SQL
 *	  functions that validate, store and show policy documents.
 *
 * loyalty.policy holds every version of the program policy with the time
 * it takes effect.  loyalty_policy_at() returns the compiled version in
 * effect at a given time; the last one compiled is kept in
 * TopMemoryContext together with the window of time it covers, so hot
 * paths never re-parse.  A statement trigger on loyalty.policy sends a
 * relcache invalidation (see cache_invalidate.c) that drops the cache in every
 * backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "cache.h"
#include "policy.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_policy_validate);
PG_FUNCTION_INFO_V1(loyalty_policy_at_sql);
PG_FUNCTION_INFO_V1(loyalty_policy_check_trigger);

static LoyaltyPolicy *cached_policy = NULL;
static TimestampTz cached_from;
static TimestampTz cached_until;
static bool cached_valid = false;
static Oid	policy_relid = InvalidOid;

/*
 * policy_relcache_cb
 *		Drop the cached policy when loyalty.policy changes.
 */
static void
policy_relcache_cb(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == policy_relid)
	{
		cached_valid = false;
		if (relid == InvalidOid)
			policy_relid = InvalidOid;
	}
}

/*
 * loyalty_policy_cache_init
 *		Register the invalidation callback (from _PG_init).
 */
void
loyalty_policy_cache_init(void)
{
	CacheRegisterRelcacheCallback(policy_relcache_cb, (Datum) 0);
}

/*
 * load_policy
 *		Read and compile the version in effect at "at" into the cache.
 */
static void
load_policy(TimestampTz at)
{
	Oid			argtypes[1] = {TIMESTAMPTZOID};
	Datum		args[1];
	bool		isnull;
	char	   *doc;
	TimestampTz from;
	TimestampTz until;
	LoyaltyPolicy compiled;
	MemoryContext oldcxt = CurrentMemoryContext;

	args[0] = TimestampTzGetDatum(at);
	lspi_connect(LSPI_READ_WRITE);
	lspi_exec(
								"SELECT p.document, p.effective_from, "
								"       (SELECT min(n.effective_from) FROM loyalty.policy n "
								"         WHERE n.effective_from > p.effective_from) "
								"  FROM loyalty.policy p "
								" WHERE p.effective_from <= $1 "
								" ORDER BY p.effective_from DESC LIMIT 1",
								1, argtypes, args, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no loyalty policy is in effect at %s",
						timestamptz_to_str(at)),
				 errhint("Store one with loyalty.policy_set().")));

	doc = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	from = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 2, &isnull));
	until = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 3, &isnull));
	if (isnull)
		TIMESTAMP_NOEND(until);

	MemoryContextSwitchTo(oldcxt);
	loyalty_policy_parse(doc, strlen(doc), &compiled);
	lspi_finish();

	if (cached_policy == NULL)
		cached_policy = MemoryContextAlloc(TopMemoryContext, sizeof(LoyaltyPolicy));
	*cached_policy = compiled;
	cached_from = from;
	cached_until = until;
	cached_valid = true;
}

/*
 * loyalty_policy_at
 *		The compiled policy in effect at "at".  The pointer stays valid
 *		until the next call or the next invalidation; do not keep it across
 *		transactions.
 */
const LoyaltyPolicy *
loyalty_policy_at(TimestampTz at)
{
	if (!OidIsValid(policy_relid))
	{
		policy_relid = loyalty_relid("policy");
		cached_valid = false;
	}
	if (!cached_valid || at < cached_from || at >= cached_until)
		load_policy(at);
	return cached_policy;
}

/*
 * loyalty_policy_tier
 *		The tier with this code, or NULL.
 */
const TierPolicy *
loyalty_policy_tier(const LoyaltyPolicy *policy, const char *code)
{
	int			i;

	for (i = 0; i < policy->ntiers; i++)
		if (strcmp(policy->tiers[i].code, code) == 0)
			return &policy->tiers[i];
	return NULL;
}

/*
 * policy_jsonb
 *		A compiled policy as normalised jsonb.
 */
static Datum
policy_jsonb(const LoyaltyPolicy *policy)
{
	char	   *json = loyalty_policy_to_json(policy);

	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/*
 * loyalty.policy_validate(document text) returns jsonb
 *		Validate a document without storing it; returns it normalised with
 *		every default filled in.
 */
Datum
loyalty_policy_validate(PG_FUNCTION_ARGS)
{
	text	   *doc;
	LoyaltyPolicy policy;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("policy document must not be null")));
	doc = PG_GETARG_TEXT_PP(0);
	loyalty_policy_parse(VARDATA_ANY(doc), VARSIZE_ANY_EXHDR(doc), &policy);
	PG_RETURN_DATUM(policy_jsonb(&policy));
}

/*
 * loyalty.policy_at(at timestamptz) returns jsonb
 *		The normalised policy in effect at "at", from the cache.
 */
Datum
loyalty_policy_at_sql(PG_FUNCTION_ARGS)
{
	TimestampTz at = PG_ARGISNULL(0) ? GetCurrentTransactionStartTimestamp()
		: PG_GETARG_TIMESTAMPTZ(0);

	PG_RETURN_DATUM(policy_jsonb(loyalty_policy_at(at)));
}

/*
 * loyalty._policy_check()
 *		BEFORE INSERT OR UPDATE OR DELETE row trigger on loyalty.policy:
 *		every stored document is valid, and the history of versions that
 *		have taken effect is append-only.
 */
Datum
loyalty_policy_check_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tuple;
	bool		isnull;
	Datum		d;
	LoyaltyPolicy policy;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty._policy_check() must be a BEFORE ROW trigger")));
	desc = RelationGetDescr(trigdata->tg_relation);

	if (!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		TimestampTz from;

		d = heap_getattr(trigdata->tg_trigtuple,
						 SPI_fnumber(desc, "effective_from"), desc, &isnull);
		from = DatumGetTimestampTz(d);
		if (from <= GetCurrentTransactionStartTimestamp())
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("policy versions that have taken effect cannot be changed"),
					 errhint("Store a new version with loyalty.policy_set().")));
		if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
			return PointerGetDatum(trigdata->tg_trigtuple);
		tuple = trigdata->tg_newtuple;
	}
	else
		tuple = trigdata->tg_trigtuple;

	d = heap_getattr(tuple, SPI_fnumber(desc, "document"), desc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("policy document must not be null")));
	{
		text	   *doc = DatumGetTextPP(d);

		loyalty_policy_parse(VARDATA_ANY(doc), VARSIZE_ANY_EXHDR(doc), &policy);
	}
	return PointerGetDatum(tuple);
}
