-- pgTAP: the reward catalogue (free nights by store category and season,
-- points + cash, limits), redemption with inventory, cancellation, and bad
-- input: each refused with a clear SQLSTATE and nothing written.  The
-- ledger invariant holds after every path.
BEGIN;
SELECT plan(71);

SELECT lives_ok($$SELECT loyalty.store_create('rw-store-a', 'rwa', 'Reward A', 'bay', 'r', 'Asia/Shanghai'),
                         loyalty.store_create('rw-store-b', 'rwb', 'Reward B', 'bay', 'r', 'Asia/Shanghai')$$, 'setup stores');
CREATE TEMP TABLE rm AS
SELECT (loyalty.member_enroll('rw-enroll-1', 'rwa', 'Reward One')).member_id AS m1, (loyalty.member_enroll('rw-enroll-2', 'rwb', 'Reward Two')).member_id AS m2;
SELECT lives_ok($$SELECT loyalty.points_accrue('rw-seed-1', m1, 'rwa', 100000, 'stay'),
                         loyalty.points_accrue('rw-seed-2', m2, 'rwb', 20000, 'stay') FROM rm$$, 'seed points');
CREATE TEMP TABLE rd AS SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date AS today;

-- the catalogue
SELECT lives_ok($$SELECT loyalty.store_category_set('rw-cat-a', 'rwa', 3::smallint),
                         loyalty.store_category_set('rw-cat-b', 'rwb', 5::smallint)$$, 'store categories');
SELECT is(loyalty.reward_define('rw-def-night', 'r_night', 'Free night', 'free_night', nightly_capacity => 2),
          'r_night', 'a free night');
SELECT lives_ok($$SELECT loyalty.reward_night_price_set('rw-p1', 'r_night', 3::smallint, 'standard', 20000),
                         loyalty.reward_night_price_set('rw-p2', 'r_night', 3::smallint, 'peak', 30000),
                         loyalty.reward_night_price_set('rw-p3', 'r_night', 5::smallint, 'standard', 40000)$$,
    'free-night prices by category and season');
SELECT lives_ok($$SELECT loyalty.reward_season_add('rw-season', 'Golden week', today + 10, today + 12) FROM rd$$,
    'a peak period');
SELECT lives_ok($$SELECT loyalty.reward_define('rw-def-dinner', 'r_dinner', 'Dinner for two', 'fnb_voucher',
                             points => 5000, cash_max => 30, stores => ARRAY['rwa'],
                             member_limit => 1, member_limit_per => 'year'),
                         loyalty.reward_define('rw-def-gift', 'r_gift', 'Tea set', 'gift', points => 2000,
                             total_limit => 1),
                         loyalty.reward_define('rw-def-anniv', 'r_anniv', 'Anniversary room set-up',
                             'experience')$$, 'a voucher, a gift and an award-only reward');
SELECT is(loyalty.reward_define('rw-def-gift', 'r_gift', 'Tea set', 'gift', points => 2000, total_limit => 1),
          'r_gift', 'reward_define retried with its key');
SELECT is((SELECT row(points, cash_max, stores, total_left)::text FROM loyalty.reward_catalog() WHERE reward_code = 'r_dinner'),
          '(5000,30,{rwa},)', 'the catalogue view');

-- prices
SELECT is((SELECT row(q.points, q.season, q.category, q.units_left)::text FROM rd, loyalty.reward_quote('r_night', 'rwa', today + 5) q),
          '(20000,standard,3,2)', 'category 3, standard season, two nights left');
SELECT is((SELECT row(q.points, q.season)::text FROM rd, loyalty.reward_quote('r_night', 'rwa', today + 11) q),
          '(30000,peak)', 'category 3 in the peak season');
SELECT is((SELECT q.points FROM rd, loyalty.reward_quote('r_night', 'rwb', today + 5) q), 40000::bigint,
          'category 5');
SELECT is((SELECT q.points FROM loyalty.reward_quote('r_anniv', 'rwa') q), NULL, 'an award-only reward has no price');

