-- Base objects: the schema, the chain-wide group roles and the helpers
-- every concept uses.  Every object lives in schema "loyalty", the schema
-- the control file names, so \dx shows it (pg_extension.extnamespace).
-- CREATE EXTENSION creates that schema before it runs this script, outside
-- the extension (so that pg_dump dumps it and a restore's "CREATE EXTENSION
-- loyalty WITH SCHEMA loyalty" finds it): DROP EXTENSION leaves it empty
-- (docs/installation.md).  Every name in these scripts is schema-qualified.

-- A schema "loyalty" that existed before CREATE EXTENSION is used as it is;
-- its owner could drop the extension's objects, so it must be a superuser.
DO $$
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_namespace n
              JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
             WHERE n.nspname = 'loyalty') THEN
        RAISE EXCEPTION 'schema "loyalty" is owned by a role that is not a superuser'
            USING ERRCODE = '42501',
                  DETAIL = 'The owner of the schema could drop or replace the extension''s objects.',
                  HINT = 'Drop the schema, or ALTER SCHEMA loyalty OWNER TO a superuser, then CREATE EXTENSION loyalty again.';
    END IF;
END
$$;
REVOKE ALL ON SCHEMA loyalty FROM PUBLIC;

-- The chain-wide group roles.  Privileges on views and functions are granted
-- to these; each store's department roles (loyalty_<store>_<department>,
-- made by loyalty.store_create) and HQ staff logins are members of them.
-- Roles are cluster-wide objects, so an existing role of the same name is
-- reused; see docs/roles.md.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['loyalty_frontdesk', 'loyalty_housekeeping',
                             'loyalty_fnb', 'loyalty_store_manager',
                             'loyalty_crm', 'loyalty_marketing',
                             'loyalty_bi', 'loyalty_dba']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA loyalty TO loyalty_frontdesk, loyalty_housekeeping,
    loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_marketing,
    loyalty_bi, loyalty_dba;

-- Statement trigger that invalidates per-backend caches of a table.
CREATE FUNCTION loyalty._cache_invalidate() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'loyalty_cache_invalidate';

CREATE FUNCTION loyalty._valid_time_zone(text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_valid_time_zone';

CREATE FUNCTION loyalty.card_number_new() RETURNS text
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_new_card_number';
COMMENT ON FUNCTION loyalty.card_number_new() IS
    'A fresh 12-digit card number with a Luhn check digit, from the strong random source';

CREATE FUNCTION loyalty.card_number_valid(text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_card_number_valid';
COMMENT ON FUNCTION loyalty.card_number_valid(text) IS
    'Whether a card number has 12 digits and a correct Luhn check digit';

REVOKE ALL ON FUNCTION loyalty._cache_invalidate(), loyalty._valid_time_zone(text),
    loyalty.card_number_new(), loyalty.card_number_valid(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.card_number_valid(text) TO loyalty_frontdesk,
    loyalty_store_manager, loyalty_crm, loyalty_dba;

-- Idempotency records of the API functions that keep none of their own
-- (src/request_key.c): a hash of the caller and the arguments, never the
-- arguments, and the first call's response.
CREATE TABLE loyalty.request_key (
    action          text NOT NULL,
    idempotency_key text NOT NULL
        CONSTRAINT request_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    request_hash    bytea NOT NULL,
    response        jsonb NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (action, idempotency_key)
);
COMMENT ON TABLE loyalty.request_key IS
    'Idempotency records of API calls without a ledger of their own: action, key, hash of caller and arguments, response';
SELECT pg_catalog.pg_extension_config_dump('loyalty.request_key', '');
REVOKE ALL ON TABLE loyalty.request_key FROM PUBLIC;

CREATE FUNCTION loyalty._request_hash(request jsonb) RETURNS bytea
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pg_catalog.sha256(pg_catalog.convert_to(
        coalesce((SELECT w.login FROM loyalty.whoami() w), '') || ' ' || request::text, 'UTF8'));
END
$$;

CREATE FUNCTION loyalty._request_begin(action text, idempotency_key text, request jsonb)
    RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_request_begin';

CREATE FUNCTION loyalty._request_end(action text, idempotency_key text, request jsonb, response jsonb)
    RETURNS void
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_request_end';

CREATE FUNCTION loyalty._idempotency_key_check(idempotency_key text) RETURNS void
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_idempotency_key_check';

CREATE FUNCTION loyalty._points_check(points bigint) RETURNS void
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_points_check';

REVOKE ALL ON FUNCTION loyalty._idempotency_key_check(text), loyalty._points_check(bigint), loyalty._request_hash(jsonb), loyalty._request_begin(text, text, jsonb),
    loyalty._request_end(text, text, jsonb, jsonb) FROM PUBLIC;
-- the schedule functions run with the caller's rights
GRANT EXECUTE ON FUNCTION loyalty._request_begin(text, text, jsonb),
    loyalty._request_end(text, text, jsonb, jsonb) TO loyalty_crm, loyalty_dba;
