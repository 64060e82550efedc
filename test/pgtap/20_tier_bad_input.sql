-- pgTAP: bad input to the tier and earning engine gets a clear error with
-- the right SQLSTATE and leaves nothing written.
BEGIN;
SELECT plan(33);

SELECT loyalty.store_create(gen_random_uuid()::text, 'tb_a', 'Bad A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'tb_b', 'Bad B', 'bay', 'east', 'Asia/Shanghai');
SELECT member_id AS m FROM loyalty.member_enroll(gen_random_uuid()::text, 'tb_a', 'Tap Guest') \gset
SELECT lives_ok($$SELECT loyalty.stay_record('tb-ok', 'tb_a', '$$ || :'m' || $$', '2026-03-01', '2026-03-03', 1, 800, 0,
                  occurred_at => '2026-03-03 10:00+08')$$, 'a good stay');

CREATE TEMP TABLE snap AS
SELECT (SELECT count(*) FROM loyalty.stay) AS stays,
       (SELECT count(*) FROM loyalty.earning_line) AS lines,
       (SELECT count(*) FROM loyalty.tier_activity) AS activity,
       (SELECT coalesce(sum(nights), 0) FROM loyalty.tier_counter) AS nights,
       (SELECT count(*) FROM loyalty.charge) AS charges,
       (SELECT count(*) FROM loyalty.tier_history) AS events;
CREATE TEMP VIEW now_counts AS
SELECT (SELECT count(*) FROM loyalty.stay) AS stays,
       (SELECT count(*) FROM loyalty.earning_line) AS lines,
       (SELECT count(*) FROM loyalty.tier_activity) AS activity,
       (SELECT coalesce(sum(nights), 0) FROM loyalty.tier_counter) AS nights,
       (SELECT count(*) FROM loyalty.charge) AS charges,
       (SELECT count(*) FROM loyalty.tier_history) AS events;
\set stay 'SELECT loyalty.stay_record(''tb-x'', ''tb_a'', ''' :m ''''

-- stays
SELECT throws_ok(:'stay' || $$, '2026-03-10', '2026-03-08')$$, '22023',
    'check-out 2026-03-08 is before check-in 2026-03-10', 'check-out before check-in');
SELECT throws_ok(:'stay' || $$, '2026-03-10', '2026-03-10')$$, '22023',
    'a stay needs at least one night', 'zero-night stay');
SELECT throws_ok(:'stay' || $$, '2026-03-02', '2026-03-05')$$, '23P01',
    'stay from 2026-03-02 to 2026-03-05 overlaps the member''s stay from 2026-03-01 to 2026-03-03 at store "tb_a"',
    'overlapping stay at one store');
SELECT throws_ok($$SELECT loyalty.stay_record('tb-x', 'nowhere', '$$ || :'m' || $$', '2026-03-10', '2026-03-11')$$,
    'P0002', 'store "nowhere" does not exist', 'unknown store');
SELECT throws_ok($$SELECT loyalty.stay_record('tb-x', 'tb_a', gen_random_uuid(), '2026-03-10', '2026-03-11')$$,
    'P0002', NULL, 'unknown member');
SELECT throws_ok(:'stay' || $$, '2026-03-10', '2026-03-11', 1, 100.005)$$, '22023',
    'room revenue 100.005 has more than 2 decimal places', 'revenue with the wrong scale');
SELECT throws_ok(:'stay' || $$, '2026-03-10', '2026-03-11', 1, 100, -5)$$, '22023',
    'other revenue must not be negative', 'negative revenue');
SELECT throws_ok(:'stay' || $$, '2026-03-10', '2026-03-11', 0)$$, '22023',
    'rooms must be between 1 and 50', 'zero rooms');
SELECT throws_ok(:'stay' || $$, '2026-03-10', '2027-03-20')$$, '22023', NULL, 'a stay of more than a year');
SELECT throws_ok($$SELECT loyalty.stay_record(NULL, 'tb_a', '$$ || :'m' || $$', '2026-03-10', '2026-03-11')$$,
    '22004', 'idempotency_key must not be null', 'no idempotency key');
SELECT throws_ok($$SELECT loyalty.stay_record('tb-ok', 'tb_b', '$$ || :'m' || $$', '2026-03-01', '2026-03-03')$$,
    '22023', 'idempotency key "tb-ok" was already used for another stay', 'a key reused for another stay');
SELECT throws_ok(:'stay' || $$, '2026-03-10', '2026-03-11', occurred_at => 'infinity')$$, '22023',
    'occurred_at must be a finite time', 'infinite activity time');
SELECT throws_ok($$SELECT loyalty.stay_checkout('no-such-key')$$, 'P0002',
    'no stay was recorded with idempotency key "no-such-key"', 'checkout of an unknown stay');
SELECT throws_ok($$SELECT loyalty.charge_record('tb-c', 'tb_a', '$$ || :'m' || $$', 0)$$, '22023',
    'amount must be positive', 'zero charge');
SELECT throws_ok($$SELECT loyalty.charge_record('tb-c', 'tb_a', '$$ || :'m' || $$', 1.234)$$, '22023',
    NULL, 'charge with the wrong scale');
SELECT results_eq('SELECT * FROM now_counts', 'SELECT * FROM snap', 'nothing written by the failed calls');

-- store staff act only for their own store
SELECT loyalty.staff_create(gen_random_uuid()::text, 'tb_desk_b', 'tb_b', 'frontdesk');
SET LOCAL ROLE tb_desk_b;
SELECT throws_ok(:'stay' || $$, '2026-04-10', '2026-04-11')$$, '42501',
    'permission denied for store "tb_a"', 'front desk of another store');
RESET ROLE;
SELECT loyalty.staff_create(gen_random_uuid()::text, 'tb_hk_a', 'tb_a', 'housekeeping');
SET LOCAL ROLE tb_hk_a;
SELECT throws_ok(:'stay' || $$, '2026-04-10', '2026-04-11')$$, '42501',
    'permission denied for function stay_record', 'housekeeping may not even call it');
RESET ROLE;

-- campaigns
SELECT throws_ok($$INSERT INTO loyalty.campaign (code, name, kind, multiplier_percent, starts_at, ends_at, priority)
                   VALUES ('tb_inv', 'Inverted', 'multiplier', 200, '2026-05-01', '2026-04-01', 1)$$, '22023',
    NULL, 'campaign window ends before it starts');
SELECT throws_ok($$INSERT INTO loyalty.campaign (code, name, kind, multiplier_percent, starts_at, ends_at, priority)
                   VALUES ('tb_half', 'Half', 'multiplier', 50, '2026-04-01', '2026-05-01', 1)$$, '22023',
    NULL, 'a multiplier below 101%');
SELECT throws_ok($$INSERT INTO loyalty.campaign (code, name, kind, multiplier_percent, fixed_points, starts_at, ends_at, priority)
                   VALUES ('tb_both', 'Both', 'fixed', 200, 100, '2026-04-01', '2026-05-01', 1)$$, '22023',
    NULL, 'a fixed campaign with a multiplier');
SELECT throws_ok($$INSERT INTO loyalty.campaign (code, name, kind, fixed_points, starts_at, ends_at, priority, cap_total)
                   VALUES ('tb_cap', 'Cap', 'fixed', 100, '2026-04-01', '2026-05-01', 1, 0)$$, '22023',
    'cap_total must be positive', 'a zero overall cap');
SELECT lives_ok($$INSERT INTO loyalty.campaign (code, name, kind, fixed_points, starts_at, ends_at, priority)
                  VALUES ('tb_one', 'One', 'fixed', 100, '2026-04-01', '2026-05-01', 7)$$, 'a campaign');
SELECT throws_ok($$INSERT INTO loyalty.campaign (code, name, kind, fixed_points, starts_at, ends_at, priority)
                   VALUES ('tb_two', 'Two', 'fixed', 100, '2026-04-15', '2026-06-01', 7)$$, '23P01',
    'campaign priority 7 conflicts with campaign "tb_one"', 'conflicting priorities');
SELECT lives_ok($$INSERT INTO loyalty.campaign (code, name, kind, fixed_points, starts_at, ends_at, priority)
                  VALUES ('tb_three', 'Three', 'fixed', 100, '2026-05-01', '2026-06-01', 7)$$,
    'the same priority in a window that does not overlap');
SELECT throws_ok($$UPDATE loyalty.campaign SET starts_at = '2026-04-20' WHERE code = 'tb_three'$$, '23P01',
    NULL, 'an update that makes priorities conflict');
SELECT is((SELECT count(*)::int FROM loyalty.campaign WHERE code LIKE 'tb\_%'), 2, 'only the two good campaigns exist');

-- tier policies and grants
SELECT throws_ok($$SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"},
    {"code": "silver", "qualify": {"any": {"nights": 40}}}, {"code": "gold", "qualify": {"any": {"nights": 10}}}]}')$$,
    '22023', NULL, 'thresholds that are not monotonic');
SELECT throws_ok($$SELECT loyalty.tier_grant('$$ || :'m' || $$', 'diamond', 'because')$$, '22023',
    '"diamond" is not a tier above the base tier of the policy in effect', 'grant of an unknown tier');
SELECT throws_ok($$SELECT loyalty.tier_grant('$$ || :'m' || $$', 'gold', '  ')$$, '22023',
    'a tier grant needs a reason of 1 to 500 characters', 'grant without a reason');
SELECT throws_ok($$SELECT loyalty.tier_grant('$$ || :'m' || $$', 'gold', 'late', '2000-01-01')$$, '22023',
    'a tier grant must expire in the future', 'grant that has already expired');
SELECT is((SELECT count(*)::int FROM loyalty.tier_grant), 0, 'no grant written');

SELECT * FROM finish();
ROLLBACK;
