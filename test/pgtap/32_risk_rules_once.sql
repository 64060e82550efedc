-- pgTAP: rules written once, in C (issue 11 item 5).  The capability list
-- (src/risk.c) decides what a risk type may freeze and what a benefit kind
-- is, in the functions and in the tables' constraints alike; a store's
-- offline redemption is checked by the ledger's own minimum-and-step rule
-- and says what HQ's ledger says.
BEGIN;
SELECT plan(12);

-- capabilities: one list
SELECT is(loyalty.risk_type_set('rules-1', 'rules_gift', 'Gift only', ARRAY['gift']), 'rules_gift', 'a known capability is accepted');
SELECT throws_ok($$SELECT loyalty.risk_type_set('rules-2', 'rules_bad', 'Bad', ARRAY['gift', 'earning'])$$,
    '22023', 'unknown capability "earning"', 'an unknown capability is refused by the function');
SELECT throws_ok($$INSERT INTO loyalty.risk_type (risk_code, name, freezes) VALUES ('rules_raw', 'Raw', ARRAY['spa'])$$,
    '23514', NULL, 'and by the table''s constraint, which uses the same C list');
SELECT throws_ok($$INSERT INTO loyalty.risk_type (risk_code, name, freezes) VALUES ('rules_null', 'Null', ARRAY[NULL::text])$$,
    '23514', NULL, 'a NULL capability is refused by the constraint');
SELECT is((SELECT count(*)::int FROM loyalty.risk_type WHERE risk_code IN ('rules_bad', 'rules_raw', 'rules_null')), 0,
    'nothing written by the refused calls');
SELECT ok(loyalty._capabilities_valid(ARRAY['redemption', 'transfer', 'room_discount', 'breakfast', 'late_checkout',
                                             'room_upgrade', 'gift', 'voucher', 'amenity', 'other']),
    'every capability of the shipped fraud_review type is in the C list');

-- benefit kinds: the same list, without redemption and transfer
SELECT is(loyalty.benefit_define('rules-3', 'rules_amenity', 'Amenity', 'amenity'), 'rules_amenity', 'a benefit kind is accepted');
SELECT throws_ok($$SELECT loyalty.benefit_define('rules-4', 'rules_redeem', 'Redeem', 'redemption')$$,
    '22023', 'unknown benefit kind "redemption"', 'redemption is a capability but not a benefit kind');
SELECT throws_ok($$INSERT INTO loyalty.benefit (benefit_code, name, kind) VALUES ('rules_raw', 'Raw', 'spa')$$,
    '23514', NULL, 'the table''s constraint uses the same C list');

-- a store's offline redemption: the ledger's minimum and step, the ledger's words
SELECT loyalty.store_create('rules-5', 'rlsa', 'Rules A', 'bay', 'r', 'Asia/Shanghai');
CREATE TEMP TABLE t ON COMMIT DROP AS
    SELECT (SELECT member_id FROM loyalty.member_enroll('rules-6', 'rlsa', 'Rules Member')) AS m;
INSERT INTO loyalty.replica_node (node_role, store_code, incarnation) VALUES ('store', 'rlsa', 1);
SELECT throws_ok(format($$SELECT loyalty.store_points_redeem('rules-7', %L, 1050, 'x')$$, (SELECT m FROM t)),
    '22023', 'redemption of 1050 points is not a multiple of the step of 100', 'off the step, as HQ says it');
SELECT throws_ok(format($$SELECT loyalty.store_points_redeem('rules-8', %L, 500, 'x')$$, (SELECT m FROM t)),
    '22023', 'redemption of 500 points is below the minimum of 1000', 'below the minimum, as HQ says it');
SELECT is((SELECT count(*)::int FROM loyalty.outbox WHERE member_id = (SELECT m FROM t)), 0,
    'nothing recorded in the outbox');

SELECT * FROM finish();
ROLLBACK;
