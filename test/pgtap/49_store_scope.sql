-- pgTAP: store-scoped rows of the other areas follow the privacy pattern:
-- row level security on the tables, and the API shows a store its own rows.
BEGIN;
SELECT plan(6);

SELECT ok((SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'loyalty.point_entry'::regclass),
    'point_entry has forced row level security');
SELECT ok((SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'loyalty.point_lot'::regclass),
    'point_lot has forced row level security');

SELECT loyalty.store_create(gen_random_uuid()::text, 'scpa', 'Scope A', 'bay', 'r', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'scpb', 'Scope B', 'bay', 'r', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'scope_a_desk', 'scpa', 'frontdesk');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'scope_b_desk', 'scpb', 'frontdesk');
CREATE TEMP TABLE m ON COMMIT DROP AS SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'scpa', 'Scope Tester');
GRANT SELECT ON m TO scope_a_desk, scope_b_desk;
SELECT loyalty.points_accrue('scope-a-1', (SELECT member_id FROM m), 'scpa', 1500, 'adjustment');
SELECT loyalty.points_accrue('scope-b-1', (SELECT member_id FROM m), 'scpb', 700, 'adjustment');

SET ROLE scope_b_desk;
SELECT is((SELECT points_balance FROM loyalty.points_balance((SELECT member_id FROM m))), 2200::bigint,
    'the balance is chain-wide at store B');
SELECT results_eq($$SELECT store_code, points FROM loyalty.points_ledger((SELECT member_id FROM m))$$,
    $$VALUES ('scpb'::text, 700::bigint)$$, 'store B sees only its own ledger entries');
RESET ROLE;
SET ROLE scope_a_desk;
SELECT results_eq($$SELECT store_code, points FROM loyalty.points_ledger((SELECT member_id FROM m))$$,
    $$VALUES ('scpa'::text, 1500::bigint)$$, 'store A sees only its own ledger entries');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM loyalty.points_ledger((SELECT member_id FROM m))), 2,
    'HQ sees every store''s entries');

SELECT * FROM finish();
ROLLBACK;
