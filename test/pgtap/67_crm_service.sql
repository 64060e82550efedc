-- pgTAP: service cases and the interaction log (docs/crm.md): normal path,
-- escalation, bad input (nothing written) and the rights of every
-- department (store staff see their store's cases, HQ all).
BEGIN;
SELECT plan(33);

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

SELECT loyalty.create_store('sca', 'Case A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.create_store('scb', 'Case B', 'bay', 'east', 'Asia/Shanghai');
SELECT loyalty.create_staff('sc_a_desk', 'sca', 'frontdesk');
SELECT loyalty.create_staff('sc_a_mgr', 'sca', 'store_manager');
SELECT loyalty.create_staff('sc_a_hk', 'sca', 'housekeeping');
SELECT loyalty.create_staff('sc_a_fnb', 'sca', 'fnb');
SELECT loyalty.create_staff('sc_b_desk', 'scb', 'frontdesk');
SELECT loyalty.create_staff('sc_b_mgr', 'scb', 'store_manager');
SELECT loyalty.create_staff('sc_crm', NULL, 'crm');
SELECT loyalty.create_staff('sc_mkt', NULL, 'marketing');
SELECT loyalty.create_staff('sc_bi', NULL, 'bi');
SELECT loyalty.create_staff('sc_dba', NULL, 'dba');
CREATE TEMP TABLE sm AS
SELECT (loyalty.enroll('sca', 'Case Member', '13811112222')).member_id AS m;
CREATE TEMP TABLE sc (c uuid);
GRANT SELECT, INSERT ON sm, sc TO PUBLIC;

-- a front desk opens a complaint at its store
SELECT ok(pg_temp.as_role('sc_a_desk', $$WITH x AS (INSERT INTO sc SELECT loyalty.case_open('sc-1', (SELECT m FROM sm),
            'complaint', 'front_desk', 'high', 'noisy air conditioning') RETURNING c) SELECT c::text FROM x$$) ~ '^[0-9a-f-]{36}$',
          'front desk opens a complaint');
SELECT is((SELECT row(kind, store_code, department, status, escalation_level)::text FROM loyalty.service_case
            WHERE case_id = (SELECT c FROM sc)), '(complaint,sca,frontdesk,open,0)', 'recorded at the store, for the front desk');
SELECT ok((SELECT due_at - opened_at = interval '24 hours' FROM loyalty.service_case WHERE case_id = (SELECT c FROM sc)),
          'a high-severity case is due in 24 hours');
SELECT is(pg_temp.as_role('sc_a_desk', $$SELECT loyalty.case_open('sc-1', (SELECT m FROM sm), 'complaint', 'front_desk', 'high',
            'noisy air conditioning')::text$$), (SELECT c::text FROM sc), 'a retry returns the same case');
SELECT is((SELECT count(*)::int FROM loyalty.service_case WHERE member_id = (SELECT m FROM sm)), 1, 'and opens no second case');
SELECT is((SELECT count(*)::int FROM loyalty.event_outbox WHERE kind = 'case_opened' AND member_id = (SELECT m FROM sm)), 1, 'case_opened event');

-- visibility: own store and HQ
SELECT is(pg_temp.as_role('sc_a_hk', $$SELECT count(*)::text FROM loyalty.service_cases$$), '1', 'housekeeping of the store sees the case');
SELECT is(pg_temp.as_role('sc_b_desk', $$SELECT count(*)::text FROM loyalty.service_cases$$), '0', 'another store sees none');
SELECT is(pg_temp.as_role('sc_crm', $$SELECT count(*)::text FROM loyalty.service_cases WHERE member_id = (SELECT m FROM sm)$$), '1', 'HQ CRM sees it');
SELECT ok(pg_temp.as_role('sc_mkt', $$SELECT count(*)::text FROM loyalty.service_cases$$) LIKE 'ERROR 42501%', 'marketing: no access');
SELECT ok(pg_temp.as_role('sc_bi', $$SELECT count(*)::text FROM loyalty.service_cases$$) LIKE 'ERROR 42501%', 'BI: no access');
SELECT ok(pg_temp.as_role('sc_b_desk', $$SELECT count(*)::text FROM loyalty.service_case$$) LIKE 'ERROR 42501%', 'no store reads the base table');

-- assignment
SELECT is(pg_temp.as_role('sc_b_mgr', $$SELECT loyalty.case_assign('sc-2', (SELECT c FROM sc), 'housekeeping')::text$$),
          'ERROR P0002: service case not found', 'another store''s manager cannot assign it');
SELECT ok(pg_temp.as_role('sc_a_desk', $$SELECT loyalty.case_assign('sc-2', (SELECT c FROM sc), 'housekeeping')::text$$) LIKE 'ERROR 42501%',
          'a front desk cannot assign');
SELECT is(pg_temp.as_role('sc_a_mgr', $$SELECT loyalty.case_assign('sc-2', (SELECT c FROM sc), 'housekeeping', 'sc_a_hk')::text$$),
          '', 'the store manager assigns it to housekeeping');
SELECT is((SELECT row(department, assignee, status)::text FROM loyalty.service_case WHERE case_id = (SELECT c FROM sc)),
          '(housekeeping,sc_a_hk,in_progress)', 'assigned and in progress');

-- escalation when overdue (the due time is moved back instead of waiting)
UPDATE loyalty.service_case SET due_at = now() - interval '1 minute' WHERE case_id = (SELECT c FROM sc);
SELECT ok(pg_temp.as_role('sc_a_mgr', $$SELECT loyalty.case_escalate_overdue()::text$$) LIKE 'ERROR 42501%', 'a store cannot run the job');
SELECT throws_ok($$SELECT loyalty.case_escalate_overdue(now() + interval '1 day')$$, '22023', NULL, 'a future as_of is refused');
SELECT is(pg_temp.as_role('sc_dba', $$SELECT loyalty.case_escalate_overdue()::text$$), '1', 'the job (as the DBA) escalates one case');
SELECT is((SELECT row(status, escalation_level, department)::text FROM loyalty.service_case WHERE case_id = (SELECT c FROM sc)),
          '(escalated,1,store_manager)', 'escalated to the store manager');
SELECT is((SELECT payload->>'level' FROM loyalty.event_outbox WHERE kind = 'case_escalated' AND member_id = (SELECT m FROM sm)),
          '1', 'case_escalated event');
SELECT is(loyalty.case_escalate_overdue(), 0, 'nothing more is overdue');

-- interaction log and resolution
SELECT ok(pg_temp.as_role('sc_a_mgr', $$SELECT loyalty.interaction_log('sc-3', (SELECT m FROM sm), 'phone', 'call',
            'called back, moved to a quiet room', (SELECT c FROM sc))::text$$) ~ '^[0-9a-f-]{36}$', 'a call-back is logged');
SELECT is(pg_temp.as_role('sc_b_desk', $$SELECT count(*)::text FROM loyalty.service_interactions$$), '0', 'another store does not see it');
SELECT throws_ok($$SELECT loyalty.case_resolve('sc-4', (SELECT c FROM sc), 'moved room', 9)$$, '22023', 'satisfaction must be from 1 to 5', 'bad score');
SELECT is(pg_temp.as_role('sc_a_mgr', $$SELECT loyalty.case_resolve('sc-4', (SELECT c FROM sc), 'moved to a quiet room', 4)::text$$),
          '', 'resolved with a satisfaction score');
SELECT is((SELECT row(status, satisfaction)::text FROM loyalty.service_case WHERE case_id = (SELECT c FROM sc)), '(resolved,4)', 'resolution recorded');
SELECT throws_ok($$SELECT loyalty.case_resolve('sc-5', (SELECT c FROM sc), 'again')$$, '55000', NULL, 'a resolved case stays resolved');

-- bad input: nothing written
SELECT throws_ok($$SELECT loyalty.case_open('b1', (SELECT m FROM sm), 'rant', 'phone', 'high', 'x', 'sca')$$, '22023', NULL, 'unknown kind');
SELECT throws_ok($$SELECT loyalty.case_open('b2', (SELECT m FROM sm), 'complaint', 'phone', 'urgent', 'x', 'sca')$$, '22023', NULL, 'unknown severity');
SELECT throws_ok($$SELECT loyalty.case_open('b3', (SELECT m FROM sm), 'complaint', 'phone', 'low', 'x')$$, '22004', NULL, 'HQ must name the store');
SELECT throws_ok($$SELECT loyalty.case_open('b4', gen_random_uuid(), 'complaint', 'phone', 'low', 'x', 'sca')$$, 'P0002', NULL, 'unknown member');
SELECT is((SELECT count(*)::int FROM loyalty.service_case), 1, 'bad input wrote nothing');

SELECT * FROM finish();
ROLLBACK;
