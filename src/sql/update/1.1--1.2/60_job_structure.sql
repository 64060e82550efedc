-- job: the 1.2 API names (issue 11, structure): noun_verb, concept first,
-- the idempotency key first; the 1.1 names become wrappers (99_deprecated).
-- Generated from the difference between 1.1 and src/sql/60_job.sql.

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
    ('loyalty-case-escalate', '*/15 * * * *',
     $c$SELECT loyalty.case_escalate_overdue()$c$,
     'escalate overdue service cases, with a case_escalated event each (docs/crm.md)'),
    ('loyalty-scores', '0 17 * * *',
     $c$CALL loyalty.score_refresh()$c$,
     'score every member: RFM, value level, churn warning (01:00 in China; docs/segments.md)'),
    ('loyalty-segments', '30 17 * * *',
     $c$CALL loyalty.segment_refresh()$c$,
     'materialise every segment over the latest scores (01:30 in China; docs/segments.md)'),
    ('loyalty-audit-retention', '30 20 * * 0',
     $c$CALL loyalty.audit_retention_purge_batch()$c$,
     'create the audit log''s coming months; drop the months past retention after anchoring the chain (Sundays, 04:30 in China; docs/audit.md)'),
    ('loyalty-voucher-expire', '15 19 * * *',
     $c$SELECT * FROM loyalty.voucher_expire('loyalty-voucher-expire ' || now())$c$,
     'expire vouchers and certificates, notices 14 days ahead (03:15 in China)'),
    ('loyalty-replica-links', '*/5 * * * *',
     $c$SELECT count(*) FROM loyalty.replica_link_watch()$c$,
     'check every replication link of this server into replica_link_log; WARNING in the server log for a link down (docs/replication.md)')
$$;
COMMENT ON FUNCTION loyalty.job_schedule_defaults() IS
    'The batch jobs loyalty.job_schedule() installs, with their pg_cron schedules (GMT)';

-- loyalty._job_schedule_audit(action, detail): the change record of
-- job_schedule and job_unschedule, which run as their caller (so that the
-- jobs do) and may not write the staging table themselves; checks the
-- caller as they do.
CREATE FUNCTION loyalty._job_schedule_audit(action text, detail jsonb) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF action IS NULL OR action NOT IN ('job_schedule', 'job_unschedule') THEN
        RAISE EXCEPTION 'not a scheduling action' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM loyalty._audit_change(NULL, action, 'operations', detail);
END
$$;
REVOKE ALL ON FUNCTION loyalty._job_schedule_audit(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._job_schedule_audit(text, jsonb) TO loyalty_crm, loyalty_dba;

CREATE FUNCTION loyalty.job_schedule(idempotency_key text)
    RETURNS TABLE (job_name text, schedule text, command text, jobid bigint)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    prior jsonb;
    j record;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    req := pg_catalog.jsonb_build_array();
    prior := loyalty._request_begin('job_schedule', idempotency_key, req);
    IF prior IS NOT NULL THEN
        NULL;  -- a retry installs the same jobs again (same names, same job ids)
    END IF;
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
    IF prior IS NULL THEN
        PERFORM loyalty._request_end('job_schedule', idempotency_key, req, 'null'::jsonb);
        PERFORM loyalty._job_schedule_audit('job_schedule',
            (SELECT pg_catalog.jsonb_build_object('jobs', pg_catalog.jsonb_agg(d.job_name))
               FROM loyalty.job_schedule_defaults() d));
    END IF;
END
$$;
COMMENT ON FUNCTION loyalty.job_schedule(text) IS
    'Install (or replace) the extension''s pg_cron jobs; they run as the caller';

CREATE FUNCTION loyalty.job_scheduled()
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
COMMENT ON FUNCTION loyalty.job_scheduled() IS
    'The extension''s pg_cron jobs with their last run';

CREATE FUNCTION loyalty.job_unschedule(idempotency_key text) RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    prior jsonb;
    n integer := 0;
    name text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    req := pg_catalog.jsonb_build_array();
    prior := loyalty._request_begin('job_unschedule', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN (prior #>> '{}')::integer;
    END IF;
    PERFORM loyalty._require_pg_cron();
    FOR name IN EXECUTE 'SELECT jobname FROM cron.job WHERE jobname LIKE $1' USING 'loyalty-%' LOOP
        EXECUTE 'SELECT cron.unschedule($1)' USING name;
        n := n + 1;
    END LOOP;
    PERFORM loyalty._request_end('job_unschedule', idempotency_key, req, pg_catalog.to_jsonb(n));
    PERFORM loyalty._job_schedule_audit('job_unschedule',
        pg_catalog.jsonb_build_object('jobs', n));
    RETURN n;
END
$$;
COMMENT ON FUNCTION loyalty.job_unschedule(text) IS
    'Remove every pg_cron job of the extension; returns how many';

CREATE PROCEDURE loyalty.points_expire_batch(as_of timestamptz DEFAULT NULL,
    batch_size integer DEFAULT 1000)
    LANGUAGE plpgsql
AS $$
BEGIN
    CALL loyalty._job_run('expire', pg_catalog.jsonb_build_object('as_of', coalesce(as_of, pg_catalog.now())), batch_size);
END
$$;
COMMENT ON PROCEDURE loyalty.points_expire_batch(timestamptz, integer) IS
    'Expiry notices and expiry of the points due at as_of, one committed batch of members at a time';

CREATE PROCEDURE loyalty.points_activate_due_batch(as_of timestamptz DEFAULT NULL,
    batch_size integer DEFAULT 1000)
    LANGUAGE plpgsql
AS $$
BEGIN
    CALL loyalty._job_run('activate', pg_catalog.jsonb_build_object('as_of', coalesce(as_of, pg_catalog.now())), batch_size);
END
$$;
COMMENT ON PROCEDURE loyalty.points_activate_due_batch(timestamptz, integer) IS
    'Activate the pending points due at as_of, one committed batch of members at a time';

REVOKE ALL ON FUNCTION loyalty.job_schedule(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.job_schedule(text) TO loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.job_scheduled() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.job_scheduled() TO loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.job_unschedule(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.job_unschedule(text) TO loyalty_crm, loyalty_dba;
REVOKE ALL ON PROCEDURE loyalty.points_expire_batch(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE loyalty.points_expire_batch(timestamptz, integer) TO loyalty_dba, loyalty_crm;
REVOKE ALL ON PROCEDURE loyalty.points_activate_due_batch(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE loyalty.points_activate_due_batch(timestamptz, integer) TO loyalty_dba, loyalty_crm;
