/*-------------------------------------------------------------------------
 *
 * ledger_rowcheck.c
 *	  The conditions of the CHECK constraints of loyalty.point_lot and
 *	  loyalty.point_entry, as one C function per table.
 *
 * PostgreSQL rebuilds every CHECK constraint from its stored node text at
 * each INSERT or UPDATE statement (stringToNode, then expression_planner),
 * at a cost that grows with the size of the expression: the lot's seven
 * conditions written in SQL (two IN lists of constants among them) took
 * about 8% of an accrual's backend time (issue 19, docs/performance.md).
 * A call of one function on the row's columns is a few nodes to rebuild,
 * and the conditions are the same, so the tables keep their protection
 * against a direct INSERT or UPDATE by their owner.
 *
 * Each function answers as its table's SQL conditions joined by AND did: a
 * row fails only if some condition is false; a condition on a NULL column
 * is not false (NOT NULL constraints deal with those columns).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(loyalty_lot_row_valid);
PG_FUNCTION_INFO_V1(loyalty_entry_row_valid);

static const char *const lot_sources[] = {
	"stay", "spend", "campaign", "bonus", "milestone", "adjustment",
	"transfer", "deficit", "purchase", NULL
};
static const char *const lot_states[] = {
	"pending", "active", "expired", "cancelled", NULL
};
static const char *const entry_kinds[] = {
	"accrue", "activate", "redeem", "reverse", "transfer_out",
	"transfer_in", "expire", "refund", NULL
};

/*
 * text_is
 *		Whether text t equals the C string s.
 */
static bool
text_is(text *t, const char *s)
{
	size_t		len = strlen(s);

	return VARSIZE_ANY_EXHDR(t) == len && memcmp(VARDATA_ANY(t), s, len) == 0;
}

/*
 * text_in
 *		Whether text t is one of the strings of list (NULL-terminated).
 */
static bool
text_in(text *t, const char *const *list)
{
	int			i;

	for (i = 0; list[i]; i++)
		if (text_is(t, list[i]))
			return true;
	return false;
}

/*
 * arg_longer
 *		Whether text argument argno is not NULL and longer than max
 *		characters (SQL's length()).
 */
static bool
arg_longer(FunctionCallInfo fcinfo, int argno, int max)
{
	text	   *t;

	if (PG_ARGISNULL(argno))
		return false;
	t = PG_GETARG_TEXT_PP(argno);
	return pg_mbstrlen_with_len(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)) > max;
}

/*
 * loyalty._lot_row_valid(source, state, rule, reference, points, remaining,
 *						  active_from) returns boolean
 *		The CHECK of loyalty.point_lot: a known source and state, rule at
 *		most 100 characters, reference at most 200, points not negative,
 *		remaining at most points and not negative except on a deficit lot,
 *		and a start (active_from) on every lot neither pending nor
 *		cancelled.
 */
Datum
loyalty_lot_row_valid(PG_FUNCTION_ARGS)
{
	text	   *source = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	text	   *state = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);

	if (source && !text_in(source, lot_sources))
		PG_RETURN_BOOL(false);
	if (state && !text_in(state, lot_states))
		PG_RETURN_BOOL(false);
	if (arg_longer(fcinfo, 2, 100) || arg_longer(fcinfo, 3, 200))
		PG_RETURN_BOOL(false);
	if (!PG_ARGISNULL(4) && PG_GETARG_INT64(4) < 0)
		PG_RETURN_BOOL(false);
	if (!PG_ARGISNULL(4) && !PG_ARGISNULL(5) && PG_GETARG_INT64(5) > PG_GETARG_INT64(4))
		PG_RETURN_BOOL(false);
	if (!PG_ARGISNULL(5) && PG_GETARG_INT64(5) < 0 && source && !text_is(source, "deficit"))
		PG_RETURN_BOOL(false);
	if (state && PG_ARGISNULL(6) &&
		!text_is(state, "pending") && !text_is(state, "cancelled"))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(true);
}

/*
 * loyalty._entry_row_valid(kind, reference, note) returns boolean
 *		The CHECK of loyalty.point_entry: a known kind, reference and note
 *		at most 200 characters each.
 */
Datum
loyalty_entry_row_valid(PG_FUNCTION_ARGS)
{
	if (!PG_ARGISNULL(0) && !text_in(PG_GETARG_TEXT_PP(0), entry_kinds))
		PG_RETURN_BOOL(false);
	if (arg_longer(fcinfo, 1, 200) || arg_longer(fcinfo, 2, 200))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(true);
}
