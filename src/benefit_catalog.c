/*-------------------------------------------------------------------------
 *
 * benefit_catalog.c
 *	  The benefit catalogue, compiled once per backend.
 *
 * Every grant of loyalty.benefit_grant, joined with its benefit, is copied
 * into a memory context of its own under CacheMemoryContext, sorted by
 * benefit code, together with what each risk type freezes, so that
 * resolving a member's benefits reads no catalogue table.  Statement
 * triggers on loyalty.benefit, loyalty.benefit_grant and loyalty.risk_type
 * send a relcache invalidation (cache_invalidate.c); the callback only marks the
 * cache stale, and the next caller rebuilds it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "benefit.h"
#include "benefit_catalog.h"
#include "cache.h"
#include "risk.h"
#include "spi.h"

const char *const loyalty_benefit_source_names[4] = {"", "tier", "store", "campaign"};
const char *const loyalty_benefit_limit_names[6] = {"", "stay", "day", "month", "year", "ever"};

static BenefitCatalog catalog;
static MemoryContext catalog_cxt = NULL;
static bool catalog_valid = false;
static Oid	benefit_relid = InvalidOid;
static Oid	grant_relid = InvalidOid;
static Oid	risk_type_relid = InvalidOid;

/*
 * benefit_relcache_cb
 *		Mark the catalogue stale when either of its tables changes.
 */
static void
benefit_relcache_cb(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == benefit_relid || relid == grant_relid ||
		relid == risk_type_relid)
	{
		/* the OIDs too: DROP EXTENSION sends the dropped tables' OIDs */
		catalog_valid = false;
		benefit_relid = InvalidOid;
		grant_relid = InvalidOid;
		risk_type_relid = InvalidOid;
	}
}

/*
 * loyalty_benefit_cache_init
 *		Register the invalidation callback of the catalogue (from
 *		_PG_init, which also initialises the member lookups and the risk
 *		cache: each subsystem registers its own).
 */
void
loyalty_benefit_cache_init(void)
{
	CacheRegisterRelcacheCallback(benefit_relcache_cb, (Datum) 0);
}

/*
 * text_col
 *		Column attno of an SPI result row as a C string in the current
 *		memory context, or NULL.
 */
static char *
text_col(HeapTuple tup, TupleDesc desc, int attno)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, attno, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * source_from_name / limit_from_name
 *		The enum values of the table's text codes.
 */
static BenefitSource
source_from_name(const char *s)
{
	if (strcmp(s, "tier") == 0)
		return SOURCE_TIER;
	if (strcmp(s, "store") == 0)
		return SOURCE_STORE;
	return SOURCE_CAMPAIGN;
}

static BenefitLimitPer
limit_from_name(const char *s)
{
	int			i;

	if (s == NULL)
		return LIMIT_NONE;
	for (i = 1; i < lengthof(loyalty_benefit_limit_names); i++)
		if (strcmp(loyalty_benefit_limit_names[i], s) == 0)
			return (BenefitLimitPer) i;
	return LIMIT_NONE;
}

/*
 * load_catalog
 *		Read every grant into a fresh memory context and swap it in.
 */
