/*-------------------------------------------------------------------------
 *
 * spi.h
 *	  The one SPI layer of loyalty (prefix lspi_): connecting, saved plans
 *	  kept in enum-indexed query tables (the ledger's design, extended to
 *	  every subsystem), and one-off parameterised statements.  Every call
 *	  checks SPI's return code; SQL text is never built from input.
 *
 * Read-only mode: a query runs in SPI read-only mode (the calling
 * statement's snapshot, no command counter increment) only if both the
 * query is a read and the SPI session was opened read-only by its entry
 * point: lspi_connect(LSPI_READ_ONLY) in the C function of a STABLE SQL
 * function, lspi_connect(LSPI_READ_WRITE) in a VOLATILE one, whose reads
 * must see its own earlier writes.  The mode belongs to the session (the
 * SPI connection) and is restored when it ends, also on error: there is no
 * process-wide flag to set.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_SPI_H
#define LOYALTY_SPI_H

#include "executor/spi.h"

typedef enum LspiMode
{
	LSPI_READ_WRITE = 0,
	LSPI_READ_ONLY
} LspiMode;

#define LSPI_MAX_ARGS	16

/* one statement of a query table */
typedef struct LspiQuery
{
	const char *sql;
	int			nargs;
	Oid			types[LSPI_MAX_ARGS];
} LspiQuery;

/*
 * A subsystem's statements: a const array of LspiQuery indexed by the
 * subsystem's enum, and a static array of as many plans, prepared on first
 * use and kept for the backend's life (the plan cache revalidates them).
 */
typedef struct LspiQueryTable
{
	const char *name;			/* for error messages: "ledger", "tier" */
	const LspiQuery *queries;
	SPIPlanPtr *plans;
	int			nqueries;
} LspiQueryTable;

#define LSPI_QUERY_TABLE(name, queries, plans) \
	{ (name), (queries), (plans), lengthof(queries) }

/* sessions */
extern void lspi_connect(LspiMode mode);
extern void lspi_finish(void);
extern bool lspi_read_only(void);
extern bool lspi_caller_nonatomic(void);

/* saved plans */
extern SPIPlanPtr lspi_plan(SPIPlanPtr *slot, const char *sql, int nargs,
							const Oid *argtypes);
extern uint64 lspi_run(SPIPlanPtr plan, const Datum *values, const char *nulls,
					   bool read, long count, int expected);
extern uint64 lspi_run_latest(SPIPlanPtr plan, const Datum *values,
							  const char *nulls, long count);
extern SPIPlanPtr lspi_query_plan(const LspiQueryTable *table, int q);
extern uint64 lspi_query(const LspiQueryTable *table, int q, const Datum *values,
						 const char *nulls, bool read, long count, int expected);

/* one-off statements with parameters */
extern uint64 lspi_exec(const char *sql, int nargs, const Oid *types,
						const Datum *values, const char *nulls, bool read,
						long count, int expected);

/* the first column of the first row of the last result, as text (or NULL) */
extern char *lspi_text(int row, int col);

#endif							/* LOYALTY_SPI_H */
