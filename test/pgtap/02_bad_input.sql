-- pgTAP: every class of bad input to the foundation's functions gets a
-- clear error with the right SQLSTATE, and leaves nothing written.
BEGIN;
SELECT plan(23);

SELECT lives_ok($$SELECT loyalty.store_create(gen_random_uuid()::text, 'bad1', 'Bad One', 'bay', 'r', 'Asia/Shanghai')$$, 'setup store');
SELECT throws_ok($$SELECT loyalty.store_create(gen_random_uuid()::text, 'bad1', 'Again', 'bay', 'r', 'Asia/Shanghai')$$,
    '42710', 'store "bad1" already exists', 'duplicate store');
SELECT throws_ok($$SELECT loyalty.store_create(gen_random_uuid()::text, NULL, 'N', 'bay', 'r', 'Asia/Shanghai')$$,
    '22004', 'store code must not be null', 'null store code');
SELECT throws_ok($$SELECT loyalty.store_create(gen_random_uuid()::text, '', 'N', 'bay', 'r', 'Asia/Shanghai')$$,
    '22023', 'store code must not be empty', 'empty store code');
SELECT throws_ok($$SELECT loyalty.store_create(gen_random_uuid()::text, 'b2', repeat('x', 201), 'bay', 'r', 'Asia/Shanghai')$$,
    '22001', 'store name is longer than 200 characters', 'overlong name');
SELECT throws_ok($$SELECT loyalty.store_create(gen_random_uuid()::text, 'b3', 'N', 'bay', 'r', 'Mars/Base')$$,
    '22023', 'invalid time zone "Mars/Base"', 'unknown time zone');
SELECT throws_ok($$SELECT loyalty.store_create(gen_random_uuid()::text, 'B4', 'N', 'bay', 'r', 'Asia/Shanghai')$$,
    '22023', 'invalid store code "B4"', 'upper-case store code');
SELECT throws_ok($$SELECT loyalty.staff_create(gen_random_uuid()::text, 'tap_x', 'nowhere', 'fnb')$$,
    '42704', 'store "nowhere" does not exist', 'staff for an unknown store');
SELECT throws_ok($$SELECT loyalty.staff_create(gen_random_uuid()::text, 'tap_y', 'bad1', 'chef')$$,
    '22023', 'unknown department "chef"', 'unknown department');
SELECT throws_ok($$SELECT loyalty.staff_create(gen_random_uuid()::text, 'tap_z', NULL, 'fnb')$$,
    '22004', 'department "fnb" needs a store code', 'store department without store');
SELECT throws_ok($$SELECT loyalty.staff_create(gen_random_uuid()::text, 'postgres', NULL, 'bi')$$,
    '42710', 'role "postgres" already exists', 'existing login');
SELECT is((SELECT count(*)::int FROM loyalty.store WHERE store_code IN ('b2', 'b3', 'B4')), 0,
    'no store written by a failed call');

SELECT throws_ok($$SELECT loyalty.member_enroll(gen_random_uuid()::text, 'nowhere', 'X')$$, 'P0002', 'store "nowhere" does not exist', 'unknown store');
SELECT throws_ok($$SELECT loyalty.member_enroll(gen_random_uuid()::text, NULL, 'X')$$, '22004', NULL, 'null store');
SELECT throws_ok($$SELECT loyalty.member_enroll(gen_random_uuid()::text, 'bad1', '  ')$$, '22023', 'full_name must not be empty', 'blank name');
SELECT throws_ok($$SELECT loyalty.member_enroll(gen_random_uuid()::text, 'bad1', repeat('名', 101))$$, '22001', NULL, 'overlong name');
SELECT throws_ok($$SELECT loyalty.member_enroll(gen_random_uuid()::text, 'bad1', 'X', '12ab')$$, '22023', NULL, 'bad phone');
SELECT is((SELECT count(*)::int FROM loyalty.member WHERE home_store = 'bad1'), 0,
    'no member written by a failed enrolment');

SELECT throws_ok($$SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member", "x": 1}]}')$$,
    '22023', 'invalid loyalty policy: unknown key "x"', 'unknown policy key');
SELECT throws_ok($$SELECT loyalty.policy_validate('{"version": 1')$$,
    '22P02', 'invalid loyalty policy: malformed JSON', 'malformed policy');
SELECT throws_ok($$SELECT loyalty.policy_validate(NULL)$$, '22004', NULL, 'null policy');
SELECT throws_ok($$SELECT loyalty.policy_set('{"version": 1, "tiers": [{"code": "member"}]}', '-infinity')$$,
    '23505', NULL, 'a second version at the same time');

SELECT throws_ok($$UPDATE loyalty.policy SET note = 'rewrite history' WHERE effective_from = '-infinity'$$,
    '55000', 'policy versions that have taken effect cannot be changed', 'policy history is append-only');

SELECT * FROM finish();
ROLLBACK;
