-- pgTAP: every class of bad input to the ledger gets a clear error with the
-- right SQLSTATE, and leaves nothing written.
BEGIN;
SELECT plan(47);

CREATE TEMP TABLE stores AS
SELECT loyalty.store_create(gen_random_uuid()::text, 'tpa', 'Tap A', 'bay', 'r', 'Asia/Shanghai') AS a,
       loyalty.store_create(gen_random_uuid()::text, 'tpb', 'Tap B', 'bay', 'r', 'Asia/Shanghai') AS b;
CREATE TEMP TABLE t AS
SELECT (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'tpa', 'Tap Member')) AS m,
       (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'tpa', 'Tap Other')) AS o,
       (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'tpa', 'Tap Erased')) AS e;
UPDATE loyalty.member SET status = 'erased' WHERE member_id = (SELECT e FROM t);
GRANT SELECT ON t TO loyalty_tpa_frontdesk, loyalty_tpb_frontdesk;
SELECT lives_ok($$SELECT loyalty.points_accrue('tap-ok', (SELECT m FROM t), 'tpa', 3000, 'stay', reference => 'stay-1')$$, 'setup accrual');
SELECT lives_ok($$SELECT loyalty.points_accrue('tap-pend', (SELECT m FROM t), 'tpa', 500, 'stay', reference => 'stay-2', pending => true)$$, 'setup pending accrual');
CREATE TEMP TABLE before AS SELECT
    (SELECT count(*) FROM loyalty.point_entry) AS entries,
    (SELECT count(*) FROM loyalty.point_lot) AS lots,
    (SELECT count(*) FROM loyalty.point_draw) AS draws,
    (SELECT count(*) FROM loyalty.ledger_request) AS requests,
    (SELECT balance FROM loyalty.point_balance WHERE member_id = (SELECT m FROM t)) AS balance;

-- points
SELECT throws_ok($$SELECT loyalty.points_accrue('b1', (SELECT m FROM t), 'tpa', 0, 'stay')$$, '22023', 'points must be between 1 and 100000000', 'zero points');
SELECT throws_ok($$SELECT loyalty.points_accrue('b2', (SELECT m FROM t), 'tpa', -5, 'stay')$$, '22023', 'points must be between 1 and 100000000', 'negative points');
SELECT throws_ok($$SELECT loyalty.points_accrue('b3', (SELECT m FROM t), 'tpa', 100000001, 'stay')$$, '22023', 'points must be between 1 and 100000000', 'absurdly many points');
SELECT throws_ok($$SELECT loyalty.points_redeem('b4', (SELECT m FROM t), 'tpa', 9223372036854775807, 'x')$$, '22023', 'points must be between 1 and 100000000', 'absurd redemption');
SELECT throws_ok($$SELECT loyalty.points_accrue('b5', (SELECT m FROM t), 'tpa', 10, 'gift')$$, '22023', 'unknown point source "gift"', 'unknown source');
SELECT throws_ok($$SELECT loyalty.points_accrue('b6', (SELECT m FROM t), 'tpa', 10, 'stay', occurred_at => now() + interval '1 day')$$, '22008', NULL, 'future occurred_at');
SELECT throws_ok($$SELECT loyalty.points_accrue('b7', (SELECT m FROM t), 'tpa', 10, 'stay', occurred_at => 'infinity')$$, '22008', NULL, 'infinite occurred_at');
SELECT throws_ok($$SELECT loyalty.points_accrue('b8', (SELECT m FROM t), 'tpa', 10, 'stay', activate_at => now())$$, '22023', 'activate_at applies to pending points only', 'activate_at without pending');

-- money
SELECT throws_ok($$SELECT loyalty.points_redeem_cash('b9', (SELECT m FROM t), 'tpa', 100.001)$$, '22023', 'amount 100.001 has more than 2 decimals', 'too many decimals');
SELECT throws_ok($$SELECT loyalty.points_redeem_cash('b10', (SELECT m FROM t), 'tpa', -100)$$, '22023', 'amount must be positive', 'negative amount');
SELECT throws_ok($$SELECT loyalty.points_redeem_cash('b11', (SELECT m FROM t), 'tpa', 'NaN')$$, '22023', 'amount must be a finite number', 'NaN amount');
SELECT throws_ok($$SELECT loyalty.points_redeem_cash('b12', (SELECT m FROM t), 'tpa', 1e30)$$, '22003', NULL, 'absurd amount');
SELECT throws_ok($$SELECT loyalty.points_redeem_cash('b13', (SELECT m FROM t), 'tpa', 100.05)$$, '22023', 'amount 100.05 does not convert to whole points', 'amount off the rate');

