-- pgTAP: errors that say what to do (issue 20, item 5; docs/troubleshooting.md).
-- An unknown store is not a permission problem (P0002, with the lowercase
-- code when only the case is wrong); another store's is (42501); a
-- department refusal names the department roles that may call; a batch
-- procedure says it must run outside a transaction block (25001; the
-- atomic case, 2D000, is in test/t/065_newcomer_install.pl: pg_prove runs
-- this file in a transaction block).  Failed calls write nothing.
SELECT plan(13);

-- error text with SQLSTATE, DETAIL and HINT
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; m text; d text; h text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT,
                            d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN st || ' ' || m || ' | ' || coalesce(d, '') || ' | ' || coalesce(h, '');
END $$;

BEGIN;
SELECT loyalty.store_create('store-nce', 'nce', 'Newcomer East', 'bay', 'east', 'Asia/Shanghai');
SELECT loyalty.store_create('store-ncw', 'ncw', 'Newcomer West', 'bay', 'west', 'Asia/Urumqi');
SELECT loyalty.staff_create('staff-nc_desk', 'nc_desk', 'nce', 'frontdesk'),
       loyalty.staff_create('staff-nc_house', 'nc_house', 'nce', 'housekeeping'),
       loyalty.staff_create('staff-nc_mkt', 'nc_mkt', NULL, 'marketing');
CREATE TEMP TABLE nc_before AS SELECT (SELECT count(*) FROM loyalty.member) AS members;

-- inside a transaction block
SELECT is(pg_temp.err($$CALL loyalty.points_expire_batch()$$),
    '25001 loyalty.points_expire_batch cannot run inside a transaction block | '
    'It commits after every batch of members, so that a long job holds no lock for long and its progress is visible. | '
    'CALL it on its own, outside BEGIN ... COMMIT (in psql, with AUTOCOMMIT on).',
    'a batch procedure inside BEGIN: 25001 saying to run it outside a transaction block');
SELECT throws_ok($$CALL loyalty.points_activate_due_batch()$$, '25001',
    'loyalty.points_activate_due_batch cannot run inside a transaction block', 'points_activate_due_batch');
SELECT throws_ok($$CALL loyalty.retention_purge_batch()$$, '25001',
    'loyalty.retention_purge_batch cannot run inside a transaction block', 'retention_purge_batch');
SELECT throws_ok($$CALL loyalty.tier_downgrade_apply()$$, '25001',
    'loyalty.tier_downgrade_apply cannot run inside a transaction block', 'tier_downgrade_apply');
SELECT throws_ok($$CALL loyalty.member_erase_batch(ARRAY[]::uuid[], 'test')$$, '25001',
    'loyalty.member_erase_batch cannot run inside a transaction block', 'member_erase_batch');

SET ROLE nc_desk;
-- an upper-case store code: unknown store, with the code that exists
SELECT is(pg_temp.err($$SELECT loyalty.member_enroll(gen_random_uuid()::text, 'NCE', 'Upper Case', '13800000099')$$),
    'P0002 store "NCE" does not exist |  | Store codes are lowercase: "nce".',
    'an upper-case code of the caller''s own store: P0002 with the lowercase code');
SELECT is(pg_temp.err($$SELECT loyalty.member_enroll(gen_random_uuid()::text, 'NCW', 'Upper Case', '13800000099')$$),
    'P0002 store "NCW" does not exist |  | Store codes are lowercase: "ncw".',
    'an upper-case code of another store: P0002 too (the store does not exist)');
SELECT is(pg_temp.err($$SELECT loyalty.member_enroll(gen_random_uuid()::text, 'nowhere', 'No Store', '13800000099')$$),
    'P0002 store "nowhere" does not exist |  | The chain''s store codes are in loyalty.store; yours is "nce".',
    'an unknown store: P0002 naming where the codes are');
SELECT is(pg_temp.err($$SELECT loyalty.member_enroll(gen_random_uuid()::text, 'ncw', 'Other Store', '13800000099')$$),
    '42501 permission denied for store "ncw" | Staff of store "nce" may act only for their own store. | ',
    'another store''s code: 42501, permission');
SELECT throws_ok($$SELECT * FROM loyalty.benefits(gen_random_uuid(), 'NCE')$$, 'P0002',
    'store "NCE" does not exist', 'benefits() with an upper-case store: P0002');
RESET ROLE;
SELECT is((SELECT count(*) FROM loyalty.member), (SELECT members FROM nc_before),
    'the refused enrolments wrote nothing');

-- a department refusal names the roles that may call
CREATE FUNCTION pg_temp.crm_only() RETURNS void LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT loyalty._check_access(NULL, ARRAY['crm', 'dba']) $$;
SET ROLE nc_house;
SELECT is(pg_temp.err($$SELECT pg_temp.crm_only()$$),
    '42501 permission denied for department "housekeeping" | '
    'Only members of these department roles may call it: loyalty_crm, loyalty_dba. | '
    'Use a login of one of those departments, or ask an HQ DBA (docs/roles.md).',
    'a department refusal lists the department roles that may call');
RESET ROLE;
CREATE FUNCTION pg_temp.store_only() RETURNS void LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager']) $$;
SET ROLE nc_mkt;
SELECT is(pg_temp.err($$SELECT pg_temp.store_only()$$),
    '42501 permission denied for department "marketing" | '
    'Only members of these department roles may call it: loyalty_frontdesk, loyalty_store_manager. | '
    'Use a login of one of those departments, or ask an HQ DBA (docs/roles.md).',
    'the same for HQ marketing and store departments');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
