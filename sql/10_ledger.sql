-- The point ledger: accrual, activation, redemption, reversal, transfer,
-- expiry and the invariant, told as one member's story across two stores.
\set VERBOSITY terse
SELECT loyalty.store_create(gen_random_uuid()::text, 'lsz', 'Ledger Shenzhen', 'bay', 'south', 'Asia/Shanghai'),
       loyalty.store_create(gen_random_uuid()::text, 'lsh', 'Ledger Shanghai', 'bay', 'east', 'Asia/Shanghai');
SELECT member_id AS ann FROM loyalty.member_enroll(gen_random_uuid()::text, 'lsz', 'Ann') \gset
SELECT member_id AS bo FROM loyalty.member_enroll(gen_random_uuid()::text, 'lsh', 'Bo') \gset

-- earn at Shenzhen; a retry with the same key returns the first result
SELECT operation, points, balance, replayed FROM loyalty.points_accrue('l-1', :'ann', 'lsz', 5000, 'stay', rule => 'base', reference => 'stay-a');
SELECT operation, points, balance, replayed FROM loyalty.points_accrue('l-1', :'ann', 'lsz', 5000, 'stay', rule => 'base', reference => 'stay-a');
SELECT count(*) AS lots FROM loyalty.point_lot WHERE member_id = :'ann';
-- the same key with other arguments is refused
SELECT operation FROM loyalty.points_accrue('l-1', :'ann', 'lsz', 5001, 'stay', rule => 'base', reference => 'stay-a');

-- pending points count once the stay checks out
SELECT points, balance, lots -> 0 ->> 'state' AS state FROM loyalty.points_accrue('l-2', :'ann', 'lsz', 2000, 'stay', reference => 'stay-b', pending => true);
SELECT balance, pending FROM loyalty.points_summary(:'ann');
SELECT operation, points, balance FROM loyalty.points_activate('l-3', :'ann', 'lsz', 'stay-b');
SELECT operation FROM loyalty.points_activate('l-3b', :'ann', 'lsz', 'stay-b');

-- redeem at Shanghai at the single rate: 1,000 points = 100 CNY
SELECT operation, points, balance, cash_amount FROM loyalty.points_redeem_cash('l-4', :'ann', 'lsh', 100.00);
SELECT operation, points, balance, jsonb_array_length(lots) AS lots FROM loyalty.points_redeem('l-5', :'ann', 'lsh', 1500, 'gift: tea set');
SELECT operation FROM loyalty.points_redeem('l-6', :'ann', 'lsh', 1550, 'gift');
SELECT operation FROM loyalty.points_redeem('l-7', :'ann', 'lsh', 900, 'gift');
SELECT operation FROM loyalty.points_redeem_cash('l-8', :'ann', 'lsh', 10.005);
SELECT operation FROM loyalty.points_redeem_cash('l-9', :'ann', 'lsh', 10.05);
SELECT operation FROM loyalty.points_redeem('l-10', :'ann', 'lsh', 100000, 'night');

-- a refund of 40% of the first stay takes back 40% of its 5,000 points
SELECT entry_id AS stay_a FROM loyalty.point_entry WHERE member_id = :'ann' AND reference = 'stay-a' AND kind = 'accrue' \gset
SELECT operation, points, balance FROM loyalty.points_reverse('l-11', :'stay_a', 'lsz', 400, 1000);
SELECT operation FROM loyalty.points_reverse('l-12', :'stay_a', 'lsz', 700, 1000);
SELECT operation FROM loyalty.points_reverse('l-13', :'stay_a', 'lsz', 1200, 1000);

-- a transfer to Bo; Bo's lots keep their origin
SELECT operation, points, balance FROM loyalty.points_transfer('l-14', :'ann', :'bo', 'lsh', 1000);
SELECT loyalty.points_balance(:'ann') AS ann, loyalty.points_balance(:'bo') AS bo;
SELECT source, points, remaining, state FROM loyalty.point_lot WHERE member_id = :'bo';
SELECT operation FROM loyalty.points_transfer('l-15', :'ann', :'ann', 'lsh', 100);
SELECT operation FROM loyalty.points_transfer('l-16', :'ann', :'bo', 'lsh', 60000);

-- the statement, and the balance as of the moment before this test
SELECT kind, store_code, points, pending_points, balance_after
  FROM loyalty.points_ledger(:'ann') ORDER BY recorded_at, balance_after DESC;
SELECT loyalty.points_balance_at(:'ann', now() - interval '1 day') AS yesterday,
       loyalty.points_balance_at(:'ann', now()) AS now;

-- fixed lifetime per lot, in a policy version that is rolled back again
BEGIN;
SELECT loyalty.policy_set(jsonb_set(loyalty.policy_at(now()), '{expiry}',
    '{"mode": "lot_lifetime", "lot_lifetime_months": 24, "notice_days": 30}')::text, now()) > 0 AS policy;
