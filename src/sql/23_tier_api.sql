-- Tiers: as-of queries, status, manual grants (docs/tiers.md).

CREATE FUNCTION loyalty._tier_period_start(period integer, local date, enrolled date)
    RETURNS date
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_tier_period_start';

CREATE FUNCTION loyalty._counters_at(member_id uuid, at timestamptz,
    OUT period_start date, OUT period_end date, OUT nights bigint, OUT stays bigint,
    OUT base_points bigint, OUT qualifying_spend_minor bigint, OUT qualifies_for text)
    RETURNS record
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'loyalty_counters_at';

-- who may look a member's tier up: every store department that serves
-- guests, and HQ
CREATE FUNCTION loyalty.counters_at(member_id uuid, at timestamptz DEFAULT now(),
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
    SELECT * INTO c FROM loyalty._counters_at(counters_at.member_id, counters_at.at);
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
COMMENT ON FUNCTION loyalty.counters_at(uuid, timestamptz) IS
    'A member''s qualification period and counters as they were recorded at a time';

CREATE FUNCTION loyalty.tier_at(member_id uuid, at timestamptz DEFAULT now(),
    OUT tier text, OUT valid_until timestamptz, OUT since timestamptz, OUT reason text)
    RETURNS record
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm', 'marketing', 'dba']);
    IF member_id IS NULL OR at IS NULL THEN
        RAISE EXCEPTION 'member_id and at must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT h.new_tier, h.valid_until, h.changed_at, h.reason
      INTO tier, valid_until, since, reason
      FROM loyalty.tier_history h
     WHERE h.member_id = tier_at.member_id AND h.changed_at <= tier_at.at
     ORDER BY h.changed_at DESC LIMIT 1;
    IF NOT FOUND THEN
        SELECT loyalty.policy_at(at) -> 'tiers' -> 0 ->> 'code', NULL, m.enrolled_at, 'enrolled'
          INTO tier, valid_until, since, reason
          FROM loyalty.member m WHERE m.member_id = tier_at.member_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'member % does not exist', member_id USING ERRCODE = 'no_data_found';
        END IF;
        IF since > at THEN
            tier := NULL;
            reason := 'not yet enrolled';
        END IF;
    END IF;
END
$$;
COMMENT ON FUNCTION loyalty.tier_at(uuid, timestamptz) IS
    'A member''s tier and its validity as they were at a time';

CREATE FUNCTION loyalty.tier_status(member_id uuid)
    RETURNS TABLE (tier text, valid_until timestamptz, period_start date, period_end date,
                   counter text, value numeric, next_tier text, next_threshold numeric)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol jsonb := loyalty.policy_at(now());
    c record;
    m record;
    nxt jsonb;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm', 'marketing', 'dba']);
    SELECT mm.tier, mm.tier_valid_until INTO m FROM loyalty.member mm WHERE mm.member_id = tier_status.member_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member_id USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO c FROM loyalty._counters_at(tier_status.member_id, now());
    SELECT t INTO nxt FROM jsonb_array_elements(pol -> 'tiers') t
     WHERE (t ->> 'rank')::int > (SELECT (u ->> 'rank')::int FROM jsonb_array_elements(pol -> 'tiers') u
                                   WHERE u ->> 'code' = m.tier UNION ALL SELECT 0 LIMIT 1)
     ORDER BY (t ->> 'rank')::int LIMIT 1;
    RETURN QUERY
    SELECT m.tier, m.tier_valid_until, c.period_start, c.period_end, k.counter, k.value,
           nxt ->> 'code', (nxt -> 'qualify' -> 'any' ->> k.counter)::numeric
      FROM (VALUES ('nights', c.nights::numeric, 1), ('stays', c.stays::numeric, 2),
                   ('base_points', c.base_points::numeric, 3),
                   ('qualifying_spend', round(c.qualifying_spend_minor
                        / (10::numeric ^ (pol -> 'currency' ->> 'scale')::int),
                        (pol -> 'currency' ->> 'scale')::int), 4)) AS k(counter, value, ord)
     ORDER BY k.ord;
END
$$;
COMMENT ON FUNCTION loyalty.tier_status(uuid) IS
    'A member''s tier, this period''s counters and the next tier''s any-of thresholds';

CREATE FUNCTION loyalty.tier_grant(member_id uuid, tier text, reason text,
    expires_at timestamptz DEFAULT NULL)
    RETURNS uuid
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_tier_grant';
COMMENT ON FUNCTION loyalty.tier_grant(uuid, text, text, timestamptz) IS
    'Grant a tier by hand with a reason and an expiry; a floor for downgrades while in force';

REVOKE ALL ON FUNCTION loyalty._tier_period_start(integer, date, date),
    loyalty._counters_at(uuid, timestamptz), loyalty.counters_at(uuid, timestamptz),
    loyalty.tier_at(uuid, timestamptz), loyalty.tier_status(uuid),
    loyalty.tier_grant(uuid, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.counters_at(uuid, timestamptz), loyalty.tier_at(uuid, timestamptz),
    loyalty.tier_status(uuid)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.tier_grant(uuid, text, text, timestamptz) TO loyalty_crm, loyalty_dba;
