-- CRM in the demo chain (docs/crm.md): a phone number changed at one
-- store and seen at another, a duplicate profile found and merged, and a
-- complaint that nobody handled in time escalated by the scheduled job.
\set QUIET on
SELECT m.member_id AS crm_member, m.card_no AS crm_card,
       substr(p.full_name, 1, 1) AS crm_surname
  FROM loyalty.member m JOIN loyalty.member_profile p USING (member_id)
 WHERE m.home_store = 'szx' AND m.status = 'active'
   AND m.card_no NOT LIKE '80000000%'   -- not a fixed member of docs/demo.md
 ORDER BY m.card_no OFFSET 10 LIMIT 1 \gset

\set QUIET off
\echo
\echo '== CRM: the guest gives the Shenzhen front desk (szx_desk) a new phone number and confirms her data'
\set QUIET on
SET ROLE szx_desk;
\set QUIET off
SELECT loyalty.member_update(gen_random_uuid()::text, :'crm_member',
         '{"phone": "13912340065", "verified": true}') AS updated;
\echo '== ... but the front desk may not change her name (only HQ CRM may)'
SELECT demo.try(format($q$SELECT loyalty.member_update(gen_random_uuid()::text, %L,
         '{"full_name": "Someone Else"}')$q$, :'crm_member')) AS rename;
\set QUIET on
RESET ROLE;
SET ROLE sha_desk;
\set QUIET off
\echo '== The Shanghai front desk (sha_desk) finds her by the new number and her surname at once (masked)'
SELECT card_no, full_name, phone FROM loyalty.frontdesk_lookup_phone('13912340065', :'crm_surname', 'check_in');
\set QUIET on
RESET ROLE;
SET ROLE hq_crm;
\set QUIET off
\echo '== HQ CRM: the audit trail records who changed what, where'
SELECT role, store_code, action, purpose, fields
  FROM loyalty.audit_member(:'crm_member') WHERE action = 'member_update';

\echo
\echo '== CRM: she enrols again at Shanghai with the same phone; HQ CRM finds the duplicate'
\set QUIET on
RESET ROLE;
SELECT p.full_name AS crm_name, p.birth_date AS crm_birth
  FROM loyalty.member_profile p WHERE p.member_id = :'crm_member' \gset
SET ROLE sha_desk;
SELECT member_id AS crm_dup, card_no AS crm_dup_card
  FROM loyalty.member_enroll(gen_random_uuid()::text, 'sha', :'crm_name', '13912340065',
                             birth_date => :'crm_birth') \gset
RESET ROLE;
SELECT loyalty.points_accrue(gen_random_uuid()::text, :'crm_dup', 'sha', 1500, 'adjustment',
                             reference => 'welcome bonus') IS NOT NULL AS accrued \gset
RESET ROLE;
SET ROLE hq_crm;
\set QUIET off
SELECT d.score, d.reasons
  FROM loyalty.member_duplicates(0.9, 1000) d
 WHERE (d.member_a, d.member_b) IN ((:'crm_member', :'crm_dup'), (:'crm_dup', :'crm_member'));
\echo '== HQ CRM merges the Shanghai profile into the original one (points, stays, consents, tier move over)'
SELECT r->>'points' AS points_moved, r->>'lots' AS lots, r->>'tier' AS tier
  FROM loyalty.member_merge(gen_random_uuid()::text, :'crm_member', :'crm_dup') AS r;
\echo '== The duplicate is closed and its card resolves to the survivor'
SELECT loyalty.card_resolve(:'crm_dup_card') = :'crm_member' AS card_resolves_to_survivor;
\set QUIET on
RESET ROLE;
\set QUIET off
SELECT m.status, m.status_reason, m.merged_into = :'crm_member' AS points_to_survivor
  FROM loyalty.member m WHERE m.member_id = :'crm_dup';
\echo '== ... it earns nothing any more, and the ledger still balances'
SELECT demo.try(format($q$SELECT loyalty.points_accrue(gen_random_uuid()::text, %L, 'sha', 100, 'adjustment')$q$,
                       :'crm_dup')) AS accrue_on_duplicate;
SELECT count(*) AS ledger_problems FROM loyalty.ledger_check();

\echo
\echo '== CRM: a complaint at Shenzhen (szx_desk), due in 24 hours because it is "high"'
\set QUIET on
SET ROLE szx_desk;
SELECT loyalty.case_open(gen_random_uuid()::text, :'crm_member', 'complaint', 'front_desk', 'high',
                         'bar noise until 2am, room 1208') AS crm_case \gset
SELECT loyalty.interaction_log(gen_random_uuid()::text, :'crm_member', 'phone', 'call',
                               'called back after the complaint, apologised', :'crm_case') IS NOT NULL AS logged \gset
RESET ROLE;
-- demo scaffolding: the tour cannot wait a day, so the case is made to
-- look as if it had been opened 25 hours ago
UPDATE loyalty.service_case SET opened_at = now() - interval '25 hours',
       due_at = now() - interval '1 hour' WHERE case_id = :'crm_case';
