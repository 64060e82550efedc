-- pgTAP: authority limits on points (issue 14.10, docs/ledger.md
-- "Authority limits").  A store login credits points only for a stay or
-- charge of that member at that store; a credit without one is a manual
-- adjustment: a store manager or an HQ role, a reason code, caps per call
-- and per login and day, above which it waits for an HQ role other than
-- the requester.  Every refusal has its SQLSTATE and writes nothing.
BEGIN;
SELECT plan(49);

SELECT loyalty.store_create(gen_random_uuid()::text, 'aua', 'Auth A', 'bay', 'r', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'aub', 'Auth B', 'bay', 'r', 'Asia/Shanghai');
CREATE TEMP TABLE t AS
SELECT (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'aua', 'Auth Member')) AS m,
       (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'aua', 'Auth Other')) AS o;
-- a stay and a charge of the member at store aua, one stay of the other member
SELECT stay_id FROM loyalty.stay_record('au-stay-1', 'aua', (SELECT m FROM t), current_date - 3, current_date - 1,
                                        room_revenue => 500) \gset
SELECT charge_id FROM loyalty.charge_record('au-charge-1', 'aua', (SELECT m FROM t), 80) \gset
SELECT loyalty.stay_record('au-stay-o', 'aua', (SELECT o FROM t), current_date - 3, current_date - 1, room_revenue => 100);
CREATE TEMP TABLE refs AS SELECT :'stay_id'::uuid AS stay_id, :'charge_id'::uuid AS charge_id;
GRANT SELECT ON t, refs TO loyalty_aua_frontdesk, loyalty_aub_frontdesk, loyalty_aua_store_manager,
    loyalty_aua_housekeeping, loyalty_crm, loyalty_dba;

CREATE FUNCTION pg_temp.written() RETURNS bigint[] LANGUAGE sql AS $$
    SELECT ARRAY[(SELECT count(*) FROM loyalty.point_entry), (SELECT count(*) FROM loyalty.point_lot),
                 (SELECT count(*) FROM loyalty.ledger_request), (SELECT count(*) FROM loyalty.adjust_request),
                 (SELECT coalesce(sum(balance), 0)::bigint FROM loyalty.point_balance)]
$$;
CREATE TEMP TABLE before AS SELECT pg_temp.written() AS w, loyalty.points_balance((SELECT m FROM t)) AS b;
-- store roles may not create temporary tables: run a call as a role, keep its row
CREATE FUNCTION pg_temp.adj(r text, q text) RETURNS loyalty.adjust_request LANGUAGE plpgsql AS $$
DECLARE x loyalty.adjust_request;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    EXECUTE q INTO x;
    RESET ROLE;
    RETURN x;
END
$$;

-- 1. a front desk credits only for a stay or charge of that member at that store
SET LOCAL ROLE loyalty_aua_frontdesk;
SELECT throws_ok($$SELECT loyalty.points_accrue('au-1', (SELECT m FROM t), 'aua', 100000000, 'stay')$$,
                 '42501', 'a store may credit points only for a stay or a charge', 'front desk: no reference, refused');
SELECT throws_ok($$SELECT loyalty.points_accrue('au-2', (SELECT m FROM t), 'aua', 500, 'stay', reference => 'folio-77')$$,
                 '42501', 'reference "folio-77" is no stay or charge of this member at store "aua"', 'front desk: a reference that is no stay, refused');
SELECT throws_ok($$SELECT loyalty.points_accrue('au-3', (SELECT m FROM t), 'aua', 500, 'stay', reference => 'au-stay-o')$$,
                 '42501', NULL, 'front desk: another member''s stay, refused');
SELECT throws_ok($$SELECT loyalty.points_accrue('au-4', (SELECT m FROM t), 'aua', 500, 'bonus', reference => 'au-stay-1')$$,
                 '42501', 'a store may credit points only for a stay or a charge', 'front desk: source bonus, refused');
SELECT throws_ok($$SELECT loyalty.points_accrue('au-5', (SELECT m FROM t), 'aua', 500, 'adjustment')$$,
                 '42501', 'points_accrue does not credit manual adjustments', 'front desk: source adjustment, refused');
