/*-------------------------------------------------------------------------
 *
 * risk_cache.c
 *	  The unresolved risk tags of the whole chain, cached per backend.
 *
 * Unresolved tags are few (a violation is raised rarely and resolved
 * soon), but loyalty.benefits() asks about them on every call.  This cache
 * holds every unresolved tag in a hash table keyed by member, so that the
 * common question ("is this member frozen now?") reads no table at all.
 *
 * Freshness: a statement trigger on loyalty.risk_tag sends a relcache
 * invalidation when tags are raised or resolved (cache_invalidate.c), which marks
 * the cache stale; callers run AcceptInvalidationMessages() first (cheap
 * when nothing is queued), so a tag committed by another backend, or
 * written earlier in this transaction, is seen by the next call, also in
 * the middle of a transaction.  The cache is rebuilt with a fresh snapshot.
 * It answers only for "now": times before the current transaction started
 * are answered from the table (benefit_member.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "benefit.h"
#include "risk_cache.h"
#include "cache.h"
#include "spi.h"

typedef struct RiskCacheEntry
{
	pg_uuid_t	member_id;		/* hash key */
	int			ntags;
	BenefitTag *tags;			/* in raising order; freezes left 0 */
} RiskCacheEntry;

static HTAB *risk_cache = NULL;
static MemoryContext risk_cache_cxt = NULL;
static bool risk_cache_valid = false;
static Oid	risk_tag_relid = InvalidOid;

/*
 * risk_cache_relcache_cb
 *		Mark the cache stale when loyalty.risk_tag changes.
 */
static void
risk_cache_relcache_cb(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == risk_tag_relid)
	{
		risk_cache_valid = false;
		risk_tag_relid = InvalidOid;
	}
}

/*
 * loyalty_risk_cache_init
 *		Register the invalidation callback (from loyalty_benefit_cache_init).
 */
void
loyalty_risk_cache_init(void)
{
	CacheRegisterRelcacheCallback(risk_cache_relcache_cb, (Datum) 0);
}

/*
 * load_risk_cache
 *		Read every unresolved tag into a fresh hash table and swap it in.
 */
static void
load_risk_cache(void)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	MemoryContext cxt;
	HASHCTL		ctl;
	HTAB	   *hash;
	uint64		i;
	int			ret;
	RiskCacheEntry *entry = NULL;

	risk_tag_relid = loyalty_relid("risk_tag");
	lspi_connect(LSPI_READ_WRITE);
	/* not read-only: a fresh snapshot, newer than the invalidation */
	ret = SPI_execute("SELECT member_id, tag_id, risk_code, raised_at "
					  "  FROM loyalty.risk_tag WHERE resolved_at IS NULL "
					  " ORDER BY member_id, raised_at, tag_id",
					  false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading loyalty.risk_tag failed: %s", SPI_result_code_string(ret));

	/* built under the caller's context, so that an error frees it */
	cxt = AllocSetContextCreate(oldcxt, "loyalty risk tag cache", ALLOCSET_SMALL_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(pg_uuid_t);
	ctl.entrysize = sizeof(RiskCacheEntry);
	ctl.hcxt = cxt;
	hash = hash_create("loyalty unresolved risk tags", Max(SPI_processed, 16), &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	MemoryContextSwitchTo(cxt);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		pg_uuid_t  *member = DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
		BenefitTag *t;
		bool		found;

		if (entry == NULL || memcmp(&entry->member_id, member, sizeof(pg_uuid_t)) != 0)
		{
			entry = hash_search(hash, member, HASH_ENTER, &found);
			entry->ntags = 0;
			entry->tags = NULL;
		}
		entry->tags = entry->tags
			? repalloc(entry->tags, sizeof(BenefitTag) * (entry->ntags + 1))
			: palloc(sizeof(BenefitTag));
		t = &entry->tags[entry->ntags++];
		memset(t, 0, sizeof(*t));
		memcpy(&t->tag_id, DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull)), sizeof(pg_uuid_t));
		text_to_cstring_buffer(DatumGetTextPP(SPI_getbinval(tup, desc, 3, &isnull)),
							   t->risk_code, sizeof(t->risk_code));
		t->raised_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
	}
	MemoryContextSwitchTo(oldcxt);
	lspi_finish();

	MemoryContextSetParent(cxt, CacheMemoryContext);
	if (risk_cache_cxt != NULL)
		MemoryContextDelete(risk_cache_cxt);
	risk_cache_cxt = cxt;
	risk_cache = hash;
	risk_cache_valid = true;
}

/*
 * loyalty_risk_cache_lookup
 *		The member's unresolved tags (in raising order) and their number;
 *		0 and NULL if none.  The array belongs to the cache: copy what you
 *		keep beyond the next call.
 */
int
loyalty_risk_cache_lookup(const pg_uuid_t *member_id, const BenefitTag **tags)
{
	RiskCacheEntry *entry;

	AcceptInvalidationMessages();
	if (!risk_cache_valid)
		load_risk_cache();
	entry = hash_search(risk_cache, member_id, HASH_FIND, NULL);
	*tags = entry ? entry->tags : NULL;
	return entry ? entry->ntags : 0;
}
