-- The points' money (docs/finance.md, issue 16 item 5): points issued,
-- redeemed, expired and transferred per store, brand and month; the
-- outstanding liability at the program's point value with a breakage
-- estimate from history; a reconciliation that ties the balances to the
-- ledger's entries; points for BI without personal data.
--
-- The point value is a policy value, not a setting: the redemption rate of
-- the policy in effect ("redemption": {"rate": {"points": 1000, "amount":
-- "100.00"}} is 0.1 per point), the one rate every store redeems at.
--
-- Every view is owned by loyalty_view_owner, so the ledger's row level
-- security applies: the HQ roles these views are granted to see every
-- store.  Grants: the finance views to loyalty_crm (HQ, finance is an HQ
-- function of CRM in this product) and loyalty_bi (aggregates only, no
-- member key); the reconciliation also to loyalty_dba; bi_points (one row
-- per pseudonymous member, store, month and kind) to loyalty_bi only.

-- loyalty.finance_point_value(at): the money value of one point at a time,
-- from the policy's redemption rate (amount / points), in the policy's
-- currency.
CREATE FUNCTION loyalty.finance_point_value(at timestamptz DEFAULT now())
    RETURNS numeric
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT round((p -> 'redemption' -> 'rate' ->> 'amount')::numeric
            / nullif((p -> 'redemption' -> 'rate' ->> 'points')::numeric, 0), 6)
      FROM loyalty.policy_at(coalesce($1, pg_catalog.now())) p
$$;
COMMENT ON FUNCTION loyalty.finance_point_value(timestamptz) IS
    'Money value of one point at a time: the policy''s redemption rate (amount / points)';

-- Points moved per store, brand and calendar month (in the store's time
-- zone), by kind of movement.  issued counts points when they reach the
-- balance (accruals that are active at once, and activations of pending
-- ones); the other columns are positive amounts taken off or added.
CREATE VIEW loyalty.finance_points_monthly WITH (security_barrier) AS
SELECT e.store_code, s.brand,
       date_trunc('month', e.occurred_at AT TIME ZONE s.time_zone)::date AS month,
       coalesce(sum(e.points) FILTER (WHERE e.kind IN ('accrue', 'activate')), 0)::bigint AS issued,
       coalesce(-sum(e.points) FILTER (WHERE e.kind = 'redeem'), 0)::bigint AS redeemed,
       coalesce(-sum(e.points) FILTER (WHERE e.kind = 'expire'), 0)::bigint AS expired,
       coalesce(-sum(e.points) FILTER (WHERE e.kind = 'reverse'), 0)::bigint AS reversed,
       coalesce(-sum(e.points) FILTER (WHERE e.kind = 'transfer_out'), 0)::bigint AS transferred_out,
       coalesce(sum(e.points) FILTER (WHERE e.kind = 'transfer_in'), 0)::bigint AS transferred_in,
       coalesce(sum(e.points), 0)::bigint AS net,
       coalesce(sum(e.cash_amount) FILTER (WHERE e.kind = 'redeem'), 0)::numeric AS cash_redeemed,
       count(*) AS entries
  FROM loyalty.point_entry e
  JOIN loyalty.store s ON s.store_code = e.store_code
 GROUP BY e.store_code, s.brand, date_trunc('month', e.occurred_at AT TIME ZONE s.time_zone);
COMMENT ON VIEW loyalty.finance_points_monthly IS
    'Points issued, redeemed, expired, reversed and transferred per store, brand and month (store time zone)';

-- The same per brand and month.
CREATE VIEW loyalty.finance_points_brand_monthly WITH (security_barrier) AS
SELECT f.brand, f.month,
       sum(f.issued)::bigint AS issued, sum(f.redeemed)::bigint AS redeemed,
       sum(f.expired)::bigint AS expired, sum(f.reversed)::bigint AS reversed,
       sum(f.transferred_out)::bigint AS transferred_out,
       sum(f.transferred_in)::bigint AS transferred_in, sum(f.net)::bigint AS net,
       sum(f.cash_redeemed) AS cash_redeemed, sum(f.entries)::bigint AS entries
  FROM loyalty.finance_points_monthly f
 GROUP BY f.brand, f.month;
