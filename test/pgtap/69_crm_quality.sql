-- pgTAP: data quality reports (docs/crm.md): completeness per home store
-- and department duty, staleness of last_verified_at; bad input with its
-- SQLSTATE; only HQ CRM may run them.
BEGIN;
SELECT plan(14);

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

SELECT loyalty.store_create('dq-s1', 'dqa', 'Quality A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create('dq-1', 'dq_a_desk', 'dqa', 'frontdesk');
SELECT loyalty.staff_create('dq-2', 'dq_crm', NULL, 'crm');
SELECT loyalty.staff_create('dq-3', 'dq_mkt', NULL, 'marketing');
CREATE TEMP TABLE dm AS
SELECT 1 AS n, (loyalty.member_enroll('dq-m1', 'dqa', 'Quality One', '13833334444', 'one@example.com')).member_id AS m
UNION ALL
SELECT 2, (loyalty.member_enroll('dq-m2', 'dqa', 'Quality Two', '13833335555')).member_id
UNION ALL
SELECT 3, (loyalty.member_enroll('dq-m3', 'dqa', 'Quality Three')).member_id;
GRANT SELECT ON dm TO PUBLIC;

-- completeness: what the front desk's duty relies on, at store dqa
SELECT is(pg_temp.as_role('dq_crm', $$SELECT members || '/' || missing FROM loyalty.member_completeness('dqa')
            WHERE department = 'frontdesk' AND field = 'phone'$$), '3/1', 'front desk: one of three lacks a phone');
SELECT is(pg_temp.as_role('dq_crm', $$SELECT members || '/' || missing || '/' || complete_pct FROM loyalty.member_completeness('dqa')
            WHERE department = 'frontdesk' AND field = 'email'$$), '3/2/33.3', 'front desk: two of three lack an email (33.3% complete)');
SELECT is(pg_temp.as_role('dq_crm', $$SELECT count(*)::text FROM loyalty.member_completeness('dqa')
            WHERE department = 'housekeeping' AND field = 'phone'$$), '0', 'housekeeping''s duty has no phone (hidden by the field policy)');
SELECT is(pg_temp.as_role('dq_crm', $$SELECT string_agg(DISTINCT home_store, ',') FROM loyalty.member_completeness('dqa')$$),
          'dqa', 'one store asked, one store answered');
SELECT ok(pg_temp.as_role('dq_crm', $$SELECT count(*)::text FROM loyalty.member_completeness()$$)::int > 0, 'every store');
-- a member that is closed does not count
SELECT loyalty.member_status_set('dq-c1', (SELECT m FROM dm WHERE n = 3), 'closed', 'test');
SELECT is(pg_temp.as_role('dq_crm', $$SELECT members || '/' || missing FROM loyalty.member_completeness('dqa')
            WHERE department = 'frontdesk' AND field = 'phone'$$), '2/0', 'closed members are not counted');

-- staleness
SELECT loyalty.member_update('dq-v1', (SELECT m FROM dm WHERE n = 1), '{"verified": true}');
UPDATE loyalty.member SET last_verified_at = now() - interval '3 years' WHERE member_id = (SELECT m FROM dm WHERE n = 2);
SELECT is(pg_temp.as_role('dq_crm', $$SELECT row(members, never_verified, stale, current_pct)::text
            FROM loyalty.member_staleness(store_code => 'dqa')$$), '(2,0,1,50.0)',
          'one verified now, one three years ago: half current');
SELECT is(pg_temp.as_role('dq_crm', $$SELECT row(members, never_verified, stale, current_pct)::text
            FROM loyalty.member_staleness(interval '5 years', 'dqa')$$), '(2,0,0,100.0)', 'the period is an argument');

-- bad input and rights
SELECT ok(pg_temp.as_role('dq_crm', $$SELECT count(*)::text FROM loyalty.member_staleness(interval '-1 day')$$)
          LIKE 'ERROR 22023%', 'negative period: 22023');
SELECT ok(pg_temp.as_role('dq_crm', $$SELECT count(*)::text FROM loyalty.member_staleness(NULL)$$)
          LIKE 'ERROR 22004%', 'null period: 22004');
SELECT ok(pg_temp.as_role('dq_crm', $$SELECT count(*)::text FROM loyalty.member_completeness('nosuch')$$)
          LIKE 'ERROR P0002%', 'unknown store: P0002');
SELECT ok(pg_temp.as_role('dq_a_desk', $$SELECT count(*)::text FROM loyalty.member_completeness()$$)
          LIKE 'ERROR 42501%', 'a front desk may not run it');
SELECT ok(pg_temp.as_role('dq_mkt', $$SELECT count(*)::text FROM loyalty.member_staleness()$$)
          LIKE 'ERROR 42501%', 'marketing may not run it');
SELECT ok(pg_temp.as_role('dq_a_desk', $$SELECT count(*)::text FROM loyalty.member_staleness()$$)
          LIKE 'ERROR 42501%', 'nor the staleness report');

SELECT * FROM finish();
ROLLBACK;
