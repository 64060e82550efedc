/*-------------------------------------------------------------------------
 *
 * risk.c
 *	  The freeze check: is a capability of a member frozen by an
 *	  unresolved risk tag?
 *
 * loyalty_assert_not_frozen() is the C API other areas call before acting
 * (the ledger before a redemption, benefit_use.c before recording a use);
 * loyalty.assert_not_frozen() and loyalty.frozen_by() are its SQL faces.
 * Raising and resolving tags are SQL functions (src/sql/30_risk.sql); both
 * take the member row lock (FOR NO KEY UPDATE), so a caller that holds the
 * member row lock when it checks the freeze cannot race a raise.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "roles_caller.h"
#include "risk.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_assert_not_frozen_sql);
PG_FUNCTION_INFO_V1(loyalty_frozen_by_sql);
PG_FUNCTION_INFO_V1(loyalty_capabilities_valid);
PG_FUNCTION_INFO_V1(loyalty_benefit_kind_valid);

const char *const loyalty_capability_names[LOYALTY_NUM_CAPABILITIES] = {
	"redemption", "transfer", "room_discount", "breakfast", "late_checkout",
	"room_upgrade", "gift", "voucher", "amenity", "other"
};

static SPIPlanPtr frozen_plan = NULL;

/*
 * loyalty_capability_from_name
 *		The capability of this name, or -1.
 */
int
loyalty_capability_from_name(const char *name)
{
	int			c;

	for (c = 0; c < LOYALTY_NUM_CAPABILITIES; c++)
		if (strcmp(loyalty_capability_names[c], name) == 0)
			return c;
	return -1;
}

/*
 * loyalty_capability_mask
 *		A text[] of capability names as a CAP_BIT mask; unknown names (which
 *		the table's check constraint excludes) are ignored.
 */
uint32
loyalty_capability_mask(Datum freezes_array)
{
	ArrayType  *arr = DatumGetArrayTypeP(freezes_array);
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;
	uint32		mask = 0;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		int			c;

		if (nulls[i])
			continue;
		c = loyalty_capability_from_name(TextDatumGetCString(elems[i]));
		if (c >= 0)
			mask |= CAP_BIT(c);
	}
	return mask;
}

/*
 * loyalty_frozen_by
 *		True if an unresolved risk tag of the member freezes capability; the
 *		oldest such tag is returned in *tag (if not NULL).
 */
bool
loyalty_frozen_by(const pg_uuid_t *member_id, int capability, RiskFreeze *tag)
{
	Datum		args[2];
	int			ret;
	bool		found = false;

	Assert(capability >= 0 && capability < LOYALTY_NUM_CAPABILITIES);
	lspi_connect(LSPI_READ_WRITE);
	if (frozen_plan == NULL)
	{
		Oid			types[2] = {UUIDOID, TEXTOID};
		SPIPlanPtr	plan;

		plan = SPI_prepare("SELECT r.tag_id, r.risk_code, r.store_code, r.raised_at, y.freezes "
						   "  FROM loyalty.risk_tag r "
						   "  JOIN loyalty.risk_type y ON y.risk_code = r.risk_code "
						   " WHERE r.member_id = $1 AND r.resolved_at IS NULL "
						   "   AND $2 = ANY (y.freezes) "
						   " ORDER BY r.raised_at, r.tag_id LIMIT 1",
						   2, types);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if ((ret = SPI_keepplan(plan)) != 0)
			elog(ERROR, "SPI_keepplan failed: %s", SPI_result_code_string(ret));
		frozen_plan = plan;
	}
	args[0] = UUIDPGetDatum(member_id);
	args[1] = CStringGetTextDatum(loyalty_capability_names[capability]);
	/*
	 * Not read-only: a fresh snapshot, so that a caller that has just
	 * waited for the member row lock sees a tag committed meanwhile.
	 */
	lspi_run(frozen_plan, args, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		found = true;
		if (tag != NULL)
		{
			Datum		d;

			memset(tag, 0, sizeof(*tag));
			d = SPI_getbinval(tup, desc, 1, &isnull);
			memcpy(&tag->tag_id, DatumGetUUIDP(d), sizeof(pg_uuid_t));
			d = SPI_getbinval(tup, desc, 2, &isnull);
			text_to_cstring_buffer(DatumGetTextPP(d), tag->risk_code, sizeof(tag->risk_code));
			d = SPI_getbinval(tup, desc, 3, &isnull);
			if (!isnull)
				text_to_cstring_buffer(DatumGetTextPP(d), tag->store_code, sizeof(tag->store_code));
			tag->raised_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
			tag->freezes = loyalty_capability_mask(SPI_getbinval(tup, desc, 5, &isnull));
		}
	}
	lspi_finish();
	return found;
}

