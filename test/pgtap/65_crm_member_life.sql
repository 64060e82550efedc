-- pgTAP: profile maintenance (docs/crm.md): member_update, member_status_set,
-- member_home_store_set; normal path, bad input (nothing written) and the
-- rights of every department.
BEGIN;
SELECT plan(52);

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

SELECT loyalty.create_store('mla', 'Life A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.create_store('mlb', 'Life B', 'bay', 'east', 'Asia/Shanghai');
SELECT loyalty.create_staff('ml_a_desk', 'mla', 'frontdesk');
SELECT loyalty.create_staff('ml_b_desk', 'mlb', 'frontdesk');
SELECT loyalty.create_staff('ml_b_hk', 'mlb', 'housekeeping');
SELECT loyalty.create_staff('ml_b_fnb', 'mlb', 'fnb');
SELECT loyalty.create_staff('ml_b_mgr', 'mlb', 'store_manager');
SELECT loyalty.create_staff('ml_crm', NULL, 'crm');
SELECT loyalty.create_staff('ml_mkt', NULL, 'marketing');
SELECT loyalty.create_staff('ml_bi', NULL, 'bi');
SELECT loyalty.create_staff('ml_dba', NULL, 'dba');
CREATE TEMP TABLE mm AS
SELECT (loyalty.enroll('mla', '王小明', '13812345678', 'xm@example.com', '1985-05-05', 'male', 'CN')).member_id AS m;
GRANT SELECT ON mm TO PUBLIC;

-- normal path: HQ CRM changes several fields and records a verification
SELECT is(pg_temp.as_role('ml_crm', $$SELECT loyalty.member_update('ml-1', (SELECT m FROM mm),
            '{"phone": "13900001111", "employer": "Acme Ltd", "wedding_anniversary": "2010-06-01", "verified": true}')::text$$),
          (SELECT jsonb_build_object('member_id', m, 'changed', '["employer", "phone", "wedding_anniversary"]'::jsonb,
                                     'verified', true)::text FROM mm),
          'CRM updates phone, employer, anniversary and marks the data verified');
SELECT is((SELECT row(phone, employer, wedding_anniversary)::text FROM loyalty.member_profile
            WHERE member_id = (SELECT m FROM mm)), '(13900001111,"Acme Ltd",2010-06-01)', 'profile changed');
SELECT ok((SELECT last_verified_at IS NOT NULL FROM loyalty.member WHERE member_id = (SELECT m FROM mm)),
          'last_verified_at set');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox WHERE kind = 'member_updated' AND member_id = (SELECT m FROM mm)),
          1, 'one member_updated event');
SELECT ok((SELECT payload::text NOT LIKE '%1390000%' AND payload::text NOT LIKE '%Acme%' FROM loyalty.event_outbox
            WHERE kind = 'member_updated' AND member_id = (SELECT m FROM mm)), 'the event holds no personal value');
SELECT is((SELECT array_agg(action)::text FROM (SELECT member_id, action, purpose, at, fields::text AS fields FROM loyalty.audit_log UNION ALL SELECT member_id, action, purpose, at, detail::text FROM loyalty.audit_change_staging) a WHERE member_id = (SELECT m FROM mm) AND action = 'member_update'),
          '{member_update}', 'the change is audited');
SELECT ok((SELECT bool_and(coalesce(fields::text, '') NOT LIKE '%1390000%') FROM (SELECT member_id, action, purpose, at, fields::text AS fields FROM loyalty.audit_log UNION ALL SELECT member_id, action, purpose, at, detail::text FROM loyalty.audit_change_staging) a
            WHERE member_id = (SELECT m FROM mm)), 'the audit record holds no clear phone');

-- idempotency
SELECT is(pg_temp.as_role('ml_crm', $$SELECT loyalty.member_update('ml-1', (SELECT m FROM mm),
            '{"phone": "13900001111", "employer": "Acme Ltd", "wedding_anniversary": "2010-06-01", "verified": true}')->>'changed'$$),
          '["employer", "phone", "wedding_anniversary"]', 'a retry returns the first answer');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox WHERE kind = 'member_updated' AND member_id = (SELECT m FROM mm)),
          1, 'and emits nothing more');
SELECT is(pg_temp.as_role('ml_crm', $$SELECT loyalty.member_update('ml-1', (SELECT m FROM mm), '{"phone": "13900002222"}')::text$$),
          'ERROR 22023: idempotency_key was already used for another call', 'same key, other arguments: refused without data');

