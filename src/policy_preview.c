/*-------------------------------------------------------------------------
 *
 * policy_preview.c
 *	  What a proposed policy document would change, without changing
 *	  anything (docs/policy.md, "Previewing a policy"):
 *
 *	loyalty.policy_preview(document jsonb, at timestamptz, stays_since
 *		timestamptz, max_stays integer, member_ids uuid[]) returns a set of
 *		rows:
 *
 *	  section 'tier'    one row per active member whose tier differs: the
 *	                    tier the policy in effect at "at" gives the member's
 *	                    activity (tier_from) and the one the proposed policy
 *	                    gives it (tier_to); change is the difference of ranks
 *	  section 'stay'    one row per sampled stay (checked out between
 *	                    stays_since and at, newest first, at most max_stays):
 *	                    points_from and points_to of base, elite bonus and
 *	                    campaigns under each policy; change = to - from
 *	  section 'benefit' one row per benefit gained (+1) or lost (-1) by the
 *	                    members of each tier move of the 'tier' section;
 *	                    members is how many make that move
 *
 * A member's tier under a policy is evaluated as the requalification
 * does: the highest tier whose rule the counters of the policy's
 * qualification period containing "at" meet, raised to the member's floor
 * (lifetime nights, manual grants), with the same C functions (src/tier.c,
 * src/tier_floor.c); earning with earning_compute (src/earning.c), with
 * the member's current tier on both sides.  Reads are read-only; the
 * earning of the stay sample runs in a subtransaction that is rolled back
 * (a campaign with an overall cap is locked and its total raised).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "benefit.h"
#include "benefit_resolve.h"
#include "earning.h"
#include "policy.h"
#include "roles_caller.h"
#include "spi.h"
#include "tier.h"

PG_FUNCTION_INFO_V1(loyalty_policy_preview);

#define PREVIEW_NCOLS		10
#define PREVIEW_MAX_STAYS	100000

/* a tier move of the 'tier' section, and how many members make it */
typedef struct TierMove
{
	char		from[LOYALTY_CODE_LEN];
	char		to[LOYALTY_CODE_LEN];
	int64		members;
} TierMove;

/* a sampled stay, copied out of SPI's tuple table */
typedef struct SampledStay
{
	pg_uuid_t	stay_id;
	pg_uuid_t	member_id;
	char		store[LOYALTY_CODE_LEN];
	char		brand[LOYALTY_CODE_LEN];
	Datum		revenue;		/* numeric, in the caller's memory context */
	TimestampTz occurred_at;
} SampledStay;

/*
 * preview_tier_rank
 *		The rank a policy gives a member at "at": the qualification of the
 *		period containing at, raised to the member's floor.
 */
static int
preview_tier_rank(const TierMember *m, const LoyaltyPolicy *p, TimestampTz at)
{
	DateADT		start,
				end;
	TierCounters c;
	bool		has_until;
	TimestampTz until;
	char		why[96];
	int			rank,
				floor;

	tier_period_bounds(p, m->local_date, m->enrolled_local, &start, &end);
	tier_counters_sum(&m->member_id, start, end, false, at, &c);
	rank = tier_qualified_rank(p, &c);
	floor = tier_floor_rank(m, p, at, &has_until, &until, why, sizeof(why));
	return Max(rank, floor);
}

/*
 * preview_points
 *		Points of one stay under a policy: base, elite bonus (the member's
 *		current tier) and campaigns; milestones are not per stay.
 */
static int64
preview_points(const LoyaltyPolicy *p, TierMember *m, const SampledStay *s)
{
	EarnInput	in;
	EarnResult *r = palloc0(sizeof(EarnResult));
	int64		total = 0;
	int			i;

	in.policy = p;
	in.member = m;
	in.store = s->store;
	in.brand = s->brand;
	in.eligible_minor = earning_amount_minor(s->revenue, p->currency_scale, "revenue");
	in.occurred_at = s->occurred_at;
	earning_compute(&in, r);
	for (i = 0; i < r->nlines; i++)
		total += r->lines[i].points;
	pfree(r);
	return total;
}

