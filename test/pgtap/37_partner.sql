-- pgTAP: partner conversion (issue 17 item 5): points to airline miles at
-- the partner's ratio, minimum and step, only with the member's third_party
-- consent; the transfer is a ledger debit, confirmed with the partner's
-- reference or given back when the partner rejects it.  Bad input is
-- refused with its SQLSTATE and nothing written; the ledger invariant holds.
BEGIN;
SELECT plan(30);

SELECT lives_ok($$SELECT loyalty.store_create('pt-store-a', 'pta', 'Partner A', 'bay', 'r', 'Asia/Shanghai')$$, 'setup store');
CREATE TEMP TABLE ptm AS
SELECT (loyalty.member_enroll('pt-enroll-1', 'pta', 'Flyer One')).member_id AS m1,
       (loyalty.member_enroll('pt-enroll-2', 'pta', 'Flyer Two')).member_id AS m2;
SELECT lives_ok($$SELECT loyalty.points_accrue('pt-seed-1', m1, 'pta', 50000, 'stay'),
                         loyalty.points_accrue('pt-seed-2', m2, 'pta', 50000, 'stay') FROM ptm$$, 'seed points');

-- partners
SELECT lives_ok($$SELECT loyalty.partner_set('pt-set-1', 'skyair', 'Sky Air', 'airline', 1000, 250, 5000, 1000)$$,
    'an airline: 1,000 points = 250 miles, at least 5,000, steps of 1,000');
SELECT lives_ok($$SELECT loyalty.partner_set('pt-set-1', 'skyair', 'Sky Air', 'airline', 1000, 250, 5000, 1000)$$,
    'partner_set retried with its key');
SELECT lives_ok($$SELECT loyalty.partner_set('pt-set-2', 'oldair', 'Old Air', 'airline', 1000, 200, 1000, 1000, false)$$,
    'an inactive partner');
SELECT throws_ok($$SELECT loyalty.partner_set('pt-set-3', 'Bad Code', 'x', 'airline', 1, 1, 1, 1)$$,
    '22023', NULL, 'a bad partner code');
SELECT throws_ok($$SELECT loyalty.partner_set('pt-set-4', 'zeroair', 'x', 'airline', 0, 1, 1, 1)$$,
    '22023', 'invalid partner terms', 'a zero ratio');

-- no consent: refused before anything is written
CREATE TEMP TABLE before AS SELECT (SELECT count(*) FROM loyalty.partner_transfer) AS transfers,
    (SELECT count(*) FROM loyalty.point_entry) AS entries;
SELECT throws_ok($$SELECT loyalty.partner_transfer('pt-t0', m1, 'pta', 'skyair', 10000, 'SA123456') FROM ptm$$,
    'LY024', 'the member has not consented to share data with partners', 'no third_party consent');
SELECT lives_ok($$SELECT loyalty.consent_record(m1, 'third_party', true, 'v1', 'pta'),
                         loyalty.consent_record(m2, 'third_party', true, 'v1', 'pta'),
                         loyalty.consent_record(m2, 'third_party', false, 'v2', 'pta') FROM ptm$$,
    'm1 consents; m2 consents, then withdraws');
-- the same transaction gives both of m2's decisions one time: date the grant earlier
UPDATE loyalty.member_consent c SET recorded_at = c.recorded_at - interval '1 minute'
  FROM ptm WHERE c.member_id = ptm.m2 AND c.granted;
SELECT throws_ok($$SELECT loyalty.partner_transfer('pt-t1', m2, 'pta', 'skyair', 10000, 'SA999') FROM ptm$$,
    'LY024', NULL, 'a withdrawn consent');
-- bad input
SELECT throws_ok($$SELECT loyalty.partner_transfer('pt-t2', m1, 'pta', 'skyair', 4000, 'SA123456') FROM ptm$$,
    '22023', 'a transfer to partner "skyair" is at least 5000 points, in steps of 1000', 'below the minimum');
SELECT throws_ok($$SELECT loyalty.partner_transfer('pt-t3', m1, 'pta', 'skyair', 5500, 'SA123456') FROM ptm$$,
    '22023', NULL, 'off the step');
