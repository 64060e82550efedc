/*-------------------------------------------------------------------------
 *
 * job.h
 *	  Batching hooks of the long jobs (docs/operations.md, "Long jobs and
 *	  their progress"): one batch of members after a key, committed by the
 *	  calling procedure, and the count a job starts with.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_JOB_H
#define LOYALTY_JOB_H

#include "datatype/timestamp.h"
#include "utils/uuid.h"

/* what one batch did */
typedef struct JobBatch
{
	pg_uuid_t	last_key;		/* the last member processed (the next "after") */
	int			processed;		/* members looked at */
	int			changed;		/* members changed */
} JobBatch;

/* src/ledger_expire.c */
extern int64 ledger_expire_due_count(TimestampTz as_of);
extern void ledger_expire_batch(TimestampTz as_of, pg_uuid_t after,
								int batch_size, JobBatch *out);

/* src/ledger_accrue.c */
extern int64 ledger_activate_due_count(TimestampTz as_of);
extern void ledger_activate_due_batch(TimestampTz as_of, pg_uuid_t after,
									  int batch_size, JobBatch *out);

#endif							/* LOYALTY_JOB_H */