/*
 * put_row
 *		Append one result row; NULL for unset columns.
 */
static void
put_row(ReturnSetInfo *rsinfo, const char *section, const pg_uuid_t *member,
		const pg_uuid_t *stay, const char *tier_from, const char *tier_to,
		const char *benefit, const int64 *from, const int64 *to,
		int64 change, const int64 *members)
{
	Datum		values[PREVIEW_NCOLS];
	bool		nulls[PREVIEW_NCOLS];
	pg_uuid_t  *u;

	memset(nulls, true, sizeof(nulls));
	values[0] = CStringGetTextDatum(section);
	nulls[0] = false;
	if (member)
	{
		u = palloc(sizeof(pg_uuid_t));
		*u = *member;
		values[1] = UUIDPGetDatum(u);
		nulls[1] = false;
	}
	if (stay)
	{
		u = palloc(sizeof(pg_uuid_t));
		*u = *stay;
		values[2] = UUIDPGetDatum(u);
		nulls[2] = false;
	}
	if (tier_from)
	{
		values[3] = CStringGetTextDatum(tier_from);
		nulls[3] = false;
	}
	if (tier_to)
	{
		values[4] = CStringGetTextDatum(tier_to);
		nulls[4] = false;
	}
	if (benefit)
	{
		values[5] = CStringGetTextDatum(benefit);
		nulls[5] = false;
	}
	if (from)
	{
		values[6] = Int64GetDatum(*from);
		nulls[6] = false;
	}
	if (to)
	{
		values[7] = Int64GetDatum(*to);
		nulls[7] = false;
	}
	values[8] = Int64GetDatum(change);
	nulls[8] = false;
	if (members)
	{
		values[9] = Int64GetDatum(*members);
		nulls[9] = false;
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * preview_tiers
 *		The 'tier' section; fills moves (at most LOYALTY_MAX_TIERS squared).
 */
static void
preview_tiers(ReturnSetInfo *rsinfo, const LoyaltyPolicy *cur,
			  const LoyaltyPolicy *prop, TimestampTz at, Datum member_ids,
			  bool all_members, TierMove *moves, int *nmoves)
{
	Oid			types[1] = {UUIDARRAYOID};
	Datum		values[1];
	char		nulls[1];
	pg_uuid_t  *ids;
	uint64		n,
				i;

	values[0] = member_ids;
	nulls[0] = all_members ? 'n' : ' ';
	lspi_exec("SELECT member_id FROM loyalty.member WHERE status = 'active'"
							  "   AND ($1 IS NULL OR member_id = ANY ($1)) ORDER BY member_id",
							  1, types, values, nulls, true, 0, SPI_OK_SELECT);
	n = SPI_processed;
	ids = palloc(sizeof(pg_uuid_t) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		ids[i] = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i],
											  SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);

	for (i = 0; i < n; i++)
	{
		TierMember	m;
		int			rf,
					rt,
					k;
		const char *cf,
				   *ct;

		CHECK_FOR_INTERRUPTS();
		tier_member_lock(&ids[i], at, false, &m);
		rf = preview_tier_rank(&m, cur, at);
		rt = preview_tier_rank(&m, prop, at);
		cf = cur->tiers[rf].code;
		ct = prop->tiers[rt].code;
		if (strcmp(cf, ct) == 0)
			continue;
		put_row(rsinfo, "tier", &ids[i], NULL, cf, ct, NULL, NULL, NULL, rt - rf, NULL);
		for (k = 0; k < *nmoves; k++)
			if (strcmp(moves[k].from, cf) == 0 && strcmp(moves[k].to, ct) == 0)
				break;
		if (k == *nmoves)
		{
			strlcpy(moves[k].from, cf, LOYALTY_CODE_LEN);
			strlcpy(moves[k].to, ct, LOYALTY_CODE_LEN);
			moves[k].members = 0;
			(*nmoves)++;
		}
		moves[k].members++;
	}
}

/*
 * preview_stays
 *		The 'stay' section.
 */
static void
preview_stays(ReturnSetInfo *rsinfo, const LoyaltyPolicy *cur,
			  const LoyaltyPolicy *prop, TimestampTz since, TimestampTz at,
			  int max_stays, Datum member_ids, bool all_members)
{
	Oid			types[4] = {TIMESTAMPTZOID, TIMESTAMPTZOID, INT4OID, UUIDARRAYOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	SampledStay *stays;
	uint64		n,
				i;
	int64	   *from,
			   *to;
	char	   *tiers;
	MemoryContext oldcxt;
	ResourceOwner oldowner;

	if (max_stays == 0)
		return;
	values[0] = TimestampTzGetDatum(since);
	values[1] = TimestampTzGetDatum(at);
	values[2] = Int32GetDatum(max_stays);
	values[3] = member_ids;
	nulls[3] = all_members ? 'n' : ' ';
	lspi_exec(
							  "SELECT s.stay_id, s.member_id, s.store_code, st.brand,"
							  "       s.room_revenue + s.other_revenue,"
							  "       coalesce(s.occurred_at, s.check_out::timestamptz) AS t"
							  "  FROM loyalty.stay s JOIN loyalty.store st ON st.store_code = s.store_code"
							  "  JOIN loyalty.member m ON m.member_id = s.member_id"
							  " WHERE s.status = 'checked_out' AND m.status = 'active'"
							  "   AND coalesce(s.occurred_at, s.check_out::timestamptz) >= $1"
							  "   AND coalesce(s.occurred_at, s.check_out::timestamptz) <= $2"
							  "   AND ($4 IS NULL OR s.member_id = ANY ($4))"
							  " ORDER BY t DESC, s.stay_id LIMIT $3",
							  4, types, values, nulls, true, 0, SPI_OK_SELECT);
	n = SPI_processed;
	stays = palloc0(sizeof(SampledStay) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		stays[i].stay_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
		stays[i].member_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull));
		text_to_cstring_buffer(DatumGetTextPP(SPI_getbinval(tup, desc, 3, &isnull)),
							   stays[i].store, LOYALTY_CODE_LEN);
		text_to_cstring_buffer(DatumGetTextPP(SPI_getbinval(tup, desc, 4, &isnull)),
							   stays[i].brand, LOYALTY_CODE_LEN);
		stays[i].revenue = SPI_datumTransfer(SPI_getbinval(tup, desc, 5, &isnull), false, -1);
		stays[i].occurred_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 6, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);

	/*
	 * Earning takes a row lock on a campaign with an overall cap and raises
	 * its total: compute in a subtransaction that is rolled back, so the
	 * preview writes nothing, and emit the rows after it.
	 */
	from = palloc0(sizeof(int64) * Max(n, 1));
	to = palloc0(sizeof(int64) * Max(n, 1));
	tiers = palloc0(LOYALTY_CODE_LEN * Max(n, 1));
	oldcxt = CurrentMemoryContext;
	oldowner = CurrentResourceOwner;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	for (i = 0; i < n; i++)
	{
		TierMember	m;

		CHECK_FOR_INTERRUPTS();
		tier_member_lock(&stays[i].member_id, stays[i].occurred_at, false, &m);
		from[i] = preview_points(cur, &m, &stays[i]);
		to[i] = preview_points(prop, &m, &stays[i]);
		strlcpy(tiers + i * LOYALTY_CODE_LEN, m.tier, LOYALTY_CODE_LEN);
	}
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;

	for (i = 0; i < n; i++)
		put_row(rsinfo, "stay", &stays[i].member_id, &stays[i].stay_id,
				tiers + i * LOYALTY_CODE_LEN, NULL, NULL, &from[i], &to[i],
				to[i] - from[i], NULL);
}

