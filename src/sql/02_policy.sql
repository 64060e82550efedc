-- Program policy documents (docs/policy.md).  Every version is kept with
-- the time it takes effect; the C code compiles the version in effect and
-- caches it per backend.

CREATE TABLE loyalty.policy (
    policy_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document       text NOT NULL,
    effective_from timestamptz NOT NULL DEFAULT now()
        CONSTRAINT policy_effective_from_key UNIQUE,
    note           text
        CONSTRAINT policy_note_length CHECK (length(note) <= 1000),
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.policy IS 'Versions of the program policy document, by the time each takes effect';

CREATE FUNCTION loyalty._policy_check() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'loyalty_policy_check_trigger';
REVOKE ALL ON FUNCTION loyalty._policy_check() FROM PUBLIC;

CREATE TRIGGER policy_check
    BEFORE INSERT OR UPDATE OR DELETE ON loyalty.policy
    FOR EACH ROW EXECUTE FUNCTION loyalty._policy_check();
CREATE TRIGGER policy_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.policy
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._cache_invalidate();

CREATE FUNCTION loyalty.policy_validate(document text) RETURNS jsonb
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_policy_validate';
COMMENT ON FUNCTION loyalty.policy_validate(text) IS
    'Validate a policy document without storing it; returns it with every default spelled out';

CREATE FUNCTION loyalty.policy_at(at timestamptz DEFAULT now()) RETURNS jsonb
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_policy_at_sql';
COMMENT ON FUNCTION loyalty.policy_at(timestamptz) IS
    'The policy in effect at a time, normalised';

CREATE FUNCTION loyalty.policy_set(
    document text, effective_from timestamptz DEFAULT now(), note text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id bigint;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF document IS NULL OR effective_from IS NULL THEN
        RAISE EXCEPTION 'policy document and effective_from must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF EXISTS (SELECT 1 FROM loyalty.policy p WHERE p.effective_from = policy_set.effective_from) THEN
        RAISE EXCEPTION 'a policy version already takes effect at %', effective_from
            USING ERRCODE = 'unique_violation',
                  HINT = 'Choose another effective_from time.';
    END IF;
    INSERT INTO loyalty.policy (document, effective_from, note)
        VALUES (policy_set.document, policy_set.effective_from, policy_set.note)
        RETURNING policy_id INTO id;
    PERFORM loyalty._audit_change(NULL, 'policy_set', 'loyalty',
        pg_catalog.jsonb_build_object('policy_id', id, 'effective_from', effective_from, 'note', note));
    RETURN id;
END
$$;
COMMENT ON FUNCTION loyalty.policy_set(text, timestamptz, text) IS
    'Validate and store a policy version taking effect at effective_from';

REVOKE ALL ON FUNCTION loyalty.policy_validate(text), loyalty.policy_at(timestamptz),
    loyalty.policy_set(text, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.policy_validate(text), loyalty.policy_at(timestamptz)
    TO loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba, loyalty_store_manager;
GRANT EXECUTE ON FUNCTION loyalty.policy_set(text, timestamptz, text) TO loyalty_crm, loyalty_dba;
GRANT SELECT ON loyalty.policy TO loyalty_crm, loyalty_dba;

-- The demo chain's default policy (docs/policy.md explains every key).  It
-- takes effect from the beginning of time; later versions are user data.
INSERT INTO loyalty.policy (document, effective_from, note) VALUES ($json$
{
  "version": 1,
  "comment": "Demo chain default policy",
  "currency": {"code": "CNY", "scale": 2},
  "tiers": [
    {"code": "member", "name": "Member", "rank": 0},
    {"code": "silver", "name": "Silver", "rank": 1, "elite_bonus_percent": 20,
     "qualify": {"any": {"nights": 10, "stays": 4, "base_points": 25000}}},
    {"code": "gold", "name": "Gold", "rank": 2, "elite_bonus_percent": 80,
     "qualify": {"any": {"nights": 40, "stays": 20, "base_points": 75000}}},
    {"code": "platinum", "name": "Platinum", "rank": 3, "elite_bonus_percent": 100,
     "qualify": {"any": {"nights": 60, "stays": 30, "base_points": 120000}}}
  ],
  "qualification": {
    "period": "calendar_year",
    "validity": {"years_after": 2, "through_month": 3},
    "downgrade": "one_tier"
  },
  "earning": {
    "base_points_per_unit": 10,
    "pending_until": "checkout",
    "milestones": [{"nights": 40, "points": 10000, "every": 10}]
  },
  "expiry": {"mode": "inactivity", "inactivity_months": 24, "notice_days": 30},
  "redemption": {
    "rate": {"points": 1000, "amount": "100.00"},
    "minimum_points": 1000,
    "step_points": 100,
    "order": "soonest_expiring"
  },
  "reversal": {"mode": "within_balance"},
  "transfer": {"enabled": true, "yearly_cap_out": 50000, "yearly_cap_in": 100000}
}
$json$, '-infinity', 'default policy shipped with the extension');

SELECT pg_catalog.pg_extension_config_dump('loyalty.policy', $$WHERE effective_from <> '-infinity'$$);
SELECT pg_catalog.pg_extension_config_dump('loyalty.policy_policy_id_seq', '');
