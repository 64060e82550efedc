-- Benefit resolution and use, in C (docs/benefits.md).

-- A named row type rather than RETURNS TABLE: the executor then takes the
-- result descriptor from the type cache instead of rebuilding it from
-- pg_proc on every execution (measurable at this call rate).
CREATE TYPE loyalty.usable_benefit AS (
    benefit_code text, name text, kind text, source text, reason text,
    params jsonb, use_limit integer, limit_per text, valid_until timestamptz,
    frozen boolean, frozen_by text, frozen_tag uuid, grant_id uuid);
COMMENT ON TYPE loyalty.usable_benefit IS 'A row of loyalty.benefits()';

-- at NULL (the default) means now: grants valid at now(), frozen by the tags
-- unresolved now; an explicit time answers as of that time (docs/benefits.md).
CREATE FUNCTION loyalty.benefits(member_id uuid, store_code text, at timestamptz DEFAULT NULL)
    RETURNS SETOF loyalty.usable_benefit
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_benefits';
COMMENT ON FUNCTION loyalty.benefits(uuid, text, timestamptz) IS
    'The benefits a member may use at a store at a time: why, parameters, limit, and whether a risk tag freezes it';

CREATE FUNCTION loyalty.use_benefit(
    member_id uuid, store_code text, benefit_code text, idempotency_key text,
    stay_id uuid DEFAULT NULL,
    OUT use_id uuid, OUT grant_id uuid, OUT params jsonb, OUT reason text,
    OUT use_number integer, OUT use_limit integer, OUT limit_per text, OUT replayed boolean)
    RETURNS record
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_use_benefit';
COMMENT ON FUNCTION loyalty.use_benefit(uuid, text, text, text, uuid) IS
    'Record a benefit used at a store (idempotent per store and key); refused when frozen, not valid there, or used up';

CREATE FUNCTION loyalty.tier_change_benefits(from_tier text, to_tier text, at timestamptz DEFAULT now())
    RETURNS jsonb
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_tier_change_benefits';
COMMENT ON FUNCTION loyalty.tier_change_benefits(text, text, timestamptz) IS
    'Chain benefits gained, lost and changed by a move from one tier to another (for tier-change events)';

REVOKE ALL ON TYPE loyalty.usable_benefit FROM PUBLIC;
GRANT USAGE ON TYPE loyalty.usable_benefit
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_marketing, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.benefits(uuid, text, timestamptz),
    loyalty.use_benefit(uuid, text, text, text, uuid),
    loyalty.tier_change_benefits(text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.benefits(uuid, text, timestamptz),
    loyalty.tier_change_benefits(text, text, timestamptz)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.use_benefit(uuid, text, text, text, uuid)
    TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;
