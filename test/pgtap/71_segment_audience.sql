-- pgTAP: segments, campaign targeting, registration, audience export and
-- measurement (docs/segments.md).  Twelve lapsing members (two stays a
-- month apart in early 2025) form the churn-warning segment; three recent
-- guests do not.  A campaign that requires registration targets the
-- segment with a control group; a registered audience member earns the
-- campaign's points on a stay, an unregistered one does not.  The export
-- gives unmasked phones only to members who consented to SMS; withdrawing
-- consent removes a member from every audience and BI view of this area.
-- Bad input gets a clear SQLSTATE and writes nothing.
--
-- The procedures commit and cannot run in pgTAP's transaction: the runs
-- are driven by the functions their loop calls (as in 70_score.sql).
BEGIN;
SELECT plan(52);

SELECT loyalty.store_create(gen_random_uuid()::text, 'sga', 'Segment A', 'sgbrand', 'r', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'sg_crm', NULL, 'crm'), loyalty.staff_create(gen_random_uuid()::text, 'sg_mkt', NULL, 'marketing'),
       loyalty.staff_create(gen_random_uuid()::text, 'sg_bi', NULL, 'bi'), loyalty.staff_create(gen_random_uuid()::text, 'sg_desk', 'sga', 'frontdesk');
CREATE TEMP TABLE others AS SELECT member_id FROM loyalty.member WHERE status = 'active';
UPDATE loyalty.member SET status = 'suspended' WHERE member_id IN (SELECT member_id FROM others);

-- fixed ids, so the control draw of the fixed campaign id is fixed too
CREATE TEMP TABLE pop AS
SELECT ('00000000-0000-4000-8000-0000000071' || lpad(i::text, 2, '0'))::uuid AS id, i, i <= 12 AS lapsing
  FROM generate_series(1, 15) i;
GRANT SELECT ON pop TO PUBLIC;
INSERT INTO loyalty.member (member_id, card_no, home_store) SELECT id, loyalty.card_number_new(), 'sga' FROM pop;
INSERT INTO loyalty.member_profile (member_id, full_name, phone)
SELECT id, 'Guest ' || i, '1380000' || lpad(i::text, 4, '0') FROM pop;
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, room_revenue)
SELECT id, 'sga', d, d + 1, 500 FROM pop, LATERAL (VALUES (date '2025-01-01'), (date '2025-02-01')) v(d) WHERE lapsing;
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, room_revenue)
SELECT id, 'sga', current_date - 20, current_date - 19, 800 FROM pop WHERE NOT lapsing;
INSERT INTO loyalty.member_consent (member_id, purpose, granted, notice_version, store_code, recorded_at)
SELECT id, 'marketing_sms', true, 'v1', 'sga', now() - interval '1 day' FROM pop;
INSERT INTO loyalty.campaign (campaign_id, code, name, kind, fixed_points, starts_at, ends_at, priority,
                              registration_required)
VALUES ('00000000-0000-4000-8000-00000000c071', 'sg_winback', 'Win-back', 'fixed', 500,
        now() - interval '3 days', now() + interval '30 days', 7771, true);

CREATE TEMP TABLE before AS SELECT (SELECT count(*) FROM loyalty.segment_def) AS defs,
    (SELECT count(*) FROM loyalty.campaign_audience) AS audience,
    (SELECT count(*) FROM loyalty.campaign_registration) AS regs,
    (SELECT count(*) FROM loyalty.audience_export) AS exports;
GRANT SELECT ON before TO PUBLIC;
CREATE TEMP TABLE res (k text, v text);
GRANT ALL ON res TO PUBLIC;

