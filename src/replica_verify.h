/*-------------------------------------------------------------------------
 *
 * replica_verify.h
 *	  HQ's check of a store event's claims (actor, time, source) before it
 *	  is applied (replica_verify.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_REPLICA_VERIFY_H
#define LOYALTY_REPLICA_VERIFY_H

#include "postgres.h"

extern void replica_verify_init(void);
extern void replica_verify_event(const char *event_id, const char *store_code,
								 const char *kind, int64 incarnation,
								 Datum member_id, Datum payload,
								 Datum recorded_at, Datum recorded_by);

#endif							/* LOYALTY_REPLICA_VERIFY_H */
