-- segments: the score and segment jobs join the pg_cron schedule
-- (src/sql/60_job.sql, loyalty.job_schedule_defaults; docs/operations.md)
CREATE OR REPLACE FUNCTION loyalty.job_schedule_defaults(
    OUT job_name text, OUT schedule text, OUT command text, OUT what text)
    RETURNS SETOF record
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    VALUES
    ('loyalty-activate-due', '*/15 * * * *',
     $c$CALL loyalty.points_activate_due_batch()$c$,
     'activate pending points whose activation date has come'),
    ('loyalty-requalify', '30 18 * * *',
     $c$CALL loyalty.tier_requalify()$c$,
     'requalify every member: upgrades the counters earn, downgrades of ended validity (02:30 in China)'),
    ('loyalty-expire', '0 19 * * *',
     $c$CALL loyalty.points_expire_batch()$c$,
     'expire points and send expiry notices (03:00 in China)'),
    ('loyalty-retention', '0 20 * * 0',
     $c$CALL loyalty.retention_purge_batch()$c$,
     'purge personal data past its retention period (Sundays, 04:00 in China)'),
    ('loyalty-scores', '0 17 * * *',
     $c$CALL loyalty.score_refresh()$c$,
     'score every member: RFM, value level, churn warning (01:00 in China; docs/segments.md)'),
    ('loyalty-segments', '30 17 * * *',
     $c$CALL loyalty.segment_refresh()$c$,
     'materialise every segment over the latest scores (01:30 in China; docs/segments.md)')
$$;