-- bad segment definitions
SET ROLE sg_mkt;
SELECT throws_ok($$SELECT loyalty.segment_define(NULL, 'x', 'X', '{}')$$, '22004', 'idempotency_key must not be null', 'null key');
SELECT throws_ok($$SELECT loyalty.segment_define(repeat('k', 201), 'x', 'X', '{}')$$, '22023', 'idempotency_key must be 1 to 200 characters', 'key too long');
SELECT throws_ok($$SELECT loyalty.segment_define('sg-bad', 'Bad Code', 'X', '{}')$$, '22023', 'invalid segment code', 'bad code');
SELECT throws_ok($$SELECT loyalty.segment_define('sg-bad', 'x', 'X', '{"colour": "red"}')$$, '22023', 'unknown segment condition "colour"', 'unknown condition');
SELECT throws_ok($$SELECT loyalty.segment_define('sg-bad', 'x', 'X', '{"churn_warning": "yes"}')$$, '22023', 'segment condition "churn_warning" must be a JSON boolean', 'wrong type');
SELECT throws_ok($$SELECT loyalty.segment_define('sg-bad', 'x', 'X', '{"tiers": []}')$$, '22023', 'segment condition "tiers" must be a non-empty list of strings', 'empty list');
SELECT throws_ok($$SELECT loyalty.segment_define('sg-bad', 'x', 'X', '{"value_levels": ["gold"]}')$$, '22023', 'value levels are high, medium and low', 'bad value level');
SELECT throws_ok($$SELECT loyalty.segment_define('sg-bad', 'x', 'X', '[1]')$$, '22023', 'a segment definition must be a JSON object', 'not an object');
RESET ROLE;
SELECT is((SELECT count(*) FROM loyalty.segment_def) - (SELECT defs FROM before), 0::bigint, 'no bad definition was written');
SET ROLE sg_desk;
SELECT throws_ok($$SELECT loyalty.segment_define('sg-d', 'x', 'X', '{}')$$, '42501', NULL, 'a front desk cannot define segments');
RESET ROLE;

SET ROLE sg_mkt;
SELECT is((SELECT version || ' ' || replayed FROM loyalty.segment_define('sg-1', 'sg_churn', 'Churn warning', '{"churn_warning": true}')),
          '1 false', 'a segment is defined');
SELECT is((SELECT version || ' ' || replayed FROM loyalty.segment_define('sg-1', 'sg_churn', 'Churn warning', '{"churn_warning": true}')),
          '1 true', 'a retry returns the first answer');
SELECT throws_ok($$SELECT loyalty.segment_define('sg-1', 'sg_churn', 'Churn warning', '{"churn_warning": false}')$$,
          '22023', 'idempotency_key was already used with other arguments', 'the same key with other arguments');
SELECT is((SELECT version FROM loyalty.segment_define('sg-2', 'sg_recent', 'Recent', '{"churn_warning": false, "stayed_at": ["sga"]}')),
          1, 'a second segment');
-- targeting before any run
SELECT throws_ok($$SELECT loyalty.campaign_target('sg-t0', 'sg_winback', 'sg_churn', 25)$$,
          '55000', 'segment "sg_churn" has no finished run', 'no run yet');
RESET ROLE;

-- a score run and a segment run
SET ROLE sg_crm;
DO $$
DECLARE
    run uuid;
    after uuid;
    b record;
    k text;
