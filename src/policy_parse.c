/*-------------------------------------------------------------------------
 *
 * policy_parse.c
 *	  Parse and validate a policy document into a LoyaltyPolicy, and render
 *	  a LoyaltyPolicy back as normalised JSON.
 *
 * This is the only file that includes <jansson.h>: jansson's new_object()
 * and friends collide with PostgreSQL's fmgrprotos.h.  jansson allocates
 * through palloc in a memory context private to one call, so nothing it
 * allocated survives an ereport(ERROR): the context is a child of the
 * caller's and goes with it.
 *
 * Semantic errors name the JSON path of the offending key and its line and
 * column, found by policy_jsonpos.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <jansson.h>

#include "utils/memutils.h"

#include "policy_jsonpos.h"
#include "policy.h"

const char *const loyalty_counter_names[LOYALTY_NUM_COUNTERS] = {
	"nights", "stays", "base_points", "qualifying_spend"
};

/*
 * jansson's new_object() has the same name as PostgreSQL's SQL function
 * new_object(), which the server exports; the dynamic linker binds our
 * call to the server's.  So this file never calls new_object(): new_object()
 * makes an empty object through json_pack(), and the Makefile fails the
 * build if loyalty.so ever imports json_object.
 */
#define new_object() json_pack("{}")

/* the memory context jansson allocates in during one call */
static MemoryContext jansson_context = NULL;

/* parsing state: the document text and the path we are at */
typedef struct ParseState
{
	const char *text;
	size_t		len;
	int			depth;
	JsonPathStep path[JSONPOS_MAX_DEPTH];
	LoyaltyPolicy *policy;
} ParseState;

/*
 * jansson_malloc / jansson_free
 *		jansson's allocator, routed to palloc.
 */
static void *
jansson_malloc(size_t size)
{
	return MemoryContextAlloc(jansson_context ? jansson_context : CurrentMemoryContext,
							  size);
}

static void
jansson_free(void *ptr)
{
	if (ptr != NULL)
		pfree(ptr);
}

/*
 * begin_jansson / end_jansson
 *		Bracket every use of jansson: a private context for its
 *		allocations, deleted (with everything jansson made) at the end.  On
 *		ERROR the context is deleted with its parent.
 */
static MemoryContext
begin_jansson(void)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "loyalty jansson",
											  ALLOCSET_SMALL_SIZES);

	json_set_alloc_funcs(jansson_malloc, jansson_free);
	jansson_context = cxt;
	return cxt;
}

static void
end_jansson(MemoryContext cxt)
{
	jansson_context = NULL;
	MemoryContextDelete(cxt);
}

/*
 * policy_error
 *		Report a semantic error at the current path (or at its last key,
 *		when at_key) with line and column.
 */
static void
policy_error(ParseState *ps, bool at_key, const char *fmt,...)
pg_attribute_printf(3, 4) pg_attribute_noreturn();

static void
policy_error(ParseState *ps, bool at_key, const char *fmt,...)
{
	char		msg[512];
	char		path[256];
	int			line = 0,
				column = 0;
	va_list		args;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	policy_jsonpos_format(ps->path, ps->depth, path, sizeof(path));
	jansson_context = NULL;

	if (policy_jsonpos_locate(ps->text, ps->len, ps->path, ps->depth, at_key,
					&line, &column))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid loyalty policy: %s", msg),
				 errdetail("The error is at line %d, column %d (%s).",
						   line, column, path),
				 errhint("See docs/policy.md for the document format.")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid loyalty policy: %s", msg),
			 errdetail("The error is at %s.", path)));
}

static void
push_key(ParseState *ps, const char *key)
{
	Assert(ps->depth < JSONPOS_MAX_DEPTH);
	ps->path[ps->depth].key = key;
	ps->path[ps->depth].index = -1;
	ps->depth++;
}

static void
push_index(ParseState *ps, int index)
{
	Assert(ps->depth < JSONPOS_MAX_DEPTH);
	ps->path[ps->depth].key = NULL;
	ps->path[ps->depth].index = index;
	ps->depth++;
}

static void
pop(ParseState *ps)
{
	ps->depth--;
}

/*
 * check_keys
 *		The value at the current path must be an object whose keys are all
 *		in the NULL-terminated list allowed.
 */
static void
check_keys(ParseState *ps, json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t	   *value;

	if (!json_is_object(obj))
		policy_error(ps, false, "expected an object");
	json_object_foreach(obj, key, value)
	{
		const char *const *a;

		for (a = allowed; *a != NULL; a++)
			if (strcmp(*a, key) == 0)
				break;
		if (*a == NULL)
		{
			push_key(ps, key);
			policy_error(ps, true, "unknown key \"%s\"", key);
		}
	}
}

