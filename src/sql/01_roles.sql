-- Stores (hotels) of the chain.

CREATE TABLE loyalty.store (
    store_code  text PRIMARY KEY
        CONSTRAINT store_code_format CHECK (store_code ~ '^[a-z][a-z0-9_]{0,15}$'),
    name        text NOT NULL
        CONSTRAINT store_name_length CHECK (length(name) BETWEEN 1 AND 200),
    brand       text NOT NULL
        CONSTRAINT store_brand_format CHECK (brand ~ '^[a-z][a-z0-9_]{0,31}$'),
    region      text NOT NULL
        CONSTRAINT store_region_length CHECK (length(region) BETWEEN 1 AND 100),
    time_zone   text NOT NULL
        CONSTRAINT store_time_zone_valid CHECK (loyalty._valid_time_zone(time_zone)),
    status      text NOT NULL DEFAULT 'open'
        CONSTRAINT store_status_valid CHECK (status IN ('open', 'closed')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.store IS 'Hotels ("stores") of the chain';
SELECT pg_catalog.pg_extension_config_dump('loyalty.store', '');
-- The role model: which roles are which store's departments.

CREATE TABLE loyalty.staff_role (
    role        regrole PRIMARY KEY,
    store_code  text REFERENCES loyalty.store ON DELETE CASCADE,
    department  text NOT NULL
        CONSTRAINT staff_role_department_valid CHECK (department IN
            ('frontdesk', 'housekeeping', 'fnb', 'store_manager',
             'crm', 'marketing', 'bi', 'dba')),
    CONSTRAINT staff_role_hq_has_no_store CHECK
        ((store_code IS NULL) = (department IN ('crm', 'marketing', 'bi', 'dba')))
);
COMMENT ON TABLE loyalty.staff_role IS 'Maps department roles to a store (NULL: HQ) and a department; read by loyalty.whoami()';
-- the HQ rows are part of the extension; store rows are user data
SELECT pg_catalog.pg_extension_config_dump('loyalty.staff_role', 'WHERE store_code IS NOT NULL');

INSERT INTO loyalty.staff_role (role, store_code, department) VALUES
    ('loyalty_crm', NULL, 'crm'),
    ('loyalty_marketing', NULL, 'marketing'),
    ('loyalty_bi', NULL, 'bi'),
    ('loyalty_dba', NULL, 'dba');

CREATE TRIGGER staff_role_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.staff_role
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._cache_invalidate();

CREATE FUNCTION loyalty.whoami(
    OUT login text, OUT role text, OUT store_code text,
    OUT department text, OUT is_hq boolean)
    RETURNS record
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'loyalty_whoami';
COMMENT ON FUNCTION loyalty.whoami() IS 'The caller''s store and department, from role membership';

CREATE FUNCTION loyalty.caller_store() RETURNS text
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'loyalty_caller_store';
COMMENT ON FUNCTION loyalty.caller_store() IS
    'The caller''s store code from role membership (NULL at HQ and for non-staff)';

CREATE FUNCTION loyalty.caller_is_hq() RETURNS boolean
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'loyalty_caller_is_hq';
COMMENT ON FUNCTION loyalty.caller_is_hq() IS
    'Whether the caller is HQ staff (from role membership)';

CREATE FUNCTION loyalty._check_access(store_code text, departments text[])
    RETURNS void
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'loyalty_check_access';

CREATE FUNCTION loyalty.store_create(
    idempotency_key text, store_code text, name text, brand text, region text, time_zone text)
    RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_store_create';
COMMENT ON FUNCTION loyalty.store_create(text, text, text, text, text, text) IS
    'Create a store and its department roles loyalty_<store>_<department>';

CREATE FUNCTION loyalty.staff_create(
    idempotency_key text, login text, store_code text, department text, password text DEFAULT NULL)
    RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_staff_create';
COMMENT ON FUNCTION loyalty.staff_create(text, text, text, text, text) IS
    'Create a login role in one store department (or HQ department when store_code is NULL)';

REVOKE ALL ON FUNCTION loyalty.whoami(), loyalty.caller_store(),
    loyalty.caller_is_hq(), loyalty._check_access(text, text[]),
    loyalty.store_create(text, text, text, text, text, text),
    loyalty.staff_create(text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.whoami(), loyalty.caller_store(), loyalty.caller_is_hq()
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.store_create(text, text, text, text, text, text),
    loyalty.staff_create(text, text, text, text, text) TO loyalty_dba;
GRANT SELECT ON loyalty.store TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb,
    loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba;
