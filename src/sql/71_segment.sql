-- Segments (docs/segments.md, issue 16 item 2): named, versioned
-- definitions over scores, tiers, tags, preferences, stays (store, brand),
-- consents and special dates; membership materialised per run by a
-- committed batch job (loyalty.segment_refresh) over the latest finished
-- score run, and queryable as of a run; sizes per store and brand for BI.

-- One row per version of a segment definition; a new definition of a code
-- is its next version, and runs evaluate the latest version of each code.
CREATE TABLE loyalty.segment_def (
    segment_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code            text NOT NULL
        CONSTRAINT segment_def_code_format CHECK (code ~ '^[a-z][a-z0-9_]{0,31}$'),
    version         integer NOT NULL CONSTRAINT segment_def_version_positive CHECK (version > 0),
    name            text NOT NULL
        CONSTRAINT segment_def_name_length CHECK (length(name) BETWEEN 1 AND 200),
    definition      jsonb NOT NULL,
    idempotency_key text NOT NULL
        CONSTRAINT segment_def_idempotency_key_key UNIQUE
        CONSTRAINT segment_def_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      name NOT NULL DEFAULT session_user,
    CONSTRAINT segment_def_code_version_key UNIQUE (code, version)
);
COMMENT ON TABLE loyalty.segment_def IS 'Segment definitions, one row per version of a named segment';
SELECT pg_catalog.pg_extension_config_dump('loyalty.segment_def', '');

-- Membership of every segment in every segment run.  run_id is a
-- loyalty.job (kind segment) and segment_id a loyalty.segment_def, without
-- foreign keys: the rows are written in bulk by _segment_batch for its own
-- running run and the definitions it read, and per-row key checks would
-- double the cost of the write.
CREATE TABLE loyalty.segment_member (
    run_id     uuid NOT NULL,
    segment_id uuid NOT NULL,
    member_id  uuid NOT NULL,
    PRIMARY KEY (run_id, segment_id, member_id)
);
COMMENT ON TABLE loyalty.segment_member IS 'Members of each segment in each segment run';
CREATE INDEX segment_member_segment_idx ON loyalty.segment_member (segment_id, run_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.segment_member', '');

-- loyalty._segment_def_check(definition): error unless the definition is
-- an object of known conditions with values of the right type.
CREATE FUNCTION loyalty._segment_def_check(definition jsonb) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    t text;
    want text;
BEGIN
    IF definition IS NULL OR jsonb_typeof(definition) <> 'object' THEN
        RAISE EXCEPTION 'a segment definition must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR k IN SELECT jsonb_object_keys(definition) LOOP
        t := jsonb_typeof(definition -> k);
        want := CASE
            WHEN k IN ('value_levels', 'tiers', 'tags', 'stayed_at', 'brands', 'home_stores', 'consents') THEN 'array'
            WHEN k IN ('churn_warning', 'potential_frequent', 'birthday_month', 'anniversary_month') THEN 'boolean'
            WHEN k IN ('r_min', 'f_min', 'm_min', 'nights_min', 'new_brand_days') THEN 'number'
            WHEN k = 'preference' THEN 'object'
        END;
        IF want IS NULL THEN
            RAISE EXCEPTION 'unknown segment condition "%"', k USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Conditions are value_levels, churn_warning, potential_frequent, r_min, f_min, m_min, nights_min, tiers, tags, preference, stayed_at, brands, new_brand_days, home_stores, consents, birthday_month and anniversary_month.';
        END IF;
        IF t <> want THEN
            RAISE EXCEPTION 'segment condition "%" must be a JSON %', k, want
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF want = 'array' AND (jsonb_array_length(definition -> k) = 0
            OR EXISTS (SELECT 1 FROM jsonb_array_elements(definition -> k) e WHERE jsonb_typeof(e) <> 'string')) THEN
            RAISE EXCEPTION 'segment condition "%" must be a non-empty list of strings', k
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF want = 'number' AND k IN ('nights_min', 'new_brand_days')
           AND ((definition ->> k)::numeric NOT BETWEEN 1 AND 3650 OR (definition ->> k)::numeric % 1 <> 0) THEN
            RAISE EXCEPTION 'segment condition "%" must be a whole number from 1 to 3650', k
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF want = 'number' AND k IN ('r_min', 'f_min', 'm_min')
           AND (definition ->> k)::numeric NOT IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10) THEN
            RAISE EXCEPTION 'segment condition "%" must be a whole number from 1 to 10', k
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    IF definition ? 'value_levels' AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(definition -> 'value_levels') v
                                                WHERE v NOT IN ('high', 'medium', 'low')) THEN
        RAISE EXCEPTION 'value levels are high, medium and low' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF definition ? 'consents' AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(definition -> 'consents') v
                                            WHERE v NOT IN ('marketing_email', 'marketing_sms', 'profiling', 'cross_border', 'third_party')) THEN
        RAISE EXCEPTION 'unknown consent purpose in a segment definition' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Purposes are marketing_email, marketing_sms, profiling, cross_border and third_party.';
    END IF;
    IF definition ? 'preference' AND (jsonb_typeof(definition -> 'preference' -> 'category') IS DISTINCT FROM 'string'
        OR EXISTS (SELECT 1 FROM jsonb_object_keys(definition -> 'preference') x WHERE x NOT IN ('category', 'value'))) THEN
        RAISE EXCEPTION 'segment condition "preference" must be {"category": ..., "value": ...} (value optional)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- loyalty.segment_define(idempotency_key, code, name, definition): the