static void
load_catalog(void)
{
	MemoryContext cxt;
	MemoryContext oldcxt = CurrentMemoryContext;
	BenefitGrant *grants;
	uint64		n,
				i;
	int			ret;

	lspi_connect(LSPI_READ_WRITE);

	/*
	 * Not read-only: a fresh snapshot.  The invalidation that brought us
	 * here may come from a commit newer than the calling statement's
	 * snapshot; reading with that snapshot would cache the old catalogue as
	 * valid until the next change.
	 */
	ret = SPI_execute("SELECT g.grant_id, g.benefit_code, b.name, b.kind, g.source, "
					  "       g.min_tier, g.store_code, g.campaign, g.valid_from, "
					  "       g.valid_until, g.params, g.use_limit, g.limit_per "
					  "  FROM loyalty.benefit_grant g "
					  "  JOIN loyalty.benefit b ON b.benefit_code = g.benefit_code "
					  " ORDER BY g.benefit_code COLLATE \"C\", g.grant_id",
					  false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the benefit catalogue failed: %s", SPI_result_code_string(ret));

	/* built under the caller's context, so that an error frees it */
	cxt = AllocSetContextCreate(oldcxt, "loyalty benefit catalogue",
								ALLOCSET_SMALL_SIZES);
	MemoryContextSwitchTo(cxt);
	n = SPI_processed;
	grants = palloc0(sizeof(BenefitGrant) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		BenefitGrant *g = &grants[i];
		bool		isnull;
		char	   *s;
		Datum		d;

		d = SPI_getbinval(tup, desc, 1, &isnull);
		memcpy(&g->grant_id, DatumGetUUIDP(d), sizeof(pg_uuid_t));
		g->benefit_code = text_col(tup, desc, 2);
		g->name = text_col(tup, desc, 3);
		s = text_col(tup, desc, 4);
		g->kind = loyalty_capability_from_name(s);
		if (g->kind < CAP_ROOM_DISCOUNT)
			elog(ERROR, "benefit \"%s\" has an unknown kind \"%s\"", g->benefit_code, s);
		g->source = source_from_name(text_col(tup, desc, 5));
		g->min_tier = text_col(tup, desc, 6);
		g->store_code = text_col(tup, desc, 7);
		g->campaign = text_col(tup, desc, 8);
		g->valid_from = DatumGetTimestampTz(SPI_getbinval(tup, desc, 9, &isnull));
		g->valid_until = DatumGetTimestampTz(SPI_getbinval(tup, desc, 10, &isnull));
		d = SPI_getbinval(tup, desc, 11, &isnull);
		g->params = DatumGetJsonbPCopy(d);
		d = SPI_getbinval(tup, desc, 12, &isnull);
		g->use_limit = isnull ? 0 : DatumGetInt32(d);
		g->limit_per = limit_from_name(text_col(tup, desc, 13));
		g->code_text = cstring_to_text(g->benefit_code);
		g->name_text = cstring_to_text(g->name);
		g->kind_text = cstring_to_text(loyalty_capability_names[g->kind]);
		g->source_text = cstring_to_text(loyalty_benefit_source_names[g->source]);
		g->reason_text = cstring_to_text(loyalty_benefit_reason(g));
		g->limit_per_text = g->use_limit > 0 ?
			cstring_to_text(loyalty_benefit_limit_names[g->limit_per]) : NULL;
	}
	catalog.grants = grants;
	catalog.ngrants = (int) n;

	MemoryContextSwitchTo(oldcxt);
	ret = SPI_execute("SELECT risk_code, freezes FROM loyalty.risk_type", false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading loyalty.risk_type failed: %s", SPI_result_code_string(ret));
	MemoryContextSwitchTo(cxt);
	catalog.nrisk_types = (int) SPI_processed;
	catalog.risk_types = palloc0(sizeof(BenefitRiskType) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;

		catalog.risk_types[i].risk_code = text_col(tup, SPI_tuptable->tupdesc, 1);
		catalog.risk_types[i].freezes =
			loyalty_capability_mask(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
	}
	MemoryContextSwitchTo(oldcxt);
	lspi_finish();

	MemoryContextSetParent(cxt, CacheMemoryContext);
	if (catalog_cxt != NULL)
		MemoryContextDelete(catalog_cxt);
	catalog_cxt = cxt;
	catalog_valid = true;
}

/*
 * loyalty_risk_type_freezes
 *		What an unresolved tag of this risk type freezes (CAP_BIT mask).
 */
uint32
loyalty_risk_type_freezes(const BenefitCatalog *cat, const char *risk_code)
{
	int			i;

	for (i = 0; i < cat->nrisk_types; i++)
		if (strcmp(cat->risk_types[i].risk_code, risk_code) == 0)
			return cat->risk_types[i].freezes;
	return 0;
}

/*
 * loyalty_benefit_catalog
 *		The current catalogue.  The pointer is valid until the next call;
 *		do not keep it across transactions.
 */
const BenefitCatalog *
loyalty_benefit_catalog(void)
{
	if (!OidIsValid(benefit_relid) || !OidIsValid(grant_relid) ||
		!OidIsValid(risk_type_relid))
	{
		benefit_relid = loyalty_relid("benefit");
		grant_relid = loyalty_relid("benefit_grant");
		risk_type_relid = loyalty_relid("risk_type");
		catalog_valid = false;
	}
	if (!catalog_valid)
		load_catalog();
	return &catalog;
}

/*
 * loyalty_benefit_reason
 *		Why a grant applies, for people: "tier gold or above", "store szx",
 *		"campaign spring_2026 at store szx for tier silver or above".
 */
char *
loyalty_benefit_reason(const BenefitGrant *g)
{
	StringInfoData buf;

	initStringInfo(&buf);
	switch (g->source)
	{
		case SOURCE_TIER:
			appendStringInfo(&buf, "tier %s or above", g->min_tier);
			break;
		case SOURCE_STORE:
			appendStringInfo(&buf, "store %s", g->store_code);
			break;
		case SOURCE_CAMPAIGN:
			appendStringInfo(&buf, "campaign %s", g->campaign);
			if (g->store_code != NULL)
				appendStringInfo(&buf, " at store %s", g->store_code);
			break;
	}
	if (g->source != SOURCE_TIER && g->min_tier != NULL)
		appendStringInfo(&buf, " for tier %s or above", g->min_tier);
	return buf.data;
}
