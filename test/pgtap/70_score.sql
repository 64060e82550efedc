-- pgTAP: member scores of a small hand-made population compared with values
-- computed by hand (docs/segments.md, "Scores"), and bad input to the score
-- run: a clear SQLSTATE and nothing written.
--
-- The procedure loyalty.score_refresh commits and cannot run inside
-- pgTAP's transaction; this test runs the same steps its loop runs
-- (loyalty._job_run: _job_start, _job_batch with _score_batch and at the
-- end _score_finish, _job_step, _job_finish);
-- the procedure itself runs in demo/70_segments.sql, the isolation spec
-- segment_refresh_accrue and bench/segment_bench.sh.
--
-- as_of 2026-06-30 12:00 UTC: D = 2026-06-30, window 12 months from
-- W = 2025-06-30, its second half from H = 2025-12-30, potential from
-- P = D - 180 = 2026-01-01, churn factor 2, bins 5.
--   A (member tier): 04-01..04-02 500, 05-01..05-02 500, 06-01..06-03 1000
--     stays 3, recency 27, frequency 3, nights 4, monetary 2000,
--     interval (06-01 - 04-01) / 2 = 30.5, not overdue (27 <= 61),
--     recent 3 prior 0, potential (3 stays since P, base tier)
--   B (member): 2025-08-01..08-05 3000, 2025-09-01..09-03 2000
--     stays 2, recency 300, frequency 2, nights 6, monetary 5000,
--     interval 31, overdue (300 > 62), recent 0 prior 2: falling; warning
--   C (member): 2024-01-10..01-12 800: stays 1, recency 900, frequency 0,
--     monetary 0, realised 800, no interval, no warning
--   D (member): no stay: recency NULL, all 0
--   E (gold): 2026-03-01..03-02 100, 2026-06-20..06-25 10000, a cancelled
--     stay and one after D (not counted): stays 2, recency 5, frequency 2,
--     nights 6, monetary 10100, interval 111, not potential (gold)
-- Bins (rank with ties at the lowest, 1 + floor(5 (rank - 1) / 5)):
--   r: D 1, C 2, B 3, A 4, E 5;  f: C 1, D 1, B 3, E 3, A 5;
--   m: C 1, D 1, A 3, B 4, E 5;  sums A 12 high, B 10 medium, C 4 low,
--   D 3 low, E 13 high (high >= 12, medium >= 8).
BEGIN;
SELECT plan(26);

SELECT loyalty.store_create(gen_random_uuid()::text, 'sca', 'Score A', 'sbrand', 'r', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'sc_crm', NULL, 'crm'), loyalty.staff_create(gen_random_uuid()::text, 'sc_desk', 'sca', 'frontdesk'),
       loyalty.staff_create(gen_random_uuid()::text, 'sc_mkt', NULL, 'marketing');
-- only this test's members are active while it runs
CREATE TEMP TABLE others AS SELECT member_id FROM loyalty.member WHERE status = 'active';
UPDATE loyalty.member SET status = 'suspended' WHERE member_id IN (SELECT member_id FROM others);
CREATE TEMP TABLE p AS
    SELECT (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'sca', 'Score A')) AS a,
           (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'sca', 'Score B')) AS b,
           (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'sca', 'Score C')) AS c,
           (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'sca', 'Score D')) AS d,
           (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'sca', 'Score E')) AS e;
GRANT SELECT ON p TO PUBLIC;
UPDATE loyalty.member SET tier = 'gold' WHERE member_id = (SELECT e FROM p);
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, room_revenue, other_revenue, status)
SELECT x.m, 'sca', x.i::date, x.o::date, x.rev, 0, x.st FROM (VALUES
    ((SELECT a FROM p), '2026-04-01', '2026-04-02', 500, 'checked_out'),
    ((SELECT a FROM p), '2026-05-01', '2026-05-02', 400, 'checked_out'),
    ((SELECT a FROM p), '2026-06-01', '2026-06-03', 1000, 'checked_out'),
    ((SELECT b FROM p), '2025-08-01', '2025-08-05', 3000, 'checked_out'),
    ((SELECT b FROM p), '2025-09-01', '2025-09-03', 2000, 'checked_out'),
    ((SELECT c FROM p), '2024-01-10', '2024-01-12', 800, 'checked_out'),
    ((SELECT e FROM p), '2026-03-01', '2026-03-02', 100, 'checked_out'),
    ((SELECT e FROM p), '2026-06-20', '2026-06-25', 10000, 'checked_out'),
    ((SELECT e FROM p), '2026-06-10', '2026-06-12', 9999, 'cancelled'),
    ((SELECT e FROM p), '2026-07-05', '2026-07-06', 9999, 'booked')) AS x(m, i, o, rev, st);