COMMENT ON VIEW loyalty.finance_points_brand_monthly IS
    'Points issued, redeemed, expired, reversed and transferred per brand and month';

-- loyalty.finance_breakage_rate(since): the share of points that left
-- balances by expiry rather than by redemption, from the history since a
-- time (NULL: all history): expired / (expired + redeemed).  0 when no
-- point has left yet.  Reversals and transfers are not outcomes of a
-- point's life and are left out.
CREATE FUNCTION loyalty.finance_breakage_rate(since timestamptz DEFAULT NULL)
    RETURNS numeric
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(round(x.expired / nullif(x.expired + x.redeemed, 0), 4), 0)
      FROM (SELECT coalesce(-sum(e.points) FILTER (WHERE e.kind = 'expire'), 0)::numeric AS expired,
                   coalesce(-sum(e.points) FILTER (WHERE e.kind = 'redeem'), 0)::numeric AS redeemed
              FROM loyalty.point_entry e
             WHERE e.kind IN ('expire', 'redeem') AND ($1 IS NULL OR e.occurred_at >= $1)) x
$$;
COMMENT ON FUNCTION loyalty.finance_breakage_rate(timestamptz) IS
    'Breakage estimate from history: expired / (expired + redeemed) points since a time (NULL: all)';

-- The outstanding liability now, per store and brand where the points were
-- earned (the lot's store) and in total (the row with store_code and brand
-- NULL): active points, pending points, their value at the point value,
-- and the expected cost after breakage.
CREATE VIEW loyalty.finance_liability WITH (security_barrier) AS
WITH lots AS (
    SELECT l.store_code, s.brand,
           coalesce(sum(l.remaining) FILTER (WHERE l.state = 'active'), 0)::bigint AS outstanding_points,
           coalesce(sum(l.remaining) FILTER (WHERE l.state = 'pending'), 0)::bigint AS pending_points
      FROM loyalty.point_lot l
      JOIN loyalty.store s ON s.store_code = l.store_code
     WHERE l.state IN ('active', 'pending')
     GROUP BY GROUPING SETS ((l.store_code, s.brand), ())
), rate AS (
    SELECT loyalty.finance_point_value(pg_catalog.now()) AS point_value,
           loyalty.finance_breakage_rate(NULL) AS breakage_rate,
           loyalty.policy_at(pg_catalog.now()) -> 'currency' ->> 'code' AS currency
)
SELECT lots.store_code, lots.brand, lots.outstanding_points, lots.pending_points,
       rate.point_value, rate.currency,
       round(lots.outstanding_points * rate.point_value, 2) AS gross_liability,
       rate.breakage_rate,
       round(lots.outstanding_points * rate.point_value * (1 - rate.breakage_rate), 2) AS expected_liability,
       pg_catalog.now() AS as_of
  FROM lots CROSS JOIN rate;
COMMENT ON VIEW loyalty.finance_liability IS
    'Outstanding points and their money value (gross and after breakage) per store and brand of earning, and in total';

-- Reconciliation: every point of every balance is tied to ledger entries.
-- balanced is true when the sum of stored balances equals the sum of all
-- entries and the sum of active lots, and no member's balance differs from
-- the sum of that member's entries.
CREATE VIEW loyalty.finance_reconciliation WITH (security_barrier) AS
WITH e AS (
    SELECT e.member_id, sum(e.points)::bigint AS points FROM loyalty.point_entry e GROUP BY e.member_id
), b AS (
    SELECT b.member_id, b.balance FROM loyalty.point_balance b
), per AS (
    SELECT coalesce(b.member_id, e.member_id) AS member_id,
           coalesce(b.balance, 0) AS balance, coalesce(e.points, 0) AS points
      FROM b FULL JOIN e ON e.member_id = b.member_id
)
SELECT (SELECT coalesce(sum(per.points), 0) FROM per)::bigint AS entries_total,
       (SELECT coalesce(sum(per.balance), 0) FROM per)::bigint AS balances_total,
       (SELECT coalesce(sum(l.remaining), 0) FROM loyalty.point_lot l WHERE l.state = 'active')::bigint
           AS active_lots_total,
       (SELECT count(*) FROM per) AS members,
       (SELECT count(*) FROM per WHERE per.balance <> per.points) AS members_out_of_balance,
       (SELECT coalesce(sum(per.points), 0) = coalesce(sum(per.balance), 0)
               AND count(*) FILTER (WHERE per.balance <> per.points) = 0 FROM per)
       AND (SELECT coalesce(sum(per.balance), 0) FROM per)
           = (SELECT coalesce(sum(l.remaining), 0) FROM loyalty.point_lot l WHERE l.state = 'active')
           AS balanced,
       pg_catalog.now() AS as_of;
