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

REVOKE ALL ON FUNCTION loyalty.job_schedule_defaults(), loyalty._require_pg_cron(),
    loyalty.job_schedule(text), loyalty.job_scheduled(), loyalty.job_unschedule(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.job_schedule_defaults(), loyalty._require_pg_cron(),
    loyalty.job_schedule(text), loyalty.job_scheduled(), loyalty.job_unschedule(text)
    TO loyalty_crm, loyalty_dba;
-- the schedule functions run with the caller's rights and check them first
GRANT EXECUTE ON FUNCTION loyalty._check_access(text, text[]) TO loyalty_crm, loyalty_dba;

-- jobs: one job table and one progress view for every long job (issue 8,
-- item 6; docs/operations.md, "Long jobs and their progress").
--
-- A long job is a procedure that commits after every batch, so that its
-- locks are short, other traffic goes on, and other sessions see its
-- progress in loyalty.job_progress.  Every job runs through one procedure,
-- loyalty._job_run(kind, params, batch_size): _job_start checks the input
-- and the caller, takes a session advisory lock for the kind (one job of a
-- kind at a time) and records the job with its total; each batch
-- (_job_batch, by kind) then updates done and changed in the batch's own
-- transaction; _job_finish records the end (done, or failed with the
-- error) and releases the lock.  A batch that fails is rolled back (its
-- subtransaction), the failure is recorded and committed, and the error is
-- raised again.  A job whose backend died (crash, pg_terminate_backend)
-- no longer holds its lock: the view shows it as abandoned, and the next
-- job of its kind records it so.

CREATE TABLE loyalty.job (
    job_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind         text NOT NULL
        CONSTRAINT job_kind_valid
        CHECK (kind IN ('requalify', 'downgrade', 'expire', 'activate', 'retention', 'erase',
                        'score', 'segment', 'audit_retention')),
    state        text NOT NULL DEFAULT 'running'
        CONSTRAINT job_state_valid CHECK (state IN ('running', 'done', 'failed', 'abandoned')),
    params       jsonb NOT NULL DEFAULT '{}',
    batch_size   integer NOT NULL CONSTRAINT job_batch_size_valid CHECK (batch_size > 0),
    done         bigint NOT NULL DEFAULT 0 CONSTRAINT job_done_valid CHECK (done >= 0),
    total        bigint NOT NULL DEFAULT 0 CONSTRAINT job_total_valid CHECK (total >= 0),
    changed      bigint NOT NULL DEFAULT 0 CONSTRAINT job_changed_valid CHECK (changed >= 0),
    started_by   name NOT NULL DEFAULT session_user,
    backend_pid  integer DEFAULT pg_backend_pid(),
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz,
    error        text,
    CONSTRAINT job_finished_when_not_running CHECK ((state = 'running') = (finished_at IS NULL))
);
COMMENT ON TABLE loyalty.job IS
    'Long jobs (requalification, downgrade, expiry, activation, retention, erasure, scores, segments) and their progress';
CREATE INDEX job_started_idx ON loyalty.job (started_at);
CREATE INDEX job_running_idx ON loyalty.job (kind) WHERE state = 'running';
SELECT pg_catalog.pg_extension_config_dump('loyalty.job', '');

-- loyalty._job_lock_key(kind): the second key of the kind's session
-- advisory lock (the first is 5000025, "LOY").
CREATE FUNCTION loyalty._job_lock_key(kind text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.array_position(
        ARRAY['requalify', 'downgrade', 'expire', 'activate', 'retention', 'erase',
              'score', 'segment', 'audit_retention'], kind)
$$;

-- loyalty._job_alive(kind, pid): does backend pid still hold the kind's
-- lock, that is, is its job still running?
CREATE FUNCTION loyalty._job_alive(kind text, pid integer) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_catalog.pg_locks l
         WHERE l.locktype = 'advisory' AND l.granted AND l.pid = $2
           AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                              WHERE d.datname = pg_catalog.current_database())
           AND l.classid = 5000025::oid AND l.objid = loyalty._job_lock_key($1)::oid
           AND l.objsubid = 2)
$$;