-- A's second stay had 100 of other revenue
UPDATE loyalty.stay SET other_revenue = 100 WHERE member_id = (SELECT a FROM p) AND check_in = '2026-05-01';
CREATE TEMP TABLE before AS SELECT (SELECT count(*) FROM loyalty.job WHERE kind = 'score') AS runs,
                                   (SELECT count(*) FROM loyalty.member_score) AS scores;
GRANT SELECT ON before TO PUBLIC;

-- bad input: clear errors, nothing written
SET ROLE sc_crm;
SELECT throws_ok($$SELECT loyalty._job_start('score', jsonb_build_object('as_of', now() + interval '1 day'), 100)$$,
    '22023', 'as_of must not be in the future', 'a future as_of is refused');
SELECT throws_ok($$SELECT loyalty._job_start('score', '{"as_of": "infinity"}', 100)$$,
    '22008', 'as_of must be a finite time', 'as_of infinity');
SELECT throws_ok($$SELECT loyalty._job_start('score', '{"as_of": "2026-06-30"}', 0)$$,
    '22023', 'batch_size must be between 1 and 100000', 'batch size 0');
SELECT throws_ok($$SELECT loyalty._job_start('score', '{"as_of": "2026-06-30", "bins": 1}', 10)$$,
    '22023', 'score parameters out of range', 'one bin');
SELECT throws_ok($$SELECT loyalty._job_start('score', '{"as_of": "2026-06-30", "colour": 1}', 10)$$,
    '22023', 'unknown score parameter "colour"', 'an unknown parameter');
SELECT throws_ok($$SELECT loyalty._job_start('score', '{"as_of": "2026-06-30", "bins": "five"}', 10)$$,
    '22023', 'score parameter "bins" must be a number', 'a parameter that is no number');
SELECT throws_ok($$SELECT loyalty._job_start('vacuum', '{"as_of": "2026-06-30"}', 10)$$,
    '22023', 'unknown job kind "vacuum"', 'an unknown kind');
SELECT throws_ok($$SELECT loyalty._job_start('segment', '{"as_of": "2026-06-30", "bins": 5}', 10)$$,
    '22023', 'a segment job takes no parameters', 'a segment job with score parameters');
SELECT throws_ok($$SELECT loyalty._score_batch(NULL, '00000000-0000-0000-0000-000000000000', 10)$$,
    '22004', 'run_id, after and batch_size must not be null', 'a null run');
SELECT throws_ok($$SELECT loyalty._score_batch('00000000-0000-0000-0000-0000000000ff', '00000000-0000-0000-0000-000000000000', 10)$$,
    '55000', 'score run 00000000-0000-0000-0000-0000000000ff is not running', 'a run that does not run');
RESET ROLE;
SELECT is((SELECT count(*) FROM loyalty.job WHERE kind = 'score') - (SELECT runs FROM before), 0::bigint, 'no run was written');
SET ROLE sc_desk;
SELECT throws_ok($$SELECT loyalty._job_start('score', '{"as_of": "2026-06-30"}', 10)$$,
    '42501', NULL, 'a front desk cannot score');
RESET ROLE;

-- the run, batches of 2 members
CREATE TEMP TABLE run (id uuid);
GRANT ALL ON run TO PUBLIC;
SET ROLE sc_crm;
INSERT INTO run SELECT loyalty._job_start('score', '{"as_of": "2026-06-30 12:00+00"}', 2);
DO $$
DECLARE
    after uuid := '00000000-0000-0000-0000-000000000000';
    b record;
