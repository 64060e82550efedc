-- pgTAP: plain reads of the member views are audited (docs/audit.md,
-- issue 13 item 3; src/audit_read.c).  A store login's SELECT on its member
-- view leaves one read record per statement with the member ids it
-- returned; a BI login's SELECT on a BI view one record with the row count;
-- a read rolled back is still on record; HQ CRM, the API functions' own
-- statements and a read with loyalty.audit_view_reads off leave none.
BEGIN;
SELECT plan(12);

CREATE TEMP TABLE t0 AS SELECT clock_timestamp() AS began;
GRANT SELECT ON t0 TO PUBLIC;
-- the read records of this test by role
CREATE TEMP VIEW reads AS
SELECT a.role, a.action, a.member_id, a.fields, a.purpose FROM loyalty.audit_log a
 WHERE a.at >= (SELECT began FROM t0) AND a.action IN ('view_read', 'bi_read');

SELECT loyalty.store_create('ar-s1', 'ara', 'Reads A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create('ar-1', 'ar_desk', 'ara', 'frontdesk'),
       loyalty.staff_create('ar-2', 'ar_bi', NULL, 'bi'),
       loyalty.staff_create('ar-3', 'ar_mkt', NULL, 'marketing'),
       loyalty.staff_create('ar-4', 'ar_crm', NULL, 'crm');
CREATE TEMP TABLE rm AS
SELECT 1 AS n, (loyalty.member_enroll('ar-m1', 'ara', 'Read One', '13855550001')).member_id AS m
UNION ALL
SELECT 2, (loyalty.member_enroll('ar-m2', 'ara', 'Read Two', '13855550002')).member_id;
ALTER TABLE rm ADD card_no text;
UPDATE rm SET card_no = (SELECT m2.card_no FROM loyalty.member m2 WHERE m2.member_id = rm.m);
GRANT SELECT ON rm TO PUBLIC;
SELECT loyalty.consent_record(m, 'profiling', true, 'notice-1', 'ara') FROM rm;
SELECT loyalty.consent_record(m, 'marketing_email', true, 'notice-1', 'ara') FROM rm;

-- a store login reads one member
-- (plain statements: a test function around them would hide member_id)
SET ROLE ar_desk;
SELECT member_id, full_name FROM loyalty.member_frontdesk WHERE member_id = (SELECT m FROM rm WHERE n = 1);
RESET ROLE;
SELECT is((SELECT count(*)::int FROM reads WHERE role = 'ar_desk'), 1, 'one read record for the statement');
SELECT is((SELECT member_id FROM reads WHERE role = 'ar_desk'), (SELECT m FROM rm WHERE n = 1),
          'with the member it returned');
SELECT is((SELECT fields FROM reads WHERE role = 'ar_desk'),
          ARRAY['member_frontdesk', (SELECT m FROM rm WHERE n = 1)::text], 'the view and the member id are listed');
SELECT is((SELECT purpose FROM reads WHERE role = 'ar_desk'), 'rows 1, members 1', 'and the counts');

-- several members: every id listed, no single member
SET ROLE ar_desk;
SELECT member_id FROM loyalty.member_frontdesk ORDER BY member_id;
RESET ROLE;
SELECT is((SELECT fields FROM reads WHERE role = 'ar_desk' AND member_id IS NULL),
          ARRAY['member_frontdesk'] || ARRAY(SELECT m::text FROM rm ORDER BY m), 'two members: both ids listed');

-- a statement that does not select member_id: the count only
SET ROLE ar_desk;
SELECT count(*) FROM loyalty.member_frontdesk;
RESET ROLE;
SELECT is((SELECT count(*)::int FROM reads WHERE role = 'ar_desk' AND purpose = 'rows 1, member ids not selected'), 1,
          'a statement without member_id is recorded with its row count');

-- a read rolled back is still on record
SAVEPOINT before_read;
SET ROLE ar_desk;
SELECT member_id FROM loyalty.member_frontdesk WHERE member_id = (SELECT m FROM rm WHERE n = 2);
ROLLBACK TO SAVEPOINT before_read;
SELECT is((SELECT count(*)::int FROM reads WHERE role = 'ar_desk' AND member_id = (SELECT m FROM rm WHERE n = 2)), 1,
          'a read rolled back is still recorded');

-- BI: the row count of a BI view
SET ROLE ar_bi;
SELECT count(*) FROM (SELECT * FROM loyalty.bi_members) b;
RESET ROLE;
SELECT is((SELECT row(action, member_id, fields)::text FROM reads WHERE role = 'ar_bi'),
          '(bi_read,,{bi_members})', 'one BI record: the view, no member');
SELECT is((SELECT purpose FROM reads WHERE role = 'ar_bi'), 'rows 1', 'with the rows returned (one count row)');

-- marketing reads its consented contacts view
SET ROLE ar_mkt;
SELECT member_id FROM loyalty.member_marketing WHERE member_id = (SELECT m FROM rm WHERE n = 1);
RESET ROLE;
SELECT is((SELECT count(*)::int FROM reads WHERE role = 'ar_mkt' AND member_id = (SELECT m FROM rm WHERE n = 1)), 1,
          'a marketing read is recorded');

-- not recorded: HQ CRM, the API's own statements (recorded by the API),
-- and reads with the setting off
SET ROLE ar_crm;
SELECT count(*) FROM loyalty.member_consents;
RESET ROLE;
SET ROLE ar_desk;
SELECT count(*) FROM loyalty.frontdesk_lookup((SELECT card_no FROM rm WHERE n = 1));
RESET ROLE;
SET loyalty.audit_view_reads = off;
SET ROLE ar_desk;
SELECT member_id FROM loyalty.member_frontdesk;
RESET ROLE;
RESET loyalty.audit_view_reads;
SELECT is((SELECT count(*)::int FROM reads WHERE role = 'ar_crm'), 0, 'HQ CRM reads are not recorded by the hook');
SELECT is((SELECT count(*)::int FROM reads WHERE role = 'ar_desk'), 4,
          'a lookup function and a read with loyalty.audit_view_reads off add no view record');

SELECT * FROM finish();
ROLLBACK;
