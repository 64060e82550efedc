/*-------------------------------------------------------------------------
 *
 * audit_chain.c
 *	  Extending the audit hash chain: one transaction that appends a batch
 *	  of read records and every committed staged change record to
 *	  loyalty.audit_log, each hashed with its predecessor.
 *
 * Called by the writers only: the pool's writers (src/audit_writer.c) with
 * a batch of every queued read of their database, and a session's own
 * writer (src/audit_session.c, the library not preloaded) with one read.
 * Whoever calls it holds the table lock on loyalty.audit_log from the
 * chain's head to its commit, so the chain is extended by one transaction
 * at a time; a batch costs one commit (group commit).
 *
 * The records go into the log by one INSERT per thousand (arrays of the
 * columns, unnest): a statement per record was most of a sweep's cost.
 *
 * The hash is SHA-256 over the previous hash and a canonical text of the
 * record, computed here exactly as loyalty._audit_hash() computes it in
 * SQL (src/sql/42_audit_trail.sql), which audit_verify() uses.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "replication/syncrep.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audit.h"
#include "spi.h"

/* one record being chained: a read from the queue or a staged change */
typedef struct ChainRec
{
	TimestampTz at;
	char	   *login;
	char	   *role;
	char	   *store_code;
	char	   *department;
	char	   *member_id;		/* uuid text */
	char	   *action;
	char	   *fields;			/* text[] in its output form */
	char	   *purpose;
	char	   *detail;			/* jsonb in its output form */
} ChainRec;

static SPIPlanPtr insert_plan_11 = NULL;

/* staged change records taken by this process so far (its sweeps' deletes) */
uint64		loyalty_audit_staged_taken = 0;
static SPIPlanPtr insert_batch_plan = NULL;

/* records inserted by one statement of a batch */
#define CHAIN_INSERT_CHUNK	1000

/*
 * loyalty_audit_schema_12
 *		Whether the installed extension has the 1.2 audit schema (change
 *		staging, log detail): the library also serves databases still at
 *		1.0 or 1.1 (one loyalty.so for every version), whose C entry points
 *		must go on working until ALTER EXTENSION loyalty UPDATE.
 */
bool
loyalty_audit_schema_12(void)
{
	Oid			nsp = get_namespace_oid("loyalty", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("audit_change_staging", nsp));
}

/*
 * append_literal
 *		format()'s %L after a space: a quoted literal, or NULL.
 */
static void
append_literal(StringInfo buf, const char *v)
{
	appendStringInfoChar(buf, ' ');
	if (v == NULL)
		appendStringInfoString(buf, "NULL");
	else
		appendStringInfoString(buf, quote_literal_cstr(v));
}

/*
 * chain_hash
 *		SHA-256 of prev || canonical text, the same as loyalty._audit_hash().
 */