COMMENT ON VIEW loyalty.finance_reconciliation IS
    'Sum of ledger entries vs sum of stored balances vs sum of active lots, and members out of balance';

-- Points for BI: per pseudonymous member, store, brand, month and kind, no
-- personal data; only members loyalty.bi_members shows (not erased,
-- profiling consent in effect, in a group of at least k), and only rows
-- whose combination with the member's published values at least k members
-- share (k-anonymity, 47_privacy_bi.sql).
CREATE VIEW loyalty.bi_points WITH (security_barrier) AS
SELECT r.member_key, r.store_code, r.brand, r.month, r.kind, r.points, r.pending_points, r.entries
  FROM (SELECT g.*,
               -- one row per member and group: the count is of members
               count(*) OVER (PARTITION BY g.home_store, g.tier, g.member_status, g.gender,
                   g.birth_decade, g.enrolled_year, g.store_code, g.brand, g.month, g.kind) AS members
          FROM (SELECT b.member_key, b.home_store, b.tier, b.status AS member_status, b.gender,
                       b.birth_decade, b.enrolled_year, e.store_code, s.brand,
                       date_trunc('month', e.occurred_at AT TIME ZONE s.time_zone)::date AS month,
                       e.kind, sum(e.points)::bigint AS points,
                       sum(e.pending_points)::bigint AS pending_points, count(*) AS entries
                  FROM loyalty.point_entry e
                  JOIN loyalty.store s ON s.store_code = e.store_code
                  JOIN loyalty._bi_member_qi b ON b.member_id = e.member_id
                 GROUP BY b.member_id, b.member_key, b.home_store, b.tier, b.status, b.gender,
                          b.birth_decade, b.enrolled_year, e.store_code, s.brand,
                          date_trunc('month', e.occurred_at AT TIME ZONE s.time_zone), e.kind) g) r
 WHERE r.members >= loyalty.bi_k();
COMMENT ON VIEW loyalty.bi_points IS
    'Points per pseudonymous member, store, brand, month and kind for BI; no personal data, profiling withdrawals and groups smaller than bi_k() left out';

GRANT SELECT ON loyalty.point_entry, loyalty.point_lot, loyalty.point_balance TO loyalty_view_owner;
ALTER VIEW loyalty.finance_points_monthly OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.finance_points_brand_monthly OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.finance_liability OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.finance_reconciliation OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.bi_points OWNER TO loyalty_view_owner;
REVOKE ALL ON loyalty.finance_points_monthly, loyalty.finance_points_brand_monthly,
    loyalty.finance_liability, loyalty.finance_reconciliation, loyalty.bi_points FROM PUBLIC;
REVOKE ALL ON FUNCTION loyalty.finance_point_value(timestamptz),
    loyalty.finance_breakage_rate(timestamptz) FROM PUBLIC;
GRANT SELECT ON loyalty.finance_points_monthly, loyalty.finance_points_brand_monthly,
    loyalty.finance_liability, loyalty.finance_reconciliation TO loyalty_crm, loyalty_bi;
GRANT SELECT ON loyalty.finance_reconciliation TO loyalty_dba;
GRANT SELECT ON loyalty.bi_points TO loyalty_bi;
GRANT EXECUTE ON FUNCTION loyalty.finance_point_value(timestamptz),
    loyalty.finance_breakage_rate(timestamptz)
    TO loyalty_crm, loyalty_bi, loyalty_marketing, loyalty_dba, loyalty_view_owner;
GRANT EXECUTE ON FUNCTION loyalty.policy_at(timestamptz) TO loyalty_view_owner;
