-- pgTAP: loyalty.policy_preview (docs/policy.md, "Previewing a policy") on
-- three members with hand-computed answers, under the default policy
-- (silver 10 nights, gold 40; 10 points per CNY; elite bonus silver +20%,
-- gold +80%) and a proposal (silver 5 nights, gold 50; 12 points per CNY;
-- silver +25%):
--   a  12 nights, 1,200 CNY: silver under both            stay 14,900 -> 18,500 (+3,600)
--   b   5 nights,   500 CNY: member -> silver (up, +1)     stay  5,500 ->  6,500 (+1,000)
--   c  45 nights, 4,500 CNY: gold -> silver (down, -1)     stay 81,500 -> 97,700 (+16,200)
-- (a: 12,000 base + 20% + 500 campaign = 14,900; 14,400 base + 25% + 500 = 18,500.
--  c: 45,000 + 80% + 500 = 81,500; 54,000 + 80% + 500 = 97,700.)
-- Benefits: member -> silver gains pv_discount (silver and up); gold ->
-- silver loses pv_breakfast (gold and up); one member each.
BEGIN;
SELECT plan(22);

SELECT loyalty.store_create('store-ppv', 'ppv', 'Policy Preview Hotel', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create('staff-ppv_desk', 'ppv_desk', 'ppv', 'frontdesk'), loyalty.staff_create('staff-ppv_mkt', 'ppv_mkt', NULL, 'marketing');
SELECT loyalty.benefit_define('benefit-pv_discount', 'pv_discount', 'Discount', 'room_discount'),
       loyalty.benefit_define('benefit-pv_breakfast', 'pv_breakfast', 'Breakfast', 'breakfast');
SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'pv_discount', 'tier', '{"percent": 10}', min_tier => 'silver');
SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'pv_breakfast', 'tier', '{"count": 2}', min_tier => 'gold');
CREATE TEMP TABLE pvm AS
    SELECT 'a' AS who, member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'ppv', 'Preview A')
    UNION ALL SELECT 'b', member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'ppv', 'Preview B')
    UNION ALL SELECT 'c', member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'ppv', 'Preview C');
GRANT SELECT ON pvm TO PUBLIC;
SELECT loyalty.stay_record('pv-a', 'ppv', (SELECT member_id FROM pvm WHERE who = 'a'),
    '2026-03-01', '2026-03-13', 1, 1200, 0, true, '2026-06-01 10:00+08');
SELECT loyalty.stay_record('pv-b', 'ppv', (SELECT member_id FROM pvm WHERE who = 'b'),
    '2026-03-01', '2026-03-06', 1, 500, 0, true, '2026-06-02 10:00+08');
SELECT loyalty.stay_record('pv-c', 'ppv', (SELECT member_id FROM pvm WHERE who = 'c'),
    '2026-01-01', '2026-02-15', 1, 4500, 0, true, '2026-06-03 10:00+08');

-- a campaign with an overall cap: earning locks it and raises its total,
-- which the preview must not do (+500 points per stay on both sides)
INSERT INTO loyalty.campaign (code, name, kind, fixed_points, starts_at, ends_at, priority, stores, cap_total)
VALUES ('ppv_bonus', 'Preview bonus', 'fixed', 500, '2026-05-01', '2026-07-01', 97, '{ppv}', 1000000);

CREATE TEMP TABLE pv_doc AS SELECT
    jsonb_set(jsonb_set(jsonb_set(jsonb_set(loyalty.policy_at('2026-06-30 12:00+08'),
        '{tiers,1,qualify}', '{"any": {"nights": 5}}'),
        '{tiers,1,elite_bonus_percent}', '25'),
        '{tiers,2,qualify}', '{"any": {"nights": 50}}'),
        '{earning,base_points_per_unit}', '12') AS doc;
GRANT SELECT ON pv_doc TO PUBLIC;
CREATE TEMP TABLE pv_before AS SELECT
    (SELECT string_agg(tier, ',' ORDER BY who) FROM pvm JOIN loyalty.member USING (member_id)) AS tiers,
    (SELECT count(*) FROM loyalty.point_lot) AS lots,
    (SELECT count(*) FROM loyalty.stay) AS stays,
    (SELECT count(*) FROM loyalty.policy) AS policies,
    (SELECT awarded_total FROM loyalty.campaign WHERE code = 'ppv_bonus') AS awarded;

CREATE TEMP VIEW pv AS
SELECT p.section, pvm.who, p.stay_id IS NOT NULL AS has_stay, p.tier_from, p.tier_to,
       p.benefit_code, p.points_from, p.points_to, p.change, p.members
  FROM loyalty.policy_preview((SELECT doc FROM pv_doc), '2026-06-30 12:00+08',
                              member_ids => (SELECT array_agg(member_id) FROM pvm)) p
  LEFT JOIN pvm ON pvm.member_id = p.member_id;
GRANT SELECT ON pv TO PUBLIC;

SELECT results_eq($$SELECT who, tier_from, tier_to, change FROM pv WHERE section = 'tier' ORDER BY who$$,
    $$VALUES ('b', 'member', 'silver', 1::bigint), ('c', 'gold', 'silver', -1::bigint)$$,
    'tiers: b moves up to silver, c down to silver, a stays silver');
SELECT results_eq($$SELECT who, has_stay, tier_from, points_from, points_to, change FROM pv WHERE section = 'stay' ORDER BY who$$,
    $$VALUES ('a', true, 'silver', 14900::bigint, 18500::bigint, 3600::bigint),
             ('b', true, 'member', 5500::bigint, 6500::bigint, 1000::bigint),
             ('c', true, 'gold', 81500::bigint, 97700::bigint, 16200::bigint)$$,
    'stays: points under each policy (with the campaign''s 500), hand-computed');
