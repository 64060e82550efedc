/*-------------------------------------------------------------------------
 *
 * earning_campaign.c
 *	  Campaigns: which apply to an activity, what they award, their caps,
 *	  and the trigger that keeps loyalty.campaign consistent.
 *
 * A campaign applies when the activity's time is in [starts_at, ends_at),
 * its store and brand pass the filters, and the member meets the
 * conditions (birthday month in the member's time zone, tier held before
 * the activity, an unresolved tag), and, for a campaign targeted at a
 * segment, is in its audience outside the control group, and, for a
 * campaign that requires registration, registered before the activity
 * (docs/segments.md).  Campaigns apply in priority order
 * (lowest number first), each computed on base points only, so the order
 * decides only who gets a capped budget first.  Caps: campaign points per
 * member (the member row is locked, so the sum is exact) and overall (the
 * campaign row is locked while its total is raised, so awards of one
 * capped campaign serialise).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "earning.h"
#include "earning_campaign.h"
#include "earning_line.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_campaign_check);

/* advisory lock key serialising campaign edits: "LOYC" */
#define CAMPAIGN_LOCK_KEY	INT64CONST(0x4c4f5943)

static SPIPlanPtr applicable_plan = NULL;
static SPIPlanPtr cap_lock_plan = NULL;
static SPIPlanPtr cap_update_plan = NULL;
static SPIPlanPtr conflict_plan = NULL;

/*
 * campaign_apply
 *		Append one line per campaign that applies, in priority order.
 */
void
campaign_apply(const EarnInput *in, int64 base, EarnResult *out)
{
	Oid			types[6] = {UUIDOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, BOOLOID, TEXTOID};
	Datum		values[6];
	TierMember *m = in->member;
	bool		birthday = m->birth_month != 0 &&
		m->birth_month == loyalty_date_month(m->local_date);
	int			n,
				i;
	SPITupleTable *tt;

	values[0] = UUIDPGetDatum(&m->member_id);
	values[1] = TimestampTzGetDatum(in->occurred_at);
	values[2] = CStringGetTextDatum(in->store);
	values[3] = CStringGetTextDatum(in->brand);
	values[4] = BoolGetDatum(birthday);
	values[5] = CStringGetTextDatum(m->tier);
	n = lspi_run(lspi_plan(&applicable_plan,
								 "SELECT c.campaign_id, c.code, c.kind, c.multiplier_percent, c.fixed_points, "
								 "       c.cap_per_member, c.cap_total, "
								 "       (SELECT coalesce(sum(l.points), 0)::int8 FROM loyalty.earning_line l "
								 "         WHERE l.member_id = $1 AND l.campaign_id = c.campaign_id) "
								 "  FROM loyalty.campaign c "
								 " WHERE c.active AND c.starts_at <= $2 AND c.ends_at > $2 "
								 "   AND (c.stores IS NULL OR $3 = ANY (c.stores)) "
								 "   AND (c.brands IS NULL OR $4 = ANY (c.brands)) "
								 "   AND (NOT c.birthday_month OR $5) "
								 "   AND (c.tiers IS NULL OR $6 = ANY (c.tiers)) "
								 "   AND (c.tag IS NULL OR EXISTS (SELECT 1 FROM loyalty.member_tag t "
								 "         WHERE t.member_id = $1 AND t.code = c.tag AND t.retired_at IS NULL)) "
								 /* targeting and registration: src/sql/72_audience.sql */
								 "   AND (c.segment_code IS NULL OR EXISTS (SELECT 1 FROM loyalty.campaign_audience a "
								 "         WHERE a.campaign_id = c.campaign_id AND a.member_id = $1 AND NOT a.control)) "
								 "   AND (NOT c.registration_required OR EXISTS (SELECT 1 FROM loyalty.campaign_registration g "
								 "         WHERE g.campaign_id = c.campaign_id AND g.member_id = $1 AND g.registered_at <= $2)) "
								 " ORDER BY c.priority, c.code",
								 6, types),
					values, NULL, true, 0, SPI_OK_SELECT);
	tt = SPI_tuptable;
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = tt->vals[i];
		TupleDesc	desc = tt->tupdesc;
		bool		isnull;
		pg_uuid_t	id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *code = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		char	   *kind = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		Datum		d;
		int64		points;
		EarnLine   *l;

		if (strcmp(kind, "multiplier") == 0)
		{
			int32		pct = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));

			if (pg_mul_s64_overflow(base, pct - 100, &points))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("points out of range")));
			points /= 100;
		}
		else
			points = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));

		/* cap per member */
		d = SPI_getbinval(tup, desc, 6, &isnull);
		if (!isnull)
		{
			int64		left = DatumGetInt64(d) -
				DatumGetInt64(SPI_getbinval(tup, desc, 8, &isnull));

			points = Min(points, Max(left, 0));
		}
		if (points <= 0)
			continue;

		/* cap overall: lock the campaign row, then raise its total */
		d = SPI_getbinval(tup, desc, 7, &isnull);
		if (!isnull)
		{
			Oid			ltypes[2] = {UUIDOID, INT8OID};
			Datum		lvalues[2];
			int64		awarded;

			lvalues[0] = UUIDPGetDatum(&id);
			lspi_run(lspi_plan(&cap_lock_plan,
									 "SELECT cap_total - awarded_total FROM loyalty.campaign "
									 " WHERE campaign_id = $1 FOR UPDATE", 1, ltypes),
						lvalues, NULL, false, 1, SPI_OK_SELECT);
			if (SPI_processed == 0)
				continue;
			awarded = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1, &isnull));
			points = Min(points, Max(awarded, 0));
			if (points <= 0)
				continue;
			lvalues[1] = Int64GetDatum(points);
			lspi_run(lspi_plan(&cap_update_plan,
									 "UPDATE loyalty.campaign SET awarded_total = awarded_total + $2 "
									 " WHERE campaign_id = $1", 2, ltypes),
						lvalues, NULL, false, 0, SPI_OK_UPDATE);
		}

		l = earning_add_line(out, EARN_CAMPAIGN, points);
		l->has_campaign = true;
		l->campaign_id = id;
		snprintf(l->rule, sizeof(l->rule), "campaign: %s", code);
	}
}

