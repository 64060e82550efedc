-- pgTAP: the event conditions of segments (docs/segments.md, "Segments"):
-- N nights (nights_min, over the score window) and a first stay at a new
-- brand (new_brand_days).  Four members of two brands:
--   a: 2 stays at brand x, 3 nights in all               -> nights_min 3, not new brand
--   b: a stay at brand x long ago, one at y 10 days ago  -> new brand (10 days)
--   c: a stay at brand y 100 days ago after one at x      -> new brand only within 100+ days
--   d: a single stay at brand y 5 days ago (first stay ever, no earlier brand) -> not new brand
-- Bad values are refused with 22023 and nothing is written.
--
-- The procedures commit and cannot run in pgTAP's transaction: the runs
-- are driven by the functions their loop calls (as in 70_score.sql).
BEGIN;
SELECT plan(9);

SELECT loyalty.store_create(gen_random_uuid()::text, 'sex', 'Events X', 'evbrand_x', 'r', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'sey', 'Events Y', 'evbrand_y', 'r', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'se_mkt', NULL, 'marketing'),
       loyalty.staff_create(gen_random_uuid()::text, 'se_crm', NULL, 'crm');
UPDATE loyalty.member SET status = 'suspended' WHERE status = 'active';

CREATE TEMP TABLE pop AS
SELECT ('00000000-0000-4000-8000-0000000072' || lpad(i::text, 2, '0'))::uuid AS id, chr(96 + i) AS name
  FROM generate_series(1, 4) i;
GRANT SELECT ON pop TO PUBLIC;
INSERT INTO loyalty.member (member_id, card_no, home_store) SELECT id, loyalty.card_number_new(), 'sex' FROM pop;
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, room_revenue)
SELECT p.id, v.store, current_date - v.ago, current_date - v.ago + v.nights, 300
  FROM pop p JOIN (VALUES ('a', 'sex', 60, 1), ('a', 'sex', 30, 2),
                          ('b', 'sex', 400, 1), ('b', 'sey', 10, 1),
                          ('c', 'sex', 200, 1), ('c', 'sey', 100, 1),
                          ('d', 'sey', 5, 1)) v(who, store, ago, nights) ON v.who = p.name;

SET ROLE se_mkt;
SELECT throws_ok($$SELECT loyalty.segment_define('se-bad', 'x', 'X', '{"nights_min": 0}')$$, '22023',
                 'segment condition "nights_min" must be a whole number from 1 to 3650', 'nights_min 0 is refused');
SELECT throws_ok($$SELECT loyalty.segment_define('se-bad', 'x', 'X', '{"new_brand_days": 1.5}')$$, '22023',
                 'segment condition "new_brand_days" must be a whole number from 1 to 3650', 'a fraction of a day is refused');
SELECT throws_ok($$SELECT loyalty.segment_define('se-bad', 'x', 'X', '{"nights_min": "3"}')$$, '22023',
                 'segment condition "nights_min" must be a JSON number', 'a string is refused');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM loyalty.segment_def WHERE idempotency_key = 'se-bad'), 0, 'nothing written');
SET ROLE se_mkt;
SELECT loyalty.segment_define('se-1', 'se_nights3', 'Three nights', '{"nights_min": 3}');
SELECT loyalty.segment_define('se-2', 'se_newbrand30', 'New brand within 30 days', '{"new_brand_days": 30}');
SELECT loyalty.segment_define('se-3', 'se_newbrand365', 'New brand within a year', '{"new_brand_days": 365}');
RESET ROLE;

SET ROLE se_crm;
DO $$
DECLARE
    run uuid;
    after uuid;
    b record;
    k text;
BEGIN
    -- the steps of loyalty._job_run (the score job's last batch adds the bins)
    FOREACH k IN ARRAY ARRAY['score', 'segment'] LOOP
        run := loyalty._job_start(k, jsonb_build_object('as_of', now()), 100);
        after := '00000000-0000-0000-0000-000000000000';
        LOOP
            b := loyalty._job_batch(k, jsonb_build_object('as_of', now()), after, 100);
            EXIT WHEN b.processed = 0;
            PERFORM loyalty._job_step(run, b.processed, b.changed);
            after := b.last_key;
        END LOOP;
        PERFORM loyalty._job_finish(run, NULL, NULL);
    END LOOP;
END $$;
SELECT is((SELECT nights FROM loyalty.member_scores s JOIN pop ON pop.id = s.member_id WHERE pop.name = 'a'
            ORDER BY as_of DESC LIMIT 1), 3, 'a stayed 3 nights in the window');
RESET ROLE;

SET ROLE se_mkt;
SELECT is((SELECT string_agg(pop.name, ',' ORDER BY pop.name) FROM loyalty.segment_members('se_nights3') s JOIN pop ON pop.id = s.member_id),
          'a', 'N nights: only a has 3 nights');
SELECT is((SELECT string_agg(pop.name, ',' ORDER BY pop.name) FROM loyalty.segment_members('se_newbrand30') s JOIN pop ON pop.id = s.member_id),
          'b', 'a first stay at a new brand within 30 days: b (d''s first stay ever is not a new brand)');
SELECT is((SELECT string_agg(pop.name, ',' ORDER BY pop.name) FROM loyalty.segment_members('se_newbrand365') s JOIN pop ON pop.id = s.member_id),
          'b,c', 'within a year: b and c');
SELECT is((SELECT count(*)::int FROM loyalty.segments WHERE code LIKE 'se\_%'), 3, 'three event segments defined');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
