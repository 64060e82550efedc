-- Tier and earning engine: counters (stay merging, multi-room), the
-- earning order, birthday month and calendar year in the member's time
-- zone, instant upgrade, downgrade preview and apply with floors, as-of.
-- The story is dated in 2023-2024, so that the batches run as of a past
-- time: a batch refuses an as_of in the future (22023), previews may look
-- ahead.
\set VERBOSITY terse
\set SHOW_CONTEXT never
SET timezone = 'UTC';

SELECT loyalty.store_create(gen_random_uuid()::text, 't_szx', 'Tier Shenzhen', 'bay', 'south', 'Asia/Shanghai'),
       loyalty.store_create(gen_random_uuid()::text, 't_sha', 'Tier Shanghai', 'bay', 'east', 'Asia/Shanghai'),
       loyalty.store_create(gen_random_uuid()::text, 't_urc', 'Tier Urumqi', 'tianshan', 'west', 'Asia/Urumqi');

-- a counter row printer
CREATE FUNCTION pg_temp.counters(m uuid) RETURNS TABLE (month date, nights int, stays int, base_points bigint, spend bigint)
    LANGUAGE sql AS $$
    SELECT month, nights, stays, base_points, qualifying_spend FROM loyalty.tier_counter
     WHERE member_id = m AND (nights, stays, base_points, qualifying_spend) <> (0, 0, 0, 0) ORDER BY month $$;
CREATE FUNCTION pg_temp.lines(m uuid) RETURNS TABLE (kind text, rule text, points bigint, pending boolean)
    LANGUAGE sql AS $$
    SELECT kind, rule, points, pending FROM loyalty.earning_line
     WHERE member_id = m ORDER BY recorded_at, occurred_at, array_position(ARRAY['base','elite','campaign','milestone'], kind), rule $$;

-- == Counters: stay merging and multi-room ==============================
SELECT member_id AS ann FROM loyalty.member_enroll(gen_random_uuid()::text, 't_szx', 'Ann') \gset
-- three nights, three rooms: three night credits, one stay
SELECT nights_credited, base_points, bonus_points, tier, tier_changed
  FROM loyalty.stay_record('t-a1', 't_szx', :'ann', '2024-03-01', '2024-03-04', 3, 1500.00, 120.50,
                           occurred_at => '2024-03-04 10:00+08');
-- check-out and check-in again the same day at the same store: the same stay
SELECT nights_credited, base_points FROM loyalty.stay_record('t-a2', 't_szx', :'ann', '2024-03-04', '2024-03-06',
                           occurred_at => '2024-03-06 10:00+08');
-- a second booking elsewhere overlapping one night: that night counts once
SELECT nights_credited FROM loyalty.stay_record('t-a3', 't_sha', :'ann', '2024-03-05', '2024-03-08',
                           occurred_at => '2024-03-08 10:00+08');
SELECT * FROM pg_temp.counters(:'ann');
-- a retried call returns the first result and changes nothing
SELECT replayed, nights_credited, base_points FROM loyalty.stay_record('t-a2', 't_szx', :'ann', '2024-03-04', '2024-03-06',
                           occurred_at => '2024-03-06 10:00+08');
SELECT count(*) AS stays_rows FROM loyalty.stay WHERE member_id = :'ann';
-- a stay that bridges two stays at one store merges all three into one
SELECT nights_credited FROM loyalty.stay_record('t-a4', 't_szx', :'ann', '2024-03-20', '2024-03-22', occurred_at => '2024-03-22 10:00+08');
SELECT nights_credited FROM loyalty.stay_record('t-a5', 't_szx', :'ann', '2024-03-24', '2024-03-26', occurred_at => '2024-03-26 10:00+08');
SELECT * FROM pg_temp.counters(:'ann');
SELECT nights_credited FROM loyalty.stay_record('t-a6', 't_szx', :'ann', '2024-03-22', '2024-03-24', occurred_at => '2024-03-24 10:00+08');
SELECT * FROM pg_temp.counters(:'ann');
-- a merged stay across a month end counts in the month of its first night
SELECT nights_credited FROM loyalty.stay_record('t-a7', 't_sha', :'ann', '2024-04-29', '2024-05-01', occurred_at => '2024-05-01 10:00+08');
SELECT nights_credited FROM loyalty.stay_record('t-a8', 't_sha', :'ann', '2024-05-01', '2024-05-03', occurred_at => '2024-05-03 10:00+08');
SELECT * FROM pg_temp.counters(:'ann');
-- the tenth night (20-22 March at Shenzhen) earned silver at once, in that call
SELECT old_tier, new_tier, reason, valid_until AT TIME ZONE 'Asia/Shanghai' AS valid_until_local, store_code
  FROM loyalty.tier_history WHERE member_id = :'ann' ORDER BY changed_at;