BEGIN
    LOOP
        b := loyalty._job_batch('score', '{"as_of": "2026-06-30 12:00+00"}', after, 2);
        EXIT WHEN b.processed = 0;
        PERFORM loyalty._job_step((SELECT id FROM run), b.processed, b.changed);
        after := b.last_key;
    END LOOP;
    PERFORM loyalty._job_finish((SELECT id FROM run), NULL, NULL);
END $$;
SELECT is((SELECT state || ' ' || done || '/' || total FROM loyalty.segment_run_progress WHERE run_id = (SELECT id FROM run)),
          'done 5/5', 'the run is done with its progress');
SELECT is((SELECT kind || ' ' || state || ' ' || done || '/' || total FROM loyalty.job_progress WHERE job_id = (SELECT id FROM run)),
          'score done 5/5', 'the run is a job of loyalty.job_progress');
RESET ROLE;

CREATE TEMP TABLE got AS
SELECT CASE s.member_id WHEN p.a THEN 'A' WHEN p.b THEN 'B' WHEN p.c THEN 'C' WHEN p.d THEN 'D' WHEN p.e THEN 'E' END AS who, s.*
  FROM loyalty.member_scores s, p WHERE s.run_id = (SELECT id FROM run);
SELECT is((SELECT string_agg(format('%s %s %s %s %s %s %s', who, stays, recency_days, frequency, nights, monetary, realised_value), '; ' ORDER BY who) FROM got),
    'A 3 27 3 4 2000.00 2000.00; B 2 300 2 6 5000.00 5000.00; C 1 900 0 0 0.00 800.00; D 0  0 0 0.00 0.00; E 2 5 2 6 10100.00 10100.00',
    'stays, recency, frequency, nights, monetary and realised value as computed by hand');
SELECT is((SELECT string_agg(format('%s %s', who, coalesce(usual_interval_days::text, '-')), '; ' ORDER BY who) FROM got),
    'A 30.50; B 31.00; C -; D -; E 111.00', 'usual intervals between stays');
SELECT is((SELECT string_agg(format('%s %s%s%s', who, r, f, m), '; ' ORDER BY who) FROM got),
    'A 453; B 334; C 211; D 111; E 535', 'RFM quintiles (ties share the lowest bin)');
SELECT is((SELECT string_agg(format('%s %s', who, value_level), '; ' ORDER BY who) FROM got),
    'A high; B medium; C low; D low; E high', 'value levels');
SELECT is((SELECT string_agg(who, ',' ORDER BY who) FROM got WHERE churn_overdue), 'B', 'B is overdue (300 > 2 x 31)');
SELECT is((SELECT string_agg(who, ',' ORDER BY who) FROM got WHERE frequency_falling), 'B', 'B''s frequency falls (0 after 2)');
SELECT is((SELECT string_agg(who, ',' ORDER BY who) FROM got WHERE churn_warning), 'B', 'only B has a churn warning');
SELECT is((SELECT string_agg(who, ',' ORDER BY who) FROM got WHERE potential_frequent), 'A', 'A is a potential frequent guest, E (gold) is not');
SELECT is((SELECT recent_stays || '/' || prior_stays FROM got WHERE who = 'A'), '3/0', 'A''s halves of the window');

-- marketing sees the scores; a withdrawal of profiling consent removes the member
SET ROLE sc_mkt;
SELECT is((SELECT count(*)::int FROM loyalty.member_scores WHERE run_id = (SELECT id FROM run)), 5, 'marketing reads the scores');
RESET ROLE;
SELECT loyalty.consent_record((SELECT b FROM p), 'profiling', false, 'v1', 'sca');
SET ROLE sc_mkt;
SELECT is((SELECT count(*)::int FROM loyalty.member_scores WHERE member_id = (SELECT b FROM p)), 0,
          'a member who withdrew profiling consent leaves member_scores');
RESET ROLE;
SET ROLE sc_desk;
SELECT throws_ok($$SELECT * FROM loyalty.member_scores$$, '42501', NULL, 'a front desk cannot read scores');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
