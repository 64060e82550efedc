-- pgTAP: bad input to the benefit catalogue, benefit use and risk tags gets
-- a clear error with the right SQLSTATE, and nothing is half-written.
BEGIN;
SELECT plan(60);

SELECT lives_ok($$SELECT loyalty.store_create(gen_random_uuid()::text, 'tba', 'Tap A', 'bay', 'r', 'Asia/Shanghai'),
                         loyalty.store_create(gen_random_uuid()::text, 'tbb', 'Tap B', 'bay', 'r', 'Asia/Urumqi')$$, 'setup stores');
SELECT lives_ok($$SELECT loyalty.benefit_define(gen_random_uuid()::text, 't_late', 'Late checkout', 'late_checkout'),
                         loyalty.benefit_define(gen_random_uuid()::text, 't_gift', 'Gift', 'gift'),
                         loyalty.benefit_define(gen_random_uuid()::text, 't_upgrade', 'Upgrade', 'room_upgrade'),
                         loyalty.benefit_define(gen_random_uuid()::text, 't_voucher', 'Voucher', 'voucher')$$, 'setup benefits');

-- the catalogue
SELECT throws_ok($$SELECT loyalty.benefit_define(gen_random_uuid()::text, 't_late', 'Again', 'late_checkout')$$,
    '42710', 'benefit "t_late" already exists', 'duplicate benefit');
SELECT throws_ok($$SELECT loyalty.benefit_define(gen_random_uuid()::text, 'T-Bad', 'Bad', 'gift')$$,
    '22023', 'invalid benefit code "T-Bad"', 'bad benefit code');
SELECT throws_ok($$SELECT loyalty.benefit_define(gen_random_uuid()::text, 't_spa', 'Spa', 'massage')$$,
    '22023', 'unknown benefit kind "massage"', 'unknown kind');
SELECT throws_ok($$SELECT loyalty.benefit_define(gen_random_uuid()::text, 't_spa', NULL, 'gift')$$, '22004', NULL, 'null name');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_nope', 'tier', '{}', min_tier => 'gold')$$,
    'P0002', 'benefit "t_nope" does not exist', 'grant of an unknown benefit');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_gift', 'store', '{"item": "x"}', stores => '{}')$$,
    '22023', 'a store benefit must name at least one store', 'a store benefit valid nowhere (no store)');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_gift', 'store', '{"item": "x"}')$$,
    '22023', 'a store benefit must name at least one store', 'a store benefit without stores');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_late', 'tier', '{"hour": 15}', min_tier => 'gold',
                                                valid_from => '2026-05-01', valid_until => '2026-05-01')$$,
    '22023', NULL, 'a benefit valid nowhere (empty window)');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_gift', 'store', '{"item": "x"}', stores => ARRAY['tba', 'nowhere'])$$,
    'P0002', 'store "nowhere" does not exist', 'a store benefit for an unknown store');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_gift', 'store', '{"item": "x"}', stores => ARRAY['tba', 'tba'])$$,
    '22023', 'stores names a store twice', 'a store named twice');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_late', 'tier', '{"hour": 15}', min_tier => 'diamond')$$,
    '22023', 'unknown tier "diamond"', 'unknown tier');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_late', 'tier', '{"hour": 15}')$$,
    '22023', 'a tier grant needs min_tier and no stores or campaign', 'tier grant without a tier');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_late', 'campaign', '{"hour": 15}')$$,
    '22004', 'a campaign grant needs a campaign name', 'campaign grant without a campaign');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_late', 'tier', '{"hour": 25}', min_tier => 'gold')$$,
    '22023', 'invalid value 25 for parameter "hour" of a late_checkout benefit', 'hour out of range');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_late', 'tier', '{"hour": 15, "minute": 30}', min_tier => 'gold')$$,
    '22023', 'unknown parameter "minute" for a late_checkout benefit', 'unknown parameter');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_late', 'tier', '{}', min_tier => 'gold')$$,
    '22023', 'a late_checkout benefit needs parameter "hour"', 'missing parameter');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_voucher', 'tier', '{"amount": 100.5}', min_tier => 'gold')$$,
    '22023', NULL, 'money as a JSON number');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_late', 'tier', '{"hour": 15}', min_tier => 'gold', use_limit => 2)$$,
    '22023', 'use_limit and limit_per go together', 'limit without period');
