-- Benefits and risk tags in the demo chain: stories 3, 4 and 5 of the
-- domain.  HQ CRM defines the chain benefits by tier and one store-only
-- benefit; store urc flags an unresolved violation that freezes redemption
-- and free upgrades at every store, and stays unresolved in the demo.
\set QUIET on
-- The demo's own scaffolding lives in schema "demo" of the demo database:
-- store roles have no TEMP privilege (docs/privacy.md), so the tour cannot
-- use temporary tables or functions while it acts as a store login.
CREATE SCHEMA IF NOT EXISTS demo;
GRANT USAGE ON SCHEMA demo TO PUBLIC;
-- demo.try(sql): run a statement; show "ok" or its SQLSTATE and message
CREATE FUNCTION demo.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN 'refused, ' || st || ': ' || msg;
END
$$;
SET ROLE hq_crm;
SELECT loyalty.benefit_define(gen_random_uuid()::text, 'room_discount', 'Room rate discount', 'room_discount', 'Off the best available room rate'),
       loyalty.benefit_define(gen_random_uuid()::text, 'breakfast', 'Free breakfast', 'breakfast'),
       loyalty.benefit_define(gen_random_uuid()::text, 'late_checkout', 'Late checkout', 'late_checkout'),
       loyalty.benefit_define(gen_random_uuid()::text, 'room_upgrade', 'Free room upgrade', 'room_upgrade', 'Subject to availability at check-in'),
       loyalty.benefit_define(gen_random_uuid()::text, 'local_gift', 'Local specialty gift', 'gift', 'Store szx only') \gset
SELECT count(*) AS grants FROM (
    SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'room_discount', 'tier', '{"percent": 10}', min_tier => 'silver')
    UNION ALL SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'breakfast', 'tier', '{"count": 2}', min_tier => 'gold',
                                           use_limit => 1, limit_per => 'day')
    UNION ALL SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'late_checkout', 'tier', '{"hour": 15}', min_tier => 'gold')
    UNION ALL SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'late_checkout', 'tier', '{"hour": 16}', min_tier => 'platinum')
    UNION ALL SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'room_upgrade', 'tier', '{"subject_to_availability": true}',
                                           min_tier => 'platinum', use_limit => 1, limit_per => 'stay')
    UNION ALL SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'local_gift', 'store', '{"item": "Lychee gift box"}',
                                           stores => ARRAY['szx'], use_limit => 1, limit_per => 'stay')
) g \gset
RESET ROLE;

-- one demo member per tier: the first member holding it, or (before the
-- tier engine has run) a base member promoted for the tour
CREATE TABLE demo.tier_member AS
SELECT t.tier, coalesce(
         (SELECT m.member_id FROM loyalty.member m WHERE m.tier = t.tier ORDER BY m.card_no LIMIT 1),
         (SELECT m.member_id FROM loyalty.member m WHERE m.tier = 'member'
           ORDER BY m.card_no OFFSET t.n LIMIT 1)) AS member_id
  FROM (VALUES ('member', 0), ('silver', 1), ('gold', 2), ('platinum', 3)) t(tier, n);
UPDATE loyalty.member m SET tier = d.tier, updated_at = now()
  FROM demo.tier_member d WHERE m.member_id = d.member_id AND m.tier <> d.tier;
GRANT SELECT ON demo.tier_member TO PUBLIC;
SELECT member_id AS plat FROM demo.tier_member WHERE tier = 'platinum' \gset
SELECT member_id AS gold FROM demo.tier_member WHERE tier = 'gold' \gset

\set QUIET off
\echo
\echo '== Story 3: chain benefits by tier, the same at every store (szx front desk vs urc front desk)'
\set QUIET on
SET ROLE szx_desk;
SELECT jsonb_agg(jsonb_build_object('tier', d.tier, 'benefit_code', b.benefit_code, 'params', b.params, 'reason', b.reason)) AS at_szx
  FROM demo.tier_member d, LATERAL loyalty.benefits(d.member_id, 'szx') b \gset
RESET ROLE;
SET ROLE urc_desk;
SELECT jsonb_agg(jsonb_build_object('tier', d.tier, 'benefit_code', b.benefit_code, 'params', b.params, 'reason', b.reason)) AS at_urc
  FROM demo.tier_member d, LATERAL loyalty.benefits(d.member_id, 'urc') b \gset