-- a peak free night
CREATE TEMP TABLE r1 AS
SELECT r.* FROM rm, rd, loyalty.reward_redeem('rw-r1', m1, 'rwa', 'r_night', today + 11) r;
SELECT is((SELECT row(points, balance, season, replayed)::text FROM r1), '(30000,70000,peak,f)', 'redeemed at the peak price');
SELECT ok((SELECT voucher_code ~ '^[1-9][0-9]{15}$' FROM r1),
          'a 16-digit voucher code');
SELECT is((SELECT row(e.kind, e.points, e.reference)::text FROM loyalty.point_entry e, r1 WHERE e.entry_id = r1.entry_id),
          '(redeem,-30000,r_night)', 'one ledger redemption with the reward as reference');
SELECT is((SELECT row(redemption_id, points, balance, replayed)::text FROM rm, rd,
                  loyalty.reward_redeem('rw-r1', m1, 'rwa', 'r_night', today + 11)),
          (SELECT row(redemption_id, points, balance, true)::text FROM r1), 'a retry returns the first answer');
SELECT is((SELECT loyalty.points_balance(m1) FROM rm), 70000::bigint, 'and debits nothing again');
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-r1', m1, 'rwa', 'r_night', today + 12) FROM rm, rd$$,
    '22023', 'idempotency_key was already used for another request', 'the key with other arguments');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox o, rm WHERE o.member_id = rm.m1
            AND o.kind IN ('reward_redeemed', 'voucher_issued')), 2, 'reward_redeemed and voucher_issued events');
SELECT is((SELECT count(*)::int FROM (SELECT member_id, action, purpose, at, fields::text AS fields FROM loyalty.audit_log UNION ALL SELECT member_id, action, purpose, at, detail::text FROM loyalty.audit_change_staging) a, rm WHERE a.member_id = rm.m1 AND a.action = 'reward_redeem'),
          1, 'one audit record');
SELECT is((SELECT reserved FROM loyalty.reward_inventory, rd WHERE reward_code = 'r_night' AND store_code = 'rwa'
            AND day = today + 11), 1, 'one night of the day held');
SELECT is_empty('SELECT * FROM loyalty.ledger_check()', 'ledger consistent after a redemption');

-- points + cash, member limit
SELECT is((SELECT row(points, paid_cash, balance)::text FROM rm, loyalty.reward_redeem('rw-r2', m1, 'rwa', 'r_dinner',
                                                                                  cash_amount => 30)),
          '(4700,30,65300)', '30.00 CNY in cash is worth 300 points at the single rate');
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-r3', m1, 'rwa', 'r_dinner') FROM rm$$,
    'LY022', 'the member''s limit for reward "r_dinner" is reached', 'one dinner per year');
SELECT is((SELECT count(*)::int FROM loyalty.reward_redemption, rm WHERE member_id = m1 AND reward_code = 'r_dinner'),
          1, 'nothing written by the refused redemption');
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-r4', m2, 'rwb', 'r_dinner') FROM rm$$,
    'LY021', 'reward "r_dinner" is not offered at store "rwb"', 'a reward of store A at store B');
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-r5', m2, 'rwa', 'r_dinner', cash_amount => 40) FROM rm$$,
    '22023', 'cash_amount 40 is more than the 30 reward "r_dinner" allows', 'more cash than allowed');
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-r6', m2, 'rwa', 'r_night', today + 5, cash_amount => 10) FROM rm, rd$$,
    '22023', 'reward "r_night" cannot be paid partly in cash', 'cash for a points-only reward');
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-r7', m2, 'rwa', 'r_dinner', cash_amount => 0.015) FROM rm$$,
    '22023', NULL, 'cash with more decimals than the currency');