static void
chain_hash(const uint8 *prev, int prevlen, int64 audit_id, const ChainRec *r,
		   uint8 *out)
{
	StringInfoData buf;
	pg_cryptohash_ctx *ctx;
	char	   *utf8;
	int64		epoch_us;

	epoch_us = r->at + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
	initStringInfo(&buf);
	appendStringInfo(&buf, INT64_FORMAT " " INT64_FORMAT, audit_id, epoch_us);
	append_literal(&buf, r->login);
	append_literal(&buf, r->role);
	append_literal(&buf, r->store_code);
	append_literal(&buf, r->department);
	append_literal(&buf, r->member_id);
	append_literal(&buf, r->action);
	append_literal(&buf, r->fields);
	append_literal(&buf, r->purpose);
	if (r->detail != NULL)
		append_literal(&buf, r->detail);
	utf8 = pg_server_to_any(buf.data, buf.len, PG_UTF8);

	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		(prevlen > 0 && pg_cryptohash_update(ctx, prev, prevlen) < 0) ||
		pg_cryptohash_update(ctx, (const uint8 *) utf8, strlen(utf8)) < 0 ||
		pg_cryptohash_final(ctx, out, PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute the audit hash: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
}

/*
 * read_head
 *		The chain's last id and hash from the first row of the last result
 *		(columns audit_id, hash), if there is one.
 */
static bool
read_head(uint64 nrows, int64 *last_id, uint8 *prev, int *prevlen)
{
	bool		isnull;
	bytea	   *b;

	if (nrows != 1)
		return false;
	*last_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	*prevlen = Min(VARSIZE_ANY_EXHDR(b), PG_SHA256_DIGEST_LENGTH);
	memcpy(prev, VARDATA_ANY(b), *prevlen);
	return true;
}

/*
 * take_staged
 *		Delete every committed staged change record and append them to
 *		*recs in staging order; returns the new count.
 */
static int
take_staged(ChainRec **recs, int nrecs, int *cap)
{
	uint64		n,
				j,
				k;
	int64	   *ids;
	ChainRec   *staged;
	int		   *order;

	n = lspi_exec("DELETE FROM loyalty.audit_change_staging s "
				  "RETURNING s.staged_id, s.at, s.login, s.role, s.store_code, "
				  "s.department, s.member_id, s.action, NULL::text, s.purpose, "
				  "s.detail::text", 0, NULL, NULL, NULL, false, 0,
				  SPI_OK_DELETE_RETURNING);
	if (n == 0)
		return nrecs;
	loyalty_audit_staged_taken += n;
	ids = palloc(sizeof(int64) * n);
	staged = palloc(sizeof(ChainRec) * n);
	order = palloc(sizeof(int) * n);
	for (j = 0; j < n; j++)
	{
		HeapTuple	t = SPI_tuptable->vals[j];
		bool		isnull;
		ChainRec   *r = &staged[j];

		ids[j] = DatumGetInt64(SPI_getbinval(t, SPI_tuptable->tupdesc, 1, &isnull));
		r->at = DatumGetTimestampTz(SPI_getbinval(t, SPI_tuptable->tupdesc, 2, &isnull));
		r->login = lspi_text(j, 3);
		r->role = lspi_text(j, 4);
		r->store_code = lspi_text(j, 5);
		r->department = lspi_text(j, 6);
		r->member_id = lspi_text(j, 7);
		r->action = lspi_text(j, 8);
		r->fields = lspi_text(j, 9);
		r->purpose = lspi_text(j, 10);
		r->detail = lspi_text(j, 11);
		order[j] = j;
	}
	/* insertion sort by staged_id (RETURNING has no order) */
	for (j = 1; j < n; j++)
	{
		int			o = order[j];

		for (k = j; k > 0 && ids[order[k - 1]] > ids[o]; k--)
			order[k] = order[k - 1];
		order[k] = o;
	}
	if (nrecs + n > *cap)
	{
		*cap = nrecs + n;
		*recs = repalloc(*recs, sizeof(ChainRec) * *cap);
	}
	for (j = 0; j < n; j++)
		(*recs)[nrecs++] = staged[order[j]];
	return nrecs;
}

/*
 * read_to_chain
 *		A queued read as a record to chain.
 */
static void
read_to_chain(const AuditRead *a, ChainRec *r)
{
	r->at = a->at;
	r->login = pstrdup(a->login);
	r->role = pstrdup(a->role);
	r->store_code = a->has_store ? pstrdup(a->store_code) : NULL;
	r->department = a->has_department ? pstrdup(a->department) : NULL;
	r->member_id = a->has_member
		? DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&a->member)))
		: NULL;
	r->action = pstrdup(a->action);
	/* the array's output form, as it will be stored */
	r->fields = a->has_fields
		? OidOutputFunctionCall(F_ARRAY_OUT,
								OidInputFunctionCall(F_ARRAY_IN, (char *) a->fields, TEXTOID, -1))
		: NULL;
	r->purpose = a->has_purpose ? pstrdup(a->purpose) : NULL;
	r->detail = NULL;
}

/*
 * bytea_of
 *		A hash as a bytea datum.
 */
static Datum
bytea_of(const uint8 *h, int len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), h, len);
	return PointerGetDatum(b);
}

