/*-------------------------------------------------------------------------
 *
 * spi.c
 *	  The one SPI layer (see spi.h): sessions with a read-only mode,
 *	  saved plans, query tables and one-off parameterised statements.
 *
 * The session modes are a stack that follows SPI's own connections: each
 * lspi_connect() pushes, each lspi_finish() pops, and the end of a
 * (sub)transaction drops what an error left behind, as SPI itself does
 * (AtEOXact_SPI, AtEOSubXact_SPI).  So a mode never outlives the entry
 * point that chose it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "spi.h"

#define LSPI_MAX_DEPTH 64

typedef struct LspiSession
{
	LspiMode	mode;
	int			nest_level;		/* transaction nesting level of connect */
} LspiSession;

static LspiSession sessions[LSPI_MAX_DEPTH];
static int	depth = 0;
static bool callbacks_registered = false;

/*
 * lspi_xact_callback
 *		At the end of a transaction no session is open.
 */
static void
lspi_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PREPARE)
		depth = 0;
}

/*
 * lspi_subxact_callback
 *		An aborted subtransaction closes the sessions it opened.
 */
static void
lspi_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		int			level = GetCurrentTransactionNestLevel();

		while (depth > 0 && sessions[depth - 1].nest_level >= level)
			depth--;
	}
}

/*
 * lspi_connect
 *		SPI_connect, and open a session in mode.
 */
void
lspi_connect(LspiMode mode)
{
	int			ret;

	if (!callbacks_registered)
	{
		RegisterXactCallback(lspi_xact_callback, NULL);
		RegisterSubXactCallback(lspi_subxact_callback, NULL);
		callbacks_registered = true;
	}
	if (depth >= LSPI_MAX_DEPTH)
		elog(ERROR, "SPI sessions nested too deeply");
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	sessions[depth].mode = mode;
	sessions[depth].nest_level = GetCurrentTransactionNestLevel();
	depth++;
}

/*
 * lspi_finish
 *		SPI_finish, and close the session.
 */
void
lspi_finish(void)
{
	int			ret;

	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	if (depth > 0)
		depth--;
}

/*
 * lspi_read_only
 *		True if the innermost session was opened read-only.
 */
bool
lspi_read_only(void)
{
	return depth > 0 && sessions[depth - 1].mode == LSPI_READ_ONLY;
}

/*
 * lspi_caller_nonatomic
 *		True if the SPI connection of the calling procedure (not one of
 *		ours) may commit: a CALL made as a statement of its own.
 */
bool
lspi_caller_nonatomic(void)
{
	return SPI_inside_nonatomic_context();
}

/*
 * lspi_plan
 *		The saved plan in *slot, prepared and kept on first use.
 */
SPIPlanPtr
lspi_plan(SPIPlanPtr *slot, const char *sql, int nargs, const Oid *argtypes)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, (Oid *) argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*slot = plan;
	}
	return *slot;
}

/*
 * lspi_run
 *		Execute a saved plan; error unless SPI returns expected
 *		(SPI_OK_SELECT, SPI_OK_INSERT, ...).  A read (read true) runs
 *		read-only inside a read-only session.  Returns SPI_processed.
 */
uint64
lspi_run(SPIPlanPtr plan, const Datum *values, const char *nulls,
		 bool read, long count, int expected)
{
	int			ret = SPI_execute_plan(plan, (Datum *) values, nulls,
									   read && lspi_read_only(), count);

	if (ret != expected)
		elog(ERROR, "SPI_execute_plan returned %s, expected %s",
			 SPI_result_code_string(ret), SPI_result_code_string(expected));
	return SPI_processed;
}

/*
 * lspi_run_latest
 *		Execute a saved read (a SELECT) read-only with the latest snapshot
 *		instead of the statement's: it sees rows committed meanwhile by
 *		other transactions, whatever the caller's isolation level (the
 *		audit trail's rate counts, src/privacy_lookup.c).  Returns
 *		SPI_processed.
 */
uint64
lspi_run_latest(SPIPlanPtr plan, const Datum *values, const char *nulls,
				long count)
{
	int			ret = SPI_execute_snapshot(plan, (Datum *) values, nulls,
										   GetLatestSnapshot(), InvalidSnapshot,
										   true, false, count);

	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_snapshot returned %s, expected SPI_OK_SELECT",
			 SPI_result_code_string(ret));
	return SPI_processed;
}

/*
 * lspi_query_plan
 *		The saved plan of statement q of a query table (for cursors).
 */
SPIPlanPtr
lspi_query_plan(const LspiQueryTable *table, int q)
{
	const LspiQuery *def;

	Assert(q >= 0 && q < table->nqueries);
	def = &table->queries[q];
	return lspi_plan(&table->plans[q], def->sql, def->nargs, def->types);
}

/*
 * lspi_query
 *		Execute statement q of a query table (see spi.h).
 */
uint64
lspi_query(const LspiQueryTable *table, int q, const Datum *values,
		   const char *nulls, bool read, long count, int expected)
{
	SPIPlanPtr	plan = lspi_query_plan(table, q);
	int			ret;

	ret = SPI_execute_plan(plan, (Datum *) values, nulls,
						   read && lspi_read_only(), count);
	if (ret != expected)
		elog(ERROR, "%s statement %d failed: %s", table->name, q,
			 SPI_result_code_string(ret));
	return SPI_processed;
}

/*
 * lspi_exec
 *		A one-off statement with parameters (SPI_execute_with_args).
 */
uint64
lspi_exec(const char *sql, int nargs, const Oid *types, const Datum *values,
		  const char *nulls, bool read, long count, int expected)
{
	int			ret = SPI_execute_with_args(sql, nargs, (Oid *) types,
											(Datum *) values, nulls,
											read && lspi_read_only(), count);

	if (ret != expected)
		elog(ERROR, "SPI_execute_with_args returned %s, expected %s",
			 SPI_result_code_string(ret), SPI_result_code_string(expected));
	return SPI_processed;
}

/*
 * lspi_text
 *		The value at (row, col) (col 1-based) of the last result as text,
 *		or NULL; allocated in the SPI procedure context.
 */
char *
lspi_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}
