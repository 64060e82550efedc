-- Scores, segments and a campaign that targets them (docs/segments.md):
-- HQ CRM scores every member, marketing defines a churn-warning segment,
-- the nightly segment job materialises it, a win-back campaign targets it
-- with a held-out control group, the SMS audience goes out only to members
-- who consented, some guests register and come back, and BI measures the
-- campaign against its control group.  Then the points' money
-- (docs/finance.md).  Dates are relative to today.
\set QUIET on
\set ON_ERROR_STOP on

-- more history: a third of the members stayed twice a month apart about
-- ten months ago and not since (lapsing), another third stayed in the last
-- two months; dates and bills vary by member
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, room_revenue, other_revenue)
SELECT m.member_id, m.home_store, current_date - x.ago, current_date - x.ago + 1 + b1 % 3,
       600 + 20 * b2, 10 * (b1 % 20)
  FROM loyalty.member m
  CROSS JOIN LATERAL (SELECT get_byte(decode(md5(m.member_id::text), 'hex'), 0) AS b0,
                             get_byte(decode(md5(m.member_id::text), 'hex'), 2) AS b1,
                             get_byte(decode(md5(m.member_id::text), 'hex'), 3) AS b2) h
  CROSS JOIN LATERAL (SELECT 300 + h.b1 % 60 AS ago WHERE h.b0 < 86
                      UNION ALL SELECT 270 + h.b1 % 60 WHERE h.b0 < 86
                      UNION ALL SELECT 10 + h.b1 % 50 WHERE h.b0 BETWEEN 86 AND 171) x
 WHERE m.status = 'active'
   -- the fixed members keep the history docs/demo.md gives them
   AND m.card_no NOT IN ('800000000011', '800000000029', '800000000037');

-- the nightly jobs (pg_cron runs them as the CRM or DBA login that
-- scheduled them); CALLed here by HQ CRM
SET ROLE hq_crm;
CALL loyalty.score_refresh();
RESET ROLE;
SET ROLE hq_marketing;
SELECT version FROM loyalty.segment_define('demo-seg-churn', 'churn_warning', 'Lapsing guests (churn warning)',
                                           '{"churn_warning": true}') \gset
SELECT version FROM loyalty.segment_define('demo-seg-high', 'high_value', 'High value guests',
                                           '{"value_levels": ["high"]}') \gset
RESET ROLE;
SET ROLE hq_crm;
CALL loyalty.segment_refresh();
RESET ROLE;

\set QUIET off
\echo
\echo '== Scores: RFM quintiles, value level, churn warning (BI view, groups under 10 hidden)'
\set QUIET on
SET ROLE hq_bi;
\set QUIET off
SELECT value_level, churn_warning, sum(members) AS members, round(avg(avg_monetary), 2) AS avg_monetary
  FROM loyalty.bi_scores GROUP BY 1, 2 ORDER BY 1, 2;
\echo '-- segment sizes per home store (BI)'
SELECT segment, home_store, brand, members FROM loyalty.bi_segment_sizes ORDER BY segment, home_store;
\set QUIET on
RESET ROLE;

-- marketing's win-back campaign: 2,000 points for a stay, registration required
SET ROLE hq_marketing;
INSERT INTO loyalty.campaign (code, name, kind, fixed_points, starts_at, ends_at, priority, registration_required)
VALUES ('winback', 'We miss you: 2,000 points for your next stay', 'fixed', 2000,
        now() - interval '10 days', now() + interval '20 days', 70, true);
\set QUIET off
\echo
\echo '== The win-back campaign targets the churn-warning segment, 20% held out as control'
SELECT segment_run, audience, control FROM loyalty.campaign_target('demo-target-winback', 'winback', 'churn_warning', 20);
\set QUIET on
RESET ROLE;

-- a third of the audience agreed to SMS marketing at some front desk
SELECT count(*) AS consents FROM (
    SELECT loyalty.consent_record(a.member_id, 'marketing_sms', true, 'demo-2026', m.home_store)
      FROM loyalty.campaign_audience a JOIN loyalty.member m ON m.member_id = a.member_id
     WHERE a.campaign_id = (SELECT campaign_id FROM loyalty.campaign WHERE code = 'winback')
       AND NOT a.control AND get_byte(decode(md5(a.member_id::text), 'hex'), 4) < 86) x \gset
\set QUIET off
\echo '-- the SMS export: unmasked phones only for members who consented to SMS (each one audited)'
\set QUIET on
SET ROLE hq_marketing;
\set QUIET off
SELECT count(*) AS exported, count(*) FILTER (WHERE contact ~ '^1[0-9]{10}$') AS with_phone
  FROM loyalty.audience_export('demo-export-winback-sms', 'winback', 'sms');
\set QUIET on
RESET ROLE;

-- a quarter of the invited guests register at a front desk and come back
-- for two nights; some of the control group come back on their own
SELECT count(*) AS registered FROM (
    SELECT loyalty.campaign_register('demo-reg-' || a.member_id, 'winback', a.member_id)
      FROM loyalty.campaign_audience a
     WHERE a.campaign_id = (SELECT campaign_id FROM loyalty.campaign WHERE code = 'winback')
       AND NOT a.control AND get_byte(decode(md5(a.member_id::text), 'hex'), 1) < 64) x \gset
SELECT count(*) AS stays FROM (
    SELECT loyalty.stay_record('demo-winback-' || a.member_id, m.home_store, a.member_id,
                               current_date - 4, current_date - 2, 1, 1200.00, 150.00)
      FROM loyalty.campaign_audience a JOIN loyalty.member m ON m.member_id = a.member_id
     WHERE a.campaign_id = (SELECT campaign_id FROM loyalty.campaign WHERE code = 'winback')
       AND ((NOT a.control AND get_byte(decode(md5(a.member_id::text), 'hex'), 1) < 64)
            OR (a.control AND get_byte(decode(md5(a.member_id::text), 'hex'), 1) < 16))) x \gset

\set QUIET off
\echo
\echo '== Measurement: participants, points and their cost, audience vs control, incremental revenue, ROI (BI)'
\set QUIET on
SET ROLE hq_bi;
\set QUIET off
SELECT campaign, participants, points_issued, cost, audience, audience_stays, control, control_stays,
       audience_revenue_per_member, control_revenue_per_member, incremental_revenue, roi
  FROM loyalty.campaign_measurement WHERE campaign = 'winback';
\echo
\echo '== The points'' money: liability at the point value with breakage, and the reconciliation'
SELECT store_code, brand, outstanding_points, point_value, gross_liability, breakage_rate, expected_liability
  FROM loyalty.finance_liability ORDER BY store_code NULLS LAST;
SELECT entries_total, balances_total, active_lots_total, members_out_of_balance, balanced
  FROM loyalty.finance_reconciliation;
\set QUIET on
RESET ROLE;