/*
 * get_int
 *		Read an integer member in [min, max]; absent or null gives dflt.
 *		Reals are refused: points and money are never floating point.
 */
static int64
get_int(ParseState *ps, json_t *obj, const char *key, int64 min, int64 max,
		int64 dflt)
{
	json_t	   *v = json_object_get(obj, key);
	int64		result;

	if (v == NULL || json_is_null(v))
		return dflt;
	push_key(ps, key);
	if (json_is_real(v))
		policy_error(ps, false, "\"%s\" must be an integer, not a decimal number", key);
	if (!json_is_integer(v))
		policy_error(ps, false, "\"%s\" must be an integer", key);
	result = (int64) json_integer_value(v);
	if (result < min || result > max)
		policy_error(ps, false, "\"%s\" is " INT64_FORMAT ", outside the range "
					 INT64_FORMAT " to " INT64_FORMAT, key, result, min, max);
	pop(ps);
	return result;
}

/*
 * get_string
 *		Read a string member of at most maxlen bytes into buf; absent or
 *		null gives dflt (which may be NULL: then the key is required).
 */
static void
get_string(ParseState *ps, json_t *obj, const char *key, char *buf,
		   size_t maxlen, const char *dflt)
{
	json_t	   *v = json_object_get(obj, key);
	const char *s;

	if (v == NULL || json_is_null(v))
	{
		if (dflt == NULL)
			policy_error(ps, false, "missing required key \"%s\"", key);
		strlcpy(buf, dflt, maxlen);
		return;
	}
	push_key(ps, key);
	if (!json_is_string(v))
		policy_error(ps, false, "\"%s\" must be a string", key);
	s = json_string_value(v);
	if (strlen(s) == 0)
		policy_error(ps, false, "\"%s\" must not be empty", key);
	if (strlen(s) >= maxlen)
		policy_error(ps, false, "\"%s\" is longer than %d bytes", key,
					 (int) maxlen - 1);
	strlcpy(buf, s, maxlen);
	pop(ps);
}

/*
 * get_code
 *		Read an identifier-like code: lowercase letters, digits and
 *		underscores, starting with a letter.
 */
static void
get_code(ParseState *ps, json_t *obj, const char *key, char *buf,
		 const char *dflt)
{
	const char *c;

	get_string(ps, obj, key, buf, LOYALTY_CODE_LEN, dflt);
	for (c = buf; *c; c++)
	{
		if (!((*c >= 'a' && *c <= 'z') || (c > buf && ((*c >= '0' && *c <= '9') || *c == '_'))))
		{
			push_key(ps, key);
			policy_error(ps, false, "\"%s\" must be lowercase letters, digits and underscores, starting with a letter", key);
		}
	}
}

/*
 * get_enum
 *		Read a string member that must be one of names; returns its index.
 */
static int
get_enum(ParseState *ps, json_t *obj, const char *key,
		 const char *const *names, int dflt)
{
	json_t	   *v = json_object_get(obj, key);
	int			i;

	if (v == NULL || json_is_null(v))
		return dflt;
	push_key(ps, key);
	if (!json_is_string(v))
		policy_error(ps, false, "\"%s\" must be a string", key);
	for (i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], json_string_value(v)) == 0)
		{
			pop(ps);
			return i;
		}
	policy_error(ps, false, "\"%s\" has an unknown value \"%s\"", key,
				 json_string_value(v));
}

/*
 * get_money
 *		Read an amount of money: an integer (whole currency units) or a
 *		decimal string with at most currency_scale decimals.  Returns minor
 *		units; absent or null gives dflt (already in minor units).
 */