-- next version of a segment.  A retry with the same key and arguments
-- returns the first answer.
CREATE FUNCTION loyalty.segment_define(idempotency_key text, code text, name text,
    definition jsonb, OUT segment_id uuid, OUT version integer, OUT replayed boolean)
    RETURNS record
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    prior loyalty.segment_def;
BEGIN
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    IF code IS NULL OR name IS NULL THEN
        RAISE EXCEPTION 'code and name must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF code !~ '^[a-z][a-z0-9_]{0,31}$' THEN
        RAISE EXCEPTION 'invalid segment code' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A code is 1 to 32 lowercase letters, digits and underscores, starting with a letter.';
    END IF;
    IF length(name) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'name must be 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM loyalty._segment_def_check(definition);
    -- one definer of a code at a time, so versions never collide
    PERFORM pg_catalog.pg_advisory_xact_lock(5000025, 72);
    SELECT * INTO prior FROM loyalty.segment_def d WHERE d.idempotency_key = segment_define.idempotency_key;
    IF FOUND THEN
        IF prior.code = segment_define.code AND prior.name = segment_define.name
           AND prior.definition = segment_define.definition THEN
            segment_id := prior.segment_id;
            version := prior.version;
            replayed := true;
            RETURN;
        END IF;
        RAISE EXCEPTION 'idempotency_key was already used with other arguments'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO loyalty.segment_def (code, version, name, definition, idempotency_key)
    VALUES (code, coalesce((SELECT max(d.version) FROM loyalty.segment_def d WHERE d.code = segment_define.code), 0) + 1,
            name, definition, idempotency_key)
    RETURNING segment_def.segment_id, segment_def.version INTO segment_id, version;
    replayed := false;
    PERFORM loyalty._audit_change(NULL, 'segment_define', 'marketing',
        jsonb_build_object('segment', code, 'version', version));
END
$$;
COMMENT ON FUNCTION loyalty.segment_define(text, text, text, jsonb) IS
    'Define (the next version of) a named segment over scores, tiers, tags, preferences, stays, consents and special dates; idempotent';

-- The latest version of every segment.
CREATE VIEW loyalty.segments WITH (security_barrier) AS
SELECT DISTINCT ON (d.code) d.segment_id, d.code, d.version, d.name, d.definition, d.created_at, d.created_by
  FROM loyalty.segment_def d
 ORDER BY d.code, d.version DESC;
COMMENT ON VIEW loyalty.segments IS 'The latest version of every segment definition';

