-- pgTAP: change records (docs/audit.md, issue 13 item 3).  Each mutating
-- API call writes one change record in its own transaction, with the
-- member, the action and a purpose code; a replay with the same key writes
-- none; a purpose that is not a code of loyalty.audit_purpose is refused up
-- front with 22023 and nothing is written.  The bench aid
-- loyalty.audit_changes_bench_off stops the records of a superuser's own
-- session only, and cannot be attached to a role or a database.
BEGIN;
SELECT plan(40);

-- the change records of this transaction, by action
CREATE TEMP VIEW rec AS
    SELECT action, member_id, purpose, detail FROM loyalty.audit_change_staging;
CREATE TEMP TABLE t (k text PRIMARY KEY, v text) ON COMMIT DROP;

-- stores and staff (operations)
SELECT loyalty.store_create('ac-1', 'aca', 'Audit A', 'bay', 'south', 'Asia/Shanghai');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'store_create' AND purpose = 'operations'
             AND detail ->> 'store_code' = 'aca'), 1, 'store_create is recorded');
SELECT loyalty.staff_create('ac-2', 'aca_desk_audit', 'aca', 'frontdesk', 'secret-pw');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'staff_create' AND detail ->> 'login' = 'aca_desk_audit'), 1,
    'staff_create is recorded');
SELECT is((SELECT count(*)::int FROM rec WHERE detail::text LIKE '%secret-pw%'), 0, 'never with the password');

-- enrolment (account)
INSERT INTO t SELECT 'ann', member_id::text FROM loyalty.member_enroll('ac-3', 'aca', 'Ann Audit', '13900009999');
INSERT INTO t SELECT 'bo', member_id::text FROM loyalty.member_enroll('ac-4', 'aca', 'Bo Audit');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'member_enroll' AND purpose = 'account'
             AND member_id = (SELECT v::uuid FROM t WHERE k = 'ann')), 1, 'member_enroll is recorded with the member');
SELECT is((SELECT count(*)::int FROM rec WHERE detail::text LIKE '%13900009999%' OR detail::text LIKE '%Ann Audit%'), 0,
    'with no contact data in the detail');

-- the ledger (loyalty)
SELECT loyalty.points_accrue('ac-5', (SELECT v::uuid FROM t WHERE k = 'ann'), 'aca', 5000, 'stay', reference => 'ac-stay');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'points_accrue' AND purpose = 'loyalty'
             AND member_id = (SELECT v::uuid FROM t WHERE k = 'ann') AND (detail ->> 'points')::int = 5000), 1,
    'points_accrue is recorded with its points');
SELECT loyalty.points_accrue('ac-5', (SELECT v::uuid FROM t WHERE k = 'ann'), 'aca', 5000, 'stay', reference => 'ac-stay');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'points_accrue'), 1, 'a replay records nothing');
SELECT loyalty.points_accrue('ac-6', (SELECT v::uuid FROM t WHERE k = 'ann'), 'aca', 2000, 'stay', reference => 'ac-pend', pending => true);
SELECT loyalty.points_activate('ac-7', (SELECT v::uuid FROM t WHERE k = 'ann'), 'aca', 'ac-pend');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'points_activate'), 1, 'points_activate is recorded');
SELECT loyalty.points_redeem('ac-8', (SELECT v::uuid FROM t WHERE k = 'ann'), 'aca', 1000, 'gift');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'points_redeem'), 1, 'points_redeem is recorded');
SELECT loyalty.points_redeem_cash('ac-9', (SELECT v::uuid FROM t WHERE k = 'ann'), 'aca', 100.00);
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'points_redeem_cash' AND detail ? 'points'), 1, 'points_redeem_cash is recorded');
SELECT loyalty.points_reverse('ac-10', (SELECT entry_id FROM loyalty.point_entry
    WHERE reference = 'ac-stay' AND kind = 'accrue'), 'aca', 100, 1000);
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'points_reverse'), 1, 'points_reverse is recorded');
SELECT loyalty.points_transfer('ac-11', (SELECT v::uuid FROM t WHERE k = 'ann'), (SELECT v::uuid FROM t WHERE k = 'bo'), 'aca', 1000);
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'points_transfer'), 1, 'points_transfer is recorded');
SELECT loyalty.points_expire('ac-12', now());
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'points_expire'), 1, 'points_expire is recorded');
SELECT loyalty.points_activate_due('ac-13', now());
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'points_activate_due'), 1, 'points_activate_due is recorded');