RESET ROLE;
CREATE TEMP TABLE demo_at_szx AS
SELECT * FROM jsonb_to_recordset(:'at_szx') AS x(tier text, benefit_code text, params jsonb, reason text);
CREATE TEMP TABLE demo_at_urc AS
SELECT * FROM jsonb_to_recordset(:'at_urc') AS x(tier text, benefit_code text, params jsonb, reason text);
\set QUIET off
SELECT tier, benefit_code, params, reason FROM demo_at_urc
 ORDER BY array_position(ARRAY['member', 'silver', 'gold', 'platinum'], tier), benefit_code;
SELECT (SELECT count(*) FROM (SELECT tier, benefit_code, params FROM demo_at_szx WHERE reason LIKE 'tier%'
                              EXCEPT SELECT tier, benefit_code, params FROM demo_at_urc) x) AS chain_benefits_differing_between_szx_and_urc;

\echo '== Story 4: the local specialty gift is store szx''s own: shown at szx, never at sha'
SELECT tier, benefit_code, params, reason FROM demo_at_szx WHERE benefit_code = 'local_gift' ORDER BY tier;
\set QUIET on
SET ROLE sha_desk;
\set QUIET off
SELECT count(*) AS local_gifts_at_sha
  FROM demo.tier_member d, LATERAL loyalty.benefits(d.member_id, 'sha') b WHERE b.benefit_code = 'local_gift';
\set QUIET on
RESET ROLE;
\set QUIET off

\echo '== Story 5: urc flags an unresolved violation (the platinum guest damaged a TV and left)'
\set QUIET on
SET ROLE urc_desk;
SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, :'plat', 'urc', 'unresolved_violation',
    'Damaged the TV in room 1208 and left without paying', 2800.00) AS plat_tag \gset
RESET ROLE;
SET ROLE sha_desk;
\set QUIET off
\echo '-- at check-in in sha the front desk sees the flag (not urc''s internal note) and the frozen upgrade'
SELECT risk_code, store_code, freezes, internal_visible, note, amount_owed FROM loyalty.risk_tags(:'plat');
SELECT benefit_code, params, frozen, frozen_by FROM loyalty.benefits(:'plat', 'sha') ORDER BY benefit_code;
\echo '-- a free upgrade and a points redemption are refused (SQLSTATE LY001); other benefits go on, and earning is no capability a risk tag can freeze'
SELECT demo.try(format('SELECT loyalty.benefit_use(''demo-sha-upgrade-1'', %L, ''sha'', ''room_upgrade'')', :'plat')) AS free_upgrade,
       demo.try(format('SELECT loyalty.assert_not_frozen(%L, ''redemption'')', :'plat')) AS points_redemption;
SELECT params, reason FROM loyalty.benefit_use('demo-sha-late-1', :'plat', 'sha', 'late_checkout');
\set QUIET on
RESET ROLE;
\set QUIET off

\echo '-- a second guest (gold) is flagged by urc and settles: raising, resolving and the audit trail'
\set QUIET on
SET ROLE urc_desk;
SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, :'gold', 'urc', 'unresolved_violation', 'Minibar not paid', 180.00) AS gold_tag \gset
RESET ROLE;
SET ROLE urc_mgr;
SELECT loyalty.risk_tag_resolve(gen_random_uuid()::text, :'gold_tag', 'settled', 'Paid 180.00 at the urc front desk') \gset
\set QUIET off
SELECT action, store_code, role, department, detail->>'resolution' AS resolution
  FROM loyalty.risk_tag_history(:'gold_tag');
\set QUIET on
RESET ROLE;
SET ROLE sha_desk;
\set QUIET off
SELECT count(*) AS open_tags_of_gold_guest, loyalty.frozen_by(:'gold', 'redemption') AS redemption_frozen_by
  FROM loyalty.risk_tags(:'gold');
\set QUIET on
RESET ROLE;
\set QUIET off
\echo '-- the platinum guest''s violation stays unresolved in the demo: redemption and upgrades frozen chain-wide'