/*
 * field
 *		A column of the trigger's new row, by name.
 */
static Datum
field(TriggerData *td, HeapTuple tup, const char *name, bool *isnull)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);

	return heap_getattr(tup, SPI_fnumber(desc, name), desc, isnull);
}

/*
 * loyalty._campaign_check()
 *		BEFORE INSERT OR UPDATE row trigger on loyalty.campaign: windows
 *		that end after they start, consistent kinds, sane caps and no two
 *		active campaigns with overlapping windows and the same priority
 *		(their order would be undefined).  Edits are serialised by an
 *		advisory lock so that two concurrent edits cannot both pass.
 */
Datum
loyalty_campaign_check(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	bool		isnull,
				n1,
				n2;
	TimestampTz starts,
				ends;
	char	   *kind;
	Datum		d;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!TRIGGER_FIRED_BEFORE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty._campaign_check() must be a BEFORE ROW trigger")));
	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;

	starts = DatumGetTimestampTz(field(td, tup, "starts_at", &isnull));
	ends = DatumGetTimestampTz(field(td, tup, "ends_at", &isnull));
	if (ends <= starts)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("campaign window ends at %s, not after it starts at %s",
						timestamptz_to_str(ends), timestamptz_to_str(starts)),
				 errhint("Swap starts_at and ends_at.")));

	kind = TextDatumGetCString(field(td, tup, "kind", &isnull));
	d = field(td, tup, "multiplier_percent", &n1);
	(void) field(td, tup, "fixed_points", &n2);
	if (strcmp(kind, "multiplier") == 0 &&
		(n1 || !n2 || DatumGetInt32(d) <= 100 || DatumGetInt32(d) > 1000))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a multiplier campaign needs multiplier_percent between 101 and 1000 and no fixed_points"),
				 errdetail("multiplier_percent 200 doubles base points.")));
	d = field(td, tup, "fixed_points", &n2);
	if (strcmp(kind, "fixed") == 0 &&
		(n2 || !n1 || DatumGetInt64(d) <= 0 || DatumGetInt64(d) > LOYALTY_POLICY_MAX_NUMBER))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a fixed campaign needs fixed_points between 1 and %lld and no multiplier_percent",
						(long long) LOYALTY_POLICY_MAX_NUMBER)));
	d = field(td, tup, "cap_per_member", &isnull);
	if (!isnull && DatumGetInt64(d) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cap_per_member must be positive")));
	d = field(td, tup, "cap_total", &isnull);
	if (!isnull && DatumGetInt64(d) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cap_total must be positive")));

	DirectFunctionCall1(pg_advisory_xact_lock_int8, Int64GetDatum(CAMPAIGN_LOCK_KEY));

	(void) field(td, tup, "active", &isnull);
	if (DatumGetBool(field(td, tup, "active", &isnull)))
	{
		Oid			types[4] = {UUIDOID, INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
		Datum		values[4];

		values[0] = field(td, tup, "campaign_id", &isnull);
		values[1] = field(td, tup, "priority", &isnull);
		values[2] = TimestampTzGetDatum(starts);
		values[3] = TimestampTzGetDatum(ends);
		lspi_connect(LSPI_READ_WRITE);
		if (lspi_run(lspi_plan(&conflict_plan,
									 "SELECT code FROM loyalty.campaign "
									 " WHERE active AND campaign_id <> $1 AND priority = $2 "
									 "   AND starts_at < $4 AND ends_at > $3 LIMIT 1",
									 4, types),
						values, NULL, true, 1, SPI_OK_SELECT) > 0)
		{
			bool		cnull;
			char	   *other = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
																  SPI_tuptable->tupdesc, 1, &cnull));

			ereport(ERROR,
					(errcode(ERRCODE_EXCLUSION_VIOLATION),
					 errmsg("campaign priority %d conflicts with campaign \"%s\"",
							DatumGetInt32(values[1]), other),
					 errdetail("Both are active in overlapping windows with the same priority, so their order would be undefined."),
					 errhint("Give one of them another priority.")));
		}
		lspi_finish();
	}
	return PointerGetDatum(tup);
}