-- loyalty._job_start(kind, params, batch_size): check the caller and the
-- input, take the kind's lock, record the job with its total.  Nothing is
-- written when a check fails.
CREATE FUNCTION loyalty._job_start(kind text, params jsonb, batch_size integer)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id uuid;
    n bigint;
    as_of timestamptz;
    ids uuid[];
    other record;
BEGIN
    PERFORM loyalty._check_access(NULL, CASE WHEN kind = 'erase' THEN ARRAY['crm']
                                             WHEN kind = 'audit_retention' THEN ARRAY['dba']
                                             ELSE ARRAY['crm', 'dba'] END);
    IF kind IS NULL OR loyalty._job_lock_key(kind) IS NULL THEN
        RAISE EXCEPTION 'unknown job kind "%"', kind USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Kinds are requalify, downgrade, expire, activate, retention, erase, score, segment and audit_retention.';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 OR batch_size > 100000 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 100000'
            USING ERRCODE = CASE WHEN batch_size IS NULL THEN 'null_value_not_allowed'
                                 ELSE 'invalid_parameter_value' END,
                  DETAIL = format('The batch size given was %s.', coalesce(batch_size::text, 'null'));
    END IF;
    IF kind IN ('requalify', 'downgrade', 'expire', 'activate', 'retention', 'score', 'segment',
                'audit_retention') THEN
        as_of := (params->>'as_of')::timestamptz;
        IF as_of IS NULL OR NOT isfinite(as_of) THEN
            RAISE EXCEPTION 'as_of must be a finite time' USING ERRCODE = 'datetime_field_overflow';
        END IF;
    END IF;
    IF kind = 'retention' THEN
        IF params->>'inactive_for' IS NULL OR params->>'retired_for' IS NULL THEN
            RAISE EXCEPTION 'inactive_for and retired_for must not be null'
                USING ERRCODE = 'null_value_not_allowed';
        END IF;
        IF (params->>'inactive_for')::interval < interval '1 year'
           OR (params->>'retired_for')::interval < interval '0' THEN
            RAISE EXCEPTION 'retention periods are too short'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'Members are kept at least one year after their last activity.';
        END IF;
    ELSIF kind = 'audit_retention' THEN
        PERFORM loyalty._audit_keep_check(false, (params->>'keep')::interval);
    ELSIF kind = 'erase' THEN
        IF params->>'reason' IS NULL OR btrim(params->>'reason') = '' THEN
            RAISE EXCEPTION 'an erasure needs a reason' USING ERRCODE = 'null_value_not_allowed';
        END IF;
        ids := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(params->'members'))::uuid[];
        IF ids IS NULL OR cardinality(ids) = 0 OR array_position(ids, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'member_ids must be a non-empty list without nulls'
                USING ERRCODE = 'null_value_not_allowed';
        END IF;
        SELECT v INTO id FROM unnest(ids) v
         WHERE NOT EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = v) LIMIT 1;
        IF id IS NOT NULL THEN
            RAISE EXCEPTION 'member not found' USING ERRCODE = 'no_data_found',
                DETAIL = format('Member %s does not exist; no member was erased.', id);
        END IF;
    ELSIF kind IN ('score', 'segment') THEN
        -- the score parameters checked and completed, a segment job's score
        -- job found (src/sql/70_score.sql); recorded with the job
        params := loyalty._segment_job_params(kind, as_of, params);
    END IF;

    -- the lock is taken once per session (a CALL that failed at its first
    -- COMMIT may have left this session holding it already)
    IF NOT loyalty._job_alive(kind, pg_catalog.pg_backend_pid())
       AND NOT pg_catalog.pg_try_advisory_lock(5000025, loyalty._job_lock_key(kind)) THEN
        SELECT j.job_id, j.started_by, j.started_at, j.backend_pid INTO other
          FROM loyalty.job j WHERE j.kind = _job_start.kind AND j.state = 'running'
         ORDER BY j.started_at DESC LIMIT 1;
        RAISE EXCEPTION 'a job of kind "%" is already running', kind
            USING ERRCODE = 'lock_not_available',
                  DETAIL = CASE WHEN other.job_id IS NULL
                                THEN 'Another session holds the lock of this kind of job.'
                                ELSE format('Job %s, started by %s at %s, runs in backend %s.',
                                            other.job_id, other.started_by, other.started_at,
                                            other.backend_pid) END,
                  HINT = 'Watch it in loyalty.job_progress and start again when it has finished.';
    END IF;
    -- we hold the lock: a job of this kind still marked running has lost its backend
    UPDATE loyalty.job j
       SET state = 'abandoned', finished_at = clock_timestamp(),
           error = 'its backend ended before the job finished'
     WHERE j.kind = _job_start.kind AND j.state = 'running';
    IF kind = 'score' THEN
        -- what an unfinished earlier score job left (one at a time: the lock is held)
        TRUNCATE loyalty.score_stage;
    END IF;

    n := CASE kind
        WHEN 'requalify' THEN (SELECT count(*) FROM loyalty.member m WHERE m.status = 'active')
        WHEN 'downgrade' THEN (SELECT count(*) FROM loyalty.member m WHERE m.status = 'active')
        WHEN 'expire' THEN loyalty._expire_points_count(as_of)
        WHEN 'activate' THEN loyalty._activate_due_count(as_of)
        WHEN 'retention' THEN loyalty._retention_purge_count(as_of, (params->>'inactive_for')::interval)
        WHEN 'erase' THEN (SELECT count(DISTINCT v) FROM unnest(ids) v)
        WHEN 'score' THEN (SELECT count(*) FROM loyalty.member m WHERE m.status = 'active')
        WHEN 'segment' THEN (SELECT count(DISTINCT d.code) FROM loyalty.segment_def d)
        WHEN 'audit_retention' THEN (SELECT count(*) FROM pg_catalog.pg_inherits i
             JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'loyalty.audit_log'::regclass
              AND c.relname ~ '^_audit_log_[0-9]{4}_[0-9]{2}$'
              AND ((pg_catalog.to_timestamp(pg_catalog.substr(c.relname, 12), 'YYYY_MM')::timestamp
                    + interval '1 month') AT TIME ZONE 'UTC') <= as_of - (params->>'keep')::interval)
    END;
    INSERT INTO loyalty.job (kind, params, batch_size, total)
    VALUES (kind, params, batch_size, n)
    RETURNING job.job_id INTO id;
    -- the batch job's change record, named after its API procedure
    PERFORM loyalty._audit_change(NULL,
        CASE kind WHEN 'requalify' THEN 'tier_requalify' WHEN 'downgrade' THEN 'tier_downgrade_apply'
                  WHEN 'expire' THEN 'points_expire_batch' WHEN 'activate' THEN 'points_activate_due_batch'
                  WHEN 'retention' THEN 'retention_purge_batch' WHEN 'score' THEN 'score_refresh'
                  WHEN 'segment' THEN 'segment_refresh' WHEN 'audit_retention' THEN 'audit_retention_purge_batch'
                  ELSE 'member_erase_batch' END,
        CASE WHEN kind IN ('retention', 'erase', 'audit_retention') THEN 'privacy'
             WHEN kind IN ('score', 'segment') THEN 'marketing' ELSE 'loyalty' END,
        pg_catalog.jsonb_build_object('job_id', id, 'params', params, 'total', n));
    RETURN id;
