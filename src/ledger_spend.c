/*-------------------------------------------------------------------------
 *
 * ledger_spend.c
 *	  Debits a member chooses: redemption (points for a reward, or points
 *	  for part of a bill at the program's single rate) and transfers to
 *	  another member.
 *
 * Every redemption, and the outgoing half of every transfer, goes through
 * spend_points(), the one place where a spending freeze (an unresolved
 * risk tag, benefits area) is to be checked.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "ledger_int.h"
#include "replica_reserve.h"
#include "risk.h"
#include "spi.h"

/*
 * ledger_check_redemption
 *		The policy's minimum and step of a redemption: the one place this
 *		rule is written (HQ's ledger and a store's offline redemption,
 *		through loyalty._redemption_check(), both call it).
 */
void
ledger_check_redemption(const LedgerPolicy *lp, int64 points)
{
	if (points < lp->minimum_points)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("redemption of " INT64_FORMAT " points is below the minimum of " INT64_FORMAT,
						points, lp->minimum_points)));
	if (points % lp->step_points != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("redemption of " INT64_FORMAT " points is not a multiple of the step of " INT64_FORMAT,
						points, lp->step_points),
				 errhint("Redeem " INT64_FORMAT " or " INT64_FORMAT " points.",
						 points - points % lp->step_points,
						 points - points % lp->step_points + lp->step_points)));
}

/*
 * spend_points
 *		Debit points from a locked member for a redemption or a transfer:
 *		check the policy's minimum and step (redemptions), the balance,
 *		append the entry and draw on the lots.  Returns the entry id and
 *		the lots drawn on.
 */
static pg_uuid_t
spend_points(LedgerMember *m, const LedgerPolicy *lp, const char *store_code,
			 const char *kind, int64 points, const char *reference,
			 const pg_uuid_t *related, bool has_cash, int64 cash_minor,
			 LedgerDrawn **drawn, int *ndrawn)
{
	LedgerEntry e;
	pg_uuid_t	entry_id;
	bool		redemption = strcmp(kind, "redeem") == 0;

	/*
	 * An unresolved risk tag whose type freezes redemption blocks every
	 * spend, the sending side of transfers included (otherwise a frozen
	 * member would move the points to a friend who redeems them); a tag
	 * that freezes transfers blocks transfers (LY001).  The member's
	 * balance row is locked and the check reads with a fresh snapshot, so a
	 * tag raised concurrently is seen.
	 */
	loyalty_assert_not_frozen(&m->id, "redemption");
	if (!redemption)
		loyalty_assert_not_frozen(&m->id, "transfer");

	if (redemption)
		ledger_check_redemption(lp, points);
	if (m->balance < points)
		ledger_insufficient(m, points);
	/* while stores are offline, HQ leaves them their offline reserve */
	replica_reserve_check(m->balance, points);

	memset(&e, 0, sizeof(e));
	e.member_id = m->id;
	e.store_code = store_code;
	e.kind = kind;
	e.points = -points;
	e.balance_after = m->balance - points;
	e.occurred_at = ledger_now();
	e.reference = reference;
	e.related_entry = related;
	e.has_cash = has_cash;
	e.cash_minor = cash_minor;
	e.cash_scale = lp->currency_scale;
	entry_id = ledger_insert_entry(&e);
	*ndrawn = ledger_draw(m, lp, entry_id, points, drawn);
	m->balance -= points;
	/* redeeming resets the inactivity clock; a transfer does not */
	ledger_set_balance(m, redemption, ledger_now());
	return entry_id;
}

/*
 * redeem
 *		Common body of the two kinds of redemption.
 */
static void
redeem(pg_uuid_t member_id, const char *store_code, int64 points,
	   const char *reward, bool has_cash, int64 cash_minor, const char *args,
	   const char *idem_key, LedgerResult *res, const LedgerPolicy *lp)
{
	MemoryContext outer = CurrentMemoryContext;
	LedgerMember m;
	LedgerDrawn *drawn;
	int			ndrawn;
	pg_uuid_t	entry_id;
	StringInfoData lots;

	lspi_connect(LSPI_READ_WRITE);
	ledger_check_store(store_code);
	if (ledger_lock_member_replay(member_id, idem_key, "redeem", args, &m, res))
	{
		ledger_export(res, outer);
		lspi_finish();
		return;
	}
	ledger_require_status(&m, true);
	entry_id = spend_points(&m, lp, store_code, "redeem", points, reward, NULL,
							has_cash, cash_minor, &drawn, &ndrawn);

	memset(res, 0, sizeof(*res));
	res->operation = "redeem";
	res->has_entry = true;
	res->entry_id = entry_id;
	res->has_member = true;
	res->member_id = m.id;
	res->points = points;
	res->balance = m.balance;
	res->has_cash = has_cash;
	res->cash_minor = cash_minor;
	res->cash_scale = lp->currency_scale;
	initStringInfo(&lots);
	ledger_lots_json(&lots, drawn, ndrawn);
	res->lots_json = lots.data;
	ledger_idem_record(idem_key, "redeem", args, res);
	ledger_export(res, outer);
	lspi_finish();
}