-- a phone change at store B is seen (masked) at store A
SELECT is(pg_temp.as_role('ml_b_desk', $$SELECT loyalty.member_update('ml-2', (SELECT m FROM mm), '{"phone": "13712348888"}')->>'changed'$$),
          '["phone"]', 'front desk of another store changes the phone');
SELECT is(pg_temp.as_role('ml_a_desk', $$SELECT phone FROM loyalty.member_frontdesk WHERE member_id = (SELECT m FROM mm)$$),
          '****888', 'the home store''s front desk sees the new phone, masked');
SELECT is(pg_temp.as_role('ml_b_mgr', $$SELECT loyalty.member_update('ml-3', (SELECT m FROM mm), '{"address": "1 Bay Road", "email": "new@example.com"}')->>'changed'$$),
          '["address", "email"]', 'store manager changes address and email');
SELECT is(pg_temp.as_role('ml_b_desk', $$SELECT loyalty.member_update('ml-4', (SELECT m FROM mm), '{"full_name": "王大明"}')::text$$),
          'ERROR 42501: permission denied to change field "full_name"', 'front desk may not change the name');
SELECT is(pg_temp.as_role('ml_b_desk', $$SELECT loyalty.member_update('ml-4b', (SELECT m FROM mm), '{"phone": "13700000000", "birth_date": "1980-01-01"}')::text$$),
          'ERROR 42501: permission denied to change field "birth_date"', 'nor the birth date, even with an allowed field');
SELECT is((SELECT phone FROM loyalty.member_profile WHERE member_id = (SELECT m FROM mm)), '13712348888', 'nothing half-written');
SELECT ok(pg_temp.as_role('ml_b_hk', $$SELECT loyalty.member_update('ml-5', (SELECT m FROM mm), '{"phone": "13700000000"}')::text$$) LIKE 'ERROR 42501%', 'housekeeping: denied');
SELECT ok(pg_temp.as_role('ml_b_fnb', $$SELECT loyalty.member_update('ml-5', (SELECT m FROM mm), '{"phone": "13700000000"}')::text$$) LIKE 'ERROR 42501%', 'F&B: denied');
SELECT ok(pg_temp.as_role('ml_mkt', $$SELECT loyalty.member_update('ml-5', (SELECT m FROM mm), '{"phone": "13700000000"}')::text$$) LIKE 'ERROR 42501%', 'marketing: denied');
SELECT ok(pg_temp.as_role('ml_bi', $$SELECT loyalty.member_update('ml-5', (SELECT m FROM mm), '{"phone": "13700000000"}')::text$$) LIKE 'ERROR 42501%', 'BI: denied');
SELECT ok(pg_temp.as_role('ml_dba', $$SELECT loyalty.member_update('ml-5', (SELECT m FROM mm), '{"phone": "13700000000"}')::text$$) LIKE 'ERROR 42501%', 'DBA: denied');

-- bad input, each refused with its SQLSTATE
SELECT throws_ok($$SELECT loyalty.member_update(NULL, (SELECT m FROM mm), '{"phone": "13700000000"}')$$, '22004', 'idempotency_key must not be null', 'null key');
SELECT throws_ok($$SELECT loyalty.member_update('', (SELECT m FROM mm), '{"phone": "13700000000"}')$$, '22023', 'idempotency_key must be 1 to 200 characters', 'empty key');
SELECT throws_ok($$SELECT loyalty.member_update(repeat('k', 201), (SELECT m FROM mm), '{"phone": "13700000000"}')$$, '22023', 'idempotency_key must be 1 to 200 characters', 'long key');
SELECT throws_ok($$SELECT loyalty.member_update('b1', (SELECT m FROM mm), '{"phone": "12ab"}')$$, '22023', 'invalid phone number', 'bad phone');
SELECT throws_ok($$SELECT loyalty.member_update('b2', (SELECT m FROM mm), '{"email": "no-at-sign"}')$$, '22023', 'invalid email address', 'bad email');
SELECT throws_ok($$SELECT loyalty.member_update('b3', (SELECT m FROM mm), '{"shoe_size": "42"}')$$, '22023', 'unknown member field "shoe_size"', 'unknown field');
SELECT throws_ok($$SELECT loyalty.member_update('b4', (SELECT m FROM mm), '{"full_name": null}')$$, '22004', 'full_name must not be null', 'name cannot be cleared');
SELECT throws_ok($$SELECT loyalty.member_update('b5', (SELECT m FROM mm), '{"birth_date": "2999-01-01"}')$$, '22008', 'birth_date is out of range', 'future birth date');
SELECT throws_ok($$SELECT loyalty.member_update('b6', (SELECT m FROM mm), '["phone"]')$$, '22023', NULL, 'changes not an object');
SELECT throws_ok($$SELECT loyalty.member_update('b7', (SELECT m FROM mm), jsonb_build_object('full_name', repeat('x', 101)))$$, '22001', NULL, 'name too long');
SELECT throws_ok($$SELECT loyalty.member_update('b8', gen_random_uuid(), '{"phone": "13700000000"}')$$, 'P0002', 'member not found', 'unknown member');
SELECT throws_ok($$SELECT loyalty.member_update('b9', (SELECT m FROM mm), '{"time_zone": "CST"}')$$, '22023', NULL, 'bad time zone');
SELECT throws_ok($$SELECT loyalty.member_update('b10', (SELECT m FROM mm), '{"phone": "13700000000", "gender": "x"}')$$, '22023', NULL, 'one bad field refuses all');
SELECT is((SELECT phone FROM loyalty.member_profile WHERE member_id = (SELECT m FROM mm)), '13712348888', 'nothing written by bad input');
SELECT is((SELECT count(*)::int FROM loyalty.crm_request WHERE idem_key LIKE 'b%'), 0, 'no request recorded by bad input');