static int64
get_money(ParseState *ps, json_t *obj, const char *key, int64 dflt)
{
	json_t	   *v = json_object_get(obj, key);
	int			scale = ps->policy->currency_scale;
	int64		unit = 1;
	int64		result = 0;
	int			i;

	for (i = 0; i < scale; i++)
		unit *= 10;
	if (v == NULL || json_is_null(v))
		return dflt;
	push_key(ps, key);
	if (json_is_integer(v))
	{
		json_int_t	n = json_integer_value(v);

		if (n < 0 || n > LOYALTY_POLICY_MAX_NUMBER)
			policy_error(ps, false, "\"%s\" must be between 0 and " INT64_FORMAT,
						 key, LOYALTY_POLICY_MAX_NUMBER);
		result = n * unit;
	}
	else if (json_is_string(v))
	{
		const char *s = json_string_value(v);
		const char *c = s;
		int			decimals = -1;

		if (*c == '\0')
			policy_error(ps, false, "\"%s\" must not be empty", key);
		for (; *c; c++)
		{
			if (*c == '.' && decimals < 0 && c > s)
				decimals = 0;
			else if (*c >= '0' && *c <= '9')
			{
				result = result * 10 + (*c - '0');
				if (decimals >= 0)
					decimals++;
				if (result > LOYALTY_POLICY_MAX_NUMBER * unit)
					policy_error(ps, false, "\"%s\" is too large", key);
			}
			else
				policy_error(ps, false, "\"%s\" must be a decimal amount such as \"100.00\"", key);
		}
		if (decimals == 0)
			policy_error(ps, false, "\"%s\" must be a decimal amount such as \"100.00\"", key);
		if (decimals > scale)
			policy_error(ps, false, "\"%s\" has more than %d decimals", key, scale);
		for (i = (decimals < 0 ? 0 : decimals); i < scale; i++)
			result *= 10;
	}
	else
		policy_error(ps, false, "\"%s\" must be an integer or a decimal string", key);
	pop(ps);
	return result;
}

/*
 * parse_thresholds
 *		Read {"nights": n, "stays": n, "base_points": n,
 *		"qualifying_spend": amount}; at least one must be present.
 */
static void
parse_thresholds(ParseState *ps, json_t *obj, TierThresholds *t)
{
	static const char *const keys[] = {
		"nights", "stays", "base_points", "qualifying_spend", NULL
	};
	int			c;
	bool		any = false;

	check_keys(ps, obj, keys);
	for (c = 0; c < LOYALTY_NUM_COUNTERS; c++)
	{
		if (c == COUNTER_QUALIFYING_SPEND)
			t->value[c] = get_money(ps, obj, keys[c], -1);
		else
			t->value[c] = get_int(ps, obj, keys[c], 0,
								  LOYALTY_POLICY_MAX_NUMBER, -1);
		if (t->value[c] >= 0)
			any = true;
	}
	if (!any)
		policy_error(ps, false, "a threshold needs at least one of nights, stays, base_points or qualifying_spend");
}

/*
 * parse_tier
 *		Read one element of "tiers".
 */
static void
parse_tier(ParseState *ps, json_t *obj, TierPolicy *tier, int position)
{
	static const char *const keys[] = {
		"code", "name", "rank", "qualify", "elite_bonus_percent",
		"lifetime_nights", NULL
	};
	static const char *const qkeys[] = {"any", "all", NULL};
	json_t	   *q;
	int			c;

	check_keys(ps, obj, keys);
	get_code(ps, obj, "code", tier->code, NULL);
	get_string(ps, obj, "name", tier->name, sizeof(tier->name), tier->code);
	tier->rank = (int) get_int(ps, obj, "rank", 0, LOYALTY_MAX_TIERS - 1, position);
	if (tier->rank != position)
	{
		push_key(ps, "rank");
		policy_error(ps, false, "tier \"%s\" has rank %d but is listed at position %d; list tiers from the lowest rank (0) up",
					 tier->code, tier->rank, position);
	}
	tier->elite_bonus_percent = (int) get_int(ps, obj, "elite_bonus_percent",
											  0, 1000, 0);
	tier->lifetime_nights = get_int(ps, obj, "lifetime_nights", 1,
									LOYALTY_POLICY_MAX_NUMBER, -1);
	for (c = 0; c < LOYALTY_NUM_COUNTERS; c++)
		tier->any.value[c] = tier->all.value[c] = -1;

	q = json_object_get(obj, "qualify");
	if (q == NULL || json_is_null(q))
	{
		if (position > 0)
			policy_error(ps, false, "tier \"%s\" needs a \"qualify\" rule", tier->code);
		return;
	}
	push_key(ps, "qualify");
	if (position == 0)
		policy_error(ps, true, "the base tier \"%s\" must not have a \"qualify\" rule", tier->code);
	check_keys(ps, q, qkeys);
	if (json_object_get(q, "any") == NULL && json_object_get(q, "all") == NULL)
		policy_error(ps, false, "\"qualify\" needs \"any\" or \"all\"");
	if (json_object_get(q, "any") != NULL)
	{
		push_key(ps, "any");
		parse_thresholds(ps, json_object_get(q, "any"), &tier->any);
		tier->has_any = true;
		pop(ps);
	}
	if (json_object_get(q, "all") != NULL)
	{
		push_key(ps, "all");
		parse_thresholds(ps, json_object_get(q, "all"), &tier->all);
		tier->has_all = true;
		pop(ps);
	}
	pop(ps);
}

