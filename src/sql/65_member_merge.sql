-- CRM: duplicates and merges (docs/crm.md).  The merge and the name
-- similarity are in C (src/member_merge.c); the duplicate report is a
-- query over them.

CREATE TABLE loyalty.member_merge (
    merge_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    survivor    uuid NOT NULL REFERENCES loyalty.member,
    duplicate   uuid NOT NULL REFERENCES loyalty.member
        CONSTRAINT member_merge_duplicate_key UNIQUE,
    merged_at   timestamptz NOT NULL DEFAULT now(),
    merged_by   name NOT NULL DEFAULT session_user,
    detail      jsonb NOT NULL,
    CONSTRAINT member_merge_distinct CHECK (survivor <> duplicate)
);
COMMENT ON TABLE loyalty.member_merge IS
    'Every merge: the duplicate (closed) and the survivor it was merged into; links their audit histories';
CREATE INDEX member_merge_survivor_idx ON loyalty.member_merge (survivor);
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_merge', '');
REVOKE ALL ON loyalty.member_merge FROM PUBLIC;
GRANT SELECT ON loyalty.member_merge TO loyalty_crm, loyalty_dba;

CREATE FUNCTION loyalty.name_similarity(a text, b text) RETURNS real
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_name_similarity';
COMMENT ON FUNCTION loyalty.name_similarity(text, text) IS
    'Trigram similarity of two names, 0 to 1 (the measure of pg_trgm''s similarity())';

CREATE FUNCTION loyalty.member_merge(idempotency_key text, survivor uuid, duplicate uuid)
    RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_member_merge';
COMMENT ON FUNCTION loyalty.member_merge(text, uuid, uuid) IS
    'Merge a duplicate member into the survivor in one transaction (points, stays, tier, consents, ...); audited';

-- loyalty.member_duplicates(min_score, max_rows): pairs of open members that
-- are probably one person, with a score and why: the same phone or email
-- (score 1), or the same birth date and similar names (score: the name
-- similarity).  ID numbers cannot be shared (their blind index is unique).
CREATE FUNCTION loyalty.member_duplicates(min_score real DEFAULT 0.5, max_rows integer DEFAULT 1000)
    RETURNS TABLE (member_a uuid, member_b uuid, score real, reasons text[])
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm']);
    IF min_score IS NULL OR max_rows IS NULL THEN
        RAISE EXCEPTION 'min_score and max_rows must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF min_score < 0 OR min_score > 1 OR max_rows < 1 THEN
        RAISE EXCEPTION 'min_score must be from 0 to 1 and max_rows at least 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH open AS (
        SELECT p.member_id, p.full_name, p.birth_date, p.phone, lower(p.email) AS email
          FROM loyalty.member_profile p JOIN loyalty.member m ON m.member_id = p.member_id
         WHERE m.status IN ('active', 'suspended')
    ), pairs AS (
        SELECT a.member_id AS a, b.member_id AS b, 'phone' AS reason, 1::real AS s
          FROM open a JOIN open b ON b.phone = a.phone AND a.member_id < b.member_id
        UNION ALL
        SELECT a.member_id, b.member_id, 'email', 1::real
          FROM open a JOIN open b ON b.email = a.email AND a.member_id < b.member_id
        UNION ALL
        SELECT a.member_id, b.member_id, 'name_and_birth_date',
               loyalty.name_similarity(a.full_name, b.full_name)
          FROM open a JOIN open b ON b.birth_date = a.birth_date AND a.member_id < b.member_id
    )
    SELECT x.a, x.b, max(x.s), array_agg(x.reason ORDER BY x.reason)
      FROM pairs x
     WHERE x.s >= min_score
     GROUP BY x.a, x.b
     ORDER BY max(x.s) DESC, x.a, x.b
     LIMIT max_rows;
END
$$;
COMMENT ON FUNCTION loyalty.member_duplicates(real, integer) IS
    'Probable duplicate members with a score and reasons (same phone, email, or birth date and similar name)';

-- A merged duplicate's id and card resolve to its survivor.
CREATE FUNCTION loyalty.member_resolve(member_id uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT coalesce(m.merged_into, m.member_id) FROM loyalty.member m
     WHERE m.member_id = member_resolve.member_id AND m.status <> 'erased';
END;
COMMENT ON FUNCTION loyalty.member_resolve(uuid) IS
    'The member to act for: the survivor if this member was merged into another (NULL if unknown)';

CREATE FUNCTION loyalty.card_resolve(card_no text) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT coalesce(m.merged_into, m.member_id) FROM loyalty.member m
     WHERE m.card_no = card_resolve.card_no AND m.status <> 'erased';
END;
COMMENT ON FUNCTION loyalty.card_resolve(text) IS
    'The member a card belongs to: the survivor for a merged duplicate''s card (NULL if unknown)';

REVOKE ALL ON FUNCTION loyalty.name_similarity(text, text), loyalty.member_merge(text, uuid, uuid),
    loyalty.member_duplicates(real, integer), loyalty.member_resolve(uuid),
    loyalty.card_resolve(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.name_similarity(text, text), loyalty.member_merge(text, uuid, uuid),
    loyalty.member_duplicates(real, integer) TO loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.member_resolve(uuid), loyalty.card_resolve(text)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_crm;