-- stays and charges (service)
SELECT loyalty.stay_record('ac-14', 'aca', (SELECT v::uuid FROM t WHERE k = 'ann'), '2026-03-01', '2026-03-03',
    room_revenue => 1000);
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'stay_record' AND purpose = 'service'
             AND (detail ->> 'nights')::int = 2), 1, 'stay_record is recorded');
SELECT loyalty.stay_record('ac-15', 'aca', (SELECT v::uuid FROM t WHERE k = 'bo'), '2026-03-05', '2026-03-06',
    room_revenue => 500, checked_out => false);
SELECT loyalty.stay_checkout('ac-15');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'stay_checkout'
             AND member_id = (SELECT v::uuid FROM t WHERE k = 'bo')), 1, 'stay_checkout is recorded');
SELECT loyalty.charge_record('ac-16', 'aca', (SELECT v::uuid FROM t WHERE k = 'ann'), 300);
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'charge_record'), 1, 'charge_record is recorded');

-- tiers (crm)
SELECT loyalty.tier_grant((SELECT v::uuid FROM t WHERE k = 'bo'), 'gold', 'audit test');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'tier_grant' AND purpose = 'crm'
             AND detail ->> 'tier' = 'gold'), 1, 'tier_grant is recorded');

-- risk tags (security)
SELECT loyalty.risk_type_set('ac-17', 'ac_risk', 'Audit risk', ARRAY['gift']);
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'risk_type_set' AND purpose = 'security'), 1, 'risk_type_set is recorded');
INSERT INTO t SELECT 'tag', loyalty.risk_tag_raise('ac-18', (SELECT v::uuid FROM t WHERE k = 'bo'), 'aca', 'ac_risk', 'test')::text;
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'risk_tag_raise'
             AND member_id = (SELECT v::uuid FROM t WHERE k = 'bo')), 1, 'risk_tag_raise is recorded with the member');
SELECT loyalty.risk_tag_resolve('ac-19', (SELECT v::uuid FROM t WHERE k = 'tag'), 'settled', 'ok');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'risk_tag_resolve'
             AND member_id = (SELECT v::uuid FROM t WHERE k = 'bo')), 1, 'risk_tag_resolve is recorded with the member');

-- benefits (loyalty, service)
SELECT loyalty.benefit_define('ac-20', 'ac_amenity', 'Audit amenity', 'amenity');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'benefit_define'), 1, 'benefit_define is recorded');
INSERT INTO t SELECT 'grant', g::text FROM loyalty.benefit_grant('ac-21', 'ac_amenity', 'store', '{"item": "tea"}', stores => ARRAY['aca']) g;
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'benefit_grant'), 1, 'benefit_grant is recorded');
SELECT loyalty.benefit_use('ac-22', (SELECT v::uuid FROM t WHERE k = 'ann'), 'aca', 'ac_amenity');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'benefit_use' AND purpose = 'service'
             AND member_id = (SELECT v::uuid FROM t WHERE k = 'ann')), 1, 'benefit_use is recorded');
SELECT loyalty.benefit_grant_end('ac-23', (SELECT v::uuid FROM t WHERE k = 'grant'), now());
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'benefit_grant_end'), 1, 'benefit_grant_end is recorded');

-- policies (loyalty, privacy)
SELECT loyalty.policy_set((SELECT p.document::text FROM loyalty.policy p ORDER BY p.effective_from DESC LIMIT 1),
    now() + interval '1 day', 'audit test');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'policy_set' AND detail ->> 'note' = 'audit test'), 1,
    'policy_set is recorded');
