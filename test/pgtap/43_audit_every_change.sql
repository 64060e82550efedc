-- pgTAP: every mutating API function leaves its record in the audit trail
-- (docs/audit.md, issue 13 item 3).  The list of functions is read from the
-- catalog, not written here: every function and procedure of schema
-- loyalty whose name does not start with "_", that is VOLATILE and that is
-- granted to a role (the mutating API).  The test calls each one, then
-- fails on any function of that list that left no record (a change record
-- in loyalty.audit_change_staging, or a read record in loyalty.audit_log,
-- written by this session since the test began) and is not in the
-- commented exemption list below.  A function added to the API without a
-- record, or without a call here, fails this test.
--
-- Adding a function: call it below (in its area), with arguments that make
-- it change something.  Its record's action is its own name; if it is not
-- (a read recorded under another action), add a row to action_of.  Only a
-- function that cannot be called in this transaction, or that changes
-- nothing, goes into exempt, with the reason.
BEGIN;
SELECT plan(7);

CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS began;

-- the mutating API, from the catalog
CREATE TEMP VIEW mutating AS
SELECT p.oid::regprocedure AS fn, p.proname::text AS name, p.prosrc
  FROM pg_proc p
 WHERE p.pronamespace = 'loyalty'::regnamespace
   AND p.proname !~ '^_' AND p.provolatile = 'v' AND p.prokind IN ('f', 'p')
   AND EXISTS (SELECT 1 FROM aclexplode(p.proacl) a
                WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner);

-- the records this session left since the test began
CREATE TEMP VIEW trail AS
SELECT s.action FROM loyalty.audit_change_staging s
UNION ALL
SELECT a.action FROM loyalty.audit_log a
 WHERE a.at >= (SELECT began FROM t0) AND a.login = session_user;

-- functions whose record carries another action than their name
CREATE TEMP TABLE action_of (name text PRIMARY KEY, action text NOT NULL);
INSERT INTO action_of VALUES
    ('member_erase', 'erase'),               -- a read record (41_privacy: recorded even if the erasure fails)
    ('member_export', 'export'),
    ('frontdesk_lookup', 'lookup'),          -- read records of the privacy area (41, 46)
    ('frontdesk_lookup_phone', 'lookup'),
    ('housekeeping_profile', 'profile'),
    ('identity_matches', 'verify_id'),
    ('marketing_contacts', 'contact_read'),
    ('my_profile', 'profile'),               -- the member app's read of its own profile (68)
    ('import_run', 'import_step');           -- one record per batch it commits

-- functions this test does not call, and why
CREATE TEMP TABLE exempt (name text PRIMARY KEY, why text NOT NULL);
INSERT INTO exempt VALUES
    -- changes nothing: a computation over a policy document
    ('policy_preview', 'computes what a policy would earn; writes nothing'),
    -- moves an event consumer's cursor; no member or program data changes
    ('event_ack', 'bookkeeping of an event consumer''s position in the outbox'),
    -- procedures that COMMIT cannot run in this transaction: their record is
    -- written by the function that starts their job, called below (and
    -- test/t/063_schedules.pl runs the scheduled ones and checks their records)
    ('tier_requalify', 'commits; recorded by loyalty._job_start (called below)'),
    ('tier_downgrade_apply', 'commits; recorded by loyalty._job_start (called below)'),
    ('points_expire_batch', 'commits; recorded by loyalty._job_start (called below)'),
    ('points_activate_due_batch', 'commits; recorded by loyalty._job_start (called below)'),
    ('retention_purge_batch', 'commits; recorded by loyalty._job_start (called below)'),
    ('member_erase_batch', 'commits; recorded by loyalty._job_start (called below)'),
    ('audit_retention_purge_batch', 'commits; recorded by loyalty._job_start (called below)'),
    ('score_refresh', 'commits; recorded by loyalty._job_start (called below)'),
    ('segment_refresh', 'commits; recorded by loyalty._job_start (called below)'),
    ('import_run', 'commits; each batch is an import_step, which is called below'),
    -- need pg_cron in the database (the test database has none)
    ('job_schedule', 'needs pg_cron in the database: test/t/063_schedules.pl checks its record'),
    ('job_unschedule', 'needs pg_cron in the database: test/t/063_schedules.pl checks its record'),
    -- need a second server, or must be the first statement of a transaction
    ('replica_slot_create', 'must run before the transaction''s first write: test/t/051_replica_hub.pl'),
    ('replica_outbox_attach', 'connects to a store server: test/t/051_replica_hub.pl'),
    ('store_subscribe', 'connects to headquarters: test/t/051_replica_hub.pl'),
    ('hub_subscribe', 'connects to headquarters: test/t/051_replica_hub.pl'),
    -- reads the state of each replication link (connects to the other end); changes nothing
    ('replica_link_check', 'reads link states over the network; changes nothing'),
    -- the scheduled link check (pg_cron, every five minutes): writes only its
    -- own monitoring log, loyalty.replica_link_log (test/pgtap/54_replica_link_watch.sql)
    ('replica_link_watch', 'bookkeeping of the link checks in replica_link_log; no member or program data changes');

