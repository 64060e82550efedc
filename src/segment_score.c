/*-------------------------------------------------------------------------
 *
 * segment_score.c
 *	  One batch of a member score run (docs/segments.md, "Scores"):
 *
 *	loyalty._score_batch(run_id uuid, after uuid, batch_size int4)
 *		returns (last_key uuid, processed int4, changed int4)
 *
 * The batch reads the next batch_size active members after a key and all
 * their stays up to the run's date in one query (ordered by member and
 * check-in), computes each member's measures in one pass over the rows,
 * and writes the batch's rows in one INSERT from arrays into the unlogged
 * loyalty.score_stage.  The bins (r, f, m) and the value level need the
 * whole population: loyalty._score_finish adds them at the end of the run
 * as it moves the rows into loyalty.member_score (src/sql/70_score.sql).
 *
 * Measures of a member, with D the run's date (as_of in UTC), W the start
 * of the window (D - window_months), H its middle, P = D - potential_days:
 *	stays, realised value: every stay checked in on or before D
 *	last_stay: the latest check-out, recency_days = D - last_stay (>= 0)
 *	frequency, nights, monetary: stays checked in after W
 *	prior_stays (W, H], recent_stays after H; frequency_falling: recent <
 *	prior
 *	usual interval: (last check-in - first check-in) / (stays - 1), for
 *	2 stays or more; churn_overdue: recency_days > churn_factor * interval
 *	churn_warning: churn_overdue or frequency_falling
 *	potential_frequent: base tier and at least potential_stays stays
 *	checked in after P
 * Cancelled stays do not count.  Money is summed in minor units (int64).
 * Members whose profiling consent is withdrawn are looked at but not
 * scored.
 *
 * SPI goes through the shared layer (src/spi.h): the three statements of
 * a batch are the query table score_queries.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/uuid.h"

#include "roles_caller.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_score_batch);

#define SCORE_MAX_BATCH 100000

/* the parameters of a run, fixed at its start */
typedef struct ScoreParams
{
	DateADT		as_of;			/* D */
	DateADT		window_start;	/* W */
	DateADT		half_start;		/* H */
	DateADT		potential_start;	/* P */
	int64		churn_x100;		/* churn_factor * 100 */
	int32		potential_stays;
	char	   *base_tier;
} ScoreParams;

/* the measures of one member, accumulated over the member's stay rows */
typedef struct ScoreAcc
{
	pg_uuid_t	member_id;
	bool		base;
	bool		consented;
	int32		stays;
	DateADT		first_in;
	DateADT		last_in;
	DateADT		last_out;
	int32		frequency;
	int32		nights;
	int64		monetary_minor;
	int64		realised_minor;
	int32		recent;
	int32		prior;
	int32		potential;
} ScoreAcc;

/* column arrays of the batch's INSERT */
typedef struct ScoreCols
{
	int			n;
	Datum	   *member_id,
			   *stays,
			   *last_stay,
			   *recency,
			   *frequency,
			   *nights,
			   *monetary,
			   *realised,
			   *span,
			   *recent,
			   *prior,
			   *overdue,
			   *falling,
			   *potential;
	bool	   *last_null,
			   *span_null;
} ScoreCols;

/* the statements of a batch (src/spi.h query table) */
enum ScoreQuery
{
	SQ_PARAMS,					/* the parameters of a running run */
	SQ_ROWS,					/* the next members with their stays */
	SQ_INSERT					/* the batch's score rows, from arrays */
};

