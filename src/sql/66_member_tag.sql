-- CRM: behaviour tags and tentative preferences (docs/crm.md).  A tag or a
-- preference is recorded at a store (or at HQ), chain-wide or for that
-- store only, and may be tentative: a one-off request ("warmer light") that
-- other stores see as such until someone confirms it.  Tags are retired,
-- never deleted.  Shape and rules are small, so they are SQL here.

ALTER TABLE loyalty.member_tag
    ADD COLUMN scope text NOT NULL DEFAULT 'chain'
        CONSTRAINT tag_scope_valid CHECK (scope IN ('chain', 'store')),
    ADD COLUMN tentative boolean NOT NULL DEFAULT false,
    ADD COLUMN confirmed_at timestamptz,
    ADD COLUMN confirmed_by name,
    ADD COLUMN retired_by name,
    ADD CONSTRAINT tag_store_scope_has_store CHECK (scope = 'chain' OR store_code IS NOT NULL);
COMMENT ON COLUMN loyalty.member_tag.scope IS 'chain: seen at every store; store: only at store_code (and HQ)';
COMMENT ON COLUMN loyalty.member_tag.tentative IS 'Seen once, not yet confirmed (shown as such at every store)';

ALTER TABLE loyalty.member_preference
    ADD COLUMN tentative boolean NOT NULL DEFAULT false,
    ADD COLUMN confirmed_at timestamptz,
    ADD COLUMN confirmed_by name;
COMMENT ON COLUMN loyalty.member_preference.tentative IS
    'A one-off request, not yet confirmed (shown as such at every store that sees it)';

-- The views gain the new columns (at the end) and store-only tags are
-- shown at their store and at HQ only.
CREATE OR REPLACE VIEW loyalty.member_tags WITH (security_barrier) AS
SELECT tag_id, member_id, code, store_code,
       CASE WHEN loyalty.store_visible(store_code) THEN note END AS note,
       tagged_at, retired_at, scope, tentative, confirmed_at
  FROM loyalty.member_tag t
 WHERE (t.scope = 'chain' OR loyalty.store_visible(t.store_code))
   -- a store sees the tags of the members in its reach only, as in the
   -- member views (issue 12.1): enrolled, stayed or booked there, or found
   -- by a lookup of this transaction
   AND EXISTS (SELECT 1 FROM loyalty.member m
                WHERE m.member_id = t.member_id
                  AND (loyalty._member_in_reach(m.member_id, m.home_store)
                       OR EXISTS (SELECT 1 FROM loyalty.stay s
                                   WHERE s.member_id = m.member_id
                                     AND s.store_code = loyalty.caller_store())));
COMMENT ON VIEW loyalty.member_tags IS
    'Behaviour tags of the members in the caller''s reach: chain-wide ones, and store-only ones of the caller''s store; notes only at the tagging store and at HQ';

CREATE OR REPLACE VIEW loyalty.member_preferences WITH (security_barrier) AS
SELECT preference_id, member_id, category, value, scope, store_code, recorded_at, tentative
  FROM loyalty.member_preference
 WHERE retired_at IS NULL;

-- loyalty._crm_purpose(): the audit purpose of a change by the caller
CREATE FUNCTION loyalty._crm_purpose() RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN loyalty.caller_is_hq() THEN 'crm' ELSE 'service' END;
REVOKE ALL ON FUNCTION loyalty._crm_purpose() FROM PUBLIC;

-- loyalty._crm_actor(): the staff role acting (as the audit trail names it)
CREATE FUNCTION loyalty._crm_actor() RETURNS name
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (SELECT w.role::name FROM loyalty.whoami() w);
REVOKE ALL ON FUNCTION loyalty._crm_actor() FROM PUBLIC;

