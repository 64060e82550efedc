-- Benefits: the catalogue, resolution at two stores, limits, and the
-- violation freeze (stories 3, 4 and 5 of the domain).
\set VERBOSITY default
\set SHOW_CONTEXT never

-- try(sql): run a statement and show its SQLSTATE, message and detail with
-- ids and times masked (they differ from run to run)
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
    det text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RETURN regexp_replace(regexp_replace(st || ': ' || msg || coalesce(' / ' || nullif(det, ''), ''),
        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g'),
        '[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+[+-][0-9]+|[A-Z][a-z]{2} [A-Z][a-z]{2} [0-9]+ [0-9:.]+ [0-9]{4} [A-Z]+', '<time>', 'g');
END
$$;

SELECT loyalty.store_create(gen_random_uuid()::text, 'bena', 'Benefit Store A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'benb', 'Benefit Store B', 'bay', 'west', 'Asia/Urumqi');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'ben_a_desk', 'bena', 'frontdesk');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'ben_b_desk', 'benb', 'frontdesk');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'ben_b_mgr', 'benb', 'store_manager');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'ben_crm', NULL, 'crm');

-- the catalogue is HQ's: store staff cannot define it
SET ROLE ben_a_desk;
SELECT loyalty.benefit_define(gen_random_uuid()::text, 'x', 'X', 'gift');
RESET ROLE;

SET ROLE ben_crm;
SELECT loyalty.benefit_define(gen_random_uuid()::text, 'room_discount', 'Room rate discount', 'room_discount'),
       loyalty.benefit_define(gen_random_uuid()::text, 'breakfast', 'Free breakfast', 'breakfast'),
       loyalty.benefit_define(gen_random_uuid()::text, 'late_checkout', 'Late checkout', 'late_checkout'),
       loyalty.benefit_define(gen_random_uuid()::text, 'room_upgrade', 'Room upgrade', 'room_upgrade'),
       loyalty.benefit_define(gen_random_uuid()::text, 'local_gift', 'Local specialty gift', 'gift'),
       loyalty.benefit_define(gen_random_uuid()::text, 'spa_voucher', 'Spa voucher', 'voucher');
SELECT count(*) AS grants FROM (
    SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'room_discount', 'tier', '{"percent": 10}', min_tier => 'silver')
    UNION ALL SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'breakfast', 'tier', '{"count": 2}', min_tier => 'gold',
                                           use_limit => 1, limit_per => 'day')
    UNION ALL SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'late_checkout', 'tier', '{"hour": 15}', min_tier => 'gold')
    UNION ALL SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'late_checkout', 'tier', '{"hour": 16}', min_tier => 'platinum')
    UNION ALL SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'room_upgrade', 'tier', '{}', min_tier => 'platinum',
                                           use_limit => 1, limit_per => 'stay')
    UNION ALL SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'local_gift', 'store', '{"item": "Shenzhen lychee box"}',
                                           stores => ARRAY['bena'], use_limit => 1, limit_per => 'stay')
    UNION ALL SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'spa_voucher', 'campaign', '{"amount": "88.00"}',
                                           campaign => 'spring_spa', min_tier => 'silver',
                                           valid_from => '2026-03-01', valid_until => '2026-06-01',
                                           use_limit => 2, limit_per => 'month')
) g;
RESET ROLE;
SELECT benefit_code, source, min_tier, store_code, campaign, params, use_limit, limit_per
  FROM loyalty.benefit_grant ORDER BY benefit_code, min_tier;

-- members of each tier (the tier engine sets tiers; here we set them)
CREATE TEMP TABLE m AS
SELECT t.tier, (loyalty.member_enroll(gen_random_uuid()::text, 'bena', 'Guest ' || t.tier)).member_id
  FROM unnest(ARRAY['member', 'silver', 'gold', 'platinum']) AS t(tier);
UPDATE loyalty.member x SET tier = m.tier FROM m WHERE x.member_id = m.member_id;
SELECT member_id AS plat FROM m WHERE tier = 'platinum' \gset
SELECT member_id AS gold FROM m WHERE tier = 'gold' \gset
SELECT member_id AS silver FROM m WHERE tier = 'silver' \gset

-- story 3: chain benefits by tier, the same at every store
SELECT m.tier, b.benefit_code, b.source, b.reason, b.params, b.use_limit, b.limit_per, b.frozen
  FROM m, LATERAL loyalty.benefits(m.member_id, 'benb', '2026-01-15') b
 ORDER BY array_position(ARRAY['member', 'silver', 'gold', 'platinum'], m.tier), b.benefit_code;
SELECT count(*) AS chain_rows_that_differ_between_stores FROM (
    (SELECT m.tier, b.benefit_code, b.params FROM m, LATERAL loyalty.benefits(m.member_id, 'bena', '2026-01-15') b
      WHERE b.source = 'tier'
     EXCEPT
     SELECT m.tier, b.benefit_code, b.params FROM m, LATERAL loyalty.benefits(m.member_id, 'benb', '2026-01-15') b)
    UNION ALL
    (SELECT m.tier, b.benefit_code, b.params FROM m, LATERAL loyalty.benefits(m.member_id, 'benb', '2026-01-15') b
     EXCEPT
     SELECT m.tier, b.benefit_code, b.params FROM m, LATERAL loyalty.benefits(m.member_id, 'bena', '2026-01-15') b
      WHERE b.source = 'tier')) d;