-- == In-house stays: points pending until checkout ======================
SELECT nights_credited, base_points, points_pending, tier
  FROM loyalty.stay_record('t-a9', 't_urc', :'ann', '2024-06-01', '2024-06-02', 1, 400, 0,
                           checked_out => false, occurred_at => '2024-06-01 20:00+08');
SELECT * FROM pg_temp.counters(:'ann') WHERE month = '2024-06-01';
-- the points are pending lots of the ledger, with the rule that made them
SELECT l.source, l.rule, l.points, l.state FROM loyalty.point_lot l JOIN loyalty.stay s ON l.reference = s.stay_id::text
 WHERE s.idempotency_key = 't-a9' ORDER BY l.points DESC;
SELECT loyalty.points_balance(:'ann') AS balance_before_checkout;
SELECT nights_credited, base_points, bonus_points, points_pending
  FROM loyalty.stay_checkout('t-a9', '2024-06-02 09:00+08');
SELECT l.source, l.points, l.state FROM loyalty.point_lot l JOIN loyalty.stay s ON l.reference = s.stay_id::text
 WHERE s.idempotency_key = 't-a9' ORDER BY l.points DESC;
SELECT loyalty.points_balance(:'ann') AS balance_after_checkout,
       (SELECT sum(points) FROM loyalty.earning_line WHERE member_id = :'ann') AS earned;
SELECT replayed, nights_credited FROM loyalty.stay_checkout('t-a9', '2024-06-02 09:00+08');
SELECT * FROM pg_temp.counters(:'ann') WHERE month = '2024-06-01';

-- == The earning order ==================================================
-- A policy variant with a store override, a brand override, an all-of
-- threshold, recompute downgrades, lifetime gold at 35 nights and a
-- milestone every 2 nights from 3.  It is tried inside transactions that
-- roll back, taking effect in 2023 (activity cannot be in the future).
CREATE TEMP TABLE variant AS SELECT $${"version": 1, "currency": {"code": "CNY", "scale": 2},
  "tiers": [{"code": "member", "rank": 0},
    {"code": "silver", "rank": 1, "elite_bonus_percent": 20, "qualify": {"any": {"nights": 10, "stays": 4}}},
    {"code": "gold", "rank": 2, "elite_bonus_percent": 80, "lifetime_nights": 35,
     "qualify": {"any": {"nights": 20}, "all": {"qualifying_spend": "5000.00"}}},
    {"code": "platinum", "rank": 3, "elite_bonus_percent": 100, "qualify": {"any": {"nights": 60}}}],
  "qualification": {"period": "calendar_year", "downgrade": "recompute"},
  "earning": {"base_points_per_unit": 10,
    "overrides": [{"store": "t_szx", "points_per_unit": 15}, {"brand": "tianshan", "points_per_unit": 12}],
    "milestones": [{"nights": 3, "points": 500, "every": 2}]}}$$::text AS doc;
BEGIN;
SELECT loyalty.policy_set((SELECT doc FROM variant), '2023-01-01') > 0 AS stored;
INSERT INTO loyalty.campaign (code, name, kind, multiplier_percent, fixed_points, starts_at, ends_at, priority,
                              stores, tiers, cap_per_member, cap_total)
