-- rewards (issue 17, docs/rewards.md): the ledger's new entry kind
-- ("refund": a redemption given back) and lot source ("purchase": points
-- sold, never counted toward tier), then the new concept, then the nightly
-- voucher expiry in the job list.
ALTER TABLE loyalty.point_entry DROP CONSTRAINT point_entry_kind_valid,
    ADD CONSTRAINT point_entry_kind_valid CHECK (kind IN
        ('accrue', 'activate', 'redeem', 'reverse', 'transfer_out',
         'transfer_in', 'expire', 'refund'));
ALTER TABLE loyalty.point_lot DROP CONSTRAINT point_lot_source_valid,
    ADD CONSTRAINT point_lot_source_valid CHECK (source IN
        ('stay', 'spend', 'campaign', 'bonus', 'milestone', 'adjustment',
         'transfer', 'deficit', 'purchase'));
\ir 35_reward.sql
CREATE OR REPLACE FUNCTION loyalty.job_schedule_defaults(
    OUT job_name text, OUT schedule text, OUT command text, OUT what text)
    RETURNS SETOF record
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    VALUES
    ('loyalty-activate-due', '*/15 * * * *',
     $c$CALL loyalty.activate_due_batch()$c$,
     'activate pending points whose activation date has come'),
    ('loyalty-requalify', '30 18 * * *',
     $c$CALL loyalty.tier_requalify()$c$,
     'requalify every member: upgrades the counters earn, downgrades of ended validity (02:30 in China)'),
    ('loyalty-expire', '0 19 * * *',
     $c$CALL loyalty.expire_points_batch()$c$,
     'expire points and send expiry notices (03:00 in China)'),
    ('loyalty-retention', '0 20 * * 0',
     $c$CALL loyalty.retention_purge_batch()$c$,
     'purge personal data past its retention period (Sundays, 04:00 in China)'),
    ('loyalty-voucher-expire', '15 19 * * *',
     $c$SELECT * FROM loyalty.voucher_expire('loyalty-voucher-expire ' || now())$c$,
     'expire vouchers and certificates, notices 14 days ahead (03:15 in China)')
$$;
