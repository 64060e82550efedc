-- audit (issue 13): policy_set, unchanged since 1.1 otherwise, records its
-- change (loyalty._audit_change); the body is that of src/sql/02_policy.sql.
-- field_policy_set records its change too: 41_privacy_policy.sql re-creates
-- it (with the privacy area's widening rule).

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
