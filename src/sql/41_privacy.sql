-- Privacy and access (docs/privacy.md): the masks, in C.  Each takes the raw
-- value and returns text; a value too short for its mask comes back as
-- '****'.  They hold no secret and are granted to every department, because
-- a view's functions are called with the querying user's privileges.

CREATE FUNCTION loyalty.mask_phone(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_phone';
COMMENT ON FUNCTION loyalty.mask_phone(text) IS 'Phone mask: 13812345678 -> 138****5678';
CREATE FUNCTION loyalty.mask_name(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_name';
COMMENT ON FUNCTION loyalty.mask_name(text) IS 'Name mask: 张三 -> 张*';
CREATE FUNCTION loyalty.mask_email(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_email';
COMMENT ON FUNCTION loyalty.mask_email(text) IS 'Email mask: jane@example.com -> j***@example.com';
CREATE FUNCTION loyalty.mask_last4(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_last4';
COMMENT ON FUNCTION loyalty.mask_last4(text) IS 'Last-four mask: 6222021234567890 -> ****7890';
CREATE FUNCTION loyalty.mask_full(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_full';
COMMENT ON FUNCTION loyalty.mask_full(text) IS 'Full mask: anything -> ****';
CREATE FUNCTION loyalty.mask_birth_year(date) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_birth_year';
COMMENT ON FUNCTION loyalty.mask_birth_year(date) IS 'Birth date generalised to its year: 1988';
CREATE FUNCTION loyalty.mask_birth_month_day(date) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_birth_month_day';
COMMENT ON FUNCTION loyalty.mask_birth_month_day(date) IS 'Birth date without the year, for birthday service: 03-14';
CREATE FUNCTION loyalty.mask_birth_decade(date) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_birth_decade';
COMMENT ON FUNCTION loyalty.mask_birth_decade(date) IS 'Birth date generalised to its decade: 1980s';

REVOKE ALL ON FUNCTION loyalty.mask_phone(text), loyalty.mask_name(text),
    loyalty.mask_email(text), loyalty.mask_last4(text), loyalty.mask_full(text),
    loyalty.mask_birth_year(date), loyalty.mask_birth_month_day(date),
    loyalty.mask_birth_decade(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.mask_phone(text), loyalty.mask_name(text),
    loyalty.mask_email(text), loyalty.mask_last4(text), loyalty.mask_full(text),
    loyalty.mask_birth_year(date), loyalty.mask_birth_month_day(date),
    loyalty.mask_birth_decade(date)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba;

-- The field policy: for each department and member field, how the field is
-- shown.  Append-only history; the latest row per (department, field) is in
-- effect.  The shipped defaults take effect from -infinity and are not
-- dumped (the extension recreates them); later rows are user data.

CREATE FUNCTION loyalty.field_treatments(field text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE field
        WHEN 'card_no'     THEN '{show,last4,full,hide}'::text[]
        WHEN 'full_name'   THEN '{show,name,full,hide}'::text[]
        WHEN 'gender'      THEN '{show,hide}'::text[]
        WHEN 'birth_date'  THEN '{show,year,month_day,decade,hide}'::text[]
        WHEN 'nationality' THEN '{show,hide}'::text[]
        WHEN 'phone'       THEN '{show,phone,last4,full,hide}'::text[]
        WHEN 'email'       THEN '{show,email,full,hide}'::text[]
        WHEN 'address'     THEN '{show,full,hide}'::text[]
        -- stored encrypted: never shown, at most the last four characters
        WHEN 'id_number'   THEN '{last4,hide}'::text[]
        WHEN 'bank_card'   THEN '{last4,hide}'::text[]
    END;
COMMENT ON FUNCTION loyalty.field_treatments(text) IS
    'The treatments the field policy allows for a member field (NULL: no such field)';

CREATE TABLE loyalty.field_policy (
    department  text NOT NULL
        CONSTRAINT field_policy_department_valid CHECK (department IN
            ('frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm', 'marketing', 'dba')),
    field       text NOT NULL
        CONSTRAINT field_policy_field_valid CHECK (loyalty.field_treatments(field) IS NOT NULL),
    treatment   text NOT NULL,
    set_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    set_by      name NOT NULL DEFAULT session_user,
    CONSTRAINT field_policy_treatment_allowed
        CHECK (coalesce(treatment = ANY (loyalty.field_treatments(field)), false)),
    PRIMARY KEY (department, field, set_at)
);
COMMENT ON TABLE loyalty.field_policy IS
    'Per department and member field: show, a named mask, or hide (latest row wins)';
SELECT pg_catalog.pg_extension_config_dump('loyalty.field_policy', $$WHERE set_at <> '-infinity'$$);

INSERT INTO loyalty.field_policy (department, field, treatment, set_at, set_by)
SELECT d, f, t, '-infinity', 'loyalty'
  FROM (VALUES
    -- front desk: identifies the guest, sees contact data masked
    ('frontdesk', 'card_no', 'show'), ('frontdesk', 'full_name', 'name'),
    ('frontdesk', 'gender', 'show'), ('frontdesk', 'birth_date', 'month_day'),
    ('frontdesk', 'nationality', 'show'), ('frontdesk', 'phone', 'phone'),
    ('frontdesk', 'email', 'email'), ('frontdesk', 'address', 'hide'),
    ('frontdesk', 'id_number', 'last4'), ('frontdesk', 'bank_card', 'hide'),
    -- housekeeping: who is in the room, nothing to contact them with
    ('housekeeping', 'card_no', 'last4'), ('housekeeping', 'full_name', 'name'),
    ('housekeeping', 'gender', 'hide'), ('housekeeping', 'birth_date', 'hide'),
    ('housekeeping', 'nationality', 'hide'), ('housekeeping', 'phone', 'hide'),
    ('housekeeping', 'email', 'hide'), ('housekeeping', 'address', 'hide'),
    ('housekeeping', 'id_number', 'hide'), ('housekeeping', 'bank_card', 'hide'),
    -- F&B: the guest's name and birthday for service
    ('fnb', 'card_no', 'last4'), ('fnb', 'full_name', 'name'),
    ('fnb', 'gender', 'hide'), ('fnb', 'birth_date', 'month_day'),
    ('fnb', 'nationality', 'hide'), ('fnb', 'phone', 'hide'),
    ('fnb', 'email', 'hide'), ('fnb', 'address', 'hide'),
    ('fnb', 'id_number', 'hide'), ('fnb', 'bank_card', 'hide'),
    -- store manager: like the front desk, plus the birth year
    ('store_manager', 'card_no', 'show'), ('store_manager', 'full_name', 'name'),
    ('store_manager', 'gender', 'show'), ('store_manager', 'birth_date', 'year'),
    ('store_manager', 'nationality', 'show'), ('store_manager', 'phone', 'phone'),
    ('store_manager', 'email', 'email'), ('store_manager', 'address', 'hide'),
    ('store_manager', 'id_number', 'last4'), ('store_manager', 'bank_card', 'hide'),
    -- HQ CRM: the member's whole profile, sensitive data as last four only
    ('crm', 'card_no', 'show'), ('crm', 'full_name', 'show'),
    ('crm', 'gender', 'show'), ('crm', 'birth_date', 'show'),
    ('crm', 'nationality', 'show'), ('crm', 'phone', 'show'),
    ('crm', 'email', 'show'), ('crm', 'address', 'show'),
    ('crm', 'id_number', 'last4'), ('crm', 'bank_card', 'last4'),
    -- marketing: segments and campaigns, contact data masked
    ('marketing', 'card_no', 'last4'), ('marketing', 'full_name', 'name'),
    ('marketing', 'gender', 'show'), ('marketing', 'birth_date', 'month_day'),
    ('marketing', 'nationality', 'show'), ('marketing', 'phone', 'phone'),
    ('marketing', 'email', 'email'), ('marketing', 'address', 'hide'),
    ('marketing', 'id_number', 'hide'), ('marketing', 'bank_card', 'hide'),
    -- DBAs run the system, they do not read personal data
    ('dba', 'card_no', 'last4'), ('dba', 'full_name', 'full'),
    ('dba', 'gender', 'hide'), ('dba', 'birth_date', 'hide'),
    ('dba', 'nationality', 'hide'), ('dba', 'phone', 'full'),
    ('dba', 'email', 'full'), ('dba', 'address', 'hide'),
    ('dba', 'id_number', 'hide'), ('dba', 'bank_card', 'hide')
  ) AS v(d, f, t);

-- the policy in effect
CREATE VIEW loyalty.field_policy_current AS
SELECT DISTINCT ON (department, field) department, field, treatment, set_at, set_by
  FROM loyalty.field_policy
 ORDER BY department, field, set_at DESC;
COMMENT ON VIEW loyalty.field_policy_current IS 'The field policy in effect: one row per department and field';

REVOKE ALL ON loyalty.field_policy, loyalty.field_policy_current FROM PUBLIC;
REVOKE ALL ON FUNCTION loyalty.field_treatments(text) FROM PUBLIC;
GRANT SELECT ON loyalty.field_policy_current TO loyalty_crm, loyalty_dba, loyalty_store_manager;
GRANT EXECUTE ON FUNCTION loyalty.field_treatments(text) TO loyalty_crm, loyalty_dba;
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

-- What a store may reach (src/privacy_lookup.c, issue 12.1): store views
-- list the members enrolled at the caller's store, those with a stay or
-- booking there, and those the caller's lookups found in this transaction.
CREATE FUNCTION loyalty._member_in_reach(member_id uuid, home_store text) RETURNS boolean
    LANGUAGE c STABLE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'loyalty_member_in_reach';
COMMENT ON FUNCTION loyalty._member_in_reach(uuid, text) IS
    'Store views: true for HQ, for members enrolled at the caller''s store and for members its lookups found in this transaction';
REVOKE ALL ON FUNCTION loyalty._member_in_reach(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._member_in_reach(uuid, text)
    TO loyalty_view_owner, loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb,
       loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba;

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

-- loyalty.views_regenerate(): (re)build loyalty.member_<department> for every
-- department of the field policy.  Every view has the same columns (the
-- policy-controlled ones as text, NULL when hidden), so CREATE OR REPLACE
-- keeps grants, ownership and the extension membership.
CREATE FUNCTION loyalty.views_regenerate() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dept text;
    cols text;
    n integer := 0;
    fields constant text[] := ARRAY['card_no', 'full_name', 'gender', 'birth_date',
        'nationality', 'phone', 'email', 'address', 'id_number', 'bank_card'];
    -- the member's consent in effect for a purpose (latest decision)
    consented constant text := 'coalesce((SELECT k.granted FROM loyalty.member_consent k '
        'WHERE k.member_id = m.member_id AND k.purpose = %L '
        'ORDER BY k.recorded_at DESC, k.consent_id LIMIT 1), false)';
BEGIN
    FOREACH dept IN ARRAY ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager',
                                'crm', 'marketing', 'dba'] LOOP
        -- marketing sees a contact field only where the member consented
        -- to that channel (issue 12.5)
        SELECT string_agg(pg_catalog.format(
                   CASE WHEN dept = 'marketing' AND f.field IN ('phone', 'email')
                        THEN 'CASE WHEN ' || pg_catalog.format(consented,
                                 CASE f.field WHEN 'phone' THEN 'marketing_sms' ELSE 'marketing_email' END)
                             || ' THEN %s END AS %I'
                        ELSE '%s AS %I' END,
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
            'LEFT JOIN loyalty.member_identity i ON i.member_id = m.member_id%s',
            'member_' || dept, cols,
            -- store departments: only members the store has a reason to see
            CASE WHEN dept IN ('frontdesk', 'housekeeping', 'fnb', 'store_manager') THEN
                ' WHERE (loyalty._member_in_reach(m.member_id, m.home_store) OR EXISTS ('
                'SELECT 1 FROM loyalty.stay s WHERE s.member_id = m.member_id '
                'AND s.store_code = loyalty.caller_store()))'
            -- marketing: only members who consented to a marketing channel
            WHEN dept = 'marketing' THEN
                ' WHERE (' || pg_catalog.format(consented, 'marketing_email')
                || ' OR ' || pg_catalog.format(consented, 'marketing_sms') || ')'
            ELSE '' END);
        EXECUTE pg_catalog.format('ALTER VIEW loyalty.%I OWNER TO loyalty_view_owner',
                                  'member_' || dept);
        EXECUTE pg_catalog.format('REVOKE ALL ON loyalty.%I FROM PUBLIC', 'member_' || dept);
        EXECUTE pg_catalog.format('GRANT SELECT ON loyalty.%I TO %I',
                                  'member_' || dept, 'loyalty_' || dept);
        n := n + 1;
    END LOOP;
    -- a call of its own is recorded; the rebuild the field policy's trigger
    -- runs is not (the change that fired it is: field_policy_set; and a
    -- restore's COPY into field_policy is data, not a change)
    IF pg_catalog.pg_trigger_depth() = 0 THEN
        PERFORM loyalty._audit_change(NULL, 'views_regenerate', 'privacy',
            pg_catalog.jsonb_build_object('views', n));
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION loyalty.views_regenerate() IS
    'Rebuild the masked member views from the field policy (runs by itself when the policy changes)';

CREATE FUNCTION loyalty._field_policy_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.views_regenerate();
    RETURN NULL;
END
$$;
CREATE TRIGGER field_policy_regenerate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.field_policy
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._field_policy_changed();

-- _field_treatment_rank(treatment): how much of a field a treatment shows,
-- to tell widening from narrowing: hide 0, full mask 1, a partial mask 2,
-- show 3 (NULL, no policy yet: 0).
CREATE FUNCTION loyalty._field_treatment_rank(treatment text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN treatment IS NULL OR treatment = 'hide' THEN 0
                WHEN treatment = 'full' THEN 1 WHEN treatment = 'show' THEN 3 ELSE 2 END;
REVOKE ALL ON FUNCTION loyalty._field_treatment_rank(text) FROM PUBLIC;

-- loyalty.field_policy_set(department, field, treatment): change the policy;
-- the views follow in the same transaction.
CREATE FUNCTION loyalty.field_policy_set(department text, field text, treatment text)
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

REVOKE ALL ON FUNCTION loyalty.views_regenerate(), loyalty._field_policy_changed(),
    loyalty.field_policy_set(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.views_regenerate(), loyalty.field_policy_set(text, text, text)
    TO loyalty_crm, loyalty_dba;

SELECT loyalty.views_regenerate();
-- the department views keep these comments when views_regenerate() replaces them
COMMENT ON VIEW loyalty.member_frontdesk IS 'Members as front desks see them: fields masked or hidden by the field policy; rows by row level security and by reach: a stay, booking or enrolment at the store, or a lookup of this transaction';
COMMENT ON VIEW loyalty.member_housekeeping IS 'Members as housekeeping sees them: fields masked or hidden by the field policy; rows by row level security and by reach: a stay, booking or enrolment at the store, or a lookup of this transaction';
COMMENT ON VIEW loyalty.member_fnb IS 'Members as F&B sees them: fields masked or hidden by the field policy; rows by row level security and by reach: a stay, booking or enrolment at the store, or a lookup of this transaction';
COMMENT ON VIEW loyalty.member_store_manager IS 'Members as store managers see them: fields masked or hidden by the field policy; rows by row level security and by reach: a stay, booking or enrolment at the store, or a lookup of this transaction';
COMMENT ON VIEW loyalty.member_crm IS 'Members as HQ CRM sees them: fields as the field policy grants CRM';
COMMENT ON VIEW loyalty.member_marketing IS 'Members as HQ marketing sees them: fields masked or hidden by the field policy';
COMMENT ON VIEW loyalty.member_dba IS 'Members as HQ DBAs see them: fields masked or hidden by the field policy';

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

-- Store, BI and marketing roles create no temporary objects: the event
-- trigger of src/sql/61_install.sql refuses them (1.0 and 1.1 revoked TEMP
-- from PUBLIC on the whole database instead).
-- API functions for applications (docs/privacy.md): SECURITY DEFINER, fixed
-- search_path, the caller's store and department from role membership,
-- results in the caller's department view, every access audited before the
-- result is returned.  A member that does not exist and one out of reach
-- (erased) give the same error.

-- _not_found: the one error for "no such member" and "not yours to see".
CREATE FUNCTION loyalty._member_not_found() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'member not found' USING ERRCODE = 'no_data_found';
END
$$;

-- _visible_fields: the fields a department's view shows (not hidden).
CREATE FUNCTION loyalty._visible_fields(department text) RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT coalesce(array_agg(c.field ORDER BY c.field), '{}')
      FROM loyalty.field_policy_current c
     WHERE c.department = _visible_fields.department AND c.treatment <> 'hide';
END;

-- loyalty.frontdesk_lookup(key, purpose): the member with this exact card
-- number; rows of loyalty.member_frontdesk.
CREATE FUNCTION loyalty.frontdesk_lookup(key text, purpose text DEFAULT 'check_in')
    RETURNS SETOF loyalty.member_frontdesk
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids uuid[];
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm']);
    IF key IS NULL OR btrim(key) = '' THEN
        RAISE EXCEPTION 'lookup key must not be empty' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF length(key) > 32 THEN
        RAISE EXCEPTION 'lookup key is longer than 32 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF NOT loyalty.card_number_valid(key) THEN
        RAISE EXCEPTION 'lookup key is not a card number'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A card number has 12 digits with a check digit.',
                  HINT = 'To find a guest by phone, use loyalty.frontdesk_lookup_phone(phone, surname).';
    END IF;
    PERFORM loyalty._lookup_budget_spend(purpose);
    -- a merged duplicate's card finds the survivor (loyalty.card_resolve)
    SELECT array_agg(DISTINCT coalesce(m.merged_into, m.member_id)) INTO ids
      FROM loyalty.member m WHERE m.card_no = key AND m.status <> 'erased';
    PERFORM loyalty._lookup_finish(ids, '{card_no}', purpose);
    RETURN QUERY SELECT v.* FROM loyalty.member_frontdesk v WHERE v.member_id = ANY (ids)
                  ORDER BY v.member_id;
END
$$;
COMMENT ON FUNCTION loyalty.frontdesk_lookup(text, text) IS
    'Front desk: the member with this exact card number, masked for the front desk; budgeted; audited, misses too';

-- loyalty.housekeeping_profile(member_id, purpose): the housekeeping view of
-- a member and the preferences the caller's store may see, as jsonb.
CREATE FUNCTION loyalty.housekeeping_profile(member_id uuid, purpose text DEFAULT 'room_preparation')
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result jsonb;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['housekeeping', 'store_manager', 'crm']);
    SELECT pg_catalog.to_jsonb(v) INTO result
      FROM loyalty.member_housekeeping v
     WHERE v.member_id = housekeeping_profile.member_id AND v.status <> 'erased';
    IF result IS NULL THEN
        PERFORM loyalty._member_not_found();
    END IF;
    PERFORM loyalty._audit(member_id, 'profile',
        loyalty._visible_fields('housekeeping') || '{preferences}'::text[], purpose);
    RETURN pg_catalog.jsonb_strip_nulls(result) || pg_catalog.jsonb_build_object('preferences',
        (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                    'category', p.category, 'value', p.value, 'scope', p.scope,
                    'store_code', p.store_code, 'recorded_at', p.recorded_at)
                  ORDER BY p.category, p.recorded_at), '[]')
           FROM loyalty.member_preferences p
          WHERE p.member_id = housekeeping_profile.member_id));
END
$$;
COMMENT ON FUNCTION loyalty.housekeeping_profile(uuid, text) IS
    'Housekeeping: a member''s masked profile and the preferences the caller''s store may see; audited';

-- loyalty.preferences(member_id): the member's current preferences the
-- caller's store may see.
CREATE FUNCTION loyalty.preferences(member_id uuid)
    RETURNS SETOF loyalty.member_preferences
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm']);
    -- a store: only members in reach (enrolled, stayed or booked there, or
    -- found by this transaction's lookup; issue 12.1)
    IF NOT loyalty._member_reachable(preferences.member_id) THEN
        PERFORM loyalty._member_not_found();
    END IF;
    RETURN QUERY SELECT p.* FROM loyalty.member_preferences p
                  WHERE p.member_id = preferences.member_id
                  ORDER BY p.category, p.recorded_at;
END
$$;
COMMENT ON FUNCTION loyalty.preferences(uuid) IS
    'Current preferences of a member: chain-wide ones and the caller''s store''s own';

-- loyalty.preference_add(member_id, category, value, scope, store_code):
-- record a preference at the caller's store (HQ names the store).
CREATE FUNCTION loyalty.preference_add(member_id uuid, category text, value text,
    scope text DEFAULT 'chain', store_code text DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    store text := coalesce(store_code, loyalty.caller_store());
    id uuid;
BEGIN
    PERFORM loyalty._check_access(store, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm']);
    IF store IS NULL THEN
        RAISE EXCEPTION 'store_code is required for HQ callers' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF member_id IS NULL OR category IS NULL OR value IS NULL OR scope IS NULL THEN
        RAISE EXCEPTION 'member_id, category, value and scope must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF scope NOT IN ('chain', 'store') THEN
        RAISE EXCEPTION 'invalid preference scope "%"', scope
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use "chain" or "store".';
    END IF;
    IF category NOT IN ('pillow', 'allergy', 'floor', 'lighting', 'bed', 'crib',
                        'smoking', 'room', 'dining', 'other') THEN
        RAISE EXCEPTION 'invalid preference category "%"', category
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Categories are pillow, allergy, floor, lighting, bed, crib, smoking, room, dining and other.';
    END IF;
    IF btrim(value) = '' OR length(value) > 200 THEN
        RAISE EXCEPTION 'preference value must be 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT loyalty._member_reachable(preference_add.member_id) THEN
        PERFORM loyalty._member_not_found();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.store s WHERE s.store_code = store) THEN
        RAISE EXCEPTION 'store "%" does not exist', store USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO loyalty.member_preference (member_id, category, value, scope, store_code)
        VALUES (preference_add.member_id, category, value, scope, store)
        RETURNING preference_id INTO id;
    PERFORM loyalty._audit(member_id, 'preference_add', ARRAY['preferences'], category);
    RETURN id;
END
$$;
COMMENT ON FUNCTION loyalty.preference_add(uuid, text, text, text, text) IS
    'Record a guest preference, chain-wide or store-only, at the caller''s store; audited';

-- loyalty.preference_retire(preference_id): retire a preference the caller
-- may see (a store-only one at its own store only).
CREATE FUNCTION loyalty.preference_retire(preference_id uuid)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    member uuid;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm']);
    SELECT p.member_id INTO member FROM loyalty.member_preference p
     WHERE p.preference_id = preference_retire.preference_id AND p.retired_at IS NULL
       AND (p.scope = 'chain' OR loyalty.store_visible(p.store_code))
     FOR UPDATE;
    IF member IS NULL THEN
        RAISE EXCEPTION 'preference not found' USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE loyalty.member_preference p SET retired_at = now()
     WHERE p.preference_id = preference_retire.preference_id;
    PERFORM loyalty._audit(member, 'preference_retire', ARRAY['preferences'], NULL);
END
$$;
COMMENT ON FUNCTION loyalty.preference_retire(uuid) IS 'Retire a guest preference; audited';

REVOKE ALL ON FUNCTION loyalty._member_not_found(), loyalty._visible_fields(text),
    loyalty.frontdesk_lookup(text, text), loyalty.housekeeping_profile(uuid, text),
    loyalty.preferences(uuid), loyalty.preference_add(uuid, text, text, text, text),
    loyalty.preference_retire(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.frontdesk_lookup(text, text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.housekeeping_profile(uuid, text)
    TO loyalty_housekeeping, loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.preferences(uuid), loyalty.preference_add(uuid, text, text, text, text),
    loyalty.preference_retire(uuid)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_crm;
-- Sensitive identity data at rest (docs/privacy.md): ID numbers and bank
-- cards are stored encrypted (AES-256-GCM), with a keyed blind index for
-- lookup and uniqueness and the last four characters for display.  The key
-- is the file loyalty.key_file names, outside the data directory, checked
-- against the fingerprint the database records (43_privacy_key.sql); never
-- in SQL, settings or logs.  Stores verify ("does this ID match the member") instead of
-- decrypting; nobody but the export function decrypts.

CREATE FUNCTION loyalty._identity_seal(member_id uuid, kind text, value text) RETURNS bytea
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'loyalty_identity_seal';
CREATE FUNCTION loyalty._identity_open(member_id uuid, kind text, sealed bytea) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'loyalty_identity_open';
CREATE FUNCTION loyalty._blind_index(kind text, value text) RETURNS bytea
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_blind_index';
CREATE FUNCTION loyalty._normalise_identifier(value text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_normalise_identifier';
-- loyalty.pseudonym(member_id), the BI key, is in 47_privacy_bi.sql (since
-- 1.2 it is re-keyed by erasure).

-- Lookup by blind index.  Not unique (since 1.2): a store storing an ID
-- number or bank card that another member already has is not told so (that
-- answer was an oracle, issue 12.1); the clash goes to
-- loyalty.identity_conflict (src/sql/46_privacy_lookup.sql) for HQ CRM.
CREATE INDEX member_identity_id_number_idx ON loyalty.member_identity (id_number_index);
CREATE INDEX member_identity_bank_card_idx ON loyalty.member_identity (bank_card_index);

-- loyalty.identity_set(member_id, id_type, id_number, bank_card): store or
-- replace a member's ID number and bank card (NULL keeps the current one).
CREATE FUNCTION loyalty.identity_set(member_id uuid, id_type text, id_number text,
    bank_card text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idn text := loyalty._normalise_identifier(id_number);
    card text := loyalty._normalise_identifier(bank_card);
    changed text[] := '{}';
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm']);
    IF member_id IS NULL THEN
        RAISE EXCEPTION 'member_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT loyalty._member_reachable(identity_set.member_id) THEN
        PERFORM loyalty._member_not_found();
    END IF;
    IF idn IS NOT NULL AND idn !~ '^[0-9A-Z]{5,32}$' THEN
        -- the value itself is never echoed: it would land in logs
        RAISE EXCEPTION 'invalid ID number'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'An ID number is 5 to 32 letters and digits.';
    END IF;
    IF idn IS NOT NULL AND (id_type IS NULL OR id_type NOT IN
            ('resident_id', 'passport', 'hk_macau_permit', 'taiwan_permit', 'other')) THEN
        RAISE EXCEPTION 'invalid ID type'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'ID types are resident_id, passport, hk_macau_permit, taiwan_permit and other.';
    END IF;
    IF card IS NOT NULL AND card !~ '^[0-9]{12,19}$' THEN
        RAISE EXCEPTION 'invalid bank card number'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A bank card number is 12 to 19 digits.';
    END IF;
    IF idn IS NULL AND card IS NULL THEN
        RAISE EXCEPTION 'nothing to store' USING ERRCODE = 'null_value_not_allowed',
              HINT = 'Give an ID number, a bank card number, or both.';
    END IF;
    -- one call per number at a time: two desks storing the same number at
    -- once wait for each other, so the second sees the first and the clash
    -- is recorded (READ COMMITTED: each statement sees what committed)
    IF idn IS NOT NULL THEN
        PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(
            'loyalty.id_number ' || pg_catalog.encode(loyalty._blind_index('id_number', idn), 'hex'), 0));
    END IF;
    IF card IS NOT NULL THEN
        PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(
            'loyalty.bank_card ' || pg_catalog.encode(loyalty._blind_index('bank_card', card), 'hex'), 0));
    END IF;
    -- the same answer whether or not another member has the number: a clash
    -- is recorded for HQ, never told to the caller
    INSERT INTO loyalty.identity_conflict (kind, member_id, other_member_id, store_code)
    SELECT 'id_number', identity_set.member_id, i.member_id, loyalty.caller_store()
      FROM loyalty.member_identity i
     WHERE idn IS NOT NULL AND i.id_number_index = loyalty._blind_index('id_number', idn)
       AND i.member_id <> identity_set.member_id
    UNION ALL
    SELECT 'bank_card', identity_set.member_id, i.member_id, loyalty.caller_store()
      FROM loyalty.member_identity i
     WHERE card IS NOT NULL AND i.bank_card_index = loyalty._blind_index('bank_card', card)
       AND i.member_id <> identity_set.member_id;
    INSERT INTO loyalty.member_identity AS i (member_id) VALUES (identity_set.member_id)
        ON CONFLICT ON CONSTRAINT member_identity_pkey DO NOTHING;
    IF idn IS NOT NULL THEN
        UPDATE loyalty.member_identity i
           SET id_type = identity_set.id_type,
               id_number_cipher = loyalty._identity_seal(i.member_id, 'id_number', idn),
               id_number_index = loyalty._blind_index('id_number', idn),
               -- at most a third of the number (issue 12.9)
               id_number_last4 = right(idn, least(4, length(idn) / 3))
         WHERE i.member_id = identity_set.member_id;
        changed := changed || '{id_number}'::text[];
    END IF;
    IF card IS NOT NULL THEN
        UPDATE loyalty.member_identity i
           SET bank_card_cipher = loyalty._identity_seal(i.member_id, 'bank_card', card),
               bank_card_index = loyalty._blind_index('bank_card', card),
               bank_card_last4 = right(card, 4)
         WHERE i.member_id = identity_set.member_id;
        changed := changed || '{bank_card}'::text[];
    END IF;
    PERFORM loyalty._audit(member_id, 'identity_set', changed, NULL);
END
$$;
COMMENT ON FUNCTION loyalty.identity_set(uuid, text, text, text) IS
    'Store a member''s ID number and/or bank card encrypted, with blind index and last four; audited';

-- loyalty.identity_matches(member_id, id_number): does this ID number belong
-- to this member?  Verification without decryption; audited.
CREATE FUNCTION loyalty.identity_matches(member_id uuid, id_number text,
    purpose text DEFAULT 'check_in')
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stored bytea;
    matched boolean;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm']);
    IF id_number IS NULL THEN
        RAISE EXCEPTION 'id_number must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT loyalty._member_reachable(identity_matches.member_id) THEN
        PERFORM loyalty._member_not_found();
    END IF;
    -- budgeted like lookups, and a member's number cannot be guessed: after
    -- loyalty.verify_failures wrong numbers in 24 hours (from any login)
    -- verification of that member is refused
    PERFORM loyalty._lookup_budget_spend(purpose);
    IF loyalty._audit_recent(NULL, member_id, '{verify_id_miss}', interval '24 hours')
       >= loyalty._privacy_setting('verify_failures') THEN
        PERFORM loyalty._audit(member_id, 'verify_id_refused', '{id_number}', left(purpose, 200));
        RAISE EXCEPTION 'too many failed ID verifications for this member'
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Check the guest''s document by eye; HQ can see the attempts in the audit trail.';
    END IF;
    SELECT i.id_number_index INTO stored FROM loyalty.member_identity i
     WHERE i.member_id = identity_matches.member_id;
    matched := coalesce(stored = loyalty._blind_index('id_number', id_number), false);
    PERFORM loyalty._audit(member_id, CASE WHEN matched THEN 'verify_id' ELSE 'verify_id_miss' END,
                           '{id_number}', left(purpose, 200));
    -- this verification counted: refused if another session spent the
    -- last unit first (46_privacy_lookup.sql)
    PERFORM loyalty._lookup_budget_settle(purpose);
    RETURN matched;
END
$$;
COMMENT ON FUNCTION loyalty.identity_matches(uuid, text, text) IS
    'Verify that an ID number belongs to a member, without revealing it; audited';

REVOKE ALL ON FUNCTION loyalty._identity_seal(uuid, text, text), loyalty._identity_open(uuid, text, bytea),
    loyalty._blind_index(text, text), loyalty._normalise_identifier(text),
    loyalty.identity_set(uuid, text, text, text), loyalty.identity_matches(uuid, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.identity_set(uuid, text, text, text),
    loyalty.identity_matches(uuid, text, text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;
-- Privacy operations (docs/privacy.md): consents, export of one member,
-- erasure by pseudonymisation, retention purge with a dry run.  Every call
-- is audited.

-- loyalty.consent_record(member_id, purpose, granted, notice_version,
-- store_code): record what a member agreed to (or withdrew), where and
-- under which notice.  The latest row per purpose is in effect.
CREATE FUNCTION loyalty.consent_record(member_id uuid, purpose text, granted boolean,
    notice_version text, store_code text DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    store text := coalesce(store_code, loyalty.caller_store());
    id uuid;
BEGIN
    PERFORM loyalty._check_access(store, ARRAY['frontdesk', 'store_manager', 'crm']);
    IF member_id IS NULL OR purpose IS NULL OR granted IS NULL OR notice_version IS NULL THEN
        RAISE EXCEPTION 'member_id, purpose, granted and notice_version must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF purpose NOT IN ('marketing_email', 'marketing_sms', 'profiling', 'cross_border', 'third_party') THEN
        RAISE EXCEPTION 'invalid consent purpose "%"', purpose
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Purposes are marketing_email, marketing_sms, profiling, cross_border and third_party.';
    END IF;
    IF length(notice_version) NOT BETWEEN 1 AND 50 THEN
        RAISE EXCEPTION 'notice_version must be 1 to 50 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.member m
                    WHERE m.member_id = consent_record.member_id AND m.status <> 'erased') THEN
        PERFORM loyalty._member_not_found();
    END IF;
    -- the clock, not the transaction's start: a grant and a withdrawal in
    -- one transaction must stay in order ("latest row wins" decides who is
    -- in the marketing and BI views)
    INSERT INTO loyalty.member_consent (member_id, purpose, granted, notice_version, store_code, recorded_at)
        VALUES (consent_record.member_id, purpose, granted, notice_version, store,
                pg_catalog.clock_timestamp())
        RETURNING consent_id INTO id;
    PERFORM loyalty._audit(member_id, 'consent_record', ARRAY['consent:' || purpose], notice_version);
    RETURN id;
END
$$;
COMMENT ON FUNCTION loyalty.consent_record(uuid, text, boolean, text, text) IS
    'Record a member''s consent (or withdrawal) for a purpose under a notice version; audited';

-- The consents in effect: the latest row per member and purpose.
CREATE VIEW loyalty.member_consents WITH (security_barrier) AS
SELECT DISTINCT ON (member_id, purpose)
       member_id, purpose, granted, notice_version, store_code, recorded_at
  FROM loyalty.member_consent
 ORDER BY member_id, purpose, recorded_at DESC, consent_id;
COMMENT ON VIEW loyalty.member_consents IS 'Consents in effect: latest decision per member and purpose';
ALTER VIEW loyalty.member_consents OWNER TO loyalty_view_owner;
REVOKE ALL ON loyalty.member_consents FROM PUBLIC;
GRANT SELECT ON loyalty.member_consents TO loyalty_frontdesk, loyalty_store_manager,
    loyalty_crm, loyalty_marketing;

-- loyalty.marketing_contacts(channel, purpose): the unmasked contact of every
-- active member whose consent in effect covers the channel (issue 12.5);
-- each member's read is audited as contact_read with the purpose.
CREATE FUNCTION loyalty.marketing_contacts(channel text, purpose text)
    RETURNS TABLE (member_id uuid, full_name text, contact text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    consent text;
    field text;
    r record;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['marketing', 'crm']);
    IF channel IS NULL OR purpose IS NULL OR btrim(purpose) = '' THEN
        RAISE EXCEPTION 'channel and purpose must not be empty' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF channel NOT IN ('email', 'sms') THEN
        RAISE EXCEPTION 'invalid channel "%"', channel
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use "email" or "sms".';
    END IF;
    IF length(purpose) > 200 THEN
        RAISE EXCEPTION 'purpose is longer than 200 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    consent := 'marketing_' || channel;
    field := CASE channel WHEN 'email' THEN 'email' ELSE 'phone' END;
    FOR r IN
        SELECT m.member_id, p.full_name,
               CASE channel WHEN 'email' THEN p.email ELSE p.phone END AS contact
          FROM loyalty.member m
          JOIN loyalty.member_profile p ON p.member_id = m.member_id
          JOIN loyalty.member_consents k ON k.member_id = m.member_id AND k.purpose = consent
         WHERE m.status = 'active' AND k.granted
           AND CASE channel WHEN 'email' THEN p.email ELSE p.phone END IS NOT NULL
         ORDER BY m.member_id
    LOOP
        PERFORM loyalty._audit(r.member_id, 'contact_read', ARRAY['full_name', field], purpose);
        member_id := r.member_id;
        full_name := r.full_name;
        contact := r.contact;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION loyalty.marketing_contacts(text, text) IS
    'Marketing: unmasked email or phone of the members who consented to that channel; each read audited with the purpose';
REVOKE ALL ON FUNCTION loyalty.marketing_contacts(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.marketing_contacts(text, text) TO loyalty_marketing, loyalty_crm;

-- loyalty.member_export(member_id): everything held about one member, as
-- jsonb, for a data subject's access request (HQ CRM only; audited).  The
-- ID number and bank card are decrypted here and nowhere else.
CREATE FUNCTION loyalty.member_export(member_id uuid, purpose text DEFAULT 'subject_access_request')
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result jsonb;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm']);
    SELECT pg_catalog.jsonb_build_object(
        'member', pg_catalog.to_jsonb(m),
        'profile', (SELECT pg_catalog.to_jsonb(p) FROM loyalty.member_profile p WHERE p.member_id = m.member_id),
        'identity', (SELECT pg_catalog.jsonb_build_object(
                         'id_type', i.id_type,
                         'id_number', CASE WHEN i.id_number_cipher IS NOT NULL
                             THEN loyalty._identity_open(i.member_id, 'id_number', i.id_number_cipher) END,
                         'bank_card', CASE WHEN i.bank_card_cipher IS NOT NULL
                             THEN loyalty._identity_open(i.member_id, 'bank_card', i.bank_card_cipher) END)
                       FROM loyalty.member_identity i WHERE i.member_id = m.member_id),
        'preferences', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.recorded_at), '[]')
                          FROM loyalty.member_preference x WHERE x.member_id = m.member_id),
        'tags', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.tagged_at), '[]')
                   FROM loyalty.member_tag x WHERE x.member_id = m.member_id),
        'risk_tags', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.raised_at), '[]')
                        FROM loyalty.risk_tag x WHERE x.member_id = m.member_id),
        'stays', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.check_in), '[]')
                    FROM loyalty.stay x WHERE x.member_id = m.member_id),
        'consents', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.recorded_at), '[]')
                       FROM loyalty.member_consent x WHERE x.member_id = m.member_id),
        'accesses', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                               'at', a.at, 'store_code', a.store_code, 'department', a.department,
                               'action', a.action, 'fields', a.fields, 'purpose', a.purpose)
                             ORDER BY a.audit_id), '[]')
                       FROM loyalty.audit_log a WHERE a.member_id = m.member_id))
      INTO result
      FROM loyalty.member m
     WHERE m.member_id = member_export.member_id AND m.status <> 'erased';
    IF result IS NULL THEN
        PERFORM loyalty._member_not_found();
    END IF;
    PERFORM loyalty._audit(member_id, 'export', ARRAY['*'], purpose);
    RETURN result;