SELECT member_id AS cy FROM loyalty.member_enroll(gen_random_uuid()::text, 'lsz', 'Cy') \gset
-- (back-dated: a batch refuses an as_of in the future, 22023)
SELECT points FROM loyalty.points_accrue('l-17', :'cy', 'lsz', 3000, 'spend', occurred_at => '2024-01-15 12:00+08');
SELECT expires_at AT TIME ZONE 'Asia/Shanghai' AS expires_local FROM loyalty.point_lot WHERE member_id = :'cy';
SELECT points, balance, lots FROM loyalty.points_expire('l-18', '2025-12-31 00:00+08');
SELECT points, balance, lots FROM loyalty.points_expire('l-19', '2026-02-01 00:00+08');
SELECT kind, payload ->> 'points' AS points FROM loyalty.event_outbox WHERE member_id = :'cy' ORDER BY event_id;
ROLLBACK;

-- reversal may overdraw under the allow_negative policy; credits pay it back
BEGIN;
SELECT loyalty.policy_set(jsonb_set(loyalty.policy_at(now()), '{reversal}',
    '{"mode": "allow_negative"}')::text, now()) > 0 AS policy;
SELECT member_id AS di FROM loyalty.member_enroll(gen_random_uuid()::text, 'lsz', 'Di') \gset
SELECT entry_id AS di_stay FROM loyalty.points_accrue('l-20', :'di', 'lsz', 2000, 'stay') \gset
SELECT points, balance FROM loyalty.points_redeem('l-21', :'di', 'lsz', 2000, 'night');
SELECT points, balance FROM loyalty.points_reverse('l-22', :'di_stay', 'lsz', 50, 100);
SELECT points, balance FROM loyalty.points_accrue('l-23', :'di', 'lsz', 1500, 'stay');
SELECT source, points, remaining FROM loyalty.point_lot WHERE member_id = :'di' ORDER BY source;
SELECT count(*) AS problems FROM loyalty.ledger_check(:'di');
ROLLBACK;

-- inactivity: 24 months without earning or redeeming forfeit the balance,
-- with a notice 30 days ahead; a second run expires nothing again.  A
-- batch refuses an as_of in the future (22023), so the members' inactivity
-- clocks are moved back instead: 23 months 15 days, then 5 days more (with
-- the deadline already noticed), then to 24 months and a day before as_of.
SELECT now() AS t0 \gset
SELECT points FROM loyalty.points_expire('l-24f', now() + interval '1 day');
UPDATE loyalty.point_balance SET last_activity_at = last_activity_at - interval '23 months 15 days';
SELECT points, lots FROM loyalty.points_expire('l-24', :'t0');
UPDATE loyalty.point_balance SET last_activity_at = last_activity_at - interval '5 days', notice_for = notice_for - interval '5 days';
SELECT points, lots FROM loyalty.points_expire('l-25', :'t0');
UPDATE loyalty.point_balance SET last_activity_at = last_activity_at + interval '20 days' - interval '1 month 1 day';
SELECT points, lots FROM loyalty.points_expire('l-26', :'t0');
SELECT points, lots, replayed FROM loyalty.points_expire('l-26', :'t0');
SELECT loyalty.points_balance(:'ann') AS ann, loyalty.points_balance(:'bo') AS bo;
SELECT kind, payload ->> 'points' AS points FROM loyalty.event_read('regress') ORDER BY kind DESC, 2;

-- consumers acknowledge what they processed
SELECT loyalty.event_ack('regress', max(event_id)) FROM loyalty.event_read('regress');
SELECT count(*) AS unread FROM loyalty.event_read('regress');

-- caller rights: store staff act for their own store only, and credit
-- points for a stay or charge of the member at that store
INSERT INTO loyalty.charge (member_id, store_code, amount, occurred_at, idempotency_key)
    VALUES (:'ann', 'lsz', 10, now(), 'l-charge-27');
SET ROLE loyalty_lsz_frontdesk;
SELECT points FROM loyalty.points_accrue('l-27', :'ann', 'lsz', 100, 'spend', reference => 'l-charge-27');
SELECT points FROM loyalty.points_accrue('l-27b', :'ann', 'lsz', 100, 'spend');
SELECT points FROM loyalty.points_accrue('l-28', :'ann', 'lsh', 100, 'spend');
SELECT points FROM loyalty.points_reverse('l-29', :'stay_a', 'lsh', 1, 1000);
SELECT loyalty.points_balance(:'ann');
SELECT count(*) FROM loyalty.point_entry;
SELECT points FROM loyalty.points_expire('l-30');
RESET ROLE;
SET ROLE loyalty_lsz_housekeeping;
SELECT points FROM loyalty.points_accrue('l-31', :'ann', 'lsz', 100, 'spend');
RESET ROLE;

-- the invariant holds for everyone
SELECT count(*) AS problems FROM loyalty.ledger_check();
