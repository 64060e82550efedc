-- pgTAP: points sale (issue 17 item 4): bought for oneself or as a gift,
-- priced by volume band, within the yearly cap, as ledger lots of source
-- "purchase" that tier qualification never counts, refundable within the
-- window.  Bad input is refused with its SQLSTATE and nothing written; the
-- ledger invariant holds after every path.
BEGIN;
SELECT plan(40);

SELECT lives_ok($$SELECT loyalty.store_create('ps-store-a', 'psa', 'Sale A', 'bay', 'r', 'Asia/Shanghai'),
                         loyalty.store_create('ps-store-b', 'psb', 'Sale B', 'bay', 'r', 'Asia/Shanghai')$$, 'setup stores');
CREATE TEMP TABLE pm AS
SELECT (loyalty.member_enroll('ps-enroll-1', 'psa', 'Sale One')).member_id AS m1,
       (loyalty.member_enroll('ps-enroll-2', 'psb', 'Sale Two')).member_id AS m2;
CREATE TEMP TABLE tc AS SELECT c.* FROM pm, loyalty.tier_counters_at(m1) c;

-- the price table and the rules
SELECT is(loyalty.points_sale_quote(5000), NULL, 'no price table: no price');
SELECT throws_ok($$SELECT loyalty.points_buy('ps-buy-0', m1, 'psa', 5000, 'pos-0') FROM pm$$,
    'LY021', 'points are not sold in a quantity of 5000', 'no price: refused');
SELECT lives_ok($$SELECT loyalty.points_sale_price_set('ps-price-1', 1000, 100),
                         loyalty.points_sale_price_set('ps-price-2', 20000, 80)$$, 'two volume bands');
SELECT lives_ok($$SELECT loyalty.points_sale_price_set('ps-price-1', 1000, 100)$$, 'a band set again with its key');
SELECT is(loyalty.points_sale_quote(5000), 500.00, '5,000 points at 100 per 1,000');
SELECT is(loyalty.points_sale_quote(20000), 1600.00, '20,000 points at the volume price');
SELECT lives_ok($$SELECT loyalty.points_sale_rule_set('ps-rule-1', 30000, 1000, 30)$$, 'a yearly cap of 30,000');
SELECT throws_ok($$SELECT loyalty.points_sale_rule_set('ps-rule-2', 0)$$, '22023', 'invalid points sale rules',
    'a cap of 0 is refused');
SELECT throws_ok($$SELECT loyalty.points_sale_price_set('ps-price-3', 500, -1)$$, '22023', NULL,
    'a negative price is refused');

-- a purchase
CREATE TEMP TABLE s1 AS SELECT s.* FROM pm, loyalty.points_buy('ps-buy-1', m1, 'psa', 5000, 'pos-1') s;
SELECT is((SELECT row(price, balance, replayed)::text FROM s1), '(500.00,5000,f)', 'bought 5,000 points for 500');
SELECT is((SELECT row(l.source, l.points, l.state)::text FROM loyalty.point_lot l JOIN s1 ON l.entry_id = s1.entry_id),
          '(purchase,5000,active)', 'a lot of source purchase, active at once');
SELECT is((SELECT row(s.sale_id, s.price, s.balance, true)::text FROM pm, loyalty.points_buy('ps-buy-1', m1, 'psa', 5000, 'pos-1') s),
          (SELECT row(sale_id, price, balance, true)::text FROM s1), 'a retry returns the first answer');
SELECT is((SELECT loyalty.points_balance(m1) FROM pm), 5000::bigint, 'and credits nothing again');
SELECT throws_ok($$SELECT loyalty.points_buy('ps-buy-1', m1, 'psa', 6000, 'pos-1') FROM pm$$,
    '22023', 'idempotency_key was already used for another request', 'the key with other arguments');
SELECT is((SELECT row(c.nights, c.stays, c.base_points, c.qualifying_spend)::text FROM pm, loyalty.tier_counters_at(m1) c),
          (SELECT row(nights, stays, base_points, qualifying_spend)::text FROM tc), 'tier counters do not move');
SELECT is((SELECT count(*) FROM loyalty.ledger_check()), 0::bigint, 'ledger consistent after a purchase');

-- a gift
CREATE TEMP TABLE s2 AS SELECT s.* FROM pm, loyalty.points_gift('ps-gift-1', m1, m2, 'psa', 20000, 'pos-2') s;
SELECT is((SELECT row(price, balance)::text FROM s2), '(1600.00,20000)', 'a gift of 20,000 points at the volume price');
SELECT is((SELECT loyalty.points_balance(m1) FROM pm), 5000::bigint, 'the buyer''s balance does not move');
SELECT is((SELECT row(p.kind, p.member_id = m2, p.buyer_id = m1, p.state)::text FROM loyalty.points_sale p, pm, s2 WHERE p.sale_id = s2.sale_id),
          '(gift,t,t,sold)', 'recorded as a gift');
