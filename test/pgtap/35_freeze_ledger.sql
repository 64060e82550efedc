-- pgTAP: an unresolved violation freezes redemption and transfers out in the
-- ledger while earning goes on; resolving it unfreezes; both steps are
-- events in the outbox (story 5).
BEGIN;
SELECT plan(10);

SELECT loyalty.store_create(gen_random_uuid()::text, 'frza', 'Freeze A', 'bay', 'r', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'frzb', 'Freeze B', 'bay', 'r', 'Asia/Shanghai');
CREATE TEMP TABLE m ON COMMIT DROP AS
    SELECT (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'frza', 'Freeze Tester')) AS who,
           (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'frzb', 'Friend')) AS friend;
SELECT loyalty.points_accrue('frz-seed', (SELECT who FROM m), 'frza', 5000, 'adjustment');
CREATE TEMP TABLE t ON COMMIT DROP AS
    SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, (SELECT who FROM m), 'frza', 'unresolved_violation',
                                  'damaged the TV in 1208', 3000) AS tag;

SELECT throws_ok($$SELECT loyalty.points_redeem('frz-r1', (SELECT who FROM m), 'frzb', 1000, 'voucher')$$,
    'LY001', NULL, 'redemption at another store is frozen');
SELECT throws_ok($$SELECT loyalty.points_transfer('frz-t1', (SELECT who FROM m), (SELECT friend FROM m), 'frzb', 1000)$$,
    'LY001', NULL, 'a transfer out is frozen too');
SELECT lives_ok($$SELECT loyalty.points_accrue('frz-a1', (SELECT who FROM m), 'frzb', 800, 'stay')$$,
    'earning goes on');
SELECT is(loyalty.points_balance((SELECT who FROM m)), 5800::bigint, 'nothing was spent');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox
            WHERE kind = 'risk_tag_raised' AND member_id = (SELECT who FROM m)), 1,
    'the raise is an event');
SELECT ok((SELECT NOT (payload ? 'note') FROM loyalty.event_outbox
            WHERE kind = 'risk_tag_raised' AND member_id = (SELECT who FROM m)),
    'the event carries no store-internal note');

SELECT lives_ok($$SELECT loyalty.risk_tag_resolve(gen_random_uuid()::text, (SELECT tag FROM t), 'settled', 'paid at the front desk')$$,
    'resolve the tag');
SELECT lives_ok($$SELECT loyalty.points_redeem('frz-r2', (SELECT who FROM m), 'frzb', 1000, 'voucher')$$,
    'redemption works again');
SELECT is(loyalty.points_balance((SELECT who FROM m)), 4800::bigint, 'the redemption was debited');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox
            WHERE kind = 'risk_tag_resolved' AND member_id = (SELECT who FROM m)), 1,
    'the resolution is an event');

SELECT * FROM finish();
ROLLBACK;