/*
 * check_monotonic
 *		Each counter's threshold must rise strictly from tier to tier
 *		wherever both tiers use it.
 */
static void
check_monotonic(ParseState *ps, LoyaltyPolicy *p)
{
	int			i,
				c;

	for (i = 2; i < p->ntiers; i++)
	{
		for (c = 0; c < LOYALTY_NUM_COUNTERS; c++)
		{
			int64		lo_any = p->tiers[i - 1].any.value[c];
			int64		hi_any = p->tiers[i].any.value[c];
			int64		lo_all = p->tiers[i - 1].all.value[c];
			int64		hi_all = p->tiers[i].all.value[c];

			if ((lo_any >= 0 && hi_any >= 0 && hi_any <= lo_any) ||
				(lo_all >= 0 && hi_all >= 0 && hi_all <= lo_all))
			{
				push_key(ps, "tiers");
				push_index(ps, i);
				push_key(ps, "qualify");
				policy_error(ps, false,
							 "tier \"%s\" must need more %s than tier \"%s\"",
							 p->tiers[i].code, loyalty_counter_names[c],
							 p->tiers[i - 1].code);
			}
		}
	}
}

static void
parse_tiers(ParseState *ps, json_t *root, LoyaltyPolicy *p)
{
	json_t	   *tiers = json_object_get(root, "tiers");
	size_t		i,
				j;

	if (tiers == NULL)
		policy_error(ps, false, "missing required key \"tiers\"");
	push_key(ps, "tiers");
	if (!json_is_array(tiers) || json_array_size(tiers) == 0)
		policy_error(ps, false, "\"tiers\" must be a non-empty array");
	if (json_array_size(tiers) > LOYALTY_MAX_TIERS)
		policy_error(ps, false, "at most %d tiers are allowed", LOYALTY_MAX_TIERS);
	p->ntiers = (int) json_array_size(tiers);
	for (i = 0; i < json_array_size(tiers); i++)
	{
		push_index(ps, (int) i);
		parse_tier(ps, json_array_get(tiers, i), &p->tiers[i], (int) i);
		for (j = 0; j < i; j++)
			if (strcmp(p->tiers[j].code, p->tiers[i].code) == 0)
			{
				push_key(ps, "code");
				policy_error(ps, false, "duplicate tier code \"%s\"", p->tiers[i].code);
			}
		pop(ps);
	}
	pop(ps);
	check_monotonic(ps, p);
}

static void
parse_qualification(ParseState *ps, json_t *root, LoyaltyPolicy *p)
{
	static const char *const keys[] = {"period", "validity", "downgrade", NULL};
	static const char *const vkeys[] = {"years_after", "through_month", NULL};
	static const char *const periods[] = {"calendar_year", "rolling_12_months", "anniversary", NULL};
	static const char *const downgrades[] = {"one_tier", "recompute", NULL};
	json_t	   *q = json_object_get(root, "qualification");
	json_t	   *v;

	p->period = PERIOD_CALENDAR_YEAR;
	p->validity_years_after = 2;
	p->validity_month = 3;
	p->downgrade = DOWNGRADE_ONE_TIER;
	if (q == NULL)
		return;
	push_key(ps, "qualification");
	check_keys(ps, q, keys);
	p->period = get_enum(ps, q, "period", periods, PERIOD_CALENDAR_YEAR);
	p->downgrade = get_enum(ps, q, "downgrade", downgrades, DOWNGRADE_ONE_TIER);
	v = json_object_get(q, "validity");
	if (v != NULL)
	{
		push_key(ps, "validity");
		check_keys(ps, v, vkeys);
		p->validity_years_after = (int) get_int(ps, v, "years_after", 1, 10, 2);
		p->validity_month = (int) get_int(ps, v, "through_month", 1, 12, 3);
		pop(ps);
	}
	pop(ps);
}

