/*-------------------------------------------------------------------------
 *
 * benefit_member.c
 *	  What benefit resolution needs to know about a member and a store,
 *	  read straight from the indexes.
 *
 * loyalty.benefits() runs on every check-in and every POS line, so it does
 * not go through SPI and the executor: the member row (by its primary
 * key), the member's risk tags (by risk_tag_member_idx) and the store (by
 * its primary key) are read with index scans under the statement's
 * snapshot, the way pg_cron reads cron.job.  The relation and index OIDs
 * are looked up once per backend and forgotten when any of them is
 * invalidated (for example by DROP EXTENSION).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/xact.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_collation_d.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "benefit.h"
#include "benefit_member.h"
#include "benefit_catalog.h"
#include "risk_cache.h"
#include "cache.h"

/* the relations read here, and their column numbers */
static struct
{
	bool		valid;
	Oid			member;
	Oid			member_pkey;
	Oid			risk_tag;
	Oid			risk_tag_member_idx;
	Oid			store;
	Oid			store_pkey;
	AttrNumber	m_tier;
	AttrNumber	m_status;
	AttrNumber	t_tag_id;
	AttrNumber	t_member_id;
	AttrNumber	t_risk_code;
	AttrNumber	t_raised_at;
	AttrNumber	t_resolved_at;
}			rels;

/*
 * member_relcache_cb
 *		Forget the OIDs when any of the relations changes or goes away.
 */
static void
member_relcache_cb(Datum arg, Oid relid)
{
	if (!rels.valid)
		return;
	if (relid == InvalidOid || relid == rels.member || relid == rels.member_pkey ||
		relid == rels.risk_tag || relid == rels.risk_tag_member_idx ||
		relid == rels.store || relid == rels.store_pkey)
		rels.valid = false;
}

/*
 * loyalty_benefit_member_init
 *		Register the invalidation callback (from loyalty_benefit_cache_init).
 */
void
loyalty_benefit_member_init(void)
{
	CacheRegisterRelcacheCallback(member_relcache_cb, (Datum) 0);
}

/*
 * attnum_of
 *		Column number of a column by name, or an error.
 */
static AttrNumber
attnum_of(Relation rel, const char *name)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	elog(ERROR, "column \"%s\" of \"%s\" not found", name, RelationGetRelationName(rel));
	return InvalidAttrNumber;	/* keep compiler quiet */
}

/*
 * required_relid
 *		OID of a relation of schema loyalty, or an error.
 */
static Oid
required_relid(const char *name)
{
	Oid			relid = loyalty_relid(name);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("relation loyalty.%s does not exist", name),
				 errhint("Is the loyalty extension installed?")));
	return relid;
}

/*
 * lookup_rels
 *		Fill rels.
 */
static void
lookup_rels(void)
{
	Relation	rel;

	rels.member = required_relid("member");
	rels.member_pkey = required_relid("member_pkey");
	rels.risk_tag = required_relid("risk_tag");
	rels.risk_tag_member_idx = required_relid("risk_tag_member_idx");
	rels.store = required_relid("store");
	rels.store_pkey = required_relid("store_pkey");

	rel = table_open(rels.member, AccessShareLock);
	rels.m_tier = attnum_of(rel, "tier");
	rels.m_status = attnum_of(rel, "status");
	table_close(rel, AccessShareLock);

	rel = table_open(rels.risk_tag, AccessShareLock);
	rels.t_tag_id = attnum_of(rel, "tag_id");
	rels.t_member_id = attnum_of(rel, "member_id");
	rels.t_risk_code = attnum_of(rel, "risk_code");
	rels.t_raised_at = attnum_of(rel, "raised_at");
	rels.t_resolved_at = attnum_of(rel, "resolved_at");
	table_close(rel, AccessShareLock);
	rels.valid = true;
}

/*
 * loyalty_store_exists
 *		True if loyalty.store has this store code (statement snapshot).
 */