-- loyalty._segment_batch(run_id, after, batch_size): the members of the
-- next batch_size segments (by segment_id after a key), each evaluated in
-- one set-based statement over the run's score run (its job's score_job).
CREATE FUNCTION loyalty._segment_batch(run_id uuid, after uuid, batch_size integer,
    OUT last_key uuid, OUT processed integer, OUT changed integer)
    RETURNS record
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    d record;
    def jsonb;
    n bigint;
    as_of_date date;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    SELECT j.job_id AS run_id, (j.params->>'as_of')::timestamptz AS as_of,
           (j.params->>'score_job')::uuid AS score_run INTO r
      FROM loyalty.job j
     WHERE j.job_id = _segment_batch.run_id AND j.kind = 'segment' AND j.state = 'running';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'segment run % is not running', run_id USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    as_of_date := (r.as_of AT TIME ZONE 'UTC')::date;
    processed := 0;
    changed := 0;
    FOR d IN SELECT s.segment_id, s.definition FROM loyalty.segments s
              WHERE s.segment_id > after ORDER BY s.segment_id LIMIT batch_size LOOP
        IF r.score_run IS NULL THEN
            RAISE EXCEPTION 'no finished score run at or before %', r.as_of
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Run loyalty.score_refresh first.';
        END IF;
        def := d.definition;
        INSERT INTO loyalty.segment_member (run_id, segment_id, member_id)
        SELECT r.run_id, d.segment_id, s.member_id
          FROM loyalty.member_score s
          JOIN loyalty.member m ON m.member_id = s.member_id
          JOIN loyalty.store hs ON hs.store_code = m.home_store
          LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id
         WHERE s.run_id = r.score_run AND m.status = 'active'
           AND loyalty._segment_consent(s.member_id, 'profiling')
           AND (NOT def ? 'value_levels' OR s.value_level = ANY (ARRAY(SELECT jsonb_array_elements_text(def -> 'value_levels'))))
           AND (NOT def ? 'churn_warning' OR s.churn_warning = (def ->> 'churn_warning')::boolean)
           AND (NOT def ? 'potential_frequent' OR s.potential_frequent = (def ->> 'potential_frequent')::boolean)
           AND (NOT def ? 'r_min' OR s.r >= (def ->> 'r_min')::int)
           AND (NOT def ? 'f_min' OR s.f >= (def ->> 'f_min')::int)
           AND (NOT def ? 'm_min' OR s.m >= (def ->> 'm_min')::int)
           -- N nights: nights of the stays in the score run's window
           AND (NOT def ? 'nights_min' OR s.nights >= (def ->> 'nights_min')::int)
           AND (NOT def ? 'tiers' OR m.tier = ANY (ARRAY(SELECT jsonb_array_elements_text(def -> 'tiers'))))
           AND (NOT def ? 'home_stores' OR m.home_store = ANY (ARRAY(SELECT jsonb_array_elements_text(def -> 'home_stores'))))
           AND (NOT def ? 'tags' OR EXISTS (
                    SELECT 1 FROM loyalty.member_tag t
                     WHERE t.member_id = m.member_id AND t.retired_at IS NULL
                       AND t.code = ANY (ARRAY(SELECT jsonb_array_elements_text(def -> 'tags')))))
           AND (NOT def ? 'preference' OR EXISTS (
                    SELECT 1 FROM loyalty.member_preference x
                     WHERE x.member_id = m.member_id AND x.retired_at IS NULL
                       AND x.category = def -> 'preference' ->> 'category'
                       AND (NOT def -> 'preference' ? 'value' OR x.value = def -> 'preference' ->> 'value')))
           AND (NOT def ? 'stayed_at' OR EXISTS (
                    SELECT 1 FROM loyalty.stay st
                     WHERE st.member_id = m.member_id AND st.status <> 'cancelled' AND st.check_in <= as_of_date
                       AND st.store_code = ANY (ARRAY(SELECT jsonb_array_elements_text(def -> 'stayed_at')))))
           AND (NOT def ? 'brands' OR EXISTS (
                    SELECT 1 FROM loyalty.stay st JOIN loyalty.store so ON so.store_code = st.store_code
                     WHERE st.member_id = m.member_id AND st.status <> 'cancelled' AND st.check_in <= as_of_date
                       AND so.brand = ANY (ARRAY(SELECT jsonb_array_elements_text(def -> 'brands')))))
           -- first stay at a new brand: the member's first stay at some
           -- brand was checked in within the last N days (up to as_of), after
           -- an earlier stay at another brand
           AND (NOT def ? 'new_brand_days' OR EXISTS (
                    SELECT 1
                      FROM (SELECT min(st.check_in) AS first_in
                              FROM loyalty.stay st JOIN loyalty.store so ON so.store_code = st.store_code
                             WHERE st.member_id = m.member_id AND st.status <> 'cancelled'
                               AND st.check_in <= as_of_date
                             GROUP BY so.brand) b
                     WHERE b.first_in > as_of_date - (def ->> 'new_brand_days')::int
                       AND b.first_in > (SELECT min(st.check_in) FROM loyalty.stay st
                                          WHERE st.member_id = m.member_id AND st.status <> 'cancelled')))
           AND (NOT def ? 'consents' OR NOT EXISTS (
                    SELECT 1 FROM jsonb_array_elements_text(def -> 'consents') c
                     WHERE NOT loyalty._segment_consent(m.member_id, c)))
           AND (NOT def ? 'birthday_month' OR
                (p.birth_date IS NOT NULL AND extract(month FROM p.birth_date)
                    = extract(month FROM r.as_of AT TIME ZONE coalesce(m.time_zone, hs.time_zone)))
                = (def ->> 'birthday_month')::boolean)
           AND (NOT def ? 'anniversary_month' OR
                (extract(month FROM m.enrolled_at AT TIME ZONE coalesce(m.time_zone, hs.time_zone))
                    = extract(month FROM r.as_of AT TIME ZONE coalesce(m.time_zone, hs.time_zone))
                 AND m.enrolled_at < r.as_of - interval '11 months')
                = (def ->> 'anniversary_month')::boolean);
        GET DIAGNOSTICS n = ROW_COUNT;
        changed := changed + n;
        processed := processed + 1;
        last_key := d.segment_id;
    END LOOP;