/*
 * ledger_redeem_reward
 *		Points for a reward (free night, voucher, gift) named by "reward".
 */
void
ledger_redeem_reward(pg_uuid_t member_id, const char *store_code, int64 points,
					 const char *reward, const char *idem_key, LedgerResult *res)
{
	LedgerPolicy lp;
	char	   *args;

	ledger_check_points(points, "points");
	ledger_check_text(reward, "reward", 200);
	if (reward == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("reward must not be null")));
	ledger_get_policy(ledger_now(), &lp);
	args = psprintf("member=%s store=%s points=" INT64_FORMAT " reward=%s",
					ledger_uuid_text(&member_id), store_code, points, reward);
	redeem(member_id, store_code, points, reward, false, 0, args, idem_key, res, &lp);
}

/*
 * ledger_redeem_cash
 *		Points for part of a bill: "amount" (in the program's currency) is
 *		paid with points at the single rate (rate_points per rate_amount).
 *		The amount must convert to whole points, and the points must meet
 *		the minimum and the step.
 */
void
ledger_redeem_cash(pg_uuid_t member_id, const char *store_code, Datum amount,
				   const char *idem_key, LedgerResult *res)
{
	LedgerPolicy lp;
	int64		minor;
	int64		points;
	char	   *args;

	ledger_get_policy(ledger_now(), &lp);
	points = ledger_cash_points(amount, &minor);
	args = psprintf("member=%s store=%s amount_minor=" INT64_FORMAT,
					ledger_uuid_text(&member_id), store_code, minor);
	redeem(member_id, store_code, points, NULL, true, minor, args, idem_key, res, &lp);
}

/*
 * ledger_cash_points
 *		The points an amount of money (in the program's currency) is worth
 *		at the single rate (rate_points per rate_amount); error unless the
 *		amount has the currency's decimals at most and converts to whole
 *		points within range.  *minor gets the amount in minor units.
 */
int64
ledger_cash_points(Datum amount, int64 *minor)
{
	LedgerPolicy lp;
	int64		product;
	int64		points;

	ledger_get_policy(ledger_now(), &lp);
	*minor = ledger_amount_to_minor(amount, lp.currency_scale, "amount");
	if (pg_mul_s64_overflow(*minor, lp.rate_points, &product))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("amount is out of range")));
	if (product % lp.rate_amount != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount %s does not convert to whole points",
						DatumGetCString(DirectFunctionCall1(numeric_out, amount))),
				 errdetail("The rate is " INT64_FORMAT " points for " INT64_FORMAT " minor currency units.",
						   lp.rate_points, lp.rate_amount)));
	points = product / lp.rate_amount;
	ledger_check_points(points, "points");
	return points;
}

/*
 * transferred_this_year
 *		Points a locked member sent (kind transfer_out) or received
 *		(transfer_in) since the start of the calendar year, in the member's
 *		time zone.
 */
