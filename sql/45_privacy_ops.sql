-- Consents, export, erasure by pseudonymisation, retention purge, BI views.
\set VERBOSITY terse
SELECT loyalty.store_create(gen_random_uuid()::text, 'pva', 'Privacy A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'pv_desk', 'pva', 'frontdesk'),
       loyalty.staff_create(gen_random_uuid()::text, 'pv_crm', NULL, 'crm'),
       loyalty.staff_create(gen_random_uuid()::text, 'pv_bi', NULL, 'bi');
SELECT member_id AS m FROM loyalty.member_enroll(gen_random_uuid()::text, 'pva', '赵敏', '13600001111', 'zm@example.com', '1991-02-03') \gset
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, room_revenue)
VALUES (:'m', 'pva', '2026-01-01', '2026-01-03', 800), (:'m', 'pva', '2026-02-01', '2026-02-02', 500);
-- eleven more members in one segment, one alone in another
SELECT count(*) FROM (SELECT loyalty.member_enroll(gen_random_uuid()::text, 'pva', 'M' || i, NULL, NULL, DATE '1980-06-01' + i, 'female')
                        FROM generate_series(1, 11) i) e;
SELECT count(*) FROM loyalty.member_enroll(gen_random_uuid()::text, 'pva', 'Lonely', NULL, NULL, '1950-01-01', 'male');
-- those twelve agreed to profiling (BI sees only members who did)
INSERT INTO loyalty.member_consent (member_id, purpose, granted, notice_version, store_code)
SELECT member_id, 'profiling', true, 'n1', 'pva' FROM loyalty.member
 WHERE home_store = 'pva' AND member_id <> :'m';

SET ROLE pv_desk;
SELECT loyalty.consent_record(:'m', 'marketing_email', true, 'notice-2026-01') IS NOT NULL AS recorded;
SELECT loyalty.consent_record(:'m', 'marketing_email', false, 'notice-2026-02') IS NOT NULL AS withdrawn;
SELECT loyalty.consent_record(:'m', 'spam', true, 'n1');
SELECT loyalty.consent_record(:'m', 'profiling', true, 'n1', 'other_store');
SELECT purpose, granted, notice_version, store_code FROM loyalty.member_consents WHERE member_id = :'m';
SELECT loyalty.member_export(:'m');
SELECT loyalty.member_erase(:'m', 'x');
RESET ROLE;

SET ROLE pv_crm;
SELECT e->'profile'->>'full_name' AS name, e->'profile'->>'phone' AS phone,
       jsonb_array_length(e->'stays') AS stays, jsonb_array_length(e->'consents') AS consents
  FROM loyalty.member_export(:'m') AS e;
SELECT * FROM loyalty.retention_purge();
SELECT * FROM loyalty.retention_purge(true, '1 month');
SELECT loyalty.member_erase(:'m', NULL);
SELECT loyalty.member_erase(:'m', 'member asked on 2026-11-22');
SELECT loyalty.member_erase(:'m', 'again');
SELECT loyalty.member_export(:'m');
SELECT status, full_name, phone, email, birth_date FROM loyalty.member_crm WHERE member_id = :'m';
RESET ROLE;
-- stays (and so the ledger's sums) and the audit trail are kept
SELECT count(*) AS stays, sum(room_revenue) AS revenue FROM loyalty.stay WHERE member_id = :'m';
SELECT action FROM loyalty.audit_member(:'m') ORDER BY 1;
SELECT (SELECT count(*) FROM loyalty.member_profile WHERE member_id = :'m') AS profiles,
       (SELECT count(*) FROM loyalty.member_consent WHERE member_id = :'m') AS consents;
-- the chain: only the record tampered with in 42_api_audit is reported
SELECT a.action, a.purpose, v.problem
  FROM loyalty.audit_verify() v JOIN loyalty.audit_log a USING (audit_id);

-- BI: pseudonymous keys, generalised quasi-identifiers, small groups hidden
-- (k = 1 here: the k-anonymity of the row views is test/pgtap/48_privacy_kanon.sql)
SET loyalty.bi_k_anonymity = 1;
SET ROLE pv_bi;
SELECT length(member_key) AS key_length, home_store, birth_decade, gender, count(*)
  FROM loyalty.bi_members WHERE home_store = 'pva' GROUP BY 1, 2, 3, 4 ORDER BY 3;
SELECT * FROM loyalty.bi_segments WHERE home_store = 'pva';
-- the stays are the erased member's, who gave no profiling consent: none
SELECT count(*) AS stays, sum(nights) AS nights FROM loyalty.bi_stays WHERE store_code = 'pva';
SELECT count(*) FROM loyalty.member_crm;
SELECT count(*) FROM loyalty.member;
SELECT loyalty.frontdesk_lookup('13600001111');
RESET ROLE;
RESET loyalty.bi_k_anonymity;