SELECT is((SELECT count(*)::int FROM loyalty.benefit_grant WHERE benefit_code LIKE 't\_%'), 0,
    'no grant written by a failed call (not even for the known store of a list)');
SELECT is((SELECT count(*)::int FROM loyalty.benefit WHERE benefit_code IN ('t_spa', 'T-Bad')), 0,
    'no benefit written by a failed call');

-- overlapping windows with contradictory parameters
SELECT lives_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_late', 'tier', '{"hour": 15}', min_tier => 'gold',
                                               valid_from => '2026-01-01', valid_until => '2027-01-01')$$, 'a grant');
SELECT throws_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_late', 'tier', '{"hour": 14}', min_tier => 'gold',
                                                valid_from => '2026-06-01', valid_until => '2027-06-01')$$,
    '23P01', NULL, 'an overlapping grant with contradictory parameters');
SELECT lives_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_late', 'tier', '{"hour": 14}', min_tier => 'gold',
                                               valid_from => '2027-01-01')$$, 'the next window is fine');
SELECT lives_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_late', 'tier', '{"hour": 16}', min_tier => 'platinum',
                                               valid_from => '2026-01-01')$$, 'another tier is fine');
SELECT is((SELECT count(*)::int FROM loyalty.benefit_grant WHERE benefit_code = 't_late'), 3,
    'the overlapping grant was not written');

-- using a benefit
SELECT lives_ok($$SELECT loyalty.benefit_grant(gen_random_uuid()::text, 't_gift', 'store', '{"item": "tea"}', stores => ARRAY['tba'],
                                               use_limit => 1, limit_per => 'ever'),
                         loyalty.benefit_grant(gen_random_uuid()::text, 't_upgrade', 'tier', '{}', min_tier => 'member')$$, 'store and tier grants');
CREATE TEMP TABLE tm AS SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'tba', 'Tap Member');
SELECT throws_ok($$SELECT loyalty.benefit_use('k1', NULL, 'tba', 't_gift')$$, '22004', NULL, 'null member');
SELECT throws_ok($$SELECT loyalty.benefit_use('k1', gen_random_uuid(), 'tba', 't_gift')$$, 'P0002', NULL, 'unknown member');
SELECT throws_ok($$SELECT loyalty.benefit_use('k1', member_id, 'nowhere', 't_gift') FROM tm$$,
    'P0002', 'store "nowhere" does not exist', 'unknown store');
SELECT throws_ok($$SELECT loyalty.benefit_use('', member_id, 'tba', 't_gift') FROM tm$$,
    '22023', NULL, 'empty idempotency key');
SELECT throws_ok($$SELECT loyalty.benefit_use('k1', member_id, 'tbb', 't_gift') FROM tm$$,
    'LY002', 'benefit "t_gift" is not available to this member at store "tbb"', 'store A''s benefit at store B');
SELECT throws_ok($$SELECT loyalty.benefit_use('k1', member_id, 'tba', 't_late') FROM tm$$,
    'LY002', NULL, 'a gold benefit for a base member');
SELECT is((SELECT count(*)::int FROM loyalty.benefit_use), 0, 'no use written by a refused call');
SELECT is((SELECT replayed FROM tm, loyalty.benefit_use('k1', member_id, 'tba', 't_gift')), false, 'first use');
SELECT is((SELECT replayed FROM tm, loyalty.benefit_use('k1', member_id, 'tba', 't_gift')), true,
    'the same key again replays the first use');
SELECT throws_ok($$SELECT loyalty.benefit_use('k1', member_id, 'tba', 't_upgrade') FROM tm$$,
    '23505', NULL, 'one key for two different uses');
SELECT throws_ok($$SELECT loyalty.benefit_use('k2', member_id, 'tba', 't_gift') FROM tm$$,
    'LY003', 'benefit "t_gift" is used up', 'a second use over the limit');
SELECT is((SELECT count(*)::int FROM loyalty.benefit_use), 1, 'one use written, once');