/*
 * insert_chained_11
 *		Insert one record into a 1.0/1.1 log (no detail column; reads have
 *		none) as audit_id with its hashes.
 */
static void
insert_chained_11(const ChainRec *r, int64 audit_id, const uint8 *prev, int prevlen,
				  const uint8 *hash)
{
	static const Oid types[12] = {INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID,
		TEXTOID, UUIDOID, TEXTOID, TEXTARRAYOID, TEXTOID, BYTEAOID, BYTEAOID};
	Datum		v[12];
	char		n[12];
	int			c;

	for (c = 0; c < 12; c++)
		n[c] = ' ';
#define TXT(i, s) do { if ((s) == NULL) n[i] = 'n', v[i] = (Datum) 0; \
	else v[i] = CStringGetTextDatum(s); } while (0)
	v[0] = Int64GetDatum(audit_id);
	v[1] = TimestampTzGetDatum(r->at);
	TXT(2, r->login);
	TXT(3, r->role);
	TXT(4, r->store_code);
	TXT(5, r->department);
	if (r->member_id == NULL)
		n[6] = 'n', v[6] = (Datum) 0;
	else
		v[6] = DirectFunctionCall1(uuid_in, CStringGetDatum(r->member_id));
	TXT(7, r->action);
	if (r->fields == NULL)
		n[8] = 'n', v[8] = (Datum) 0;
	else
		v[8] = OidInputFunctionCall(F_ARRAY_IN, r->fields, TEXTOID, -1);
	TXT(9, r->purpose);
#undef TXT
	if (prevlen > 0)
		v[10] = bytea_of(prev, prevlen);
	else
		n[10] = 'n', v[10] = (Datum) 0;
	v[11] = bytea_of(hash, PG_SHA256_DIGEST_LENGTH);
	lspi_run(lspi_plan(&insert_plan_11,
					   "INSERT INTO loyalty.audit_log (audit_id, at, login, role, "
					   "store_code, department, member_id, action, fields, purpose, "
					   "prev_hash, hash) "
					   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
					   12, types),
			 v, n, false, 0, SPI_OK_INSERT);
}

/*
 * ChainBatch
 *		The columns of the records to insert by one statement (a 1.2 log),
 *		one array per column: inserting them one statement per record cost
 *		the writers most of their time (docs/performance.md).
 */
#define CHAIN_COLS 13
typedef struct ChainBatch
{
	int			n;
	Datum		v[CHAIN_COLS][CHAIN_INSERT_CHUNK];
	bool		isnull[CHAIN_COLS][CHAIN_INSERT_CHUNK];
} ChainBatch;

/* the element types of the statement's arrays, in column order */
static const Oid chain_elem[CHAIN_COLS] = {INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, BYTEAOID, BYTEAOID};

/*
 * batch_flush
 *		Insert the batch's records in one statement (unnest of one array
 *		per column; fields and detail go as their text forms and are cast
 *		as the log's columns, as array_in and jsonb_in would parse them).
 */
static void
batch_flush(ChainBatch *b)
{
	static const Oid types[CHAIN_COLS] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, UUIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, BYTEAARRAYOID, BYTEAARRAYOID};
	Datum		arrays[CHAIN_COLS];
	int			c;

	if (b->n == 0)
		return;
	for (c = 0; c < CHAIN_COLS; c++)
	{
		int16		typlen;
		bool		typbyval;
		char		typalign;
		int			dims[1] = {b->n};
		int			lbs[1] = {1};

		get_typlenbyvalalign(chain_elem[c], &typlen, &typbyval, &typalign);
		arrays[c] = PointerGetDatum(construct_md_array(b->v[c], b->isnull[c], 1, dims, lbs,
													   chain_elem[c], typlen, typbyval, typalign));
	}
	lspi_run(lspi_plan(&insert_batch_plan,
					   "INSERT INTO loyalty.audit_log (audit_id, at, login, role, "
					   "store_code, department, member_id, action, fields, purpose, "
					   "detail, prev_hash, hash) "
					   "SELECT r.i, r.a, r.l, r.ro, r.s, r.d, r.m, r.ac, r.f::text[], r.p, "
					   "r.de::jsonb, r.ph, r.h "
					   "FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
					   "AS r(i, a, l, ro, s, d, m, ac, f, p, de, ph, h)",
					   CHAIN_COLS, types),
			 arrays, NULL, false, 0, SPI_OK_INSERT);
	b->n = 0;
}