bool
loyalty_store_exists(const char *store_code)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	bool		found;

	if (!rels.valid)
		lookup_rels();
	rel = table_open(rels.store, AccessShareLock);
	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   DEFAULT_COLLATION_OID, F_TEXTEQ,
						   CStringGetTextDatum(store_code));
	scan = systable_beginscan(rel, rels.store_pkey, true, GetActiveSnapshot(), 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * loyalty_benefit_member
 *		The member's tier and status, and the risk tags in effect at "at"
 *		(raised at or before it, not resolved by it) in raising order with
 *		what each freezes; with "current", the tags unresolved now (as last
 *		committed, or written by this transaction) whenever they were
 *		raised.  False if there is no such member.  Tags are palloc'd in the
 *		current memory context.
 *
 * A tag resolved before this transaction started cannot be in effect at or
 * after its start, so for such times (the common case: "now") the cache of
 * unresolved tags answers (risk_cache.c); earlier times read the table.
 */
bool
loyalty_benefit_member(const pg_uuid_t *member_id, TimestampTz at, bool current,
					   const BenefitCatalog *catalog, BenefitMember *out)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		isnull;
	int			allocated = 0;

	if (!rels.valid)
		lookup_rels();
	memset(out, 0, sizeof(*out));

	rel = table_open(rels.member, AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(member_id));
	scan = systable_beginscan(rel, rels.member_pkey, true, GetActiveSnapshot(), 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		Datum		d;

		d = heap_getattr(tup, rels.m_tier, RelationGetDescr(rel), &isnull);
		text_to_cstring_buffer(DatumGetTextPP(d), out->tier, sizeof(out->tier));
		d = heap_getattr(tup, rels.m_status, RelationGetDescr(rel), &isnull);
		out->active = (VARSIZE_ANY_EXHDR(DatumGetTextPP(d)) == 6 &&
					   memcmp(VARDATA_ANY(DatumGetTextPP(d)), "active", 6) == 0);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!HeapTupleIsValid(tup))
		return false;

	/* now or later: the chain's unresolved tags, cached */
	if (current || at >= GetCurrentTransactionStartTimestamp())
	{
		const BenefitTag *cached;
		int			n = loyalty_risk_cache_lookup(member_id, &cached);
		int			i;

		if (n > 0)
			out->tags = palloc(sizeof(BenefitTag) * n);
		for (i = 0; i < n; i++)
		{
			if (!current && cached[i].raised_at > at)
				continue;
			out->tags[out->ntags] = cached[i];
			out->tags[out->ntags].freezes =
				loyalty_risk_type_freezes(catalog, cached[i].risk_code);
			out->ntags++;
		}
		return true;
	}

	/* the past: every tag of the member, from the table */
	rel = table_open(rels.risk_tag, AccessShareLock);
	ScanKeyInit(&key, rels.t_member_id, BTEqualStrategyNumber, F_UUID_EQ,
				UUIDPGetDatum(member_id));
	scan = systable_beginscan(rel, rels.risk_tag_member_idx, true, GetActiveSnapshot(), 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		TupleDesc	desc = RelationGetDescr(rel);
		TimestampTz raised = DatumGetTimestampTz(heap_getattr(tup, rels.t_raised_at, desc, &isnull));
		Datum		resolved = heap_getattr(tup, rels.t_resolved_at, desc, &isnull);
		BenefitTag *t;

		if (raised > at || (!isnull && DatumGetTimestampTz(resolved) <= at))
			continue;
		if (out->ntags == allocated)
		{
			allocated = allocated ? allocated * 2 : 4;
			out->tags = out->tags ? repalloc(out->tags, sizeof(BenefitTag) * allocated)
				: palloc(sizeof(BenefitTag) * allocated);
		}
		t = &out->tags[out->ntags++];
		memcpy(&t->tag_id, DatumGetUUIDP(heap_getattr(tup, rels.t_tag_id, desc, &isnull)),
			   sizeof(pg_uuid_t));
		text_to_cstring_buffer(DatumGetTextPP(heap_getattr(tup, rels.t_risk_code, desc, &isnull)),
							   t->risk_code, sizeof(t->risk_code));
		t->raised_at = raised;
		t->freezes = loyalty_risk_type_freezes(catalog, t->risk_code);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return true;
}