SET ROLE hq_crm;
\set QUIET off
\echo '== Nobody handled it in time: the escalation job (loyalty-case-escalate) moves it to the store manager'
SELECT loyalty.case_escalate_overdue() >= 1 AS escalated;
SELECT kind, severity, status, department, escalation_level, store_code
  FROM loyalty.service_cases WHERE case_id = :'crm_case';
\set QUIET on
RESET ROLE;
\set QUIET off
\echo '== ... with an event on the outbox for the applications'
SELECT kind AS event, payload->>'department' AS to_department, payload->>'level' AS level
  FROM loyalty.event_outbox WHERE kind = 'case_escalated' AND payload->>'case_id' = :'crm_case';
\set QUIET on
SET ROLE szx_mgr;
\set QUIET off
\echo '== The Shenzhen manager (szx_mgr) resolves it; the guest rates the recovery 4 of 5'
SELECT loyalty.case_resolve(gen_random_uuid()::text, :'crm_case', 'moved to a quiet room, bar fee waived', 4);
SELECT status, satisfaction, overdue FROM loyalty.service_cases WHERE case_id = :'crm_case';
\echo '== Shanghai staff do not see Shenzhen''s cases'
\set QUIET on
RESET ROLE;
SET ROLE sha_desk;
\set QUIET off
SELECT count(*) AS szx_cases_seen_from_sha FROM loyalty.service_cases WHERE store_code = 'szx';
\set QUIET on
RESET ROLE;

\echo
\echo '== CRM: Shenzhen housekeeping (szx_house) records a one-off "warmer light" request as tentative'
\set QUIET on
SET ROLE szx_house;
SELECT loyalty.preference_tentative_add(gen_random_uuid()::text, :'crm_member', 'lighting', 'warmer light') AS crm_pref \gset
RESET ROLE;
SET ROLE szx_desk;
SELECT loyalty.tag_add(gen_random_uuid()::text, :'crm_member', 'quiet_room', 'asked for a room away from the lift',
                       tentative => true) AS crm_tag \gset
RESET ROLE;
-- she books a room in Shanghai, so Shanghai's staff reach her (docs/privacy.md)
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, status)
VALUES (:'crm_member', 'sha', current_date + 7, current_date + 8, 'booked');
SET ROLE sha_house;
\set QUIET off
\echo '== Shanghai housekeeping (sha_house) sees it, marked tentative'
SELECT category, value, tentative, store_code FROM loyalty.preferences(:'crm_member') WHERE category = 'lighting';
\set QUIET on
RESET ROLE;
SET ROLE sha_desk;
\set QUIET off
\echo '== Shanghai front desk sees the tentative tag (not Shenzhen''s note) and confirms it on her next stay'
SELECT code, tentative, note FROM loyalty.member_tags WHERE tag_id = :'crm_tag';
SELECT loyalty.tag_confirm(gen_random_uuid()::text, :'crm_tag');
SELECT code, tentative FROM loyalty.member_tags WHERE tag_id = :'crm_tag';
\set QUIET on
RESET ROLE;
SET ROLE hq_crm;
\set QUIET off
\echo
\echo '== CRM data quality (hq_crm): what the front desk relies on at Shenzhen, and how current the profiles are'
SELECT department, field, members, missing, complete_pct
  FROM loyalty.member_completeness('szx') WHERE department = 'frontdesk';
SELECT home_store, members, never_verified, stale, current_pct FROM loyalty.member_staleness();
\set QUIET on
RESET ROLE;

\echo
\echo '== CRM: the guest app. HQ CRM binds the app login demo_guest_app to her (and only her)'
\set QUIET on
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_guest_app') THEN
        CREATE ROLE demo_guest_app LOGIN;
    END IF;
END
$$;
SET ROLE hq_crm;
SELECT loyalty.member_app_bind(gen_random_uuid()::text, 'demo_guest_app', :'crm_member') IS NULL AS bound \gset
RESET ROLE;
SET ROLE demo_guest_app;
\set QUIET off
\echo '== The app (demo_guest_app) reads her own profile and balance, changes her email, withdraws marketing SMS'
SELECT p->>'card_no' AS card_no, p->>'full_name' AS full_name, p->>'tier' AS tier, p->>'balance' AS balance
  FROM loyalty.my_profile() p;
SELECT loyalty.my_contact_update(gen_random_uuid()::text, email => 'wang.guest@example.com') AS changed;
SELECT loyalty.my_consent_set(gen_random_uuid()::text, 'marketing_sms', false, 'app-2026');
SELECT purpose, granted FROM loyalty.my_consents();
\echo '== ... and reaches nothing else'
SELECT demo.try('SELECT count(*) FROM loyalty.member_frontdesk') AS staff_view;
\set QUIET on
RESET ROLE;
