/*-------------------------------------------------------------------------
 *
 * ledger_int.h
 *	  Internals shared by the ledger's C files: prepared statements, the
 *	  member lock, idempotency records, entries, lots and draws.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_LEDGER_INT_H
#define LOYALTY_LEDGER_INT_H

#include "fmgr.h"
#include "lib/stringinfo.h"

#include "ledger.h"
#include "spi.h"
#include "policy.h"

typedef enum LedgerQuery
{
	LQ_MEMBER,
	LQ_MEMBER_REQUEST,
	LQ_LOCK,
	LQ_BALANCE_INSERT,
	LQ_BALANCE_UPDATE,
	LQ_STORE,
	LQ_REQUEST_GET,
	LQ_REQUEST_INSERT,
	LQ_ENTRY_INSERT,
	LQ_LOT_INSERT,
	LQ_DRAW_INSERT,
	LQ_LOT_TAKE,
	LQ_DRAW_BATCH,
	LQ_ACCRUE,
	LQ_LOTS_SOONEST,
	LQ_LOTS_OLDEST,
	LQ_DEFICITS,
	LQ_PENDING_BY_REF,
	LQ_PENDING_DUE_MEMBERS,
	LQ_PENDING_DUE,
	LQ_LOT_ACTIVATE,
	LEDGER_NUM_QUERIES
} LedgerQuery;

/* a member, locked for the rest of the transaction */
typedef struct LedgerMember
{
	pg_uuid_t	id;
	int64		balance;
	char		tier[LOYALTY_CODE_LEN];
	char		time_zone[64];
	char		home_store[LOYALTY_CODE_LEN];
	char		status[16];		/* active, suspended, closed */
} LedgerMember;

/* a ledger entry to insert */
typedef struct LedgerEntry
{
	pg_uuid_t	member_id;
	const char *store_code;
	const char *kind;
	int64		points;			/* effect on the balance */
	int64		pending_points;
	int64		balance_after;
	TimestampTz occurred_at;
	const char *reference;
	const pg_uuid_t *related_entry;
	bool		has_cash;
	int64		cash_minor;
	int			cash_scale;
	const char *note;
} LedgerEntry;

/* the policy figures one operation needs, copied out of the cache */
typedef struct LedgerPolicy
{
	int			currency_scale;
	ExpiryMode	expiry_mode;
	int			inactivity_months;
	int			lot_lifetime_months;
	int			notice_days;
	int64		rate_points;
	int64		rate_amount;
	int64		minimum_points;
	int64		step_points;
	RedemptionOrder redemption_order;
	ReversalMode reversal_mode;
	bool		transfer_enabled;
	int64		transfer_cap_out;
	int64		transfer_cap_in;
	int			nexempt;
	char		exempt[LOYALTY_MAX_TIERS][LOYALTY_CODE_LEN];
} LedgerPolicy;

extern uint64 ledger_run(LedgerQuery q, Datum *values, const char *nulls,
						 int expected);
extern void ledger_get_policy(TimestampTz at, LedgerPolicy *lp);
extern void ledger_check_redemption(const LedgerPolicy *lp, int64 points);
extern TimestampTz ledger_now(void);

extern void ledger_check_points(int64 points, const char *what);
extern void ledger_check_store(const char *store_code);
extern void ledger_check_text(const char *s, const char *what, int maxlen);
extern void ledger_lock_member(pg_uuid_t id, LedgerMember *m);
extern bool ledger_lock_member_replay(pg_uuid_t id, const char *key,
									  const char *operation, const char *args,
									  LedgerMember *m, LedgerResult *res);
extern void ledger_require_status(const LedgerMember *m, bool spending);
extern void ledger_set_balance(LedgerMember *m, bool touch_clock,
							   TimestampTz activity_at);

extern bool ledger_idem_replay(const char *key, const char *operation,
							   const char *args, LedgerResult *res);
extern void ledger_idem_record(const char *key, const char *operation,
							   const char *args, const LedgerResult *res);

extern void ledger_export(LedgerResult *res, MemoryContext outer);
extern int64 ledger_settle_deficits(LedgerMember *m, pg_uuid_t entry_id,
									int64 points);
extern pg_uuid_t ledger_new_id(void);
extern pg_uuid_t ledger_insert_entry(const LedgerEntry *e);
extern pg_uuid_t ledger_insert_lot(pg_uuid_t member_id, const char *store_code,
								   const char *source, const char *rule,
								   const char *reference, int64 points,
								   int64 remaining, const char *state,
								   TimestampTz earned_at, const TimestampTz *activate_at,
								   const TimestampTz *active_from,
								   const TimestampTz *expires_at,
								   pg_uuid_t entry_id);
extern void ledger_take(pg_uuid_t entry_id, pg_uuid_t lot_id, int64 points,
						const char *new_state);
extern bool ledger_lot_expiry(const LedgerPolicy *lp, const LedgerMember *m,
							  TimestampTz active_from, TimestampTz *expires_at);

/* a lot drawn on by a debit */
typedef struct LedgerDrawn
{
	pg_uuid_t	lot_id;
	int64		points;
	bool		has_expires;
	TimestampTz expires_at;
} LedgerDrawn;

extern int	ledger_draw(const LedgerMember *m, const LedgerPolicy *lp,
						pg_uuid_t entry_id, int64 points, LedgerDrawn **drawn);
extern void ledger_lots_json(StringInfo buf, const LedgerDrawn *drawn, int n);
extern char *ledger_uuid_text(const pg_uuid_t *u);
extern char *ledger_ts_text(TimestampTz t);

extern int64 ledger_amount_to_minor(Datum amount, int scale, const char *what);
extern void ledger_insufficient(const LedgerMember *m, int64 wanted);

extern void ledger_check_as_of(TimestampTz as_of);

/* ledger_sql.c: a LedgerResult as a loyalty.ledger_result row (records the change) */
extern Datum ledger_result_datum(FunctionCallInfo fcinfo, const LedgerResult *res);

#endif							/* LOYALTY_LEDGER_INT_H */
