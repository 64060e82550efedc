-- pgTAP: loyalty.benefits() is SECURITY INVOKER and runs its body as the
-- function's owner with a pinned search path (src/benefit_owner.c).  A store
-- role still reads nothing else, the cache reloads (catalogue, risk tags,
-- policy) work when a store role triggers them, and the caller's user and
-- search path are restored after the call, also after an error.
BEGIN;
SELECT plan(16);

SELECT is((SELECT prosecdef OR proconfig IS NOT NULL FROM pg_proc
            WHERE oid = 'loyalty.benefits(uuid, text, timestamptz)'::regprocedure), false,
    'benefits() is SECURITY INVOKER with no SET clause');

SELECT loyalty.store_create(gen_random_uuid()::text, 'inva', 'Invoker A', 'bay', 'r', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'invb', 'Invoker B', 'bay', 'r', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'inv_a_desk', 'inva', 'frontdesk');
SELECT loyalty.benefit_define(gen_random_uuid()::text, 'inv_gift', 'Gift', 'gift'),
       loyalty.benefit_define(gen_random_uuid()::text, 'inv_up', 'Upgrade', 'room_upgrade');
SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'inv_gift', 'store', '{"item": "tea"}', stores => ARRAY['inva']);
CREATE TEMP TABLE m ON COMMIT DROP AS SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'inva', 'Invoker Tester');
GRANT SELECT ON m TO inv_a_desk;

SET ROLE inv_a_desk;
SELECT results_eq($$SELECT benefit_code FROM loyalty.benefits((SELECT member_id FROM m), 'inva')$$,
    $$VALUES ('inv_gift'::text)$$, 'the front desk reads the member''s benefits at its store');
SELECT is(current_user::text, 'inv_a_desk', 'the caller is the current user again after the call');
SELECT throws_ok($$SELECT * FROM loyalty.benefits((SELECT member_id FROM m), 'invb')$$,
    '42501', 'permission denied for store "invb"', 'another store''s benefits are refused');
SELECT is(current_user::text, 'inv_a_desk', 'the caller is the current user again after an error');
SELECT throws_ok($$SELECT * FROM loyalty.member$$, '42501', NULL, 'the member table stays closed');
SELECT throws_ok($$SELECT * FROM loyalty.benefit_grant$$, '42501', NULL, 'the catalogue table stays closed');
SELECT throws_ok($$SELECT * FROM loyalty.risk_tag$$, '42501', NULL, 'the risk tag table stays closed');

-- a hostile search path of the caller changes nothing inside, and is kept
SET search_path = pg_temp, public;
SELECT public.results_eq($$SELECT benefit_code FROM loyalty.benefits((SELECT member_id FROM pg_temp.m), 'inva')$$,
    $$VALUES ('inv_gift'::text)$$, 'benefits() under the caller''s own search path');
SELECT public.is(current_setting('search_path'), 'pg_temp, public', 'the caller''s search path is kept');
RESET search_path;
RESET ROLE;

-- HQ changes the catalogue, the risk tags and the policy: the next call of
-- the store role reloads each cache (SPI) as the owner
SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'inv_up', 'tier', '{}', min_tier => 'member');
SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, (SELECT member_id FROM m), 'invb', 'unresolved_violation', 'invoker test');
SELECT loyalty.policy_set((SELECT document FROM loyalty.policy ORDER BY effective_from DESC LIMIT 1),
                          '2999-01-01', 'invoker test: a later version invalidates the cached policy') > 0;
SET ROLE inv_a_desk;
SELECT results_eq($$SELECT benefit_code FROM loyalty.benefits((SELECT member_id FROM m), 'inva') ORDER BY 1$$,
    $$VALUES ('inv_gift'::text), ('inv_up'::text)$$, 'a store role''s call reloads the changed catalogue');
SELECT is((SELECT frozen_by FROM loyalty.benefits((SELECT member_id FROM m), 'inva') WHERE benefit_code = 'inv_up'),
    'unresolved_violation', 'and sees the new risk tag, which freezes the upgrade');
SELECT is(current_user::text, 'inv_a_desk', 'the caller is the current user again after the reloads');
RESET ROLE;

-- an error inside the owner span (unknown member) leaves the caller's
-- identity intact for the rest of the transaction
SET ROLE inv_a_desk;
SELECT throws_ok($$SELECT * FROM loyalty.benefits('00000000-0000-0000-0000-000000000000', 'inva')$$,
    'P0002', NULL, 'an unknown member');
SELECT is(current_user::text, 'inv_a_desk', 'the caller is the current user after an error as the owner');
SELECT throws_ok($$SELECT * FROM loyalty.member$$, '42501', NULL,
    'and still cannot read the member table');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