static void
parse_earning(ParseState *ps, json_t *root, LoyaltyPolicy *p)
{
	static const char *const keys[] = {"base_points_per_unit", "overrides", "pending_until", "milestones", NULL};
	static const char *const okeys[] = {"brand", "store", "points_per_unit", NULL};
	static const char *const mkeys[] = {"nights", "points", "every", NULL};
	static const char *const pending[] = {"checkout", "none", NULL};
	json_t	   *e = json_object_get(root, "earning");
	json_t	   *arr;
	size_t		i;

	p->base_points_per_unit = 10;
	p->pending_until = PENDING_UNTIL_CHECKOUT;
	if (e == NULL)
		return;
	push_key(ps, "earning");
	check_keys(ps, e, keys);
	p->base_points_per_unit = get_int(ps, e, "base_points_per_unit", 0, 10000, 10);
	p->pending_until = get_enum(ps, e, "pending_until", pending, PENDING_UNTIL_CHECKOUT);

	arr = json_object_get(e, "overrides");
	if (arr != NULL)
	{
		push_key(ps, "overrides");
		if (!json_is_array(arr))
			policy_error(ps, false, "\"overrides\" must be an array");
		if (json_array_size(arr) > LOYALTY_MAX_OVERRIDES)
			policy_error(ps, false, "at most %d overrides are allowed", LOYALTY_MAX_OVERRIDES);
		for (i = 0; i < json_array_size(arr); i++)
		{
			json_t	   *o = json_array_get(arr, i);
			EarningOverride *ov = &p->overrides[i];
			size_t		j;

			push_index(ps, (int) i);
			check_keys(ps, o, okeys);
			if ((json_object_get(o, "brand") == NULL) == (json_object_get(o, "store") == NULL))
				policy_error(ps, false, "an override names exactly one of \"brand\" or \"store\"");
			ov->is_store = json_object_get(o, "store") != NULL;
			get_code(ps, o, ov->is_store ? "store" : "brand", ov->code, NULL);
			if (json_object_get(o, "points_per_unit") == NULL)
				policy_error(ps, false, "missing required key \"points_per_unit\"");
			ov->points_per_unit = get_int(ps, o, "points_per_unit", 0, 10000, 0);
			for (j = 0; j < i; j++)
				if (p->overrides[j].is_store == ov->is_store &&
					strcmp(p->overrides[j].code, ov->code) == 0)
					policy_error(ps, false, "duplicate override for %s \"%s\"",
								 ov->is_store ? "store" : "brand", ov->code);
			pop(ps);
		}
		p->noverrides = (int) json_array_size(arr);
		pop(ps);
	}

	arr = json_object_get(e, "milestones");
	if (arr != NULL)
	{
		push_key(ps, "milestones");
		if (!json_is_array(arr))
			policy_error(ps, false, "\"milestones\" must be an array");
		if (json_array_size(arr) > LOYALTY_MAX_MILESTONES)
			policy_error(ps, false, "at most %d milestones are allowed", LOYALTY_MAX_MILESTONES);
		for (i = 0; i < json_array_size(arr); i++)
		{
			json_t	   *m = json_array_get(arr, i);
			Milestone  *ms = &p->milestones[i];

			push_index(ps, (int) i);
			check_keys(ps, m, mkeys);
			if (json_object_get(m, "nights") == NULL || json_object_get(m, "points") == NULL)
				policy_error(ps, false, "a milestone needs \"nights\" and \"points\"");
			ms->nights = get_int(ps, m, "nights", 1, 100000, 0);
			ms->points = get_int(ps, m, "points", 1, LOYALTY_POLICY_MAX_NUMBER, 0);
			ms->every = get_int(ps, m, "every", 1, 100000, 0);
			if (i > 0 && ms->nights <= p->milestones[i - 1].nights)
				policy_error(ps, false, "milestones must be listed by increasing \"nights\"");
			pop(ps);
		}
		p->nmilestones = (int) json_array_size(arr);
		pop(ps);
	}
	pop(ps);
}

/*
 * tier_rank
 *		Rank of a tier code, or an error at the current path.
 */
static int
tier_rank(ParseState *ps, LoyaltyPolicy *p, const char *code)
{
	int			i;

	for (i = 0; i < p->ntiers; i++)
		if (strcmp(p->tiers[i].code, code) == 0)
			return i;
	policy_error(ps, false, "unknown tier \"%s\"", code);
}

static void
parse_expiry(ParseState *ps, json_t *root, LoyaltyPolicy *p)
{
	static const char *const keys[] = {"mode", "inactivity_months", "lot_lifetime_months", "exempt_from_tier", "notice_days", NULL};
	static const char *const modes[] = {"inactivity", "lot_lifetime", "none", NULL};
	json_t	   *e = json_object_get(root, "expiry");

	p->expiry_mode = EXPIRY_INACTIVITY;
	p->inactivity_months = 24;
	p->lot_lifetime_months = 36;
	p->expiry_exempt_rank = -1;
	p->notice_days = 30;
	if (e == NULL)
		return;
	push_key(ps, "expiry");
	check_keys(ps, e, keys);
	p->expiry_mode = get_enum(ps, e, "mode", modes, EXPIRY_INACTIVITY);
	p->inactivity_months = (int) get_int(ps, e, "inactivity_months", 1, 240, 24);
	p->lot_lifetime_months = (int) get_int(ps, e, "lot_lifetime_months", 1, 240, 36);
	p->notice_days = (int) get_int(ps, e, "notice_days", 0, 365, 30);
	if (json_object_get(e, "exempt_from_tier") != NULL &&
		!json_is_null(json_object_get(e, "exempt_from_tier")))
	{
		char		code[LOYALTY_CODE_LEN];

		get_code(ps, e, "exempt_from_tier", code, NULL);
		push_key(ps, "exempt_from_tier");
		p->expiry_exempt_rank = tier_rank(ps, p, code);
		pop(ps);
	}
	pop(ps);
}