/*
 * preview_benefits
 *		The 'benefit' section: for each tier move, the chain benefits
 *		gained and lost (loyalty_benefit_tier_change, src/benefit_resolve.c).
 */
static void
preview_benefits(ReturnSetInfo *rsinfo, const TierMove *moves, int nmoves,
				 TimestampTz at)
{
	Oid			types[1] = {JSONBOID};
	int			k;

	for (k = 0; k < nmoves; k++)
	{
		Jsonb	   *change = loyalty_benefit_tier_change(moves[k].from, moves[k].to, at);
		Datum		values[1];
		uint64		i;

		values[0] = JsonbPGetDatum(change);
		lspi_exec(
								  "SELECT b->>'benefit_code', 1 FROM pg_catalog.jsonb_array_elements($1->'gained') b"
								  " UNION ALL "
								  "SELECT b->>'benefit_code', -1 FROM pg_catalog.jsonb_array_elements($1->'lost') b"
								  " ORDER BY 2 DESC, 1",
								  1, types, values, NULL, true, 0, SPI_OK_SELECT);
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			char	   *code = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			int32		sign = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 2, &isnull));

			put_row(rsinfo, "benefit", NULL, NULL, moves[k].from, moves[k].to, code,
					NULL, NULL, sign, &moves[k].members);
		}
	}
}