static int64
transferred_this_year(const LedgerMember *m, const char *kind)
{
	Datum		v[4];
	bool		isnull;

	v[0] = UUIDPGetDatum(&m->id);
	v[1] = CStringGetTextDatum(kind);
	v[2] = TimestampTzGetDatum(ledger_now());
	v[3] = CStringGetTextDatum(m->time_zone);
	lspi_exec("SELECT coalesce(sum(abs(points)), 0)::bigint "
							  "FROM loyalty.point_entry WHERE member_id = $1 AND kind = $2 "
							  "AND recorded_at >= (pg_catalog.date_trunc('year', $3 AT TIME ZONE $4)) AT TIME ZONE $4",
							  4, (Oid[]) {UUIDOID, TEXTOID, TIMESTAMPTZOID, TEXTOID},
							  v, NULL, false, 1, SPI_OK_SELECT);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * ledger_transfer
 *		Move points from one member to another.  The receiver gets one lot
 *		per lot drawn on, with the same expiry date; neither member's
 *		inactivity clock moves; yearly caps on points sent and received.
 */
void
ledger_transfer(pg_uuid_t from_member, pg_uuid_t to_member,
				const char *store_code, int64 points, const char *idem_key,
				LedgerResult *res)
{
	MemoryContext outer = CurrentMemoryContext;
	LedgerPolicy lp;
	LedgerMember from;
	LedgerMember to;
	LedgerDrawn *drawn;
	int			ndrawn;
	int			i;
	pg_uuid_t	out_entry;
	pg_uuid_t	in_entry;
	LedgerEntry e;
	char	   *args;
	int64		sent;
	int64		received;
	int64		to_settle;
	StringInfoData lots;
	TimestampTz now = ledger_now();

	ledger_check_points(points, "points");
	if (memcmp(&from_member, &to_member, sizeof(pg_uuid_t)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a member cannot transfer points to themselves")));
	ledger_get_policy(now, &lp);
	if (!lp.transfer_enabled)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("point transfers are disabled by the program policy")));
	args = psprintf("from=%s to=%s store=%s points=" INT64_FORMAT,
					ledger_uuid_text(&from_member), ledger_uuid_text(&to_member),
					store_code, points);

	lspi_connect(LSPI_READ_WRITE);
	ledger_check_store(store_code);
	/* lock both members in uuid order, so that two transfers never deadlock */
	if (memcmp(&from_member, &to_member, sizeof(pg_uuid_t)) < 0)
	{
		ledger_lock_member(from_member, &from);
		ledger_lock_member(to_member, &to);
	}
	else
	{
		ledger_lock_member(to_member, &to);
		ledger_lock_member(from_member, &from);
	}
	if (ledger_idem_replay(idem_key, "transfer", args, res))
	{
		ledger_export(res, outer);
		lspi_finish();
		return;
	}
	ledger_require_status(&from, true);
	ledger_require_status(&to, false);
	sent = transferred_this_year(&from, "transfer_out");
	if (sent + points > lp.transfer_cap_out)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("transfer exceeds the yearly cap on points sent"),
				 errdetail("Member %s sent " INT64_FORMAT " points this year; the cap is " INT64_FORMAT ".",
						   ledger_uuid_text(&from.id), sent, lp.transfer_cap_out)));
	received = transferred_this_year(&to, "transfer_in");
	if (received + points > lp.transfer_cap_in)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("transfer exceeds the yearly cap on points received"),
				 errdetail("Member %s received " INT64_FORMAT " points this year; the cap is " INT64_FORMAT ".",
						   ledger_uuid_text(&to.id), received, lp.transfer_cap_in)));

	out_entry = spend_points(&from, &lp, store_code, "transfer_out", points,
							 NULL, NULL, false, 0, &drawn, &ndrawn);

	memset(&e, 0, sizeof(e));
	e.member_id = to.id;
	e.store_code = store_code;
	e.kind = "transfer_in";
	e.points = points;
	e.balance_after = to.balance + points;
	e.occurred_at = now;
	e.related_entry = &out_entry;
	in_entry = ledger_insert_entry(&e);
	to_settle = ledger_settle_deficits(&to, in_entry, points);
	initStringInfo(&lots);
	appendStringInfoChar(&lots, '[');
	for (i = 0; i < ndrawn; i++)
	{
		pg_uuid_t	lot;
		int64		s;

		lot = ledger_insert_lot(to.id, store_code, "transfer", NULL,
								ledger_uuid_text(&drawn[i].lot_id),
								drawn[i].points, drawn[i].points, "active", now,
								NULL, &now,
								drawn[i].has_expires ? &drawn[i].expires_at : NULL,
								in_entry);
		s = Min(to_settle, drawn[i].points);
		if (s > 0)
		{
			ledger_take(in_entry, lot, s, NULL);
			to_settle -= s;
		}
		appendStringInfo(&lots, "%s{\"lot_id\": \"%s\", \"points\": " INT64_FORMAT
						 ", \"to_lot_id\": \"%s\"}", i > 0 ? ", " : "",
						 ledger_uuid_text(&drawn[i].lot_id), drawn[i].points,
						 ledger_uuid_text(&lot));
	}
	appendStringInfoChar(&lots, ']');
	to.balance += points;
	ledger_set_balance(&to, false, now);

	memset(res, 0, sizeof(*res));
	res->operation = "transfer";
	res->has_entry = true;
	res->entry_id = out_entry;
	res->has_member = true;
	res->member_id = from.id;
	res->points = points;
	res->balance = from.balance;
	res->lots_json = lots.data;
	ledger_idem_record(idem_key, "transfer", args, res);
	ledger_export(res, outer);
	lspi_finish();
}