-- the redemption rules
SELECT throws_ok($$SELECT loyalty.points_redeem('b14', (SELECT m FROM t), 'tpa', 1050, 'x')$$, '22023', 'redemption of 1050 points is not a multiple of the step of 100', 'off the step');
SELECT throws_ok($$SELECT loyalty.points_redeem('b15', (SELECT m FROM t), 'tpa', 500, 'x')$$, '22023', 'redemption of 500 points is below the minimum of 1000', 'below the minimum');
SELECT throws_ok($$SELECT loyalty.points_redeem('b16', (SELECT m FROM t), 'tpa', 3500, 'x')$$, '23514', 'insufficient points', 'pending points cannot be redeemed');
SELECT throws_ok($$SELECT loyalty.points_redeem('b17', (SELECT o FROM t), 'tpa', 1000, 'x')$$, '23514', 'insufficient points', 'nothing to redeem');

-- members and stores
SELECT throws_ok($$SELECT loyalty.points_accrue('b18', '00000000-0000-0000-0000-000000000000', 'tpa', 10, 'stay')$$, 'P0002', 'member 00000000-0000-0000-0000-000000000000 does not exist', 'unknown member');
SELECT throws_ok($$SELECT loyalty.points_accrue('b19', (SELECT e FROM t), 'tpa', 10, 'stay')$$, '55000', NULL, 'erased member');
SELECT throws_ok($$SELECT loyalty.points_accrue('b20', (SELECT m FROM t), 'nowhere', 10, 'stay')$$, 'P0002', 'store "nowhere" does not exist', 'unknown store');
SELECT throws_ok($$SELECT loyalty.points_transfer('b21', (SELECT m FROM t), (SELECT e FROM t), 'tpa', 100)$$, '55000', NULL, 'transfer to an erased member');

-- reversal
SELECT throws_ok($$SELECT loyalty.points_reverse('b22', (SELECT entry_id FROM loyalty.point_entry WHERE reference = 'stay-1'), 'tpa', 200, 100)$$,
    '22023', 'refund amount is larger than the original amount', 'refund above the original');
SELECT throws_ok($$SELECT loyalty.points_reverse('b23', '00000000-0000-0000-0000-000000000000', 'tpa', 1, 100)$$,
    'P0002', NULL, 'unknown accrual');
SELECT throws_ok($$SELECT loyalty.points_reverse('b24', (SELECT entry_id FROM loyalty.point_entry WHERE reference = 'stay-1'), 'tpa', 0, 100)$$,
    '22023', 'refund amount must be positive', 'zero refund');

-- idempotency keys
SELECT throws_ok($$SELECT loyalty.points_accrue('tap-ok', (SELECT m FROM t), 'tpa', 3001, 'stay', reference => 'stay-1')$$,
    '23505', 'idempotency key "tap-ok" was already used with other arguments', 'reused key, other arguments');
SELECT throws_ok($$SELECT loyalty.points_redeem('tap-ok', (SELECT m FROM t), 'tpa', 1000, 'x')$$,
    '23505', NULL, 'reused key, other operation');
SELECT throws_ok($$SELECT loyalty.points_accrue('', (SELECT m FROM t), 'tpa', 10, 'stay')$$, '22023', NULL, 'empty key');
SELECT throws_ok($$SELECT loyalty.points_accrue(repeat('k', 201), (SELECT m FROM t), 'tpa', 10, 'stay')$$, '22023', NULL, 'overlong key');