/*
 * loyalty.policy_preview(document jsonb, at timestamptz DEFAULT now(),
 *		stays_since timestamptz DEFAULT NULL, max_stays integer DEFAULT 1000,
 *		member_ids uuid[] DEFAULT NULL)
 *		See the file header; member_ids limits both sections to those
 *		members (NULL: every active member).  HQ crm, marketing and dba.
 */
Datum
loyalty_policy_preview(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Jsonb	   *doc;
	char	   *text;
	LoyaltyPolicy *prop;
	LoyaltyPolicy *cur;
	TimestampTz at,
				since;
	int32		max_stays;
	TierMove   *moves;
	int			nmoves = 0;
	bool		all_members = PG_ARGISNULL(4);
	Datum		member_ids = all_members ? (Datum) 0 : PG_GETARG_DATUM(4);

	loyalty_require_department(loyalty_caller(),
							   DEPT_BIT(DEPT_CRM) | DEPT_BIT(DEPT_MARKETING) | DEPT_BIT(DEPT_DBA));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("policy document must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("at must not be null")));
	at = PG_GETARG_TIMESTAMPTZ(1);
	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("at must be a finite time")));
	if (PG_ARGISNULL(2))
		since = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
														TimestampTzGetDatum(at),
														DirectFunctionCall3(interval_in,
																			CStringGetDatum("90 days"),
																			ObjectIdGetDatum(InvalidOid),
																			Int32GetDatum(-1))));
	else
		since = PG_GETARG_TIMESTAMPTZ(2);
	if (TIMESTAMP_NOT_FINITE(since) || since > at)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stays_since must be a finite time not after at")));
	max_stays = PG_ARGISNULL(3) ? 1000 : PG_GETARG_INT32(3);
	if (max_stays < 0 || max_stays > PREVIEW_MAX_STAYS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_stays must be between 0 and %d", PREVIEW_MAX_STAYS)));

	/* the proposed policy: the same parser and errors as policy_validate */
	doc = PG_GETARG_JSONB_P(0);
	text = JsonbToCString(NULL, &doc->root, VARSIZE(doc));
	prop = palloc0(sizeof(LoyaltyPolicy));
	loyalty_policy_parse(text, strlen(text), prop);

	InitMaterializedSRF(fcinfo, 0);

	lspi_connect(LSPI_READ_ONLY);
	cur = palloc(sizeof(LoyaltyPolicy));
	memcpy(cur, loyalty_policy_at(at), sizeof(LoyaltyPolicy));

	moves = palloc0(sizeof(TierMove) * LOYALTY_MAX_TIERS * LOYALTY_MAX_TIERS);
	preview_tiers(rsinfo, cur, prop, at, member_ids, all_members, moves, &nmoves);
	preview_stays(rsinfo, cur, prop, since, at, max_stays, member_ids, all_members);
	preview_benefits(rsinfo, moves, nmoves, at);
	lspi_finish();
	return (Datum) 0;
}