END
$$;
COMMENT ON FUNCTION loyalty.member_export(uuid, text) IS
    'Everything held about one member (subject access request); HQ CRM only; audited';

-- loyalty.member_erase(member_id, reason) and loyalty._member_erase(), which
-- retention_purge() calls, are in 48_privacy_erasure.sql (since 1.2 erasure
-- also scrubs event texts and request records and re-keys the pseudonym).

-- loyalty.retention_purge(dry_run, inactive_for, retired_for): what the
-- retention rules remove; with dry_run (the default) nothing is changed.
--   retired preferences older than retired_for are deleted;
--   members with no stay and no enrolment within inactive_for are erased.
CREATE FUNCTION loyalty.retention_purge(dry_run boolean DEFAULT true,
    inactive_for interval DEFAULT '3 years', retired_for interval DEFAULT '1 year')
    RETURNS TABLE (action text, rows bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    victims uuid[];
    n bigint;
    v uuid;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF dry_run IS NULL OR inactive_for IS NULL OR retired_for IS NULL THEN
        RAISE EXCEPTION 'dry_run, inactive_for and retired_for must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF inactive_for < interval '1 year' OR retired_for < interval '0' THEN
        RAISE EXCEPTION 'retention periods are too short'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Members are kept at least one year after their last activity.';
    END IF;
    SELECT count(*) INTO n FROM loyalty.member_preference p
     WHERE p.retired_at < now() - retired_for;
    action := 'delete_retired_preferences'; rows := n;
    RETURN NEXT;
    SELECT coalesce(array_agg(m.member_id), '{}') INTO victims FROM loyalty.member m
     WHERE m.status <> 'erased' AND m.enrolled_at < now() - inactive_for
       AND NOT EXISTS (SELECT 1 FROM loyalty.stay s
                        WHERE s.member_id = m.member_id AND s.check_out >= (now() - inactive_for)::date);
    action := 'erase_inactive_members'; rows := cardinality(victims);
    RETURN NEXT;
    IF NOT dry_run THEN
        DELETE FROM loyalty.member_preference p WHERE p.retired_at < now() - retired_for;
        FOREACH v IN ARRAY victims LOOP
            PERFORM loyalty._member_erase(v, 'retention: inactive for ' || inactive_for::text);
        END LOOP;
        PERFORM loyalty._audit_change(NULL, 'retention_purge', 'privacy',
            pg_catalog.jsonb_build_object('inactive_for', inactive_for, 'retired_for', retired_for,
                                          'members_erased', cardinality(victims)));
    END IF;
END
$$;
COMMENT ON FUNCTION loyalty.retention_purge(boolean, interval, interval) IS
    'Apply the retention rules; dry_run (default) only reports what would be removed';

REVOKE ALL ON FUNCTION loyalty.consent_record(uuid, text, boolean, text, text),
    loyalty.member_export(uuid, text),
    loyalty.retention_purge(boolean, interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.consent_record(uuid, text, boolean, text, text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.member_export(uuid, text) TO loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.retention_purge(boolean, interval, interval) TO loyalty_crm, loyalty_dba;
-- perf: loyalty.bi_members generalises enrolled_at to its UTC month with a C
-- function that gives the same text as to_char(... AT TIME ZONE 'UTC',
-- 'YYYY-MM') without parsing the format on every row (docs/privacy.md,
-- "Performance"; test/pgtap/43_pseudonym_hmac.sql compares the two).
CREATE FUNCTION loyalty.mask_month_utc(timestamptz) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_month_utc';
COMMENT ON FUNCTION loyalty.mask_month_utc(timestamptz) IS
    'A time generalised to its calendar month in UTC: 2026-03';
REVOKE ALL ON FUNCTION loyalty.mask_month_utc(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.mask_month_utc(timestamptz)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba, loyalty_view_owner;

-- BI (docs/privacy.md): pseudonymous member keys, generalised
-- quasi-identifiers, no contact data, and aggregates that hide every group
-- smaller than loyalty.bi_min_group_size().

CREATE FUNCTION loyalty.bi_min_group_size() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 10;
COMMENT ON FUNCTION loyalty.bi_min_group_size() IS
    'Smallest group an aggregate BI view shows (k); smaller groups are suppressed';

-- The row-level BI views loyalty.bi_members and loyalty.bi_stays are in
-- 47_privacy_bi.sql (since 1.2 k-anonymous).

-- Member counts by store, tier, gender and decade of birth; groups of fewer
-- than k members are not shown.
CREATE VIEW loyalty.bi_segments WITH (security_barrier) AS
SELECT m.home_store, m.tier, p.gender, loyalty.mask_birth_decade(p.birth_date) AS birth_decade,
       count(*) AS members
  FROM loyalty.member m
  LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id
 WHERE m.status <> 'erased'
   AND m.member_id IN (SELECT k.member_id FROM loyalty.member_consents k
                        WHERE k.purpose = 'profiling' AND k.granted)
 GROUP BY 1, 2, 3, 4
HAVING count(*) >= loyalty.bi_min_group_size();
COMMENT ON VIEW loyalty.bi_segments IS 'Member counts per segment; groups smaller than bi_min_group_size() suppressed';

ALTER VIEW loyalty.bi_segments OWNER TO loyalty_view_owner;
REVOKE ALL ON loyalty.bi_segments FROM PUBLIC;
REVOKE ALL ON FUNCTION loyalty.bi_min_group_size() FROM PUBLIC;
GRANT SELECT ON loyalty.bi_segments TO loyalty_bi;
GRANT EXECUTE ON FUNCTION loyalty.bi_min_group_size() TO loyalty_bi, loyalty_view_owner;
-- Row level security for the store-scoped tables of other areas, following
-- the pattern of docs/privacy.md ("Row level security per store"): the
-- extension's SECURITY DEFINER functions run as the extension owner, so
-- these policies bind every other reader, including views owned by
-- loyalty_view_owner.

-- point ledger: lots and entries are a store's transactions
ALTER TABLE loyalty.point_lot ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.point_entry ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY store_scope ON loyalty.point_lot FOR SELECT
    USING (loyalty.store_visible(store_code));
CREATE POLICY store_scope ON loyalty.point_entry FOR SELECT
    USING (loyalty.store_visible(store_code));

-- benefits: a store's own benefits and the uses recorded at a store
ALTER TABLE loyalty.benefit_grant ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.benefit_use ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY store_scope ON loyalty.benefit_grant FOR SELECT
    USING (store_code IS NULL OR loyalty.store_visible(store_code));
CREATE POLICY store_scope ON loyalty.benefit_use FOR SELECT
    USING (loyalty.store_visible(store_code));

