/*-------------------------------------------------------------------------
 *
 * reward.h
 *	  Rewards (docs/rewards.md): the catalogue's pricing rule, redemption
 *	  with inventory, vouchers and certificates, points sale and partner
 *	  conversion.  Shared by src/reward_*.c.
 *
 * Errors (class LY, "loyalty"; LY001-LY003 are the benefits area's):
 *	  LY020  sold out: no capacity left for the reward at the store on the
 *			 date, or its overall limit is reached
 *	  LY021  the reward is not available here and now (validity, stores,
 *			 no price)
 *	  LY022  the member's limit for the reward is reached
 *	  LY023  the voucher cannot be used (used, expired, cancelled, other
 *			 store)
 *	  LY024  the member has not consented to share data with the partner
 *	  LY025  the yearly cap of points bought or received is reached
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_REWARD_H
#define LOYALTY_REWARD_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/date.h"
#include "utils/uuid.h"

#define ERRCODE_LOYALTY_SOLD_OUT			MAKE_SQLSTATE('L','Y','0','2','0')
#define ERRCODE_LOYALTY_REWARD_UNAVAILABLE	MAKE_SQLSTATE('L','Y','0','2','1')
#define ERRCODE_LOYALTY_REWARD_LIMIT		MAKE_SQLSTATE('L','Y','0','2','2')
#define ERRCODE_LOYALTY_VOUCHER_UNUSABLE	MAKE_SQLSTATE('L','Y','0','2','3')
#define ERRCODE_LOYALTY_NO_CONSENT			MAKE_SQLSTATE('L','Y','0','2','4')
#define ERRCODE_LOYALTY_SALE_CAP			MAKE_SQLSTATE('L','Y','0','2','5')

/* reward_request.c: arguments, SPI, idempotency */
extern void reward_arg_required(FunctionCallInfo fcinfo, int argno, const char *what);
extern char *reward_text_arg(FunctionCallInfo fcinfo, int argno);
extern uint64 reward_sql(const char *sql, int nargs, const Oid *types,
						 const Datum *values, const char *nulls, int expected);
extern char *reward_get_text(int row, int col);
extern bool reward_get_bool(int row, int col);
extern int64 reward_get_int64(int row, int col, bool *isnull);
extern char *reward_uuid_text(const pg_uuid_t *u);
extern char *reward_idem_replay(const char *key, const char *operation,
								const char *args);
extern void reward_idem_save(const char *key, const char *operation,
							 const char *args, const char *result_json);
extern Datum reward_result(const char *json);
extern void reward_audit(const pg_uuid_t *member_id, const char *action,
						 const char *detail_json);
extern void reward_check_store(const char *store_code);
extern char *reward_json_text(const char *s);

/* reward_price.c: the pricing rule */
typedef struct RewardQuote
{
	char		kind[16];
	int64		points;			/* price in points */
	bool		has_cash_max;
	char	   *cash_max;		/* numeric text */
	char		season[16];		/* "standard" / "peak" (free nights) or "" */
	int			category;		/* store category (free nights) or 0 */
	int			voucher_days;
	bool		limited;		/* a capacity applies to this store and day */
	int			units_left;
	bool		has_total_limit;
	bool		has_member_limit;
	int			member_limit;
	char		member_limit_per[8];
} RewardQuote;

extern void reward_price(const char *reward_code, const char *store_code,
						 DateADT day, TimestampTz at, bool for_sale,
						 RewardQuote *q);
extern DateADT reward_store_today(const char *store_code);
extern char *reward_store_time_zone(const char *store_code);

/* reward_voucher.c */
extern char *voucher_new_code(void);
extern bool voucher_code_valid(const char *code);
extern pg_uuid_t voucher_issue(const pg_uuid_t *member_id, const char *reward_code,
							   const char *store_code, const DateADT *day,
							   const char *source, const char *reason,
							   TimestampTz expires_at, char **code);

#endif							/* LOYALTY_REWARD_H */