static const LspiQuery score_query_defs[] = {
	[SQ_PARAMS] = {
		"SELECT (r.params->>'as_of_date')::date, (r.params->>'window_start')::date,"
		" (r.params->>'half_start')::date, (r.params->>'potential_start')::date,"
		" round((r.params->>'churn_factor')::numeric * 100)::int8,"
		" (r.params->>'potential_stays')::int4, r.params->>'base_tier'"
		" FROM loyalty.job r"
		" WHERE r.job_id = $1 AND r.kind = 'score' AND r.state = 'running'",
		1, {UUIDOID}
	},
	/*
	 * consent once per member (in the LIMITed subquery), not per stay row;
	 * the stays of each member through the (member_id, check_in) index: a
	 * LATERAL subquery that is not pulled up (OFFSET 0), so that the saved
	 * generic plan cannot turn into a hash join over every stay per batch
	 */
	[SQ_ROWS] = {
		"SELECT m.member_id, m.tier = $4, m.consented,"
		" s.check_in, s.check_out,"
		" ((s.room_revenue + s.other_revenue) * 100)::int8"
		" FROM (SELECT x.member_id, x.tier,"
		"        loyalty._segment_consent(x.member_id, 'profiling') AS consented"
		"        FROM loyalty.member x"
		"        WHERE x.member_id > $1 AND x.status = 'active'"
		"        ORDER BY x.member_id LIMIT $2) m"
		" LEFT JOIN LATERAL (SELECT y.check_in, y.check_out, y.room_revenue, y.other_revenue"
		"        FROM loyalty.stay y WHERE y.member_id = m.member_id"
		"         AND y.status <> 'cancelled' AND y.check_in <= $3 OFFSET 0) s ON true"
		" ORDER BY m.member_id, s.check_in",
		4, {UUIDOID, INT4OID, DATEOID, TEXTOID}
	},
	[SQ_INSERT] = {
		"INSERT INTO loyalty.score_stage (run_id, member_id, stays, last_stay,"
		" recency_days, frequency, nights, monetary, realised_value, usual_interval_days,"
		" recent_stays, prior_stays, churn_overdue, frequency_falling, churn_warning,"
		" potential_frequent)"
		" SELECT $1, u.id, u.stays, u.last_stay,"
		" CASE WHEN u.last_stay IS NULL THEN NULL ELSE u.recency END,"
		" u.freq, u.nights, round(u.mon / 100.0, 2), round(u.real / 100.0, 2),"
		" round(u.span::numeric / nullif(u.stays - 1, 0), 2),"
		" u.recent, u.prior, u.overdue, u.falling, u.overdue OR u.falling, u.potential"
		" FROM unnest($2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
		" AS u(id, stays, last_stay, recency, freq, nights, mon, real, span, recent,"
		" prior, overdue, falling, potential)",
		15, {UUIDOID, UUIDARRAYOID, INT4ARRAYOID, DATEARRAYOID,
			INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
			INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID, BOOLARRAYOID, BOOLARRAYOID,
		BOOLARRAYOID}
	},
};
static SPIPlanPtr score_plans[lengthof(score_query_defs)];
static const LspiQueryTable score_queries =
LSPI_QUERY_TABLE("score", score_query_defs, score_plans);

/*
 * run_params
 *		The parameters of a running score run; error if there is none.
 */
static void
run_params(pg_uuid_t *run_id, ScoreParams *p)
{
	Datum		v[1] = {UUIDPGetDatum(run_id)};
	HeapTuple	t;
	TupleDesc	d;
	bool		isnull;

	if (lspi_query(&score_queries, SQ_PARAMS, v, NULL, true, 1, SPI_OK_SELECT) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("score run %s is not running",
						DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(run_id))))));
	t = SPI_tuptable->vals[0];
	d = SPI_tuptable->tupdesc;
	p->as_of = DatumGetDateADT(SPI_getbinval(t, d, 1, &isnull));
	p->window_start = DatumGetDateADT(SPI_getbinval(t, d, 2, &isnull));
	p->half_start = DatumGetDateADT(SPI_getbinval(t, d, 3, &isnull));
	p->potential_start = DatumGetDateADT(SPI_getbinval(t, d, 4, &isnull));
	p->churn_x100 = DatumGetInt64(SPI_getbinval(t, d, 5, &isnull));
	p->potential_stays = DatumGetInt32(SPI_getbinval(t, d, 6, &isnull));
	p->base_tier = SPI_getvalue(t, d, 7);
	if (p->base_tier == NULL)
		p->base_tier = "";
}

/*
 * batch_rows
 *		Run the batch query: one row per stay of each of the next members
 *		(one row with NULL stay columns for a member without stays).
 *		Leaves the rows in SPI_tuptable.
 */
static void
batch_rows(const ScoreParams *p, pg_uuid_t *after, int batch_size)
{
	Datum		v[4];

	v[0] = UUIDPGetDatum(after);
	v[1] = Int32GetDatum(batch_size);
	v[2] = DateADTGetDatum(p->as_of);
	v[3] = CStringGetTextDatum(p->base_tier);
	lspi_query(&score_queries, SQ_ROWS, v, NULL, true, 0, SPI_OK_SELECT);
}

