-- benefit: the 1.2 API names (issue 11, structure): noun_verb, concept first,
-- the idempotency key first; the 1.1 names become wrappers (99_deprecated).
-- Generated from the difference between 1.1 and src/sql/31_benefit.sql.

CREATE FUNCTION loyalty._benefit_kind_valid(kind text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_benefit_kind_valid';

CREATE FUNCTION loyalty.benefit_define(
    idempotency_key text,
    benefit_code text, name text, kind text, description text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    prior jsonb;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    req := pg_catalog.jsonb_build_array(benefit_code, name, kind, description);
    prior := loyalty._request_begin('benefit_define', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN prior #>> '{}';
    END IF;
    IF benefit_code IS NULL OR name IS NULL OR kind IS NULL THEN
        RAISE EXCEPTION 'benefit_code, name and kind must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF benefit_code !~ '^[a-z][a-z0-9_]{0,47}$' THEN
        RAISE EXCEPTION 'invalid benefit code "%"', benefit_code
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A benefit code is 1 to 48 lowercase letters, digits and underscores, starting with a letter.';
    END IF;
    IF NOT loyalty._benefit_kind_valid(kind) THEN
        RAISE EXCEPTION 'unknown benefit kind "%"', kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The kinds are room_discount, breakfast, late_checkout, room_upgrade, gift, voucher, amenity and other.';
    END IF;
    IF btrim(name) = '' THEN
        RAISE EXCEPTION 'benefit name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    ELSIF length(name) > 200 THEN
        RAISE EXCEPTION 'benefit name is longer than 200 characters' USING ERRCODE = 'string_data_right_truncation';
    ELSIF length(description) > 1000 THEN
        RAISE EXCEPTION 'benefit description is longer than 1000 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF EXISTS (SELECT 1 FROM loyalty.benefit b WHERE b.benefit_code = benefit_define.benefit_code) THEN
        RAISE EXCEPTION 'benefit "%" already exists', benefit_code USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO loyalty.benefit (benefit_code, name, kind, description)
        VALUES (benefit_code, name, kind, description);
    PERFORM loyalty._audit_change(NULL, 'benefit_define', 'loyalty', pg_catalog.jsonb_build_object('benefit_code', benefit_code));
    PERFORM loyalty._request_end('benefit_define', idempotency_key, req, pg_catalog.to_jsonb(benefit_code));
    RETURN benefit_code;
END
$$;
COMMENT ON FUNCTION loyalty.benefit_define(text, text, text, text, text) IS
    'Add a benefit to the catalogue (it applies to nobody until it is granted)';

CREATE FUNCTION loyalty.benefit_grant(
    idempotency_key text,
    benefit_code text,
    source       text,
    params       jsonb DEFAULT '{}',
    min_tier     text DEFAULT NULL,
    stores       text[] DEFAULT NULL,
    campaign     text DEFAULT NULL,
    valid_from   timestamptz DEFAULT '-infinity',
    valid_until  timestamptz DEFAULT 'infinity',
    use_limit    integer DEFAULT NULL,
    limit_per    text DEFAULT NULL)
    RETURNS SETOF uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    prior jsonb;
    ids uuid[] := '{}';
    b loyalty.benefit;
    s text;
    clash loyalty.benefit_grant;
    id uuid;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    req := pg_catalog.jsonb_build_array(benefit_code, source, params, min_tier, stores, campaign, valid_from, valid_until, use_limit, limit_per);
    prior := loyalty._request_begin('benefit_grant', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN QUERY SELECT x::uuid FROM pg_catalog.jsonb_array_elements_text(prior) x;
        RETURN;
    END IF;
    IF benefit_code IS NULL OR source IS NULL OR valid_from IS NULL OR valid_until IS NULL THEN
        RAISE EXCEPTION 'benefit_code, source, valid_from and valid_until must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- one definer at a time per benefit, so that the overlap check holds
    SELECT * INTO b FROM loyalty.benefit x WHERE x.benefit_code = benefit_grant.benefit_code FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'benefit "%" does not exist', benefit_code
            USING ERRCODE = 'no_data_found', HINT = 'Define it first with loyalty.benefit_define().';
    END IF;
    IF source NOT IN ('tier', 'store', 'campaign') THEN
        RAISE EXCEPTION 'invalid grant source "%"', source
            USING ERRCODE = 'invalid_parameter_value', HINT = 'A grant''s source is tier, store or campaign.';
    END IF;
    IF source = 'tier' AND (min_tier IS NULL OR stores IS NOT NULL OR campaign IS NOT NULL) THEN
        RAISE EXCEPTION 'a tier grant needs min_tier and no stores or campaign'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use source store for store benefits and source campaign for campaign benefits.';
    ELSIF source = 'store' AND campaign IS NOT NULL THEN
        RAISE EXCEPTION 'a store grant has no campaign' USING ERRCODE = 'invalid_parameter_value';
    ELSIF source = 'store' AND (stores IS NULL OR cardinality(stores) = 0) THEN
        RAISE EXCEPTION 'a store benefit must name at least one store'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A store grant without stores would be valid nowhere.';
    ELSIF source = 'campaign' AND campaign IS NULL THEN
        RAISE EXCEPTION 'a campaign grant needs a campaign name' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF campaign IS NOT NULL AND campaign !~ '^[a-z][a-z0-9_]{0,47}$' THEN
        RAISE EXCEPTION 'invalid campaign name "%"', campaign
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A campaign name is 1 to 48 lowercase letters, digits and underscores, starting with a letter.';
    END IF;
    IF stores IS NOT NULL AND cardinality(stores) = 0 THEN
        RAISE EXCEPTION 'stores must be NULL (every store) or name at least one store'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A grant for an empty list of stores would be valid nowhere.';
    END IF;
    IF stores IS NOT NULL THEN
        IF array_position(stores, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'stores must not contain NULL' USING ERRCODE = 'null_value_not_allowed';
        END IF;
        IF cardinality(stores) <> (SELECT count(DISTINCT x) FROM unnest(stores) x) THEN
            RAISE EXCEPTION 'stores names a store twice' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT x INTO s FROM unnest(stores) x
         WHERE NOT EXISTS (SELECT 1 FROM loyalty.store t WHERE t.store_code = x) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'store "%" does not exist', s USING ERRCODE = 'no_data_found';
        END IF;
    END IF;
    IF min_tier IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM jsonb_array_elements(loyalty.policy_at()->'tiers') t WHERE t->>'code' = min_tier) THEN
        RAISE EXCEPTION 'unknown tier "%"', min_tier
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The tiers are those of the policy in effect (loyalty.policy_at()).';
    END IF;
    IF valid_from >= valid_until THEN
        RAISE EXCEPTION 'validity window [%, %) is empty', valid_from, valid_until
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A grant valid at no time would be valid nowhere.';
    END IF;
    IF (use_limit IS NULL) <> (limit_per IS NULL) THEN
        RAISE EXCEPTION 'use_limit and limit_per go together' USING ERRCODE = 'invalid_parameter_value';
    ELSIF use_limit IS NOT NULL AND (use_limit NOT BETWEEN 1 AND 1000
                                     OR limit_per NOT IN ('stay', 'day', 'month', 'year', 'ever')) THEN
        RAISE EXCEPTION 'invalid use limit % per %', use_limit, limit_per
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A limit is 1 to 1000 uses per stay, day, month, year or ever.';
    END IF;
    params := loyalty._benefit_params(b.kind, params);

    FOREACH s IN ARRAY coalesce(stores, ARRAY[NULL::text]) LOOP
        SELECT * INTO clash FROM loyalty.benefit_grant g
         WHERE g.benefit_code = benefit_grant.benefit_code AND g.source = benefit_grant.source
           AND g.min_tier IS NOT DISTINCT FROM benefit_grant.min_tier
           AND g.store_code IS NOT DISTINCT FROM s
           AND g.valid_from < benefit_grant.valid_until AND benefit_grant.valid_from < g.valid_until
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'grant of benefit "%" overlaps an existing grant for the same %', benefit_code,
                    CASE WHEN s IS NULL THEN coalesce('tier ' || min_tier, 'campaign scope') ELSE 'store ' || s END
                USING ERRCODE = 'exclusion_violation',
                      DETAIL = pg_catalog.format('Grant %s (%s%s%s) is valid from %s until %s with parameters %s; the new one from %s until %s with parameters %s%s.',
                          clash.grant_id, clash.source,
                          coalesce(', from tier ' || clash.min_tier, ''), coalesce(', store ' || s, ''),
                          clash.valid_from, clash.valid_until, clash.params, valid_from, valid_until, params,
                          CASE WHEN clash.params = params THEN ' (the same)' ELSE ' (contradictory)' END),
                      HINT = 'End the existing grant first with loyalty.benefit_grant_end(), or start the new one when it ends.';
        END IF;
        INSERT INTO loyalty.benefit_grant (benefit_code, source, min_tier, store_code, campaign,
                                           valid_from, valid_until, params, use_limit, limit_per)
            VALUES (benefit_code, source, min_tier, s, campaign, valid_from, valid_until, params,
                    use_limit, limit_per)
            RETURNING grant_id INTO id;
        ids := ids || id;
        RETURN NEXT id;
    END LOOP;
    PERFORM loyalty._audit_change(NULL, 'benefit_grant', 'loyalty', pg_catalog.jsonb_build_object('benefit_code', benefit_code, 'grant_ids', pg_catalog.to_jsonb(ids)));
    PERFORM loyalty._request_end('benefit_grant', idempotency_key, req, pg_catalog.to_jsonb(ids));
END
$$;
COMMENT ON FUNCTION loyalty.benefit_grant(text, text, text, jsonb, text, text[], text, timestamptz, timestamptz, integer, text) IS
    'Grant a benefit to a tier (chain-wide), at stores, or through a campaign; one grant per store';

CREATE FUNCTION loyalty.benefit_grant_end(idempotency_key text, grant_id uuid, at timestamptz DEFAULT now())
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    prior jsonb;
    g loyalty.benefit_grant;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    req := pg_catalog.jsonb_build_array(grant_id, at);
    prior := loyalty._request_begin('benefit_grant_end', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN;
    END IF;
    IF grant_id IS NULL OR at IS NULL THEN
        RAISE EXCEPTION 'grant_id and at must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO g FROM loyalty.benefit_grant x WHERE x.grant_id = benefit_grant_end.grant_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'benefit grant % does not exist', grant_id USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM 1 FROM loyalty.benefit b WHERE b.benefit_code = g.benefit_code FOR UPDATE;
    IF at <= g.valid_from OR at >= g.valid_until THEN
        RAISE EXCEPTION 'grant % can only end within its validity window', grant_id
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('It is valid from %s until %s.', g.valid_from, g.valid_until);
    END IF;
    UPDATE loyalty.benefit_grant x SET valid_until = at WHERE x.grant_id = benefit_grant_end.grant_id;
    PERFORM loyalty._audit_change(NULL, 'benefit_grant_end', 'loyalty', pg_catalog.jsonb_build_object('grant_id', grant_id, 'at', at));
    PERFORM loyalty._request_end('benefit_grant_end', idempotency_key, req, 'null'::jsonb);
END
$$;
COMMENT ON FUNCTION loyalty.benefit_grant_end(text, uuid, timestamptz) IS
    'End a grant at a time within its validity window (uses recorded before stay)';

CREATE FUNCTION loyalty.benefit_use(
    idempotency_key text, member_id uuid, store_code text, benefit_code text,
    stay_id uuid DEFAULT NULL,
    OUT use_id uuid, OUT grant_id uuid, OUT params jsonb, OUT reason text,
    OUT use_number integer, OUT use_limit integer, OUT limit_per text, OUT replayed boolean)
    RETURNS record
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_benefit_use';
COMMENT ON FUNCTION loyalty.benefit_use(text, uuid, text, text, uuid) IS
    'Record a benefit used at a store (idempotent per store and key); refused when frozen, not valid there, or used up';

REVOKE ALL ON FUNCTION loyalty.benefit_define(text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.benefit_define(text, text, text, text, text) TO loyalty_crm, loyalty_marketing;
REVOKE ALL ON FUNCTION loyalty.benefit_grant(text, text, text, jsonb, text, text[], text, timestamptz, timestamptz, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.benefit_grant(text, text, text, jsonb, text, text[], text, timestamptz, timestamptz, integer, text) TO loyalty_crm, loyalty_marketing;
REVOKE ALL ON FUNCTION loyalty.benefit_grant_end(text, uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.benefit_grant_end(text, uuid, timestamptz) TO loyalty_crm, loyalty_marketing;
REVOKE ALL ON FUNCTION loyalty.benefit_use(text, uuid, text, text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.benefit_use(text, uuid, text, text, uuid) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty._benefit_kind_valid(text) FROM PUBLIC;
-- the benefit kinds are C's capability list (src/risk.c)
ALTER TABLE loyalty.benefit DROP CONSTRAINT benefit_kind_valid,
    ADD CONSTRAINT benefit_kind_valid CHECK (loyalty._benefit_kind_valid(kind));
