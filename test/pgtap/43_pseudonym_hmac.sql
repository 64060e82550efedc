-- pgTAP: BI pseudonyms and blind indexes are HMAC-SHA256 with the MAC half
-- of the key file (bytes 33 to 64 of loyalty_keys) over a label, a NUL and
-- the value, bit for bit: checked against pgcrypto's hmac(), so that a
-- faster implementation (src/crypto.c) never changes stored keys.
BEGIN;
SELECT plan(3);
CREATE EXTENSION pgcrypto SCHEMA public;

-- the key file exists once any keyed function ran
SELECT loyalty.pseudonym(gen_random_uuid()) IS NOT NULL AS keyed;
CREATE TEMP TABLE k ON COMMIT DROP AS SELECT pg_read_binary_file('loyalty_keys', 32, 32) AS mac_key;
CREATE TEMP TABLE ids ON COMMIT DROP AS
SELECT md5(n::text)::uuid AS id FROM generate_series(1, 1000) n
UNION ALL SELECT '00000000-0000-0000-0000-000000000000'::uuid
UNION ALL SELECT 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid;

SELECT is((SELECT count(*)::int FROM ids, k
            WHERE loyalty.pseudonym(id) = left(encode(public.hmac(convert_to('pseudonym', 'UTF8') || '\x00'::bytea || uuid_send(id),
                                                                  mac_key, 'sha256'), 'hex'), 32)),
    1002, 'pseudonym(id) is the first 128 bits of HMAC-SHA256(key, ''pseudonym'' NUL id), in hex');
SELECT is(loyalty._blind_index('id_number', '11010519491231002X'),
          (SELECT public.hmac(convert_to('id_number', 'UTF8') || '\x00'::bytea || convert_to('11010519491231002X', 'UTF8'),
                              mac_key, 'sha256') FROM k),
    'the blind index is HMAC-SHA256(key, kind NUL normalised value)');
SELECT is(loyalty.pseudonym('00000000-0000-0000-0000-000000000000'),
          loyalty.pseudonym('00000000-0000-0000-0000-000000000000'), 'stable within a backend');

SELECT * FROM finish();
ROLLBACK;
