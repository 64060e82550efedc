-- Tier and earning engine: the data (docs/tiers.md).
--
-- tier_activity is the append-only record of every change to a member's
-- qualification counters, by calendar month of the member's time zone;
-- tier_counter is its running sum, kept in the same transaction, so that a
-- period's counters are at most 12 rows.  Counters as of a past time are
-- summed from tier_activity.

CREATE TABLE loyalty.tier_activity (
    activity_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id        uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    month            date NOT NULL
        CONSTRAINT tier_activity_month_first CHECK (extract(day FROM month) = 1),
    nights           integer NOT NULL DEFAULT 0,
    stays            integer NOT NULL DEFAULT 0,
    base_points      bigint NOT NULL DEFAULT 0,
    qualifying_spend bigint NOT NULL DEFAULT 0,   -- minor currency units
    source           text NOT NULL
        CONSTRAINT tier_activity_source_valid CHECK (source IN ('stay', 'charge', 'adjustment')),
    source_id        uuid,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.tier_activity IS 'Append-only changes to qualification counters, per member and month';
CREATE INDEX tier_activity_member_idx ON loyalty.tier_activity (member_id, recorded_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_activity', '');

CREATE TABLE loyalty.tier_counter (
    member_id        uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    month            date NOT NULL,
    nights           integer NOT NULL DEFAULT 0,
    stays            integer NOT NULL DEFAULT 0,
    base_points      bigint NOT NULL DEFAULT 0,
    qualifying_spend bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (member_id, month)
);
COMMENT ON TABLE loyalty.tier_counter IS 'Qualification counters per member and month (sum of tier_activity)';
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_counter', '');

-- Every line of points the engine computed, with the rule that produced
-- it.  The points themselves are posted to the point ledger.
CREATE TABLE loyalty.earning_line (
    line_id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id        uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    store_code       text NOT NULL REFERENCES loyalty.store,
    source           text NOT NULL
        CONSTRAINT earning_line_source_valid CHECK (source IN ('stay', 'charge')),
    source_id        uuid NOT NULL,
    kind             text NOT NULL
        CONSTRAINT earning_line_kind_valid CHECK (kind IN ('base', 'elite', 'campaign', 'milestone')),
    rule             text NOT NULL,
    campaign_id      uuid,
    points           bigint NOT NULL CONSTRAINT earning_line_points_positive CHECK (points > 0),
    pending          boolean NOT NULL,
    occurred_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.earning_line IS 'Points computed by the earning engine, one row per rule that produced points';
CREATE INDEX earning_line_source_idx ON loyalty.earning_line (source_id);
CREATE INDEX earning_line_campaign_idx ON loyalty.earning_line (member_id, campaign_id) WHERE campaign_id IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('loyalty.earning_line', '');

-- Charges outside a stay (restaurant, spa): base points and qualifying spend.
CREATE TABLE loyalty.charge (
    charge_id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id        uuid NOT NULL REFERENCES loyalty.member,
    store_code       text NOT NULL REFERENCES loyalty.store,
    amount           numeric(12, 2) NOT NULL CONSTRAINT charge_amount_positive CHECK (amount > 0),
    occurred_at      timestamptz NOT NULL,
    idempotency_key  text NOT NULL
        CONSTRAINT charge_idempotency_key_key UNIQUE
        CONSTRAINT charge_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.charge IS 'Eligible charges outside a stay';
CREATE INDEX charge_member_idx ON loyalty.charge (member_id, occurred_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.charge', '');

-- Every tier change (append-only): the tier as of any time.
CREATE TABLE loyalty.tier_history (
    event_id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id        uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    changed_at       timestamptz NOT NULL DEFAULT now(),
    old_tier         text NOT NULL,
    new_tier         text NOT NULL,
    old_valid_until  timestamptz,
    valid_until      timestamptz,
    reason           text NOT NULL,
    store_code       text,
    detail           jsonb
);
COMMENT ON TABLE loyalty.tier_history IS 'Every change of a member''s tier or tier validity, with its reason';
CREATE INDEX tier_history_member_idx ON loyalty.tier_history (member_id, changed_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_history', '');

-- Manual tier grants: a floor the downgrade batch never goes below while
-- the grant is in force.
CREATE TABLE loyalty.tier_grant (
    grant_id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id        uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    tier             text NOT NULL,
    reason           text NOT NULL
        CONSTRAINT tier_grant_reason_length CHECK (length(btrim(reason)) BETWEEN 1 AND 500),
    granted_at       timestamptz NOT NULL DEFAULT now(),
    granted_by       name NOT NULL DEFAULT session_user,
    expires_at       timestamptz,
    CONSTRAINT tier_grant_expiry_after_grant CHECK (expires_at IS NULL OR expires_at > granted_at)
);
COMMENT ON TABLE loyalty.tier_grant IS 'Manual tier grants with reason and expiry';
CREATE INDEX tier_grant_member_idx ON loyalty.tier_grant (member_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_grant', '');

REVOKE ALL ON loyalty.tier_activity, loyalty.tier_counter, loyalty.earning_line,
    loyalty.charge, loyalty.tier_history, loyalty.tier_grant FROM PUBLIC;
GRANT SELECT ON loyalty.tier_activity, loyalty.tier_counter, loyalty.earning_line,
    loyalty.charge, loyalty.tier_history, loyalty.tier_grant TO loyalty_crm, loyalty_dba;
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
    loyalty._counters_at(uuid, timestamptz), loyalty.tier_counters_at(uuid, timestamptz),
    loyalty.tier_at(uuid, timestamptz), loyalty.tier_status(uuid),
    loyalty.tier_grant(uuid, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.tier_counters_at(uuid, timestamptz), loyalty.tier_at(uuid, timestamptz),
    loyalty.tier_status(uuid)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.tier_grant(uuid, text, text, timestamptz) TO loyalty_crm, loyalty_dba;
-- Tier batches: downgrade preview and apply, requalification of every
-- member with progress (docs/tiers.md, "Batches").

CREATE FUNCTION loyalty._tier_decide(member_id uuid, at timestamptz,
    OUT action text, OUT new_tier text, OUT new_valid_until timestamptz, OUT reason text)
    RETURNS record
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'loyalty_tier_decide';

CREATE FUNCTION loyalty._tier_requalify_batch(after uuid, batch_size integer,
    at timestamptz, expired_only boolean,
    OUT last_member uuid, OUT processed integer, OUT changed integer)
    RETURNS record
    LANGUAGE c VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_tier_requalify_batch';

CREATE FUNCTION loyalty.tier_downgrade_preview(at timestamptz DEFAULT now())
    RETURNS TABLE (member_id uuid, card_no text, old_tier text, new_tier text,
                   old_valid_until timestamptz, new_valid_until timestamptz,
                   action text, reason text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF at IS NULL THEN
        RAISE EXCEPTION 'at must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN QUERY
    SELECT m.member_id, m.card_no, m.tier, d.new_tier, m.tier_valid_until, d.new_valid_until,
           d.action, d.reason
      FROM loyalty.member m, LATERAL loyalty._tier_decide(m.member_id, tier_downgrade_preview.at) d
     WHERE m.status = 'active' AND m.tier_valid_until <= tier_downgrade_preview.at
       AND d.action <> 'keep'
     ORDER BY m.card_no;
END
$$;
COMMENT ON FUNCTION loyalty.tier_downgrade_preview(timestamptz) IS
    'Who the downgrade batch would change at a time, to what, and why; changes nothing';

-- A procedure (not SECURITY DEFINER: those cannot commit) that commits
-- after every batch, so that progress is visible and locks are short.
CREATE PROCEDURE loyalty.tier_requalify(at timestamptz DEFAULT NULL,
    batch_size integer DEFAULT 5000, expired_only boolean DEFAULT false)
    LANGUAGE plpgsql
AS $$
BEGIN
    -- previews (tier_downgrade_preview) may look ahead; a batch may not
    IF at > pg_catalog.clock_timestamp() THEN
        RAISE EXCEPTION 'as_of must not be in the future'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A tier batch changes tiers only as of now or an earlier time.',
                  HINT = 'loyalty.tier_downgrade_preview() shows what a later run would do.';
    END IF;
    CALL loyalty._job_run(CASE WHEN expired_only THEN 'downgrade' ELSE 'requalify' END,
                          pg_catalog.jsonb_build_object('as_of', coalesce(at, pg_catalog.now())),
                          batch_size);
END
$$;
COMMENT ON PROCEDURE loyalty.tier_requalify(timestamptz, integer, boolean) IS
    'Requalify every member (upgrades, extensions, downgrades of ended validity), one committed batch at a time';

CREATE PROCEDURE loyalty.tier_downgrade_apply(at timestamptz DEFAULT NULL,
    batch_size integer DEFAULT 5000)
    LANGUAGE plpgsql
AS $$
BEGIN
    CALL loyalty.tier_requalify(at, batch_size, true);
END
$$;
COMMENT ON PROCEDURE loyalty.tier_downgrade_apply(timestamptz, integer) IS
    'Apply the period-end downgrades that loyalty.tier_downgrade_preview() lists';

REVOKE ALL ON FUNCTION loyalty._tier_decide(uuid, timestamptz),
    loyalty._tier_requalify_batch(uuid, integer, timestamptz, boolean),
    loyalty.tier_downgrade_preview(timestamptz) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.tier_requalify(timestamptz, integer, boolean),
    loyalty.tier_downgrade_apply(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._tier_requalify_batch(uuid, integer, timestamptz, boolean),
    loyalty.tier_downgrade_preview(timestamptz) TO loyalty_crm, loyalty_dba;
GRANT EXECUTE ON PROCEDURE loyalty.tier_requalify(timestamptz, integer, boolean),
    loyalty.tier_downgrade_apply(timestamptz, integer) TO loyalty_crm, loyalty_dba;