-- overall limit
SELECT is((SELECT points FROM rm, loyalty.reward_redeem('rw-g1', m1, 'rwb', 'r_gift')), 2000::bigint, 'the one tea set');
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-g2', m2, 'rwb', 'r_gift') FROM rm$$,
    'LY020', 'reward "r_gift" is sold out', 'sold out: the overall limit');
SELECT is((SELECT loyalty.points_balance(m2) FROM rm), 20000::bigint, 'nothing debited');

-- inventory: two nights at store A on day +5
CREATE TEMP TABLE r2 AS
SELECT r.* FROM rm, rd, loyalty.reward_redeem('rw-n1', m2, 'rwa', 'r_night', today + 5) r;
SELECT is((SELECT row(points, balance)::text FROM r2), '(20000,0)', 'member two spends everything on a night');
SELECT lives_ok($$SELECT loyalty.reward_redeem('rw-n2', m1, 'rwa', 'r_night', today + 5) FROM rm, rd$$, 'the second night');
SELECT is((SELECT q.units_left FROM rd, loyalty.reward_quote('r_night', 'rwa', today + 5) q), 0, 'none left');
CREATE TEMP TABLE b1 AS SELECT loyalty.points_balance(m1) AS b FROM rm;
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-n3', m1, 'rwa', 'r_night', today + 5) FROM rm, rd$$,
    'LY020', NULL, 'sold out: the last night is gone');
SELECT is((SELECT loyalty.points_balance(m1) FROM rm), (SELECT b FROM b1), 'nothing debited');
SELECT is((SELECT count(*)::int FROM loyalty.reward_request WHERE idempotency_key = 'rw-n3'), 0, 'no request recorded');
SELECT lives_ok($$SELECT loyalty.reward_redeem('rw-n4', m1, 'rwb', 'r_night', today + 5) FROM rm, rd$$,
    'store B has its own nights');

-- bad input
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-x1', m1, 'rwa', 'r_nothing') FROM rm$$,
    'P0002', 'reward "r_nothing" does not exist', 'unknown reward');
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-x2', m1, 'nowhere', 'r_gift') FROM rm$$,
    'P0002', 'store "nowhere" does not exist', 'unknown store');
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-x3', gen_random_uuid(), 'rwa', 'r_gift')$$,
    'P0002', NULL, 'unknown member');
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-x4', m1, 'rwa', 'r_night') FROM rm$$,
    '22004', 'a free night needs stay_date', 'a free night without a date');
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-x5', m1, 'rwa', 'r_night', today - 1) FROM rm, rd$$,
    '22023', NULL, 'a night in the past');
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-x6', m1, 'rwa', 'r_anniv') FROM rm$$,
    'LY021', 'reward "r_anniv" has no price in points here', 'an award-only reward is not sold');
SELECT throws_ok($$SELECT loyalty.reward_redeem('rw-x7', m2, 'rwa', 'r_night', today + 6) FROM rm, rd$$,
    '23514', 'insufficient points', 'insufficient points');
SELECT is((SELECT count(*)::int FROM loyalty.reward_inventory, rd WHERE reward_code = 'r_night' AND day = today + 6),
          0, 'the refused redemption held no night');
SELECT throws_ok($$SELECT loyalty.reward_redeem(NULL, m1, 'rwa', 'r_gift') FROM rm$$,
    '22004', 'idempotency_key must not be null', 'null key');
SELECT throws_ok($$SELECT loyalty.reward_redeem('', m1, 'rwa', 'r_gift') FROM rm$$,
    '22023', 'idempotency_key must be 1 to 200 characters', 'empty key');
SELECT throws_ok($$SELECT loyalty.reward_redeem(repeat('k', 201), m1, 'rwa', 'r_gift') FROM rm$$,
    '22023', 'idempotency_key must be 1 to 200 characters', 'long key');
SELECT throws_ok($$SELECT loyalty.reward_define('rw-d1', 'r_night', 'Again', 'free_night')$$,
    '42710', 'reward "r_night" already exists', 'duplicate reward');