/*
 * add_member
 *		Append a member's finished measures to the columns (consenting
 *		members only).
 */
static void
add_member(const ScoreParams *p, const ScoreAcc *a, ScoreCols *c)
{
	int			i = c->n;
	pg_uuid_t  *id;
	int32		recency = 0;
	bool		overdue = false;

	if (!a->consented)
		return;
	id = palloc(sizeof(pg_uuid_t));
	*id = a->member_id;
	c->member_id[i] = UUIDPGetDatum(id);
	c->stays[i] = Int32GetDatum(a->stays);
	c->last_null[i] = (a->stays == 0);
	if (a->stays > 0)
	{
		recency = (a->last_out < p->as_of) ? (int32) (p->as_of - a->last_out) : 0;
		c->last_stay[i] = DateADTGetDatum(a->last_out);
	}
	else
		c->last_stay[i] = (Datum) 0;
	c->recency[i] = Int32GetDatum(recency);
	c->frequency[i] = Int32GetDatum(a->frequency);
	c->nights[i] = Int32GetDatum(a->nights);
	c->monetary[i] = Int64GetDatum(a->monetary_minor);
	c->realised[i] = Int64GetDatum(a->realised_minor);
	c->span_null[i] = (a->stays < 2);
	c->span[i] = Int32GetDatum(a->stays >= 2 ? (int32) (a->last_in - a->first_in) : 0);
	/* recency > factor * span / (stays - 1), in integers */
	if (a->stays >= 2)
		overdue = (int64) recency * (a->stays - 1) * 100 >
			p->churn_x100 * (int64) (a->last_in - a->first_in);
	c->recent[i] = Int32GetDatum(a->recent);
	c->prior[i] = Int32GetDatum(a->prior);
	c->overdue[i] = BoolGetDatum(overdue);
	c->falling[i] = BoolGetDatum(a->recent < a->prior);
	c->potential[i] = BoolGetDatum(a->base && a->potential >= p->potential_stays);
	c->n++;
}

/*
 * array_of
 *		A one-dimensional array of n values of a type, with optional nulls.
 */
static Datum
array_of(Datum *v, bool *nulls, int n, Oid type)
{
	int16		len;
	bool		byval;
	char		align;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(type, &len, &byval, &align);
	return PointerGetDatum(construct_md_array(v, nulls, 1, dims, lbs, type, len, byval, align));
}

/*
 * write_scores
 *		Insert the batch's score rows in one statement.
 */
static void
write_scores(pg_uuid_t *run_id, ScoreCols *c)
{
	Datum		v[15];

	if (c->n == 0)
		return;
	v[0] = UUIDPGetDatum(run_id);
	v[1] = array_of(c->member_id, NULL, c->n, UUIDOID);
	v[2] = array_of(c->stays, NULL, c->n, INT4OID);
	v[3] = array_of(c->last_stay, c->last_null, c->n, DATEOID);
	v[4] = array_of(c->recency, NULL, c->n, INT4OID);
	v[5] = array_of(c->frequency, NULL, c->n, INT4OID);
	v[6] = array_of(c->nights, NULL, c->n, INT4OID);
	v[7] = array_of(c->monetary, NULL, c->n, INT8OID);
	v[8] = array_of(c->realised, NULL, c->n, INT8OID);
	v[9] = array_of(c->span, c->span_null, c->n, INT4OID);
	v[10] = array_of(c->recent, NULL, c->n, INT4OID);
	v[11] = array_of(c->prior, NULL, c->n, INT4OID);
	v[12] = array_of(c->overdue, NULL, c->n, BOOLOID);
	v[13] = array_of(c->falling, NULL, c->n, BOOLOID);
	v[14] = array_of(c->potential, NULL, c->n, BOOLOID);
	lspi_query(&score_queries, SQ_INSERT, v, NULL, false, 0, SPI_OK_INSERT);
}

/*
 * cols_alloc
 *		Column arrays for up to n members.
 */
