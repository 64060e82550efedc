-- pgTAP (issue 12.4): self-unmasking.  An HQ DBA login tries to widen its
-- own department's field policy (and another's) to read full phone numbers;
-- HQ CRM, the privacy officer, widens another department's, but never its
-- own.  Every change and every refusal is audited with who and what.
BEGIN;
SELECT plan(15);

-- as_role(role, query): the first column of the first row, or 'ERROR <sqlstate>'
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
        RETURN 'ERROR ' || SQLSTATE;
    END;
END
$$;

SELECT loyalty.store_create(gen_random_uuid()::text, 'fpa', 'Policy A', 'bay', 'south', 'Asia/Shanghai');
SELECT loyalty.staff_create(gen_random_uuid()::text, 'fp_dba', NULL, 'dba'),
       loyalty.staff_create(gen_random_uuid()::text, 'fp_crm', NULL, 'crm'),
       loyalty.staff_create(gen_random_uuid()::text, 'fp_desk', 'fpa', 'frontdesk');
CREATE TEMP TABLE fp AS
SELECT (loyalty.member_enroll(gen_random_uuid()::text, 'fpa', '张三丰', '13812345678')).member_id AS m;
GRANT SELECT ON fp TO PUBLIC;

-- the DBA: its own department, then another's, then narrowing
SELECT is(pg_temp.as_role('fp_dba', $$SELECT loyalty.field_policy_set('dba', 'phone', 'show')$$),
          'ERROR 42501', 'a DBA cannot widen its own department''s policy');
SELECT is(pg_temp.as_role('fp_dba', 'SELECT phone FROM loyalty.member_dba WHERE member_id = (SELECT m FROM fp)'),
          '****', 'and still reads the phone fully masked');
SELECT is(pg_temp.as_role('fp_dba', $$SELECT loyalty.field_policy_set('frontdesk', 'phone', 'show')$$),
          'ERROR 42501', 'a DBA cannot widen another department''s policy either');
SELECT is(pg_temp.as_role('fp_dba', $$SELECT loyalty.field_policy_set('dba', 'phone', 'last4')$$),
          'ERROR 42501', 'not even from full mask to a partial one');
SELECT is(pg_temp.as_role('fp_dba', $$SELECT loyalty.field_policy_set('dba', 'email', 'hide')$$),
          '', 'a DBA may narrow');
SELECT is((SELECT treatment FROM loyalty.field_policy_current WHERE department = 'dba' AND field = 'phone'),
          'full', 'the DBA''s phone policy is unchanged');

-- HQ CRM: another department yes, its own no
SELECT is(pg_temp.as_role('fp_crm', $$SELECT loyalty.field_policy_set('frontdesk', 'address', 'show')$$),
          '', 'HQ CRM widens another department''s policy');
SELECT is((SELECT set_by::text FROM loyalty.field_policy_current WHERE department = 'frontdesk' AND field = 'address'),
          'fp_crm', 'the policy row names who changed it');
SELECT is(pg_temp.as_role('fp_crm', $$SELECT loyalty.field_policy_set('crm', 'phone', 'phone')$$),
          '', 'HQ CRM may narrow its own');
SELECT is(pg_temp.as_role('fp_crm', $$SELECT loyalty.field_policy_set('crm', 'phone', 'show')$$),
          'ERROR 42501', 'but not widen it back: a department never widens its own policy');
SELECT is(pg_temp.as_role('fp_desk', $$SELECT loyalty.field_policy_set('frontdesk', 'phone', 'show')$$),
          'ERROR 42501', 'a store department cannot change policies at all');

-- the audit trail: who, what (the detail's keys; the values are in the policy rows)
SELECT is((SELECT string_agg(role || ':' || action, ',' ORDER BY audit_id) FROM loyalty.audit_log
            WHERE action = 'field_policy_refused' AND role IN ('fp_dba', 'fp_crm')),
          'fp_dba:field_policy_refused,fp_dba:field_policy_refused,fp_dba:field_policy_refused,fp_crm:field_policy_refused',
          'every refusal is on the audit chain, with the login, although the refused call rolled back');
-- changes are recorded with their change (staged, then chained by the writers)
SELECT is((SELECT string_agg(role || ':' || action, ',' ORDER BY role DESC)
             FROM (SELECT role, action FROM loyalty.audit_log
                    WHERE action = 'field_policy_set' AND role IN ('fp_dba', 'fp_crm')
                   UNION ALL
                   SELECT role, action FROM loyalty.audit_change_staging
                    WHERE action = 'field_policy_set' AND role IN ('fp_dba', 'fp_crm')) c),
          'fp_dba:field_policy_set,fp_crm:field_policy_set,fp_crm:field_policy_set',
          'every change is audited, with the login');
SELECT is((SELECT array_agg(k ORDER BY k)::text
             FROM (SELECT detail FROM (SELECT detail FROM loyalty.audit_change_staging
                                        WHERE role = 'fp_crm' AND action = 'field_policy_set'
                                       UNION ALL
                                       SELECT detail FROM loyalty.audit_log
                                        WHERE role = 'fp_crm' AND action = 'field_policy_set') u
                    LIMIT 1) d,
                  pg_catalog.jsonb_object_keys(d.detail) k),
          '{department,field,previous,treatment}', 'the record names what changed');
SELECT is((SELECT count(*)::int FROM loyalty.field_policy WHERE set_by IN ('fp_dba', 'fp_crm')), 3,
          'three changes made it into the policy history');

SELECT * FROM finish();
ROLLBACK;
