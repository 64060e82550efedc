/*-------------------------------------------------------------------------
 *
 * member_merge.c
 *	  Duplicates and merges (docs/crm.md): name similarity for the
 *	  duplicate report, and member_merge(survivor, duplicate), which moves
 *	  everything of the duplicate to the survivor in one transaction and
 *	  closes the duplicate, pointing to the survivor.
 *
 * What moves: lots (with their expiry and state), ledger entries and the
 * balance, stays, charges, earning lines and tier activity (counters are
 * added month by month), manual tier grants, benefit uses, risk tags,
 * preferences, behaviour tags, service cases and contacts, consents (and
 * then, per purpose, the stricter of the two: granted only if both
 * granted), identity data the survivor lacks (re-sealed for the survivor),
 * and profile fields the survivor lacks.  Any other table of the extension
 * with a member_id column (added by later concepts) is swept too.  What
 * stays with the duplicate: its tier history, its answered requests, the
 * append-only trail of its risk tags (risk_tag_event) and its audit records (the audit log is append-only and hash-chained; the
 * merge record links the two members).  The tier is the better of the
 * two, then re-evaluated on the combined counters.
 *
 * Concurrency: both member rows are locked (FOR UPDATE, in uuid order),
 * then both balance rows (as the ledger does), so a merge and an accrual
 * or a redemption on the duplicate run one after the other; an operation
 * that waited for the merge finds the duplicate closed
 * (src/ledger_core.c, ledger_require_status).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "event.h"
#include "member.h"
#include "spi.h"
#include "roles_caller.h"
#include "tier.h"

PG_FUNCTION_INFO_V1(loyalty_name_similarity);
PG_FUNCTION_INFO_V1(loyalty_member_merge);

/* ---- name similarity (trigrams, as pg_trgm computes them) ---- */

typedef struct Trigram
{
	char		b[3 * MAX_MULTIBYTE_CHAR_LEN + 1];
} Trigram;

static int
trigram_cmp(const void *a, const void *b)
{
	return strcmp(((const Trigram *) a)->b, ((const Trigram *) b)->b);
}

/*
 * name_trigrams
 *		The sorted, distinct trigrams of a lower-cased name: each word (a
 *		run of letters, digits or non-ASCII characters) padded with two
 *		spaces before and one after, as pg_trgm does.
 */
static int
name_trigrams(const char *name, Trigram **out)
{
	char	   *s = str_tolower(name, strlen(name), DEFAULT_COLLATION_OID);
	int			len = strlen(s);
	Trigram    *t = palloc(sizeof(Trigram) * (len + 3) * 1);
	int			n = 0;
	const char *p = s;

	while (*p)
	{
		const char *chars[256 + 3];
		int			lens[256 + 3];
		int			k = 0,
					i,
					j;

		while (*p && IS_HIGHBIT_SET(*p) == 0 && !isalnum((unsigned char) *p))
			p++;
		if (!*p)
			break;
		chars[k] = "  ";
		lens[k++] = 1;
		chars[k] = "  ";
		lens[k++] = 1;
		while (*p && (IS_HIGHBIT_SET(*p) || isalnum((unsigned char) *p)) && k < 256)
		{
			chars[k] = p;
			lens[k++] = pg_mblen(p);
			p += pg_mblen(p);
		}
		while (*p && (IS_HIGHBIT_SET(*p) || isalnum((unsigned char) *p)))
			p += pg_mblen(p);
		chars[k] = " ";
		lens[k++] = 1;
		for (i = 0; i + 2 < k; i++)
		{
			int			off = 0;

			for (j = 0; j < 3; j++)
			{
				memcpy(t[n].b + off, chars[i + j], lens[i + j]);
				off += lens[i + j];
			}
			t[n].b[off] = '\0';
			n++;
		}
	}
	if (n > 1)
	{
		int			i,
					m = 1;

		qsort(t, n, sizeof(Trigram), trigram_cmp);
		for (i = 1; i < n; i++)
			if (strcmp(t[i].b, t[m - 1].b) != 0)
				t[m++] = t[i];
		n = m;
	}
	*out = t;
	return n;
}

/*
 * loyalty.name_similarity(a text, b text) returns real
 *		Shared trigrams over all trigrams of two names (0 to 1; 1 for the
 *		same words in any case), the measure of pg_trgm's similarity(),
 *		computed here so that the extension needs no other extension.
 */
