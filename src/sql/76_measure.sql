-- Campaign measurement (docs/segments.md, issue 16 item 4): per campaign,
-- participants, points issued and their cost at the program's point value,
-- and for a targeted campaign the stays and revenue of the audience vs the
-- control group held out at targeting time, the incremental revenue and
-- the return on the points' cost.  Aggregates only: no member key.
--
-- The measurement window is the campaign's [starts_at, ends_at) cut at
-- now; stays count by their check-in date (UTC) in the window, cancelled
-- stays do not.  Per-member averages make groups of different sizes
-- comparable: incremental revenue = (audience revenue per member -
-- control revenue per member) x audience members; roi = (incremental
-- revenue - cost) / cost.  Members erased since targeting still count
-- (their stays are kept, pseudonymised).
CREATE VIEW loyalty.campaign_measurement WITH (security_barrier) AS
WITH win AS (
    SELECT c.campaign_id, c.code, c.name, c.starts_at, c.ends_at, c.segment_code,
           (c.starts_at AT TIME ZONE 'UTC')::date AS from_date,
           (least(c.ends_at, pg_catalog.now()) AT TIME ZONE 'UTC')::date AS to_date
      FROM loyalty.campaign c
), lines AS (
    SELECT l.campaign_id, count(DISTINCT l.member_id) AS earners, sum(l.points)::bigint AS points
      FROM loyalty.earning_line l
     WHERE l.campaign_id IS NOT NULL
     GROUP BY l.campaign_id
), regs AS (
    SELECT g.campaign_id, count(*) AS registered FROM loyalty.campaign_registration g GROUP BY g.campaign_id
), parts AS (
    SELECT x.campaign_id, count(DISTINCT x.member_id) AS participants
      FROM (SELECT l.campaign_id, l.member_id FROM loyalty.earning_line l WHERE l.campaign_id IS NOT NULL
            UNION ALL
            SELECT g.campaign_id, g.member_id FROM loyalty.campaign_registration g) x
     GROUP BY x.campaign_id
), groups AS (
    SELECT a.campaign_id, a.control, count(*) AS members,
           coalesce(sum(s.stays), 0)::bigint AS stays,
           coalesce(sum(s.revenue), 0)::numeric AS revenue
      FROM loyalty.campaign_audience a
      JOIN win w ON w.campaign_id = a.campaign_id
      LEFT JOIN LATERAL (
          SELECT count(*) AS stays, sum(st.room_revenue + st.other_revenue) AS revenue
            FROM loyalty.stay st
           WHERE st.member_id = a.member_id AND st.status <> 'cancelled'
             AND st.check_in >= w.from_date AND st.check_in < w.to_date) s ON true
     GROUP BY a.campaign_id, a.control
), m AS (
    SELECT w.campaign_id, w.code, w.name, w.starts_at, w.ends_at, w.segment_code,
           coalesce(p.participants, 0) AS participants,
           coalesce(r.registered, 0) AS registered,
           coalesce(l.points, 0)::bigint AS points_issued,
           round(coalesce(l.points, 0) * loyalty.finance_point_value(w.starts_at), 2) AS cost,
           t.members AS audience, t.stays AS audience_stays, t.revenue AS audience_revenue,
           k.members AS control, k.stays AS control_stays, k.revenue AS control_revenue
      FROM win w
      LEFT JOIN lines l ON l.campaign_id = w.campaign_id
      LEFT JOIN regs r ON r.campaign_id = w.campaign_id
      LEFT JOIN parts p ON p.campaign_id = w.campaign_id
      LEFT JOIN groups t ON t.campaign_id = w.campaign_id AND NOT t.control
      LEFT JOIN groups k ON k.campaign_id = w.campaign_id AND k.control
)
SELECT m.code AS campaign, m.name, m.starts_at, m.ends_at, m.segment_code AS segment,
       m.participants, m.registered, m.points_issued, m.cost,
       m.audience, m.audience_stays, m.audience_revenue,
       m.control, m.control_stays, m.control_revenue,
       round(m.audience_revenue / nullif(m.audience, 0), 2) AS audience_revenue_per_member,
       round(m.control_revenue / nullif(m.control, 0), 2) AS control_revenue_per_member,
       round((m.audience_revenue / nullif(m.audience, 0) - m.control_revenue / nullif(m.control, 0))
             * m.audience, 2) AS incremental_revenue,
       round(((m.audience_revenue / nullif(m.audience, 0) - m.control_revenue / nullif(m.control, 0))
              * m.audience - m.cost) / nullif(m.cost, 0), 4) AS roi
  FROM m;
COMMENT ON VIEW loyalty.campaign_measurement IS
    'Per campaign: participants, points issued and their cost, audience vs control stays and revenue, incremental revenue and ROI';

ALTER VIEW loyalty.campaign_measurement OWNER TO loyalty_view_owner;
GRANT SELECT ON loyalty.campaign TO loyalty_view_owner;
REVOKE ALL ON loyalty.campaign_measurement FROM PUBLIC;
GRANT SELECT ON loyalty.campaign_measurement TO loyalty_bi, loyalty_crm, loyalty_marketing;
