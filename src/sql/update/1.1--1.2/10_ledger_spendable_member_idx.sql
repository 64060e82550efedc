-- ledger: a new active lot leaves the member index to the spend indexes
-- (issue 19: an accrual writes one index entry less).  The member index
-- keeps pending lots and active lots without points to draw; the next
-- expiry of points_summary reads the spend index.
DROP INDEX loyalty.point_lot_member_idx;
CREATE INDEX point_lot_member_idx ON loyalty.point_lot (member_id)
    WHERE state = 'pending' OR (state = 'active' AND NOT spendable);
CREATE OR REPLACE FUNCTION loyalty.points_summary(
    member_id uuid,
    OUT balance bigint, OUT pending bigint, OUT last_activity_at timestamptz,
    OUT expires_at timestamptz)
    RETURNS record
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(b.balance, 0),
           (SELECT coalesce(sum(l.remaining), 0)::bigint FROM loyalty.point_lot l
             WHERE l.member_id = $1 AND l.state = 'pending'),
           b.last_activity_at,
           CASE (loyalty.policy_at(now()) -> 'expiry' ->> 'mode')
               WHEN 'inactivity' THEN b.last_activity_at
                   + make_interval(months => (loyalty.policy_at(now()) -> 'expiry' ->> 'inactivity_months')::int)
               WHEN 'lot_lifetime' THEN (SELECT min(l.expires_at) FROM loyalty.point_lot l
                   WHERE l.member_id = $1 AND l.state = 'active' AND l.spendable)
           END
      FROM loyalty.member m
      LEFT JOIN loyalty.point_balance b ON b.member_id = m.member_id
     WHERE m.member_id = $1
$$;
