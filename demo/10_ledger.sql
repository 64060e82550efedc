-- The point ledger: a member earns at Shenzhen and redeems at Shanghai at
-- the same rate (1,000 points = 100 CNY everywhere), with idempotent
-- retries and the invariant check.
\set QUIET on
SELECT m.member_id AS guest FROM loyalty.member m JOIN loyalty.member_profile p USING (member_id)
 WHERE m.home_store = 'szx' ORDER BY m.card_no LIMIT 1 \gset
\set QUIET off
\echo
\echo '== Story 2: points earned at Shenzhen (szx_desk, checkout of a 480 CNY stay)'
\set QUIET on
-- the stay the points are for, as the PMS interface loaded it: a store
-- login credits points only for a stay or charge of the member at its store
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, room_revenue, status, idempotency_key)
    VALUES (:'guest', 'szx', current_date - 1, current_date + 1, 480, 'in_house', 'demo-stay-1');
SET ROLE szx_desk;
\set QUIET off
SELECT operation, points, balance, lots -> 0 ->> 'state' AS lot_state
  FROM loyalty.points_accrue('demo-stay-1', :'guest', 'szx', 4800, 'stay', rule => 'base 10/CNY',
                      reference => 'demo-stay-1', pending => true);
SELECT operation, points, balance FROM loyalty.points_activate('demo-checkout-1', :'guest', 'szx', 'demo-stay-1');
\echo '-- the PMS retries the checkout call: same key, same answer, nothing changes'
SELECT operation, points, balance, replayed FROM loyalty.points_activate('demo-checkout-1', :'guest', 'szx', 'demo-stay-1');
\set QUIET on
RESET ROLE;
\set QUIET off
\echo
\echo '== ... show at Shanghai at once and redeem there at the one rate (sha_desk)'
\set QUIET on
SET ROLE sha_desk;
\set QUIET off
SELECT loyalty.points_balance(:'guest') AS balance_seen_in_shanghai;
SELECT operation, points, cash_amount AS paid_cny, balance FROM loyalty.points_redeem_cash('demo-pos-1', :'guest', 'sha', 300.00);
\echo '-- off the 100-point step, or more than the balance: refused, nothing written'
\set ON_ERROR_STOP off
SELECT * FROM loyalty.points_redeem('demo-pos-2', :'guest', 'sha', 1050, 'gift');
SELECT * FROM loyalty.points_redeem('demo-pos-3', :'guest', 'sha', 900000, 'free night');
\echo '-- Shanghai staff cannot act for Shenzhen'
SELECT * FROM loyalty.points_accrue('demo-x', :'guest', 'szx', 100, 'spend');
\set ON_ERROR_STOP on
\set QUIET on
RESET ROLE;
\set QUIET off
\echo
\echo '== The statement and the invariant (hq_crm)'
\set QUIET on
SET ROLE hq_crm;
\set QUIET off
SELECT kind, store_code, points, pending_points, balance_after, cash_amount
  FROM loyalty.points_ledger(:'guest') ORDER BY recorded_at, balance_after DESC;
SELECT count(*) AS invariant_violations FROM loyalty.ledger_check();
\set QUIET on
RESET ROLE;
\set QUIET off
