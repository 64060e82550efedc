-- Rewards in the demo chain (docs/rewards.md, issue 17): HQ prices free
-- nights by hotel category and season, a member redeems a free night at the
-- Shanghai front desk (the last award night of the date is then sold out),
-- and HQ gives the member an anniversary certificate that the Shenzhen front
-- desk honours once.
\set QUIET on
-- the guest: the member with the most points and no unresolved risk tag,
-- not one of the three fixed members the documentation's examples use
SELECT b.member_id AS rguest, b.balance AS rguest_balance
  FROM loyalty.point_balance b JOIN loyalty.member m USING (member_id)
 WHERE m.status = 'active' AND m.card_no NOT IN ('800000000011', '800000000029', '800000000037')
   AND NOT EXISTS (SELECT 1 FROM loyalty.risk_tag t WHERE t.member_id = b.member_id AND t.resolved_at IS NULL)
 ORDER BY b.balance DESC, b.member_id LIMIT 1 \gset
SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date + 30 AS night,
       (now() AT TIME ZONE 'Asia/Shanghai')::date + 60 AS peak_night \gset
SET ROLE hq_crm;
SELECT loyalty.store_category_set('demo-cat-szx', 'szx', 3::smallint),
       loyalty.store_category_set('demo-cat-sha', 'sha', 4::smallint),
       loyalty.store_category_set('demo-cat-urc', 'urc', 2::smallint) \gset
SELECT loyalty.reward_define('demo-reward-night', 'free_night', 'Award night', 'free_night',
                             cash_max => 200, nightly_capacity => 2,
                             description => 'One night in a standard room') AS r1 \gset
SELECT count(*) AS prices FROM (
    SELECT loyalty.reward_night_price_set('demo-price-' || c || '-' || s, 'free_night', c::smallint, s,
                                          (c * 5000 + CASE s WHEN 'peak' THEN 5000 ELSE 0 END)::bigint)
      FROM generate_series(1, 5) c, unnest(ARRAY['standard', 'peak']) s) p \gset
SELECT loyalty.reward_season_add('demo-season-1', 'Golden week', :'peak_night'::date - 3, :'peak_night'::date + 3) AS season \gset
SELECT loyalty.reward_define('demo-reward-dinner', 'dinner_for_two', 'Dinner for two', 'fnb_voucher',
                             points => 8000, member_limit => 2, member_limit_per => 'year') AS r2,
       loyalty.reward_define('demo-reward-romance', 'romantic_setup', 'Romantic room set-up', 'experience',
                             voucher_days => 90, description => 'Flowers, champagne and a late checkout; awarded only') AS r3 \gset
RESET ROLE;
\set QUIET off

\echo
\echo '== Rewards: the catalogue HQ (hq_crm) set up, read at the Shenzhen front desk; a free night costs by hotel category and season'
\set QUIET on
SET ROLE szx_desk;
\set QUIET off
SELECT reward_code, kind, points, cash_max, stores, total_left, nightly_capacity
  FROM loyalty.reward_catalog();
SELECT s.store_code, q.category, q.season, q.points, q.units_left
  FROM (VALUES ('szx'), ('sha'), ('urc')) s(store_code),
       LATERAL loyalty.reward_quote('free_night', s.store_code, :'night') q;
\echo '-- the same night in Golden week (a peak period) at sha'
SELECT season, points FROM loyalty.reward_quote('free_night', 'sha', :'peak_night');
\set QUIET on
RESET ROLE;
SET ROLE sha_desk;
\set QUIET off

\echo
\echo '== A member redeems an award night at the Shanghai front desk (sha_desk), 200 CNY of it in cash'
SELECT points, paid_cash, balance, season, length(voucher_code) AS voucher_digits,
       :rguest_balance - balance AS points_debited
  FROM loyalty.reward_redeem('demo-redeem-1', :'rguest', 'sha', 'free_night', :'night', 200);
\echo '-- the manager offers one more award night that date; the second is redeemed, then none is left'
\set QUIET on
RESET ROLE;
SET ROLE sha_mgr;
SELECT loyalty.reward_capacity_set('demo-cap-1', 'free_night', 'sha', :'night', 2) \gset
RESET ROLE;
SET ROLE sha_desk;
\set QUIET off
SELECT points, balance FROM loyalty.reward_redeem('demo-redeem-2', :'rguest', 'sha', 'free_night', :'night');
SELECT demo.try(format($q$SELECT loyalty.reward_redeem('demo-redeem-3', %L, 'sha', 'free_night', %L)$q$,
                       :'rguest', :'night')) AS third_night;
