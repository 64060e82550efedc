-- Schedules: the extension's batch jobs as pg_cron jobs (docs/operations.md).
--
-- pg_cron is optional: these functions look it up when called and say
-- clearly when it is missing.  pg_cron runs a job as the role that
-- scheduled it, so the functions run with the caller's rights (SECURITY
-- INVOKER): the jobs run as the HQ DBA or CRM login that installed them,
-- never as a superuser by accident.  Times are GMT (pg_cron 1.4).

CREATE FUNCTION loyalty.job_schedule_defaults(
    OUT job_name text, OUT schedule text, OUT command text, OUT what text)
    RETURNS SETOF record
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    VALUES
    ('loyalty-activate-due', '*/15 * * * *',
     $c$SELECT loyalty.activate_due('cron-activate-' || to_char(now(), 'YYYYMMDDHH24MI'))$c$,
     'activate pending points whose activation date has come'),
    ('loyalty-requalify', '30 18 * * *',
     $c$CALL loyalty.tier_requalify()$c$,
     'requalify every member: upgrades the counters earn, downgrades of ended validity (02:30 in China)'),
    ('loyalty-expire', '0 19 * * *',
     $c$SELECT loyalty.expire_points('cron-expire-' || current_date)$c$,
     'expire points and send expiry notices (03:00 in China)'),
    ('loyalty-retention', '0 20 * * 0',
     $c$SELECT * FROM loyalty.retention_purge(false)$c$,
     'purge personal data past its retention period (Sundays, 04:00 in China)')
$$;
COMMENT ON FUNCTION loyalty.job_schedule_defaults() IS
    'The batch jobs loyalty.schedule_jobs() installs, with their pg_cron schedules (GMT)';

CREATE FUNCTION loyalty._require_pg_cron() RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, and CREATE EXTENSION pg_cron here.';
    END IF;
END
$$;

CREATE FUNCTION loyalty.schedule_jobs()
    RETURNS TABLE (job_name text, schedule text, command text, jobid bigint)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j record;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    PERFORM loyalty._require_pg_cron();
    FOR j IN SELECT * FROM loyalty.job_schedule_defaults() LOOP
        job_name := j.job_name;
        schedule := j.schedule;
        command := j.command;
        -- scheduling a name again replaces the job of that name
        EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO jobid
            USING j.job_name, j.schedule, j.command;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION loyalty.schedule_jobs() IS
    'Install (or replace) the extension''s pg_cron jobs; they run as the caller';

CREATE FUNCTION loyalty.scheduled_jobs()
    RETURNS TABLE (jobid bigint, job_name text, schedule text, command text, run_as text,
                   active boolean, last_status text, last_start timestamptz, last_message text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    PERFORM loyalty._require_pg_cron();
    RETURN QUERY EXECUTE
        'SELECT j.jobid, j.jobname::text, j.schedule, j.command, j.username::text, j.active,
                r.status, r.start_time, r.return_message
           FROM cron.job j
           LEFT JOIN LATERAL (SELECT d.status, d.start_time, d.return_message
                                FROM cron.job_run_details d WHERE d.jobid = j.jobid
                               ORDER BY d.start_time DESC LIMIT 1) r ON true
          WHERE j.jobname LIKE $1
          ORDER BY j.jobname'
        USING 'loyalty-%';
END
$$;
COMMENT ON FUNCTION loyalty.scheduled_jobs() IS
    'The extension''s pg_cron jobs with their last run';

CREATE FUNCTION loyalty.unschedule_jobs() RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer := 0;
    name text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    PERFORM loyalty._require_pg_cron();
    FOR name IN EXECUTE 'SELECT jobname FROM cron.job WHERE jobname LIKE $1' USING 'loyalty-%' LOOP
        EXECUTE 'SELECT cron.unschedule($1)' USING name;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION loyalty.unschedule_jobs() IS
    'Remove every pg_cron job of the extension; returns how many';

REVOKE ALL ON FUNCTION loyalty.job_schedule_defaults(), loyalty._require_pg_cron(),
    loyalty.schedule_jobs(), loyalty.scheduled_jobs(), loyalty.unschedule_jobs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.job_schedule_defaults(), loyalty._require_pg_cron(),
    loyalty.schedule_jobs(), loyalty.scheduled_jobs(), loyalty.unschedule_jobs()
    TO loyalty_crm, loyalty_dba;
-- the schedule functions run with the caller's rights and check them first
GRANT EXECUTE ON FUNCTION loyalty._check_access(text, text[]) TO loyalty_crm, loyalty_dba;
