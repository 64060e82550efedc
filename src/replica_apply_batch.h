/*-------------------------------------------------------------------------
 *
 * replica_apply_batch.h
 *	  The replica applier's set-based path for store accruals
 *	  (src/replica_apply_batch.c): a run of accrual events of distinct
 *	  members written by one statement.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_REPLICA_APPLY_BATCH_H
#define LOYALTY_REPLICA_APPLY_BATCH_H

#include "postgres.h"

#include "ledger.h"

/* one accrual of a run: the request, and what its one write will record */
typedef struct ReplicaBatchAccrual
{
	LedgerAccrual req;
	pg_uuid_t	entry_id;
	pg_uuid_t	lot_id;
	int64		balance;		/* the member's balance after it */
	bool		has_expiry;
	TimestampTz expires_at;
	char	   *args;			/* the idempotency record's arguments */
	char	   *lots_json;		/* its lots, as ledger_accrue answers them */
} ReplicaBatchAccrual;

extern bool replica_batch_accrual_prepare(ReplicaBatchAccrual *a,
										  const int64 *balance_before);
extern Datum replica_datum_array(Datum *values, bool *nulls, int n, Oid elemtype);
extern void replica_batch_accrual_write(ReplicaBatchAccrual *items, int n,
										int members);

#endif							/* LOYALTY_REPLICA_APPLY_BATCH_H */
