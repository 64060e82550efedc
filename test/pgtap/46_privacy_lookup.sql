-- pgTAP (issue 12.1, 12.2): lookup oracles, bulk listing, plans and error
-- details, tried as the hostile logins: the front desk, housekeeping and
-- F&B of one store, BI, marketing and an HQ DBA.  Each attack must fail.
BEGIN;
SELECT plan(46);

-- as_role(role, query[, setup]): the query's first column of every row
-- joined with '|', or 'ERROR <sqlstate>: <message>'.
CREATE FUNCTION pg_temp.as_role(r text, q text, setup text DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    rec record;
    res text;
BEGIN
    BEGIN
        EXECUTE format('SET LOCAL ROLE %I', r);
        IF setup IS NOT NULL THEN
            EXECUTE setup;
        END IF;
        IF q ~* '^\s*(SELECT|EXPLAIN|WITH|VALUES)' THEN
            FOR rec IN EXECUTE q LOOP
                res := coalesce(res || '|', '')
                    || coalesce((SELECT j.value FROM jsonb_each_text(to_jsonb(rec)) AS j LIMIT 1), '<null>');
            END LOOP;
        ELSE
            EXECUTE q;
            res := 'done';
        END IF;
        RESET ROLE;
        RETURN coalesce(res, '<none>');
    EXCEPTION WHEN OTHERS THEN
        RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
    END;
END
$$;

SELECT loyalty.store_create(gen_random_uuid()::text, 'lka', 'Lookup A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.store_create(gen_random_uuid()::text, 'lkb', 'Lookup B', 'bay', 'east', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'lk_b_desk', 'lkb', 'frontdesk'),
       loyalty.staff_create(gen_random_uuid()::text, 'lk_b_house', 'lkb', 'housekeeping'),
       loyalty.staff_create(gen_random_uuid()::text, 'lk_b_fnb', 'lkb', 'fnb'),
       loyalty.staff_create(gen_random_uuid()::text, 'lk_b_desk2', 'lkb', 'frontdesk'),
       loyalty.staff_create(gen_random_uuid()::text, 'lk_b_brute', 'lkb', 'frontdesk'),
       loyalty.staff_create(gen_random_uuid()::text, 'lk_b_idguess', 'lkb', 'frontdesk'),
       loyalty.staff_create(gen_random_uuid()::text, 'lk_a_desk', 'lka', 'frontdesk'),
       loyalty.staff_create(gen_random_uuid()::text, 'lk_bi', NULL, 'bi'),
       loyalty.staff_create(gen_random_uuid()::text, 'lk_mkt', NULL, 'marketing'),
       loyalty.staff_create(gen_random_uuid()::text, 'lk_dba', NULL, 'dba'),
       loyalty.staff_create(gen_random_uuid()::text, 'lk_crm', NULL, 'crm');
-- A's members: one with a booking at B, one never at B
CREATE TEMP TABLE lk AS
SELECT (loyalty.member_enroll(gen_random_uuid()::text, 'lka', '张三丰', '13812345678', 'zsf@example.com', '1988-03-14')).member_id AS far,
       (loyalty.member_enroll(gen_random_uuid()::text, 'lka', '李四光', '13912345678', 'lsg@example.com', '1979-10-26')).member_id AS guest;
INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out, status)
SELECT guest, 'lkb', '2026-12-01', '2026-12-03', 'booked' FROM lk;
SELECT loyalty.identity_set(far, 'resident_id', '44030119880314123X') FROM lk;
GRANT SELECT ON lk TO PUBLIC;
CREATE TEMP TABLE lk_card AS SELECT card_no FROM loyalty.member, lk WHERE member_id = lk.far;
GRANT SELECT ON lk_card TO PUBLIC;

-- 1. bulk listing: store B's views list only members B has a reason to see
SELECT is(pg_temp.as_role('lk_b_desk', 'SELECT count(*) FROM loyalty.member_frontdesk WHERE home_store = ''lka'''),
          '1', 'front desk of B lists only A''s member with a booking at B');
SELECT is(pg_temp.as_role('lk_b_desk', 'SELECT count(*) FROM loyalty.member_frontdesk WHERE member_id = (SELECT far FROM lk)'),
          '0', 'front desk of B does not list A''s other member');
SELECT is(pg_temp.as_role('lk_b_house', 'SELECT count(*) FROM loyalty.member_housekeeping WHERE home_store = ''lka'''),
          '1', 'housekeeping of B: the same');
SELECT is(pg_temp.as_role('lk_b_fnb', 'SELECT count(*) FROM loyalty.member_fnb WHERE home_store = ''lka'''),
          '1', 'F&B of B: the same');
SELECT is(pg_temp.as_role('lk_a_desk', 'SELECT count(*) FROM loyalty.member_frontdesk WHERE home_store = ''lka'''),
          '2', 'A lists its own members');
SELECT is(pg_temp.as_role('lk_b_house', 'SELECT loyalty.housekeeping_profile((SELECT far FROM lk))'),
          'ERROR P0002: member not found', 'housekeeping of B: a profile out of reach is not found');
SELECT is(pg_temp.as_role('lk_b_fnb', 'SELECT count(*) FROM loyalty.preferences((SELECT far FROM lk))'),
          'ERROR P0002: member not found', 'F&B of B: preferences of a member out of reach are not found');
SELECT is(pg_temp.as_role('lk_b_fnb', 'SELECT count(*) FROM loyalty.preferences((SELECT guest FROM lk))'),
          '0', '... those of the guest with a booking at B are');
SELECT is(pg_temp.as_role('lk_b_house', $$SELECT loyalty.preference_add((SELECT far FROM lk), 'pillow', 'probe')$$),
          'ERROR P0002: member not found', 'housekeeping of B cannot record a preference for a member out of reach');

-- 2. lookups: exact card number, or full phone plus surname; audited
SELECT is(pg_temp.as_role('lk_b_desk', 'SELECT full_name FROM loyalty.frontdesk_lookup((SELECT card_no FROM lk_card))'),
          '张**', 'lookup by the exact card number finds the guest');
SELECT is(pg_temp.as_role('lk_b_desk', $$SELECT loyalty.frontdesk_lookup('13812345678')$$),
          'ERROR 22023: lookup key is not a card number', 'a phone alone is no lookup key');
SELECT is(pg_temp.as_role('lk_b_desk', $$SELECT loyalty.frontdesk_lookup('44030119880314123X')$$),
          'ERROR 22023: lookup key is not a card number', 'an ID number is no lookup key');
SELECT is(pg_temp.as_role('lk_b_desk', $$SELECT full_name FROM loyalty.frontdesk_lookup_phone('13812345678', '张')$$),
          '张**', 'phone plus surname finds the guest');
SELECT is(pg_temp.as_role('lk_b_desk', $$SELECT full_name FROM loyalty.frontdesk_lookup_phone('13812345678', '李')$$),
          'ERROR P0002: member not found', 'phone with another surname: not found');
SELECT is(pg_temp.as_role('lk_b_desk', $$SELECT count(*) FROM loyalty.member_frontdesk WHERE member_id = (SELECT far FROM lk)$$),
          '1', 'the guest found stays in the desk''s view for the transaction');
SELECT is(pg_temp.as_role('lk_b_desk2', $$SELECT count(*) FROM loyalty.member_frontdesk WHERE member_id = (SELECT far FROM lk)$$),
          '0', 'but not in another login''s, in the same transaction and backend (SET ROLE)');
SELECT is((SELECT array_agg(action ORDER BY audit_id)::text FROM loyalty.audit_log WHERE role = 'lk_b_desk'),
          '{lookup,lookup,lookup_miss}', 'hits and the miss are audited');
SELECT is((SELECT fields::text FROM loyalty.audit_log WHERE role = 'lk_b_desk' AND action = 'lookup_miss'),
          '{phone,surname}', 'a miss records which keys were tried, never their values');
SELECT is(pg_temp.as_role('lk_b_house', $$SELECT loyalty.frontdesk_lookup_phone('13812345678', '张')$$)::text ~ '^ERROR 42501', true,
          'housekeeping may not look up');
SELECT is(pg_temp.as_role('lk_bi', $$SELECT loyalty.frontdesk_lookup_phone('13812345678', '张')$$)::text ~ '^ERROR 42501', true,
          'BI may not look up');
SELECT is(pg_temp.as_role('lk_mkt', $$SELECT loyalty.frontdesk_lookup_phone('13812345678', '张')$$)::text ~ '^ERROR 42501', true,
          'marketing may not look up');
SELECT is(pg_temp.as_role('lk_dba', $$SELECT loyalty.frontdesk_lookup_phone('13812345678', '张')$$)::text ~ '^ERROR 42501', true,
          'an HQ DBA may not look up');
SELECT is(pg_temp.as_role('lk_b_desk', 'SELECT 1', 'SET loyalty.lookup_budget = 1000000'),
          'ERROR 42501: permission denied to set parameter "loyalty.lookup_budget"', 'a login cannot raise its own budget');

-- 3. the phone oracle: 10,000 candidates for the hidden digits, with the
-- right surname; the budget (30 here) runs out long before the hit.  The
-- loop goes on until it finds the number or is refused (without a budget it
-- finds it at candidate 5678).
SET loyalty.lookup_budget = 30;
CREATE FUNCTION pg_temp.brute() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    hits int := 0; misses int := 0; refused int := 0; i int;
BEGIN
    FOR i IN 0..9999 LOOP
        BEGIN
            PERFORM loyalty.frontdesk_lookup_phone('1381234' || lpad(i::text, 4, '0'), '张', 'check_in');
            hits := hits + 1;
            EXIT;
        EXCEPTION WHEN no_data_found THEN misses := misses + 1;
                  WHEN program_limit_exceeded THEN refused := refused + 1; EXIT;
        END;
    END LOOP;
    RETURN format('%s hits, %s misses, %s refused', hits, misses, refused);
END
$$;
SELECT is(pg_temp.as_role('lk_b_brute', 'SELECT pg_temp.brute()'), '0 hits, 30 misses, 1 refused',
          'a 10,000-candidate phone brute force finds nothing: refused after the budget');
SELECT is((SELECT count(*)::int FROM loyalty.audit_log WHERE role = 'lk_b_brute' AND action = 'lookup_miss'), 30,
          'every miss of the brute force is audited');
SELECT is((SELECT count(*)::int FROM loyalty.audit_log WHERE role = 'lk_b_brute' AND action = 'lookup_refused'), 1,
          'the refusal is audited');
SELECT is(pg_temp.as_role('lk_b_brute', $$SELECT loyalty.frontdesk_lookup_phone('13812345678', '张')$$),
          'ERROR 54000: lookup budget exceeded', 'even the right guess is refused beyond the budget');
SELECT is(pg_temp.as_role('lk_b_brute', $$SELECT loyalty.frontdesk_lookup((SELECT card_no FROM lk_card))$$),
          'ERROR 54000: lookup budget exceeded', 'so is a card lookup: one budget for every lookup');
SELECT is((SELECT count(*)::int FROM loyalty.audit_log WHERE role = 'lk_b_brute' AND action = 'lookup_refused'), 3,
          'every refusal is audited');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox WHERE kind = 'lookup_budget_exceeded'
            AND payload ->> 'role' = 'lk_b_brute'), 1, 'one alert event on the outbox for the hour, not one per refusal');
