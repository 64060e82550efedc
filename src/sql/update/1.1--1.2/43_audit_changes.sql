-- audit (issue 13): policy_set, unchanged since 1.1 otherwise, records its
-- change (loyalty._audit_change); the body is that of src/sql/02_policy.sql.
-- field_policy_set records its change too: 41_privacy_policy.sql re-creates
-- it (with the privacy area's widening rule).  retention_purge and the batch
-- jobs (loyalty._job_start, one record per job, named after its procedure)
-- record theirs: bodies of src/sql/41_privacy.sql and src/sql/60_job.sql.
-- views_regenerate, the store_* calls (loyalty._outbox_append) and
-- job_schedule/job_unschedule are re-created by later fragments (46, 50, 60),
-- which carry their change records.

CREATE OR REPLACE FUNCTION loyalty.policy_set(
    document text, effective_from timestamptz DEFAULT now(), note text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id bigint;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF document IS NULL OR effective_from IS NULL THEN
        RAISE EXCEPTION 'policy document and effective_from must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF EXISTS (SELECT 1 FROM loyalty.policy p WHERE p.effective_from = policy_set.effective_from) THEN
        RAISE EXCEPTION 'a policy version already takes effect at %', effective_from
            USING ERRCODE = 'unique_violation',
                  HINT = 'Choose another effective_from time.';
    END IF;
    INSERT INTO loyalty.policy (document, effective_from, note)
        VALUES (policy_set.document, policy_set.effective_from, policy_set.note)
        RETURNING policy_id INTO id;
    PERFORM loyalty._audit_change(NULL, 'policy_set', 'loyalty',
        pg_catalog.jsonb_build_object('policy_id', id, 'effective_from', effective_from, 'note', note));
    RETURN id;
END
$$;

CREATE OR REPLACE FUNCTION loyalty.retention_purge(dry_run boolean DEFAULT true,
    inactive_for interval DEFAULT '3 years', retired_for interval DEFAULT '1 year')
    RETURNS TABLE (action text, rows bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    victims uuid[];
    n bigint;
    v uuid;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF dry_run IS NULL OR inactive_for IS NULL OR retired_for IS NULL THEN
        RAISE EXCEPTION 'dry_run, inactive_for and retired_for must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF inactive_for < interval '1 year' OR retired_for < interval '0' THEN
        RAISE EXCEPTION 'retention periods are too short'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Members are kept at least one year after their last activity.';
    END IF;
    SELECT count(*) INTO n FROM loyalty.member_preference p
     WHERE p.retired_at < now() - retired_for;
    action := 'delete_retired_preferences'; rows := n;
    RETURN NEXT;
    SELECT coalesce(array_agg(m.member_id), '{}') INTO victims FROM loyalty.member m
     WHERE m.status <> 'erased' AND m.enrolled_at < now() - inactive_for
       AND NOT EXISTS (SELECT 1 FROM loyalty.stay s
                        WHERE s.member_id = m.member_id AND s.check_out >= (now() - inactive_for)::date);
    action := 'erase_inactive_members'; rows := cardinality(victims);
    RETURN NEXT;
    IF NOT dry_run THEN
        DELETE FROM loyalty.member_preference p WHERE p.retired_at < now() - retired_for;
        FOREACH v IN ARRAY victims LOOP
            PERFORM loyalty._member_erase(v, 'retention: inactive for ' || inactive_for::text);
        END LOOP;
        PERFORM loyalty._audit_change(NULL, 'retention_purge', 'privacy',
            pg_catalog.jsonb_build_object('inactive_for', inactive_for, 'retired_for', retired_for,
                                          'members_erased', cardinality(victims)));
    END IF;
END
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
                                             ELSE ARRAY['crm', 'dba'] END);
    IF kind IS NULL OR loyalty._job_lock_key(kind) IS NULL THEN
        RAISE EXCEPTION 'unknown job kind "%"', kind USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Kinds are requalify, downgrade, expire, activate, retention and erase.';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 OR batch_size > 100000 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 100000'
            USING ERRCODE = CASE WHEN batch_size IS NULL THEN 'null_value_not_allowed'
                                 ELSE 'invalid_parameter_value' END,
                  DETAIL = format('The batch size given was %s.', coalesce(batch_size::text, 'null'));
    END IF;
    IF kind IN ('requalify', 'downgrade', 'expire', 'activate', 'retention') THEN
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

    n := CASE kind
        WHEN 'requalify' THEN (SELECT count(*) FROM loyalty.member m WHERE m.status = 'active')
        WHEN 'downgrade' THEN (SELECT count(*) FROM loyalty.member m WHERE m.status = 'active')
        WHEN 'expire' THEN loyalty._expire_points_count(as_of)
        WHEN 'activate' THEN loyalty._activate_due_count(as_of)
        WHEN 'retention' THEN loyalty._retention_purge_count(as_of, (params->>'inactive_for')::interval)
        WHEN 'erase' THEN (SELECT count(DISTINCT v) FROM unnest(ids) v)
    END;
    INSERT INTO loyalty.job (kind, params, batch_size, total)
    VALUES (kind, params, batch_size, n)
    RETURNING job.job_id INTO id;
    -- the batch job's change record, named after its API procedure
    PERFORM loyalty._audit_change(NULL,
        CASE kind WHEN 'requalify' THEN 'tier_requalify' WHEN 'downgrade' THEN 'tier_downgrade_apply'
                  WHEN 'expire' THEN 'points_expire_batch' WHEN 'activate' THEN 'points_activate_due_batch'
                  WHEN 'retention' THEN 'retention_purge_batch' ELSE 'member_erase_batch' END,
        CASE WHEN kind IN ('retention', 'erase') THEN 'privacy' ELSE 'loyalty' END,
        pg_catalog.jsonb_build_object('job_id', id, 'params', params, 'total', n));
    RETURN id;
END
$$;