RESET ROLE;
SET LOCAL ROLE loyalty_aub_frontdesk;
SELECT throws_ok($$SELECT loyalty.points_accrue('au-6', (SELECT m FROM t), 'aub', 500, 'stay', reference => 'au-stay-1')$$,
                 '42501', NULL, 'another store''s front desk cannot use store aua''s stay');
RESET ROLE;
SET LOCAL ROLE loyalty_aua_store_manager;
SELECT throws_ok($$SELECT loyalty.points_accrue('au-7', (SELECT m FROM t), 'aua', 500, 'spend')$$,
                 '42501', NULL, 'a store manager''s accrual needs a stay or charge too');
RESET ROLE;
SET LOCAL ROLE loyalty_aua_store_manager;
SELECT throws_ok($$SELECT loyalty.points_accrue('au-8', (SELECT m FROM t), 'aua', 100000000, 'adjustment')$$,
                 '42501', 'points_accrue does not credit manual adjustments', 'store manager: points_accrue makes no adjustment');
RESET ROLE;
SELECT is(pg_temp.written(), (SELECT w FROM before), 'nothing written by the refused accruals');

SET LOCAL ROLE loyalty_aua_frontdesk;
SELECT is((SELECT points FROM loyalty.points_accrue('au-9', (SELECT m FROM t), 'aua', 300, 'stay', reference => 'au-stay-1')),
          300::bigint, 'front desk: an accrual for the member''s stay (its PMS key) is credited');
SELECT is((SELECT points FROM loyalty.points_accrue('au-10', (SELECT m FROM t), 'aua', 40, 'spend',
                                                    reference => (SELECT charge_id::text FROM refs))),
          40::bigint, 'front desk: an accrual for the member''s charge (its id) is credited');
SELECT is((SELECT replayed FROM loyalty.points_accrue('au-9', (SELECT m FROM t), 'aua', 300, 'stay', reference => 'au-stay-1')),
          true, 'a retry replays');
RESET ROLE;
UPDATE before SET w = pg_temp.written(), b = loyalty.points_balance((SELECT m FROM t));

-- 2. adjustments: who, reason code, bad input
SET LOCAL loyalty.adjust_cap_per_call = 1000;
SET LOCAL loyalty.adjust_cap_per_day = 1500;
SET LOCAL ROLE loyalty_aua_frontdesk;
SELECT throws_ok($$SELECT loyalty.points_adjust('ad-1', (SELECT m FROM t), 'aua', 100, 'goodwill')$$,
                 '42501', NULL, 'a front desk makes no adjustment');
RESET ROLE;
SET LOCAL ROLE loyalty_aua_housekeeping;
SELECT throws_ok($$SELECT loyalty.points_adjust('ad-1', (SELECT m FROM t), 'aua', 100, 'goodwill')$$,
                 '42501', NULL, 'nor does housekeeping');
RESET ROLE;
SET LOCAL ROLE loyalty_aua_store_manager;
SELECT throws_ok($$SELECT loyalty.points_adjust('ad-1', (SELECT m FROM t), 'aua', 100, NULL)$$,
                 '22004', 'reason_code must not be null', 'reason code required');
SELECT throws_ok($$SELECT loyalty.points_adjust('ad-1', (SELECT m FROM t), 'aua', 100, 'because')$$,
                 '22023', 'unknown adjustment reason "because"', 'unknown reason code');
SELECT throws_ok($$SELECT loyalty.points_adjust('ad-1', (SELECT m FROM t), 'aua', 0, 'goodwill')$$,
                 '22023', 'points must be between 1 and 100000000', 'zero points');
SELECT throws_ok($$SELECT loyalty.points_adjust('ad-1', NULL, 'aua', 100, 'goodwill')$$,
                 '22004', 'member_id must not be null', 'no member');
SELECT throws_ok($$SELECT loyalty.points_adjust('', (SELECT m FROM t), 'aua', 100, 'goodwill')$$,
                 '22023', NULL, 'empty idempotency key');
