-- ledger: exhausted lots leave the spend indexes (issue 19).  A debit used
-- to walk past every exhausted lot of the member's history (they stayed
-- 'active' with remaining 0); "spendable" is stored so that only the draw
-- that exhausts a lot changes an indexed value (partial draws stay HOT).
ALTER TABLE loyalty.point_lot
    ADD COLUMN spendable boolean GENERATED ALWAYS AS (remaining > 0) STORED;
DROP INDEX loyalty.point_lot_spend_soonest_idx;
DROP INDEX loyalty.point_lot_spend_oldest_idx;
CREATE INDEX point_lot_spend_soonest_idx ON loyalty.point_lot (member_id, expires_at, active_from, lot_id)
    WHERE state = 'active' AND spendable;
CREATE INDEX point_lot_spend_oldest_idx ON loyalty.point_lot (member_id, active_from, lot_id)
    WHERE state = 'active' AND spendable;
