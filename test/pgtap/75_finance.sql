-- pgTAP: the points' money (docs/finance.md).  Two stores of two brands;
-- points issued, redeemed, expired and transferred come out per store,
-- brand and month; the liability is the outstanding points at the policy's
-- point value with the breakage of history; the reconciliation balances;
-- BI sees points without personal data, and not those of a member who
-- withdrew profiling consent; store roles see none of it.
BEGIN;
SELECT plan(19);

SELECT loyalty.store_create(gen_random_uuid()::text, 'fna', 'Finance A', 'fbrand_a', 'r', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'fnb', 'Finance B', 'fbrand_b', 'r', 'Asia/Urumqi');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'fn_crm', NULL, 'crm'), loyalty.staff_create(gen_random_uuid()::text, 'fn_bi', NULL, 'bi'),
       loyalty.staff_create(gen_random_uuid()::text, 'fn_desk', 'fna', 'frontdesk'), loyalty.staff_create(gen_random_uuid()::text, 'fn_mkt', NULL, 'marketing');
CREATE TEMP TABLE m AS
    SELECT (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'fna', 'Finance One')) AS a,
           (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'fnb', 'Finance Two')) AS b;
GRANT SELECT ON m TO PUBLIC;
-- a: 5000 at fna, 3000 at fnb; redeems 2000 at fnb; 1000 moved to b at fnb
SELECT loyalty.points_accrue('fn-1', (SELECT a FROM m), 'fna', 5000, 'stay', occurred_at => '2026-03-10 12:00+08');
SELECT loyalty.points_accrue('fn-2', (SELECT a FROM m), 'fnb', 3000, 'stay', occurred_at => '2026-03-20 12:00+08');
SELECT loyalty.points_redeem('fn-3', (SELECT a FROM m), 'fnb', 2000, 'gift');
SELECT loyalty.points_transfer('fn-4', (SELECT a FROM m), (SELECT b FROM m), 'fnb', 1000);
-- b: 600 at fna whose lot is due to expire; the expiry of it is history
SELECT loyalty.points_accrue('fn-5', (SELECT b FROM m), 'fna', 600, 'adjustment');
UPDATE loyalty.point_lot SET expires_at = now() - interval '1 day'
 WHERE member_id = (SELECT b FROM m) AND points = 600;
UPDATE loyalty.point_balance SET last_activity_at = now() - interval '3 years'
 WHERE member_id = (SELECT b FROM m);
SELECT loyalty.points_expire('fn-6');
CREATE TEMP TABLE x AS SELECT sum(balance)::bigint AS total FROM loyalty.point_balance;
GRANT SELECT ON x TO PUBLIC;

SET ROLE fn_crm;
SELECT is((SELECT issued FROM loyalty.finance_points_monthly WHERE store_code = 'fna' AND month = '2026-03-01'),
          5000::bigint, 'issued at fna in March (store time zone)');
SELECT is((SELECT brand FROM loyalty.finance_points_monthly WHERE store_code = 'fnb' AND month = '2026-03-01'),
          'fbrand_b', 'the store''s brand');
SELECT is((SELECT sum(redeemed) FROM loyalty.finance_points_monthly WHERE store_code = 'fnb')::bigint,
          2000::bigint, 'redeemed at fnb');
SELECT is((SELECT sum(transferred_out) || '/' || sum(transferred_in) FROM loyalty.finance_points_monthly WHERE store_code = 'fnb'),
          '1000/1000', 'a transfer out and in');
SELECT ok((SELECT sum(expired) > 0 FROM loyalty.finance_points_monthly WHERE store_code IN ('fna', 'fnb')),
          'expired points are counted');
SELECT is((SELECT sum(issued) FROM loyalty.finance_points_brand_monthly WHERE brand = 'fbrand_a')::bigint,
          5600::bigint, 'issued per brand');
SELECT is(loyalty.finance_point_value('2026-06-01'), 0.1::numeric, 'a point is worth 0.1 CNY by the default policy');
SELECT ok(loyalty.finance_breakage_rate(NULL) > 0 AND loyalty.finance_breakage_rate(NULL) < 1,
          'breakage from history is between 0 and 1');
SELECT is((SELECT outstanding_points FROM loyalty.finance_liability WHERE store_code IS NULL),
          (SELECT total FROM x) , 'total outstanding = sum of balances');
SELECT is((SELECT gross_liability FROM loyalty.finance_liability WHERE store_code IS NULL),
          round((SELECT total FROM x) * 0.1, 2), 'gross liability at the point value');
SELECT is((SELECT expected_liability FROM loyalty.finance_liability WHERE store_code IS NULL),
          round((SELECT total FROM x) * 0.1 * (1 - loyalty.finance_breakage_rate(NULL)), 2),
          'expected liability after breakage');
SELECT is((SELECT balanced FROM loyalty.finance_reconciliation), true, 'the ledger reconciles');
SELECT is((SELECT entries_total = balances_total AND balances_total = active_lots_total
             FROM loyalty.finance_reconciliation), true, 'entries = balances = active lots');
RESET ROLE;

-- a broken balance is seen (then rolled back with the test)
UPDATE loyalty.point_balance SET balance = balance + 1 WHERE member_id = (SELECT a FROM m);
SELECT is((SELECT balanced::text || members_out_of_balance FROM loyalty.finance_reconciliation), 'false1',
          'a stored balance that differs from its entries is found');
UPDATE loyalty.point_balance SET balance = balance - 1 WHERE member_id = (SELECT a FROM m);

-- k = 1: one member's rows (k-anonymity is test/pgtap/48_privacy_kanon.sql)
SET LOCAL loyalty.bi_k_anonymity = 1;
-- since 1.2 bi_points shows the members bi_members shows: profiling consent given
SELECT loyalty.consent_record((SELECT a FROM m), 'profiling', true, 'v1', 'fna');
SET ROLE fn_bi;
SELECT is((SELECT count(*)::int FROM loyalty.bi_points WHERE store_code IN ('fna', 'fnb')
             AND member_key = loyalty.pseudonym((SELECT a FROM m))), 4,
          'BI sees a''s points per store, month and kind under a pseudonym');
SELECT columns_are('loyalty', 'bi_points',
    ARRAY['member_key', 'store_code', 'brand', 'month', 'kind', 'points', 'pending_points', 'entries'],
    'bi_points has no personal data');
RESET ROLE;
SELECT loyalty.consent_record((SELECT a FROM m), 'profiling', false, 'v1', 'fna');
SET ROLE fn_bi;
SELECT is((SELECT count(*)::int FROM loyalty.bi_points WHERE member_key = loyalty.pseudonym((SELECT a FROM m))), 0,
          'a member who withdrew profiling consent leaves bi_points');
RESET ROLE;

SET ROLE fn_desk;
SELECT throws_ok($$SELECT * FROM loyalty.finance_liability$$, '42501', NULL, 'front desk cannot read the liability');
RESET ROLE;
SET ROLE fn_mkt;
SELECT throws_ok($$SELECT * FROM loyalty.bi_points$$, '42501', NULL, 'marketing cannot read bi_points');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
