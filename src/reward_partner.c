/*-------------------------------------------------------------------------
 *
 * reward_partner.c
 *	  Partner conversion (issue 17 item 5): points converted to a partner's
 *	  currency (airline miles), and the partner's answer.
 *
 * partner_transfer, in one transaction: locks the member's balance row and
 * looks the key up under it; checks the partner (known, active: LY021),
 * the minimum and step (22023), and the member's third_party consent in
 * effect (loyalty.member_consents, the latest decision; LY024 without it,
 * before any member data is written for the partner); debits the points
 * through the ledger (a redemption whose reference is "partner:CODE");
 * records the transfer (state sent) with the member's account at the
 * partner, the audit record and the event partner_transfer_sent (the
 * transfer id, never the account), which the partner integration reads.
 *
 * The integration then settles it once: confirmed with the partner's
 * reference, or rejected, which gives the points back through
 * ledger_refund (to the lots they came from; see ledger_refund.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "args.h"
#include "event.h"
#include "ledger.h"
#include "reward.h"
#include "roles_caller.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_partner_transfer);
PG_FUNCTION_INFO_V1(loyalty_partner_transfer_settle);

#define RIGHTS_TRANSFER	(DEPT_BIT(DEPT_FRONTDESK) | DEPT_BIT(DEPT_STORE_MANAGER) | \
						 DEPT_BIT(DEPT_CRM))
#define RIGHTS_SETTLE	(DEPT_BIT(DEPT_CRM) | DEPT_BIT(DEPT_DBA))

/*
 * loyalty._partner_transfer(idempotency_key, member_id, store_code,
 *		partner_code, points, partner_account) returns jsonb
 */