VALUES ('t_triple_szx', 'Triple at Shenzhen', 'multiplier', 300, NULL, '2023-01-01', '2023-02-01', 20, '{t_szx}', NULL, 2500, NULL),
       ('t_welcome', 'Welcome bonus', 'fixed', NULL, 1000, '2023-01-01', '2023-02-01', 10, NULL, '{silver,gold}', NULL, 1500),
       ('t_later', 'Not yet', 'fixed', NULL, 777, '2023-02-01', '2023-03-01', 10, NULL, NULL, NULL, NULL);
-- Ann is silver: base (store override 15/unit), elite +20% of base, the
-- campaigns by priority (welcome 10, triple 20, capped at 2,500 per member),
-- then the milestone at 3 nights
SELECT tier, base_points, bonus_points FROM loyalty.stay_record('t-e1', 't_szx', :'ann', '2023-01-05', '2023-01-08', 1, 100.00, 0,
                           occurred_at => '2023-01-08 10:00+08');
SELECT kind, rule, points FROM loyalty.earning_line l JOIN loyalty.stay s ON s.stay_id = l.source_id
 WHERE s.idempotency_key = 't-e1' ORDER BY array_position(ARRAY['base','elite','campaign','milestone'], kind), rule;
-- brand override at Urumqi (12/unit); the welcome campaign's overall cap
-- leaves 500; the milestone at 5 nights
SELECT base_points, bonus_points FROM loyalty.stay_record('t-e2', 't_urc', :'ann', '2023-01-10', '2023-01-12', 1, 100.00, 0,
                           occurred_at => '2023-01-12 10:00+08');
SELECT kind, rule, points FROM loyalty.earning_line l JOIN loyalty.stay s ON s.stay_id = l.source_id
 WHERE s.idempotency_key = 't-e2' ORDER BY array_position(ARRAY['base','elite','campaign','milestone'], kind), rule;
SELECT code, awarded_total FROM loyalty.campaign WHERE code LIKE 't\_%' ORDER BY code;
-- a charge: base on the amount, no nights; 0.05 CNY earns nothing at 10/unit
SELECT nights_credited, base_points, bonus_points FROM loyalty.charge_record('t-c1', 't_sha', :'ann', 55.55, '2023-01-20 12:00+08');
SELECT base_points FROM loyalty.charge_record('t-c2', 't_sha', :'ann', 0.05, '2023-01-20 12:00+08');
-- gold needs any of 20 nights and all of 5,000.00 CNY spend: 25 nights
-- are not enough until the spend is there too
SELECT nights_credited, tier, tier_changed FROM loyalty.stay_record('t-e3', 't_sha', :'ann', '2023-02-01', '2023-02-21', 1, 1000.00, 0,
                           occurred_at => '2023-02-21 10:00+08');
SELECT sum(nights) AS nights_2025, round(sum(qualifying_spend) / 100.0, 2) AS spend_2025 FROM loyalty.tier_counter
 WHERE member_id = :'ann' AND month >= '2023-01-01' AND month < '2024-01-01';
SELECT tier, tier_changed FROM loyalty.charge_record('t-c3', 't_sha', :'ann', 4000.00, '2023-02-22 12:00+08');
ROLLBACK;

-- qualification periods: calendar year, rolling 12 months, anniversary
-- (enrolled in July) for activity on 15 March and 1 August 2024
SELECT d AS activity, loyalty._tier_period_start(0, d, '2018-07-04') AS calendar_year,
       loyalty._tier_period_start(1, d, '2018-07-04') AS rolling_12_months,
       loyalty._tier_period_start(2, d, '2018-07-04') AS anniversary
  FROM unnest(ARRAY[DATE '2024-03-15', DATE '2024-08-01']) AS d;