SELECT is((SELECT count(*) FROM pm, loyalty.member_points_sales(m1)), 2::bigint, 'the buyer sees both sales');

-- bad input: clear SQLSTATE, nothing written
CREATE TEMP TABLE before AS SELECT (SELECT count(*) FROM loyalty.points_sale) AS sales,
    (SELECT count(*) FROM loyalty.point_entry) AS entries;
SELECT throws_ok($$SELECT loyalty.points_buy('ps-bad-1', m1, 'psa', 1500, 'pos-x') FROM pm$$,
    '22023', 'points must be a multiple of 1000', 'off the step');
SELECT throws_ok($$SELECT loyalty.points_buy('ps-bad-2', m1, 'psa', 0, 'pos-x') FROM pm$$,
    '22023', 'points must be between 1 and 100000000', 'no points');
SELECT throws_ok($$SELECT loyalty.points_buy('ps-bad-3', m1, 'psa', 1000, '') FROM pm$$,
    '22023', 'payment_reference must be 1 to 200 bytes', 'no payment reference');
SELECT throws_ok($$SELECT loyalty.points_buy('ps-bad-4', m1, 'nowhere', 1000, 'pos-x') FROM pm$$,
    'P0002', NULL, 'unknown store');
SELECT throws_ok($$SELECT loyalty.points_buy('ps-bad-5', gen_random_uuid(), 'psa', 1000, 'pos-x')$$,
    NULL, NULL, 'unknown member');
SELECT throws_ok($$SELECT loyalty.points_buy(NULL, m1, 'psa', 1000, 'pos-x') FROM pm$$,
    '22004', 'idempotency_key must not be null', 'no key');
-- over the cap: m2 received 20,000 of 30,000; m1 bought 25,000 of 30,000
SELECT throws_ok($$SELECT loyalty.points_buy('ps-bad-6', m2, 'psb', 11000, 'pos-x') FROM pm$$,
    'LY025', 'the yearly cap of points received is reached', 'the recipient''s cap');
SELECT throws_ok($$SELECT loyalty.points_gift('ps-bad-7', m1, m2, 'psa', 6000, 'pos-x') FROM pm$$,
    'LY025', 'the yearly cap of points bought is reached', 'the buyer''s cap counts gifts');
SELECT is((SELECT row(count(*), (SELECT count(*) FROM loyalty.point_entry))::text FROM loyalty.points_sale),
          (SELECT row(sales, entries)::text FROM before), 'nothing written by the refused calls');
SELECT lives_ok($$SELECT loyalty.points_buy('ps-buy-2', m2, 'psb', 10000, 'pos-3') FROM pm$$, 'up to the cap exactly');

-- refunds
CREATE TEMP TABLE r1 AS SELECT r.* FROM s1, loyalty.points_sale_refund('ps-ref-1', s1.sale_id, 'psa') r;
SELECT is((SELECT row(points, price, balance, replayed)::text FROM r1), '(5000,500.00,0,f)', 'refunded: the points taken back');
SELECT is((SELECT row(r.points, r.balance, r.replayed)::text FROM s1, loyalty.points_sale_refund('ps-ref-1', s1.sale_id, 'psa') r),
          '(5000,0,t)', 'a refund retried with its key');
SELECT throws_ok($$SELECT loyalty.points_sale_refund('ps-ref-2', sale_id, 'psa') FROM s1$$,
    '55000', NULL, 'refunded once only');
SELECT lives_ok($$SELECT loyalty.points_buy('ps-buy-3', m1, 'psa', 6000, 'pos-4') FROM pm$$,
    'a refunded sale no longer counts toward the cap');
-- m2 spends the gift, then the gift is refunded: the ledger refuses (within_balance)
SELECT lives_ok($$SELECT loyalty.points_redeem('ps-spend-1', m2, 'psb', 25000, 'night') FROM pm$$, 'the recipient spends the gift');
SELECT throws_ok($$SELECT loyalty.points_sale_refund('ps-ref-3', sale_id, 'psa') FROM s2$$,
    '23514', NULL, 'spent points cannot be refunded');
UPDATE loyalty.points_sale SET refundable_until = now() - interval '1 day'
 WHERE sale_id = (SELECT sale_id FROM loyalty.points_sale, pm WHERE member_id = m1 AND state = 'sold');
SELECT throws_ok($$SELECT loyalty.points_sale_refund('ps-ref-4', s.sale_id, 'psa')
                     FROM loyalty.points_sale s, pm WHERE s.member_id = m1 AND s.state = 'sold'$$,
    '55000', NULL, 'after the window: refused');
SELECT throws_ok($$SELECT loyalty.points_sale_refund('ps-ref-5', gen_random_uuid(), 'psa')$$,
    'P0002', NULL, 'unknown sale');
SELECT is((SELECT count(*) FROM loyalty.ledger_check()), 0::bigint, 'ledger consistent after every path');

SELECT * FROM finish();
ROLLBACK;
