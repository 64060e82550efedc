-- Member scores (docs/segments.md, issue 16 item 1): recency, frequency,
-- monetary bins, customer value level, churn warning and potential
-- frequent guest screening, computed by a committed batch job per run and
-- kept per run, so that movement between levels and segments can be
-- reported.
--
-- Runs of the score and segment jobs are rows of loyalty.segment_run, with
-- the same progress columns as loyalty.job (src/sql/60_job.sql) and the
-- same shape of job: a procedure that commits after every batch, one job
-- of a kind at a time (a session advisory lock, 5000025 / 70 + kind), a
-- failed batch recorded and raised again.  The computation of one batch is
-- C (src/segment_score.c); the bins over the whole population are one
-- set-based statement at the end of the run.

-- loyalty._segment_consent(member_id, purpose): the one consent check of
-- scores, segments, audiences and their BI views (docs/segments.md,
-- "Consent").  Marketing channels are opt-in (the latest decision must be
-- a grant); profiling is opt-out (allowed unless the latest decision is a
-- withdrawal).  Erased members have no consent rows and are excluded by
-- their status wherever this is used.  One function, so that the privacy
-- area's consent model can replace it in one place.
CREATE FUNCTION loyalty._segment_consent(member_id uuid, purpose text)
    RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT c.granted FROM loyalty.member_consent c
                      WHERE c.member_id = $1 AND c.purpose = $2
                      ORDER BY c.recorded_at DESC, c.consent_id DESC LIMIT 1),
                    $2 = 'profiling')
$$;