-- == Birthday month and calendar year in the member's time zone ==========
INSERT INTO loyalty.campaign (code, name, kind, multiplier_percent, starts_at, ends_at, priority, birthday_month)
VALUES ('t_birthday', 'Birthday month: double points', 'multiplier', 200, '2024-01-01', '2025-01-01', 5, true);
-- Bo lives in Shanghai (UTC+8), Chen's home store is in Urumqi (UTC+6) and
-- he sets no time zone; both born in May.  At 2024-04-30 17:30 UTC it is
-- 1 May 01:30 for Bo and 30 April 23:30 for Chen.
SELECT member_id AS bo FROM loyalty.member_enroll(gen_random_uuid()::text, 't_szx', 'Bo', birth_date => '1990-05-17', time_zone => 'Asia/Shanghai') \gset
SELECT member_id AS chen FROM loyalty.member_enroll(gen_random_uuid()::text, 't_urc', 'Chen', birth_date => '1985-05-02') \gset
SELECT 'Bo' AS member, base_points, bonus_points FROM loyalty.charge_record('t-b1', 't_sha', :'bo', 100, '2024-04-30 17:30+00')
UNION ALL
SELECT 'Chen', base_points, bonus_points FROM loyalty.charge_record('t-b2', 't_sha', :'chen', 100, '2024-04-30 17:30+00');
-- one hour later it is May in Urumqi too
SELECT base_points, bonus_points FROM loyalty.charge_record('t-b3', 't_sha', :'chen', 100, '2024-04-30 18:30+00');
-- New Year's Eve: the same instant is 2024 for Bo and still 2023 for Chen
SELECT base_points FROM loyalty.charge_record('t-b4', 't_sha', :'bo', 10, '2023-12-31 17:00+00');
SELECT base_points FROM loyalty.charge_record('t-b5', 't_sha', :'chen', 10, '2023-12-31 17:00+00');
-- a member's own time zone wins over the home store's
UPDATE loyalty.member SET time_zone = 'Asia/Shanghai' WHERE member_id = :'chen';
SELECT base_points FROM loyalty.charge_record('t-b6', 't_sha', :'chen', 10, '2022-12-31 17:00+00');
SELECT c.idempotency_key, p.full_name, a.month, a.base_points
  FROM loyalty.charge c JOIN loyalty.tier_activity a ON a.source_id = c.charge_id
  JOIN loyalty.member_profile p ON p.member_id = c.member_id
 WHERE c.idempotency_key IN ('t-b4', 't-b5', 't-b6') ORDER BY 1;

-- a campaign for members with a current "corporate" tag
INSERT INTO loyalty.campaign (code, name, kind, fixed_points, starts_at, ends_at, priority, tag)
VALUES ('t_corporate', 'Corporate guests', 'fixed', 300, '2024-01-01', '2024-06-01', 30, 'corporate');
INSERT INTO loyalty.member_tag (member_id, code) VALUES (:'chen', 'corporate');
SELECT 'Bo' AS member, bonus_points FROM loyalty.charge_record('t-t1', 't_sha', :'bo', 10, '2024-05-10 12:00+08')
UNION ALL
SELECT 'Chen', bonus_points FROM loyalty.charge_record('t-t2', 't_sha', :'chen', 10, '2024-05-10 12:00+08');
UPDATE loyalty.member_tag SET retired_at = now() WHERE member_id = :'chen' AND code = 'corporate';
SELECT 'Chen, tag retired' AS member, bonus_points FROM loyalty.charge_record('t-t3', 't_sha', :'chen', 10, '2024-05-11 12:00+08');

-- == Instant upgrade and tier events ====================================
-- Dee reaches gold by stays (20 stays) in one call's transaction
SELECT member_id AS dee FROM loyalty.member_enroll(gen_random_uuid()::text, 't_sha', 'Dee') \gset
SELECT count(*) AS stays_recorded FROM generate_series(0, 18) AS i,
  LATERAL loyalty.stay_record('t-d' || i, CASE WHEN i % 2 = 0 THEN 't_sha' ELSE 't_szx' END, :'dee',
                              DATE '2024-01-05' + i * 7, DATE '2024-01-06' + i * 7,
                              occurred_at => (DATE '2024-01-06' + i * 7) + time '10:00');
SELECT tier FROM loyalty.member WHERE member_id = :'dee';
BEGIN;
SELECT tier, tier_changed FROM loyalty.stay_record('t-d19', 't_urc', :'dee', '2024-06-01', '2024-06-02',
                           occurred_at => '2024-06-02 10:00+06');