/*
 * loyalty_assert_not_frozen
 *		Error LY001 if an unresolved risk tag of the member freezes the
 *		capability (see risk.h for the names).  Call it while holding the
 *		member row lock (FOR NO KEY UPDATE or stronger) to be ordered with
 *		concurrent raises; it reads with a fresh snapshot.
 */
void
loyalty_assert_not_frozen(const pg_uuid_t *member_id, const char *capability)
{
	int			cap = loyalty_capability_from_name(capability);
	RiskFreeze	tag;

	if (cap < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown capability \"%s\"", capability),
				 errhint("The capabilities are redemption, transfer and the benefit kinds.")));
	if (loyalty_frozen_by(member_id, cap, &tag))
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_FROZEN),
				 errmsg("%s is frozen for this member by unresolved risk tag \"%s\"",
						capability, tag.risk_code),
				 errdetail("Risk tag %s was raised %s%s%s at %s and is not resolved.",
						   DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&tag.tag_id))),
						   tag.store_code[0] ? "by store \"" : "by HQ",
						   tag.store_code, tag.store_code[0] ? "\"" : "",
						   timestamptz_to_str(tag.raised_at)),
				 errhint("Earning continues; the freeze ends when the tag is resolved with loyalty.risk_tag_resolve().")));
}

/*
 * uuid_arg
 *		A required uuid argument.
 */
static pg_uuid_t *
uuid_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return PG_GETARG_UUID_P(argno);
}

/*
 * loyalty.assert_not_frozen(member_id uuid, capability text) returns void
 *		SQL face of loyalty_assert_not_frozen(), for loyalty staff.
 */
Datum
loyalty_assert_not_frozen_sql(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *member = uuid_arg(fcinfo, 0, "member_id");

	(void) loyalty_caller();
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("capability must not be null")));
	loyalty_assert_not_frozen(member, TextDatumGetCString(PG_GETARG_DATUM(1)));
	PG_RETURN_VOID();
}

/*
 * loyalty.frozen_by(member_id uuid, capability text) returns text
 *		The risk code of the oldest unresolved tag freezing the capability,
 *		or NULL.
 */
Datum
loyalty_frozen_by_sql(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *member = uuid_arg(fcinfo, 0, "member_id");
	char	   *name;
	int			cap;
	RiskFreeze	tag;

	(void) loyalty_caller();
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("capability must not be null")));
	name = TextDatumGetCString(PG_GETARG_DATUM(1));
	if ((cap = loyalty_capability_from_name(name)) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown capability \"%s\"", name),
				 errhint("The capabilities are redemption, transfer and the benefit kinds.")));
	if (!loyalty_frozen_by(member, cap, &tag))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(tag.risk_code));
}

/*
 * loyalty._capabilities_valid(freezes text[]) returns boolean
 *		True if every element names a capability (loyalty_capability_names,
 *		the one list): the check of loyalty.risk_type.freezes and of
 *		loyalty.risk_type_set().
 */
Datum
loyalty_capabilities_valid(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
		if (nulls[i] || loyalty_capability_from_name(TextDatumGetCString(elems[i])) < 0)
			PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(true);
}

/*
 * loyalty._benefit_kind_valid(kind text) returns boolean
 *		True if kind is a benefit kind: a capability other than redemption
 *		and transfer.  The check of loyalty.benefit.kind and of
 *		loyalty.benefit_define().
 */
Datum
loyalty_benefit_kind_valid(PG_FUNCTION_ARGS)
{
	int			c = loyalty_capability_from_name(text_to_cstring(PG_GETARG_TEXT_PP(0)));

	PG_RETURN_BOOL(c >= CAP_ROOM_DISCOUNT);
}
