-- roles: the 1.2 API names (issue 11, structure): noun_verb, concept first,
-- the idempotency key first; the 1.1 names become wrappers (99_deprecated).
-- Generated from the difference between 1.1 and src/sql/01_roles.sql.

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

REVOKE ALL ON FUNCTION loyalty.store_create(text, text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_create(text, text, text, text, text, text) TO loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.staff_create(text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.staff_create(text, text, text, text, text) TO loyalty_dba;