SELECT is(pg_temp.as_role('lk_b_desk', $$SELECT full_name FROM loyalty.frontdesk_lookup_phone('13812345678', '张')$$),
          '张**', 'the budget is per login: another desk of the same store still looks up');
RESET loyalty.lookup_budget;

-- 4. the ID oracle: last four (shown) plus the birthday (shown) leave the
-- region code; 17 candidates, the right one among them, never confirm it
CREATE FUNCTION pg_temp.id_guess() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    yes int := 0; no int := 0; refused int := 0; r text;
BEGIN
    PERFORM loyalty.frontdesk_lookup((SELECT card_no FROM lk_card));   -- the guest is at the desk
    FOREACH r IN ARRAY ARRAY['440300', '440302', '440303', '440304', '440305', '440306', '440307',
                             '440308', '440309', '440301', '440310', '440311', '440312', '440313',
                             '440314', '440315', '440316'] LOOP
        BEGIN
            IF loyalty.identity_matches((SELECT far FROM lk), r || '19880314123X') THEN
                yes := yes + 1;
            ELSE
                no := no + 1;
            END IF;
        EXCEPTION WHEN program_limit_exceeded THEN refused := refused + 1;
        END;
    END LOOP;
    RETURN format('%s confirmed, %s denied, %s refused', yes, no, refused);
