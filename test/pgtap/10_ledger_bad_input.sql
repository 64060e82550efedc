-- pgTAP: every class of bad input to the ledger gets a clear error with the
-- right SQLSTATE, and leaves nothing written.
BEGIN;
SELECT plan(41);

CREATE TEMP TABLE stores AS
SELECT loyalty.create_store('tpa', 'Tap A', 'bay', 'r', 'Asia/Shanghai') AS a,
       loyalty.create_store('tpb', 'Tap B', 'bay', 'r', 'Asia/Shanghai') AS b;
CREATE TEMP TABLE t AS
SELECT (SELECT member_id FROM loyalty.enroll('tpa', 'Tap Member')) AS m,
       (SELECT member_id FROM loyalty.enroll('tpa', 'Tap Other')) AS o,
       (SELECT member_id FROM loyalty.enroll('tpa', 'Tap Erased')) AS e;
UPDATE loyalty.member SET status = 'erased' WHERE member_id = (SELECT e FROM t);
GRANT SELECT ON t TO loyalty_tpa_frontdesk, loyalty_tpb_frontdesk;
SELECT lives_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', 3000, 'stay', 'tap-ok', reference => 'stay-1')$$, 'setup accrual');
SELECT lives_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', 500, 'stay', 'tap-pend', reference => 'stay-2', pending => true)$$, 'setup pending accrual');
CREATE TEMP TABLE before AS SELECT
    (SELECT count(*) FROM loyalty.point_entry) AS entries,
    (SELECT count(*) FROM loyalty.point_lot) AS lots,
    (SELECT count(*) FROM loyalty.point_draw) AS draws,
    (SELECT count(*) FROM loyalty.ledger_request) AS requests,
    (SELECT balance FROM loyalty.point_balance WHERE member_id = (SELECT m FROM t)) AS balance;

-- points
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', 0, 'stay', 'b1')$$, '22023', 'points must be positive', 'zero points');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', -5, 'stay', 'b2')$$, '22023', 'points must be positive', 'negative points');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', 100000001, 'stay', 'b3')$$, '22003', NULL, 'absurdly many points');
SELECT throws_ok($$SELECT loyalty.redeem((SELECT m FROM t), 'tpa', 9223372036854775807, 'x', 'b4')$$, '22003', NULL, 'absurd redemption');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', 10, 'gift', 'b5')$$, '22023', 'unknown point source "gift"', 'unknown source');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', 10, 'stay', 'b6', occurred_at => now() + interval '1 day')$$, '22008', NULL, 'future occurred_at');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', 10, 'stay', 'b7', occurred_at => 'infinity')$$, '22008', NULL, 'infinite occurred_at');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', 10, 'stay', 'b8', activate_at => now())$$, '22023', 'activate_at applies to pending points only', 'activate_at without pending');

-- money
SELECT throws_ok($$SELECT loyalty.redeem_cash((SELECT m FROM t), 'tpa', 100.001, 'b9')$$, '22023', 'amount 100.001 has more than 2 decimals', 'too many decimals');
SELECT throws_ok($$SELECT loyalty.redeem_cash((SELECT m FROM t), 'tpa', -100, 'b10')$$, '22023', 'amount must be positive', 'negative amount');
SELECT throws_ok($$SELECT loyalty.redeem_cash((SELECT m FROM t), 'tpa', 'NaN', 'b11')$$, '22023', 'amount must be a finite number', 'NaN amount');
SELECT throws_ok($$SELECT loyalty.redeem_cash((SELECT m FROM t), 'tpa', 1e30, 'b12')$$, '22003', NULL, 'absurd amount');
SELECT throws_ok($$SELECT loyalty.redeem_cash((SELECT m FROM t), 'tpa', 100.05, 'b13')$$, '22023', 'amount 100.05 does not convert to whole points', 'amount off the rate');

-- the redemption rules
SELECT throws_ok($$SELECT loyalty.redeem((SELECT m FROM t), 'tpa', 1050, 'x', 'b14')$$, '22023', 'redemption of 1050 points is not a multiple of the step of 100', 'off the step');
SELECT throws_ok($$SELECT loyalty.redeem((SELECT m FROM t), 'tpa', 500, 'x', 'b15')$$, '22023', 'redemption of 500 points is below the minimum of 1000', 'below the minimum');
SELECT throws_ok($$SELECT loyalty.redeem((SELECT m FROM t), 'tpa', 3500, 'x', 'b16')$$, '23514', 'insufficient points', 'pending points cannot be redeemed');
SELECT throws_ok($$SELECT loyalty.redeem((SELECT o FROM t), 'tpa', 1000, 'x', 'b17')$$, '23514', 'insufficient points', 'nothing to redeem');

