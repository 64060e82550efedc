/*-------------------------------------------------------------------------
 *
 * replica_reserve.c
 *	  HQ's offline reserve (issue 14.8, docs/replication.md "Offline
 *	  limits").  A store may hand out, offline, up to its offline cap of a
 *	  member's balance as it last saw it.  While HQ counts a store as
 *	  offline (its slot or HQ's subscription to its outbox is not
 *	  streaming), HQ's own spending (redemptions and transfers out, through
 *	  the ledger's spend_points()) must leave the member at least the sum of
 *	  the caps of those stores: loyalty._offline_reserve() computes it.  A
 *	  spend that would go below it is refused (23514).  Store events applied
 *	  by the outbox applier (src/replica_apply.c) draw on the reserve: that
 *	  is what it is kept for.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/proc.h"
#include "utils/builtins.h"

#include "replica_reserve.h"
#include "spi.h"

/* the local transaction in which the outbox applier applies a store event */
static LocalTransactionId applying_lxid = InvalidLocalTransactionId;

static SPIPlanPtr reserve_plan = NULL;

/*
 * replica_reserve_applying
 *		The outbox applier marks the events it applies (on) and unmarks them
 *		(off).  The mark holds for the current transaction only, so an error
 *		that escapes the applier cannot leave it set.
 */
void
replica_reserve_applying(bool on)
{
	applying_lxid = on ? MyProc->lxid : InvalidLocalTransactionId;
}

/*
 * replica_reserve_check
 *		Refuse HQ's own debit of "points" from a member whose balance is
 *		"balance" (locked by the ledger) if it would leave less than the offline reserve.  Needs an
 *		SPI connection (the ledger's).
 */
void
replica_reserve_check(int64 balance, int64 points)
{
	int64		reserve;
	char	   *stores;
	char	   *text;

	if (applying_lxid != InvalidLocalTransactionId && applying_lxid == MyProc->lxid)
		return;
	if (lspi_run(lspi_plan(&reserve_plan,
						   "SELECT r.points, r.stores FROM loyalty._offline_reserve() r",
						   0, NULL),
				 NULL, NULL, true, 1, SPI_OK_SELECT) == 0)
		return;
	text = lspi_text(0, 1);
	reserve = text ? pg_strtoint64(text) : 0;
	if (reserve <= 0 || balance - points >= reserve)
		return;
	stores = lspi_text(0, 2);
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("points are held for stores that are offline"),
			 errdetail("Stores %s are offline and may redeem up to " INT64_FORMAT
					   " points of this member's balance there; headquarters spends only what is above that (" INT64_FORMAT " of " INT64_FORMAT " points now).",
					   stores ? stores : "?", reserve,
					   balance > reserve ? balance - reserve : 0, balance),
			 errhint("Spend less, or wait until the stores are streaming again (loyalty.replica_status).")));
}