END
$$;
SELECT is(pg_temp.as_role('lk_b_idguess', 'SELECT pg_temp.id_guess()'), '0 confirmed, 3 denied, 14 refused',
          'ID last four + birthday: 17 candidates never confirm the number');
SELECT is(pg_temp.as_role('lk_b_desk2', format('SELECT loyalty.identity_matches(%L, %L)', (SELECT far FROM lk), '44030119880314123X')),
          'ERROR P0002: member not found', 'ID verification of a member out of reach: not found');
SELECT is(pg_temp.as_role('lk_b_desk', format('SELECT loyalty.identity_set(%L, %L, %L)', (SELECT guest FROM lk), 'resident_id', '44030119880314123X')),
          '', 'storing another member''s ID number answers like any other (no oracle)');
SELECT is(pg_temp.as_role('lk_b_desk', format('SELECT loyalty.identity_set(%L, %L, %L)', (SELECT guest FROM lk), 'resident_id', '44030119790000000X')),
          '', '... exactly as a fresh number does');
SELECT is(pg_temp.as_role('lk_b_desk', 'SELECT count(*) FROM loyalty.identity_conflict')::text ~ '^ERROR 42501', true,
          'the clash is not readable by the store');
SELECT is((SELECT count(*)::int FROM loyalty.identity_conflict WHERE member_id = (SELECT guest FROM lk)
            AND other_member_id = (SELECT far FROM lk)), 1, 'HQ sees the clash');

