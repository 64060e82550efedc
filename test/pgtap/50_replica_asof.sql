-- pgTAP: every batch that changes balances or tiers refuses an as_of in
-- the future with 22023 and writes nothing (issue 14.4); previews may look
-- ahead.  The procedures that commit are run by sql/20_tiers.sql and
-- test/t/080_replica_guards.pl; here their first checks and the batch
-- functions they call.
BEGIN;
SELECT plan(13);

SELECT loyalty.store_create(gen_random_uuid()::text, 'tas', 'Tap As Of', 'bay', 'r', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'ta_dba', NULL, 'dba');
CREATE TEMP TABLE t AS SELECT (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'tas', 'Tap As Of')) AS m;
GRANT SELECT ON t TO PUBLIC;
SELECT loyalty.points_accrue('ta-1', (SELECT m FROM t), 'tas', 1200, 'stay');
SELECT loyalty.points_accrue('ta-2', (SELECT m FROM t), 'tas', 300, 'stay', pending => true,
                             activate_at => now() + interval '2 days');
CREATE TEMP TABLE before AS SELECT
    (SELECT count(*) FROM loyalty.job) AS jobs,
    (SELECT count(*) FROM loyalty.point_entry) AS entries,
    (SELECT balance FROM loyalty.point_balance WHERE member_id = (SELECT m FROM t)) AS balance;
GRANT SELECT ON before TO PUBLIC;

SET ROLE ta_dba;
SELECT throws_ok($$SELECT loyalty.points_expire('ta-x1', now() + interval '25 months')$$,
    '22023', 'as_of must not be in the future', 'points_expire: a future as_of is refused');
SELECT throws_ok($$SELECT loyalty.points_activate_due('ta-x2', now() + interval '3 days')$$,
    '22023', 'as_of must not be in the future', 'points_activate_due: a future as_of is refused');
SELECT throws_ok($$SELECT loyalty._expire_points_batch(now() + interval '1 hour', '00000000-0000-0000-0000-000000000000', 10)$$,
    '22023', 'as_of must not be in the future', 'the expiry batch refuses a future as_of');
SELECT throws_ok($$SELECT loyalty._activate_due_batch(now() + interval '1 hour', '00000000-0000-0000-0000-000000000000', 10)$$,
    '22023', 'as_of must not be in the future', 'the activation batch refuses a future as_of');
SELECT throws_ok($$SELECT loyalty._tier_requalify_batch('00000000-0000-0000-0000-000000000000', 10, now() + interval '1 hour', true)$$,
    '22023', 'as_of must not be in the future', 'the tier batch refuses a future as_of');
SELECT throws_ok(format($$SELECT loyalty._job_start('expire', '{"as_of": "%s"}', 10)$$, now() + interval '1 hour'),
    '22023', 'as_of must not be in the future', 'an expiry job with a future as_of is not started');
SELECT throws_ok(format($$SELECT loyalty._job_start('activate', '{"as_of": "%s"}', 10)$$, now() + interval '1 hour'),
    '22023', 'as_of must not be in the future', 'an activation job with a future as_of is not started');
SELECT throws_ok($$CALL loyalty.tier_downgrade_apply('2100-01-01')$$,
    '22023', 'as_of must not be in the future', 'tier_downgrade_apply(2100) is refused before anything is written');
SELECT throws_ok($$CALL loyalty.tier_requalify(now() + interval '1 day')$$,
    '22023', 'as_of must not be in the future', 'tier_requalify with a future as_of is refused');
SELECT lives_ok($$SELECT count(*) FROM loyalty.tier_downgrade_preview('2100-01-01')$$,
    'the downgrade preview may look ahead');
SELECT is((SELECT points FROM loyalty.points_expire('ta-now', now())), 0::bigint,
    'as of now a member active today loses nothing');
RESET ROLE;
SELECT is((SELECT count(*) FROM loyalty.job) - (SELECT jobs FROM before), 0::bigint,
    'no job was recorded by the refused calls');
SELECT is((SELECT balance FROM loyalty.point_balance WHERE member_id = (SELECT m FROM t)),
          (SELECT balance FROM before), 'the balance is unchanged');

SELECT * FROM finish();
ROLLBACK;
