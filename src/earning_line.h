/*-------------------------------------------------------------------------
 *
 * earning_line.h
 *	  Earning lines: building them, recording them and posting them to the
 *	  ledger (provider: earning_line.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_EARNING_LINE_H
#define LOYALTY_EARNING_LINE_H

#include "earning.h"

extern EarnLine *earning_add_line(EarnResult *out, EarnKind kind, int64 points);

/* the one place points leave the engine */
extern void earning_post(const EarnResult *r, int from_line, const char *source,
						 const pg_uuid_t *source_id, const pg_uuid_t *member_id,
						 const char *store, bool pending, TimestampTz occurred_at);
extern void earning_activate(const pg_uuid_t *source_id,
							 const pg_uuid_t *member_id, const char *store);

#endif							/* LOYALTY_EARNING_LINE_H */
