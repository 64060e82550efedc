-- API functions for applications (docs/privacy.md): SECURITY DEFINER, fixed
-- search_path, the caller's store and department from role membership,
-- results in the caller's department view, every access audited before the
-- result is returned.  A member that does not exist and one out of reach
-- (erased) give the same error.

-- _not_found: the one error for "no such member" and "not yours to see".
CREATE FUNCTION loyalty._member_not_found() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'member not found' USING ERRCODE = 'no_data_found';
END
$$;

-- _visible_fields: the fields a department's view shows (not hidden).
CREATE FUNCTION loyalty._visible_fields(department text) RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT coalesce(array_agg(c.field ORDER BY c.field), '{}')
      FROM loyalty.field_policy_current c
     WHERE c.department = _visible_fields.department AND c.treatment <> 'hide';
END;

-- loyalty.frontdesk_lookup(key, purpose): find members by card number,
-- phone or ID number (through its blind index, src/sql/44_identity.sql);
-- rows of loyalty.member_frontdesk.
CREATE FUNCTION loyalty.frontdesk_lookup(key text, purpose text DEFAULT 'check_in')
    RETURNS SETOF loyalty.member_frontdesk
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids uuid[];
    id uuid;
    fields text[];
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm']);
    IF key IS NULL OR btrim(key) = '' THEN
        RAISE EXCEPTION 'lookup key must not be empty' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF length(key) > 32 THEN
        RAISE EXCEPTION 'lookup key is longer than 32 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    -- three index lookups (a single OR would scan every member)
    SELECT array_agg(DISTINCT m.member_id ORDER BY m.member_id) INTO ids
      FROM loyalty.member m
     WHERE m.status <> 'erased'
       AND m.member_id IN (
            SELECT c.member_id FROM loyalty.member c WHERE c.card_no = key
            UNION ALL
            SELECT p.member_id FROM loyalty.member_profile p WHERE p.phone = key
            UNION ALL
            SELECT i.member_id FROM loyalty.member_identity i
             WHERE i.id_number_index = loyalty._blind_index('id_number', key));
    IF ids IS NULL THEN
        PERFORM loyalty._member_not_found();
    END IF;
    fields := loyalty._visible_fields('frontdesk');
    FOREACH id IN ARRAY ids LOOP
        PERFORM loyalty._audit(id, 'lookup', fields, purpose);
    END LOOP;
    RETURN QUERY SELECT v.* FROM loyalty.member_frontdesk v WHERE v.member_id = ANY (ids)
                  ORDER BY v.member_id;
END
$$;
COMMENT ON FUNCTION loyalty.frontdesk_lookup(text, text) IS
    'Front desk: find members by card number, phone or ID number, masked for the front desk; audited';

-- loyalty.housekeeping_profile(member_id, purpose): the housekeeping view of
-- a member and the preferences the caller's store may see, as jsonb.
CREATE FUNCTION loyalty.housekeeping_profile(member_id uuid, purpose text DEFAULT 'room_preparation')
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result jsonb;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['housekeeping', 'store_manager', 'crm']);
    SELECT pg_catalog.to_jsonb(v) INTO result
      FROM loyalty.member_housekeeping v
     WHERE v.member_id = housekeeping_profile.member_id AND v.status <> 'erased';
    IF result IS NULL THEN
        PERFORM loyalty._member_not_found();
    END IF;
    PERFORM loyalty._audit(member_id, 'profile',
        loyalty._visible_fields('housekeeping') || '{preferences}'::text[], purpose);
    RETURN pg_catalog.jsonb_strip_nulls(result) || pg_catalog.jsonb_build_object('preferences',
        (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                    'category', p.category, 'value', p.value, 'scope', p.scope,
                    'store_code', p.store_code, 'recorded_at', p.recorded_at)
                  ORDER BY p.category, p.recorded_at), '[]')
           FROM loyalty.member_preferences p
          WHERE p.member_id = housekeeping_profile.member_id));
END
$$;
COMMENT ON FUNCTION loyalty.housekeeping_profile(uuid, text) IS
    'Housekeeping: a member''s masked profile and the preferences the caller''s store may see; audited';

