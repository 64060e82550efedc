/*-------------------------------------------------------------------------
 *
 * privacy_crypto.c
 *	  Sensitive identity data at rest: encryption, blind index, pseudonyms.
 *
 * ID numbers and bank card numbers are stored encrypted with AES-256-GCM
 * (OpenSSL libcrypto), bound to their member and kind by the associated
 * data, so a ciphertext copied to another member or field does not open.
 * Lookup and uniqueness use a keyed blind index, HMAC-SHA256 of the
 * normalised value; BI pseudonyms are HMACs of the member id.
 *
 * The key material is the file named by loyalty.key_file, outside the data
 * directory: 64 random bytes (32 for encryption, 32 for HMACs), mode 0600,
 * made only by loyalty.key_create() and checked against the fingerprint the
 * database records before use (privacy_key.c).  It never appears in SQL
 * text, in a setting or in a log message: no function returns it, and
 * errors name the file, never its content.  Back it up with the server's
 * secrets, separately from database dumps and base backups
 * (docs/privacy.md).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"


/* SHA256_Init() and friends: deprecated in OpenSSL 3, still supported */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "privacy.h"

PG_FUNCTION_INFO_V1(loyalty_identity_seal);
PG_FUNCTION_INFO_V1(loyalty_identity_open);
PG_FUNCTION_INFO_V1(loyalty_blind_index);
PG_FUNCTION_INFO_V1(loyalty_pseudonym);
PG_FUNCTION_INFO_V1(loyalty_normalise_identifier);

#define KEY_LEN			32
#define GCM_IV_LEN		12
#define GCM_TAG_LEN		16

static unsigned char enc_key[KEY_LEN];
static unsigned char mac_key[KEY_LEN];
static bool keys_loaded = false;
static uint32 keys_generation = 0;

/* HMAC states keyed with mac_key (hmac_prepare) */
static SHA256_CTX hmac_inner;
static SHA256_CTX hmac_outer;
static bool hmac_ready = false;

/*
 * load_keys
 *		The key material of loyalty.key_file, verified against the
 *		fingerprint this database records (privacy_key.c), read once per
 *		backend and again after a key setting changed.  Never made here.
 */
static void
load_keys(void)
{
	unsigned char buf[LOYALTY_KEY_MATERIAL];
	uint32		generation = loyalty_key_generation();

	if (keys_loaded && keys_generation == generation)
		return;
	keys_loaded = false;
	hmac_ready = false;
	loyalty_key_load(buf);
	memcpy(enc_key, buf, KEY_LEN);
	memcpy(mac_key, buf + KEY_LEN, KEY_LEN);
	explicit_bzero(buf, sizeof(buf));
	keys_generation = generation;
	keys_loaded = true;
}

/*
 * hmac_prepare
 *		Key the inner and outer SHA-256 states of HMAC once per backend
 *		(RFC 2104), so that each HMAC costs two copies of a plain struct
 *		and two short digests: BI views compute one per row.
 *
 * The states are OpenSSL's low-level SHA256_CTX, not EVP: copying an EVP
 * digest context (EVP_MD_CTX_copy_ex) allocates and frees a provider
 * context on every copy in OpenSSL 3, which cost more than the digests
 * themselves at BI scan rates.  The result is the same HMAC-SHA256, bit
 * for bit (test/pgtap/43_pseudonym_hmac.sql checks it against pgcrypto's
 * hmac()), so pseudonyms and blind indexes stored before do not change.
 */