-- members and stores
SELECT throws_ok($$SELECT loyalty.accrue('00000000-0000-0000-0000-000000000000', 'tpa', 10, 'stay', 'b18')$$, 'P0002', 'member 00000000-0000-0000-0000-000000000000 does not exist', 'unknown member');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT e FROM t), 'tpa', 10, 'stay', 'b19')$$, '55000', NULL, 'erased member');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'nowhere', 10, 'stay', 'b20')$$, 'P0002', 'store "nowhere" does not exist', 'unknown store');
SELECT throws_ok($$SELECT loyalty.transfer((SELECT m FROM t), (SELECT e FROM t), 'tpa', 100, 'b21')$$, '55000', NULL, 'transfer to an erased member');

-- reversal
SELECT throws_ok($$SELECT loyalty.reverse((SELECT entry_id FROM loyalty.point_entry WHERE reference = 'stay-1'), 'tpa', 200, 100, 'b22')$$,
    '22023', 'refund amount is larger than the original amount', 'refund above the original');
SELECT throws_ok($$SELECT loyalty.reverse('00000000-0000-0000-0000-000000000000', 'tpa', 1, 100, 'b23')$$,
    'P0002', NULL, 'unknown accrual');
SELECT throws_ok($$SELECT loyalty.reverse((SELECT entry_id FROM loyalty.point_entry WHERE reference = 'stay-1'), 'tpa', 0, 100, 'b24')$$,
    '22023', 'refund amount must be positive', 'zero refund');

-- idempotency keys
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', 3001, 'stay', 'tap-ok', reference => 'stay-1')$$,
    '23505', 'idempotency key "tap-ok" was already used with other arguments', 'reused key, other arguments');
SELECT throws_ok($$SELECT loyalty.redeem((SELECT m FROM t), 'tpa', 1000, 'x', 'tap-ok')$$,
    '23505', NULL, 'reused key, other operation');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', 10, 'stay', '')$$, '22023', NULL, 'empty key');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', 10, 'stay', repeat('k', 201))$$, '22023', NULL, 'overlong key');

-- NULLs everywhere
SELECT throws_ok($$SELECT loyalty.accrue(NULL, 'tpa', 10, 'stay', 'n1')$$, '22004', 'member_id must not be null', 'null member');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), NULL, 10, 'stay', 'n2')$$, '22004', 'store_code must not be null', 'null store');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', NULL, 'stay', 'n3')$$, '22004', 'points must not be null', 'null points');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', 10, 'stay', NULL)$$, '22004', 'idem_key must not be null', 'null key');
SELECT throws_ok($$SELECT loyalty.redeem_cash((SELECT m FROM t), 'tpa', NULL, 'n4')$$, '22004', 'amount must not be null', 'null amount');
SELECT throws_ok($$SELECT loyalty.reverse(NULL, 'tpa', 1, 1, 'n5')$$, '22004', NULL, 'null accrual');
SELECT throws_ok($$SELECT loyalty.transfer((SELECT m FROM t), NULL, 'tpa', 1, 'n6')$$, '22004', NULL, 'null receiver');
SELECT throws_ok($$SELECT loyalty.expire_points(NULL)$$, '22004', NULL, 'null batch key');

-- another store's id from a store role
SET LOCAL ROLE loyalty_tpb_frontdesk;
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM t), 'tpa', 10, 'stay', 'r1')$$, '42501', 'permission denied for store "tpa"', 'store role for another store');
RESET ROLE;

-- nothing was written by any failed call
SELECT is((SELECT row(
    (SELECT count(*) FROM loyalty.point_entry), (SELECT count(*) FROM loyalty.point_lot),
    (SELECT count(*) FROM loyalty.point_draw), (SELECT count(*) FROM loyalty.ledger_request),
    (SELECT balance FROM loyalty.point_balance WHERE member_id = (SELECT m FROM t)))::text),
    (SELECT row(entries, lots, draws, requests, balance)::text FROM before),
    'no ledger row written by a failed call');
SELECT is((SELECT count(*)::int FROM loyalty.ledger_check()), 0, 'the invariant holds');

SELECT * FROM finish();
ROLLBACK;