-- risk tags
SELECT throws_ok($$SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, member_id, 'tba', 'bad_vibes', 'x') FROM tm$$,
    '22023', 'unknown risk type "bad_vibes"', 'unknown risk type');
SELECT throws_ok($$SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, member_id, 'tba', 'unresolved_violation', ' ') FROM tm$$,
    '22023', 'note must not be empty', 'empty note');
SELECT throws_ok($$SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, member_id, 'tba', 'unresolved_violation', 'x', -5) FROM tm$$,
    '22023', 'invalid amount owed -5', 'negative amount');
SELECT throws_ok($$SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, member_id, 'tba', 'unresolved_violation', 'x', 1.005) FROM tm$$,
    '22023', NULL, 'fractions of a cent');
SELECT throws_ok($$SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, gen_random_uuid(), 'tba', 'unresolved_violation', 'x')$$,
    'P0002', NULL, 'unknown member');
SELECT is((SELECT count(*)::int FROM loyalty.risk_tag) + (SELECT count(*)::int FROM loyalty.risk_tag_event), 0,
    'no tag and no audit step written by a failed raise');
CREATE TEMP TABLE tt AS SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, member_id, 'tba', 'unresolved_violation', 'broke a lamp', 120) AS tag_id FROM tm;
SELECT throws_ok($$SELECT loyalty.benefit_use('k3', member_id, 'tba', 't_upgrade') FROM tm$$,
    'LY001', 'room_upgrade is frozen for this member by unresolved risk tag "unresolved_violation"', 'a frozen upgrade');
SELECT throws_ok($$SELECT loyalty.assert_not_frozen(member_id, 'redemption') FROM tm$$,
    'LY001', NULL, 'frozen redemption (the ledger''s check)');
SELECT throws_ok($$SELECT loyalty.assert_not_frozen(member_id, 'earning') FROM tm$$,
    '22023', 'unknown capability "earning"', 'earning is no capability that can be frozen');
SELECT throws_ok($$SELECT loyalty.risk_tag_resolve(gen_random_uuid()::text, tag_id, 'forgotten', 'x') FROM tt$$,
    '22023', 'invalid resolution "forgotten"', 'unknown resolution');
SELECT lives_ok($$SELECT loyalty.risk_tag_resolve(gen_random_uuid()::text, tag_id, 'settled', 'paid') FROM tt$$, 'resolve');
SELECT throws_ok($$SELECT loyalty.risk_tag_resolve(gen_random_uuid()::text, tag_id, 'waived', 'again') FROM tt$$,
    '55000', NULL, 'resolving a tag twice');
SELECT is((SELECT count(*)::int FROM loyalty.risk_tag_event), 2, 'two audit steps: raised, resolved');

-- risk types: what a tag freezes is HQ's to say, and never earning
SELECT throws_ok($$SELECT loyalty.risk_type_set(gen_random_uuid()::text, 'late_payer', 'Late payer', ARRAY['earning'])$$,
    '22023', 'unknown capability "earning"', 'earning cannot be frozen');
SELECT throws_ok($$SELECT loyalty.risk_type_set(gen_random_uuid()::text, 'Late', 'Late payer', ARRAY['redemption'])$$,
    '22023', 'invalid risk code "Late"', 'bad risk code');
SELECT is((SELECT count(*)::int FROM loyalty.risk_type WHERE risk_code IN ('late_payer', 'Late')), 0,
    'no risk type written by a failed call');
SELECT lives_ok($$SELECT loyalty.risk_type_set(gen_random_uuid()::text, 'unresolved_violation', 'Unresolved violation',
                                               ARRAY['redemption', 'room_upgrade', 'breakfast'])$$,
    'HQ widens what a violation freezes');
SELECT is((SELECT frozen_by FROM tm, loyalty.benefits(member_id, 'tba') b WHERE b.benefit_code = 't_upgrade'),
    NULL, 'no open tag: nothing frozen');
SELECT lives_ok($$SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, member_id, 'tba', 'unresolved_violation', 'again') FROM tm$$, 'raise again');
SELECT is((SELECT loyalty.frozen_by(member_id, 'breakfast') FROM tm), 'unresolved_violation',
    'the widened freeze applies to the new tag');

SELECT * FROM finish();
ROLLBACK;
