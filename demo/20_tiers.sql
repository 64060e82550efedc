-- Tiers and earning: story 6 (a member becomes gold at one store and every
-- store sees it at once) and story 10 (birthday-month double points, in the
-- member's time zone).  Dates are relative to today so the tour works on
-- any day.
\set QUIET on
\set ON_ERROR_STOP on

-- Lin Mei joins at the Shenzhen front desk and has stayed twice this year
SET ROLE szx_desk;
SELECT member_id AS lin, card_no AS lin_card FROM loyalty.member_enroll(gen_random_uuid()::text, 'szx', '林美', '13800138000') \gset
SELECT stay_id FROM loyalty.stay_record('demo-lin-1', 'szx', :'lin', current_date - 60, current_date - 57, 1, 1800.00, 200.00) \gset
SELECT stay_id FROM loyalty.stay_record('demo-lin-2', 'szx', :'lin', current_date - 30, current_date - 25, 1, 3200.00, 300.00) \gset
RESET ROLE;

-- store terminals and the notification service consume tier events
SELECT loyalty.event_ack('demo_terminals', e.event_id)
  FROM (SELECT event_id FROM loyalty.event_read('demo_terminals', 10000)
         ORDER BY txid DESC, event_id DESC LIMIT 1) e \gset

\set QUIET off
\echo
\echo '== Story 6: a member qualifies for gold at one store; every store sees it at once'
\echo '-- Lin Mei so far this year (seen by the Shanghai front desk):'
\set QUIET on
SET ROLE sha_desk;
\set QUIET off
SELECT counter, value, tier, next_tier, next_threshold FROM loyalty.tier_status(:'lin');
\echo '-- a long stay at Shenzhen with a large bill: the upgrade happens in the same call'
\set QUIET on
SET ROLE szx_desk;
\set QUIET off
SELECT nights_credited, base_points, bonus_points, tier, tier_changed
  FROM loyalty.stay_record('demo-lin-3', 'szx', :'lin', current_date - 5, current_date - 1, 2, 4800.00, 1200.00);
\echo '-- the Urumqi front desk, a moment later:'
\set QUIET on
SET ROLE urc_desk;
\set QUIET off
SELECT tier, valid_until AT TIME ZONE 'Asia/Shanghai' AS valid_until_shenzhen_time, reason FROM loyalty.tier_at(:'lin');
\set QUIET on
RESET ROLE;
\set QUIET off
\echo '-- the events the store terminals receive (LISTEN loyalty_event, then loyalty.event_read):'
SELECT kind, store_code, payload ->> 'old_tier' AS old_tier, payload ->> 'new_tier' AS new_tier,
       payload ->> 'reason' AS reason
  FROM loyalty.event_read('demo_terminals', 100) WHERE kind = 'tier_changed';
\echo '-- and the points, one ledger lot per rule:'
SELECT l.source, l.rule, l.points, l.state
  FROM loyalty.point_lot l JOIN loyalty.stay s ON l.reference = s.stay_id::text
 WHERE s.idempotency_key = 'demo-lin-3' ORDER BY l.points DESC;

\echo
\echo '== Story 10: "birthday month: double points", from the moment it starts, in the member''s time zone'
\set QUIET on
SET ROLE hq_marketing;
INSERT INTO loyalty.campaign (code, name, kind, multiplier_percent, starts_at, ends_at, priority, birthday_month)
VALUES ('birthday_double', 'Birthday month: double points', 'multiplier', 200,
        now(), date_trunc('year', now()) + interval '1 year', 10, true);
RESET ROLE;
-- two guests at the Urumqi restaurant: one born this month, one not
SET ROLE urc_desk;
SELECT member_id AS zhou FROM loyalty.member_enroll(gen_random_uuid()::text, 'urc', '周杰', birth_date => make_date(1988, extract(month FROM now() AT TIME ZONE 'Asia/Urumqi')::int, 3)) \gset
SELECT member_id AS wu FROM loyalty.member_enroll(gen_random_uuid()::text, 'urc', '吴芳', birth_date => make_date(1991, 1 + extract(month FROM now() AT TIME ZONE 'Asia/Urumqi')::int % 12, 3)) \gset
\set QUIET off
SELECT '周杰 (birthday this month)' AS guest, base_points, bonus_points
  FROM loyalty.charge_record('demo-zhou-1', 'urc', :'zhou', 500.00)
UNION ALL
SELECT '吴芳', base_points, bonus_points
  FROM loyalty.charge_record('demo-wu-1', 'urc', :'wu', 500.00);
\set QUIET on
RESET ROLE;
\set QUIET off
SELECT p.full_name, l.kind, l.rule, l.points FROM loyalty.earning_line l JOIN loyalty.member_profile p USING (member_id)
 WHERE l.member_id IN (:'zhou', :'wu') ORDER BY p.full_name, l.kind;
\echo '-- the month is the member''s own: the same instant can be May for a guest in Shanghai and April in Urumqi.'
\echo '-- Nightly jobs (docs/tiers.md): CALL loyalty.tier_requalify() and the downgrade batch, scheduled with pg_cron.'