-- in the same transaction: the member row, the history, the tier seen by every store
SELECT tier, tier_valid_until AT TIME ZONE 'Asia/Shanghai' AS valid_until_local FROM loyalty.member WHERE member_id = :'dee';
SELECT old_tier, new_tier, reason, store_code, detail FROM loyalty.tier_history WHERE member_id = :'dee' ORDER BY changed_at;
ROLLBACK;
SELECT tier FROM loyalty.member WHERE member_id = :'dee';
SELECT count(*) AS history_after_rollback FROM loyalty.tier_history WHERE member_id = :'dee' AND new_tier = 'gold';
SELECT tier, tier_changed FROM loyalty.stay_record('t-d19', 't_urc', :'dee', '2024-06-01', '2024-06-02',
                           occurred_at => '2024-06-02 10:00+06');
-- the elite bonus follows the new tier from the next activity on
SELECT base_points, bonus_points FROM loyalty.charge_record('t-d-c', 't_sha', :'dee', 100, '2024-06-03 10:00+08');

-- == Manual grants ======================================================
SELECT member_id AS eve FROM loyalty.member_enroll(gen_random_uuid()::text, 't_szx', 'Eve') \gset
SELECT loyalty.tier_grant(:'eve', 'gold', 'service recovery after a flood', '2030-06-01') IS NOT NULL AS granted;
SELECT tier, tier_valid_until AT TIME ZONE 'UTC' AS valid_until FROM loyalty.member WHERE member_id = :'eve';
SELECT new_tier, reason FROM loyalty.tier_history WHERE member_id = :'eve';

-- == Downgrade preview and apply (one tier down, floors) ================
-- Ann: silver earned in 2024, valid through March 2026.  Dee: gold earned
-- 2024.  Eve: gold by a grant until 2030.  Fay: gold earned 2024, extended
-- by a gold grant until 2031.
SELECT member_id AS fay FROM loyalty.member_enroll(gen_random_uuid()::text, 't_sha', 'Fay') \gset
SELECT tier FROM loyalty.stay_record('t-f1', 't_sha', :'fay', '2024-07-01', '2024-08-10', occurred_at => '2024-08-10 10:00+08');
SELECT loyalty.tier_grant(:'fay', 'gold', 'CEO guest', '2031-01-01') IS NOT NULL AS granted;
-- a grant below the tier held changes nothing now: it is only a floor
SELECT loyalty.tier_grant(:'eve', 'silver', 'long-standing corporate guest', '2032-01-01') IS NOT NULL AS granted;
SELECT new_tier, reason FROM loyalty.tier_history WHERE member_id = :'eve' ORDER BY changed_at;
SELECT m.full_name, p.old_tier, p.new_tier, p.new_valid_until AT TIME ZONE 'Asia/Shanghai' AS new_valid_until_local,
       p.action, p.reason
  FROM loyalty.tier_downgrade_preview('2026-04-02 00:00+08') p
  JOIN loyalty.member_profile m USING (member_id)
 WHERE p.member_id IN (:'ann', :'bo', :'chen', :'dee', :'eve', :'fay') ORDER BY m.full_name;
-- preview changes nothing
SELECT count(*) AS events_before FROM loyalty.tier_history WHERE member_id IN (:'ann', :'dee', :'fay') \gset
-- a batch refuses an as_of in the future (22023, no job recorded); a
-- preview may look ahead
SELECT count(*) AS jobs_before FROM loyalty.job \gset
CALL loyalty.tier_downgrade_apply(now() + interval '1 day', 2);
CALL loyalty.tier_requalify('2030-01-01 00:00+08', 2);
SELECT count(*) - :jobs_before AS new_jobs FROM loyalty.job;
SELECT count(*) > 0 AS preview_looks_ahead FROM loyalty.tier_downgrade_preview('2030-01-01 00:00+08');
CALL loyalty.tier_downgrade_apply('2026-04-02 00:00+08', 2);
SELECT p.full_name, m.tier, m.tier_valid_until AT TIME ZONE 'Asia/Shanghai' AS valid_until_local
  FROM loyalty.member m JOIN loyalty.member_profile p USING (member_id)
 WHERE m.member_id IN (:'ann', :'dee', :'eve', :'fay') ORDER BY p.full_name;