SELECT throws_ok($$SELECT loyalty.reward_define('rw-d2', 'R-Bad', 'Bad', 'gift')$$,
    '22023', 'invalid reward code "R-Bad"', 'bad reward code');
SELECT throws_ok($$SELECT loyalty.reward_define('rw-d3', 'r_spa', 'Spa', 'massage')$$,
    '22023', 'unknown reward kind "massage"', 'unknown kind');
SELECT throws_ok($$SELECT loyalty.reward_define('rw-d4', 'r_spa', 'Spa', 'experience', points => 0)$$,
    '23514', NULL, 'a price of 0 points');
SELECT throws_ok($$SELECT loyalty.reward_define('rw-d5', 'r_spa', 'Spa', 'experience', points => 1000,
                                                stores => ARRAY['rwa', 'nowhere'])$$,
    'P0002', 'store "nowhere" does not exist', 'an unknown store in the list');
SELECT throws_ok($$SELECT loyalty.reward_define('rw-d6', 'r_spa', 'Spa', 'experience', points => 1000, member_limit => 2)$$,
    '22023', 'member_limit and member_limit_per go together', 'a limit without its period');
SELECT is((SELECT count(*)::int FROM loyalty.reward WHERE reward_code IN ('r_spa', 'R-Bad')), 0, 'no reward written');
SELECT throws_ok($$SELECT loyalty.store_category_set('rw-cat-x', 'rwa', 11::smallint)$$,
    '22023', NULL, 'category out of range');
SELECT throws_ok($$SELECT loyalty.reward_capacity_set('rw-cap-x', 'r_night', 'rwa', today + 5, 1) FROM rd$$,
    '23514', 'capacity 1 is below the 2 units already redeemed', 'capacity below what is held');

-- cancellation gives the points back and frees the night
CREATE TEMP TABLE c1 AS
SELECT c.* FROM r2, loyalty.reward_redemption_cancel('rw-c1', r2.redemption_id, 'rwa') c;
SELECT is((SELECT row(points_refunded, points_forfeited, balance)::text FROM c1), '(20000,0,20000)', 'points back');
SELECT is((SELECT row(e.kind, e.points, e.related_entry = r2.entry_id)::text FROM loyalty.point_entry e, c1, r2
            WHERE e.entry_id = c1.entry_id), '(refund,20000,t)', 'one refund entry linked to the redemption');
SELECT is((SELECT v.state FROM loyalty.voucher v JOIN loyalty.reward_redemption x ON x.voucher_id = v.voucher_id, r2
            WHERE x.redemption_id = r2.redemption_id), 'cancelled', 'the voucher is cancelled');
SELECT is((SELECT q.units_left FROM rd, loyalty.reward_quote('r_night', 'rwa', today + 5) q), 1, 'the night is free again');
SELECT is((SELECT c.replayed FROM r2, loyalty.reward_redemption_cancel('rw-c1', r2.redemption_id, 'rwa') c), true,
          'a retried cancellation');
SELECT throws_ok($$SELECT loyalty.reward_redemption_cancel('rw-c2', redemption_id, 'rwa') FROM r2$$,
    '55000', NULL, 'a redemption is cancelled once');
SELECT throws_ok($$SELECT loyalty.reward_redemption_cancel('rw-c3', gen_random_uuid(), 'rwa')$$,
    'P0002', NULL, 'unknown redemption');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox o, rm WHERE o.member_id = rm.m2 AND o.kind = 'reward_cancelled'),
          1, 'a reward_cancelled event');
SELECT lives_ok($$SELECT loyalty.reward_redeem('rw-n5', m2, 'rwa', 'r_night', today + 5) FROM rm, rd$$,
    'the freed night is redeemed again');
SELECT is((SELECT count(*)::int FROM loyalty.member_redemptions((SELECT m1 FROM rm))), 5,
          'member_redemptions lists them');
SELECT is_empty('SELECT * FROM loyalty.ledger_check()', 'ledger consistent after every path');

SELECT * FROM finish();
ROLLBACK;