BEGIN
    -- the steps of loyalty._job_run (the score job's last batch adds the bins)
    FOREACH k IN ARRAY ARRAY['score', 'segment'] LOOP
        run := loyalty._job_start(k, jsonb_build_object('as_of', now()), 5);
        after := '00000000-0000-0000-0000-000000000000';
        LOOP
            b := loyalty._job_batch(k, jsonb_build_object('as_of', now()), after, 5);
            EXIT WHEN b.processed = 0;
            PERFORM loyalty._job_step(run, b.processed, b.changed);
            after := b.last_key;
        END LOOP;
        PERFORM loyalty._job_finish(run, NULL, NULL);
    END LOOP;
END $$;
SELECT is((SELECT string_agg(kind || ' ' || state || ' ' || done || '/' || total, ', ' ORDER BY started_at)
             FROM (SELECT * FROM loyalty.segment_run_progress ORDER BY started_at DESC LIMIT 2) x),
          'score done 15/15, segment done 2/2', 'both runs are done');
RESET ROLE;

SET ROLE sg_mkt;
SELECT is((SELECT count(*)::int FROM loyalty.segment_members('sg_churn')), 12, 'twelve lapsing members in the churn segment');
SELECT is((SELECT count(*)::int FROM loyalty.segment_members('sg_churn') s JOIN pop ON pop.id = s.member_id WHERE NOT pop.lapsing), 0,
          'no recent guest in it');
SELECT is((SELECT count(*)::int FROM loyalty.segment_members('sg_recent')), 3, 'three in the recent segment');
SELECT is((SELECT count(*)::int FROM loyalty.segment_members('sg_churn', '2020-01-01')), 0, 'nothing as of before any run');
SELECT throws_ok($$SELECT * FROM loyalty.segment_members('sg_none')$$, 'P0002', 'segment "sg_none" not found', 'unknown segment');

-- targeting: bad input first
SELECT throws_ok($$SELECT loyalty.campaign_target('sg-t1', 'sg_nope', 'sg_churn', 25)$$, 'P0002', 'campaign "sg_nope" not found', 'unknown campaign');
SELECT throws_ok($$SELECT loyalty.campaign_target('sg-t1', 'sg_winback', 'sg_churn', 80)$$, '22023', 'control_percent must be between 0 and 50', 'control share too large');
SELECT throws_ok($$SELECT loyalty.campaign_target('sg-t1', 'sg_winback', 'sg_nope', 25)$$, 'P0002', 'segment "sg_nope" not found', 'unknown segment');
SELECT is((SELECT count(*) FROM loyalty.campaign_targeting WHERE campaign_id = '00000000-0000-4000-8000-00000000c071'), 0::bigint, 'nothing targeted');
INSERT INTO res SELECT 'target', audience || '+' || control FROM loyalty.campaign_target('sg-t1', 'sg_winback', 'sg_churn', 25);
RESET ROLE;
SELECT is((SELECT v FROM res WHERE k = 'target'),
          (SELECT count(*) FILTER (WHERE NOT loyalty._audience_control('00000000-0000-4000-8000-00000000c071', id, 25))
                  || '+' || count(*) FILTER (WHERE loyalty._audience_control('00000000-0000-4000-8000-00000000c071', id, 25))
             FROM pop WHERE lapsing),
          'audience and control drawn from the segment by the keyed hash');
SELECT ok((SELECT split_part(v, '+', 2)::int BETWEEN 1 AND 11 FROM res WHERE k = 'target'), 'both groups are non-empty');
SET ROLE sg_mkt;
SELECT is((SELECT replayed FROM loyalty.campaign_target('sg-t1', 'sg_winback', 'sg_churn', 25)), true, 'targeting retried');
SELECT throws_ok($$SELECT loyalty.campaign_target('sg-t2', 'sg_winback', 'sg_churn', 25)$$, '55000', 'campaign "sg_winback" is already targeted', 'targeted once');
RESET ROLE;

-- registration and earning
CREATE TEMP TABLE g AS
SELECT (SELECT id FROM pop WHERE lapsing AND NOT loyalty._audience_control('00000000-0000-4000-8000-00000000c071', id, 25) ORDER BY i LIMIT 1) AS reg,
       (SELECT id FROM pop WHERE lapsing AND NOT loyalty._audience_control('00000000-0000-4000-8000-00000000c071', id, 25) ORDER BY i DESC LIMIT 1) AS unreg,
       (SELECT id FROM pop WHERE lapsing AND loyalty._audience_control('00000000-0000-4000-8000-00000000c071', id, 25) ORDER BY i LIMIT 1) AS ctl,
       (SELECT id FROM pop WHERE NOT lapsing ORDER BY i LIMIT 1) AS outsider;
GRANT SELECT ON g TO PUBLIC;
SET ROLE sg_desk;
SELECT throws_ok($$SELECT loyalty.campaign_register('sg-r0', 'sg_winback', (SELECT ctl FROM g))$$, '22023',
    'the member is not invited to campaign "sg_winback"', 'a control member cannot register');
SELECT throws_ok($$SELECT loyalty.campaign_register('sg-r0', 'sg_winback', (SELECT outsider FROM g))$$, '22023',
    'the member is not invited to campaign "sg_winback"', 'a member outside the segment cannot register');
SELECT throws_ok($$SELECT loyalty.campaign_register('sg-r0', 'sg_winback', gen_random_uuid())$$, 'P0002', 'member not found', 'unknown member');
SELECT throws_ok($$SELECT loyalty.campaign_register('', 'sg_winback', (SELECT reg FROM g))$$, '22023', 'idempotency_key must be 1 to 200 characters', 'empty key');
RESET ROLE;
SELECT is((SELECT count(*) FROM loyalty.campaign_registration) - (SELECT regs FROM before), 0::bigint, 'no bad registration written');
SET ROLE sg_desk;
SELECT is((SELECT replayed FROM loyalty.campaign_register('sg-r1', 'sg_winback', (SELECT reg FROM g))), false, 'an audience member registers');
SELECT is((SELECT replayed FROM loyalty.campaign_register('sg-r1', 'sg_winback', (SELECT reg FROM g))), true, 'registration retried');
RESET ROLE;
SELECT is((SELECT bonus_points FROM loyalty.stay_record('sg-s1', 'sga', (SELECT reg FROM g), current_date - 2, current_date - 1, 1, 1000, 0)),
          500::bigint, 'the registered audience member earns the campaign''s 500 points');
SELECT is((SELECT bonus_points FROM loyalty.stay_record('sg-s2', 'sga', (SELECT unreg FROM g), current_date - 2, current_date - 1, 1, 600, 0)),
          0::bigint, 'an unregistered audience member does not');
SELECT is((SELECT bonus_points FROM loyalty.stay_record('sg-s3', 'sga', (SELECT ctl FROM g), current_date - 2, current_date - 1, 1, 400, 0)),
          0::bigint, 'a control member does not');

-- export: unmasked phones of consenting audience members, each audited
SET ROLE sg_mkt;
SELECT throws_ok($$SELECT * FROM loyalty.audience_export('sg-e0', 'sg_winback', 'pigeon')$$, '22023', 'unknown channel "pigeon"', 'unknown channel');
INSERT INTO res SELECT 'e1', count(*) || ' ' || bool_and(contact = '1380000' || lpad(pop.i::text, 4, '0'))
  FROM loyalty.audience_export('sg-e1', 'sg_winback', 'sms') x JOIN pop ON pop.id = x.member_id;
SELECT is((SELECT v FROM res WHERE k = 'e1'), split_part((SELECT v FROM res WHERE k = 'target'), '+', 1) || ' true',
          'every audience member outside the control group, with the unmasked phone');
RESET ROLE;
SELECT is((SELECT count(*)::text FROM (SELECT member_id, action, purpose, at, fields::text AS fields FROM loyalty.audit_log UNION ALL SELECT member_id, action, purpose, at, detail::text FROM loyalty.audit_change_staging) a WHERE action = 'audience_export' AND purpose = 'marketing'
                                                  AND at >= now() AND member_id IN (SELECT id FROM pop)),
          split_part((SELECT v FROM res WHERE k = 'target'), '+', 1), 'one audit record per member given out');

-- withdrawal: SMS consent of reg, profiling consent of unreg
SELECT loyalty.consent_record((SELECT reg FROM g), 'marketing_sms', false, 'v2', 'sga');
SELECT loyalty.consent_record((SELECT unreg FROM g), 'profiling', false, 'v2', 'sga');
SET ROLE sg_mkt;
SELECT is((SELECT count(*)::int FROM loyalty.audience_export('sg-e2', 'sg_winback', 'sms') x WHERE x.member_id IN ((SELECT reg FROM g), (SELECT unreg FROM g))),
          0, 'both withdrawn members leave a new export');
SELECT is((SELECT count(*)::int FROM loyalty.audience_export('sg-e1', 'sg_winback', 'sms') x WHERE x.member_id IN ((SELECT reg FROM g), (SELECT unreg FROM g))),
          0, 'and a retried export');
SELECT is((SELECT count(*)::int FROM loyalty.segment_members('sg_churn') WHERE member_id = (SELECT unreg FROM g)), 0,
          'profiling withdrawal leaves the segment');
SELECT is((SELECT count(*)::int FROM loyalty.member_scores WHERE member_id = (SELECT unreg FROM g)), 0, 'and the scores');
RESET ROLE;
SET ROLE sg_bi;
SELECT is((SELECT sum(members)::int FROM loyalty.bi_segment_sizes WHERE segment = 'sg_churn' AND home_store = 'sga'), 11,
          'BI segment sizes: 11 of 12 once one withdrew profiling');
SELECT is((SELECT sum(members)::int FROM loyalty.bi_scores WHERE home_store = 'sga' AND churn_warning), 11,
          'BI score counts leave the member out too');
SELECT is((SELECT count(*)::int FROM loyalty.bi_points WHERE member_key = loyalty.pseudonym((SELECT unreg FROM g))), 0,
          'and BI points');

-- measurement
SELECT is((SELECT participants || ' ' || registered || ' ' || points_issued || ' ' || cost FROM loyalty.campaign_measurement WHERE campaign = 'sg_winback'),
          '1 1 500 50.00', 'participants, registrations, points issued and their cost at 0.1');
SELECT is((SELECT audience_revenue || ' ' || control_revenue FROM loyalty.campaign_measurement WHERE campaign = 'sg_winback'),
          '1600.00 400.00', 'revenue of the audience and of the control group in the window');
SELECT is((SELECT incremental_revenue = round((1600.0 / audience - 400.0 / control) * audience, 2)
                  AND roi = round(((1600.0 / audience - 400.0 / control) * audience - 50) / 50, 4)
             FROM loyalty.campaign_measurement WHERE campaign = 'sg_winback'),
          true, 'incremental revenue and ROI by the documented formula');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