-- NULLs everywhere
SELECT throws_ok($$SELECT loyalty.points_accrue('n1', NULL, 'tpa', 10, 'stay')$$, '22004', 'member_id must not be null', 'null member');
SELECT throws_ok($$SELECT loyalty.points_accrue('n2', (SELECT m FROM t), NULL, 10, 'stay')$$, '22004', 'store_code must not be null', 'null store');
SELECT throws_ok($$SELECT loyalty.points_accrue('n3', (SELECT m FROM t), 'tpa', NULL, 'stay')$$, '22004', 'points must not be null', 'null points');
SELECT throws_ok($$SELECT loyalty.points_accrue(NULL, (SELECT m FROM t), 'tpa', 10, 'stay')$$, '22004', 'idempotency_key must not be null', 'null key');
SELECT throws_ok($$SELECT loyalty.points_redeem_cash('n4', (SELECT m FROM t), 'tpa', NULL)$$, '22004', 'amount must not be null', 'null amount');
SELECT throws_ok($$SELECT loyalty.points_reverse('n5', NULL, 'tpa', 1, 1)$$, '22004', NULL, 'null accrual');
SELECT throws_ok($$SELECT loyalty.points_transfer('n6', (SELECT m FROM t), NULL, 'tpa', 1)$$, '22004', NULL, 'null receiver');
SELECT throws_ok($$SELECT loyalty.points_expire(NULL)$$, '22004', NULL, 'null batch key');

-- another store's id from a store role
SET LOCAL ROLE loyalty_tpb_frontdesk;
SELECT throws_ok($$SELECT loyalty.points_accrue('r1', (SELECT m FROM t), 'tpa', 10, 'stay')$$, '42501', 'permission denied for store "tpa"', 'store role for another store');
RESET ROLE;

-- nothing was written by any failed call
SELECT is((SELECT row(
    (SELECT count(*) FROM loyalty.point_entry), (SELECT count(*) FROM loyalty.point_lot),
    (SELECT count(*) FROM loyalty.point_draw), (SELECT count(*) FROM loyalty.ledger_request),
    (SELECT balance FROM loyalty.point_balance WHERE member_id = (SELECT m FROM t)))::text),
    (SELECT row(entries, lots, draws, requests, balance)::text FROM before),
    'no ledger row written by a failed call');
SELECT is((SELECT count(*)::int FROM loyalty.ledger_check()), 0, 'the invariant holds');

-- the tables' CHECK (one C function each, issue 19) still stops a direct
-- write by their owner
SELECT throws_ok($$INSERT INTO loyalty.point_lot (member_id, store_code, source, points, remaining, state, earned_at, active_from, entry_id)
    VALUES ((SELECT m FROM t), 'tpa', 'stay', 10, 10, 'actve', now(), now(), gen_random_uuid())$$,
    '23514', NULL, 'a lot with an unknown state is refused');
SELECT throws_ok($$INSERT INTO loyalty.point_lot (member_id, store_code, source, points, remaining, state, earned_at, active_from, entry_id)
    VALUES ((SELECT m FROM t), 'tpa', 'stay', 10, 11, 'active', now(), now(), gen_random_uuid())$$,
    '23514', NULL, 'a lot holding more than its points is refused');
SELECT throws_ok($$INSERT INTO loyalty.point_lot (member_id, store_code, source, points, remaining, state, earned_at, entry_id)
    VALUES ((SELECT m FROM t), 'tpa', 'stay', 10, 10, 'active', now(), gen_random_uuid())$$,
    '23514', NULL, 'an active lot without a start is refused');
SELECT throws_ok($$INSERT INTO loyalty.point_entry (member_id, store_code, kind, points, balance_after, occurred_at, note)
    VALUES ((SELECT m FROM t), 'tpa', 'accrue', 10, 10, now(), repeat('n', 201))$$,
    '23514', NULL, 'an entry with a note over 200 characters is refused');

-- the backend's set of known stores forgets a store that goes away
SELECT loyalty.store_create(gen_random_uuid()::text, 'tpz', 'Tap Z', 'bay', 'r', 'Asia/Shanghai');
SELECT lives_ok($$SELECT loyalty.points_accrue('tpz-1', (SELECT o FROM t), 'tpz', 100, 'stay')$$,
    'an accrual at a new store');
DELETE FROM loyalty.store WHERE store_code = 'tpz';
SELECT throws_ok($$SELECT loyalty.points_accrue('tpz-2', (SELECT o FROM t), 'tpz', 100, 'stay')$$,
    'P0002', 'store "tpz" does not exist', 'the store once known and now deleted is refused');

SELECT * FROM finish();
ROLLBACK;
