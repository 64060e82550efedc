-- Long jobs in committed batches and their progress (docs/operations.md,
-- "Long jobs and their progress").
\set VERBOSITY terse
SELECT loyalty.store_create(gen_random_uuid()::text, 'jbs', 'Jobs Hotel', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'jb_dba', NULL, 'dba'), loyalty.staff_create(gen_random_uuid()::text, 'jb_crm', NULL, 'crm');
CREATE TABLE jb_members AS
SELECT (loyalty.member_enroll(gen_random_uuid()::text, 'jbs', 'Job ' || i)).member_id AS m, i FROM generate_series(1, 5) i;
GRANT SELECT ON jb_members TO jb_dba, jb_crm;
-- five members with pending points due, the last two also inactive for 25 months
SELECT count(*) FROM (SELECT loyalty.points_accrue('jb-' || i, m, 'jbs', 100 * i, 'stay', pending => true,
                                            activate_at => now() - interval '1 minute')
                        FROM jb_members) x;
CREATE VIEW jb_last AS
SELECT kind, state, done, total, percent, changed, error, eta IS NULL AS no_eta,
       finished_at IS NOT NULL AS finished, started_by
  FROM loyalty.job_progress WHERE job_id IS NOT NULL ORDER BY started_at DESC LIMIT 1;
GRANT SELECT ON jb_last TO jb_dba, jb_crm;

SET ROLE jb_dba;
-- activation, two members a batch
CALL loyalty.points_activate_due_batch(batch_size => 2);
SELECT * FROM jb_last;
SELECT sum(loyalty.points_balance(m)) AS points FROM jb_members;
-- nothing left: a second run changes nothing
CALL loyalty.points_activate_due_batch();
SELECT * FROM jb_last;
RESET ROLE;
UPDATE loyalty.point_balance SET last_activity_at = now() - interval '25 months'
 WHERE member_id IN (SELECT m FROM jb_members WHERE i > 3);
SET ROLE jb_dba;
-- expiry: the two inactive members lose their points
CALL loyalty.points_expire_batch(batch_size => 1);
SELECT * FROM jb_last;
SELECT i, loyalty.points_balance(m) FROM jb_members ORDER BY i;
-- requalification on the generic table, and the 1.0 view over it
CALL loyalty.tier_requalify(NULL, 100);
SELECT kind, state, done = total AS all_done, changed FROM jb_last;
SELECT kind, state, members_done = members_total AS all_done, percent, as_of IS NOT NULL AS has_as_of
  FROM loyalty.tier_job_progress ORDER BY started_at DESC LIMIT 1;
-- bad input: an error with its SQLSTATE, no job recorded
SELECT count(*) AS jobs FROM loyalty.job \gset
CALL loyalty.points_expire_batch(batch_size => 0);
CALL loyalty.points_activate_due_batch('infinity');
CALL loyalty.retention_purge_batch('1 month');
CALL loyalty.member_erase_batch(ARRAY[gen_random_uuid()], 'not CRM');
BEGIN;
CALL loyalty.points_expire_batch();
ROLLBACK;
SELECT count(*) - :jobs AS new_jobs FROM loyalty.job;
RESET ROLE;

-- erasure of a list, one member a batch; an erased member is skipped
SELECT array_agg(m ORDER BY i) FILTER (WHERE i <= 2) AS two,
       array_agg(m ORDER BY i) FILTER (WHERE i <= 3) AS three,
       ARRAY[(SELECT m FROM jb_members WHERE i = 4), gen_random_uuid()] AS unknown
  FROM jb_members \gset
SET ROLE jb_crm;
CALL loyalty.member_erase_batch(:'two', 'requests of week 47', 1);
SELECT * FROM jb_last;
CALL loyalty.member_erase_batch(:'three', 'requests of week 48');
SELECT * FROM jb_last;
CALL loyalty.member_erase_batch(:'unknown', 'unknown');
CALL loyalty.member_erase_batch(ARRAY[]::uuid[], 'empty');
CALL loyalty.member_erase_batch(:'two', ' ');
RESET ROLE;
SELECT i, status FROM loyalty.member JOIN jb_members ON m = member_id ORDER BY i;

-- a retention job with a member due: the DBA's scheduled purge erases it
-- (it erases through the same code as member_erase, not its CRM-only check);
-- a second run, by CRM, finds nobody due.  A failed job is shown by
-- test/t/064_jobs.pl (a cancelled job is recorded as failed with its error).
UPDATE loyalty.member SET enrolled_at = now() - interval '5 years'
 WHERE member_id = (SELECT m FROM jb_members WHERE i = 5);
SET ROLE jb_dba;
CALL loyalty.retention_purge_batch('4 years', '1 year', 10);
SELECT * FROM jb_last;
RESET ROLE;
SET ROLE jb_crm;
CALL loyalty.retention_purge_batch('4 years', '1 year', 10);
SELECT * FROM jb_last;
RESET ROLE;

-- the schedules call the batch procedures
SELECT job_name, command FROM loyalty.job_schedule_defaults() ORDER BY job_name;

DROP VIEW jb_last;
DROP TABLE jb_members;