Datum
loyalty_name_similarity(PG_FUNCTION_ARGS)
{
	Trigram    *a,
			   *b;
	int			na = name_trigrams(TextDatumGetCString(PG_GETARG_DATUM(0)), &a);
	int			nb = name_trigrams(TextDatumGetCString(PG_GETARG_DATUM(1)), &b);
	int			i = 0,
				j = 0,
				common = 0;

	if (na == 0 || nb == 0)
		PG_RETURN_FLOAT4(0);
	while (i < na && j < nb)
	{
		int			c = strcmp(a[i].b, b[j].b);

		if (c == 0)
		{
			common++;
			i++;
			j++;
		}
		else if (c < 0)
			i++;
		else
			j++;
	}
	PG_RETURN_FLOAT4((float4) common / (float4) (na + nb - common));
}

/* ---- the merge ---- */

/* moved by statements of their own, or kept with the duplicate */
static const char *const merge_special_tables[] = {
	"member", "member_profile", "member_identity", "member_consent",
	"point_balance", "tier_counter", "tier_history", "ledger_request",
	"crm_request", "member_merge", "event_outbox", "outbox", "outbox_result",
	"risk_tag_event",			/* append-only trail, kept with its id */
	"member_pseudonym_key",		/* each member keeps its own BI key */
	NULL
};

/* moved by "UPDATE t SET member_id = survivor" (in this order) */
static const char *const merge_moved_tables[] = {
	"point_lot", "point_entry", "stay", "charge", "earning_line",
	"tier_activity", "tier_grant", "benefit_use", "risk_tag",
	"member_preference", "member_tag",
	"service_case", "service_interaction", NULL
};

