-- privacy: field-policy changes audited, and no department widens its own
-- policy (issue 12.4): only HQ CRM widens, never for itself; DBAs narrow.

-- _field_treatment_rank(treatment): how much of a field a treatment shows,
-- to tell widening from narrowing: hide 0, full mask 1, a partial mask 2,
-- show 3 (NULL, no policy yet: 0).
CREATE FUNCTION loyalty._field_treatment_rank(treatment text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN treatment IS NULL OR treatment = 'hide' THEN 0
                WHEN treatment = 'full' THEN 1 WHEN treatment = 'show' THEN 3 ELSE 2 END;
REVOKE ALL ON FUNCTION loyalty._field_treatment_rank(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION loyalty.field_policy_set(department text, field text, treatment text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me record := loyalty.whoami();
    previous text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF department IS NULL OR field IS NULL OR treatment IS NULL THEN
        RAISE EXCEPTION 'department, field and treatment must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF department NOT IN ('frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm', 'marketing', 'dba') THEN
        RAISE EXCEPTION 'unknown department "%"', department
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Departments with a member view are frontdesk, housekeeping, fnb, store_manager, crm, marketing and dba.';
    END IF;
    IF loyalty.field_treatments(field) IS NULL THEN
        RAISE EXCEPTION 'unknown member field "%"', field
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Fields are card_no, full_name, gender, birth_date, nationality, phone, email, address, id_number and bank_card.';
    END IF;
    IF NOT treatment = ANY (loyalty.field_treatments(field)) THEN
        RAISE EXCEPTION 'treatment "%" is not allowed for field "%"', treatment, field
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('Allowed treatments: %s.',
                               pg_catalog.array_to_string(loyalty.field_treatments(field), ', '));
    END IF;
    SELECT c.treatment INTO previous FROM loyalty.field_policy_current c
     WHERE c.department = field_policy_set.department AND c.field = field_policy_set.field;
    -- widening (issue 12.4): only HQ CRM, the privacy officer, may show more
    -- of a field, and never to its own department; DBAs may only narrow.
    -- Superusers are out of the threat model (they could write the table).
    IF loyalty._field_treatment_rank(treatment) > loyalty._field_treatment_rank(previous)
       AND NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = me.role), false)
       AND (me.department <> 'crm' OR department = me.department) THEN
        -- a refusal is recorded by an audit writer (loyalty._audit), so that
        -- it stays on record although this call rolls back
        PERFORM loyalty._audit(NULL, 'field_policy_refused',
            ARRAY['department', 'field', 'previous', 'treatment'],
            pg_catalog.format('privacy: widen %s.%s from %s to %s', department, field,
                              previous, treatment));
        RAISE EXCEPTION 'permission denied to widen the field policy of department "%"', department
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = CASE WHEN department = me.department
                                THEN 'A department cannot widen its own field policy.'
                                ELSE 'Only HQ CRM may widen a field policy.' END,
                  HINT = 'Ask HQ CRM (the privacy officer) to make the change; narrowing is always allowed.';
    END IF;
    -- set_by: the acting role (whoami), which is the login unless a
    -- superuser acts through SET ROLE
    INSERT INTO loyalty.field_policy (department, field, treatment, set_by)
        VALUES (field_policy_set.department, field_policy_set.field, field_policy_set.treatment,
                me.role);
    -- who (the audit record's login and role) and what (the policy row, with
    -- set_by and set_at, and the detail)
    PERFORM loyalty._audit_change(NULL, 'field_policy_set', 'privacy',
        pg_catalog.jsonb_build_object('department', department, 'field', field,
                                      'treatment', treatment, 'previous', previous));
END
$$;
COMMENT ON FUNCTION loyalty.field_policy_set(text, text, text) IS
    'Set how a department sees a member field; regenerates the masked views; audited; only HQ CRM widens, never its own department';