END
$$;

-- loyalty.segment_refresh(as_of, batch_size): materialise the members of
-- every segment (latest versions) as of a time (not in the future), over
-- the latest score run at or before it; one committed batch of segments at
-- a time.
CREATE PROCEDURE loyalty.segment_refresh(as_of timestamptz DEFAULT NULL, batch_size integer DEFAULT 10)
    LANGUAGE plpgsql
AS $$
BEGIN
    CALL loyalty._job_run('segment', pg_catalog.jsonb_build_object('as_of', coalesce(as_of, pg_catalog.now())),
        batch_size);
END
$$;
COMMENT ON PROCEDURE loyalty.segment_refresh(timestamptz, integer) IS
    'Materialise the members of every segment as of a time over the latest score run, in committed batches of segments';

-- loyalty._segment_run_for(code, as_of): the latest finished segment run
-- at or before as_of that evaluated the segment (a run evaluates the latest
-- version of every segment defined when it started); NULL if none.
CREATE FUNCTION loyalty._segment_run_for(code text, as_of timestamptz) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.job_id FROM loyalty.job r
     WHERE r.kind = 'segment' AND r.state = 'done' AND (r.params->>'as_of')::timestamptz <= $2
       AND r.started_at >= (SELECT min(d.created_at) FROM loyalty.segment_def d WHERE d.code = $1)
     ORDER BY (r.params->>'as_of')::timestamptz DESC, r.started_at DESC LIMIT 1
$$;

