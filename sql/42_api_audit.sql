-- API functions in each department's view, store-scoped preferences
-- (story 1), and the audit trail that survives the reader's rollback.
\set VERBOSITY terse
SELECT loyalty.store_create(gen_random_uuid()::text, 'apa', 'API A', 'bay', 'south', 'Asia/Shanghai'),
       loyalty.store_create(gen_random_uuid()::text, 'apb', 'API B', 'bay', 'east', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'api_a_desk', 'apa', 'frontdesk'),
       loyalty.staff_create(gen_random_uuid()::text, 'api_a_house', 'apa', 'housekeeping'),
       loyalty.staff_create(gen_random_uuid()::text, 'api_b_house', 'apb', 'housekeeping'),
       loyalty.staff_create(gen_random_uuid()::text, 'api_b_desk', 'apb', 'frontdesk'),
       loyalty.staff_create(gen_random_uuid()::text, 'api_hq_crm', NULL, 'crm');
SELECT member_id AS m FROM loyalty.member_enroll(gen_random_uuid()::text, 'apa', '张三丰', '13900001111', 'zsf@example.com', '1985-05-20') \gset

-- store A's front desk: lookup by phone and surname, masked
SET ROLE api_a_desk;
SELECT full_name, phone, email, birth_date, address, bank_card FROM loyalty.frontdesk_lookup_phone('13900001111', '张');
-- a member that does not exist: the same error as one out of reach
SELECT * FROM loyalty.frontdesk_lookup_phone('13900009999', '张');
-- the phone without the right surname finds nothing
SELECT * FROM loyalty.frontdesk_lookup_phone('13900001111', '李');
-- story 1: an allergy recorded at store A, chain-wide; a store-only note
SELECT loyalty.preference_add(:'m', 'pillow', 'allergic to buckwheat: down pillow') IS NOT NULL AS added;
SELECT loyalty.preference_add(:'m', 'room', 'likes the garden wing', 'store') IS NOT NULL AS added;
SELECT loyalty.preference_add(:'m', 'room', 'x', 'store', 'apb');
SELECT loyalty.preference_add(:'m', 'shoes', 'x');
RESET ROLE;
-- the guest books a room at store B
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, status)
VALUES (:'m', 'apb', '2026-12-01', '2026-12-02', 'booked');

-- a month later, store B's housekeeping sees the allergy, not A's store-only note
SET ROLE api_b_house;
SELECT p->>'full_name' AS name, p->>'card_no' ~ '^\*{4}[0-9]{4}$' AS card_masked, p->'phone' AS phone,
       jsonb_path_query_array(p, '$.preferences[*].value') AS prefs
  FROM loyalty.housekeeping_profile(:'m') AS p;
SELECT category, value, scope, store_code FROM loyalty.preferences(:'m');
SELECT loyalty.housekeeping_profile(gen_random_uuid());
-- the view directly: the same masked values, and no store-only rows of A
SELECT full_name, phone FROM loyalty.member_housekeeping WHERE member_id = :'m';
SELECT count(*) FROM loyalty.member_preferences WHERE scope = 'store';
SELECT * FROM loyalty.frontdesk_lookup('13900001111');
RESET ROLE;
SET ROLE api_a_house;
SELECT category, value, scope FROM loyalty.preferences(:'m') ORDER BY 1;
RESET ROLE;

-- a read inside a transaction that rolls back stays on record
SET ROLE api_b_desk;
BEGIN;
SELECT full_name FROM loyalty.frontdesk_lookup_phone('13900001111', '张');
ROLLBACK;
RESET ROLE;
SELECT login, role, store_code, department, action, fields, purpose
  FROM loyalty.audit_member(:'m');
SELECT count(*) AS b_desk_reads FROM loyalty.audit_role('api_b_desk');
SELECT * FROM loyalty.audit_verify();
-- append-only, also for the superuser that owns everything
UPDATE loyalty.audit_log SET purpose = 'nothing to see';
DELETE FROM loyalty.audit_log;
TRUNCATE loyalty.audit_log;
SET session_replication_role = replica;
DELETE FROM loyalty.audit_log;
RESET session_replication_role;
-- stores cannot read the audit trail
SET ROLE api_a_desk;
SELECT count(*) FROM loyalty.audit_log;
SELECT count(*) FROM loyalty.audit_member(:'m');
RESET ROLE;
-- tampering (a superuser with the triggers off) is detected by the chain
ALTER TABLE loyalty.audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE loyalty.audit_log SET purpose = 'nothing to see'
 WHERE audit_id = (SELECT min(audit_id) FROM loyalty.audit_log WHERE member_id = :'m');
ALTER TABLE loyalty.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
SELECT problem FROM loyalty.audit_verify();