static void
parse_redemption(ParseState *ps, json_t *root, LoyaltyPolicy *p)
{
	static const char *const keys[] = {"rate", "minimum_points", "step_points", "order", NULL};
	static const char *const rkeys[] = {"points", "amount", NULL};
	static const char *const orders[] = {"soonest_expiring", "oldest_first", NULL};
	json_t	   *r = json_object_get(root, "redemption");
	json_t	   *rate;
	int64		unit = 1;
	int			i;

	for (i = 0; i < p->currency_scale; i++)
		unit *= 10;
	p->rate_points = 1000;
	p->rate_amount = 100 * unit;
	p->minimum_points = 1000;
	p->step_points = 100;
	p->redemption_order = REDEEM_SOONEST_EXPIRING;
	if (r == NULL)
		return;
	push_key(ps, "redemption");
	check_keys(ps, r, keys);
	rate = json_object_get(r, "rate");
	if (rate != NULL)
	{
		push_key(ps, "rate");
		check_keys(ps, rate, rkeys);
		if (json_object_get(rate, "points") == NULL || json_object_get(rate, "amount") == NULL)
			policy_error(ps, false, "\"rate\" needs \"points\" and \"amount\"");
		p->rate_points = get_int(ps, rate, "points", 1, LOYALTY_POLICY_MAX_NUMBER, 1000);
		p->rate_amount = get_money(ps, rate, "amount", 0);
		if (p->rate_amount <= 0)
			policy_error(ps, false, "\"amount\" must be greater than zero");
		pop(ps);
	}
	p->minimum_points = get_int(ps, r, "minimum_points", 1, LOYALTY_POLICY_MAX_NUMBER, 1000);
	p->step_points = get_int(ps, r, "step_points", 1, LOYALTY_POLICY_MAX_NUMBER, 100);
	p->redemption_order = get_enum(ps, r, "order", orders, REDEEM_SOONEST_EXPIRING);
	if (p->minimum_points % p->step_points != 0)
		policy_error(ps, false, "\"minimum_points\" must be a multiple of \"step_points\"");
	pop(ps);
}

static void
parse_reversal_transfer(ParseState *ps, json_t *root, LoyaltyPolicy *p)
{
	static const char *const rkeys[] = {"mode", NULL};
	static const char *const modes[] = {"within_balance", "allow_negative", NULL};
	static const char *const tkeys[] = {"enabled", "yearly_cap_out", "yearly_cap_in", NULL};
	json_t	   *r = json_object_get(root, "reversal");
	json_t	   *t = json_object_get(root, "transfer");

	p->reversal_mode = REVERSAL_WITHIN_BALANCE;
	p->transfer_enabled = true;
	p->transfer_yearly_cap_out = 50000;
	p->transfer_yearly_cap_in = 100000;
	if (r != NULL)
	{
		push_key(ps, "reversal");
		check_keys(ps, r, rkeys);
		p->reversal_mode = get_enum(ps, r, "mode", modes, REVERSAL_WITHIN_BALANCE);
		pop(ps);
	}
	if (t != NULL)
	{
		json_t	   *en;

		push_key(ps, "transfer");
		check_keys(ps, t, tkeys);
		en = json_object_get(t, "enabled");
		if (en != NULL)
		{
			push_key(ps, "enabled");
			if (!json_is_boolean(en))
				policy_error(ps, false, "\"enabled\" must be true or false");
			p->transfer_enabled = json_is_true(en);
			pop(ps);
		}
		p->transfer_yearly_cap_out = get_int(ps, t, "yearly_cap_out", 0, LOYALTY_POLICY_MAX_NUMBER, 50000);
		p->transfer_yearly_cap_in = get_int(ps, t, "yearly_cap_in", 0, LOYALTY_POLICY_MAX_NUMBER, 100000);
		pop(ps);
	}
}

