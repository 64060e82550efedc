-- The point ledger: accrual, activation, redemption, reversal, transfer,
-- expiry and the invariant, told as one member's story across two stores.
\set VERBOSITY terse
SELECT loyalty.create_store('lsz', 'Ledger Shenzhen', 'bay', 'south', 'Asia/Shanghai'),
       loyalty.create_store('lsh', 'Ledger Shanghai', 'bay', 'east', 'Asia/Shanghai');
SELECT member_id AS ann FROM loyalty.enroll('lsz', 'Ann') \gset
SELECT member_id AS bo FROM loyalty.enroll('lsh', 'Bo') \gset

-- earn at Shenzhen; a retry with the same key returns the first result
SELECT operation, points, balance, replayed FROM loyalty.accrue(:'ann', 'lsz', 5000, 'stay', 'l-1', rule => 'base', reference => 'stay-a');
SELECT operation, points, balance, replayed FROM loyalty.accrue(:'ann', 'lsz', 5000, 'stay', 'l-1', rule => 'base', reference => 'stay-a');
SELECT count(*) AS lots FROM loyalty.point_lot WHERE member_id = :'ann';
-- the same key with other arguments is refused
SELECT operation FROM loyalty.accrue(:'ann', 'lsz', 5001, 'stay', 'l-1', rule => 'base', reference => 'stay-a');

-- pending points count once the stay checks out
SELECT points, balance, lots -> 0 ->> 'state' AS state FROM loyalty.accrue(:'ann', 'lsz', 2000, 'stay', 'l-2', reference => 'stay-b', pending => true);
SELECT balance, pending FROM loyalty.points_summary(:'ann');
SELECT operation, points, balance FROM loyalty.activate(:'ann', 'lsz', 'stay-b', 'l-3');
SELECT operation FROM loyalty.activate(:'ann', 'lsz', 'stay-b', 'l-3b');

-- redeem at Shanghai at the single rate: 1,000 points = 100 CNY
SELECT operation, points, balance, cash_amount FROM loyalty.redeem_cash(:'ann', 'lsh', 100.00, 'l-4');
SELECT operation, points, balance, jsonb_array_length(lots) AS lots FROM loyalty.redeem(:'ann', 'lsh', 1500, 'gift: tea set', 'l-5');
SELECT operation FROM loyalty.redeem(:'ann', 'lsh', 1550, 'gift', 'l-6');
SELECT operation FROM loyalty.redeem(:'ann', 'lsh', 900, 'gift', 'l-7');
SELECT operation FROM loyalty.redeem_cash(:'ann', 'lsh', 10.005, 'l-8');
SELECT operation FROM loyalty.redeem_cash(:'ann', 'lsh', 10.05, 'l-9');
SELECT operation FROM loyalty.redeem(:'ann', 'lsh', 100000, 'night', 'l-10');

-- a refund of 40% of the first stay takes back 40% of its 5,000 points
SELECT entry_id AS stay_a FROM loyalty.point_entry WHERE member_id = :'ann' AND reference = 'stay-a' AND kind = 'accrue' \gset
SELECT operation, points, balance FROM loyalty.reverse(:'stay_a', 'lsz', 400, 1000, 'l-11');
SELECT operation FROM loyalty.reverse(:'stay_a', 'lsz', 700, 1000, 'l-12');
SELECT operation FROM loyalty.reverse(:'stay_a', 'lsz', 1200, 1000, 'l-13');

-- a transfer to Bo; Bo's lots keep their origin
SELECT operation, points, balance FROM loyalty.transfer(:'ann', :'bo', 'lsh', 1000, 'l-14');
SELECT loyalty.balance(:'ann') AS ann, loyalty.balance(:'bo') AS bo;
SELECT source, points, remaining, state FROM loyalty.point_lot WHERE member_id = :'bo';
SELECT operation FROM loyalty.transfer(:'ann', :'ann', 'lsh', 100, 'l-15');
SELECT operation FROM loyalty.transfer(:'ann', :'bo', 'lsh', 60000, 'l-16');

-- the statement, and the balance as of the moment before this test
SELECT kind, store_code, points, pending_points, balance_after
  FROM loyalty.member_ledger(:'ann') ORDER BY recorded_at, balance_after DESC;
SELECT loyalty.balance_at(:'ann', now() - interval '1 day') AS yesterday,
       loyalty.balance_at(:'ann', now()) AS now;

-- fixed lifetime per lot, in a policy version that is rolled back again
BEGIN;
SELECT loyalty.policy_set(jsonb_set(loyalty.policy_at(now()), '{expiry}',
    '{"mode": "lot_lifetime", "lot_lifetime_months": 24, "notice_days": 30}')::text, now()) > 0 AS policy;
