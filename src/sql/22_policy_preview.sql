-- Policy preview (docs/policy.md, "Previewing a policy"): what a proposed
-- policy document would change, computed in C (src/policy_preview.c) with
-- the tier and earning code the chain runs, without writing anything.
CREATE FUNCTION loyalty.policy_preview(document jsonb,
    at timestamptz DEFAULT now(),
    stays_since timestamptz DEFAULT NULL,
    max_stays integer DEFAULT 1000,
    member_ids uuid[] DEFAULT NULL)
    RETURNS TABLE (section text, member_id uuid, stay_id uuid,
                   tier_from text, tier_to text, benefit_code text,
                   points_from bigint, points_to bigint, change bigint,
                   members bigint)
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_policy_preview';
COMMENT ON FUNCTION loyalty.policy_preview(jsonb, timestamptz, timestamptz, integer, uuid[]) IS
    'What a proposed policy would change: members whose tier moves, points of recent stays, benefits gained and lost; changes nothing';
REVOKE ALL ON FUNCTION loyalty.policy_preview(jsonb, timestamptz, timestamptz, integer, uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.policy_preview(jsonb, timestamptz, timestamptz, integer, uuid[])
    TO loyalty_crm, loyalty_marketing, loyalty_dba;
