-- audit (issue 13): policy_set, unchanged since 1.1 otherwise, records its
-- change (loyalty._audit_change); the body is that of src/sql/02_policy.sql.
-- field_policy_set records its change too: 41_privacy_policy.sql re-creates
-- it (with the privacy area's widening rule).  retention_purge records its
-- change: the body of src/sql/41_privacy.sql.  The batch jobs' records
-- (loyalty._job_start, one per job, named after its procedure) come with
-- the job objects' last form, in 60_segment_jobs.sql.
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
