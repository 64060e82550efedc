/*-------------------------------------------------------------------------
 *
 * ledger.h
 *	  The point ledger's C API: accrual, activation, redemption, reversal,
 *	  transfer and expiry, for the SQL entry points (ledger_sql.c) and for
 *	  other areas of the extension that write points in the caller's
 *	  transaction (the earning engine, the store-replica applier).
 *
 * The functions here take explicit arguments and check no caller rights:
 * rights are checked by the SQL entry points.  They check every argument,
 * lock the member's balance row (loyalty.point_balance) before reading or
 * writing any lot, and raise an error (nothing written) on bad input.
 *
 * idem_key may be NULL when the caller has its own idempotency record in
 * the same transaction; otherwise a repeated key with the same arguments
 * returns the first result (replayed = true) and changes nothing, and the
 * same key with other arguments is an error.
 *
 * Each function connects to SPI itself; the result is allocated in the
 * caller's memory context.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_LEDGER_H
#define LOYALTY_LEDGER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/uuid.h"

/* the most points one call may move */
#define LEDGER_MAX_POINTS	INT64CONST(100000000)

typedef struct LedgerResult
{
	bool		has_entry;
	pg_uuid_t	entry_id;
	bool		has_lot;
	pg_uuid_t	lot_id;
	const char *operation;
	bool		has_member;
	pg_uuid_t	member_id;
	int64		points;			/* points moved (positive) */
	int64		balance;		/* the member's balance afterwards */
	bool		has_cash;
	int64		cash_minor;		/* cash value in minor currency units */
	int			cash_scale;
	char	   *lots_json;		/* [{"lot_id": ..., "points": n}, ...] */
	bool		replayed;
} LedgerResult;

typedef struct LedgerAccrual
{
	pg_uuid_t	member_id;
	const char *store_code;
	int64		points;
	const char *source;			/* stay, spend, campaign, bonus, milestone,
								 * adjustment */
	const char *rule;			/* the rule that produced the points, or NULL */
	const char *reference;		/* e.g. the stay id, or NULL */
	bool		has_occurred_at;	/* false: now */
	TimestampTz occurred_at;
	bool		pending;		/* counts only once activated */
	bool		has_activate_at;
	TimestampTz activate_at;	/* pending: activate by date (batch) */
	const char *idem_key;
	bool		sale;			/* points sold (source "purchase"): only the
								 * rewards area sets this */
	bool		require_backing;	/* a store's own call: a stay or charge of
									 * the member at the store must back it
									 * (ledger_authority.c) */
} LedgerAccrual;

/* ledger_authority.c */
extern void ledger_authority_init(void);

/* ledger_accrue.c */
extern void ledger_accrue(const LedgerAccrual *req, LedgerResult *res);
extern void ledger_activate(pg_uuid_t member_id, const char *store_code,
							const char *reference, const char *idem_key,
							LedgerResult *res);
extern void ledger_activate_due(TimestampTz as_of, const char *idem_key,
								LedgerResult *res);

/* ledger_spend.c: every redemption goes through ledger_redeem_points() */
extern void ledger_redeem_reward(pg_uuid_t member_id, const char *store_code,
								 int64 points, const char *reward,
								 const char *idem_key, LedgerResult *res);
extern void ledger_redeem_cash(pg_uuid_t member_id, const char *store_code,
							   Datum amount, const char *idem_key,
							   LedgerResult *res);
extern void ledger_transfer(pg_uuid_t from_member, pg_uuid_t to_member,
							const char *store_code, int64 points,
							const char *idem_key, LedgerResult *res);

/* ledger_refund.c: a redemption given back (rewards cancelled, partner
 * transfers rejected) */
extern void ledger_refund(pg_uuid_t redeem_entry, const char *store_code,
						  const char *reference, const char *idem_key,
						  LedgerResult *res);

/* ledger_reverse.c */
extern void ledger_reverse(pg_uuid_t accrual_entry, const char *store_code,
						   Datum refund_amount, Datum original_amount,
						   const char *idem_key, LedgerResult *res);

/* ledger_expire.c */
extern void ledger_expire(TimestampTz as_of, const char *idem_key,
						  LedgerResult *res);

/* ledger_core.c */
extern int64 ledger_balance(pg_uuid_t member_id);
extern int64 ledger_lock(pg_uuid_t member_id);
extern int64 ledger_cash_points(Datum amount, int64 *minor);

#endif							/* LOYALTY_LEDGER_H */
