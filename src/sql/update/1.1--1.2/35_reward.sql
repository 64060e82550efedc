-- rewards (issue 17, docs/rewards.md): the ledger's new entry kind
-- ("refund": a redemption given back) and lot source ("purchase": points
-- sold, never counted toward tier), then the new concept.  The nightly
-- voucher expiry joins the job list in 60_job_structure.sql.
ALTER TABLE loyalty.point_entry DROP CONSTRAINT point_entry_kind_valid,
    ADD CONSTRAINT point_entry_kind_valid CHECK (kind IN
        ('accrue', 'activate', 'redeem', 'reverse', 'transfer_out',
         'transfer_in', 'expire', 'refund'));
ALTER TABLE loyalty.point_lot DROP CONSTRAINT point_lot_source_valid,
    ADD CONSTRAINT point_lot_source_valid CHECK (source IN
        ('stay', 'spend', 'campaign', 'bonus', 'milestone', 'adjustment',
         'transfer', 'deficit', 'purchase'));
\ir 35_reward.sql