Datum
loyalty_partner_transfer(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	const LoyaltyCaller *caller;
	char	   *key = loyalty_arg_key(fcinfo, 0);
	pg_uuid_t	member;
	char	   *store;
	char	   *partner;
	int64		points;
	char	   *account;
	char	   *args;
	char	   *found;
	char	   *json;
	int64		points_ratio;
	int64		units_ratio;
	int64		min_points;
	int64		step_points;
	int64		units;
	LedgerResult res;
	pg_uuid_t	transfer;
	bool		isnull;

	reward_arg_required(fcinfo, 1, "member_id");
	reward_arg_required(fcinfo, 2, "store_code");
	reward_arg_required(fcinfo, 3, "partner_code");
	reward_arg_required(fcinfo, 4, "points");
	reward_arg_required(fcinfo, 5, "partner_account");
	member = *PG_GETARG_UUID_P(1);
	store = reward_text_arg(fcinfo, 2);
	partner = reward_text_arg(fcinfo, 3);
	points = PG_GETARG_INT64(4);
	account = reward_text_arg(fcinfo, 5);
	loyalty_check_points(points);
	if (account[0] == '\0' || strlen(account) > 64)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("partner_account must be 1 to 64 bytes")));
	caller = loyalty_caller();
	loyalty_require_department(caller, RIGHTS_TRANSFER);
	loyalty_require_store(caller, store);
	args = psprintf("member=%s store=%s partner=%s points=" INT64_FORMAT " account=%s",
					reward_uuid_text(&member), store, partner, points, account);

	lspi_connect(LSPI_READ_WRITE);
	reward_check_store(store);
	(void) ledger_lock(member);
	found = reward_idem_replay(key, "partner_transfer", args);
	if (found != NULL)
	{
		found = MemoryContextStrdup(outer, found);
		lspi_finish();
		PG_RETURN_DATUM(reward_result(found));
	}

	/* the partner's terms */
	{
		Datum		v[1] = {CStringGetTextDatum(partner)};

		if (reward_sql("SELECT points_ratio, units_ratio, min_points, step_points, active "
					   "  FROM loyalty.partner WHERE partner_code = $1",
					   1, (Oid[]) {TEXTOID}, v, NULL, SPI_OK_SELECT) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("partner \"%s\" does not exist", partner)));
		points_ratio = reward_get_int64(0, 1, NULL);
		units_ratio = reward_get_int64(0, 2, NULL);
		min_points = reward_get_int64(0, 3, NULL);
		step_points = reward_get_int64(0, 4, NULL);
		if (!reward_get_bool(0, 5))
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_REWARD_UNAVAILABLE),
					 errmsg("partner \"%s\" takes no transfers now", partner)));
	}
	if (points < min_points || points % step_points != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a transfer to partner \"%s\" is at least " INT64_FORMAT
						" points, in steps of " INT64_FORMAT, partner, min_points, step_points)));
	/* points * units_ratio fits: both are at most 1e8 and 1e6 */
	units = points * units_ratio / points_ratio;
	if (units <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s points convert to no unit of partner \"%s\"",
						psprintf(INT64_FORMAT, points), partner)));

	/* consent before anything is written for the partner */
	{
		Datum		v[1] = {UUIDPGetDatum(&member)};

		if (reward_sql("SELECT 1 FROM loyalty.member_consents "
					   " WHERE member_id = $1 AND purpose = 'third_party' AND granted",
					   1, (Oid[]) {UUIDOID}, v, NULL, SPI_OK_SELECT) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_NO_CONSENT),
					 errmsg("the member has not consented to share data with partners"),
					 errdetail("A transfer sends the member's partner account to the partner."),
					 errhint("Record the member's third_party consent with loyalty.consent_record() first.")));
	}

	ledger_redeem_reward(member, store, points, psprintf("partner:%s", partner), NULL, &res);
	{
		Datum		v[7];

		v[0] = UUIDPGetDatum(&member);
		v[1] = CStringGetTextDatum(partner);
		v[2] = CStringGetTextDatum(account);
		v[3] = CStringGetTextDatum(store);
		v[4] = Int64GetDatum(points);
		v[5] = Int64GetDatum(units);
		v[6] = UUIDPGetDatum(&res.entry_id);
		reward_sql("INSERT INTO loyalty.partner_transfer (member_id, partner_code, partner_account, "
				   "store_code, points, units, entry_id) VALUES ($1, $2, $3, $4, $5, $6, $7) "
				   "RETURNING transfer_id",
				   7, (Oid[]) {UUIDOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, UUIDOID},
				   v, NULL, SPI_OK_INSERT_RETURNING);
		transfer = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	reward_audit(&member, "partner_transfer",
				 psprintf("{\"transfer_id\": \"%s\", \"partner_code\": %s, \"points\": " INT64_FORMAT
						  ", \"units\": " INT64_FORMAT "}",
						  reward_uuid_text(&transfer), reward_json_text(partner), points, units));
	loyalty_outbox_emit("partner_transfer_sent", &member, store,
						psprintf("{\"transfer_id\": \"%s\", \"partner_code\": %s, \"units\": " INT64_FORMAT "}",
								 reward_uuid_text(&transfer), reward_json_text(partner), units));
	json = psprintf("{\"transfer_id\": \"%s\", \"units\": " INT64_FORMAT ", \"balance\": " INT64_FORMAT
					", \"entry_id\": \"%s\", \"replayed\": false}",
					reward_uuid_text(&transfer), units, res.balance, reward_uuid_text(&res.entry_id));
	reward_idem_save(key, "partner_transfer", args, json);
	json = MemoryContextStrdup(outer, json);
	lspi_finish();
	PG_RETURN_DATUM(reward_result(json));
}

/*
 * loyalty._partner_transfer_settle(idempotency_key, transfer_id, accepted,
 *		partner_reference, reason) returns jsonb
 *		The partner's answer, once: confirmed (with its reference) or
 *		rejected (the points back through ledger_refund).
 */
