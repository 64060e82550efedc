-- Member scores (docs/segments.md, issue 16 item 1): recency, frequency,
-- monetary bins, customer value level, churn warning and potential
-- frequent guest screening, computed by a committed batch job per run and
-- kept per run, so that movement between levels and segments can be
-- reported.
--
-- Runs of the score and segment jobs are jobs of the job framework
-- (src/sql/60_job.sql): kinds score and segment of loyalty.job, run by
-- loyalty._job_run (a procedure that commits after every batch, one job of
-- a kind at a time, a failed batch recorded by _job_finish and raised
-- again), with their progress in loyalty.job_progress.  A run's id is its
-- job_id; its as_of and parameters are the job's params.  The computation
-- of one batch is C (src/segment_score.c); the bins over the whole
-- population are one set-based statement at the end of the run.

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

-- The measures of a running score run, one row per scored member, written
-- by the batches (src/segment_score.c) and moved into loyalty.member_score
-- with their bins by loyalty._score_finish.  Unlogged and without indexes:
-- a run that does not finish is abandoned, and the next score run clears
-- the table (one score run at a time).
CREATE UNLOGGED TABLE loyalty.score_stage (
    run_id              uuid NOT NULL,
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

-- One row per member and score run.  run_id is a loyalty.job (kind score), but
-- without a foreign key: the rows are written in bulk by _score_finish
-- for its own running run only, and a per-row key check would cost as
-- much as the rest of the write.
CREATE TABLE loyalty.member_score (
    run_id              uuid NOT NULL,
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

-- loyalty._segment_job_params(kind, as_of, params): the parameters of a
-- score or segment job, checked and completed, as loyalty._job_start
-- records them: as_of not in the future; for a score job the known score
-- parameters (numbers in range) with their defaults and the dates they
-- give; for a segment job the latest finished score job at or before as_of
-- (score_job; NULL if none: the first batch then fails).
CREATE FUNCTION loyalty._segment_job_params(kind text, as_of timestamptz, params jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p jsonb := coalesce(params, '{}');
    k text;
    pol jsonb;
BEGIN
    IF as_of > pg_catalog.now() THEN
        RAISE EXCEPTION 'as_of must not be in the future'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('as_of %s is after the current time %s.', as_of, pg_catalog.now()),
                  HINT = 'A batch records what has happened; preview the future with a query instead.';
    END IF;
    IF jsonb_typeof(p) <> 'object' THEN
        RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    p := p - 'as_of';
    IF kind = 'segment' THEN
        IF p <> '{}' THEN
            RAISE EXCEPTION 'a segment job takes no parameters' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN jsonb_build_object('as_of', as_of, 'score_job',
            (SELECT j.job_id FROM loyalty.job j
              WHERE j.kind = 'score' AND j.state = 'done' AND (j.params->>'as_of')::timestamptz <= as_of
              ORDER BY j.started_at DESC LIMIT 1));
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
    pol := loyalty.policy_at(as_of);
    RETURN p || jsonb_build_object(
        'as_of', as_of,
        'as_of_date', (as_of AT TIME ZONE 'UTC')::date,
        'window_start', ((as_of AT TIME ZONE 'UTC')::date
                         - make_interval(months => (p->>'window_months')::int))::date,
        'half_start', ((as_of AT TIME ZONE 'UTC')::date
                         - make_interval(months => (p->>'window_months')::int / 2))::date,
        'potential_start', (as_of AT TIME ZONE 'UTC')::date - (p->>'potential_days')::int,
        'base_tier', (SELECT t->>'code' FROM jsonb_array_elements(pol->'tiers') t
                       ORDER BY (t->>'rank')::int LIMIT 1));
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
CREATE FUNCTION loyalty._score_finish(run_id uuid) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bins int;
    n bigint;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    SELECT (j.params->>'bins')::int INTO bins FROM loyalty.job j
     WHERE j.job_id = _score_finish.run_id AND j.kind = 'score' AND j.state = 'running';
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

-- One batch of a score run (C, src/segment_score.c): the next batch_size
-- active members after a key, their stays read in one query, their scores
-- computed in C and written in one statement.
CREATE FUNCTION loyalty._score_batch(run_id uuid, after uuid, batch_size integer,
    OUT last_key uuid, OUT processed integer, OUT changed integer)
    RETURNS record
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_score_batch';

-- loyalty.score_refresh(as_of, batch_size, params): score every active
-- member as of a time (not in the future), one committed batch at a time.
CREATE PROCEDURE loyalty.score_refresh(as_of timestamptz DEFAULT NULL,
    batch_size integer DEFAULT 1000, params jsonb DEFAULT '{}')
    LANGUAGE plpgsql
AS $$
BEGIN
    IF params IS NOT NULL AND pg_catalog.jsonb_typeof(params) <> 'object' THEN
        RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    CALL loyalty._job_run('score',
        coalesce(params, '{}') || pg_catalog.jsonb_build_object('as_of', coalesce(as_of, pg_catalog.now())),
        batch_size);
END
$$;
COMMENT ON PROCEDURE loyalty.score_refresh(timestamptz, integer, jsonb) IS
    'Score every active member (RFM bins, value level, churn warning, potential frequent guest) as of a time, in committed batches';

-- Progress of the score and segment runs: their rows of loyalty.job_progress
-- (as loyalty.tier_job_progress for the tier jobs), with as_of and the
-- score run a segment run used.
CREATE VIEW loyalty.segment_run_progress WITH (security_barrier) AS
SELECT p.job_id AS run_id, p.kind, (p.params->>'as_of')::timestamptz AS as_of, p.state,
       p.done, p.total, p.percent, p.rate, p.changed, (p.params->>'score_job')::uuid AS score_run,
       p.params, p.started_by, p.started_at, p.updated_at, p.finished_at, p.error
  FROM loyalty.job_progress p
 WHERE p.kind IN ('score', 'segment');
COMMENT ON VIEW loyalty.segment_run_progress IS
    'The score and segment jobs of loyalty.job_progress, with as_of and the score run a segment run used';

-- Scores of the members for HQ CRM and marketing: every finished run;
-- members who withdrew profiling consent since are left out.
CREATE VIEW loyalty.member_scores WITH (security_barrier) AS
SELECT s.run_id, (r.params->>'as_of')::timestamptz AS as_of, s.member_id, s.stays, s.last_stay,
       s.recency_days, s.frequency,
       s.nights, s.monetary, s.realised_value, s.usual_interval_days, s.recent_stays,
       s.prior_stays, s.r, s.f, s.m, s.value_level, s.churn_overdue, s.frequency_falling,
       s.churn_warning, s.potential_frequent
  FROM loyalty.member_score s
  JOIN loyalty.job r ON r.job_id = s.run_id AND r.kind = 'score' AND r.state = 'done'
 WHERE loyalty._segment_consent(s.member_id, 'profiling');
COMMENT ON VIEW loyalty.member_scores IS
    'Member scores of every finished run (RFM, value level, churn warning, potential frequent guest); profiling withdrawals left out';

-- loyalty.score_movement(from_run, to_run): how many members moved from
-- one value level (and churn warning) to another between two runs.
CREATE FUNCTION loyalty.score_movement(from_run uuid, to_run uuid)
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
    IF (SELECT count(*) FROM loyalty.job r
         WHERE r.job_id IN (from_run, to_run) AND r.kind = 'score' AND r.state = 'done')
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
COMMENT ON FUNCTION loyalty.score_movement(uuid, uuid) IS
    'Members per (value level, churn warning) in one score run and another: the movement between them';

-- BI: counts per run, home store, value level and churn warning; groups
-- smaller than bi_min_group_size() are suppressed.
CREATE VIEW loyalty.bi_scores WITH (security_barrier) AS
SELECT s.run_id, (r.params->>'as_of')::timestamptz AS as_of, m.home_store, s.value_level,
       s.churn_warning, s.potential_frequent,
       count(*) AS members, round(avg(s.monetary), 2) AS avg_monetary,
       round(avg(s.frequency), 2) AS avg_frequency
  FROM loyalty.member_score s
  JOIN loyalty.job r ON r.job_id = s.run_id AND r.kind = 'score' AND r.state = 'done'
  JOIN loyalty.member m ON m.member_id = s.member_id
 WHERE m.status <> 'erased' AND loyalty._segment_consent(s.member_id, 'profiling')
 GROUP BY s.run_id, r.params, m.home_store, s.value_level, s.churn_warning, s.potential_frequent
HAVING count(*) >= loyalty.bi_min_group_size();
COMMENT ON VIEW loyalty.bi_scores IS
    'Member counts per score run, home store, value level, churn warning and potential frequent guest; small groups suppressed';

ALTER VIEW loyalty.segment_run_progress OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.member_scores OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.bi_scores OWNER TO loyalty_view_owner;
GRANT SELECT ON loyalty.member_score TO loyalty_view_owner;
REVOKE ALL ON loyalty.score_stage FROM PUBLIC;
REVOKE ALL ON loyalty.member_score, loyalty.segment_run_progress,
    loyalty.member_scores, loyalty.bi_scores FROM PUBLIC;
GRANT SELECT ON loyalty.segment_run_progress TO loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT SELECT ON loyalty.member_scores TO loyalty_crm, loyalty_marketing;
GRANT SELECT ON loyalty.bi_scores TO loyalty_bi, loyalty_crm, loyalty_marketing;
REVOKE ALL ON FUNCTION loyalty._segment_job_params(text, timestamptz, jsonb),
    loyalty._score_finish(uuid), loyalty._score_batch(uuid, uuid, integer),
    loyalty.score_movement(uuid, uuid) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.score_refresh(timestamptz, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._segment_job_params(text, timestamptz, jsonb),
    loyalty._score_finish(uuid), loyalty._score_batch(uuid, uuid, integer) TO loyalty_crm, loyalty_dba;
GRANT EXECUTE ON PROCEDURE loyalty.score_refresh(timestamptz, integer, jsonb) TO loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.score_movement(uuid, uuid)
    TO loyalty_crm, loyalty_marketing, loyalty_bi;