-- loyalty.tag_add: tag a member, at the caller's store (HQ: the named store
-- or none).
CREATE FUNCTION loyalty.tag_add(idempotency_key text, member_id uuid, code text,
    note text DEFAULT NULL, scope text DEFAULT 'chain', tentative boolean DEFAULT false,
    store_code text DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    store text := coalesce(store_code, loyalty.caller_store());
    req jsonb;
    prior jsonb;
    st text;
    id uuid;
BEGIN
    PERFORM loyalty._check_access(store_code, ARRAY['frontdesk', 'store_manager', 'crm']);
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    IF member_id IS NULL OR code IS NULL OR scope IS NULL OR tentative IS NULL THEN
        RAISE EXCEPTION 'member_id, code, scope and tentative must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF code !~ '^[a-z][a-z0-9_]{0,31}$' THEN
        RAISE EXCEPTION 'invalid tag code "%"', code
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A tag code is 1 to 32 lowercase letters, digits and underscores, starting with a letter.';
    END IF;
    IF scope NOT IN ('chain', 'store') THEN
        RAISE EXCEPTION 'invalid tag scope "%"', scope
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use "chain" or "store".';
    END IF;
    IF note IS NOT NULL AND btrim(note) = '' THEN
        RAISE EXCEPTION 'note must not be empty' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use null for no note.';
    ELSIF length(note) > 1000 THEN
        RAISE EXCEPTION 'note is longer than 1000 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF scope = 'store' AND store IS NULL THEN
        RAISE EXCEPTION 'a store-only tag needs a store_code' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    req := pg_catalog.jsonb_build_array(member_id, code, note, scope, tentative, store);
    prior := loyalty._request_begin('tag_add', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN (prior #>> '{}')::uuid;
    END IF;
    IF store IS NOT NULL AND NOT EXISTS (SELECT 1 FROM loyalty.store s WHERE s.store_code = store) THEN
        RAISE EXCEPTION 'store "%" does not exist', store USING ERRCODE = 'no_data_found';
    END IF;
    SELECT m.status INTO st FROM loyalty.member m WHERE m.member_id = tag_add.member_id FOR NO KEY UPDATE;
    IF st IS NULL OR st = 'erased' THEN
        PERFORM loyalty._member_not_found();
    ELSIF st = 'closed' THEN
        RAISE EXCEPTION 'member is closed' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    INSERT INTO loyalty.member_tag (member_id, code, store_code, note, scope, tentative,
                                    confirmed_at, confirmed_by)
        VALUES (member_id, code, store, note, scope, tentative,
                CASE WHEN NOT tentative THEN now() END, CASE WHEN NOT tentative THEN loyalty._crm_actor() END)
        RETURNING tag_id INTO id;
    -- no note in the audit detail or the event: it may hold personal text
    PERFORM loyalty._audit_change(member_id, 'tag_add', loyalty._crm_purpose(),
        pg_catalog.jsonb_build_object('tag_id', id, 'code', code, 'scope', scope, 'tentative', tentative));
    PERFORM loyalty._event_emit('member_tagged', member_id, store,
        pg_catalog.jsonb_build_object('tag_id', id, 'code', code, 'scope', scope, 'tentative', tentative));
    PERFORM loyalty._request_end('tag_add', idempotency_key, req, pg_catalog.to_jsonb(id));
    RETURN id;
END
$$;
COMMENT ON FUNCTION loyalty.tag_add(text, uuid, text, text, text, boolean, text) IS
    'Tag a member (behaviour), chain-wide or store-only, confirmed or tentative; audited, announced';

-- loyalty._tag_lock(tag_id, for_retire): the live tag the caller may see,
-- locked; to retire it the caller must be HQ or the tagging store.
CREATE FUNCTION loyalty._tag_lock(tag_id uuid, for_retire boolean)
    RETURNS loyalty.member_tag
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t loyalty.member_tag;
BEGIN
    IF tag_id IS NULL THEN
        RAISE EXCEPTION 'tag_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO t FROM loyalty.member_tag x
     WHERE x.tag_id = _tag_lock.tag_id AND (x.scope = 'chain' OR loyalty.store_visible(x.store_code))
     FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tag not found' USING ERRCODE = 'no_data_found';
    END IF;
    IF t.retired_at IS NOT NULL THEN
        RAISE EXCEPTION 'tag is retired' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF for_retire AND NOT loyalty.store_visible(t.store_code) THEN
        RAISE EXCEPTION 'permission denied to retire a tag of another store'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The tagging store or HQ CRM may retire it.';
    END IF;
    RETURN t;
END
$$;
REVOKE ALL ON FUNCTION loyalty._tag_lock(uuid, boolean) FROM PUBLIC;

CREATE FUNCTION loyalty.tag_confirm(idempotency_key text, tag_id uuid)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    t loyalty.member_tag;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm']);
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    req := pg_catalog.jsonb_build_array(tag_id);
    IF loyalty._request_begin('tag_confirm', idempotency_key, req) IS NOT NULL THEN
        RETURN;
    END IF;
    t := loyalty._tag_lock(tag_id, false);
    IF NOT t.tentative THEN
        RAISE EXCEPTION 'tag is already confirmed' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE loyalty.member_tag x SET tentative = false, confirmed_at = now(), confirmed_by = loyalty._crm_actor()
     WHERE x.tag_id = t.tag_id;
    PERFORM loyalty._audit_change(t.member_id, 'tag_confirm', loyalty._crm_purpose(),
        pg_catalog.jsonb_build_object('tag_id', t.tag_id, 'code', t.code));
    PERFORM loyalty._event_emit('member_tag_confirmed', t.member_id, loyalty.caller_store(),
        pg_catalog.jsonb_build_object('tag_id', t.tag_id, 'code', t.code));
    PERFORM loyalty._request_end('tag_confirm', idempotency_key, req, 'null'::jsonb);
END
$$;
COMMENT ON FUNCTION loyalty.tag_confirm(text, uuid) IS
    'Confirm a tentative behaviour tag the caller can see; audited, announced';

CREATE FUNCTION loyalty.tag_retire(idempotency_key text, tag_id uuid)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    t loyalty.member_tag;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm']);
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    req := pg_catalog.jsonb_build_array(tag_id);
    IF loyalty._request_begin('tag_retire', idempotency_key, req) IS NOT NULL THEN
        RETURN;
    END IF;
    t := loyalty._tag_lock(tag_id, true);
    UPDATE loyalty.member_tag x SET retired_at = now(), retired_by = loyalty._crm_actor()
     WHERE x.tag_id = t.tag_id;
    PERFORM loyalty._audit_change(t.member_id, 'tag_retire', loyalty._crm_purpose(),
        pg_catalog.jsonb_build_object('tag_id', t.tag_id, 'code', t.code));
    PERFORM loyalty._event_emit('member_tag_retired', t.member_id, t.store_code,
        pg_catalog.jsonb_build_object('tag_id', t.tag_id, 'code', t.code));
    PERFORM loyalty._request_end('tag_retire', idempotency_key, req, 'null'::jsonb);
END
$$;
COMMENT ON FUNCTION loyalty.tag_retire(text, uuid) IS
    'Retire a behaviour tag (the tagging store or HQ); audited, announced';

-- Tentative preferences: recorded by preference_add's rules, then marked.
CREATE FUNCTION loyalty.preference_tentative_add(idempotency_key text, member_id uuid,
    category text, value text, scope text DEFAULT 'chain', store_code text DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    prior jsonb;
    id uuid;
BEGIN
    PERFORM loyalty._check_access(store_code, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm']);
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    req := pg_catalog.jsonb_build_array(member_id, category, value, scope,
                                        coalesce(store_code, loyalty.caller_store()));
    prior := loyalty._request_begin('preference_tentative_add', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN (prior #>> '{}')::uuid;
    END IF;
    id := loyalty.preference_add(member_id, category, value, scope, store_code);
    UPDATE loyalty.member_preference p SET tentative = true WHERE p.preference_id = id;
    PERFORM loyalty._audit_change(member_id, 'preference_tentative_add', loyalty._crm_purpose(),
        pg_catalog.jsonb_build_object('preference_id', id, 'category', category, 'scope', scope));
    PERFORM loyalty._request_end('preference_tentative_add', idempotency_key, req, pg_catalog.to_jsonb(id));
    RETURN id;
END
$$;
COMMENT ON FUNCTION loyalty.preference_tentative_add(text, uuid, text, text, text, text) IS
    'Record a one-off request as a tentative preference (checked as preference_add); audited';

CREATE FUNCTION loyalty.preference_confirm(idempotency_key text, preference_id uuid)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    p loyalty.member_preference;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm']);
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    IF preference_id IS NULL THEN
        RAISE EXCEPTION 'preference_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    req := pg_catalog.jsonb_build_array(preference_id);
    IF loyalty._request_begin('preference_confirm', idempotency_key, req) IS NOT NULL THEN
        RETURN;
    END IF;
    SELECT * INTO p FROM loyalty.member_preference x
     WHERE x.preference_id = preference_confirm.preference_id AND x.retired_at IS NULL
       AND (x.scope = 'chain' OR loyalty.store_visible(x.store_code))
     FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'preference not found' USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT p.tentative THEN
        RAISE EXCEPTION 'preference is already confirmed' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE loyalty.member_preference x SET tentative = false, confirmed_at = now(),
           confirmed_by = loyalty._crm_actor()
     WHERE x.preference_id = p.preference_id;
    PERFORM loyalty._audit_change(p.member_id, 'preference_confirm', loyalty._crm_purpose(),
        pg_catalog.jsonb_build_object('preference_id', p.preference_id, 'category', p.category));
    PERFORM loyalty._request_end('preference_confirm', idempotency_key, req, 'null'::jsonb);
END
$$;
COMMENT ON FUNCTION loyalty.preference_confirm(text, uuid) IS
    'Confirm a tentative preference the caller can see; audited';

REVOKE ALL ON FUNCTION loyalty.tag_add(text, uuid, text, text, text, boolean, text),
    loyalty.tag_confirm(text, uuid), loyalty.tag_retire(text, uuid),
    loyalty.preference_tentative_add(text, uuid, text, text, text, text),
    loyalty.preference_confirm(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.tag_add(text, uuid, text, text, text, boolean, text),
    loyalty.tag_confirm(text, uuid), loyalty.tag_retire(text, uuid)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.preference_tentative_add(text, uuid, text, text, text, text),
    loyalty.preference_confirm(text, uuid)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_crm;