-- the deprecated 1.1 names (docs/deprecated.md) call their 1.2 function,
-- which records: checked below, not called
CREATE TEMP TABLE deprecated (name text PRIMARY KEY, target text NOT NULL);
INSERT INTO deprecated VALUES
    ('accrue', 'points_accrue'), ('activate', 'points_activate'), ('activate_due', 'points_activate_due'),
    ('redeem', 'points_redeem'), ('redeem_cash', 'points_redeem_cash'), ('reverse', 'points_reverse'),
    ('transfer', 'points_transfer'), ('expire_points', 'points_expire'),
    ('expire_points_batch', 'points_expire_batch'), ('activate_due_batch', 'points_activate_due_batch'),
    ('enroll', 'member_enroll'), ('record_stay', 'stay_record'), ('record_charge', 'charge_record'),
    ('set_risk_type', 'risk_type_set'), ('raise_risk_tag', 'risk_tag_raise'), ('resolve_risk_tag', 'risk_tag_resolve'),
    ('define_benefit', 'benefit_define'), ('grant_benefit', 'benefit_grant'), ('end_benefit_grant', 'benefit_grant_end'),
    ('use_benefit', 'benefit_use'), ('create_store', 'store_create'), ('create_staff', 'staff_create'),
    ('schedule_jobs', 'job_schedule'), ('unschedule_jobs', 'job_unschedule'),
    ('store_raise_risk_tag', 'store_risk_tag_raise'), ('store_use_benefit', 'store_benefit_use'),
    ('store_record_preference', 'store_preference_record'), ('store_accrue', 'store_points_accrue'),
    ('store_redeem', 'store_points_redeem'), ('replica_add_store', 'replica_store_add'),
    ('replica_add_hub', 'replica_hub_add'), ('replica_remove_store', 'replica_store_remove'),
    ('replica_set_mode', 'replica_mode_set'), ('replica_set_offline_cap', 'replica_offline_cap_set'),
    ('replica_create_slot', 'replica_slot_create'), ('replica_attach_outbox', 'replica_outbox_attach'),
    ('store_prune_outbox', 'store_outbox_prune'), ('regenerate_views', 'views_regenerate');

CREATE TEMP TABLE k (n text PRIMARY KEY, v text);
GRANT ALL ON k TO PUBLIC;
CREATE FUNCTION pg_temp.k(n text) RETURNS text LANGUAGE sql AS $$ SELECT v FROM k WHERE k.n = $1 $$;
CREATE FUNCTION pg_temp.m(n text) RETURNS uuid LANGUAGE sql AS $$ SELECT v::uuid FROM k WHERE k.n = $1 $$;