-- loyalty.preferences(member_id): the member's current preferences the
-- caller's store may see.
CREATE FUNCTION loyalty.preferences(member_id uuid)
    RETURNS SETOF loyalty.member_preferences
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm']);
    IF NOT EXISTS (SELECT 1 FROM loyalty.member m
                    WHERE m.member_id = preferences.member_id AND m.status <> 'erased') THEN
        PERFORM loyalty._member_not_found();
    END IF;
    RETURN QUERY SELECT p.* FROM loyalty.member_preferences p
                  WHERE p.member_id = preferences.member_id
                  ORDER BY p.category, p.recorded_at;
END
$$;
COMMENT ON FUNCTION loyalty.preferences(uuid) IS
    'Current preferences of a member: chain-wide ones and the caller''s store''s own';

-- loyalty.preference_add(member_id, category, value, scope, store_code):
-- record a preference at the caller's store (HQ names the store).
CREATE FUNCTION loyalty.preference_add(member_id uuid, category text, value text,
    scope text DEFAULT 'chain', store_code text DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    store text := coalesce(store_code, loyalty.caller_store());
    id uuid;
BEGIN
    PERFORM loyalty._check_access(store, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm']);
    IF store IS NULL THEN
        RAISE EXCEPTION 'store_code is required for HQ callers' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF member_id IS NULL OR category IS NULL OR value IS NULL OR scope IS NULL THEN
        RAISE EXCEPTION 'member_id, category, value and scope must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF scope NOT IN ('chain', 'store') THEN
        RAISE EXCEPTION 'invalid preference scope "%"', scope
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use "chain" or "store".';
    END IF;
    IF category NOT IN ('pillow', 'allergy', 'floor', 'lighting', 'bed', 'crib',
                        'smoking', 'room', 'dining', 'other') THEN
        RAISE EXCEPTION 'invalid preference category "%"', category
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Categories are pillow, allergy, floor, lighting, bed, crib, smoking, room, dining and other.';
    END IF;
    IF btrim(value) = '' OR length(value) > 200 THEN
        RAISE EXCEPTION 'preference value must be 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.member m
                    WHERE m.member_id = preference_add.member_id AND m.status <> 'erased') THEN
        PERFORM loyalty._member_not_found();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.store s WHERE s.store_code = store) THEN
        RAISE EXCEPTION 'store "%" does not exist', store USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO loyalty.member_preference (member_id, category, value, scope, store_code)
        VALUES (preference_add.member_id, category, value, scope, store)
        RETURNING preference_id INTO id;
    PERFORM loyalty._audit(member_id, 'preference_add', ARRAY['preferences'], category);
    RETURN id;
END
$$;
COMMENT ON FUNCTION loyalty.preference_add(uuid, text, text, text, text) IS
    'Record a guest preference, chain-wide or store-only, at the caller''s store; audited';

-- loyalty.preference_retire(preference_id): retire a preference the caller
-- may see (a store-only one at its own store only).
CREATE FUNCTION loyalty.preference_retire(preference_id uuid)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    member uuid;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm']);
    SELECT p.member_id INTO member FROM loyalty.member_preference p
     WHERE p.preference_id = preference_retire.preference_id AND p.retired_at IS NULL
       AND (p.scope = 'chain' OR loyalty.store_visible(p.store_code))
     FOR UPDATE;
    IF member IS NULL THEN
        RAISE EXCEPTION 'preference not found' USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE loyalty.member_preference p SET retired_at = now()
     WHERE p.preference_id = preference_retire.preference_id;
    PERFORM loyalty._audit(member, 'preference_retire', ARRAY['preferences'], NULL);
END
$$;
COMMENT ON FUNCTION loyalty.preference_retire(uuid) IS 'Retire a guest preference; audited';

REVOKE ALL ON FUNCTION loyalty._member_not_found(), loyalty._visible_fields(text),
    loyalty.frontdesk_lookup(text, text), loyalty.housekeeping_profile(uuid, text),
    loyalty.preferences(uuid), loyalty.preference_add(uuid, text, text, text, text),
    loyalty.preference_retire(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.frontdesk_lookup(text, text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.housekeeping_profile(uuid, text)
    TO loyalty_housekeeping, loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.preferences(uuid), loyalty.preference_add(uuid, text, text, text, text),
    loyalty.preference_retire(uuid)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_crm;
