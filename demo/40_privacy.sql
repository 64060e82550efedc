-- Privacy and access: one member through the eyes of two stores'
-- departments and of BI; a preference recorded at Shenzhen reaches
-- Shanghai's housekeeping; every read is on record.
\set QUIET on
SELECT m.member_id AS demo_member, p.phone AS demo_phone, m.card_no AS demo_card,
       left(p.full_name, 1) AS demo_surname
  FROM loyalty.member m JOIN loyalty.member_profile p USING (member_id)
 WHERE m.home_store = 'szx' ORDER BY m.card_no LIMIT 1 \gset
SELECT loyalty.identity_set(:'demo_member', 'resident_id', '440301199003071234', '6222021234567890') \gset
-- consents given at enrolment: most members agreed to profiling (BI sees
-- only those), fewer to marketing by email or SMS (the marketing view
-- lists only those, with the consented channel's contact field)
INSERT INTO loyalty.member_consent (member_id, purpose, granted, notice_version, store_code)
SELECT m.member_id, p.purpose, true, 'notice-2026-01', m.home_store
  FROM loyalty.member m,
       (VALUES ('profiling', 8), ('marketing_email', 4), ('marketing_sms', 3)) AS p(purpose, tenths)
 WHERE abs(hashtext(m.card_no)) % 10 < p.tenths
    OR (m.member_id = :'demo_member' AND p.purpose = 'profiling');

\set QUIET off
\echo
\echo '== Privacy: the same member at the Shenzhen front desk (szx_desk), by card number'
\set QUIET on
SET ROLE szx_desk;
\set QUIET off
SELECT card_no, full_name, phone, email, birth_date, id_number, bank_card
  FROM loyalty.frontdesk_lookup(:'demo_card', 'check_in');
\echo '== ... or by her full phone number and surname (a phone alone is no lookup key)'
SELECT card_no, full_name, phone
  FROM loyalty.frontdesk_lookup_phone(:'demo_phone', :'demo_surname', 'check_in');
\echo '== She says she is allergic to buckwheat pillows (chain-wide) and likes the garden wing (Shenzhen only)'
SELECT loyalty.preference_add(:'demo_member', 'allergy', 'buckwheat pillow: use a down pillow') IS NOT NULL AS recorded;
SELECT loyalty.preference_add(:'demo_member', 'room', 'garden wing', 'store') IS NOT NULL AS recorded;
\echo '== The front desk can check her ID card without seeing the number'
SELECT loyalty.identity_matches(:'demo_member', '440301199003071234') AS id_matches;
\set QUIET on
RESET ROLE;
-- a month later she books a stay in Shanghai: Shanghai's departments see
-- only members with a stay, booking or enrolment there (or found by a lookup)
SELECT loyalty.stay_record('demo-privacy-sha-stay', 'sha', :'demo_member', DATE '2026-12-20', DATE '2026-12-22', checked_out => false) \gset
SET ROLE sha_house;
\set QUIET off
\echo '== A month later, her stay in Shanghai: Shanghai housekeeping (sha_house) prepares her room'
SELECT p->>'full_name' AS full_name, p->>'card_no' AS card_no, x->>'category' AS category,
       x->>'value' AS preference, x->>'store_code' AS recorded_at_store
  FROM loyalty.housekeeping_profile(:'demo_member') AS p,
       jsonb_array_elements(p->'preferences') AS x
 WHERE x->>'category' IN ('allergy', 'room');
\echo '== ... and holds no privilege on the member tables'
\set ON_ERROR_STOP off
\set VERBOSITY terse
SELECT full_name, phone FROM loyalty.member_profile LIMIT 1;
\set VERBOSITY default
\set ON_ERROR_STOP on
\set QUIET on
RESET ROLE;
SET ROLE sha_desk;
\set QUIET off
\echo '== The Shanghai front desk (sha_desk): same masks, but not the Shenzhen-only preference'
SELECT category, value, scope, store_code FROM loyalty.preferences(:'demo_member')
 WHERE category IN ('allergy', 'room');
\set QUIET on
RESET ROLE;
SET ROLE hq_bi;
\set QUIET off
\echo '== BI (hq_bi): a pseudonymous key, decade of birth, no contact data; small groups suppressed'
SELECT b.member_key, b.home_store, b.tier, b.gender, b.birth_decade, b.enrolled_year
  FROM loyalty.bi_members b WHERE b.member_key = loyalty.pseudonym(:'demo_member');
SELECT home_store, tier, gender, birth_decade, members FROM loyalty.bi_segments
 ORDER BY members DESC LIMIT 5;
\set QUIET on
RESET ROLE;
SET ROLE hq_crm;
\set QUIET off
\echo '== HQ CRM: who saw this member, and the audit chain is intact'
SELECT to_char(at, 'HH24:MI:SS') AS at, role, store_code, department, action, fields, purpose
  FROM loyalty.audit_member(:'demo_member');
SELECT count(*) AS broken_audit_records FROM loyalty.audit_verify();
\set QUIET on
RESET ROLE;
