-- audit (issue 13): policy_set and field_policy_set, unchanged since 1.1
-- otherwise, record their change (loyalty._audit_change); the bodies are
-- those of src/sql/02_policy.sql and src/sql/41_privacy.sql.

CREATE OR REPLACE FUNCTION loyalty.policy_set(
    document text, effective_from timestamptz DEFAULT now(), note text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id bigint;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF document IS NULL OR effective_from IS NULL THEN
        RAISE EXCEPTION 'policy document and effective_from must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF EXISTS (SELECT 1 FROM loyalty.policy p WHERE p.effective_from = policy_set.effective_from) THEN
        RAISE EXCEPTION 'a policy version already takes effect at %', effective_from
            USING ERRCODE = 'unique_violation',
                  HINT = 'Choose another effective_from time.';
    END IF;
    INSERT INTO loyalty.policy (document, effective_from, note)
        VALUES (policy_set.document, policy_set.effective_from, policy_set.note)
        RETURNING policy_id INTO id;
    PERFORM loyalty._audit_change(NULL, 'policy_set', 'loyalty',
        pg_catalog.jsonb_build_object('policy_id', id, 'effective_from', effective_from, 'note', note));
    RETURN id;
END
$$;

CREATE OR REPLACE FUNCTION loyalty.field_policy_set(department text, field text, treatment text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
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
    INSERT INTO loyalty.field_policy (department, field, treatment)
        VALUES (field_policy_set.department, field_policy_set.field, field_policy_set.treatment);
    PERFORM loyalty._audit_change(NULL, 'field_policy_set', 'privacy',
        pg_catalog.jsonb_build_object('department', department, 'field', field, 'treatment', treatment));
END
$$;