SELECT units_left FROM loyalty.reward_quote('free_night', 'sha', :'night');
\echo '-- the guest changes plans: the second night is cancelled, its points return and the night is free again'
SELECT points_refunded, balance
  FROM loyalty.reward_redemption_cancel('demo-cancel-1',
         (SELECT redemption_id FROM loyalty.member_redemptions(:'rguest') WHERE state = 'redeemed'
           ORDER BY redeemed_at DESC, redemption_id LIMIT 1), 'sha');
SELECT units_left FROM loyalty.reward_quote('free_night', 'sha', :'night');
\set QUIET on
RESET ROLE;
SET ROLE hq_crm;
\set QUIET off

\echo
\echo '== HQ (hq_crm) sends the member an anniversary certificate, usable at Shenzhen'
SELECT length(voucher_code) AS code_digits, valid_until > now() + interval '89 days' AS valid_90_days
  FROM loyalty.award_issue('demo-award-1', :'rguest', 'romantic_setup', 'Wedding anniversary', 'szx');
\set QUIET on
SELECT voucher_code AS cert FROM loyalty.award_issue('demo-award-1', :'rguest', 'romantic_setup', 'Wedding anniversary', 'szx') \gset
RESET ROLE;
SET ROLE sha_desk;
\set QUIET off
\echo '-- presented in Shanghai: refused, the certificate is for Shenzhen'
SELECT demo.try(format($q$SELECT loyalty.voucher_use('demo-use-sha', %L, 'sha')$q$, :'cert')) AS at_sha;
\set QUIET on
RESET ROLE;
SET ROLE szx_desk;
\set QUIET off
\echo '-- at the Shenzhen front desk (szx_desk): used once; a retry of the same call changes nothing'
SELECT reward_code, kind, replayed FROM loyalty.voucher_use('demo-use-1', :'cert', 'szx');
SELECT reward_code, kind, replayed FROM loyalty.voucher_use('demo-use-1', :'cert', 'szx');
SELECT demo.try(format($q$SELECT loyalty.voucher_use('demo-use-2', %L, 'szx')$q$, :'cert')) AS second_use;
SELECT reward_code, kind, source, state, store_code FROM loyalty.member_vouchers(:'rguest') ORDER BY reward_code, state;
\set QUIET on
RESET ROLE;
SET ROLE hq_crm;
SELECT loyalty.points_sale_price_set('demo-ps-1', 1000, 100),
       loyalty.points_sale_price_set('demo-ps-2', 10000, 80),
       loyalty.points_sale_rule_set('demo-ps-rule', 50000, 1000, 30),
       loyalty.partner_set('demo-partner-1', 'skyair', 'Sky Air', 'airline', 1000, 250, 5000, 1000) \gset
RESET ROLE;
SELECT m.member_id AS friend FROM loyalty.member m
 WHERE m.status = 'active' AND m.member_id <> :'rguest'
   AND m.card_no NOT IN ('800000000011', '800000000029', '800000000037')
 ORDER BY m.card_no LIMIT 1 \gset
SET ROLE sha_desk;
\set QUIET off

\echo
\echo '== Points for sale: the guest buys 10,000 points for a friend (volume price 80 CNY per 1,000), refundable for 30 days'
SELECT price, refundable_until::date - now()::date AS refundable_days
  FROM loyalty.points_gift('demo-gift-1', :'rguest', :'friend', 'sha', 10000, 'POS-SHA-0001');
\echo '-- 45,000 more would pass the friend''s yearly cap of 50,000'
SELECT demo.try(format($q$SELECT loyalty.points_gift('demo-gift-2', %L, %L, 'sha', 45000, 'POS-SHA-0002')$q$,
                       :'rguest', :'friend')) AS over_cap;

\echo
\echo '== Miles: 10,000 points to Sky Air (1,000 points = 250 miles), first without the data-sharing consent'
SELECT demo.try(format($q$SELECT loyalty.partner_transfer('demo-miles-0', %L, 'sha', 'skyair', 10000, 'SKY12345678')$q$,
                       :'rguest')) AS without_consent;
\set QUIET on
SELECT loyalty.consent_record(:'rguest', 'third_party', true, 'notice-2026', 'sha') AS consent \gset
\set QUIET off
SELECT units AS miles, balance FROM loyalty.partner_transfer('demo-miles-1', :'rguest', 'sha', 'skyair', 10000, 'SKY12345678');
\set QUIET on
RESET ROLE;
SET ROLE hq_crm;
\set QUIET off
\echo '-- Sky Air rejects the account number: the points come back'
SELECT r.state, r.balance
  FROM loyalty.member_partner_transfers(:'rguest') t,
       LATERAL loyalty.partner_transfer_reject('demo-miles-reject-1', t.transfer_id, 'unknown account') r;
\set QUIET on
RESET ROLE;
\set QUIET off
SELECT count(*) AS ledger_problems FROM loyalty.ledger_check();