static void
cols_alloc(ScoreCols *c, int n)
{
	c->n = 0;
	c->member_id = palloc(n * sizeof(Datum));
	c->stays = palloc(n * sizeof(Datum));
	c->last_stay = palloc(n * sizeof(Datum));
	c->recency = palloc(n * sizeof(Datum));
	c->frequency = palloc(n * sizeof(Datum));
	c->nights = palloc(n * sizeof(Datum));
	c->monetary = palloc(n * sizeof(Datum));
	c->realised = palloc(n * sizeof(Datum));
	c->span = palloc(n * sizeof(Datum));
	c->recent = palloc(n * sizeof(Datum));
	c->prior = palloc(n * sizeof(Datum));
	c->overdue = palloc(n * sizeof(Datum));
	c->falling = palloc(n * sizeof(Datum));
	c->potential = palloc(n * sizeof(Datum));
	c->last_null = palloc0(n * sizeof(bool));
	c->span_null = palloc0(n * sizeof(bool));
}

/*
 * loyalty._score_batch(run_id, after, batch_size)
 *		Score the next batch_size active members after a key.
 */
Datum
loyalty_score_batch(PG_FUNCTION_ARGS)
{
	pg_uuid_t	run_id;
	pg_uuid_t	after;
	int			batch_size;
	ScoreParams p;
	ScoreAcc	a;
	ScoreCols	c;
	TupleDesc	tupdesc;
	Datum		out[3];
	bool		onull[3] = {false, false, false};
	pg_uuid_t  *last = palloc0(sizeof(pg_uuid_t));
	int			processed = 0;
	uint64		i;
	MemoryContext outer = CurrentMemoryContext;

	loyalty_require_department(loyalty_caller(), DEPT_BIT(DEPT_CRM) | DEPT_BIT(DEPT_DBA));
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("run_id, after and batch_size must not be null")));
	run_id = *PG_GETARG_UUID_P(0);
	after = *PG_GETARG_UUID_P(1);
	batch_size = PG_GETARG_INT32(2);
	if (batch_size < 1 || batch_size > SCORE_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be between 1 and %d", SCORE_MAX_BATCH),
				 errdetail("The batch size given was %d.", batch_size)));

	lspi_connect(LSPI_READ_WRITE);
	run_params(&run_id, &p);
	batch_rows(&p, &after, batch_size);
	cols_alloc(&c, batch_size);
	memset(&a, 0, sizeof(a));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		pg_uuid_t  *id;
		bool		isnull;
		DateADT		in,
					outd;
		int64		money;

		id = DatumGetUUIDP(SPI_getbinval(t, d, 1, &isnull));
		if (processed == 0 || memcmp(id, &a.member_id, sizeof(pg_uuid_t)) != 0)
		{
			if (processed > 0)
				add_member(&p, &a, &c);
			memset(&a, 0, sizeof(a));
			a.member_id = *id;
			a.base = DatumGetBool(SPI_getbinval(t, d, 2, &isnull));
			a.consented = DatumGetBool(SPI_getbinval(t, d, 3, &isnull));
			processed++;
		}
		in = DatumGetDateADT(SPI_getbinval(t, d, 4, &isnull));
		if (isnull)
			continue;			/* no stay */
		outd = DatumGetDateADT(SPI_getbinval(t, d, 5, &isnull));
		money = DatumGetInt64(SPI_getbinval(t, d, 6, &isnull));
		if (a.stays == 0)
			a.first_in = in;
		a.last_in = in;
		if (a.stays == 0 || outd > a.last_out)
			a.last_out = outd;
		a.stays++;
		a.realised_minor += money;
		if (in > p.window_start)
		{
			a.frequency++;
			a.nights += (int32) (outd - in);
			a.monetary_minor += money;
			if (in > p.half_start)
				a.recent++;
			else
				a.prior++;
		}
		if (in > p.potential_start)
			a.potential++;
	}
	if (processed > 0)
	{
		add_member(&p, &a, &c);
		*last = a.member_id;
	}
	write_scores(&run_id, &c);
	lspi_finish();

	MemoryContextSwitchTo(outer);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	out[0] = UUIDPGetDatum(last);
	onull[0] = (processed == 0);
	out[1] = Int32GetDatum(processed);
	out[2] = Int32GetDatum(c.n);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), out, onull)));
}