-- 5. plans: EXPLAIN refused for store, BI and marketing logins
SELECT is(pg_temp.as_role('lk_b_desk', 'EXPLAIN SELECT * FROM loyalty.stays'),
          'ERROR 42501: permission denied to explain queries', 'front desk: EXPLAIN refused');
SELECT is(pg_temp.as_role('lk_b_house', 'EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM loyalty.member_housekeeping'),
          'ERROR 42501: permission denied to explain queries', 'housekeeping: EXPLAIN ANALYZE refused');
SELECT is(pg_temp.as_role('lk_b_fnb', 'EXPLAIN ANALYZE SELECT * FROM loyalty.member_fnb'),
          'ERROR 42501: permission denied to explain queries', 'F&B: EXPLAIN ANALYZE refused');
SELECT is(pg_temp.as_role('lk_bi', 'EXPLAIN ANALYZE SELECT * FROM loyalty.bi_stays'),
          'ERROR 42501: permission denied to explain queries', 'BI: EXPLAIN ANALYZE refused');
SELECT is(pg_temp.as_role('lk_mkt', 'EXPLAIN SELECT * FROM loyalty.member_marketing'),
          'ERROR 42501: permission denied to explain queries', 'marketing: EXPLAIN refused');
SELECT ok(pg_temp.as_role('lk_crm', 'EXPLAIN (COSTS OFF) SELECT * FROM loyalty.stays') !~ '^ERROR',
          'HQ CRM keeps EXPLAIN');

-- 6. error details never show another store's call
SELECT loyalty.points_accrue('lk-idem', (SELECT far FROM lk), 'lka', 500, 'stay', reference => 'A-secret-folio');
SELECT is(pg_temp.as_role('lk_b_desk', format($$SELECT loyalty.points_accrue('lk-idem', %L, 'lkb', 1, 'stay')$$, (SELECT guest FROM lk)))
          ~ '^ERROR 23505', true, 'a key used by another store is refused');
CREATE FUNCTION pg_temp.detail_of(r text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    BEGIN
        EXECUTE q;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    END;
    RESET ROLE;
    RETURN d;
END
$$;
SELECT isnt(pg_temp.detail_of('lk_b_desk', format($$SELECT loyalty.points_accrue('lk-idem', %L, 'lkb', 1, 'stay')$$, (SELECT guest FROM lk))),
          NULL, 'the conflict has a DETAIL');
SELECT ok(pg_temp.detail_of('lk_b_desk', format($$SELECT loyalty.points_accrue('lk-idem', %L, 'lkb', 1, 'stay')$$, (SELECT guest FROM lk)))
          !~ ('lka|A-secret-folio|500|' || (SELECT far FROM lk)::text),
          'its DETAIL does not show the other store''s call (store, member, points, reference)');

SELECT * FROM finish();
ROLLBACK;
