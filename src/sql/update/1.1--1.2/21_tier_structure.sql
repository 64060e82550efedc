-- tier: the 1.2 API names (issue 11, structure): noun_verb, concept first,
-- the idempotency key first; the 1.1 names become wrappers (99_deprecated).
-- Generated from the difference between 1.1 and src/sql/21_tier.sql.

CREATE FUNCTION loyalty.tier_counters_at(member_id uuid, at timestamptz DEFAULT now(),
    OUT period_start date, OUT period_end date, OUT nights bigint, OUT stays bigint,
    OUT base_points bigint, OUT qualifying_spend numeric, OUT qualifies_for text)
    RETURNS record
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm', 'marketing', 'dba']);
    IF member_id IS NULL OR at IS NULL THEN
        RAISE EXCEPTION 'member_id and at must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO c FROM loyalty._counters_at(tier_counters_at.member_id, tier_counters_at.at);
    period_start := c.period_start;
    period_end := c.period_end;
    nights := c.nights;
    stays := c.stays;
    base_points := c.base_points;
    qualifying_spend := round(c.qualifying_spend_minor
        / (10::numeric ^ (loyalty.policy_at(at) -> 'currency' ->> 'scale')::int),
        (loyalty.policy_at(at) -> 'currency' ->> 'scale')::int);
    qualifies_for := c.qualifies_for;
END
$$;
COMMENT ON FUNCTION loyalty.tier_counters_at(uuid, timestamptz) IS
    'A member''s qualification period and counters as they were recorded at a time';

REVOKE ALL ON FUNCTION loyalty.tier_counters_at(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.tier_counters_at(uuid, timestamptz) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_dba;