REVOKE ALL ON FUNCTION loyalty._segment_consent(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._segment_consent(uuid, text)
    TO loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_view_owner;

CREATE TABLE loyalty.segment_run (
    run_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL
        CONSTRAINT segment_run_kind_valid CHECK (kind IN ('score', 'segment')),
    as_of        timestamptz NOT NULL,
    params       jsonb NOT NULL DEFAULT '{}',
    score_run    bigint REFERENCES loyalty.segment_run,  -- a segment run: the scores it used
    state        text NOT NULL DEFAULT 'running'
        CONSTRAINT segment_run_state_valid CHECK (state IN ('running', 'done', 'failed', 'abandoned')),
    batch_size   integer NOT NULL CONSTRAINT segment_run_batch_size_valid CHECK (batch_size > 0),
    done         bigint NOT NULL DEFAULT 0,
    total        bigint NOT NULL DEFAULT 0,
    changed      bigint NOT NULL DEFAULT 0,
    started_by   name NOT NULL DEFAULT session_user,
    backend_pid  integer DEFAULT pg_backend_pid(),
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz,
    error        text,
    CONSTRAINT segment_run_finished_when_not_running CHECK ((state = 'running') = (finished_at IS NULL))
);
COMMENT ON TABLE loyalty.segment_run IS 'Runs of the score and segment jobs, with their progress';
CREATE INDEX segment_run_kind_idx ON loyalty.segment_run (kind, run_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.segment_run', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.segment_run_run_id_seq', '');

-- The measures of a running score run, one row per scored member, written
-- by the batches (src/segment_score.c) and moved into loyalty.member_score
-- with their bins by loyalty._score_finish.  Unlogged and without indexes:
-- a run that does not finish is abandoned, and the next score run clears
-- the table (one score run at a time).
CREATE UNLOGGED TABLE loyalty.score_stage (
    run_id              bigint NOT NULL,
    member_id           uuid NOT NULL,
    stays               integer NOT NULL,
    last_stay           date,
    recency_days        integer,
    frequency           integer NOT NULL,
    nights              integer NOT NULL,
    monetary            numeric NOT NULL,
    realised_value      numeric NOT NULL,
    usual_interval_days numeric,
    recent_stays        integer NOT NULL,
    prior_stays         integer NOT NULL,
    churn_overdue       boolean NOT NULL,
    frequency_falling   boolean NOT NULL,
    churn_warning       boolean NOT NULL,
    potential_frequent  boolean NOT NULL
);
COMMENT ON TABLE loyalty.score_stage IS 'Measures of the running score run, before its bins (unlogged, cleared by each run)';
-- in the dump like every table of the extension (empty between runs)
SELECT pg_catalog.pg_extension_config_dump('loyalty.score_stage', '');

-- One row per member and score run.  run_id is a loyalty.segment_run, but
-- without a foreign key: the rows are written in bulk by _score_finish
-- for its own running run only, and a per-row key check would cost as
-- much as the rest of the write.
CREATE TABLE loyalty.member_score (
    run_id              bigint NOT NULL,
    member_id           uuid NOT NULL,
    stays               integer NOT NULL,      -- all stays up to as_of
    last_stay           date,                  -- latest check-out (NULL: never stayed)
    recency_days        integer,               -- days from last_stay to as_of
    frequency           integer NOT NULL,      -- stays in the window
    nights              integer NOT NULL,      -- nights in the window
    monetary            numeric NOT NULL,      -- revenue in the window
    realised_value      numeric NOT NULL,      -- revenue of all stays up to as_of
    usual_interval_days numeric,               -- mean days between check-ins (2+ stays)
    recent_stays        integer NOT NULL,      -- stays in the window's second half
    prior_stays         integer NOT NULL,      -- stays in the window's first half
    r                   smallint,
    f                   smallint,
    m                   smallint,
    value_level         text
        CONSTRAINT member_score_value_level_valid CHECK (value_level IN ('high', 'medium', 'low')),
    churn_overdue       boolean NOT NULL,
    frequency_falling   boolean NOT NULL,
    churn_warning       boolean NOT NULL,
    potential_frequent  boolean NOT NULL,
    PRIMARY KEY (run_id, member_id)
);
COMMENT ON TABLE loyalty.member_score IS 'Member scores per run: RFM bins, value level, churn warning, potential frequent guest';
CREATE INDEX member_score_member_idx ON loyalty.member_score (member_id, run_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_score', '');

-- loyalty._segment_run_lock(kind): the second key of the kind's session
-- advisory lock (the first is 5000025, as for loyalty.job).
CREATE FUNCTION loyalty._segment_run_lock(kind text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE $1 WHEN 'score' THEN 70 WHEN 'segment' THEN 71 END
$$;

-- loyalty._segment_run_start(kind, as_of, params, batch_size): check the
-- caller and the input, take the kind's lock, record the run with its
-- total.  Nothing is written when a check fails.
CREATE FUNCTION loyalty._segment_run_start(kind text, as_of timestamptz, params jsonb,
    batch_size integer)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id bigint;
    n bigint;
    p jsonb := coalesce(params, '{}');
    k text;
    scores bigint;
    pol jsonb;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF kind IS NULL OR loyalty._segment_run_lock(kind) IS NULL THEN
        RAISE EXCEPTION 'unknown run kind "%"', kind USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Kinds are score and segment.';
    END IF;
    IF as_of IS NULL OR NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite time' USING ERRCODE = 'datetime_field_overflow';
    END IF;
    IF as_of > pg_catalog.now() THEN
        RAISE EXCEPTION 'as_of must not be in the future'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('as_of %s is after the current time %s.', as_of, pg_catalog.now()),
                  HINT = 'A batch records what has happened; preview the future with a query instead.';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 OR batch_size > 100000 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 100000'
            USING ERRCODE = CASE WHEN batch_size IS NULL THEN 'null_value_not_allowed'
                                 ELSE 'invalid_parameter_value' END,
                  DETAIL = format('The batch size given was %s.', coalesce(batch_size::text, 'null'));
    END IF;
    IF jsonb_typeof(p) <> 'object' THEN
        RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR k IN SELECT jsonb_object_keys(p) LOOP
        IF k NOT IN ('bins', 'window_months', 'churn_factor', 'potential_stays', 'potential_days') THEN
            RAISE EXCEPTION 'unknown score parameter "%"', k USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Parameters are bins, window_months, churn_factor, potential_stays and potential_days.';
        END IF;
        IF jsonb_typeof(p -> k) <> 'number' THEN
            RAISE EXCEPTION 'score parameter "%" must be a number', k USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    p := jsonb_build_object('bins', 5, 'window_months', 12, 'churn_factor', 2,
                            'potential_stays', 2, 'potential_days', 180) || p;
    IF (p->>'bins')::numeric NOT IN (2, 3, 4, 5, 6, 7, 8, 9, 10)
       OR (p->>'window_months')::numeric NOT BETWEEN 2 AND 120
       OR (p->>'window_months')::numeric % 2 <> 0
       OR (p->>'churn_factor')::numeric NOT BETWEEN 1 AND 100
       OR (p->>'potential_stays')::numeric NOT IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)
       OR (p->>'potential_days')::numeric NOT BETWEEN 1 AND 3650
       OR (p->>'potential_days')::numeric % 1 <> 0 THEN
        RAISE EXCEPTION 'score parameters out of range' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'bins is 2 to 10, window_months an even number from 2 to 120, churn_factor 1 to 100, potential_stays 1 to 20, potential_days 1 to 3650.';
    END IF;
    IF kind = 'segment' THEN
        SELECT max(r.run_id) INTO scores FROM loyalty.segment_run r
         WHERE r.kind = 'score' AND r.state = 'done' AND r.as_of <= _segment_run_start.as_of;
    END IF;

    IF NOT pg_catalog.pg_try_advisory_lock(5000025, loyalty._segment_run_lock(kind)) THEN
        RAISE EXCEPTION 'a job of kind "%" is already running', kind
            USING ERRCODE = 'lock_not_available',
                  HINT = 'Watch it in loyalty.segment_run_progress and start again when it has finished.';
    END IF;
    UPDATE loyalty.segment_run r
       SET state = 'abandoned', finished_at = clock_timestamp(),
           error = 'its backend ended before the run finished'
     WHERE r.kind = _segment_run_start.kind AND r.state = 'running';

    IF kind = 'score' THEN
        pol := loyalty.policy_at(as_of);
        p := p || jsonb_build_object(
            'as_of_date', (as_of AT TIME ZONE 'UTC')::date,
            'window_start', ((as_of AT TIME ZONE 'UTC')::date
                             - make_interval(months => (p->>'window_months')::int))::date,
            'half_start', ((as_of AT TIME ZONE 'UTC')::date
                             - make_interval(months => (p->>'window_months')::int / 2))::date,
            'potential_start', (as_of AT TIME ZONE 'UTC')::date - (p->>'potential_days')::int,
            'base_tier', (SELECT t->>'code' FROM jsonb_array_elements(pol->'tiers') t
                           ORDER BY (t->>'rank')::int LIMIT 1));
        n := (SELECT count(*) FROM loyalty.member m WHERE m.status = 'active');
        -- what an unfinished earlier run left (one score run at a time: the lock is held)
        TRUNCATE loyalty.score_stage;
    ELSE
        n := (SELECT count(DISTINCT d.code) FROM loyalty.segment_def d);
    END IF;
    INSERT INTO loyalty.segment_run (kind, as_of, params, score_run, batch_size, total)
    VALUES (kind, as_of, p, scores, batch_size, n)
    RETURNING segment_run.run_id INTO id;
    -- the run's change record, named after its API procedure
    PERFORM loyalty._audit_change(NULL, kind || '_refresh', 'marketing',
        pg_catalog.jsonb_build_object('run_id', id, 'as_of', as_of, 'total', n));
    RETURN id;
END
$$;

-- loyalty._segment_run_step(run_id, processed, changed): one committed batch.
CREATE FUNCTION loyalty._segment_run_step(run_id bigint, processed bigint, changed bigint)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE loyalty.segment_run r
       SET done = r.done + processed, changed = r.changed + _segment_run_step.changed,
           updated_at = clock_timestamp()
     WHERE r.run_id = _segment_run_step.run_id AND r.state = 'running'
       AND r.backend_pid = pg_catalog.pg_backend_pid();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run % is not running in this session', run_id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;

-- loyalty._score_finish(run_id): the scores of a run with their bins over
-- its whole population, moved from loyalty.score_stage into
-- loyalty.member_score in one statement: a member's bin of a measure is 1 +
-- floor(bins * (rank - 1) / members), rank ascending with ties sharing the
-- lowest rank (so members with equal values share a bin, and members
-- without stays share the lowest); recency ranks the longest ago first.
-- The value level follows from r + f + m: high from 80% of the maximum,
-- medium from 50%, low below.
CREATE FUNCTION loyalty._score_finish(run_id bigint) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bins int;
    n bigint;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    SELECT (r.params->>'bins')::int INTO bins FROM loyalty.segment_run r
     WHERE r.run_id = _score_finish.run_id AND r.kind = 'score' AND r.state = 'running';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'score run % is not running', run_id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    INSERT INTO loyalty.member_score (run_id, member_id, stays, last_stay, recency_days, frequency,
        nights, monetary, realised_value, usual_interval_days, recent_stays, prior_stays, r, f, m,
        value_level, churn_overdue, frequency_falling, churn_warning, potential_frequent)
    SELECT x.run_id, x.member_id, x.stays, x.last_stay, x.recency_days, x.frequency, x.nights,
           x.monetary, x.realised_value, x.usual_interval_days, x.recent_stays, x.prior_stays,
           x.r, x.f, x.m,
           CASE WHEN x.r + x.f + x.m >= ceil(0.8 * 3 * bins) THEN 'high'
                WHEN x.r + x.f + x.m >= ceil(0.5 * 3 * bins) THEN 'medium'
                ELSE 'low' END,
           x.churn_overdue, x.frequency_falling, x.churn_warning, x.potential_frequent
      FROM (SELECT y.*,
                   (1 + floor(bins * (rank() OVER (ORDER BY y.recency_days DESC NULLS FIRST) - 1)
                              / count(*) OVER ()))::smallint AS r,
                   (1 + floor(bins * (rank() OVER (ORDER BY y.frequency) - 1) / count(*) OVER ()))::smallint AS f,
                   (1 + floor(bins * (rank() OVER (ORDER BY y.monetary) - 1) / count(*) OVER ()))::smallint AS m
              FROM loyalty.score_stage y WHERE y.run_id = _score_finish.run_id) x;
    GET DIAGNOSTICS n = ROW_COUNT;
    TRUNCATE loyalty.score_stage;
    RETURN n;
END
$$;

-- loyalty._segment_run_finish(run_id, error_state, error_message): the
-- end of a run, done (no error) or failed; releases the kind's lock.
CREATE FUNCTION loyalty._segment_run_finish(run_id bigint, error_state text, error_message text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
BEGIN
    UPDATE loyalty.segment_run r
       SET state = CASE WHEN error_state IS NULL THEN 'done' ELSE 'failed' END,
           error = CASE WHEN error_state IS NOT NULL THEN error_state || ': ' || error_message END,
           updated_at = clock_timestamp(), finished_at = clock_timestamp()
     WHERE r.run_id = _segment_run_finish.run_id AND r.state = 'running'
       AND r.backend_pid = pg_catalog.pg_backend_pid()
    RETURNING r.kind INTO k;
    IF k IS NOT NULL THEN
        PERFORM pg_catalog.pg_advisory_unlock(5000025, loyalty._segment_run_lock(k));
    END IF;
END
$$;

-- One batch of a score run (C, src/segment_score.c): the next batch_size
-- active members after a key, their stays read in one query, their scores
-- computed in C and written in one statement.
CREATE FUNCTION loyalty._score_batch(run_id bigint, after uuid, batch_size integer,
    OUT last_key uuid, OUT processed integer, OUT changed integer)
    RETURNS record
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_score_batch';

-- loyalty._segment_run_loop(kind, as_of, params, batch_size): the one loop
-- of the score and segment jobs.  A procedure without SECURITY DEFINER or
-- SET (those cannot commit); CALLed outside a transaction block, it
-- commits after each batch.
CREATE PROCEDURE loyalty._segment_run_loop(kind text, as_of timestamptz, params jsonb,
    batch_size integer)
    LANGUAGE plpgsql
AS $$
DECLARE
    run bigint;
    after uuid := '00000000-0000-0000-0000-000000000000';
    b record;
    failed boolean := false;
    st text;
    msg text;
    det text;
    hnt text;
BEGIN
    COMMIT;
    run := loyalty._segment_run_start(kind, as_of, params, batch_size);
    COMMIT;
    LOOP
        BEGIN
            IF kind = 'score' THEN
                b := loyalty._score_batch(run, after, batch_size);
            ELSE
                b := loyalty._segment_batch(run, after, batch_size);
            END IF;
            IF b.processed > 0 THEN
                PERFORM loyalty._segment_run_step(run, b.processed, b.changed);
            ELSIF kind = 'score' THEN
                PERFORM loyalty._score_finish(run);
            END IF;
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                    det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
            failed := true;
        END;
        IF failed THEN
            PERFORM loyalty._segment_run_finish(run, st, msg);
            COMMIT;
            PERFORM loyalty._job_raise(st, msg, det, hnt);
        END IF;
        EXIT WHEN b.processed = 0;
        COMMIT;
        after := b.last_key;
    END LOOP;
    PERFORM loyalty._segment_run_finish(run, NULL, NULL);
    COMMIT;
END
$$;

-- loyalty.score_refresh(as_of, batch_size, params): score every active
-- member as of a time (not in the future), one committed batch at a time.
CREATE PROCEDURE loyalty.score_refresh(as_of timestamptz DEFAULT NULL,
    batch_size integer DEFAULT 1000, params jsonb DEFAULT '{}')
    LANGUAGE plpgsql
AS $$
BEGIN
    CALL loyalty._segment_run_loop('score', coalesce(as_of, pg_catalog.now()), params, batch_size);
END
$$;
COMMENT ON PROCEDURE loyalty.score_refresh(timestamptz, integer, jsonb) IS
    'Score every active member (RFM bins, value level, churn warning, potential frequent guest) as of a time, in committed batches';

-- Progress of the score and segment runs (as loyalty.job_progress).
CREATE VIEW loyalty.segment_run_progress WITH (security_barrier) AS
SELECT r.run_id, r.kind, r.as_of,
       CASE WHEN r.state = 'running' AND NOT EXISTS (
                SELECT 1 FROM pg_catalog.pg_locks l
                 WHERE l.locktype = 'advisory' AND l.granted AND l.pid = r.backend_pid
                   AND l.classid = 5000025::oid AND l.objid = loyalty._segment_run_lock(r.kind)::oid
                   AND l.objsubid = 2)
            THEN 'abandoned' ELSE r.state END AS state,
       r.done, r.total,
       CASE WHEN r.state = 'done' THEN 100.0
            ELSE round(100.0 * least(r.done, r.total) / greatest(r.total, 1), 1) END AS percent,
       round(r.done / greatest(extract(epoch FROM r.updated_at - r.started_at), 0.001), 1) AS rate,
       r.changed, r.score_run, r.params, r.started_by, r.started_at, r.updated_at, r.finished_at, r.error
  FROM loyalty.segment_run r;
COMMENT ON VIEW loyalty.segment_run_progress IS
    'Every score and segment run with its progress (done, total, percent, rate), updated after every committed batch';

-- Scores of the members for HQ CRM and marketing: every finished run;
-- members who withdrew profiling consent since are left out.
CREATE VIEW loyalty.member_scores WITH (security_barrier) AS
SELECT s.run_id, r.as_of, s.member_id, s.stays, s.last_stay, s.recency_days, s.frequency,
       s.nights, s.monetary, s.realised_value, s.usual_interval_days, s.recent_stays,
       s.prior_stays, s.r, s.f, s.m, s.value_level, s.churn_overdue, s.frequency_falling,
       s.churn_warning, s.potential_frequent
  FROM loyalty.member_score s
  JOIN loyalty.segment_run r ON r.run_id = s.run_id AND r.state = 'done'
 WHERE loyalty._segment_consent(s.member_id, 'profiling');
COMMENT ON VIEW loyalty.member_scores IS
    'Member scores of every finished run (RFM, value level, churn warning, potential frequent guest); profiling withdrawals left out';

-- loyalty.score_movement(from_run, to_run): how many members moved from
-- one value level (and churn warning) to another between two runs.
CREATE FUNCTION loyalty.score_movement(from_run bigint, to_run bigint)
    RETURNS TABLE (from_level text, to_level text, from_churn_warning boolean,
                   to_churn_warning boolean, members bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing', 'bi']);
    IF from_run IS NULL OR to_run IS NULL THEN
        RAISE EXCEPTION 'from_run and to_run must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT count(*) FROM loyalty.segment_run r
         WHERE r.run_id IN (from_run, to_run) AND r.kind = 'score' AND r.state = 'done')
       <> (CASE WHEN from_run = to_run THEN 1 ELSE 2 END) THEN
        RAISE EXCEPTION 'score run not found' USING ERRCODE = 'no_data_found',
            DETAIL = 'Both runs must be finished score runs.';
    END IF;
    RETURN QUERY
        SELECT coalesce(a.value_level, 'unscored'), coalesce(b.value_level, 'unscored'),
               a.churn_warning, b.churn_warning, count(*)
          FROM (SELECT * FROM loyalty.member_score x WHERE x.run_id = from_run) a
          FULL JOIN (SELECT * FROM loyalty.member_score y WHERE y.run_id = to_run) b
            ON a.member_id = b.member_id
         WHERE loyalty._segment_consent(coalesce(a.member_id, b.member_id), 'profiling')
         GROUP BY 1, 2, 3, 4
         ORDER BY 1, 2, 3, 4;
END
$$;
COMMENT ON FUNCTION loyalty.score_movement(bigint, bigint) IS
    'Members per (value level, churn warning) in one score run and another: the movement between them';

-- BI: counts per run, home store, value level and churn warning; groups
-- smaller than bi_min_group_size() are suppressed.
CREATE VIEW loyalty.bi_scores WITH (security_barrier) AS
SELECT s.run_id, r.as_of, m.home_store, s.value_level, s.churn_warning, s.potential_frequent,
       count(*) AS members, round(avg(s.monetary), 2) AS avg_monetary,
       round(avg(s.frequency), 2) AS avg_frequency
  FROM loyalty.member_score s
  JOIN loyalty.segment_run r ON r.run_id = s.run_id AND r.state = 'done'
  JOIN loyalty.member m ON m.member_id = s.member_id
 WHERE m.status <> 'erased' AND loyalty._segment_consent(s.member_id, 'profiling')
 GROUP BY s.run_id, r.as_of, m.home_store, s.value_level, s.churn_warning, s.potential_frequent
HAVING count(*) >= loyalty.bi_min_group_size();
COMMENT ON VIEW loyalty.bi_scores IS
    'Member counts per score run, home store, value level, churn warning and potential frequent guest; small groups suppressed';

ALTER VIEW loyalty.segment_run_progress OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.member_scores OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.bi_scores OWNER TO loyalty_view_owner;
GRANT SELECT ON loyalty.segment_run, loyalty.member_score TO loyalty_view_owner;
REVOKE ALL ON loyalty.score_stage FROM PUBLIC;
REVOKE ALL ON loyalty.segment_run, loyalty.member_score, loyalty.segment_run_progress,
    loyalty.member_scores, loyalty.bi_scores FROM PUBLIC;
GRANT SELECT ON loyalty.segment_run_progress TO loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT SELECT ON loyalty.member_scores TO loyalty_crm, loyalty_marketing;
GRANT SELECT ON loyalty.bi_scores TO loyalty_bi, loyalty_crm, loyalty_marketing;
GRANT EXECUTE ON FUNCTION loyalty._segment_run_lock(text) TO loyalty_view_owner;
REVOKE ALL ON FUNCTION loyalty._segment_run_lock(text),
    loyalty._segment_run_start(text, timestamptz, jsonb, integer),
    loyalty._segment_run_step(bigint, bigint, bigint), loyalty._score_finish(bigint),
    loyalty._segment_run_finish(bigint, text, text),
    loyalty._score_batch(bigint, uuid, integer),
    loyalty.score_movement(bigint, bigint) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty._segment_run_loop(text, timestamptz, jsonb, integer),
    loyalty.score_refresh(timestamptz, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._segment_run_lock(text),
    loyalty._segment_run_start(text, timestamptz, jsonb, integer),
    loyalty._segment_run_step(bigint, bigint, bigint), loyalty._score_finish(bigint),
    loyalty._segment_run_finish(bigint, text, text),
    loyalty._score_batch(bigint, uuid, integer) TO loyalty_crm, loyalty_dba;
GRANT EXECUTE ON PROCEDURE loyalty._segment_run_loop(text, timestamptz, jsonb, integer),
    loyalty.score_refresh(timestamptz, integer, jsonb) TO loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.score_movement(bigint, bigint)
    TO loyalty_crm, loyalty_marketing, loyalty_bi;
