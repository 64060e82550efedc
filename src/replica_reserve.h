/*-------------------------------------------------------------------------
 *
 * replica_reserve.h
 *	  HQ's offline reserve (replica_reserve.c): while a store is offline,
 *	  HQ's own spending leaves the member the points that store may hand
 *	  out offline.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_REPLICA_RESERVE_H
#define LOYALTY_REPLICA_RESERVE_H

#include "postgres.h"

extern void replica_reserve_applying(bool on);
extern void replica_reserve_check(int64 balance, int64 points);

#endif							/* LOYALTY_REPLICA_RESERVE_H */