/*
 * batch_add
 *		Add one record, as audit_id with its hashes, to the batch; flushed
 *		when full.
 */
static void
batch_add(ChainBatch *b, const ChainRec *r, int64 audit_id, const uint8 *prev, int prevlen,
		  const uint8 *hash)
{
	int			i = b->n;

#define TXT(c, s) do { b->isnull[c][i] = ((s) == NULL); \
	b->v[c][i] = (s) == NULL ? (Datum) 0 : CStringGetTextDatum(s); } while (0)
	b->isnull[0][i] = false;
	b->v[0][i] = Int64GetDatum(audit_id);
	b->isnull[1][i] = false;
	b->v[1][i] = TimestampTzGetDatum(r->at);
	TXT(2, r->login);
	TXT(3, r->role);
	TXT(4, r->store_code);
	TXT(5, r->department);
	b->isnull[6][i] = (r->member_id == NULL);
	b->v[6][i] = r->member_id == NULL ? (Datum) 0
		: DirectFunctionCall1(uuid_in, CStringGetDatum(r->member_id));
	TXT(7, r->action);
	TXT(8, r->fields);
	TXT(9, r->purpose);
	TXT(10, r->detail);
#undef TXT
	b->isnull[11][i] = (prevlen == 0);
	b->v[11][i] = prevlen > 0 ? bytea_of(prev, prevlen) : (Datum) 0;
	b->isnull[12][i] = false;
	b->v[12][i] = bytea_of(hash, PG_SHA256_DIGEST_LENGTH);
	if (++b->n == CHAIN_INSERT_CHUNK)
		batch_flush(b);
}

/*
 * loyalty_audit_chain
 *		In a transaction of its own: become the one process extending the
 *		chain, take its head (kept in shared memory; read from the table, or
 *		the anchor left by a retention purge, after a start or a failure),
 *		take the committed staged changes (if sweep), append them and then
 *		the reads, commit once (group commit), give the chain to the next
 *		writer and return once the commit is durable.  Errors propagate (a
 *		writer then exits and its reads are refused).
 *
 * The commit itself does not wait for the disk: the chain is handed on as
 * soon as the commit record is written, and the pool's writer goes on with
 * the next batch while the readers of this one wait for the flush
 * themselves (loyalty_audit_flush: XLogFlush, then the wait for the
 * synchronous standbys that synchronous_commit asks for).  A crash can
 * only lose a suffix of the WAL, so a lost batch never leaves a later one
 * chained to it; and no read is answered before its record is flushed.
 * Without the pool (ops NULL: library not preloaded) there is no shared
 * head: the table lock serialises the session writers and each commit is
 * synchronous.
 */
