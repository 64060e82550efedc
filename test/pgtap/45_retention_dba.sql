-- pgTAP: the retention purge erases due members for an HQ DBA as well as for
-- CRM (the scheduled job runs as the DBA who installed it), while a direct
-- erasure stays CRM-only.
BEGIN;
SELECT plan(5);

SELECT loyalty.store_create(gen_random_uuid()::text, 'ret', 'Retention Hotel', 'bay', 'r', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'ret_dba', NULL, 'dba');
CREATE TEMP TABLE old ON COMMIT DROP AS SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'ret', 'Long Gone', '13800009999');
GRANT SELECT ON old TO ret_dba;
UPDATE loyalty.member SET enrolled_at = now() - interval '5 years' WHERE member_id = (SELECT member_id FROM old);

SET ROLE ret_dba;
SELECT throws_ok($$SELECT loyalty.member_erase((SELECT member_id FROM old), 'asked by the DBA')$$,
    '42501', NULL, 'a DBA cannot erase a member directly');
SELECT ok((SELECT rows >= 1 FROM loyalty.retention_purge(true) WHERE action LIKE '%erase%'),
    'the dry run lists the due member');
SELECT lives_ok($$SELECT * FROM loyalty.retention_purge(false)$$, 'the DBA''s retention purge runs');
RESET ROLE;
SELECT is((SELECT status FROM loyalty.member WHERE member_id = (SELECT member_id FROM old)), 'erased',
    'the due member was erased');
SELECT is((SELECT count(*)::int FROM loyalty.member_profile WHERE member_id = (SELECT member_id FROM old)), 0,
    'and their profile is gone');

SELECT * FROM finish();
ROLLBACK;
