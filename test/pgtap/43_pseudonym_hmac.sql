-- pgTAP: BI pseudonyms and blind indexes are HMAC-SHA256 with the MAC half
-- of the key file (bytes 33 to 64 of the file loyalty.key_file names) over a label, a NUL and
-- the value, bit for bit: checked against pgcrypto's hmac(), so that a
-- faster implementation (src/privacy_crypto.c) never changes stored keys.
BEGIN;
SELECT plan(5);
CREATE EXTENSION pgcrypto SCHEMA public;

-- the key file of this database (tools/test.sh ran loyalty.key_create())
SELECT loyalty.pseudonym(gen_random_uuid()) IS NOT NULL AS keyed;
CREATE TEMP TABLE k ON COMMIT DROP AS SELECT pg_read_binary_file(current_setting('loyalty.key_file'), 32, 32) AS mac_key;
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

-- the BI month generalisation is to_char's text, also BC, far future, infinity
SELECT is((SELECT count(*)::int
             FROM (SELECT t FROM generate_series(timestamptz '1969-12-31 22:00+00', '2031-01-01', interval '17 hours 13 minutes') t
                   UNION ALL VALUES ('0044-03-15 12:00+00 BC'::timestamptz), ('0001-01-01 00:00+00 BC'), ('0001-01-01 00:00+00'),
                                    ('9999-12-31 23:59:59.999999+00'), ('12345-06-01 00:00+00'), ('294276-12-31 23:59:59+00'),
                                    ('2026-02-28 23:59:59.999999+00'), ('2026-03-01 00:00:00+00'),
                                    ('infinity'), ('-infinity')) s(t)
            WHERE loyalty.mask_month_utc(t) IS DISTINCT FROM to_char(t AT TIME ZONE 'UTC', 'YYYY-MM')), 0,
    'mask_month_utc(t) = to_char(t AT TIME ZONE ''UTC'', ''YYYY-MM'') for every time tried');
SELECT is(pg_get_viewdef('loyalty.bi_members'::regclass) LIKE '%enrolled_year%', true,
    'since 1.2 bi_members publishes the year of enrolment (k-anonymity, 47_privacy_bi.sql)');

SELECT * FROM finish();
ROLLBACK;