SELECT throws_ok($$SELECT loyalty.partner_transfer('pt-t4', m1, 'pta', 'noair', 5000, 'SA123456') FROM ptm$$,
    'P0002', 'partner "noair" does not exist', 'unknown partner');
SELECT throws_ok($$SELECT loyalty.partner_transfer('pt-t5', m1, 'pta', 'oldair', 5000, 'OA1') FROM ptm$$,
    'LY021', 'partner "oldair" takes no transfers now', 'inactive partner');
SELECT throws_ok($$SELECT loyalty.partner_transfer('pt-t6', m1, 'pta', 'skyair', 5000, '') FROM ptm$$,
    '22023', 'partner_account must be 1 to 64 bytes', 'no partner account');
SELECT throws_ok($$SELECT loyalty.partner_transfer('pt-t7', m1, 'pta', 'skyair', 60000, 'SA123456') FROM ptm$$,
    '23514', NULL, 'more than the balance');
SELECT is((SELECT row((SELECT count(*) FROM loyalty.partner_transfer), (SELECT count(*) FROM loyalty.point_entry))::text),
          (SELECT row(transfers, entries)::text FROM before), 'nothing written by the refused calls');

-- a transfer, confirmed
CREATE TEMP TABLE t1 AS SELECT t.* FROM ptm, loyalty.partner_transfer('pt-t8', m1, 'pta', 'skyair', 10000, 'SA123456') t;
SELECT is((SELECT row(units, balance, replayed)::text FROM t1), '(2500,40000,f)', '10,000 points = 2,500 miles');
SELECT is((SELECT row(e.kind, e.points, e.reference)::text FROM loyalty.point_entry e JOIN t1 USING (entry_id)),
          '(redeem,-10000,partner:skyair)', 'a ledger debit naming the partner');
SELECT is((SELECT row(t.transfer_id, t.units, true)::text FROM ptm, loyalty.partner_transfer('pt-t8', m1, 'pta', 'skyair', 10000, 'SA123456') t),
          (SELECT row(transfer_id, units, true)::text FROM t1), 'a retry returns the first answer');
SELECT is((SELECT count(*) FROM loyalty.event_outbox e, t1 WHERE e.kind = 'partner_transfer_sent'
             AND e.payload ->> 'transfer_id' = t1.transfer_id::text AND NOT e.payload ? 'partner_account'),
          1::bigint, 'one event for the integration, without the account');
SELECT is((SELECT row(c.state, c.balance)::text FROM t1, loyalty.partner_transfer_confirm('pt-c1', t1.transfer_id, 'SKY-REF-1') c),
          '(confirmed,40000)', 'the partner confirms');
SELECT is((SELECT partner_reference FROM loyalty.partner_transfer JOIN t1 USING (transfer_id)), 'SKY-REF-1',
          'with its reference');
SELECT throws_ok($$SELECT loyalty.partner_transfer_reject('pt-r0', transfer_id, 'late') FROM t1$$,
    '55000', NULL, 'a confirmed transfer cannot be rejected');

-- a transfer, rejected: the points come back
CREATE TEMP TABLE t2 AS SELECT t.* FROM ptm, loyalty.partner_transfer('pt-t9', m1, 'pta', 'skyair', 6000, 'SA000000') t;
SELECT is((SELECT balance FROM t2), 34000::bigint, 'a second transfer');
SELECT is((SELECT row(c.state, c.balance)::text FROM t2, loyalty.partner_transfer_reject('pt-r1', t2.transfer_id, 'unknown account') c),
          '(rejected,40000)', 'rejected: the points are back');
SELECT is((SELECT row(c.state, c.balance, c.replayed)::text FROM t2, loyalty.partner_transfer_reject('pt-r1', t2.transfer_id, 'unknown account') c),
          '(rejected,40000,t)', 'a reject retried with its key');
SELECT throws_ok($$SELECT loyalty.partner_transfer_confirm('pt-c2', transfer_id, 'X') FROM t2$$,
    '55000', NULL, 'a rejected transfer cannot be confirmed');
SELECT is((SELECT count(*) FROM ptm, loyalty.member_partner_transfers(m1)), 2::bigint, 'the member''s transfers');
SELECT is((SELECT count(*) FROM loyalty.ledger_check()), 0::bigint, 'ledger consistent after every path');

SELECT * FROM finish();
ROLLBACK;