SELECT loyalty.field_policy_set('frontdesk', 'email', (loyalty.field_treatments('email'))[1]);
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'field_policy_set' AND purpose = 'privacy'
             AND detail ->> 'field' = 'email'), 1, 'field_policy_set is recorded');

-- every record names who made the change
SELECT is((SELECT count(*)::int FROM loyalty.audit_change_staging
            WHERE login IS DISTINCT FROM session_user::text OR role IS NULL), 0, 'every record has its login and role');
-- 24 functions (field_policy_set's rebuild of the views is not a record of
-- its own: the trigger's views_regenerate records only a direct call)
SELECT is((SELECT count(DISTINCT action)::int FROM rec), 24, 'the calls above left 24 kinds of record');

-- purpose codes are checked up front
SELECT throws_ok($$SELECT loyalty._audit_change(NULL, 'ac_bad', 'curiosity')$$,
    '22023', 'unknown audit purpose "curiosity"', 'a purpose outside loyalty.audit_purpose is refused');
SELECT throws_ok($$SELECT loyalty._audit_change(NULL, 'ac_bad', repeat('x', 201))$$,
    '22023', 'audit purpose must be at most 200 characters', 'an over-long purpose is refused with 22023');
SELECT throws_ok($$SELECT loyalty._audit_change(NULL, 'Bad Action', 'crm')$$,
    '22023', NULL, 'a malformed action is refused');
SELECT is((SELECT count(*)::int FROM rec WHERE action IN ('ac_bad', 'Bad Action')), 0, 'nothing written by the refused calls');

-- loyalty.audit_changes_bench_off (a bench aid, docs/audit.md): honoured
-- for a session whose login is a superuser, never for a normal login, not
-- even inside a superuser's SECURITY DEFINER function; settable only in a
-- session, by a superuser
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = session_user), true, 'this test runs as a superuser');
CREATE ROLE ac_bench_login LOGIN;
CREATE FUNCTION pg_temp.ac_bench_call(a text) RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT loyalty._audit_change(NULL, a, 'operations') $$;
SET LOCAL loyalty.audit_changes_bench_off = on;
SELECT pg_temp.ac_bench_call('ac_bench_super');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'ac_bench_super'), 0,
    'bench_off: a superuser''s own session writes no change record');
SET SESSION AUTHORIZATION ac_bench_login;
SELECT pg_temp.ac_bench_call('ac_bench_login');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*)::int FROM loyalty.audit_change_staging
            WHERE action = 'ac_bench_login' AND login = 'ac_bench_login'), 1,
    'bench_off: a normal login''s change is recorded, even through a superuser''s SECURITY DEFINER function');
-- a statement as another role, its SQLSTATE ('ok' if none)
CREATE FUNCTION pg_temp.ac_as(r text, q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    BEGIN
        EXECUTE q;
    EXCEPTION WHEN OTHERS THEN
        RESET ROLE;
        RETURN SQLSTATE;
    END;
    RESET ROLE;
    RETURN 'ok';
END
$$;
SELECT is(pg_temp.ac_as('ac_bench_login', 'SET loyalty.audit_changes_bench_off = on'), '42501',
    'bench_off: a normal login cannot set it');
SELECT throws_ok($$ALTER ROLE ac_bench_login SET loyalty.audit_changes_bench_off = on$$, '42501', NULL,
    'bench_off: cannot be attached to a role');
SELECT throws_ok($q$DO $d$ BEGIN
        EXECUTE format('ALTER DATABASE %I SET loyalty.audit_changes_bench_off = on', current_database());
    END $d$ $q$, '42501', NULL, 'bench_off: cannot be attached to a database');
SET LOCAL loyalty.audit_changes_bench_off = off;
SELECT pg_temp.ac_bench_call('ac_bench_on_again');
SELECT is((SELECT count(*)::int FROM rec WHERE action = 'ac_bench_on_again'), 1,
    'bench_off off: the superuser''s change is recorded again');

SELECT * FROM finish();
ROLLBACK;