-- story 4: store A's gift at store A, never at store B, for every tier
SELECT m.tier, b.reason, b.params FROM m, LATERAL loyalty.benefits(m.member_id, 'bena', '2026-01-15') b
 WHERE b.benefit_code = 'local_gift' ORDER BY 1;
SELECT count(*) AS gifts_at_b FROM m, LATERAL loyalty.benefits(m.member_id, 'benb') b
 WHERE b.benefit_code = 'local_gift';

-- campaign benefits in their window only
SELECT to_char(b.at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD') AS day, count(*) FILTER (WHERE x.benefit_code = 'spa_voucher') AS spa_vouchers
  FROM m, (VALUES (timestamptz '2026-02-28 12:00+08'), ('2026-04-10 12:00+08')) b(at),
       LATERAL loyalty.benefits(m.member_id, 'bena', b.at) x
 GROUP BY 1 ORDER BY 1;
SELECT reason, valid_until FROM loyalty.benefits((SELECT member_id FROM m WHERE tier = 'gold'), 'bena', '2026-04-10')
 WHERE benefit_code = 'spa_voucher';

-- store staff resolve benefits at their own store only
SET ROLE ben_a_desk;
SELECT count(*) FROM loyalty.benefits(:'gold', 'bena');
SELECT count(*) FROM loyalty.benefits(:'gold', 'benb');
SELECT * FROM loyalty.benefit_grant;
RESET ROLE;
SELECT * FROM loyalty.benefits('00000000-0000-0000-0000-000000000000', 'bena');
SELECT * FROM loyalty.benefits((SELECT member_id FROM m WHERE tier = 'gold'), 'nowhere');

-- using benefits: idempotent, limited, only where valid
\set pstay_a 30000000-0000-0000-0000-00000000000a
\set pstay_b 30000000-0000-0000-0000-00000000000b
INSERT INTO loyalty.stay (stay_id, member_id, store_code, check_in, check_out, status)
VALUES (:'pstay_a', :'plat', 'bena', '2026-01-10', '2026-01-12', 'in_house'),
       (:'pstay_b', :'plat', 'benb', '2026-01-12', '2026-01-14', 'in_house');

SET ROLE ben_a_desk;
SELECT params, reason, use_number, use_limit, limit_per, replayed
  FROM loyalty.benefit_use('a-1', :'plat', 'bena', 'room_upgrade', :'pstay_a');
-- a retry returns the first result and writes nothing
SELECT params, reason, use_number, use_limit, limit_per, replayed
  FROM loyalty.benefit_use('a-1', :'plat', 'bena', 'room_upgrade', :'pstay_a');
-- the key for another request
SELECT pg_temp.try(format('SELECT loyalty.benefit_use(''a-1'', %L, ''bena'', ''local_gift'', %L)', :'plat', :'pstay_a'));
-- one upgrade per stay
SELECT * FROM loyalty.benefit_use('a-2', :'plat', 'bena', 'room_upgrade', :'pstay_a');
SELECT * FROM loyalty.benefit_use('a-3', :'plat', 'bena', 'room_upgrade');
SELECT use_number, replayed FROM loyalty.benefit_use('a-4', :'plat', 'bena', 'local_gift', :'pstay_a');
-- not valid there: store B's stay, a silver member's upgrade, an unknown benefit
SELECT * FROM loyalty.benefit_use('a-5', :'plat', 'bena', 'local_gift', :'pstay_b');
SELECT * FROM loyalty.benefit_use('a-6', :'silver', 'bena', 'room_upgrade');
SELECT * FROM loyalty.benefit_use('a-7', :'silver', 'bena', 'caviar');
-- breakfast once per day in the member's time zone
SELECT use_number, use_limit, limit_per FROM loyalty.benefit_use('a-8', :'gold', 'bena', 'breakfast');
SELECT * FROM loyalty.benefit_use('a-9', :'gold', 'bena', 'breakfast');
-- another store's use
SELECT * FROM loyalty.benefit_use('b-1', :'gold', 'benb', 'breakfast');
RESET ROLE;
SET ROLE ben_b_desk;
SELECT * FROM loyalty.benefit_use('b-2', :'plat', 'benb', 'local_gift', :'pstay_b');
SELECT params, use_number FROM loyalty.benefit_use('b-3', :'plat', 'benb', 'room_upgrade', :'pstay_b');
RESET ROLE;
SELECT store_code, idempotency_key, benefit_code, reason, use_number, role
  FROM loyalty.benefit_use ORDER BY used_at, store_code, idempotency_key;

-- story 5: store B flags an unresolved violation; store A sees the freeze
SET ROLE ben_b_desk;
SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, :'plat', 'benb', 'unresolved_violation',
    'Damaged the TV in room 1208, left without paying', 1800.00) AS tag \gset