static void
hmac_prepare(void)
{
	unsigned char ipad[64];
	unsigned char opad[64];
	int			i;

	load_keys();
	if (hmac_ready)
		return;
	for (i = 0; i < 64; i++)
	{
		unsigned char k = i < KEY_LEN ? mac_key[i] : 0;

		ipad[i] = k ^ 0x36;
		opad[i] = k ^ 0x5c;
	}
	if (SHA256_Init(&hmac_inner) != 1 ||
		SHA256_Update(&hmac_inner, ipad, 64) != 1 ||
		SHA256_Init(&hmac_outer) != 1 ||
		SHA256_Update(&hmac_outer, opad, 64) != 1)
	{
		explicit_bzero(&hmac_inner, sizeof(hmac_inner));
		explicit_bzero(&hmac_outer, sizeof(hmac_outer));
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not prepare the HMAC key")));
	}
	explicit_bzero(ipad, sizeof(ipad));
	explicit_bzero(opad, sizeof(opad));
	hmac_ready = true;
}

/*
 * hmac_sha256
 *		HMAC-SHA256 with the MAC key over a domain label, a NUL and a
 *		value.
 */
static void
hmac_sha256(const char *label, const char *data, int len, unsigned char *out)
{
	unsigned char inner[32];
	SHA256_CTX	work;
	bool		ok;

	hmac_prepare();
	work = hmac_inner;
	ok = SHA256_Update(&work, label, strlen(label) + 1) == 1 &&
		SHA256_Update(&work, data, len) == 1 &&
		SHA256_Final(inner, &work) == 1;
	work = hmac_outer;
	ok = ok &&
		SHA256_Update(&work, inner, sizeof(inner)) == 1 &&
		SHA256_Final(out, &work) == 1;
	explicit_bzero(&work, sizeof(work));
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("HMAC computation failed")));
}

/*
 * normalise
 *		Canonical form of an ID or card number: full-width letters and
 *		digits to ASCII, letters upper case, spaces and hyphens dropped.
 */
static char *
normalise(const char *s, int len)
{
	StringInfoData buf;
	const char *p = s;
	const char *end = s + len;

	initStringInfo(&buf);
	while (p < end)
	{
		int			l = pg_mblen(p);
		pg_wchar	c = (GetDatabaseEncoding() == PG_UTF8)
			? utf8_to_unicode((const unsigned char *) p) : (unsigned char) *p;

		if (c >= 0xFF01 && c <= 0xFF5E)
			c -= 0xFEE0;		/* full-width ASCII variants */
		if (c == ' ' || c == '-' || c == 0x3000)
			;
		else if (c < 0x80)
			appendStringInfoChar(&buf, (c >= 'a' && c <= 'z') ? c - 32 : c);
		else
			appendBinaryStringInfo(&buf, p, l);
		p += l;
	}
	return buf.data;
}

/*
 * loyalty._normalise_identifier(text) returns text
 */
Datum
loyalty_normalise_identifier(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_TEXT_P(cstring_to_text(normalise(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t))));
}

/*
 * loyalty._blind_index(kind text, value text) returns bytea
 *		Keyed index of a normalised identifier, per kind (id_number,
 *		bank_card), for lookup and uniqueness without decryption.
 */
Datum
loyalty_blind_index(PG_FUNCTION_ARGS)
{
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *t = PG_GETARG_TEXT_PP(1);
	char	   *norm = normalise(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	bytea	   *result = palloc(VARHDRSZ + 32);

	SET_VARSIZE(result, VARHDRSZ + 32);
	hmac_sha256(kind, norm, strlen(norm), (unsigned char *) VARDATA(result));
	PG_RETURN_BYTEA_P(result);
}

/*
 * loyalty.pseudonym(uuid) returns text
 *		A stable pseudonymous key for a member (BI): 32 hex digits of a
 *		keyed HMAC, not reversible without the key file.
 */
Datum
loyalty_pseudonym(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *u = PG_GETARG_UUID_P(0);
	unsigned char mac[32];
	char		hex[32];
	int			i;

	static const char digits[] = "0123456789abcdef";

	hmac_sha256("pseudonym", (const char *) u->data, UUID_LEN, mac);
	for (i = 0; i < 16; i++)
	{
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 0x0f];
	}
	PG_RETURN_TEXT_P(cstring_to_text_with_len(hex, 32));
}

