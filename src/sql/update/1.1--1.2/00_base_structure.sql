-- base: the 1.2 API names (issue 11, structure): noun_verb, concept first,
-- the idempotency key first; the 1.1 names become wrappers (99_deprecated).
-- Generated from the difference between 1.1 and src/sql/00_base.sql.

CREATE FUNCTION loyalty.card_number_new() RETURNS text
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_new_card_number';

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

REVOKE ALL ON FUNCTION loyalty.card_number_new() FROM PUBLIC;