XLogRecPtr
loyalty_audit_chain(const AuditRead *reads, int nreads, bool sweep, bool flush,
					const AuditChainOps *ops)
{
	ChainRec   *recs;
	int			nrecs = 0;
	int			cap;
	int			i;
	int64		last_id = 0;
	uint8		prev[PG_SHA256_DIGEST_LENGTH];
	int			prevlen = 0;
	bool		v12;
	bool		pooled = (ops != NULL);
	bool		known = false;
	ChainBatch *batch;
	Oid			relid = InvalidOid;
	Oid			nsp;
	int			save_sync;

	/* the writers' records are durable whatever the server's default */
	if (synchronous_commit < SYNCHRONOUS_COMMIT_ON)
		SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, "loyalty audit append");
	nsp = get_namespace_oid("loyalty", true);
	if (OidIsValid(nsp))
		relid = get_relname_relid("audit_log", nsp);
	/* before the snapshot: the previous owner's commit must be visible */
	if (pooled)
		known = ops->acquire(relid, &last_id, prev, &prevlen);

	lspi_connect(LSPI_READ_WRITE);
	/* a database still at 1.0/1.1: no staging, anchor or detail */
	v12 = loyalty_audit_schema_12();
	if (!v12)
		sweep = false;
	PushActiveSnapshot(GetTransactionSnapshot());

	if (!pooled)
		lspi_exec("LOCK TABLE loyalty.audit_log IN SHARE ROW EXCLUSIVE MODE",
				  0, NULL, NULL, NULL, false, 0, SPI_OK_UTILITY);
	if (!known &&
		!read_head(lspi_exec("SELECT audit_id, hash FROM loyalty.audit_log "
							 "ORDER BY audit_id DESC LIMIT 1",
							 0, NULL, NULL, NULL, false, 1, SPI_OK_SELECT),
				   &last_id, prev, &prevlen) && v12)
	{
		/* an anchor left by a retention purge continues the chain */
		(void) read_head(lspi_exec("SELECT audit_id, hash FROM loyalty.audit_anchor "
								   "ORDER BY audit_id DESC LIMIT 1",
								   0, NULL, NULL, NULL, false, 1, SPI_OK_SELECT),
						 &last_id, prev, &prevlen);
	}

	cap = nreads + 16;
	recs = palloc(sizeof(ChainRec) * cap);
	/* committed change records first, in staging order */
	if (sweep)
		nrecs = take_staged(&recs, nrecs, &cap);
	/* then the batch of reads, in queue order */
	if (nrecs + nreads > cap)
	{
		cap = nrecs + nreads;
		recs = repalloc(recs, sizeof(ChainRec) * cap);
	}
	for (i = 0; i < nreads; i++)
		read_to_chain(&reads[i], &recs[nrecs++]);

	batch = v12 && nrecs > 0 ? palloc(sizeof(ChainBatch)) : NULL;
	if (batch)
		batch->n = 0;
	for (i = 0; i < nrecs; i++)
	{
		uint8		h[PG_SHA256_DIGEST_LENGTH];

		last_id++;
		chain_hash(prev, prevlen, last_id, &recs[i], h);
		if (batch)
			batch_add(batch, &recs[i], last_id, prev, prevlen, h);
		else
			insert_chained_11(&recs[i], last_id, prev, prevlen, h);
		memcpy(prev, h, PG_SHA256_DIGEST_LENGTH);
		prevlen = PG_SHA256_DIGEST_LENGTH;
	}
	if (batch)
		batch_flush(batch);

	lspi_finish();
	PopActiveSnapshot();
	if (!pooled)
	{
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
		return InvalidXLogRecPtr;
	}

	/* commit without waiting for the disk, hand the chain on, then wait */
	save_sync = synchronous_commit;
	synchronous_commit = SYNCHRONOUS_COMMIT_OFF;
	PG_TRY();
	{
		CommitTransactionCommand();
	}
	PG_FINALLY();
	{
		synchronous_commit = save_sync;
	}
	PG_END_TRY();
	ops->release(relid, last_id, prev, prevlen);
	pgstat_report_activity(STATE_IDLE, NULL);
	if (nrecs == 0)
		return InvalidXLogRecPtr;
	if (flush)
		loyalty_audit_flush(XactLastCommitEnd);
	return XactLastCommitEnd;
}

/*
 * loyalty_audit_flush
 *		Wait until the WAL up to lsn is durable: flushed here, and received
 *		by the synchronous standbys if synchronous_commit asks for them.
 *		Many processes waiting for nearby positions share one flush (the
 *		server's own group commit: whoever gets the WAL write lock flushes
 *		everything inserted so far).
 */
void
loyalty_audit_flush(XLogRecPtr lsn)
{
	if (XLogRecPtrIsInvalid(lsn))
		return;
	XLogFlush(lsn);
	SyncRepWaitForLSN(lsn, true);
}
