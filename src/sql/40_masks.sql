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