SELECT member_id AS cy FROM loyalty.enroll('lsz', 'Cy') \gset
-- (back-dated: a batch refuses an as_of in the future, 22023)
SELECT points FROM loyalty.accrue(:'cy', 'lsz', 3000, 'spend', 'l-17', occurred_at => '2024-01-15 12:00+08');
SELECT expires_at AT TIME ZONE 'Asia/Shanghai' AS expires_local FROM loyalty.point_lot WHERE member_id = :'cy';
SELECT points, balance, lots FROM loyalty.expire_points('l-18', '2025-12-31 00:00+08');
SELECT points, balance, lots FROM loyalty.expire_points('l-19', '2026-02-01 00:00+08');
SELECT kind, payload ->> 'points' AS points FROM loyalty.event_outbox WHERE member_id = :'cy' ORDER BY event_id;
ROLLBACK;

-- reversal may overdraw under the allow_negative policy; credits pay it back
BEGIN;
SELECT loyalty.policy_set(jsonb_set(loyalty.policy_at(now()), '{reversal}',
    '{"mode": "allow_negative"}')::text, now()) > 0 AS policy;
SELECT member_id AS di FROM loyalty.enroll('lsz', 'Di') \gset
SELECT entry_id AS di_stay FROM loyalty.accrue(:'di', 'lsz', 2000, 'stay', 'l-20') \gset
SELECT points, balance FROM loyalty.redeem(:'di', 'lsz', 2000, 'night', 'l-21');
SELECT points, balance FROM loyalty.reverse(:'di_stay', 'lsz', 50, 100, 'l-22');
SELECT points, balance FROM loyalty.accrue(:'di', 'lsz', 1500, 'stay', 'l-23');
SELECT source, points, remaining FROM loyalty.point_lot WHERE member_id = :'di' ORDER BY source;
SELECT count(*) AS problems FROM loyalty.ledger_check(:'di');
ROLLBACK;

-- inactivity: 24 months without earning or redeeming forfeit the balance,
-- with a notice 30 days ahead; a second run expires nothing again.  A
-- batch refuses an as_of in the future (22023), so the members' inactivity
-- clocks are moved back instead: 23 months 15 days, then 5 days more (with
-- the deadline already noticed), then to 24 months and a day before as_of.
SELECT now() AS t0 \gset
SELECT points FROM loyalty.expire_points('l-24f', now() + interval '1 day');
UPDATE loyalty.point_balance SET last_activity_at = last_activity_at - interval '23 months 15 days';
SELECT points, lots FROM loyalty.expire_points('l-24', :'t0');
UPDATE loyalty.point_balance SET last_activity_at = last_activity_at - interval '5 days', notice_for = notice_for - interval '5 days';
SELECT points, lots FROM loyalty.expire_points('l-25', :'t0');
UPDATE loyalty.point_balance SET last_activity_at = last_activity_at + interval '20 days' - interval '1 month 1 day';
SELECT points, lots FROM loyalty.expire_points('l-26', :'t0');
SELECT points, lots, replayed FROM loyalty.expire_points('l-26', :'t0');
SELECT loyalty.balance(:'ann') AS ann, loyalty.balance(:'bo') AS bo;
SELECT kind, payload ->> 'points' AS points FROM loyalty.event_read('regress') ORDER BY kind DESC, 2;

-- consumers acknowledge what they processed
SELECT loyalty.event_ack('regress', max(event_id)) FROM loyalty.event_read('regress');
SELECT count(*) AS unread FROM loyalty.event_read('regress');

-- caller rights: store staff act for their own store only
SET ROLE loyalty_lsz_frontdesk;
SELECT points FROM loyalty.accrue(:'ann', 'lsz', 100, 'spend', 'l-27');
SELECT points FROM loyalty.accrue(:'ann', 'lsh', 100, 'spend', 'l-28');
SELECT points FROM loyalty.reverse(:'stay_a', 'lsh', 1, 1000, 'l-29');
SELECT loyalty.balance(:'ann');
SELECT count(*) FROM loyalty.point_entry;
SELECT points FROM loyalty.expire_points('l-30');
RESET ROLE;
SET ROLE loyalty_lsz_housekeeping;
SELECT points FROM loyalty.accrue(:'ann', 'lsz', 100, 'spend', 'l-31');
RESET ROLE;

-- the invariant holds for everyone
SELECT count(*) AS problems FROM loyalty.ledger_check();