END
$$;

-- loyalty._job_step(job_id, processed, changed): one committed batch.
CREATE FUNCTION loyalty._job_step(job_id uuid, processed bigint, changed bigint)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE loyalty.job j
       SET done = j.done + processed, changed = j.changed + _job_step.changed,
           updated_at = clock_timestamp()
     WHERE j.job_id = _job_step.job_id AND j.state = 'running'
       AND j.backend_pid = pg_catalog.pg_backend_pid();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % is not running in this session', job_id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;

-- loyalty._job_finish(job_id, error_state, error_message): the end of a
-- job, done (no error) or failed; releases the kind's lock.
CREATE FUNCTION loyalty._job_finish(job_id uuid, error_state text, error_message text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
BEGIN
    UPDATE loyalty.job j
       SET state = CASE WHEN error_state IS NULL THEN 'done' ELSE 'failed' END,
           error = CASE WHEN error_state IS NOT NULL THEN error_state || ': ' || error_message END,
           updated_at = clock_timestamp(), finished_at = clock_timestamp()
     WHERE j.job_id = _job_finish.job_id AND j.state = 'running'
       AND j.backend_pid = pg_catalog.pg_backend_pid()
    RETURNING j.kind INTO k;
    IF k IS NOT NULL THEN
        PERFORM pg_catalog.pg_advisory_unlock(5000025, loyalty._job_lock_key(k));
    END IF;
END
$$;

-- loyalty._job_raise(sqlstate, message, detail, hint): raise an error
-- again after its job's failure has been committed.
CREATE FUNCTION loyalty._job_raise(sqlstate text, message text, detail text, hint text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(detail, '') <> '' AND coalesce(hint, '') <> '' THEN
        RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message, DETAIL = detail, HINT = hint;
    ELSIF coalesce(detail, '') <> '' THEN
        RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message, DETAIL = detail;
    ELSIF coalesce(hint, '') <> '' THEN
        RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message, HINT = hint;
    ELSE
        RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message;
    END IF;
END
$$;

-- The ledger's batches (C, src/job_batch.c): one batch of members after a
-- key, and the total a job starts with.
CREATE FUNCTION loyalty._expire_points_batch(as_of timestamptz, after uuid, batch_size integer,
    OUT last_key uuid, OUT processed integer, OUT changed integer)
    RETURNS record
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_expire_points_batch';
CREATE FUNCTION loyalty._activate_due_batch(as_of timestamptz, after uuid, batch_size integer,
    OUT last_key uuid, OUT processed integer, OUT changed integer)
    RETURNS record
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_activate_due_batch';
CREATE FUNCTION loyalty._expire_points_count(as_of timestamptz) RETURNS bigint
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_expire_points_count';
CREATE FUNCTION loyalty._activate_due_count(as_of timestamptz) RETURNS bigint
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_activate_due_count';

-- Retention in batches: the members loyalty.retention_purge() would erase,
-- judged at the job's start time as_of (not at each batch's now()).
CREATE FUNCTION loyalty._retention_purge_count(as_of timestamptz, inactive_for interval)
    RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*) FROM loyalty.member m
     WHERE m.status <> 'erased' AND m.enrolled_at < $1 - $2
       AND NOT EXISTS (SELECT 1 FROM loyalty.stay s
                        WHERE s.member_id = m.member_id AND s.check_out >= ($1 - $2)::date)
