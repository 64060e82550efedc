-- CRM: data quality (docs/crm.md).  Completeness: per home store, for each
-- department, how many open members lack each field that department's
-- duty relies on (the fields the field policy shows it, whole or masked).
-- Staleness: how many were never verified or not within a period.

CREATE FUNCTION loyalty.member_completeness(store_code text DEFAULT NULL)
    RETURNS TABLE (home_store text, department text, field text, members bigint,
                   missing bigint, complete_pct numeric)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm']);
    IF member_completeness.store_code IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM loyalty.store s WHERE s.store_code = member_completeness.store_code) THEN
        RAISE EXCEPTION 'store "%" does not exist', member_completeness.store_code
            USING ERRCODE = 'no_data_found';
    END IF;
    RETURN QUERY
    WITH duty AS (
        SELECT d.department, d.field FROM (
            SELECT DISTINCT ON (f.department, f.field) f.department, f.field, f.treatment
              FROM loyalty.field_policy f ORDER BY f.department, f.field, f.set_at DESC) d
         WHERE d.treatment <> 'hide' AND d.field <> 'card_no'
    ), gaps AS (
        SELECT m.home_store AS store, x.field, count(*) AS members,
               count(*) FILTER (WHERE x.missing) AS missing
          FROM loyalty.member m
          JOIN loyalty.member_profile p ON p.member_id = m.member_id
          LEFT JOIN loyalty.member_identity i ON i.member_id = m.member_id
         CROSS JOIN LATERAL (VALUES
             ('full_name', p.full_name IS NULL), ('gender', p.gender IS NULL),
             ('birth_date', p.birth_date IS NULL), ('nationality', p.nationality IS NULL),
             ('phone', p.phone IS NULL), ('email', p.email IS NULL),
             ('address', p.address IS NULL), ('id_number', i.id_number_cipher IS NULL),
             ('bank_card', i.bank_card_cipher IS NULL)) x(field, missing)
         WHERE m.status IN ('active', 'suspended')
           AND (member_completeness.store_code IS NULL OR m.home_store = member_completeness.store_code)
         GROUP BY m.home_store, x.field
    )
    SELECT g.store, d.department, g.field, g.members, g.missing,
           round(100.0 * (g.members - g.missing) / g.members, 1)
      FROM gaps g JOIN duty d ON d.field = g.field
     ORDER BY g.store, d.department, g.field;
END
$$;
COMMENT ON FUNCTION loyalty.member_completeness(text) IS
    'Per home store and department: open members lacking each field the department''s duty relies on';

CREATE FUNCTION loyalty.member_staleness(stale_after interval DEFAULT '24 months',
    store_code text DEFAULT NULL)
    RETURNS TABLE (home_store text, members bigint, never_verified bigint, stale bigint,
                   current_pct numeric)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm']);
    IF stale_after IS NULL THEN
        RAISE EXCEPTION 'stale_after must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF stale_after <= interval '0' THEN
        RAISE EXCEPTION 'stale_after must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT m.home_store, count(*),
           count(*) FILTER (WHERE m.last_verified_at IS NULL),
           count(*) FILTER (WHERE m.last_verified_at < now() - stale_after),
           round(100.0 * count(*) FILTER (WHERE m.last_verified_at >= now() - stale_after) / count(*), 1)
      FROM loyalty.member m
     WHERE m.status IN ('active', 'suspended')
       AND (member_staleness.store_code IS NULL OR m.home_store = member_staleness.store_code)
     GROUP BY m.home_store
     ORDER BY m.home_store;
END
$$;
COMMENT ON FUNCTION loyalty.member_staleness(interval, text) IS
    'Per home store: open members never verified, or last verified longer ago than stale_after';

REVOKE ALL ON FUNCTION loyalty.member_completeness(text), loyalty.member_staleness(interval, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.member_completeness(text), loyalty.member_staleness(interval, text)
    TO loyalty_crm;