-- stores, staff, members (operations, account)
SELECT loyalty.store_create('ev-s1', 'eva', 'Every A', 'bay', 'south', 'Asia/Shanghai'),
       loyalty.store_create('ev-s2', 'evb', 'Every B', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create('ev-st1', 'ev_desk', 'eva', 'frontdesk'),
       loyalty.staff_create('ev-st2', 'ev_house', 'eva', 'housekeeping'),
       loyalty.staff_create('ev-st3', 'ev_mkt', NULL, 'marketing');
INSERT INTO k SELECT 'ann', member_id::text FROM loyalty.member_enroll('ev-e1', 'eva', 'Ann Every', '13900007777', 'ann@example.com');
INSERT INTO k SELECT 'bo', member_id::text FROM loyalty.member_enroll('ev-e2', 'eva', 'Bo Every', '13900007778');
INSERT INTO k SELECT 'cy', member_id::text FROM loyalty.member_enroll('ev-e3', 'eva', 'Cy Every');
INSERT INTO k SELECT 'dup', member_id::text FROM loyalty.member_enroll('ev-e4', 'eva', 'Cy Every');
INSERT INTO k SELECT 'gone', member_id::text FROM loyalty.member_enroll('ev-e5', 'eva', 'Gone Every');
SELECT loyalty.member_update('ev-u1', pg_temp.m('ann'), '{"email": "ann2@example.com"}');
SELECT loyalty.member_status_set('ev-u2', pg_temp.m('cy'), 'suspended', 'audit test');
SELECT loyalty.member_status_set('ev-u3', pg_temp.m('cy'), 'active', 'audit test');
SELECT loyalty.member_home_store_set('ev-u4', pg_temp.m('bo'), 'evb');
SELECT loyalty.member_merge('ev-u5', pg_temp.m('cy'), pg_temp.m('dup'));

-- the ledger (loyalty)
SELECT loyalty.points_accrue('ev-p1', pg_temp.m('ann'), 'eva', 50000, 'stay', reference => 'ev-stay');
SELECT loyalty.points_accrue('ev-p2', pg_temp.m('ann'), 'eva', 2000, 'stay', reference => 'ev-pend', pending => true);
SELECT loyalty.points_activate('ev-p3', pg_temp.m('ann'), 'eva', 'ev-pend');
SELECT loyalty.points_redeem('ev-p4', pg_temp.m('ann'), 'eva', 1000, 'gift');
SELECT loyalty.points_redeem_cash('ev-p5', pg_temp.m('ann'), 'eva', 100.00);
SELECT loyalty.points_reverse('ev-p6', (SELECT entry_id FROM loyalty.point_entry WHERE reference = 'ev-stay' AND kind = 'accrue'),
                              'eva', 100, 1000);
SELECT loyalty.points_transfer('ev-p7', pg_temp.m('ann'), pg_temp.m('bo'), 'eva', 1000);
SELECT loyalty.points_expire('ev-p8', now());
SELECT loyalty.points_activate_due('ev-p9', now());
-- manual adjustments above the caps wait for another HQ login's decision
SELECT loyalty.staff_create('ev-st4', 'ev_crm', NULL, 'crm');
INSERT INTO k SELECT 'adj1', request_id::text
  FROM loyalty.points_adjust('ev-j1', pg_temp.m('ann'), 'eva', 100000000, 'goodwill');
INSERT INTO k SELECT 'adj2', request_id::text
  FROM loyalty.points_adjust('ev-j2', pg_temp.m('ann'), 'eva', 100000000, 'goodwill');
SET ROLE ev_crm;
SELECT loyalty.points_adjust_approve('ev-j3', pg_temp.m('adj1'));
SELECT loyalty.points_adjust_reject('ev-j4', pg_temp.m('adj2'));
RESET ROLE;

-- stays and charges (service)
SELECT loyalty.stay_record('ev-y1', 'eva', pg_temp.m('ann'), current_date - 3, current_date - 1, room_revenue => 1000);
SELECT loyalty.stay_record('ev-y2', 'eva', pg_temp.m('bo'), current_date - 1, current_date, room_revenue => 500,
                           checked_out => false);
SELECT loyalty.stay_checkout('ev-y2');
SELECT loyalty.charge_record('ev-y3', 'eva', pg_temp.m('ann'), 300);

-- tiers and the batch jobs (the procedures commit: their records are
-- written when their job starts, here without the procedure)
SELECT loyalty.tier_grant(pg_temp.m('bo'), 'gold', 'audit test');
SELECT loyalty._job_start('requalify', jsonb_build_object('as_of', now()), 100),
       loyalty._job_start('downgrade', jsonb_build_object('as_of', now()), 100),
       loyalty._job_start('expire', jsonb_build_object('as_of', now()), 100),
       loyalty._job_start('activate', jsonb_build_object('as_of', now()), 100),
       loyalty._job_start('retention', jsonb_build_object('as_of', now(), 'inactive_for', '3 years', 'retired_for', '1 year'), 100),
       loyalty._job_start('erase', jsonb_build_object('members', jsonb_build_array(pg_temp.m('gone')), 'reason', 'audit test'), 100),
       loyalty._job_start('audit_retention', jsonb_build_object('as_of', now(), 'keep', '3 years'), 1);

-- risk (security)
SELECT loyalty.risk_type_set('ev-r1', 'ev_risk', 'Every risk', ARRAY['gift']);
INSERT INTO k SELECT 'tag', loyalty.risk_tag_raise('ev-r2', pg_temp.m('bo'), 'eva', 'ev_risk', 'test')::text;
SELECT loyalty.risk_tag_resolve('ev-r3', pg_temp.m('tag'), 'settled', 'ok');

-- benefits
SELECT loyalty.benefit_define('ev-b1', 'ev_amenity', 'Every amenity', 'amenity');
INSERT INTO k SELECT 'grant', g::text FROM loyalty.benefit_grant('ev-b2', 'ev_amenity', 'store', '{"item": "tea"}', stores => ARRAY['eva']) g;
SELECT loyalty.benefit_use('ev-b3', pg_temp.m('ann'), 'eva', 'ev_amenity');
SELECT loyalty.benefit_grant_end('ev-b4', pg_temp.m('grant'), now());
SELECT loyalty.benefit_define('ev-b5', 'ev_water', 'Every water', 'amenity');
SELECT loyalty.benefit_grant('ev-b6', 'ev_water', 'store', '{"item": "water"}', stores => ARRAY['eva']);

-- rewards, vouchers, points sale, partners
SELECT loyalty.store_category_set('ev-w1', 'eva', 3::smallint);
SELECT loyalty.reward_define('ev-w2', 'ev_night', 'Every night', 'free_night', nightly_capacity => 2);
SELECT loyalty.reward_night_price_set('ev-w3', 'ev_night', 3::smallint, 'standard', 20000);
SELECT loyalty.reward_season_add('ev-w4', 'Every season', current_date + 10, current_date + 12);
SELECT loyalty.reward_capacity_set('ev-w5', 'ev_night', 'eva', current_date + 5, 1);
INSERT INTO k SELECT 'redemption', redemption_id::text FROM loyalty.reward_redeem('ev-w6', pg_temp.m('ann'), 'eva', 'ev_night', current_date + 5);
SELECT loyalty.reward_redemption_cancel('ev-w7', pg_temp.m('redemption'), 'eva');
SELECT loyalty.reward_define('ev-w8', 'ev_anniv', 'Every anniversary', 'experience', voucher_days => 90);
INSERT INTO k SELECT 'voucher', voucher_code FROM loyalty.award_issue('ev-w9', pg_temp.m('ann'), 'ev_anniv', 'Anniversary', 'eva');
SELECT loyalty.voucher_use('ev-w10', pg_temp.k('voucher'), 'eva');
SELECT loyalty.voucher_expire('ev-w11', now());
SELECT loyalty.reward_end('ev-w12', 'ev_anniv');
SELECT loyalty.points_sale_price_set('ev-q1', 1000, 100);
SELECT loyalty.points_sale_rule_set('ev-q2', 30000, 1000, 30);
INSERT INTO k SELECT 'sale', sale_id::text FROM loyalty.points_buy('ev-q3', pg_temp.m('ann'), 'eva', 5000, 'pos-1');
SELECT loyalty.points_sale_refund('ev-q4', pg_temp.m('sale'), 'eva');
SELECT loyalty.points_gift('ev-q5', pg_temp.m('ann'), pg_temp.m('bo'), 'eva', 2000, 'pos-2');
SELECT loyalty.consent_record(pg_temp.m('ann'), 'third_party', true, 'notice-1');
SELECT loyalty.partner_set('ev-t1', 'evair', 'Every Air', 'airline', 1000, 250, 5000, 1000);
INSERT INTO k SELECT 'xfer1', transfer_id::text FROM loyalty.partner_transfer('ev-t2', pg_temp.m('ann'), 'eva', 'evair', 10000, 'EA1');
INSERT INTO k SELECT 'xfer2', transfer_id::text FROM loyalty.partner_transfer('ev-t3', pg_temp.m('ann'), 'eva', 'evair', 10000, 'EA1');
SELECT loyalty.partner_transfer_confirm('ev-t4', pg_temp.m('xfer1'), 'EA-REF-1');
SELECT loyalty.partner_transfer_reject('ev-t5', pg_temp.m('xfer2'), 'late');

-- policies and privacy
SELECT loyalty.policy_set((SELECT p.document::text FROM loyalty.policy p ORDER BY p.effective_from DESC LIMIT 1),
    now() + interval '1 day', 'every change');
SELECT loyalty.field_policy_set('frontdesk', 'email', (loyalty.field_treatments('email'))[1]);
SELECT loyalty.views_regenerate();
INSERT INTO k SELECT 'pref', preference_id::text FROM loyalty.preference_add(pg_temp.m('ann'), 'pillow', 'down', 'chain', 'eva') preference_id;
SELECT loyalty.preference_retire(pg_temp.m('pref'));
SELECT loyalty.identity_set(pg_temp.m('ann'), 'passport', 'E12345678');
SELECT loyalty.consent_record(pg_temp.m('ann'), 'marketing_email', true, 'notice-1');
SELECT count(*) FROM loyalty.frontdesk_lookup((SELECT card_no FROM loyalty.member WHERE member_id = pg_temp.m('ann')));
SELECT count(*) FROM loyalty.frontdesk_lookup_phone('13900007778', 'Bo');
SELECT count(*) FROM loyalty.housekeeping_profile(pg_temp.m('ann'));
SELECT loyalty.identity_matches(pg_temp.m('ann'), 'E12345678');
SELECT count(*) FROM loyalty.marketing_contacts('email', 'every change');
SELECT loyalty.member_export(pg_temp.m('bo'));
SELECT loyalty.member_erase(pg_temp.m('gone'), 'audit test');
SELECT * FROM loyalty.retention_purge(false);

-- CRM: tags, preferences, cases, interactions, the member app
INSERT INTO k SELECT 'mtag', loyalty.tag_add('ev-c1', pg_temp.m('ann'), 'vip', tentative => true)::text;
SELECT loyalty.tag_confirm('ev-c2', pg_temp.m('mtag'));
SELECT loyalty.tag_retire('ev-c3', pg_temp.m('mtag'));
INSERT INTO k SELECT 'tpref', loyalty.preference_tentative_add('ev-c4', pg_temp.m('ann'), 'floor', 'high', 'chain', 'eva')::text;
SELECT loyalty.preference_confirm('ev-c5', pg_temp.m('tpref'));
INSERT INTO k SELECT 'case', loyalty.case_open('ev-c6', pg_temp.m('ann'), 'complaint', 'phone', 'low', 'noise', 'eva')::text;
SELECT loyalty.case_assign('ev-c7', pg_temp.m('case'), 'housekeeping');
SELECT loyalty.interaction_log('ev-c8', pg_temp.m('ann'), 'phone', 'call', 'called about noise', pg_temp.m('case'), 'eva');
SELECT loyalty.case_resolve('ev-c9', pg_temp.m('case'), 'moved room', 4);
INSERT INTO k SELECT 'case2', loyalty.case_open('ev-c10', pg_temp.m('bo'), 'complaint', 'phone', 'low', 'cold', 'eva')::text;
UPDATE loyalty.service_case SET due_at = now() - interval '1 hour' WHERE case_id = pg_temp.m('case2');
SELECT loyalty.case_escalate_overdue(now());
CREATE ROLE ev_guest LOGIN;
SELECT loyalty.member_app_bind('ev-a1', 'ev_guest', pg_temp.m('bo'));
SET LOCAL ROLE ev_guest;
SELECT count(*) FROM loyalty.my_profile();
SELECT loyalty.my_consent_set('ev-a2', 'marketing_email', false, 'v3');
SELECT loyalty.my_contact_update('ev-a3', email => 'bo@example.com');
SELECT loyalty.my_request('ev-a4', 'export');
RESET ROLE;
SELECT loyalty.member_app_unbind('ev-a5', 'ev_guest');

-- segments and campaigns (marketing)
SELECT loyalty.segment_define('ev-g1', 'ev_all', 'Every member', '{"nights_min": 1}');
-- the score and segment jobs, driven as loyalty._job_run drives them for
-- score_refresh and segment_refresh (which commit); _job_start writes the record
DO $$
DECLARE
    job uuid;
    after uuid;
    b record;
    k text;
BEGIN
    FOREACH k IN ARRAY ARRAY['score', 'segment'] LOOP
        job := loyalty._job_start(k, jsonb_build_object('as_of', now()), 100);
        after := '00000000-0000-0000-0000-000000000000';
        LOOP
            b := loyalty._job_batch(k, jsonb_build_object('as_of', now()), after, 100);
            EXIT WHEN b.processed = 0;
            PERFORM loyalty._job_step(job, b.processed, b.changed);
            after := b.last_key;
        END LOOP;
        PERFORM loyalty._job_finish(job, NULL, NULL);
    END LOOP;
END $$;
INSERT INTO loyalty.campaign (code, name, kind, fixed_points, starts_at, ends_at, priority, registration_required)
VALUES ('ev_camp', 'Every campaign', 'fixed', 100, now() - interval '1 day', now() + interval '30 days', 7431, true);
SELECT loyalty.campaign_target('ev-g2', 'ev_camp', 'ev_all', 0);
SELECT loyalty.campaign_register('ev-g3', 'ev_camp', pg_temp.m('ann'));
SELECT loyalty.audience_export('ev-g4', 'ev_camp', 'email');

-- the CRM import
SELECT loyalty.import_step('ev-import');

-- store replicas at HQ (operations)
SELECT loyalty.replica_store_add('ev-x1', 'evb');
SELECT loyalty.replica_offline_cap_set('ev-x2', 'evb', 5000);
SELECT loyalty.replica_mode_set('ev-x3', 'evb', 'streaming');
SELECT loyalty.replica_hub_add('ev-x4', 'evhub');
SELECT loyalty.replica_store_remove('ev-x5', 'evhub');
SELECT loyalty.replica_retry();
CREATE ROLE ev_repl LOGIN REPLICATION;
SELECT loyalty.replica_login_grant('ev-x7', 'evb', 'ev_repl');
SELECT loyalty.replica_login_revoke('ev-x8', 'ev_repl');
-- a store's exact phone lookup over the contact rows (a read record)
SELECT count(*) FROM loyalty.store_member_find('13900007777');
SELECT loyalty.replica_adopt();
-- store mode: this database plays store eva from here on
SELECT loyalty.replica_store_add('ev-x6', 'eva');
INSERT INTO loyalty.replica_node (node_role, store_code, incarnation) VALUES ('store', 'eva', 1);
SELECT loyalty.store_points_accrue('ev-z1', pg_temp.m('ann'), 100, 'spend', 'ev-z1');
SELECT loyalty.store_points_redeem('ev-z2', pg_temp.m('ann'), 1000, 'gift');
SELECT loyalty.store_preference_record('ev-z3', pg_temp.m('ann'), 'floor', 'low');
SELECT loyalty.store_risk_tag_raise('ev-z4', pg_temp.m('ann'), 'ev_risk', 'store note');
SELECT loyalty.store_benefit_use('ev-z5', pg_temp.m('ann'), 'ev_water');
SELECT loyalty.store_window_tick();
SELECT loyalty.store_outbox_prune('ev-z6');
SELECT loyalty.store_unsubscribe();

-- superuser only (not granted, so not in the list above): HQ's hardening
-- of the slot functions (rolled back with this transaction)
SELECT count(*) FROM loyalty.replica_harden();
SELECT ok(EXISTS (SELECT 1 FROM trail WHERE action = 'replica_harden'), 'replica_harden left its record');

-- last: the purge locks the log against the writers until this transaction
-- ends (an audited read after it would wait for ever)
SELECT * FROM loyalty.audit_retention_purge(false);

-- the check
SELECT is(ARRAY(SELECT m.fn::text FROM mutating m
                 WHERE m.name NOT IN (SELECT name FROM exempt)
                   AND m.name NOT IN (SELECT name FROM deprecated)
                   AND NOT EXISTS (SELECT 1 FROM trail r
                                    WHERE r.action = coalesce((SELECT a.action FROM action_of a WHERE a.name = m.name), m.name))
                 ORDER BY 1),
          '{}'::text[], 'every mutating function called here left its record in the audit trail');
SELECT is(ARRAY(SELECT e.name FROM exempt e
                 WHERE e.name NOT IN (SELECT name FROM mutating)
                    OR e.why NOT LIKE 'commits; recorded by%'
                       AND EXISTS (SELECT 1 FROM trail r WHERE r.action = e.name)
                 ORDER BY 1),
          '{}'::text[], 'every exemption names a mutating function this test does not reach');
SELECT is(ARRAY(SELECT e.name FROM exempt e
                 WHERE e.why LIKE 'commits; recorded by%'
                   AND NOT EXISTS (SELECT 1 FROM trail r
                                    WHERE r.action = coalesce((SELECT a.action FROM action_of a WHERE a.name = e.name), e.name))
                 ORDER BY 1),
          '{}'::text[], 'the procedures that commit: the functions that start their jobs left their records');
SELECT is(ARRAY(SELECT d.name FROM deprecated d
                 WHERE d.name NOT IN (SELECT name FROM mutating)
                    OR NOT EXISTS (SELECT 1 FROM mutating w WHERE w.name = d.name AND w.prosrc ~ ('loyalty\.' || d.target || '\M'))
                    OR d.target NOT IN (SELECT name FROM mutating)
                 ORDER BY 1),
          '{}'::text[], 'every deprecated name calls its 1.2 function');
SELECT is(ARRAY(SELECT d.name FROM deprecated d
                 WHERE d.target NOT IN (SELECT name FROM exempt)
                   AND NOT EXISTS (SELECT 1 FROM trail r WHERE r.action = d.target)
                 ORDER BY 1),
          '{}'::text[], 'and that 1.2 function left its record here');
SELECT is((SELECT count(*)::int FROM loyalty.audit_change_staging
            WHERE login IS DISTINCT FROM session_user::text OR role IS NULL OR purpose IS NULL), 0,
          'every change record has its login, role and purpose');

SELECT * FROM finish();
ROLLBACK;