/*
 * parse_root
 *		Validate the top level and fill the policy.
 */
static void
parse_root(ParseState *ps, json_t *root, LoyaltyPolicy *p)
{
	static const char *const keys[] = {
		"version", "currency", "tiers", "qualification", "earning", "expiry",
		"redemption", "reversal", "transfer", "comment", NULL
	};
	static const char *const ckeys[] = {"code", "scale", NULL};
	json_t	   *cur;

	check_keys(ps, root, keys);
	if (json_object_get(root, "version") == NULL)
		policy_error(ps, false, "missing required key \"version\"");
	p->format_version = (int) get_int(ps, root, "version", 1, 1, 1);

	strlcpy(p->currency_code, "CNY", sizeof(p->currency_code));
	p->currency_scale = 2;
	cur = json_object_get(root, "currency");
	if (cur != NULL)
	{
		const char *c;

		push_key(ps, "currency");
		check_keys(ps, cur, ckeys);
		get_string(ps, cur, "code", p->currency_code, sizeof(p->currency_code), "CNY");
		for (c = p->currency_code; *c; c++)
			if (*c < 'A' || *c > 'Z' || strlen(p->currency_code) != 3)
			{
				push_key(ps, "code");
				policy_error(ps, false, "\"code\" must be an ISO 4217 code such as \"CNY\"");
			}
		p->currency_scale = (int) get_int(ps, cur, "scale", 0, 4, 2);
		pop(ps);
	}
	if (json_object_get(root, "comment") != NULL &&
		!json_is_string(json_object_get(root, "comment")))
	{
		push_key(ps, "comment");
		policy_error(ps, false, "\"comment\" must be a string");
	}

	parse_tiers(ps, root, p);
	parse_qualification(ps, root, p);
	parse_earning(ps, root, p);
	parse_expiry(ps, root, p);
	parse_redemption(ps, root, p);
	parse_reversal_transfer(ps, root, p);
}

/*
 * loyalty_policy_parse
 *		Parse text (len bytes, not necessarily NUL-terminated) into *policy,
 *		or ereport(ERROR) with the line, column and path of the problem.
 */
void
loyalty_policy_parse(const char *text, size_t len, LoyaltyPolicy *policy)
{
	MemoryContext cxt;
	json_error_t jerr;
	json_t	   *root;
	ParseState	ps;

	if (len > 1024 * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("loyalty policy document is too large"),
				 errdetail("The document has %zu bytes; the limit is 1 MB.", len)));

	memset(policy, 0, sizeof(*policy));
	cxt = begin_jansson();
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
	{
		char		msg[JSON_ERROR_TEXT_LENGTH];

		strlcpy(msg, jerr.text, sizeof(msg));
		end_jansson(cxt);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid loyalty policy: malformed JSON"),
				 errdetail("At line %d, column %d: %s.", jerr.line, jerr.column, msg)));
	}
	ps.text = text;
	ps.len = len;
	ps.depth = 0;
	ps.policy = policy;
	parse_root(&ps, root, policy);
	end_jansson(cxt);
}

/*
 * money_string
 *		Render minor units as a decimal string with the currency's scale.
 */
static char *
money_string(int64 minor, int scale)
{
	int64		unit = 1;
	int			i;

	for (i = 0; i < scale; i++)
		unit *= 10;
	if (scale == 0)
		return psprintf(INT64_FORMAT, minor);
	return psprintf(INT64_FORMAT ".%0*d", minor / unit, scale, (int) (minor % unit));
}

/*
 * thresholds_json
 *		Build {"nights": n, ...} for the counters a rule uses.
 */
static json_t *
thresholds_json(const TierThresholds *t, int scale)
{
	json_t	   *o = new_object();
	int			c;

	for (c = 0; c < LOYALTY_NUM_COUNTERS; c++)
	{
		if (t->value[c] < 0)
			continue;
		if (c == COUNTER_QUALIFYING_SPEND)
			json_object_set_new(o, loyalty_counter_names[c],
								json_string(money_string(t->value[c], scale)));
		else
			json_object_set_new(o, loyalty_counter_names[c],
								json_integer(t->value[c]));
	}
	return o;
}

/*
 * loyalty_policy_to_json
 *		The policy as a normalised JSON document (every default spelled
 *		out), palloc'd in the caller's context.
 */