Datum
loyalty_partner_transfer_settle(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	const LoyaltyCaller *caller;
	char	   *key = loyalty_arg_key(fcinfo, 0);
	pg_uuid_t	transfer;
	bool		accepted;
	char	   *reference;
	char	   *reason;
	char	   *args;
	char	   *found;
	char	   *json;
	char	   *state;
	char	   *store;
	char	   *partner;
	pg_uuid_t	member;
	pg_uuid_t	entry;
	int64		balance;
	LedgerResult res;
	Datum		v[1];
	bool		isnull;

	reward_arg_required(fcinfo, 1, "transfer_id");
	reward_arg_required(fcinfo, 2, "accepted");
	transfer = *PG_GETARG_UUID_P(1);
	accepted = PG_GETARG_BOOL(2);
	reference = reward_text_arg(fcinfo, 3);
	reason = reward_text_arg(fcinfo, 4);
	if (accepted && (reference == NULL || reference[0] == '\0' || strlen(reference) > 200))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("partner_reference must be 1 to 200 bytes")));
	if (!accepted && reason != NULL && strlen(reason) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reason must be at most 200 bytes")));
	caller = loyalty_caller();
	loyalty_require_department(caller, RIGHTS_SETTLE);
	args = psprintf("transfer=%s accepted=%d reference=%s reason=%s", reward_uuid_text(&transfer),
					accepted, reference ? reference : "", reason ? reason : "");

	lspi_connect(LSPI_READ_WRITE);
	v[0] = UUIDPGetDatum(&transfer);
	if (reward_sql("SELECT member_id FROM loyalty.partner_transfer WHERE transfer_id = $1",
				   1, (Oid[]) {UUIDOID}, v, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("partner transfer %s does not exist", reward_uuid_text(&transfer))));
	member = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	balance = ledger_lock(member);
	found = reward_idem_replay(key, "partner_transfer_settle", args);
	if (found != NULL)
	{
		found = MemoryContextStrdup(outer, found);
		lspi_finish();
		PG_RETURN_DATUM(reward_result(found));
	}
	reward_sql("SELECT state, entry_id, store_code, partner_code FROM loyalty.partner_transfer "
			   " WHERE transfer_id = $1 FOR UPDATE",
			   1, (Oid[]) {UUIDOID}, v, NULL, SPI_OK_SELECT);
	state = reward_get_text(0, 1);
	entry = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	store = reward_get_text(0, 3);
	partner = reward_get_text(0, 4);
	if (strcmp(state, "sent") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("partner transfer %s is already %s", reward_uuid_text(&transfer), state)));
	if (accepted)
	{
		Datum		u[2] = {UUIDPGetDatum(&transfer), CStringGetTextDatum(reference)};

		reward_sql("UPDATE loyalty.partner_transfer SET state = 'confirmed', partner_reference = $2, "
				   "settled_at = pg_catalog.now() WHERE transfer_id = $1",
				   2, (Oid[]) {UUIDOID, TEXTOID}, u, NULL, SPI_OK_UPDATE);
	}
	else
	{
		Datum		u[3];
		char		n[3] = {' ', ' ', ' '};

		ledger_refund(entry, store, psprintf("partner:%s rejected", partner), NULL, &res);
		balance = res.balance;
		u[0] = UUIDPGetDatum(&transfer);
		u[1] = UUIDPGetDatum(&res.entry_id);
		u[2] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
		n[2] = reason ? ' ' : 'n';
		reward_sql("UPDATE loyalty.partner_transfer SET state = 'rejected', refund_entry_id = $2, "
				   "reason = $3, settled_at = pg_catalog.now() WHERE transfer_id = $1",
				   3, (Oid[]) {UUIDOID, UUIDOID, TEXTOID}, u, n, SPI_OK_UPDATE);
	}
	reward_audit(&member, accepted ? "partner_transfer_confirm" : "partner_transfer_reject",
				 psprintf("{\"transfer_id\": \"%s\", \"partner_code\": %s}",
						  reward_uuid_text(&transfer), reward_json_text(partner)));
	json = psprintf("{\"state\": \"%s\", \"balance\": " INT64_FORMAT ", \"replayed\": false}",
					accepted ? "confirmed" : "rejected", balance);
	reward_idem_save(key, "partner_transfer_settle", args, json);
	json = MemoryContextStrdup(outer, json);
	lspi_finish();
	PG_RETURN_DATUM(reward_result(json));
}