-- loyalty.segment_members(code, as_of): the members of a segment in the
-- latest finished segment run at or before as_of that evaluated it.
CREATE FUNCTION loyalty.segment_members(code text, as_of timestamptz DEFAULT now())
    RETURNS TABLE (member_id uuid, run_id uuid, run_as_of timestamptz, version integer)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    run record;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    IF code IS NULL OR as_of IS NULL THEN
        RAISE EXCEPTION 'code and as_of must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.segment_def d WHERE d.code = segment_members.code) THEN
        RAISE EXCEPTION 'segment "%" not found', code USING ERRCODE = 'no_data_found';
    END IF;
    SELECT r.job_id AS run_id, (r.params->>'as_of')::timestamptz AS as_of INTO run FROM loyalty.job r
     WHERE r.job_id = loyalty._segment_run_for(segment_members.code, segment_members.as_of);
    RETURN QUERY
        SELECT sm.member_id, run.run_id, run.as_of, d.version
          FROM loyalty.segment_member sm
          JOIN loyalty.segment_def d ON d.segment_id = sm.segment_id
          JOIN loyalty.member m ON m.member_id = sm.member_id
         WHERE sm.run_id = run.run_id AND d.code = segment_members.code
           AND m.status <> 'erased' AND loyalty._segment_consent(sm.member_id, 'profiling')
         ORDER BY sm.member_id;
END
$$;
COMMENT ON FUNCTION loyalty.segment_members(text, timestamptz) IS
    'Members of a segment as of a time: the latest finished segment run at or before it; profiling withdrawals left out';

-- BI: segment sizes per run, home store and brand; groups smaller than
-- bi_min_group_size() are suppressed.
CREATE VIEW loyalty.bi_segment_sizes WITH (security_barrier) AS
SELECT sm.run_id, (r.params->>'as_of')::timestamptz AS as_of, d.code AS segment, d.version,
       m.home_store, hs.brand, count(*) AS members
  FROM loyalty.segment_member sm
  JOIN loyalty.job r ON r.job_id = sm.run_id AND r.kind = 'segment' AND r.state = 'done'
  JOIN loyalty.segment_def d ON d.segment_id = sm.segment_id
  JOIN loyalty.member m ON m.member_id = sm.member_id
  JOIN loyalty.store hs ON hs.store_code = m.home_store
 WHERE m.status <> 'erased' AND loyalty._segment_consent(sm.member_id, 'profiling')
 GROUP BY sm.run_id, r.params, d.code, d.version, m.home_store, hs.brand
HAVING count(*) >= loyalty.bi_min_group_size();
COMMENT ON VIEW loyalty.bi_segment_sizes IS
    'Segment sizes per run, home store and brand; groups smaller than bi_min_group_size() suppressed';

ALTER VIEW loyalty.segments OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.bi_segment_sizes OWNER TO loyalty_view_owner;
GRANT SELECT ON loyalty.segment_def, loyalty.segment_member TO loyalty_view_owner;
REVOKE ALL ON loyalty.segment_def, loyalty.segment_member, loyalty.segments,
    loyalty.bi_segment_sizes FROM PUBLIC;
GRANT SELECT ON loyalty.segments TO loyalty_crm, loyalty_marketing;
GRANT SELECT ON loyalty.bi_segment_sizes TO loyalty_bi, loyalty_crm, loyalty_marketing;
REVOKE ALL ON FUNCTION loyalty._segment_def_check(jsonb),
    loyalty.segment_define(text, text, text, jsonb),
    loyalty._segment_batch(uuid, uuid, integer), loyalty._segment_run_for(text, timestamptz),
    loyalty.segment_members(text, timestamptz) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.segment_refresh(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._segment_def_check(jsonb)
    TO loyalty_crm, loyalty_marketing, loyalty_frontdesk, loyalty_store_manager;
GRANT EXECUTE ON FUNCTION loyalty.segment_define(text, text, text, jsonb),
    loyalty.segment_members(text, timestamptz) TO loyalty_crm, loyalty_marketing;
GRANT EXECUTE ON FUNCTION loyalty._segment_batch(uuid, uuid, integer) TO loyalty_crm, loyalty_dba;
GRANT EXECUTE ON PROCEDURE loyalty.segment_refresh(timestamptz, integer) TO loyalty_crm, loyalty_dba;