SELECT throws_ok($$SELECT loyalty.points_adjust('ad-1', (SELECT m FROM t), 'aub', 100, 'goodwill')$$,
                 '42501', NULL, 'a store manager adjusts at the own store only');
SELECT throws_ok($$SELECT loyalty.points_adjust('ad-1', gen_random_uuid(), 'aua', 100, 'goodwill')$$,
                 'P0002', NULL, 'unknown member');
SELECT throws_ok($$SELECT loyalty.points_adjust('ad-1', (SELECT m FROM t), 'aua', 100, 'goodwill', repeat('x', 1001))$$,
                 '22001', NULL, 'note too long');
RESET ROLE;
SELECT is(pg_temp.written(), (SELECT w FROM before), 'nothing written by the refused adjustments');

-- 3. within the caps: applied at once
CREATE TEMP TABLE a1 AS SELECT * FROM pg_temp.adj('loyalty_aua_store_manager',
    format($$SELECT * FROM loyalty.points_adjust('ad-1', %L, 'aua', 1000, 'service_recovery', 'noisy room')$$, (SELECT m FROM t)));
GRANT SELECT ON a1 TO loyalty_aua_store_manager;
SELECT is((SELECT status FROM a1), 'applied', 'a manager''s adjustment within the caps is applied');
SELECT is((SELECT requested_by::text FROM a1), 'loyalty_aua_store_manager', 'attributed to the login');
SELECT is((SELECT source || ' ' || rule || ' ' || reference FROM loyalty.point_lot WHERE entry_id = (SELECT entry_id FROM a1)),
          'adjustment adjust:service_recovery ' || (SELECT request_id FROM a1), 'its lot: source adjustment, the reason, the request');
SELECT is(loyalty.points_balance((SELECT m FROM t)), (SELECT b FROM before) + 1000, 'the balance grew by 1000');
SET LOCAL ROLE loyalty_aua_store_manager;
SELECT is((SELECT request_id FROM loyalty.points_adjust('ad-1', (SELECT m FROM t), 'aua', 1000, 'service_recovery', 'noisy room')),
          (SELECT request_id FROM a1), 'a retry returns the first request');
SELECT throws_ok($$SELECT loyalty.points_adjust('ad-1', (SELECT m FROM t), 'aua', 999, 'service_recovery', 'noisy room')$$,
                 '23505', NULL, 'the key with other arguments is refused');
RESET ROLE;
SELECT is(loyalty.points_balance((SELECT m FROM t)), (SELECT b FROM before) + 1000, 'and nothing is credited twice');

-- 4. above the caps: pending
CREATE TEMP TABLE a2 AS SELECT * FROM pg_temp.adj('loyalty_aua_store_manager',
    format($$SELECT * FROM loyalty.points_adjust('ad-2', %L, 'aua', 1001, 'goodwill')$$, (SELECT m FROM t)));
CREATE TEMP TABLE a3 AS SELECT * FROM pg_temp.adj('loyalty_aua_store_manager',
    format($$SELECT * FROM loyalty.points_adjust('ad-3', %L, 'aua', 600, 'goodwill')$$, (SELECT m FROM t)));
CREATE TEMP TABLE a4 AS SELECT * FROM pg_temp.adj('loyalty_aua_store_manager',
    format($$SELECT * FROM loyalty.points_adjust('ad-4', %L, 'aua', 500, 'goodwill')$$, (SELECT m FROM t)));
SELECT is((SELECT status FROM a2), 'pending', 'above the cap per call: pending');
SELECT is((SELECT status FROM a3), 'pending', 'above the cap per day (1000 + 600 > 1500): pending');
SELECT is((SELECT status FROM a4), 'applied', 'within the day''s rest (1000 + 500): applied');
SELECT is(loyalty.points_balance((SELECT m FROM t)), (SELECT b FROM before) + 1500, 'pending adjustments credit nothing');

-- 5. approval: an HQ role, never the requester
GRANT SELECT ON a2 TO loyalty_aua_store_manager;
SET LOCAL ROLE loyalty_aua_store_manager;
SELECT throws_ok(format($$SELECT loyalty.points_adjust_approve('ap-1', %L)$$, (SELECT request_id FROM a2)),
                 '42501', NULL, 'a store manager cannot approve');