-- status: suspended earns but redeems nothing; closed does neither
SELECT lives_ok($$SELECT loyalty.accrue((SELECT m FROM mm), 'mla', 5000, 'stay', 'ml-acc-1')$$, 'active earns');
SELECT throws_ok($$SELECT loyalty.member_status_set('s0', (SELECT m FROM mm), 'suspended')$$, '22004', NULL, 'suspension needs a reason');
SELECT throws_ok($$SELECT loyalty.member_status_set('s0', (SELECT m FROM mm), 'frozen', 'x')$$, '22023', NULL, 'unknown status');
SELECT ok(pg_temp.as_role('ml_b_desk', $$SELECT loyalty.member_status_set('s1', (SELECT m FROM mm), 'suspended', 'dispute')::text$$) LIKE 'ERROR 42501%', 'front desk cannot suspend');
SELECT is(pg_temp.as_role('ml_b_mgr', $$SELECT loyalty.member_status_set('s1', (SELECT m FROM mm), 'suspended', 'chargeback dispute')->>'status'$$),
          'suspended', 'store manager suspends with a reason');
SELECT lives_ok($$SELECT loyalty.accrue((SELECT m FROM mm), 'mla', 100, 'stay', 'ml-acc-2')$$, 'suspended earns');
SELECT throws_ok($$SELECT loyalty.redeem((SELECT m FROM mm), 'mla', 1000, 'gift', 'ml-red-1')$$, '55000', NULL, 'suspended redeems nothing');
SELECT is(pg_temp.as_role('ml_b_mgr', $$SELECT loyalty.member_status_set('s2', (SELECT m FROM mm), 'closed', 'asked to')::text$$),
          'ERROR 42501: only HQ CRM may close an account', 'a store cannot close an account');
SELECT is(pg_temp.as_role('ml_crm', $$SELECT loyalty.member_status_set('s3', (SELECT m FROM mm), 'closed', 'member asked to close')->>'old_status'$$),
          'suspended', 'CRM closes');
SELECT throws_ok($$SELECT loyalty.accrue((SELECT m FROM mm), 'mla', 100, 'stay', 'ml-acc-3')$$, '55000', NULL, 'closed earns nothing');
SELECT throws_ok($$SELECT loyalty.member_update('c1', (SELECT m FROM mm), '{"phone": "13700000000"}')$$, '55000', NULL, 'a closed profile is not maintained');
SELECT is((SELECT array_agg(payload->>'status' ORDER BY event_id)::text FROM loyalty.event_outbox
            WHERE kind = 'member_status_changed' AND member_id = (SELECT m FROM mm)), '{suspended,closed}', 'an event per status change');
SELECT is(pg_temp.as_role('ml_crm', $$SELECT loyalty.member_status_set('s4', (SELECT m FROM mm), 'active')->>'status'$$), 'active', 'CRM reopens');

-- home store
SELECT is(pg_temp.as_role('ml_crm', $$SELECT loyalty.member_home_store_set('h1', (SELECT m FROM mm), 'mlb')->>'home_store'$$), 'mlb', 'CRM moves the home store');
SELECT throws_ok($$SELECT loyalty.member_home_store_set('h2', (SELECT m FROM mm), 'nowhere')$$, 'P0002', NULL, 'unknown store');
SELECT ok(pg_temp.as_role('ml_b_mgr', $$SELECT loyalty.member_home_store_set('h3', (SELECT m FROM mm), 'mla')::text$$) LIKE 'ERROR 42501%', 'a store cannot move the home store');

SELECT * FROM finish();
ROLLBACK;
