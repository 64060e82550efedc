-- pgTAP: stays, check-outs, charges and enrolments at a store replica, on
-- one server (this database plays store rof after HQ registered it):
-- provisional answers, the outbox events, retries, and bad input refused
-- with HQ's SQLSTATEs and nothing recorded.  The applier at HQ is proved
-- on real servers by test/t/085_replica_offline_stays.pl.
BEGIN;
SELECT plan(27);

SELECT loyalty.store_create('rof-s1', 'rof', 'Offline A', 'bay', 'r', 'Asia/Shanghai'),
       loyalty.store_create('rof-s2', 'rog', 'Offline B', 'bay', 'r', 'Asia/Shanghai');
CREATE TEMP TABLE t AS
SELECT (SELECT member_id FROM loyalty.member_enroll('rof-e0', 'rof', 'Offline Member')) AS m;
SELECT loyalty.replica_store_add('rof-add-1', 'rof');
SELECT loyalty.replica_store_add('rof-add-2', 'rog');

-- card numbers
SELECT ok((SELECT bool_and(left(loyalty.card_number_new(), 1) BETWEEN '1' AND '8') FROM generate_series(1, 500)),
          'HQ''s card numbers start with 1 to 8');
SELECT is(loyalty._card_number_offline(12, 34), '901200000346', 'an offline card: 9, the block, the number, the check digit');
SELECT ok(loyalty.card_number_valid(loyalty._card_number_offline(999, 9999999)), 'the last number of the last block is valid');
SELECT throws_ok($$SELECT loyalty._card_number_offline(0, 1)$$, '22023', 'card block 0 is not between 1 and 999', 'block 0');
SELECT throws_ok($$SELECT loyalty._card_number_offline(5, 10000000)$$, '54000', 'card block 5 has no offline card number left', 'a full block');
SELECT isnt((SELECT card_block FROM loyalty.replica_store WHERE store_code = 'rof'),
            (SELECT card_block FROM loyalty.replica_store WHERE store_code = 'rog'), 'each store gets its own block');

-- store mode from here on
INSERT INTO loyalty.replica_node (node_role, store_code, incarnation) VALUES ('store', 'rof', 3);
CREATE TEMP TABLE n AS SELECT count(*) AS events FROM loyalty.outbox;

-- stays
SELECT is((SELECT row(nights_credited, base_points, points_pending, tier, tier_changed, replayed)::text
             FROM loyalty.stay_record('rof-k1', 'rof', (SELECT m FROM t), DATE '2026-11-01', DATE '2026-11-03', room_revenue => 500)),
          '(2,5000,t,member,f,f)', 'a stay at the store: provisional nights and base points, pending');
SELECT is((SELECT kind || ' ' || idem_key || ' ' || (payload ->> 'check_in') || ' ' || (payload -> 'provisional' ->> 'base_points')
             FROM loyalty.outbox WHERE idem_key = 'stay:rof-k1'),
          'stay stay:rof-k1 2026-11-01 5000', 'the stay is an outbox event with its arguments and provisional answer');
SELECT is((SELECT count(*) FROM loyalty.stay), 0::bigint, 'no stay is written at the store');
SELECT is((SELECT replayed FROM loyalty.stay_record('rof-k1', 'rof', (SELECT m FROM t), DATE '2026-11-01', DATE '2026-11-03')),
          true, 'a retry replays');
SELECT throws_ok(format($$SELECT loyalty.stay_record('rof-k1', 'rof', %L, DATE '2026-11-02', DATE '2026-11-03')$$, (SELECT m FROM t)),
                 '22023', 'idempotency key "rof-k1" was already used for another stay', 'a key reused for other dates');
SELECT throws_ok(format($$SELECT loyalty.stay_record('rof-k2', 'rog', %L, DATE '2026-11-01', DATE '2026-11-03')$$, (SELECT m FROM t)),
                 '42501', NULL, 'another store''s stay');
SELECT throws_ok(format($$SELECT loyalty.stay_record('rof-k3', 'rof', %L, DATE '2026-11-03', DATE '2026-11-01')$$, (SELECT m FROM t)),
                 '22023', 'check-out 2026-11-01 is before check-in 2026-11-03', 'HQ''s date check');
SELECT throws_ok($$SELECT loyalty.stay_record('rof-k4', 'rof', '00000000-0000-0000-0000-000000000000', DATE '2026-11-01', DATE '2026-11-03')$$,
                 'P0002', NULL, 'an unknown member');

-- check-outs
SELECT lives_ok(format($$SELECT loyalty.stay_record('rof-k5', 'rof', %L, DATE '2026-11-05', DATE '2026-11-08', room_revenue => 300, checked_out => false)$$, (SELECT m FROM t)),
                'an in-house stay');
SELECT is((SELECT row(nights_credited, base_points, points_pending, replayed)::text FROM loyalty.stay_checkout('rof-k5')),
          '(3,3000,t,f)', 'its check-out: the stay''s nights and provisional points');
SELECT is((SELECT stay_id FROM loyalty.stay_checkout('rof-k5')),
          (SELECT (payload -> 'provisional' ->> 'id')::uuid FROM loyalty.outbox WHERE idem_key = 'stay:rof-k5'),
          'a check-out retried answers with the stay''s id');
SELECT is((SELECT count(*) FROM loyalty.outbox WHERE idem_key = 'checkout:rof-k5'), 1::bigint, 'one checkout event');
SELECT is((SELECT replayed FROM loyalty.stay_checkout('rof-k1')), true, 'checking out a checked-out stay replays it');
SELECT throws_ok($$SELECT loyalty.stay_checkout('rof-none')$$, 'P0002', 'no stay was recorded with idempotency key "rof-none"', 'an unknown stay');

-- charges
SELECT is((SELECT row(base_points, points_pending)::text FROM loyalty.charge_record('rof-c1', 'rof', (SELECT m FROM t), 120)),
          '(1200,t)', 'a charge at the store: provisional base points');

-- enrolment
SELECT is((SELECT left(card_no, 4) FROM loyalty.member_enroll('rof-e1', 'rof', 'Walk In')),
          '9' || lpad((SELECT card_block FROM loyalty.replica_store WHERE store_code = 'rof')::text, 3, '0'),
          'an enrolment at the store: a card of the store''s block');
SELECT is((SELECT card_no FROM loyalty.member_enroll('rof-e1', 'rof', 'Walk In')),
          (SELECT payload ->> 'card_no' FROM loyalty.outbox WHERE idem_key = 'enrol:rof-e1'), 'a retry: the same card');
SELECT is((SELECT (payload ? 'full_name') || ' ' || (SELECT personal ->> 'full_name' FROM loyalty.outbox WHERE idem_key = 'enrol:rof-e1')
             FROM loyalty.store_outbox_status WHERE kind = 'enrol'),
          'false Walk In', 'the profile fields travel apart from the payload store staff see');
SELECT throws_ok($$SELECT loyalty.member_enroll('rof-e2', 'rog', 'Elsewhere')$$, '42501', NULL, 'enrolling at another store');
UPDATE loyalty.replica_store SET card_block = NULL WHERE store_code = 'rof';
SELECT throws_ok($$SELECT loyalty.member_enroll('rof-e3', 'rof', 'No Block')$$, '55000', 'store "rof" has no block of offline card numbers',
                 'no block yet (an HQ updated before its stores)');
SELECT is((SELECT count(*) FROM loyalty.outbox) - (SELECT events FROM n), 5::bigint,
          'the store recorded two stays, a check-out, a charge and an enrolment, nothing for the refused calls');

SELECT * FROM finish();
ROLLBACK;
