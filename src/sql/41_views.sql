-- Masked views per department, generated from the field policy, and row
-- level security per store (docs/privacy.md).
--
-- The views are owned by loyalty_view_owner: a NOLOGIN role that is no
-- superuser and cannot bypass row level security, so the base tables'
-- policies apply to every read through a view.  The base tables force row
-- level security.  Store and BI roles hold no privilege on any base table.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'loyalty_view_owner') THEN
        CREATE ROLE loyalty_view_owner NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'loyalty_view_owner'
                     AND (rolsuper OR rolbypassrls OR rolcanlogin)) THEN
        RAISE EXCEPTION 'role "loyalty_view_owner" exists and can log in or bypass row level security'
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Drop that role or make it NOLOGIN NOSUPERUSER NOBYPASSRLS.';
    END IF;
END
$$;
GRANT USAGE ON SCHEMA loyalty TO loyalty_view_owner;

-- The row level security pattern for store-scoped rows: a row recorded at a
-- store is visible to that store's roles and to HQ.  Store identity comes
-- from role membership (loyalty.caller_store(), loyalty.caller_is_hq()),
-- never from a setting.  A plain SQL function, inlined by the planner, so
-- "store_code = caller_store()" can use an index.
CREATE FUNCTION loyalty.store_visible(store_code text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL RESTRICTED
    RETURN loyalty.caller_is_hq() OR store_code = loyalty.caller_store();
COMMENT ON FUNCTION loyalty.store_visible(text) IS
    'Row level security predicate for store-scoped rows: the caller''s own store, or any store for HQ';
REVOKE ALL ON FUNCTION loyalty.store_visible(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_visible(text), loyalty.caller_store(), loyalty.caller_is_hq()
    TO loyalty_view_owner, loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb,
       loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.mask_phone(text), loyalty.mask_name(text),
    loyalty.mask_email(text), loyalty.mask_last4(text), loyalty.mask_full(text),
    loyalty.mask_birth_year(date), loyalty.mask_birth_month_day(date),
    loyalty.mask_birth_decade(date) TO loyalty_view_owner;

-- Chain-wide member data: every row is readable through the views.
ALTER TABLE loyalty.member ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.member_profile ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.member_identity ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.member_tag ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.member_consent ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY chain_read ON loyalty.member FOR SELECT USING (true);
CREATE POLICY chain_read ON loyalty.member_profile FOR SELECT USING (true);
CREATE POLICY chain_read ON loyalty.member_identity FOR SELECT USING (true);
-- behaviour tags are chain-wide; their notes are store-scoped, see
-- loyalty.member_tags
CREATE POLICY chain_read ON loyalty.member_tag FOR SELECT USING (true);
CREATE POLICY chain_read ON loyalty.member_consent FOR SELECT USING (true);

-- Store-scoped rows.
ALTER TABLE loyalty.stay ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY store_scope ON loyalty.stay FOR SELECT
    USING (loyalty.store_visible(store_code));
ALTER TABLE loyalty.member_preference ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY store_scope ON loyalty.member_preference FOR SELECT
    USING (scope = 'chain' OR loyalty.store_visible(store_code));

GRANT SELECT ON loyalty.member, loyalty.member_profile, loyalty.member_identity,
    loyalty.member_tag, loyalty.member_consent, loyalty.stay, loyalty.member_preference,
    loyalty.store TO loyalty_view_owner;

-- _field_expr: the SQL expression for one field under one treatment, from a
-- fixed table of fragments (no input text reaches the generated SQL).
CREATE FUNCTION loyalty._field_expr(field text, treatment text) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN CASE treatment
        WHEN 'hide' THEN 'NULL::text'
        ELSE CASE field
            WHEN 'card_no' THEN CASE treatment
                WHEN 'show' THEN 'm.card_no' WHEN 'last4' THEN 'loyalty.mask_last4(m.card_no)'
                WHEN 'full' THEN 'loyalty.mask_full(m.card_no)' END
            WHEN 'full_name' THEN CASE treatment
                WHEN 'show' THEN 'p.full_name' WHEN 'name' THEN 'loyalty.mask_name(p.full_name)'
                WHEN 'full' THEN 'loyalty.mask_full(p.full_name)' END
            WHEN 'gender' THEN 'p.gender'
            WHEN 'birth_date' THEN CASE treatment
                WHEN 'show' THEN 'p.birth_date::text'
                WHEN 'year' THEN 'loyalty.mask_birth_year(p.birth_date)'
                WHEN 'month_day' THEN 'loyalty.mask_birth_month_day(p.birth_date)'
                WHEN 'decade' THEN 'loyalty.mask_birth_decade(p.birth_date)' END
            WHEN 'nationality' THEN 'p.nationality'
            WHEN 'phone' THEN CASE treatment
                WHEN 'show' THEN 'p.phone' WHEN 'phone' THEN 'loyalty.mask_phone(p.phone)'
                WHEN 'last4' THEN 'loyalty.mask_last4(p.phone)'
                WHEN 'full' THEN 'loyalty.mask_full(p.phone)' END
            WHEN 'email' THEN CASE treatment
                WHEN 'show' THEN 'p.email' WHEN 'email' THEN 'loyalty.mask_email(p.email)'
                WHEN 'full' THEN 'loyalty.mask_full(p.email)' END
            WHEN 'address' THEN CASE treatment
                WHEN 'show' THEN 'p.address' WHEN 'full' THEN 'loyalty.mask_full(p.address)' END
            WHEN 'id_number' THEN '(''****'' || i.id_number_last4)'
            WHEN 'bank_card' THEN '(''****'' || i.bank_card_last4)'
        END
    END;
REVOKE ALL ON FUNCTION loyalty._field_expr(text, text) FROM PUBLIC;

-- loyalty.regenerate_views(): (re)build loyalty.member_<department> for every
-- department of the field policy.  Every view has the same columns (the
-- policy-controlled ones as text, NULL when hidden), so CREATE OR REPLACE
-- keeps grants, ownership and the extension membership.
CREATE FUNCTION loyalty.regenerate_views() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dept text;
    cols text;
    n integer := 0;
    fields constant text[] := ARRAY['card_no', 'full_name', 'gender', 'birth_date',
        'nationality', 'phone', 'email', 'address', 'id_number', 'bank_card'];
BEGIN
    FOREACH dept IN ARRAY ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager',
                                'crm', 'marketing', 'dba'] LOOP
        SELECT string_agg(pg_catalog.format('%s AS %I',
                   loyalty._field_expr(f.field, coalesce(c.treatment, 'hide')), f.field),
                   ', ' ORDER BY f.ord)
          INTO cols
          FROM unnest(fields) WITH ORDINALITY AS f(field, ord)
          LEFT JOIN loyalty.field_policy_current c
                 ON c.department = dept AND c.field = f.field;
        EXECUTE pg_catalog.format(
            'CREATE OR REPLACE VIEW loyalty.%I WITH (security_barrier) AS '
            'SELECT m.member_id, m.status, m.home_store, m.tier, m.tier_valid_until, '
            'm.time_zone, %s '
            'FROM loyalty.member m '
            'LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id '
            'LEFT JOIN loyalty.member_identity i ON i.member_id = m.member_id',
            'member_' || dept, cols);
        EXECUTE pg_catalog.format('ALTER VIEW loyalty.%I OWNER TO loyalty_view_owner',
                                  'member_' || dept);
        EXECUTE pg_catalog.format('REVOKE ALL ON loyalty.%I FROM PUBLIC', 'member_' || dept);
        EXECUTE pg_catalog.format('GRANT SELECT ON loyalty.%I TO %I',
                                  'member_' || dept, 'loyalty_' || dept);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION loyalty.regenerate_views() IS
    'Rebuild the masked member views from the field policy (runs by itself when the policy changes)';

CREATE FUNCTION loyalty._field_policy_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.regenerate_views();
    RETURN NULL;
END
$$;
CREATE TRIGGER field_policy_regenerate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.field_policy
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._field_policy_changed();

-- loyalty.field_policy_set(department, field, treatment): change the policy;
-- the views follow in the same transaction.
CREATE FUNCTION loyalty.field_policy_set(department text, field text, treatment text)
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
END
$$;
COMMENT ON FUNCTION loyalty.field_policy_set(text, text, text) IS
    'Set how a department sees a member field; regenerates the masked views';

REVOKE ALL ON FUNCTION loyalty.regenerate_views(), loyalty._field_policy_changed(),
    loyalty.field_policy_set(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.regenerate_views(), loyalty.field_policy_set(text, text, text)
    TO loyalty_crm, loyalty_dba;

SELECT loyalty.regenerate_views();

-- Store-scoped and chain-wide side tables, through views owned by the same
-- role.  Preferences: chain-wide ones everywhere, store-only ones at their
-- store (row level security on member_preference).
CREATE VIEW loyalty.member_preferences WITH (security_barrier) AS
SELECT preference_id, member_id, category, value, scope, store_code, recorded_at
  FROM loyalty.member_preference
 WHERE retired_at IS NULL;
COMMENT ON VIEW loyalty.member_preferences IS
    'Current preferences: chain-wide ones, and store-only ones of the caller''s store (all for HQ)';

-- Behaviour tags are chain-wide; the free-text note is shown only at the
-- tagging store and at HQ.  (Risk tags, which freeze benefits, have their
-- own API with the same rule: loyalty.risk_tags(), docs/benefits.md.)
CREATE VIEW loyalty.member_tags WITH (security_barrier) AS
SELECT tag_id, member_id, code, store_code,
       CASE WHEN loyalty.store_visible(store_code) THEN note END AS note,
       tagged_at, retired_at
  FROM loyalty.member_tag;
COMMENT ON VIEW loyalty.member_tags IS
    'Behaviour tags; notes only at the tagging store and at HQ';

-- Stays: the caller's store's stays (all for HQ).
CREATE VIEW loyalty.stays WITH (security_barrier) AS
SELECT stay_id, member_id, store_code, check_in, check_out, rooms,
       room_revenue, other_revenue, status
  FROM loyalty.stay;
COMMENT ON VIEW loyalty.stays IS 'Stays at the caller''s store (every store for HQ)';

ALTER VIEW loyalty.member_preferences OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.member_tags OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.stays OWNER TO loyalty_view_owner;
REVOKE ALL ON loyalty.member_preferences, loyalty.member_tags, loyalty.stays FROM PUBLIC;
GRANT SELECT ON loyalty.member_preferences TO loyalty_frontdesk, loyalty_housekeeping,
    loyalty_fnb, loyalty_store_manager, loyalty_crm;
GRANT SELECT ON loyalty.member_tags TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;
GRANT SELECT ON loyalty.stays TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;

-- No temporary objects for anyone but superusers and roles granted TEMP
-- explicitly: a store role cannot plant a function in pg_temp.  This is a
-- database-wide setting (docs/threat-model.md); DROP EXTENSION leaves it.
DO $$
BEGIN
    EXECUTE pg_catalog.format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC',
                              pg_catalog.current_database());
END
$$;