RESET ROLE;
CREATE TEMP TABLE p2 AS SELECT * FROM pg_temp.adj('loyalty_crm',
    format($$SELECT * FROM loyalty.points_adjust_approve('ap-1', %L)$$, (SELECT request_id FROM a2)));
CREATE TEMP TABLE a5 AS SELECT * FROM pg_temp.adj('loyalty_crm',
    format($$SELECT * FROM loyalty.points_adjust('ad-5', %L, 'aua', 5000, 'correction', 'HQ correction')$$, (SELECT m FROM t)));
GRANT SELECT ON a2, a3, a5 TO loyalty_crm, loyalty_dba;
SET LOCAL ROLE loyalty_crm;
SELECT is((SELECT request_id FROM loyalty.points_adjust_approve('ap-1', (SELECT request_id FROM a2))),
          (SELECT request_id FROM a2), 'a retried approval returns the request');
SELECT throws_ok(format($$SELECT loyalty.points_adjust_approve('ap-1b', %L)$$, (SELECT request_id FROM a2)),
                 '55000', NULL, 'a decided request is not approved again');
SELECT throws_ok(format($$SELECT loyalty.points_adjust_approve('ap-2', %L)$$, (SELECT request_id FROM a5)),
                 '42501', 'an adjustment cannot be decided by the login that requested it', 'the requester cannot approve their own');
SELECT is((loyalty.points_adjust_reject('rj-1', (SELECT request_id FROM a3))).status, 'rejected', 'HQ rejects a pending request');
RESET ROLE;
SELECT is((SELECT status || ' ' || decided_by FROM p2), 'applied loyalty_crm', 'HQ crm approved the manager''s request');
SELECT is(loyalty.points_balance((SELECT m FROM t)), (SELECT b FROM before) + 2501, 'the approved points are credited once');
SELECT is((SELECT status FROM a5), 'pending', 'HQ''s own adjustment above the cap waits as well');
SET LOCAL ROLE loyalty_dba;
SELECT is((loyalty.points_adjust_approve('ap-3', (SELECT request_id FROM a5))).status, 'applied', 'another HQ login approves it');
RESET ROLE;
SELECT is(loyalty.points_balance((SELECT m FROM t)), (SELECT b FROM before) + 7501, 'balance: 1000 + 500 + 1001 + 5000');
SELECT is((SELECT count(*) FROM loyalty.ledger_check((SELECT m FROM t))), 0::bigint, 'the ledger invariant holds');

-- 6. the trail
SELECT is((SELECT string_agg(action, ',' ORDER BY action) FROM (
             SELECT action FROM loyalty.audit_log WHERE member_id = (SELECT m FROM t) AND action LIKE 'points_adjust%'
             UNION ALL
             SELECT action FROM loyalty.audit_change_staging WHERE member_id = (SELECT m FROM t) AND action LIKE 'points_adjust%') x),
          'points_adjust,points_adjust,points_adjust,points_adjust,points_adjust,points_adjust_approve,points_adjust_approve,points_adjust_reject',
          'every adjustment and decision has a change record');
SELECT is((SELECT count(*) FROM (
             SELECT detail FROM loyalty.audit_log WHERE action = 'points_accrue' AND detail ->> 'entry_id' = (SELECT entry_id::text FROM a1)
             UNION ALL
             SELECT detail FROM loyalty.audit_change_staging WHERE action = 'points_accrue' AND detail ->> 'entry_id' = (SELECT entry_id::text FROM a1)) x),
          1::bigint, 'and the ledger entry its own');

-- 7. the caps are superuser settings
SET LOCAL ROLE loyalty_crm;
SELECT throws_ok($$SET loyalty.adjust_cap_per_call = 100000000$$, '42501', NULL, 'a login cannot raise the cap per call');
SELECT throws_ok($$SET loyalty.adjust_cap_per_day = 100000000$$, '42501', NULL, 'nor the cap per day');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