$$;

CREATE FUNCTION loyalty._retention_purge_batch(after uuid, batch_size integer,
    as_of timestamptz, inactive_for interval, retired_for interval,
    OUT last_key uuid, OUT processed integer, OUT changed integer)
    RETURNS record
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v uuid;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    processed := 0;
    changed := 0;
    IF after = '00000000-0000-0000-0000-000000000000' THEN
        DELETE FROM loyalty.member_preference p WHERE p.retired_at < as_of - retired_for;
    END IF;
    FOR v IN
        SELECT m.member_id FROM loyalty.member m
         WHERE m.member_id > after AND m.status <> 'erased' AND m.enrolled_at < as_of - inactive_for
           AND NOT EXISTS (SELECT 1 FROM loyalty.stay s
                            WHERE s.member_id = m.member_id AND s.check_out >= (as_of - inactive_for)::date)
         ORDER BY m.member_id LIMIT batch_size
    LOOP
        PERFORM loyalty._member_erase(v, 'retention: inactive for ' || inactive_for::text);
        processed := processed + 1;
        changed := changed + 1;
        last_key := v;
    END LOOP;
END
$$;

-- Erasure of a list of members in batches (already erased ones are skipped).
CREATE FUNCTION loyalty._member_erase_batch(after uuid, batch_size integer,
    member_ids uuid[], reason text,
    OUT last_key uuid, OUT processed integer, OUT changed integer)
    RETURNS record
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v uuid;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm']);
    processed := 0;
    changed := 0;
    FOR v IN SELECT DISTINCT x FROM unnest(member_ids) x WHERE x > after ORDER BY x LIMIT batch_size
    LOOP
        IF EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = v AND m.status <> 'erased') THEN
            PERFORM loyalty.member_erase(v, reason);
            changed := changed + 1;
        END IF;
        processed := processed + 1;
        last_key := v;
    END LOOP;
