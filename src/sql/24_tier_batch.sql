-- Tier batches: downgrade preview and apply, requalification of every
-- member with progress (docs/tiers.md, "Batches").

CREATE FUNCTION loyalty._tier_decide(member_id uuid, at timestamptz,
    OUT action text, OUT new_tier text, OUT new_valid_until timestamptz, OUT reason text)
    RETURNS record
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'loyalty_tier_decide';

CREATE FUNCTION loyalty._tier_requalify_batch(after uuid, batch_size integer,
    at timestamptz, expired_only boolean,
    OUT last_member uuid, OUT processed integer, OUT changed integer)
    RETURNS record
    LANGUAGE c VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_tier_requalify_batch';

CREATE FUNCTION loyalty.tier_downgrade_preview(at timestamptz DEFAULT now())
    RETURNS TABLE (member_id uuid, card_no text, old_tier text, new_tier text,
                   old_valid_until timestamptz, new_valid_until timestamptz,
                   action text, reason text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF at IS NULL THEN
        RAISE EXCEPTION 'at must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN QUERY
    SELECT m.member_id, m.card_no, m.tier, d.new_tier, m.tier_valid_until, d.new_valid_until,
           d.action, d.reason
      FROM loyalty.member m, LATERAL loyalty._tier_decide(m.member_id, tier_downgrade_preview.at) d
     WHERE m.status = 'active' AND m.tier_valid_until <= tier_downgrade_preview.at
       AND d.action <> 'keep'
     ORDER BY m.card_no;
END
$$;
COMMENT ON FUNCTION loyalty.tier_downgrade_preview(timestamptz) IS
    'Who the downgrade batch would change at a time, to what, and why; changes nothing';

-- Job bookkeeping, each call in the procedure's current transaction.
CREATE FUNCTION loyalty._tier_job(job_id uuid, kind text, at timestamptz,
    done bigint, changed bigint, finished boolean)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id uuid := job_id;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF id IS NULL THEN
        INSERT INTO loyalty.tier_job (kind, as_of, members_total)
        VALUES (kind, at, (SELECT count(*) FROM loyalty.member m WHERE m.status = 'active'))
        RETURNING tier_job.job_id INTO id;
    ELSE
        UPDATE loyalty.tier_job j
           SET members_done = j.members_done + done,
               members_changed = j.members_changed + changed,
               updated_at = clock_timestamp(),
               state = CASE WHEN finished THEN 'done' ELSE j.state END,
               finished_at = CASE WHEN finished THEN clock_timestamp() END
         WHERE j.job_id = id;
    END IF;
    RETURN id;
END
$$;

-- A procedure (not SECURITY DEFINER: those cannot commit) that commits
-- after every batch, so that progress is visible and locks are short.
CREATE PROCEDURE loyalty.tier_requalify(at timestamptz DEFAULT NULL,
    batch_size integer DEFAULT 5000, expired_only boolean DEFAULT false)
    LANGUAGE plpgsql
AS $$
DECLARE
    as_of timestamptz := coalesce(at, now());
    job uuid;
    last uuid := '00000000-0000-0000-0000-000000000000';
    b record;
BEGIN
    job := loyalty._tier_job(NULL, CASE WHEN expired_only THEN 'downgrade' ELSE 'requalify' END,
                             as_of, 0, 0, false);
    COMMIT;
    LOOP
        b := loyalty._tier_requalify_batch(last, batch_size, as_of, expired_only);
        EXIT WHEN b.processed = 0;
        PERFORM loyalty._tier_job(job, NULL, NULL, b.processed, b.changed, false);
        COMMIT;
        last := b.last_member;
    END LOOP;
    PERFORM loyalty._tier_job(job, NULL, NULL, 0, 0, true);
    COMMIT;
END
$$;
COMMENT ON PROCEDURE loyalty.tier_requalify(timestamptz, integer, boolean) IS
    'Requalify every member (upgrades, extensions, downgrades of ended validity), one committed batch at a time';

CREATE PROCEDURE loyalty.tier_downgrade_apply(at timestamptz DEFAULT NULL,
    batch_size integer DEFAULT 5000)
    LANGUAGE plpgsql
AS $$
BEGIN
    CALL loyalty.tier_requalify(at, batch_size, true);
END
$$;
COMMENT ON PROCEDURE loyalty.tier_downgrade_apply(timestamptz, integer) IS
    'Apply the period-end downgrades that loyalty.tier_downgrade_preview() lists';

CREATE VIEW loyalty.tier_job_progress WITH (security_barrier) AS
SELECT j.job_id, j.kind, j.state, j.as_of, j.members_done, j.members_total,
       round(100.0 * j.members_done / greatest(j.members_total, 1), 1) AS percent,
       j.members_changed, j.started_at, j.updated_at, j.finished_at,
       round(j.members_done / greatest(extract(epoch FROM j.updated_at - j.started_at), 0.001)::numeric)
           AS members_per_second,
       CASE WHEN j.state = 'running' AND j.members_done > 0
            THEN (j.updated_at - j.started_at) * ((j.members_total - j.members_done)::float8 / j.members_done)
       END AS eta,
       j.started_by
  FROM loyalty.tier_job j;
COMMENT ON VIEW loyalty.tier_job_progress IS 'Progress of tier batch jobs, updated after every committed batch';

REVOKE ALL ON FUNCTION loyalty._tier_decide(uuid, timestamptz),
    loyalty._tier_requalify_batch(uuid, integer, timestamptz, boolean),
    loyalty.tier_downgrade_preview(timestamptz),
    loyalty._tier_job(uuid, text, timestamptz, bigint, bigint, boolean) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.tier_requalify(timestamptz, integer, boolean),
    loyalty.tier_downgrade_apply(timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON loyalty.tier_job_progress FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._tier_requalify_batch(uuid, integer, timestamptz, boolean),
    loyalty.tier_downgrade_preview(timestamptz),
    loyalty._tier_job(uuid, text, timestamptz, bigint, bigint, boolean) TO loyalty_crm, loyalty_dba;
GRANT EXECUTE ON PROCEDURE loyalty.tier_requalify(timestamptz, integer, boolean),
    loyalty.tier_downgrade_apply(timestamptz, integer) TO loyalty_crm, loyalty_dba;
GRANT SELECT ON loyalty.tier_job_progress TO loyalty_crm, loyalty_dba;