-- not for another store
SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, :'plat', 'bena', 'unresolved_violation', 'wrong store');
RESET ROLE;
SET ROLE ben_a_desk;
SELECT benefit_code, params, frozen, frozen_by, frozen_tag = :'tag' AS tag_named
  FROM loyalty.benefits(:'plat', 'bena') ORDER BY benefit_code;
-- store A sees the flag, not store B's internal note or amount
SELECT risk_code, freezes, store_code, unresolved, internal_visible, note, amount_owed, raised_by
  FROM loyalty.risk_tags(:'plat');
SELECT pg_temp.try(format('SELECT loyalty.benefit_use(''a-10'', %L, ''bena'', ''room_upgrade'', %L)', :'plat', :'pstay_a'));
SELECT pg_temp.try(format('SELECT loyalty.assert_not_frozen(%L, ''redemption'')', :'plat'));
SELECT loyalty.frozen_by(:'plat', 'redemption') AS redemption, loyalty.frozen_by(:'plat', 'breakfast') AS breakfast;
-- what is not frozen goes on
SELECT use_number FROM loyalty.benefit_use('a-11', :'plat', 'bena', 'late_checkout');
-- store A cannot resolve store B's tag nor read its history
SELECT pg_temp.try(format('SELECT loyalty.risk_tag_resolve(gen_random_uuid()::text, %L, ''settled'', ''paid at A'')', :'tag'));
SELECT pg_temp.try(format('SELECT loyalty.risk_tag_history(%L)', :'tag'));
RESET ROLE;
-- no risk type can freeze earning
SELECT pg_temp.try($$INSERT INTO loyalty.risk_type (risk_code, name, freezes) VALUES ('x', 'X', ARRAY['earning'])$$);

SET ROLE ben_b_desk;
SELECT risk_code, internal_visible, note, amount_owed FROM loyalty.risk_tags(:'plat');
RESET ROLE;
SET ROLE ben_b_mgr;
SELECT loyalty.risk_tag_resolve(gen_random_uuid()::text, :'tag', 'settled', 'Guest paid 1800.00 by card');
SELECT pg_temp.try(format('SELECT loyalty.risk_tag_resolve(gen_random_uuid()::text, %L, ''settled'', ''again'')', :'tag'));
SELECT action, store_code, role, department, detail - 'tag_id' - 'member_id' AS detail
  FROM loyalty.risk_tag_history(:'tag');
RESET ROLE;
SET ROLE ben_a_desk;
SELECT benefit_code, frozen FROM loyalty.benefits(:'plat', 'bena') WHERE benefit_code = 'room_upgrade';
SELECT count(*) AS open_tags FROM loyalty.risk_tags(:'plat');
SELECT loyalty.frozen_by(:'plat', 'redemption') AS redemption;
-- the past is kept: at the time of the freeze, the upgrade was frozen
RESET ROLE;
SELECT frozen, frozen_by FROM loyalty.benefits(:'plat', 'bena',
    (SELECT raised_at FROM loyalty.risk_tag WHERE tag_id = :'tag'))
 WHERE benefit_code = 'room_upgrade';
-- the audit trail is append-only
DELETE FROM loyalty.risk_tag_event;

-- tier changes carry the chain benefits gained, lost and changed
SELECT loyalty.tier_change_benefits('silver', 'gold', '2026-01-15');
SELECT loyalty.tier_change_benefits('platinum', 'gold', '2026-01-15');
SELECT loyalty.tier_change_benefits(NULL, 'member', '2026-01-15');
SELECT loyalty.tier_change_benefits('silver', 'diamond');

-- a suspended member has no benefits
UPDATE loyalty.member SET status = 'suspended' WHERE member_id = :'silver';
SELECT count(*) AS benefits_of_suspended FROM loyalty.benefits(:'silver', 'bena');
SELECT pg_temp.try(format('SELECT loyalty.benefit_use(''a-20'', %L, ''bena'', ''room_discount'')', :'silver'));
UPDATE loyalty.member SET status = 'active' WHERE member_id = :'silver';

-- a fraud review freezes every benefit, now and at a later time, until resolved
SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, :'gold', 'bena', 'fraud_review', 'card chargeback') AS gold_tag \gset
SELECT count(*) FILTER (WHERE frozen) AS frozen_now, count(*) AS benefits
  FROM loyalty.benefits(:'gold', 'bena');
SELECT count(*) FILTER (WHERE frozen) AS frozen_next_year
  FROM loyalty.benefits(:'gold', 'bena', now() + interval '1 year');
SELECT loyalty.risk_tag_resolve(gen_random_uuid()::text, :'gold_tag', 'raised_in_error', 'wrong member');
SELECT count(*) FILTER (WHERE frozen) AS frozen_after_resolve FROM loyalty.benefits(:'gold', 'bena');

DROP ROLE ben_a_desk, ben_b_desk, ben_b_mgr, ben_crm;
