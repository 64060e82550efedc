-- pgTAP: an unresolved violation freezes redemption and transfers out in the
-- ledger while earning goes on; resolving it unfreezes; both steps are
-- events in the outbox (story 5).
BEGIN;
SELECT plan(10);

SELECT loyalty.create_store('frza', 'Freeze A', 'bay', 'r', 'Asia/Shanghai');
SELECT loyalty.create_store('frzb', 'Freeze B', 'bay', 'r', 'Asia/Shanghai');
CREATE TEMP TABLE m ON COMMIT DROP AS
    SELECT (SELECT member_id FROM loyalty.enroll('frza', 'Freeze Tester')) AS who,
           (SELECT member_id FROM loyalty.enroll('frzb', 'Friend')) AS friend;
SELECT loyalty.accrue((SELECT who FROM m), 'frza', 5000, 'adjustment', 'frz-seed');
CREATE TEMP TABLE t ON COMMIT DROP AS
    SELECT loyalty.raise_risk_tag((SELECT who FROM m), 'frza', 'unresolved_violation',
                                  'damaged the TV in 1208', 3000) AS tag;

SELECT throws_ok($$SELECT loyalty.redeem((SELECT who FROM m), 'frzb', 1000, 'voucher', 'frz-r1')$$,
    'LY001', NULL, 'redemption at another store is frozen');
SELECT throws_ok($$SELECT loyalty.transfer((SELECT who FROM m), (SELECT friend FROM m), 'frzb', 1000, 'frz-t1')$$,
    'LY001', NULL, 'a transfer out is frozen too');
SELECT lives_ok($$SELECT loyalty.accrue((SELECT who FROM m), 'frzb', 800, 'stay', 'frz-a1')$$,
    'earning goes on');
SELECT is(loyalty.balance((SELECT who FROM m)), 5800::bigint, 'nothing was spent');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox
            WHERE kind = 'risk_tag_raised' AND member_id = (SELECT who FROM m)), 1,
    'the raise is an event');
SELECT ok((SELECT NOT (payload ? 'note') FROM loyalty.event_outbox
            WHERE kind = 'risk_tag_raised' AND member_id = (SELECT who FROM m)),
    'the event carries no store-internal note');

SELECT lives_ok($$SELECT loyalty.resolve_risk_tag((SELECT tag FROM t), 'settled', 'paid at the front desk')$$,
    'resolve the tag');
SELECT lives_ok($$SELECT loyalty.redeem((SELECT who FROM m), 'frzb', 1000, 'voucher', 'frz-r2')$$,
    'redemption works again');
SELECT is(loyalty.balance((SELECT who FROM m)), 4800::bigint, 'the redemption was debited');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox
            WHERE kind = 'risk_tag_resolved' AND member_id = (SELECT who FROM m)), 1,
    'the resolution is an event');

SELECT * FROM finish();
ROLLBACK;