char *
loyalty_policy_to_json(const LoyaltyPolicy *p)
{
	static const char *const periods[] = {"calendar_year", "rolling_12_months", "anniversary"};
	static const char *const downgrades[] = {"one_tier", "recompute"};
	static const char *const expiry[] = {"inactivity", "lot_lifetime", "none"};
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext cxt;
	json_t	   *root,
			   *tiers,
			   *arr;
	char	   *dumped;
	char	   *result;
	int			i;

	cxt = begin_jansson();
	root = new_object();
	json_object_set_new(root, "version", json_integer(p->format_version));
	json_object_set_new(root, "currency",
						json_pack("{s:s, s:i}", "code", p->currency_code,
								  "scale", p->currency_scale));
	tiers = json_array();
	for (i = 0; i < p->ntiers; i++)
	{
		const TierPolicy *t = &p->tiers[i];
		json_t	   *tj = json_pack("{s:s, s:s, s:i, s:i}", "code", t->code,
								   "name", t->name, "rank", t->rank,
								   "elite_bonus_percent", t->elite_bonus_percent);

		if (t->has_any || t->has_all)
		{
			json_t	   *q = new_object();

			if (t->has_any)
				json_object_set_new(q, "any", thresholds_json(&t->any, p->currency_scale));
			if (t->has_all)
				json_object_set_new(q, "all", thresholds_json(&t->all, p->currency_scale));
			json_object_set_new(tj, "qualify", q);
		}
		if (t->lifetime_nights > 0)
			json_object_set_new(tj, "lifetime_nights", json_integer(t->lifetime_nights));
		json_array_append_new(tiers, tj);
	}
	json_object_set_new(root, "tiers", tiers);
	json_object_set_new(root, "qualification",
						json_pack("{s:s, s:{s:i, s:i}, s:s}",
								  "period", periods[p->period],
								  "validity", "years_after", p->validity_years_after,
								  "through_month", p->validity_month,
								  "downgrade", downgrades[p->downgrade]));
	arr = json_array();
	for (i = 0; i < p->noverrides; i++)
		json_array_append_new(arr, json_pack("{s:s, s:I}",
											 p->overrides[i].is_store ? "store" : "brand",
											 p->overrides[i].code,
											 "points_per_unit", (json_int_t) p->overrides[i].points_per_unit));
	json_object_set_new(root, "earning",
						json_pack("{s:I, s:o, s:s, s:o}",
								  "base_points_per_unit", (json_int_t) p->base_points_per_unit,
								  "overrides", arr,
								  "pending_until", p->pending_until == PENDING_NONE ? "none" : "checkout",
								  "milestones", json_array()));
	arr = json_object_get(json_object_get(root, "earning"), "milestones");
	for (i = 0; i < p->nmilestones; i++)
	{
		json_t	   *m = json_pack("{s:I, s:I}", "nights", (json_int_t) p->milestones[i].nights,
								  "points", (json_int_t) p->milestones[i].points);

		if (p->milestones[i].every > 0)
			json_object_set_new(m, "every", json_integer(p->milestones[i].every));
		json_array_append_new(arr, m);
	}
	json_object_set_new(root, "expiry",
						json_pack("{s:s, s:i, s:i, s:o, s:i}",
								  "mode", expiry[p->expiry_mode],
								  "inactivity_months", p->inactivity_months,
								  "lot_lifetime_months", p->lot_lifetime_months,
								  "exempt_from_tier", p->expiry_exempt_rank >= 0 ?
								  json_string(p->tiers[p->expiry_exempt_rank].code) : json_null(),
								  "notice_days", p->notice_days));
	json_object_set_new(root, "redemption",
						json_pack("{s:{s:I, s:s}, s:I, s:I, s:s}",
								  "rate", "points", (json_int_t) p->rate_points,
								  "amount", money_string(p->rate_amount, p->currency_scale),
								  "minimum_points", (json_int_t) p->minimum_points,
								  "step_points", (json_int_t) p->step_points,
								  "order", p->redemption_order == REDEEM_OLDEST_FIRST ?
								  "oldest_first" : "soonest_expiring"));
	json_object_set_new(root, "reversal",
						json_pack("{s:s}", "mode", p->reversal_mode == REVERSAL_ALLOW_NEGATIVE ?
								  "allow_negative" : "within_balance"));
	json_object_set_new(root, "transfer",
						json_pack("{s:b, s:I, s:I}", "enabled", p->transfer_enabled,
								  "yearly_cap_out", (json_int_t) p->transfer_yearly_cap_out,
								  "yearly_cap_in", (json_int_t) p->transfer_yearly_cap_in));

	dumped = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT);
	if (dumped == NULL)
		elog(ERROR, "could not render loyalty policy as JSON");
	result = MemoryContextStrdup(outer, dumped);
	end_jansson(cxt);
	return result;
}