SELECT results_eq($$SELECT tier_from, tier_to, benefit_code, change, members FROM pv WHERE section = 'benefit' ORDER BY 1, 2, 3$$,
    $$VALUES ('gold', 'silver', 'pv_breakfast', -1::bigint, 1::bigint),
             ('member', 'silver', 'pv_discount', 1::bigint, 1::bigint)$$,
    'benefits: gold -> silver loses breakfast, member -> silver gains the discount');

-- the same policy changes nothing
SELECT is((SELECT count(*) FROM loyalty.policy_preview(loyalty.policy_at('2026-06-30 12:00+08'), '2026-06-30 12:00+08',
              member_ids => (SELECT array_agg(member_id) FROM pvm)) WHERE change <> 0),
    0::bigint, 'the policy in effect as the proposal: no change anywhere');
SELECT is((SELECT count(*) FROM loyalty.policy_preview(loyalty.policy_at('2026-06-30 12:00+08'), '2026-06-30 12:00+08',
              member_ids => (SELECT array_agg(member_id) FROM pvm)) WHERE section = 'stay'),
    3::bigint, '... and every sampled stay is listed');

-- the sample: window and size
SELECT results_eq($$SELECT pvm.who FROM loyalty.policy_preview((SELECT doc FROM pv_doc), '2026-06-30 12:00+08',
              '2026-06-02 12:00+08', member_ids => (SELECT array_agg(member_id) FROM pvm)) p
              JOIN pvm USING (member_id) WHERE section = 'stay'$$,
    $$VALUES ('c')$$, 'stays_since leaves out older stays');
SELECT results_eq($$SELECT pvm.who FROM loyalty.policy_preview((SELECT doc FROM pv_doc), '2026-06-30 12:00+08',
              max_stays => 2, member_ids => (SELECT array_agg(member_id) FROM pvm)) p
              JOIN pvm USING (member_id) WHERE section = 'stay'$$,
    $$VALUES ('c'), ('b')$$, 'max_stays keeps the newest stays');
SELECT is((SELECT count(*) FROM loyalty.policy_preview((SELECT doc FROM pv_doc), '2026-06-30 12:00+08', max_stays => 0,
              member_ids => (SELECT array_agg(member_id) FROM pvm)) WHERE section = 'stay'),
    0::bigint, 'max_stays 0: no stay sample');
SELECT is((SELECT count(*) FROM loyalty.policy_preview((SELECT doc FROM pv_doc), '2026-03-30 12:00+08',
              member_ids => (SELECT array_agg(member_id) FROM pvm)) WHERE section = 'stay'),
    0::bigint, 'stays recorded after at are not sampled');

-- who may call
SET ROLE ppv_mkt;
SELECT is((SELECT count(*) FROM pv WHERE section = 'tier'), 2::bigint, 'HQ marketing may preview');
RESET ROLE;
SET ROLE ppv_desk;
SELECT throws_ok($$SELECT * FROM loyalty.policy_preview('{}')$$, '42501', NULL, 'a front desk may not');
RESET ROLE;

-- bad input: a clear error with its SQLSTATE
SELECT throws_ok($$SELECT * FROM loyalty.policy_preview(NULL)$$, '22004',
    'policy document must not be null', 'null document');
SELECT throws_ok($$SELECT * FROM loyalty.policy_preview('{"version": 1, "tiers": [{"code": "member"}], "colour": 1}')$$,
    '22023', 'invalid loyalty policy: unknown key "colour"', 'an invalid document: the validator''s error');
SELECT throws_ok($$SELECT * FROM loyalty.policy_preview((SELECT doc FROM pv_doc), NULL)$$, '22004',
    'at must not be null', 'null at');
SELECT throws_ok($$SELECT * FROM loyalty.policy_preview((SELECT doc FROM pv_doc), 'infinity')$$, '22008',
    'at must be a finite time', 'infinite at');
SELECT throws_ok($$SELECT * FROM loyalty.policy_preview((SELECT doc FROM pv_doc), '2026-06-30', '2026-07-01')$$, '22023',
    'stays_since must be a finite time not after at', 'stays_since after at');
SELECT throws_ok($$SELECT * FROM loyalty.policy_preview((SELECT doc FROM pv_doc), max_stays => -1)$$, '22023',
    'max_stays must be between 0 and 100000', 'negative max_stays');
SELECT throws_ok($$SELECT * FROM loyalty.policy_preview((SELECT doc FROM pv_doc), max_stays => 100001)$$, '22023',
    'max_stays must be between 0 and 100000', 'max_stays too large');

-- nothing changed
SELECT is((SELECT string_agg(tier, ',' ORDER BY who) FROM pvm JOIN loyalty.member USING (member_id)),
    (SELECT tiers FROM pv_before), 'tiers unchanged');
SELECT ok((SELECT count(*) FROM loyalty.point_lot) = (SELECT lots FROM pv_before)
          AND (SELECT count(*) FROM loyalty.stay) = (SELECT stays FROM pv_before),
    'no points, no stays written');
SELECT is((SELECT count(*) FROM loyalty.policy), (SELECT policies FROM pv_before), 'no policy stored');
SELECT is((SELECT awarded_total FROM loyalty.campaign WHERE code = 'ppv_bonus'), (SELECT awarded FROM pv_before),
    'the capped campaign''s total is unchanged');

SELECT * FROM finish();
ROLLBACK;