/*
 * gcm_fail
 *		Release the cipher context and report a failure without detail.
 */
static void
gcm_fail(EVP_CIPHER_CTX *ctx, const char *what)
{
	EVP_CIPHER_CTX_free(ctx);
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("%s failed", what)));
}

/*
 * loyalty._identity_seal(member_id uuid, kind text, value text) returns bytea
 *		AES-256-GCM: iv || ciphertext || tag, with "kind:member" as the
 *		associated data.
 */
Datum
loyalty_identity_seal(PG_FUNCTION_ARGS)
{
	char	   *aad = psprintf("%s:%s", text_to_cstring(PG_GETARG_TEXT_PP(1)),
							   DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(0))));
	text	   *t = PG_GETARG_TEXT_PP(2);
	int			inlen = VARSIZE_ANY_EXHDR(t);
	bytea	   *result = palloc(VARHDRSZ + GCM_IV_LEN + inlen + GCM_TAG_LEN);
	unsigned char *iv = (unsigned char *) VARDATA(result);
	unsigned char *ct = iv + GCM_IV_LEN;
	EVP_CIPHER_CTX *ctx;
	int			len;

	load_keys();
	if (!pg_strong_random(iv, GCM_IV_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a nonce")));
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_IV_LEN, NULL) != 1 ||
		EVP_EncryptInit_ex(ctx, NULL, NULL, enc_key, iv) != 1 ||
		EVP_EncryptUpdate(ctx, NULL, &len, (unsigned char *) aad, strlen(aad)) != 1 ||
		EVP_EncryptUpdate(ctx, ct, &len, (unsigned char *) VARDATA_ANY(t), inlen) != 1 ||
		len != inlen ||
		EVP_EncryptFinal_ex(ctx, ct + len, &len) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, ct + inlen) != 1)
		gcm_fail(ctx, "encryption");
	EVP_CIPHER_CTX_free(ctx);
	SET_VARSIZE(result, VARHDRSZ + GCM_IV_LEN + inlen + GCM_TAG_LEN);
	PG_RETURN_BYTEA_P(result);
}

/*
 * loyalty._identity_open(member_id uuid, kind text, sealed bytea) returns text
 *		Decrypt and authenticate; for HQ's export only (never granted).
 */
Datum
loyalty_identity_open(PG_FUNCTION_ARGS)
{
	char	   *aad = psprintf("%s:%s", text_to_cstring(PG_GETARG_TEXT_PP(1)),
							   DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(0))));
	bytea	   *b = PG_GETARG_BYTEA_PP(2);
	int			blen = VARSIZE_ANY_EXHDR(b);
	unsigned char *iv = (unsigned char *) VARDATA_ANY(b);
	int			ctlen = blen - GCM_IV_LEN - GCM_TAG_LEN;
	unsigned char tag[GCM_TAG_LEN];
	char	   *out;
	EVP_CIPHER_CTX *ctx;
	int			len;

	if (ctlen < 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("sealed value is too short")));
	load_keys();
	memcpy(tag, iv + GCM_IV_LEN + ctlen, GCM_TAG_LEN);
	out = palloc(ctlen + 1);
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_IV_LEN, NULL) != 1 ||
		EVP_DecryptInit_ex(ctx, NULL, NULL, enc_key, iv) != 1 ||
		EVP_DecryptUpdate(ctx, NULL, &len, (unsigned char *) aad, strlen(aad)) != 1 ||
		EVP_DecryptUpdate(ctx, (unsigned char *) out, &len, iv + GCM_IV_LEN, ctlen) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, tag) != 1 ||
		EVP_DecryptFinal_ex(ctx, (unsigned char *) out + len, &len) != 1)
		gcm_fail(ctx, "decryption");
	EVP_CIPHER_CTX_free(ctx);
	out[ctlen] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out, ctlen));
}
