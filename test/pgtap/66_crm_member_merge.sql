-- pgTAP: duplicates and merges (docs/crm.md): the report, member_merge
-- (points, stays, counters, tier, consents, identity, preferences, risk
-- tags move; the duplicate is closed and its card resolves to the
-- survivor), idempotency, bad input and the rights of every department.
BEGIN;
SELECT plan(43);

CREATE FUNCTION pg_temp.as_role(r text, q text) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    res text;
BEGIN
    BEGIN
        EXECUTE format('SET LOCAL ROLE %I', r);
        EXECUTE q INTO res;
        RESET ROLE;
        RETURN coalesce(res, '<null>');
    EXCEPTION WHEN OTHERS THEN
        RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
    END;
END
$$;

SELECT loyalty.create_store('mga', 'Merge A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.create_store('mgb', 'Merge B', 'bay', 'east', 'Asia/Shanghai');
SELECT loyalty.create_staff('mg_a_desk', 'mga', 'frontdesk');
SELECT loyalty.create_staff('mg_a_hk', 'mga', 'housekeeping');
SELECT loyalty.create_staff('mg_a_fnb', 'mga', 'fnb');
SELECT loyalty.create_staff('mg_a_mgr', 'mga', 'store_manager');
SELECT loyalty.create_staff('mg_crm', NULL, 'crm');
SELECT loyalty.create_staff('mg_mkt', NULL, 'marketing');
SELECT loyalty.create_staff('mg_bi', NULL, 'bi');
SELECT loyalty.create_staff('mg_dba', NULL, 'dba');

CREATE TEMP TABLE mp AS
SELECT (loyalty.enroll('mga', 'Li Lei', '13855556666', NULL, '1990-01-01')).member_id AS s,
       (loyalty.enroll('mgb', 'LI LEI', '13855556666', 'lilei@example.com', '1990-01-01')).member_id AS d,
       (loyalty.enroll('mga', 'Han Meimei', '13900000001', NULL, '1991-02-02')).member_id AS o;
GRANT SELECT ON mp TO PUBLIC;
-- the survivor: 1,000 points, marketing email granted
SELECT loyalty.accrue(s, 'mga', 1000, 'adjustment', 'mg-s-1') FROM mp;
SELECT loyalty.consent_record(s, 'marketing_email', true, 'v1', 'mga') FROM mp;
-- the duplicate: a stay, 3,000 more points, 1,000 redeemed, email refused,
-- profiling granted, a preference, a risk tag, a passport and gold
SELECT loyalty.record_stay('mg-stay-1', 'mgb', d, current_date - 10, current_date - 7, 1, 800, 0) FROM mp;
SELECT loyalty.accrue(d, 'mgb', 3000, 'adjustment', 'mg-d-1') FROM mp;
SELECT loyalty.redeem(d, 'mgb', 1000, 'gift', 'mg-d-2') FROM mp;
SELECT loyalty.consent_record(d, 'marketing_email', false, 'v1', 'mgb') FROM mp;
SELECT loyalty.consent_record(d, 'profiling', true, 'v1', 'mgb') FROM mp;
SELECT loyalty.preference_add(d, 'pillow', 'down pillow', 'chain', 'mgb') FROM mp;
SELECT loyalty.raise_risk_tag(d, 'mgb', 'unresolved_violation', 'minibar unpaid') FROM mp;
SELECT loyalty.identity_set(d, 'passport', 'G99887766') FROM mp;
SELECT loyalty.tier_grant(d, 'gold', 'status match') FROM mp;
CREATE TEMP TABLE before AS
SELECT (SELECT loyalty.balance(s) + loyalty.balance(d) FROM mp) AS points,
       (SELECT loyalty.balance(d) FROM mp) AS d_points,
       (SELECT card_no FROM loyalty.member WHERE member_id = (SELECT d FROM mp)) AS d_card,
       (SELECT sum(nights) FROM loyalty.tier_counter WHERE member_id = (SELECT d FROM mp)) AS nights;
GRANT SELECT ON before TO PUBLIC;
CREATE TEMP TABLE d_lots AS SELECT * FROM loyalty.point_lot WHERE member_id = (SELECT d FROM mp);

-- the report
SELECT is(pg_temp.as_role('mg_crm', $$SELECT row(score, reasons)::text FROM loyalty.member_duplicates()
            WHERE (SELECT s FROM mp) IN (member_a, member_b) AND (SELECT d FROM mp) IN (member_a, member_b)$$),
          '(1,"{name_and_birth_date,phone}")', 'the report finds the pair by phone and by name + birth date');
SELECT is(pg_temp.as_role('mg_crm', $$SELECT count(*)::text FROM loyalty.member_duplicates()
            WHERE (SELECT o FROM mp) IN (member_a, member_b)$$), '0', 'and not an unrelated member');
SELECT ok(loyalty.name_similarity('Li Lei', 'LI LEI') = 1, 'similarity ignores case');
SELECT ok(loyalty.name_similarity('Zhang Wei', 'Zhang Wen') BETWEEN 0.3 AND 0.9, 'similar names score between');
SELECT is(loyalty.name_similarity('Li Lei', 'Zhou Xun'), 0::real, 'different names score 0');
SELECT throws_ok($$SELECT * FROM loyalty.member_duplicates(2)$$, '22023', NULL, 'score above 1 refused');
SELECT ok(pg_temp.as_role('mg_mkt', $$SELECT count(*)::text FROM loyalty.member_duplicates()$$) LIKE 'ERROR 42501%', 'marketing cannot run the report');
SELECT ok(pg_temp.as_role('mg_a_mgr', $$SELECT count(*)::text FROM loyalty.member_duplicates()$$) LIKE 'ERROR 42501%', 'a store manager cannot run the report');

-- rights: only HQ CRM merges
SELECT ok(pg_temp.as_role('mg_a_desk', $$SELECT loyalty.member_merge('mg-1', (SELECT s FROM mp), (SELECT d FROM mp))::text$$) LIKE 'ERROR 42501%', 'front desk: denied');
SELECT ok(pg_temp.as_role('mg_a_hk', $$SELECT loyalty.member_merge('mg-1', (SELECT s FROM mp), (SELECT d FROM mp))::text$$) LIKE 'ERROR 42501%', 'housekeeping: denied');
SELECT ok(pg_temp.as_role('mg_a_fnb', $$SELECT loyalty.member_merge('mg-1', (SELECT s FROM mp), (SELECT d FROM mp))::text$$) LIKE 'ERROR 42501%', 'F&B: denied');
SELECT ok(pg_temp.as_role('mg_a_mgr', $$SELECT loyalty.member_merge('mg-1', (SELECT s FROM mp), (SELECT d FROM mp))::text$$) LIKE 'ERROR 42501%', 'store manager: denied');
SELECT ok(pg_temp.as_role('mg_mkt', $$SELECT loyalty.member_merge('mg-1', (SELECT s FROM mp), (SELECT d FROM mp))::text$$) LIKE 'ERROR 42501%', 'marketing: denied');
SELECT ok(pg_temp.as_role('mg_bi', $$SELECT loyalty.member_merge('mg-1', (SELECT s FROM mp), (SELECT d FROM mp))::text$$) LIKE 'ERROR 42501%', 'BI: denied');
SELECT ok(pg_temp.as_role('mg_dba', $$SELECT loyalty.member_merge('mg-1', (SELECT s FROM mp), (SELECT d FROM mp))::text$$) LIKE 'ERROR 42501%', 'DBA: denied');

-- bad input
SELECT throws_ok($$SELECT loyalty.member_merge('mg-b1', (SELECT s FROM mp), NULL)$$, '22004', NULL, 'null duplicate');
SELECT throws_ok($$SELECT loyalty.member_merge('mg-b2', (SELECT s FROM mp), (SELECT s FROM mp))$$, '22023', 'a member cannot be merged into itself', 'self merge');
SELECT throws_ok($$SELECT loyalty.member_merge('mg-b3', (SELECT s FROM mp), gen_random_uuid())$$, 'P0002', 'member not found', 'unknown duplicate');
SELECT throws_ok($$SELECT loyalty.member_merge(NULL, (SELECT s FROM mp), (SELECT d FROM mp))$$, '22004', 'idempotency_key must not be null', 'null key');
SELECT is((SELECT status FROM loyalty.member WHERE member_id = (SELECT d FROM mp)), 'active', 'nothing written by bad input');

-- the merge
SELECT is(pg_temp.as_role('mg_crm', $$SELECT (loyalty.member_merge('mg-1', (SELECT s FROM mp), (SELECT d FROM mp)) - 'survivor' - 'duplicate' - 'lots' - 'points')::text$$),
          '{"tier": "gold", "stays": 1, "consents": 2}', 'CRM merges');
SELECT is(loyalty.balance((SELECT s FROM mp)), (SELECT points FROM before), 'the survivor holds both balances');
SELECT is(loyalty.balance((SELECT d FROM mp)), 0::bigint, 'the duplicate holds none');
SELECT is((SELECT count(*)::int FROM loyalty.ledger_check()), 0, 'ledger_check() holds for every member');
SELECT is((SELECT count(*)::int FROM loyalty.point_lot WHERE member_id = (SELECT d FROM mp)), 0, 'every lot moved');
SELECT is((SELECT array_agg(row(lot_id, state, remaining, expires_at, active_from)::text ORDER BY lot_id) FROM loyalty.point_lot
             WHERE lot_id IN (SELECT lot_id FROM d_lots)),
          (SELECT array_agg(row(lot_id, state, remaining, expires_at, active_from)::text ORDER BY lot_id) FROM d_lots),
          'lots move unchanged (state, remaining, expiry)');
SELECT is((SELECT count(*)::int FROM loyalty.stay WHERE member_id = (SELECT s FROM mp)), 1, 'the stay moved');
SELECT is((SELECT sum(nights) FROM loyalty.tier_counter WHERE member_id = (SELECT s FROM mp)), (SELECT nights FROM before), 'counters moved');
SELECT is((SELECT tier FROM loyalty.member WHERE member_id = (SELECT s FROM mp)), 'gold', 'the better tier');
SELECT is((SELECT array_agg(purpose || '=' || granted ORDER BY purpose)::text FROM loyalty.member_consents WHERE member_id = (SELECT s FROM mp)),
          '{marketing_email=false,profiling=false}', 'consents: the stricter of the two');
SELECT is((SELECT count(*)::int FROM loyalty.member_preference WHERE member_id = (SELECT s FROM mp)), 1, 'the preference moved');
SELECT is((SELECT count(*)::int FROM loyalty.risk_tag WHERE member_id = (SELECT s FROM mp) AND resolved_at IS NULL), 1, 'the risk tag moved');
SELECT ok(loyalty.identity_matches((SELECT s FROM mp), 'G99887766'), 'the passport moved and opens for the survivor');
SELECT is((SELECT row(status, merged_into = (SELECT s FROM mp))::text FROM loyalty.member WHERE member_id = (SELECT d FROM mp)),
          '(closed,t)', 'the duplicate is closed and points to the survivor');
SELECT is(pg_temp.as_role('mg_a_desk', $$SELECT loyalty.card_resolve((SELECT d_card FROM before))::text$$), (SELECT s::text FROM mp),
          'the duplicate''s card resolves to the survivor');
SELECT is(pg_temp.as_role('mg_a_desk', $$SELECT string_agg(member_id::text, ',') FROM loyalty.frontdesk_lookup((SELECT d_card FROM before))$$),
          (SELECT s::text FROM mp), 'the front desk''s lookup of the duplicate''s card finds the survivor');
SELECT is((SELECT email FROM loyalty.member_profile WHERE member_id = (SELECT s FROM mp)), 'lilei@example.com', 'a missing email is filled in');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox WHERE kind = 'member_merged'), 2, 'a member_merged event for each');
SELECT ok((SELECT count(*) FROM (SELECT member_id, action, purpose, at, fields::text AS fields FROM loyalty.audit_log UNION ALL SELECT member_id, action, purpose, at, detail::text FROM loyalty.audit_change_staging) a WHERE action = 'member_merge') = 2, 'audited for both members');

-- idempotent, and the duplicate is out of the ledger
SELECT is(pg_temp.as_role('mg_crm', $$SELECT loyalty.member_merge('mg-1', (SELECT s FROM mp), (SELECT d FROM mp))->>'points'$$),
          (SELECT d_points::text FROM before), 'a retry returns the first answer');
SELECT is(pg_temp.as_role('mg_crm', $$SELECT loyalty.member_merge('mg-2', (SELECT s FROM mp), (SELECT d FROM mp))::text$$),
          'ERROR 55000: the duplicate is already closed', 'a second merge is refused');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT d FROM mp), 'mgb', 10, 'adjustment', 'mg-d-3')$$, '55000', NULL, 'the duplicate earns nothing');
SELECT throws_ok($$SELECT loyalty.redeem((SELECT d FROM mp), 'mgb', 1000, 'gift', 'mg-d-4')$$, '55000', NULL, 'and redeems nothing');

SELECT * FROM finish();
ROLLBACK;