SELECT count(*) - :events_before AS new_events FROM loyalty.tier_history WHERE member_id IN (:'ann', :'dee', :'fay');
SELECT kind, state, members_done = members_total AS all_done FROM loyalty.tier_job_progress ORDER BY started_at DESC LIMIT 1;
-- applying again changes nothing
SELECT count(*) AS still_to_change FROM loyalty.tier_downgrade_preview('2026-04-02 00:00+08') p
 WHERE p.member_id IN (:'ann', :'dee', :'eve', :'fay');
-- recompute (the variant policy, from 2030) with floors: Fay's 40 nights
-- make gold hers for life (lifetime_nights 35); Dee's 20 nights do not,
-- and she earned nothing since, so she drops to the base tier; Eve's gold
-- grant has expired but her silver grant holds until 2032
BEGIN;
SELECT loyalty.policy_set((SELECT doc FROM variant), '2030-01-01') > 0 AS stored;
SELECT p.full_name, d.old_tier, d.new_tier, d.new_valid_until AT TIME ZONE 'UTC' AS new_valid_until, d.reason
  FROM loyalty.tier_downgrade_preview('2031-06-01 00:00+08') d JOIN loyalty.member_profile p USING (member_id)
 WHERE d.member_id IN (:'dee', :'eve', :'fay') ORDER BY 1;
ROLLBACK;

-- == As of a past time ==================================================
SELECT member_id AS gus FROM loyalty.member_enroll(gen_random_uuid()::text, 't_szx', 'Gus') \gset
SELECT make_date(extract(year FROM now())::int, 1, 10) AS d0 \gset
SELECT now() AS t_before \gset
SELECT nights_credited FROM loyalty.stay_record('t-g1', 't_szx', :'gus', :'d0', (:'d0'::date + 12), 1, 500);
SELECT now() AS t_between \gset
SELECT nights_credited FROM loyalty.stay_record('t-g2', 't_szx', :'gus', (:'d0'::date + 20), (:'d0'::date + 22), 1, 500);
SELECT 'before' AS at, nights, stays, base_points, qualifies_for FROM loyalty.tier_counters_at(:'gus', :'t_before')
UNION ALL
SELECT 'between', nights, stays, base_points, qualifies_for FROM loyalty.tier_counters_at(:'gus', :'t_between')
UNION ALL
SELECT 'now', nights, stays, base_points, qualifies_for FROM loyalty.tier_counters_at(:'gus');
SELECT 'before' AS at, tier, reason FROM loyalty.tier_at(:'gus', :'t_before')
UNION ALL
SELECT 'now', tier, reason FROM loyalty.tier_at(:'gus');
SELECT counter, value, next_tier, next_threshold FROM loyalty.tier_status(:'gus');

-- == Requalification of everyone ========================================
-- Hal's 2024 nights earn silver, but his tier was reset by hand: the batch
-- (three members per transaction) finds and upgrades him; a second run
-- changes nothing
SELECT member_id AS hal FROM loyalty.member_enroll(gen_random_uuid()::text, 't_szx', 'Hal') \gset
SELECT tier FROM loyalty.stay_record('t-h1', 't_szx', :'hal', '2024-02-01', '2024-02-12', occurred_at => '2024-02-12 10:00+08');
UPDATE loyalty.member SET tier = 'member', tier_valid_until = NULL WHERE member_id = :'hal';
CALL loyalty.tier_requalify('2024-11-01 00:00+08', 3);
SELECT tier, tier_valid_until AT TIME ZONE 'Asia/Shanghai' AS valid_until_local FROM loyalty.member WHERE member_id = :'hal';
SELECT new_tier, reason FROM loyalty.tier_history WHERE member_id = :'hal' ORDER BY changed_at DESC LIMIT 1;
SELECT kind, state, members_done = members_total AS all_done, members_changed > 0 AS changed_some
  FROM loyalty.tier_job_progress ORDER BY started_at DESC LIMIT 1;
CALL loyalty.tier_requalify('2024-11-01 00:00+08', 1000);
SELECT members_changed FROM loyalty.tier_job_progress ORDER BY started_at DESC LIMIT 1;
