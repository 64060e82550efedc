-- pgTAP: certificates and vouchers (issue 17 item 3): award_issue for one
-- member, voucher_use once at its store (idempotent), the nightly expiry
-- with its notice, rights per department, and bad input refused with its
-- SQLSTATE and nothing written.
BEGIN;
SELECT plan(35);

SELECT lives_ok($$SELECT loyalty.store_create('vc-store-a', 'vca', 'Voucher A', 'bay', 'r', 'Asia/Shanghai'),
                         loyalty.store_create('vc-store-b', 'vcb', 'Voucher B', 'bay', 'r', 'Asia/Shanghai')$$, 'setup stores');
CREATE TEMP TABLE vm AS SELECT (loyalty.member_enroll('vc-enroll-1', 'vca', 'Voucher One')).member_id AS m1;
SELECT lives_ok($$SELECT loyalty.staff_create('vc-s1', 'vc_mgr_a', 'vca', 'store_manager'),
                         loyalty.staff_create('vc-s2', 'vc_desk_b', 'vcb', 'frontdesk'),
                         loyalty.staff_create('vc-s3', 'vc_house_a', 'vca', 'housekeeping')$$, 'staff');
SELECT lives_ok($$SELECT loyalty.reward_define('vc-def-1', 'v_anniv', 'Anniversary set-up', 'experience', voucher_days => 90),
                         loyalty.reward_define('vc-def-2', 'v_upgrade', 'Suite upgrade', 'upgrade')$$,
    'two award-only rewards');
-- a valid Luhn code that no voucher has: the check digit of 15 digits
CREATE FUNCTION pg_temp.luhn(body text) RETURNS text LANGUAGE sql AS $$
    SELECT body || ((10 - (sum(CASE WHEN (16 - i) % 2 = 1
                                    THEN (substr(body, i, 1)::int * 2) / 10 + (substr(body, i, 1)::int * 2) % 10
                                    ELSE substr(body, i, 1)::int END) % 10)) % 10)::text
      FROM generate_series(1, 15) i
$$;

-- award_issue
CREATE TEMP TABLE a1 AS SELECT a.* FROM vm, loyalty.award_issue('vc-a1', m1, 'v_anniv', 'Wedding anniversary', 'vca') a;
SELECT ok((SELECT voucher_code ~ '^[1-9][0-9]{15}$' AND NOT replayed FROM a1), 'a certificate with a 16-digit code');
SELECT ok((SELECT valid_until BETWEEN now() + interval '89 days' AND now() + interval '91 days' FROM a1),
          'valid for the reward''s voucher_days');
SELECT is((SELECT row(source, state, store_code, reason)::text FROM loyalty.voucher JOIN a1 USING (voucher_id)),
          '(award,issued,vca,"Wedding anniversary")', 'issued for the member, usable at vca');
SELECT is((SELECT row(a.voucher_id, a.voucher_code, a.replayed)::text FROM vm, loyalty.award_issue('vc-a1', m1, 'v_anniv', 'Wedding anniversary', 'vca') a),
          (SELECT row(voucher_id, voucher_code, true)::text FROM a1), 'a retry returns the first certificate');
SELECT throws_ok($$SELECT loyalty.award_issue('vc-a1', m1, 'v_upgrade', 'Goodwill', 'vca') FROM vm$$,
    '22023', 'idempotency_key was already used for another request', 'the key with other arguments');
SELECT is((SELECT count(*) FROM (SELECT member_id, action FROM loyalty.audit_log UNION ALL
                                  SELECT member_id, action FROM loyalty.audit_change_staging) a, vm
            WHERE a.member_id = m1 AND a.action = 'award_issue'), 1::bigint,
          'one audit record');

-- bad input: nothing written
CREATE TEMP TABLE before AS SELECT count(*) AS n FROM loyalty.voucher;
SELECT throws_ok($$SELECT loyalty.award_issue('vc-bad-1', m1, 'nothing', 'x') FROM vm$$,
    'P0002', 'reward "nothing" does not exist', 'unknown reward');
SELECT throws_ok($$SELECT loyalty.award_issue('vc-bad-2', m1, 'v_anniv', '') FROM vm$$,
    '22023', 'reason must be 1 to 200 bytes', 'no reason');
SELECT throws_ok($$SELECT loyalty.award_issue('vc-bad-3', m1, 'v_anniv', 'x', NULL, now() - interval '1 day') FROM vm$$,
    '22023', 'expires_at must be a finite time in the future', 'an expiry in the past');
SELECT throws_ok($$SELECT loyalty.award_issue('vc-bad-4', gen_random_uuid(), 'v_anniv', 'x')$$,
    NULL, NULL, 'unknown member');
SELECT throws_ok($$SELECT loyalty.award_issue(NULL, m1, 'v_anniv', 'x') FROM vm$$,
    '22004', 'idempotency_key must not be null', 'no key');
SELECT is((SELECT count(*) FROM loyalty.voucher), (SELECT n FROM before), 'nothing written by the refused calls');

