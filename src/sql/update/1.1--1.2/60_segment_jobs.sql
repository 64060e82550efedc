-- job: the score and segment runs are jobs of the job framework (kinds
-- score and segment of loyalty.job, run by _job_run, progress in
-- loyalty.job_progress, ended by _job_finish), not a registry of their own
-- (src/sql/70_score.sql, 71_segment.sql); the audit log's monthly
-- partitions are kept by the kind audit_retention (created ahead, dropped
-- past retention after anchoring the chain; audit_retention_purge_batch in
-- 42_audit_trail.sql); every job writes its change record when it starts
-- (issue 13).  The 1.1 job objects that know the kinds, in their 1.2 form,
-- as in src/sql/60_job.sql.
ALTER TABLE loyalty.job DROP CONSTRAINT job_kind_valid,
    ADD CONSTRAINT job_kind_valid
        CHECK (kind IN ('requalify', 'downgrade', 'expire', 'activate', 'retention', 'erase',
                        'score', 'segment', 'audit_retention'));
COMMENT ON TABLE loyalty.job IS
    'Long jobs (requalification, downgrade, expiry, activation, retention, erasure, scores, segments) and their progress';

CREATE OR REPLACE FUNCTION loyalty._job_lock_key(kind text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.array_position(
        ARRAY['requalify', 'downgrade', 'expire', 'activate', 'retention', 'erase',
              'score', 'segment', 'audit_retention'], kind)
$$;

CREATE OR REPLACE FUNCTION loyalty._job_start(kind text, params jsonb, batch_size integer)
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

CREATE OR REPLACE FUNCTION loyalty._job_batch(kind text, params jsonb, after uuid, batch_size integer,
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