static bool
in_list(const char *name, const char *const *list)
{
	int			i;

	for (i = 0; list[i]; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

/*
 * merge_run
 *		Run one statement with $1 = survivor, $2 = duplicate; returns the
 *		rows processed.
 */
static uint64
merge_run(const char *sql, const pg_uuid_t *survivor, const pg_uuid_t *duplicate)
{
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		v[2];

	v[0] = UUIDPGetDatum(survivor);
	v[1] = UUIDPGetDatum(duplicate);
	return crm_exec(sql, 2, types, v, NULL, false);
}

/*
 * merge_move_table
 *		Move the duplicate's rows of one table (its name comes from the
 *		fixed list or from the catalog, never from input).
 */
static uint64
merge_move_table(const char *table, const pg_uuid_t *survivor, const pg_uuid_t *duplicate)
{
	return merge_run(psprintf("UPDATE loyalty.%s SET member_id = $1 WHERE member_id = $2",
							  quote_identifier(table)), survivor, duplicate);
}

/*
 * merge_identity
 *		ID number and bank card the survivor lacks come from the duplicate,
 *		decrypted and sealed again for the survivor (the ciphertext is bound
 *		to its member); the duplicate's identity row is then removed (each
 *		ID number and card belongs to one member).
 */
static void
merge_identity(const pg_uuid_t *survivor, const pg_uuid_t *duplicate)
{
	if (merge_run("SELECT 1 FROM loyalty.member_identity WHERE member_id = $2",
				  survivor, duplicate) == 0)
		return;
	merge_run("CREATE TEMP TABLE IF NOT EXISTS pg_temp.loyalty_merge_identity "
			  "(LIKE loyalty.member_identity) ON COMMIT DROP", survivor, duplicate);
	merge_run("INSERT INTO pg_temp.loyalty_merge_identity SELECT * FROM loyalty.member_identity "
			  "WHERE member_id = $2", survivor, duplicate);
	merge_run("DELETE FROM loyalty.member_identity WHERE member_id = $2", survivor, duplicate);
	merge_run("INSERT INTO loyalty.member_identity (member_id) VALUES ($1) ON CONFLICT DO NOTHING",
			  survivor, duplicate);
	merge_run("UPDATE loyalty.member_identity s SET "
			  " id_type = CASE WHEN s.id_number_cipher IS NULL AND d.id_number_cipher IS NOT NULL "
			  "   THEN d.id_type ELSE s.id_type END, "
			  " id_number_cipher = CASE WHEN s.id_number_cipher IS NULL AND d.id_number_cipher IS NOT NULL "
			  "   THEN loyalty._identity_seal($1, 'id_number', loyalty._identity_open($2, 'id_number', d.id_number_cipher)) "
			  "   ELSE s.id_number_cipher END, "
			  " id_number_index = coalesce(s.id_number_index, d.id_number_index), "
			  " id_number_last4 = CASE WHEN s.id_number_cipher IS NULL THEN d.id_number_last4 ELSE s.id_number_last4 END, "
			  " bank_card_cipher = CASE WHEN s.bank_card_cipher IS NULL AND d.bank_card_cipher IS NOT NULL "
			  "   THEN loyalty._identity_seal($1, 'bank_card', loyalty._identity_open($2, 'bank_card', d.bank_card_cipher)) "
			  "   ELSE s.bank_card_cipher END, "
			  " bank_card_index = coalesce(s.bank_card_index, d.bank_card_index), "
			  " bank_card_last4 = CASE WHEN s.bank_card_cipher IS NULL THEN d.bank_card_last4 ELSE s.bank_card_last4 END "
			  "FROM pg_temp.loyalty_merge_identity d WHERE s.member_id = $1 AND d.member_id = $2",
			  survivor, duplicate);
	merge_run("DELETE FROM pg_temp.loyalty_merge_identity WHERE member_id = $2", survivor, duplicate);
}

/*
 * merge_consents
 *		Move the duplicate's consent history, then record for every purpose
 *		either of them answered the stricter answer: granted only if the
 *		consent in force of both was granted (no answer counts as refused).
 *		Returns the number of purposes recorded.
 */
static uint64
merge_consents(const pg_uuid_t *survivor, const pg_uuid_t *duplicate)
{
	/* one statement: "strict" is computed before "moved" runs */
	return merge_run("WITH strict AS ("
					 " SELECT p.purpose, coalesce(s.granted, false) AND coalesce(d.granted, false) AS granted "
					 " FROM (SELECT DISTINCT c.purpose FROM loyalty.member_consent c "
					 "       WHERE c.member_id IN ($1, $2)) p "
					 " LEFT JOIN LATERAL (SELECT c.granted FROM loyalty.member_consent c WHERE c.member_id = $1 "
					 "   AND c.purpose = p.purpose ORDER BY c.recorded_at DESC, c.consent_id DESC LIMIT 1) s ON true "
					 " LEFT JOIN LATERAL (SELECT c.granted FROM loyalty.member_consent c WHERE c.member_id = $2 "
					 "   AND c.purpose = p.purpose ORDER BY c.recorded_at DESC, c.consent_id DESC LIMIT 1) d ON true), "
					 "moved AS (UPDATE loyalty.member_consent SET member_id = $1 WHERE member_id = $2) "
					 "INSERT INTO loyalty.member_consent (member_id, purpose, granted, notice_version, "
					 "store_code, recorded_at) SELECT $1, m.purpose, m.granted, 'merge', NULL, "
					 "pg_catalog.clock_timestamp() FROM strict m",
					 survivor, duplicate);
}

/*
 * merge_tier
 *		The survivor holds the better of the two tiers (the later validity
 *		at equal rank), then is re-evaluated on the combined counters.
 *		Returns the survivor's tier.
 */
static char *
merge_tier(const pg_uuid_t *survivor, const pg_uuid_t *duplicate)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	const LoyaltyPolicy *p = loyalty_policy_at(now);
	TierMember	s,
				d;
	int			rs,
				rd;

	tier_member_lock(duplicate, now, true, &d);
	tier_member_lock(survivor, now, true, &s);
	rs = tier_rank_of(p, s.tier);
	rd = tier_rank_of(p, d.tier);
	if (rd > rs ||
		(rd == rs && rd > 0 && s.has_valid_until &&
		 (!d.has_valid_until || d.valid_until > s.valid_until)))
		tier_set(&s, d.tier, d.has_valid_until, d.valid_until,
				 "merge: tier of the merged duplicate", NULL, NULL);
	tier_upgrade_check(&s, p, now, NULL, "merge: combined counters");
	return pstrdup(s.tier);
}

/*
 * loyalty.member_merge(idempotency_key text, survivor uuid, duplicate uuid)
 *		returns jsonb
 *		Merge the duplicate into the survivor (HQ CRM).  Returns
 *		{"survivor", "duplicate", "points", "lots", "stays", "consents",
 *		"tier"}.
 */
Datum
loyalty_member_merge(PG_FUNCTION_ARGS)
{
	const LoyaltyCaller *caller = loyalty_caller();
	char	   *key;
	pg_uuid_t	survivor,
				duplicate;
	const pg_uuid_t *first,
			   *second;
	char	   *args;
	char	   *replay;
	char	   *s_status,
			   *d_status;
	int64		points;
	uint64		lots,
				stays,
				consents,
				i,
				n;
	char	   *tier;
	StringInfoData result;
	char	  **extra;
	char	   *json;

	loyalty_require_department(caller, DEPT_BIT(DEPT_CRM));
	key = crm_key_arg(fcinfo, 0);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("survivor and duplicate must not be null")));
	survivor = *PG_GETARG_UUID_P(1);
	duplicate = *PG_GETARG_UUID_P(2);
	if (memcmp(&survivor, &duplicate, sizeof(pg_uuid_t)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a member cannot be merged into itself")));

	lspi_connect(LSPI_READ_WRITE);
	args = psprintf("%s %s", crm_uuid_text(&survivor), crm_uuid_text(&duplicate));
	replay = crm_idem_replay(key, "member_merge", args);
	if (replay)
	{
		Datum		r = DirectFunctionCall1(jsonb_in, CStringGetDatum(replay));

		lspi_finish();
		PG_RETURN_DATUM(r);
	}

	/* lock the member rows, then the balance rows, in uuid order */
	if (memcmp(&survivor, &duplicate, sizeof(pg_uuid_t)) < 0)
		first = &survivor, second = &duplicate;
	else
		first = &duplicate, second = &survivor;
	merge_run("SELECT 1 FROM loyalty.member WHERE member_id IN ($1, $2) "
			  "ORDER BY member_id FOR UPDATE", first, second);
	s_status = member_status_of(&survivor, false);
	d_status = member_status_of(&duplicate, false);
	if (s_status == NULL || d_status == NULL ||
		strcmp(s_status, "erased") == 0 || strcmp(d_status, "erased") == 0)
		crm_member_not_found();
	if (strcmp(d_status, "closed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the duplicate is already closed"),
				 errhint("A closed or merged account cannot be merged again.")));
	if (strcmp(s_status, "closed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the survivor is closed")));
	merge_run("INSERT INTO loyalty.point_balance (member_id) VALUES ($1), ($2) "
			  "ON CONFLICT DO NOTHING", first, second);
	merge_run("SELECT 1 FROM loyalty.point_balance WHERE member_id IN ($1, $2) "
			  "ORDER BY member_id FOR NO KEY UPDATE", first, second);

	/* points: lots, entries and the balance */
	merge_run("SELECT balance FROM loyalty.point_balance WHERE member_id = $2", &survivor, &duplicate);
	points = pg_strtoint64(crm_get_text(0, 1));
	lots = merge_run("SELECT 1 FROM loyalty.point_lot WHERE member_id = $2", &survivor, &duplicate);
	stays = merge_run("SELECT 1 FROM loyalty.stay WHERE member_id = $2", &survivor, &duplicate);
	for (i = 0; merge_moved_tables[i]; i++)
		merge_move_table(merge_moved_tables[i], &survivor, &duplicate);
	merge_run("UPDATE loyalty.point_balance s SET balance = s.balance + d.balance, "
			  "last_activity_at = GREATEST(s.last_activity_at, d.last_activity_at), "
			  "notice_for = NULL, updated_at = pg_catalog.now() "
			  "FROM loyalty.point_balance d WHERE s.member_id = $1 AND d.member_id = $2",
			  &survivor, &duplicate);
	merge_run("UPDATE loyalty.point_balance SET balance = 0, updated_at = pg_catalog.now() "
			  "WHERE member_id = $2", &survivor, &duplicate);

	/* counters, month by month */
	merge_run("INSERT INTO loyalty.tier_counter (member_id, month, nights, stays, base_points, "
			  "qualifying_spend) SELECT $1, month, nights, stays, base_points, qualifying_spend "
			  "FROM loyalty.tier_counter WHERE member_id = $2 "
			  "ON CONFLICT (member_id, month) DO UPDATE SET "
			  "nights = tier_counter.nights + excluded.nights, "
			  "stays = tier_counter.stays + excluded.stays, "
			  "base_points = tier_counter.base_points + excluded.base_points, "
			  "qualifying_spend = tier_counter.qualifying_spend + excluded.qualifying_spend",
			  &survivor, &duplicate);
	merge_run("DELETE FROM loyalty.tier_counter WHERE member_id = $2", &survivor, &duplicate);

	/* any other table with a member_id (later concepts) */
	n = merge_run("SELECT c.relname::text FROM pg_catalog.pg_class c "
				  "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'member_id' "
				  "  AND a.atttypid = 'uuid'::regtype AND NOT a.attisdropped "
				  "WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relkind IN ('r', 'p') "
				  "  AND NOT c.relispartition AND c.relname !~ '^audit' AND $1 IS NOT NULL AND $2 IS NOT NULL "
				  "ORDER BY c.relname", &survivor, &duplicate);
	extra = palloc(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
		extra[i] = crm_get_text(i, 1);
	for (i = 0; i < n; i++)
		if (!in_list(extra[i], merge_special_tables) && !in_list(extra[i], merge_moved_tables))
			merge_move_table(extra[i], &survivor, &duplicate);

	consents = merge_consents(&survivor, &duplicate);
	merge_identity(&survivor, &duplicate);
	merge_run("UPDATE loyalty.member_profile s SET "
			  "gender = coalesce(s.gender, d.gender), birth_date = coalesce(s.birth_date, d.birth_date), "
			  "nationality = coalesce(s.nationality, d.nationality), phone = coalesce(s.phone, d.phone), "
			  "email = coalesce(s.email, d.email), address = coalesce(s.address, d.address), "
			  "employer = coalesce(s.employer, d.employer), "
			  "wedding_anniversary = coalesce(s.wedding_anniversary, d.wedding_anniversary) "
			  "FROM loyalty.member_profile d WHERE s.member_id = $1 AND d.member_id = $2",
			  &survivor, &duplicate);

	tier = merge_tier(&survivor, &duplicate);

	merge_run("UPDATE loyalty.member SET status = 'closed', status_reason = 'merged into another member', "
			  "merged_into = $1, updated_at = pg_catalog.now() WHERE member_id = $2",
			  &survivor, &duplicate);
	merge_run("UPDATE loyalty.member SET merged_into = $1 WHERE merged_into = $2",
			  &survivor, &duplicate);
	merge_run("UPDATE loyalty.member SET updated_at = pg_catalog.now() WHERE member_id = $1",
			  &survivor, &duplicate);

	initStringInfo(&result);
	appendStringInfo(&result, "{\"survivor\": \"%s\", \"duplicate\": \"%s\", \"points\": " INT64_FORMAT
					 ", \"lots\": " UINT64_FORMAT ", \"stays\": " UINT64_FORMAT
					 ", \"consents\": " UINT64_FORMAT ", \"tier\": \"%s\"}",
					 crm_uuid_text(&survivor), crm_uuid_text(&duplicate), points,
					 lots, stays, consents, tier);
	{
		Oid			types[3] = {UUIDOID, UUIDOID, TEXTOID};
		Datum		v[3];

		v[0] = UUIDPGetDatum(&survivor);
		v[1] = UUIDPGetDatum(&duplicate);
		v[2] = CStringGetTextDatum(result.data);
		crm_exec("INSERT INTO loyalty.member_merge (survivor, duplicate, detail) "
				 "VALUES ($1, $2, $3::jsonb)", 3, types, v, NULL, false);
	}
	crm_audit_change(&survivor, "member_merge", "crm", result.data);
	crm_audit_change(&duplicate, "member_merge", "crm", result.data);
	json = psprintf("{\"survivor\": \"%s\", \"duplicate\": \"%s\"}",
					crm_uuid_text(&survivor), crm_uuid_text(&duplicate));
	loyalty_outbox_emit("member_merged", &survivor, NULL, json);
	loyalty_outbox_emit("member_merged", &duplicate, NULL, json);
	crm_idem_record(key, "member_merge", args, result.data);
	lspi_finish();
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(result.data)));
}
