-- pgTAP: bulk import through the staging tables (docs/crm.md): members
-- de-duplicated against the base, opening balances as lots, historical
-- stays credited to counters (or points as given), rejected rows with
-- their reason while the others go on, a re-run that changes nothing, a
-- restarted row that is not imported twice, bad input and rights.
BEGIN;
SELECT plan(24);

CREATE FUNCTION pg_temp.as_role(r text, q text) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    res text;
BEGIN
    BEGIN
        EXECUTE format('SET LOCAL ROLE %I', r);
        EXECUTE q INTO res;
        RESET ROLE;
        RETURN coalesce(res, '<null>');
    EXCEPTION WHEN OTHERS THEN
        RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
    END;
END
$$;

SELECT loyalty.store_create('im-s1', 'ima', 'Import A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create('im-1', 'im_a_desk', 'ima', 'frontdesk');
SELECT loyalty.staff_create('im-2', 'im_crm', NULL, 'crm');
CREATE TEMP TABLE existing AS
SELECT (loyalty.member_enroll('im-e1', 'ima', 'Already Here', '13855556666')).member_id AS m;
GRANT SELECT ON existing TO PUBLIC;

-- what a COPY would load
INSERT INTO loyalty.import_member (batch, external_ref, home_store, full_name, phone, email, birth_date,
                                   opening_points, points_earned_at) VALUES
    ('im-b1', 'legacy-1', 'ima', 'Imported One', '13855550001', 'one@legacy.example', '1980-05-01', 3000, now() - interval '1 year'),
    ('im-b1', 'legacy-2', 'ima', 'Already Here Again', '13855556666', NULL, NULL, NULL, NULL),
    ('im-b1', 'legacy-3', 'ima', 'Bad Phone', '12ab', NULL, NULL, NULL, NULL),
    ('im-b1', 'legacy-4', 'nosuchstore', 'No Store', '13855550004', NULL, NULL, NULL, NULL);
INSERT INTO loyalty.import_stay (batch, member_ref, store_code, check_in, check_out, room_revenue, points) VALUES
    ('im-b1', 'legacy-1', 'ima', current_date - 200, current_date - 198, 1000, NULL),
    ('im-b1', 'legacy-1', 'ima', current_date - 100, current_date - 99, 0, 2500),
    ('im-b1', 'legacy-3', 'ima', current_date - 50, current_date - 49, 500, NULL),
    ('im-b1', 'legacy-1', 'ima', current_date - 10, current_date - 12, 500, NULL);

SELECT ok(pg_temp.as_role('im_a_desk', $$SELECT count(*)::text FROM loyalty.import_step('im-b1')$$) LIKE 'ERROR 42501%',
          'a front desk may not import');
SELECT ok(pg_temp.as_role('im_a_desk', $$SELECT count(*)::text FROM loyalty.import_member$$) LIKE 'ERROR 42501%',
          'nor read the staging table');
SELECT ok(pg_temp.as_role('im_crm', $$SELECT count(*)::text FROM loyalty.import_step('im-b1', 0)$$) LIKE 'ERROR 22023%',
          'batch_size 0: 22023');
SELECT ok(pg_temp.as_role('im_crm', $$SELECT count(*)::text FROM loyalty.import_step(NULL)$$) LIKE 'ERROR 22004%',
          'null batch: 22004');
SELECT is((SELECT count(*)::int FROM loyalty.import_member WHERE batch = 'im-b1' AND status <> 'pending'), 0,
          'and nothing was processed');

SELECT is(pg_temp.as_role('im_crm', $$SELECT row(members, stays, rejected, remaining)::text FROM loyalty.import_step('im-b1', 100)$$),
          '(2,2,4,0)', 'HQ CRM imports the batch: 2 members, 2 stays, 4 rejected, none left');
SELECT is((SELECT string_agg(external_ref || ':' || status, ',' ORDER BY row_no) FROM loyalty.import_member WHERE batch = 'im-b1'),
          'legacy-1:imported,legacy-2:duplicate,legacy-3:rejected,legacy-4:rejected', 'each member row''s outcome');
SELECT is((SELECT member_id FROM loyalty.import_member WHERE batch = 'im-b1' AND external_ref = 'legacy-2'),
          (SELECT m FROM existing), 'the duplicate points to the existing member');
SELECT is((SELECT count(*)::int FROM loyalty.member_profile WHERE phone = '13855556666'), 1, 'and no second profile was made');
SELECT is(pg_temp.as_role('im_crm', $$SELECT string_agg(kind || ' ' || ref || ' ' || split_part(reason, ':', 1), ', ')
            FROM loyalty.import_rejects('im-b1')$$),
          'member legacy-3 22023, member legacy-4 P0002, stay legacy-3 23503, stay legacy-1 22023',
          'the rejects report: what and why');
SELECT is(pg_temp.as_role('im_crm', $$SELECT string_agg(kind || ' ' || total_rows || '/' || imported || '/' || duplicate || '/' || rejected, ', ')
            FROM loyalty.import_progress('im-b1')$$), 'member 4/1/1/2, stay 4/2/0/2', 'progress by kind');

-- what the imported member has
CREATE TEMP TABLE imported AS SELECT member_id AS m FROM loyalty.import_member WHERE batch = 'im-b1' AND external_ref = 'legacy-1';
SELECT is((SELECT count(*)::int FROM loyalty.point_lot WHERE member_id = (SELECT m FROM imported) AND source = 'adjustment'), 2,
          'opening balance and the stay''s points as given: two lots');
SELECT ok((SELECT occurred_at < now() - interval '360 days' FROM loyalty.point_entry
            WHERE member_id = (SELECT m FROM imported) AND reference LIKE 'opening balance%'),
          'the opening balance is dated the day it was earned (its expiry follows the policy from then)');
SELECT is((SELECT nights::int FROM loyalty._counters_at((SELECT m FROM imported), now())), 3,
          'three nights credited to the counters');
SELECT ok(loyalty.points_balance((SELECT m FROM imported)) > 5500, 'balance: opening points, stay points as given and earned points');
SELECT is((SELECT count(*)::int FROM loyalty.ledger_check()), 0, 'the ledger invariant holds');

-- run again: nothing changes
CREATE TEMP TABLE before_rerun AS
SELECT (SELECT count(*) FROM loyalty.member) AS members, (SELECT count(*) FROM loyalty.point_lot) AS lots,
       (SELECT count(*) FROM loyalty.stay) AS stays;
SELECT is(pg_temp.as_role('im_crm', $$SELECT row(members, stays, rejected, remaining)::text FROM loyalty.import_step('im-b1', 100)$$),
          '(0,0,0,0)', 'a second run finds nothing to do');
-- a restart after a crash between the effect and the status: the row is pending again
UPDATE loyalty.import_member SET status = 'pending', member_id = NULL WHERE batch = 'im-b1' AND external_ref = 'legacy-1';
UPDATE loyalty.import_stay SET status = 'pending', stay_id = NULL WHERE batch = 'im-b1' AND status = 'imported';
SELECT is(pg_temp.as_role('im_crm', $$SELECT row(members, stays, rejected, remaining)::text FROM loyalty.import_step('im-b1', 100)$$),
          '(1,2,0,0)', 'the restarted rows are processed again');
SELECT is((SELECT member_id FROM loyalty.import_member WHERE batch = 'im-b1' AND external_ref = 'legacy-1'),
          (SELECT m FROM imported), 'to the same member (the idempotency key replays)');
SELECT is((SELECT row((SELECT count(*) FROM loyalty.member), (SELECT count(*) FROM loyalty.point_lot),
                      (SELECT count(*) FROM loyalty.stay))::text),
          (SELECT row(members, lots, stays)::text FROM before_rerun), 'no member, lot or stay twice');

-- a member row whose stays come in a later step
INSERT INTO loyalty.import_member (batch, external_ref, home_store, full_name, phone) VALUES
    ('im-b2', 'x-1', 'ima', 'Second Batch', '13855550010'), ('im-b2', 'x-2', 'ima', 'Second Batch Two', '13855550011');
INSERT INTO loyalty.import_stay (batch, member_ref, store_code, check_in, check_out, room_revenue) VALUES
    ('im-b2', 'x-2', 'ima', current_date - 30, current_date - 29, 300);
SELECT is(pg_temp.as_role('im_crm', $$SELECT row(members, stays, rejected, remaining)::text FROM loyalty.import_step('im-b2', 1)$$),
          '(1,0,0,2)', 'a step of one row: one member, its stays wait');
SELECT is(pg_temp.as_role('im_crm', $$SELECT row(members, stays, rejected, remaining)::text FROM loyalty.import_step('im-b2', 1)$$),
          '(1,0,0,1)', 'next step: the second member');
SELECT is(pg_temp.as_role('im_crm', $$SELECT row(members, stays, rejected, remaining)::text FROM loyalty.import_step('im-b2', 1)$$),
          '(0,1,0,0)', 'then its stay');
SELECT ok((SELECT count(*) FROM (SELECT action FROM loyalty.audit_log UNION ALL SELECT action FROM loyalty.audit_change_staging) a
            WHERE action = 'import_step') >= 6, 'every step is audited');

SELECT * FROM finish();
ROLLBACK;
