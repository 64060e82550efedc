-- pgTAP: bad input to the long jobs (docs/operations.md, "Long jobs and
-- their progress") gets a clear error with its SQLSTATE and writes nothing.
-- The procedures cannot run inside pgTAP's transaction (they commit), so
-- the checks every procedure makes are tested through loyalty._job_start,
-- the function each of them calls first, and the batch functions; the
-- procedures themselves are run by sql/64_jobs.sql and test/t/064_jobs.pl.
BEGIN;
SELECT plan(22);

SELECT loyalty.store_create(gen_random_uuid()::text, 'tjb', 'Tap Jobs', 'bay', 'r', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'tj_crm', NULL, 'crm'), loyalty.staff_create(gen_random_uuid()::text, 'tj_dba', NULL, 'dba'),
       loyalty.staff_create(gen_random_uuid()::text, 'tj_desk', 'tjb', 'frontdesk');
CREATE TEMP TABLE t AS SELECT (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'tjb', 'Tap Job')) AS m;
GRANT SELECT ON t TO PUBLIC;
CREATE TEMP TABLE before AS SELECT
    (SELECT count(*) FROM loyalty.job) AS jobs,
    (SELECT count(*) FROM loyalty.member WHERE status = 'erased') AS erased;

-- a procedure inside a transaction block fails before anything is taken
SELECT throws_ok($$CALL loyalty.points_expire_batch()$$, '25001', 'loyalty.points_expire_batch cannot run inside a transaction block',
    'a job procedure inside a transaction block: says to run it outside one');

SET ROLE tj_dba;
SELECT throws_ok($$SELECT loyalty._job_start('expire', '{"as_of": "2026-01-01"}', 0)$$,
    '22023', 'batch_size must be between 1 and 100000', 'batch size 0');
SELECT throws_ok($$SELECT loyalty._job_start('expire', '{"as_of": "2026-01-01"}', 100001)$$,
    '22023', 'batch_size must be between 1 and 100000', 'batch size too large');
SELECT throws_ok($$SELECT loyalty._job_start('expire', '{"as_of": "2026-01-01"}', NULL)$$,
    '22004', 'batch_size must be between 1 and 100000', 'batch size null');
SELECT throws_ok($$SELECT loyalty._job_start('expire', '{"as_of": "infinity"}', 10)$$,
    '22008', 'as_of must be a finite time', 'expiry at infinity');
SELECT throws_ok($$SELECT loyalty._job_start('activate', '{}', 10)$$,
    '22008', 'as_of must be a finite time', 'activation without as_of');
SELECT throws_ok($$SELECT loyalty._job_start('requalify', '{"as_of": "-infinity"}', 10)$$,
    '22008', 'as_of must be a finite time', 'requalification at -infinity');
SELECT throws_ok($$SELECT loyalty._job_start('vacuum', '{}', 10)$$,
    '22023', 'unknown job kind "vacuum"', 'unknown kind');
SELECT throws_ok($$SELECT loyalty._job_start('retention', '{"as_of": "2026-01-01", "inactive_for": "1 month", "retired_for": "1 year"}', 10)$$,
    '22023', 'retention periods are too short', 'retention shorter than a year');
SELECT throws_ok($$SELECT loyalty._job_start('retention', '{"as_of": "2026-01-01", "inactive_for": "3 years", "retired_for": "-1 day"}', 10)$$,
    '22023', 'retention periods are too short', 'negative retired_for');
SELECT throws_ok($$SELECT loyalty._job_start('retention', '{"as_of": "2026-01-01", "retired_for": "1 year"}', 10)$$,
    '22004', 'inactive_for and retired_for must not be null', 'retention without inactive_for');
SELECT throws_ok($$SELECT loyalty._expire_points_batch('2026-01-01', '00000000-0000-0000-0000-000000000000', 0)$$,
    '22023', 'batch_size must be between 1 and 100000', 'expiry batch of 0');
SELECT throws_ok($$SELECT loyalty._activate_due_batch('infinity', '00000000-0000-0000-0000-000000000000', 5)$$,
    '22008', 'as_of must be a finite time', 'activation batch at infinity');
-- erasure is CRM only
SELECT throws_ok(format($$SELECT loyalty._job_start('erase', '{"members": ["%s"], "reason": "r"}', 10)$$, (SELECT m FROM t)),
    '42501', NULL, 'a DBA cannot start an erasure job');
RESET ROLE;

SET ROLE tj_crm;
SELECT throws_ok($$SELECT loyalty._job_start('erase', '{"members": [], "reason": "r"}', 10)$$,
    '22004', 'member_ids must be a non-empty list without nulls', 'empty erasure list');
SELECT throws_ok(format($$SELECT loyalty._job_start('erase', '{"members": ["%s", null], "reason": "r"}', 10)$$, (SELECT m FROM t)),
    '22004', 'member_ids must be a non-empty list without nulls', 'a null in the erasure list');
SELECT throws_ok(format($$SELECT loyalty._job_start('erase', '{"members": ["%s", "%s"], "reason": "r"}', 10)$$,
                        (SELECT m FROM t), gen_random_uuid()),
    'P0002', 'member not found', 'an unknown member in the erasure list');
SELECT throws_ok(format($$SELECT loyalty._job_start('erase', '{"members": ["%s"], "reason": "  "}', 10)$$, (SELECT m FROM t)),
    '22004', 'an erasure needs a reason', 'a blank reason');
RESET ROLE;

-- store staff may not run or watch jobs
SET ROLE tj_desk;
SELECT throws_ok($$SELECT loyalty._job_start('expire', '{"as_of": "2026-01-01"}', 10)$$,
    '42501', NULL, 'a front desk login cannot start a job');
SELECT throws_ok($$SELECT count(*) FROM loyalty.job_progress$$,
    '42501', NULL, 'a front desk login cannot read the progress view');
RESET ROLE;

-- nothing was written
SELECT is((SELECT count(*) FROM loyalty.job), (SELECT jobs FROM before), 'no job recorded');
SELECT is((SELECT count(*) FROM loyalty.member WHERE status = 'erased'), (SELECT erased FROM before),
    'nobody erased');

SELECT * FROM finish();
ROLLBACK;