END
$$;

-- loyalty._job_batch(kind, params, after, batch_size): one batch of a job,
-- by kind.
CREATE FUNCTION loyalty._job_batch(kind text, params jsonb, after uuid, batch_size integer,
    OUT last_key uuid, OUT processed integer, OUT changed integer)
    RETURNS record
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b record;
    as_of timestamptz := (params->>'as_of')::timestamptz;
    job uuid;
BEGIN
    CASE kind
    WHEN 'requalify', 'downgrade' THEN
        b := loyalty._tier_requalify_batch(after, batch_size, as_of, kind = 'downgrade');
        last_key := b.last_member;
    WHEN 'expire' THEN
        b := loyalty._expire_points_batch(as_of, after, batch_size);
        last_key := b.last_key;
    WHEN 'activate' THEN
        b := loyalty._activate_due_batch(as_of, after, batch_size);
        last_key := b.last_key;
    WHEN 'retention' THEN
        b := loyalty._retention_purge_batch(after, batch_size, as_of,
                (params->>'inactive_for')::interval, (params->>'retired_for')::interval);
        last_key := b.last_key;
    WHEN 'audit_retention' THEN
        -- the coming months first, then one month past retention per batch
        PERFORM loyalty._audit_partition_ensure(as_of + m * interval '1 month')
           FROM pg_catalog.generate_series(0, 2) m;
        b := loyalty._audit_purge_month(as_of - (params->>'keep')::interval, '-infinity', false);
        last_key := NULL;
        processed := CASE WHEN b.name IS NULL THEN 0 ELSE 1 END;
        changed := coalesce(b.records, 0);
        RETURN;
    WHEN 'erase' THEN
        b := loyalty._member_erase_batch(after, batch_size,
                ARRAY(SELECT pg_catalog.jsonb_array_elements_text(params->'members'))::uuid[],
                params->>'reason');
        last_key := b.last_key;
    WHEN 'score', 'segment' THEN
        -- the running job of the kind in this session (one at a time: the
        -- kind's lock); its recorded parameters are read by the batch
        SELECT j.job_id INTO job FROM loyalty.job j
         WHERE j.kind = _job_batch.kind AND j.state = 'running'
           AND j.backend_pid = pg_catalog.pg_backend_pid()
         ORDER BY j.started_at DESC LIMIT 1;
        IF kind = 'score' THEN
            b := loyalty._score_batch(job, after, batch_size);
            IF b.processed = 0 THEN
                -- the bins over the whole population, at the end
                PERFORM loyalty._score_finish(job);
            END IF;
        ELSE
            b := loyalty._segment_batch(job, after, batch_size);
        END IF;
        last_key := b.last_key;
    END CASE;
    processed := b.processed;
    changed := b.changed;
END
$$;

-- loyalty._job_run(kind, params, batch_size): the one loop of every long
-- job.  A procedure without SECURITY DEFINER or SET (those cannot commit),
-- so every name is schema-qualified; CALLed outside a transaction block,
-- it commits after each batch.
-- _job_require_nonatomic(kind): a clear error (25001 inside a transaction
-- block, 2D000 in an atomic context) before a batch procedure's first
-- COMMIT would fail with a bare "invalid transaction termination".
CREATE FUNCTION loyalty._job_require_nonatomic(kind text) RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_job_require_nonatomic';
REVOKE ALL ON FUNCTION loyalty._job_require_nonatomic(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._job_require_nonatomic(text) TO loyalty_dba, loyalty_crm;

CREATE PROCEDURE loyalty._job_run(kind text, params jsonb, batch_size integer)
    LANGUAGE plpgsql
AS $$
DECLARE
    job uuid;
    after uuid := '00000000-0000-0000-0000-000000000000';
    b record;
    failed boolean := false;
    st text;
    msg text;
    det text;
    hnt text;
BEGIN
    -- fails at once inside a transaction block, before anything is taken
    PERFORM loyalty._job_require_nonatomic(kind);
    COMMIT;
    job := loyalty._job_start(kind, params, batch_size);
    COMMIT;
    LOOP
        BEGIN
            b := loyalty._job_batch(kind, params, after, batch_size);
            IF b.processed > 0 THEN
                PERFORM loyalty._job_step(job, b.processed, b.changed);
            END IF;
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                    det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
            failed := true;
        END;
        IF failed THEN
            PERFORM loyalty._job_finish(job, st, msg);
            COMMIT;
            PERFORM loyalty._job_raise(st, msg, det, hnt);
        END IF;
        EXIT WHEN b.processed = 0;
        COMMIT;
        after := b.last_key;
    END LOOP;
    PERFORM loyalty._job_finish(job, NULL, NULL);
    COMMIT;
END
$$;

-- The long jobs.
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

CREATE PROCEDURE loyalty.retention_purge_batch(inactive_for interval DEFAULT '3 years',
    retired_for interval DEFAULT '1 year', batch_size integer DEFAULT 500)
    LANGUAGE plpgsql
AS $$
BEGIN
    CALL loyalty._job_run('retention',
        pg_catalog.jsonb_build_object('as_of', pg_catalog.now(), 'inactive_for', inactive_for, 'retired_for', retired_for),
        batch_size);
END
$$;
COMMENT ON PROCEDURE loyalty.retention_purge_batch(interval, interval, integer) IS
    'Apply the retention rules (as retention_purge(false)), one committed batch of erasures at a time';

CREATE PROCEDURE loyalty.member_erase_batch(member_ids uuid[], reason text,
    batch_size integer DEFAULT 500)
    LANGUAGE plpgsql
AS $$
BEGIN
    CALL loyalty._job_run('erase',
        pg_catalog.jsonb_build_object('members', pg_catalog.to_jsonb(member_ids), 'reason', reason), batch_size);
END
$$;
COMMENT ON PROCEDURE loyalty.member_erase_batch(uuid[], text, integer) IS
    'Erase a list of members (as member_erase), one committed batch at a time; HQ CRM only';

-- The progress of every job, and of the initial table copy of this
-- server's subscriptions to loyalty tables (a store being re-seeded).
CREATE VIEW loyalty.job_progress WITH (security_barrier) AS
SELECT j.job_id, j.kind,
       CASE WHEN j.state = 'running' AND NOT loyalty._job_alive(j.kind, j.backend_pid)
            THEN 'abandoned' ELSE j.state END AS state,
       j.done, j.total,
       CASE WHEN j.state = 'done' THEN 100.0
            ELSE round(100.0 * least(j.done, j.total) / greatest(j.total, 1), 1) END AS percent,
       round(j.done / greatest(extract(epoch FROM j.updated_at - j.started_at), 0.001), 1)
           AS rate,
       CASE WHEN j.state = 'running' AND j.done > 0
            THEN (j.updated_at - j.started_at) * (greatest(j.total - j.done, 0)::float8 / j.done)
       END AS eta,
       j.started_by, j.started_at, j.updated_at, j.finished_at, j.error,
       j.changed, j.params, j.backend_pid
  FROM loyalty.job j
UNION ALL
SELECT NULL, 'resync',
       CASE WHEN bool_and(r.srsubstate IN ('r', 's')) THEN 'done' ELSE 'running' END,
       count(*) FILTER (WHERE r.srsubstate IN ('r', 's')), count(*),
       round(100.0 * count(*) FILTER (WHERE r.srsubstate IN ('r', 's')) / count(*), 1),
       NULL, NULL,
       pg_catalog.pg_get_userbyid(s.subowner), NULL, NULL, NULL, NULL,
       NULL,
       pg_catalog.jsonb_build_object('subscription', s.subname, 'enabled', s.subenabled,
           'copying', coalesce(pg_catalog.jsonb_agg(c.relname ORDER BY c.relname)
                                   FILTER (WHERE r.srsubstate NOT IN ('r', 's')), '[]')),
       NULL
  FROM pg_catalog.pg_subscription s
  JOIN pg_catalog.pg_subscription_rel r ON r.srsubid = s.oid
  JOIN pg_catalog.pg_class c ON c.oid = r.srrelid
 WHERE s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d
                     WHERE d.datname = pg_catalog.current_database())
   AND c.relnamespace = 'loyalty'::regnamespace
 GROUP BY s.oid, s.subname, s.subowner, s.subenabled;
COMMENT ON VIEW loyalty.job_progress IS
    'Every long job''s progress (done, total, percent, rate, eta), updated after every committed batch; store re-sync as kind resync';

-- the tier jobs' progress as 1.0 showed it, over the generic table
CREATE VIEW loyalty.tier_job_progress WITH (security_barrier) AS
SELECT p.job_id, p.kind, p.state, (p.params->>'as_of')::timestamptz AS as_of,
       p.done AS members_done, p.total AS members_total, p.percent,
       p.changed AS members_changed, p.started_at, p.updated_at, p.finished_at,
       round(p.rate) AS members_per_second, p.eta, p.started_by
  FROM loyalty.job_progress p
 WHERE p.kind IN ('requalify', 'downgrade');

COMMENT ON VIEW loyalty.tier_job_progress IS 'Progress of tier batch jobs, updated after every committed batch';

-- every view is owned by loyalty_view_owner, which cannot bypass row level
-- security (docs/privacy.md)
ALTER VIEW loyalty.job_progress OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.tier_job_progress OWNER TO loyalty_view_owner;
REVOKE ALL ON loyalty.tier_job_progress FROM PUBLIC;
GRANT SELECT ON loyalty.tier_job_progress TO loyalty_crm, loyalty_dba;
REVOKE ALL ON loyalty.job, loyalty.job_progress FROM PUBLIC;
GRANT SELECT ON loyalty.job TO loyalty_dba, loyalty_crm, loyalty_view_owner;
GRANT SELECT ON loyalty.job_progress TO loyalty_dba, loyalty_crm;
REVOKE ALL ON FUNCTION loyalty._job_lock_key(text), loyalty._job_alive(text, integer),
    loyalty._job_start(text, jsonb, integer), loyalty._job_step(uuid, bigint, bigint),
    loyalty._job_finish(uuid, text, text), loyalty._job_raise(text, text, text, text),
    loyalty._expire_points_batch(timestamptz, uuid, integer),
    loyalty._activate_due_batch(timestamptz, uuid, integer),
    loyalty._expire_points_count(timestamptz), loyalty._activate_due_count(timestamptz),
    loyalty._retention_purge_count(timestamptz, interval),
    loyalty._retention_purge_batch(uuid, integer, timestamptz, interval, interval),
    loyalty._member_erase_batch(uuid, integer, uuid[], text),
    loyalty._job_batch(text, jsonb, uuid, integer) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty._job_run(text, jsonb, integer),
    loyalty.points_expire_batch(timestamptz, integer),
    loyalty.points_activate_due_batch(timestamptz, integer),
    loyalty.retention_purge_batch(interval, interval, integer),
    loyalty.member_erase_batch(uuid[], text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._job_lock_key(text), loyalty._job_alive(text, integer)
    TO loyalty_dba, loyalty_crm, loyalty_view_owner;
GRANT EXECUTE ON FUNCTION
    loyalty._job_start(text, jsonb, integer), loyalty._job_step(uuid, bigint, bigint),
    loyalty._job_finish(uuid, text, text), loyalty._job_raise(text, text, text, text),
    loyalty._expire_points_batch(timestamptz, uuid, integer),
    loyalty._activate_due_batch(timestamptz, uuid, integer),
    loyalty._expire_points_count(timestamptz), loyalty._activate_due_count(timestamptz),
    loyalty._retention_purge_count(timestamptz, interval),
    loyalty._retention_purge_batch(uuid, integer, timestamptz, interval, interval),
    loyalty._member_erase_batch(uuid, integer, uuid[], text),
    loyalty._job_batch(text, jsonb, uuid, integer) TO loyalty_dba, loyalty_crm;
GRANT EXECUTE ON PROCEDURE loyalty._job_run(text, jsonb, integer),
    loyalty.points_expire_batch(timestamptz, integer),
    loyalty.points_activate_due_batch(timestamptz, integer),
    loyalty.retention_purge_batch(interval, interval, integer)
    TO loyalty_dba, loyalty_crm;
GRANT EXECUTE ON PROCEDURE loyalty.member_erase_batch(uuid[], text, integer) TO loyalty_crm;

