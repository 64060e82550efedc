/*-------------------------------------------------------------------------
 *
 * tier_api.c
 *	  SQL functions of the tier engine: manual tier grants and counters as
 *	  of any time.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audit.h"
#include "roles_caller.h"
#include "tier.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_tier_grant);
PG_FUNCTION_INFO_V1(loyalty_counters_at);

static SPIPlanPtr grant_insert_plan = NULL;

/*
 * loyalty.tier_grant(member_id uuid, tier text, reason text,
 *		expires_at timestamptz) returns uuid
 *		Grant a tier by hand (CRM, DBA).  The grant is a floor the
 *		downgrade batch respects until it expires; a grant above the tier
 *		held upgrades the member at once, valid until the grant expires
 *		(NULL: no end).
 */
Datum
loyalty_tier_grant(PG_FUNCTION_ARGS)
{
	pg_uuid_t	member_id;
	char	   *tier;
	char	   *reason;
	bool		has_expiry = !PG_ARGISNULL(3);
	TimestampTz expires = has_expiry ? PG_GETARG_TIMESTAMPTZ(3) : 0;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	const LoyaltyPolicy *p;
	const TierPolicy *t;
	TierMember	m;
	Oid			types[4] = {UUIDOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	pg_uuid_t  *grant_id = palloc(sizeof(pg_uuid_t));
	bool		isnull;
	int			r;
	char		why[600];

	loyalty_require_department(loyalty_caller(), DEPT_BIT(DEPT_CRM) | DEPT_BIT(DEPT_DBA));
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("member_id, tier and reason must not be null")));
	member_id = *PG_GETARG_UUID_P(0);
	tier = TextDatumGetCString(PG_GETARG_DATUM(1));
	reason = TextDatumGetCString(PG_GETARG_DATUM(2));
	if (strspn(reason, " \t\n") == strlen(reason) || strlen(reason) > 500)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a tier grant needs a reason of 1 to 500 characters")));
	if (has_expiry && expires <= now)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a tier grant must expire in the future")));

	lspi_connect(LSPI_READ_WRITE);
	p = loyalty_policy_at(now);
	t = loyalty_policy_tier(p, tier);
	if (t == NULL || t->rank == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a tier above the base tier of the policy in effect", tier)));
	tier_member_lock(&member_id, now, true, &m);

	values[0] = UUIDPGetDatum(&member_id);
	values[1] = CStringGetTextDatum(tier);
	values[2] = CStringGetTextDatum(reason);
	values[3] = TimestampTzGetDatum(expires);
	if (!has_expiry)
		nulls[3] = 'n';
	lspi_run(lspi_plan(&grant_insert_plan,
							 "INSERT INTO loyalty.tier_grant (member_id, tier, reason, expires_at) "
							 "VALUES ($1, $2, $3, $4) RETURNING grant_id", 4, types),
				values, nulls, false, 0, SPI_OK_INSERT_RETURNING);
	*grant_id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	r = tier_rank_of(p, m.tier);
	snprintf(why, sizeof(why), "manual grant: %s", reason);
	if (t->rank > r ||
		(t->rank == r && m.has_valid_until && (!has_expiry || expires > m.valid_until)))
		tier_set(&m, tier, has_expiry, expires, why, NULL, NULL);
	lspi_finish();
	{
		static const char *const keys[4] = {"grant_id", "tier", "reason", "expires_at"};
		static const bool quoted[4] = {true, true, true, true};
		const char *vals[4];

		vals[0] = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(grant_id)));
		vals[1] = tier;
		vals[2] = reason;
		vals[3] = has_expiry ? timestamptz_to_str(expires) : NULL;
		loyalty_audit_change(&member_id, "tier_grant", "crm",
							 loyalty_audit_detail(4, keys, vals, quoted));
	}
	PG_RETURN_UUID_P(grant_id);
}

/*
 * loyalty._counters_at(member_id uuid, at timestamptz)
 *		The qualification period containing "at" (member-local) and the
 *		counters recorded for it by "at".
 */
Datum
loyalty_counters_at(PG_FUNCTION_ARGS)
{
	pg_uuid_t	member_id = *PG_GETARG_UUID_P(0);
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(1);
	const LoyaltyPolicy *p;
	TierMember	m;
	TierCounters c;
	DateADT		start,
				end;
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7] = {0};
	char		qualified[LOYALTY_CODE_LEN];
	int			i;

	lspi_connect(LSPI_READ_ONLY);
	p = loyalty_policy_at(at);
	tier_member_lock(&member_id, at, false, &m);
	tier_period_bounds(p, m.local_date, m.enrolled_local, &start, &end);
	tier_counters_sum(&member_id, start, end, true, at, &c);
	strlcpy(qualified, p->tiers[tier_qualified_rank(p, &c)].code, sizeof(qualified));
	lspi_finish();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = DateADTGetDatum(start);
	values[1] = DateADTGetDatum(end);
	for (i = 0; i < LOYALTY_NUM_COUNTERS; i++)
		values[2 + i] = Int64GetDatum(c.value[i]);
	values[6] = CStringGetTextDatum(qualified);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