-- rights (store roles cannot read this session's temporary tables: variables)
SELECT m1 AS vm1 FROM vm \gset
SELECT voucher_code AS vc1 FROM a1 \gset
SET LOCAL ROLE vc_mgr_a;
SELECT throws_ok($$SELECT loyalty.award_issue('vc-m1', '$$ || :'vm1' || $$', 'v_upgrade', 'Goodwill', 'vcb')$$,
    '42501', 'permission denied for store "vcb"', 'a manager, for another store');
SELECT throws_ok($$SELECT loyalty.award_issue('vc-m0', '$$ || :'vm1' || $$', 'v_upgrade', 'Goodwill')$$,
    '42501', 'a store manager issues certificates for their own store only', 'a manager, for every store');
SELECT lives_ok($$SELECT loyalty.award_issue('vc-m2', '$$ || :'vm1' || $$', 'v_upgrade', 'Noisy room', 'vca')$$,
    'a manager, goodwill for their own store');
RESET ROLE;
SET LOCAL ROLE vc_house_a;
SELECT throws_ok($$SELECT loyalty.voucher_use('vc-h1', '$$ || :'vc1' || $$', 'vca')$$,
    '42501', NULL, 'housekeeping cannot use vouchers');
RESET ROLE;

-- voucher_use
SELECT throws_ok($$SELECT loyalty.voucher_use('vc-u0', left(voucher_code, 15) || ((right(voucher_code, 1)::int + 1) % 10)::text, 'vca') FROM a1$$,
    '22023', 'voucher code is not valid', 'a mistyped code (check digit)');
SELECT throws_ok($$SELECT loyalty.voucher_use('vc-u1', pg_temp.luhn('999999999999999'), 'vca')$$,
    'P0002', 'voucher not found', 'an unknown code');
SET LOCAL ROLE vc_desk_b;
SELECT throws_ok($$SELECT loyalty.voucher_use('vc-u2', '$$ || :'vc1' || $$', 'vcb')$$,
    'LY023', 'voucher is usable at store "vca" only', 'at another store');
SELECT throws_ok($$SELECT loyalty.voucher_use('vc-u3', '$$ || :'vc1' || $$', 'vca')$$,
    '42501', NULL, 'a front desk acts for its own store only');
RESET ROLE;
SELECT is((SELECT row(u.reward_code, u.kind, u.replayed)::text FROM a1, loyalty.voucher_use('vc-u4', a1.voucher_code, 'vca') u),
          '(v_anniv,experience,f)', 'used at its store');
SELECT is((SELECT row(u.reward_code, u.replayed)::text FROM a1, loyalty.voucher_use('vc-u4', a1.voucher_code, 'vca') u),
          '(v_anniv,t)', 'a retry returns the first use');
SELECT throws_ok($$SELECT loyalty.voucher_use('vc-u5', voucher_code, 'vca') FROM a1$$,
    'LY023', 'voucher has already been used', 'used once only');
SELECT is((SELECT row(state, used_store)::text FROM loyalty.voucher JOIN a1 USING (voucher_id)), '(used,vca)', 'recorded as used');

-- the nightly expiry and its notice
CREATE TEMP TABLE a2 AS SELECT a.* FROM vm, loyalty.award_issue('vc-a2', m1, 'v_upgrade', 'Birthday', NULL) a;
CREATE TEMP TABLE a3 AS SELECT a.* FROM vm, loyalty.award_issue('vc-a3', m1, 'v_upgrade', 'Prize', NULL, now() + interval '5 days') a;
UPDATE loyalty.voucher SET expires_at = now() - interval '1 hour' WHERE voucher_id = (SELECT voucher_id FROM a2);
SELECT throws_ok($$SELECT loyalty.voucher_expire('vc-e0', now() + interval '1 day')$$,
    '22023', NULL, 'as_of in the future');
SELECT is((SELECT row(expired, notices, replayed)::text FROM loyalty.voucher_expire('vc-e1')),
          '(1,1,f)', 'one voucher expired, one notice (5 days ahead)');
SELECT is((SELECT row(expired, notices)::text FROM loyalty.voucher_expire('vc-e2')), '(0,0)',
          'the next night: nothing again, one notice per voucher');
SELECT is((SELECT string_agg(e.kind, ',' ORDER BY e.kind) FROM loyalty.event_outbox e, vm
            WHERE e.member_id = m1 AND e.kind IN ('voucher_expired', 'voucher_expiring')), 'voucher_expired,voucher_expiring',
          'an event for each');
SELECT is((SELECT count(*) FROM loyalty.event_outbox e, a2, a3
            WHERE e.kind LIKE 'voucher_%' AND (e.payload::text LIKE '%' || a2.voucher_code || '%'
                                              OR e.payload::text LIKE '%' || a3.voucher_code || '%')), 0::bigint,
          'events never carry the code');
SELECT throws_ok($$SELECT loyalty.voucher_use('vc-u6', voucher_code, 'vcb') FROM a2$$,
    'LY023', 'voucher has expired', 'an expired voucher');
SELECT is((SELECT string_agg(reward_code || ':' || state, ',' ORDER BY reward_code, state) FROM vm, loyalty.member_vouchers(m1)),
          'v_anniv:used,v_upgrade:expired,v_upgrade:issued,v_upgrade:issued', 'the member''s vouchers');
SELECT is((SELECT count(*) FROM loyalty.ledger_check()), 0::bigint, 'ledger consistent');

SELECT * FROM finish();
ROLLBACK;
