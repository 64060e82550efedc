-- Risk tags (docs/benefits.md, "Risk tags and the freeze").
--
-- A risk type says what an unresolved tag of that type freezes: capability
-- names, which are "redemption" (points redemption, checked by the ledger),
-- "transfer", and the benefit kinds of loyalty.benefit.  A risk tag is raised
-- by one store (or HQ) against a member, freezes its type's capabilities at
-- every store from the moment it commits, and is resolved once.  Every step
-- is recorded in loyalty.risk_tag_event.  Store staff see that a member has
-- an unresolved tag through loyalty.risk_tags(); only the raising store and
-- HQ see its internal note, amount owed and resolution.

-- The capabilities a risk type may freeze are C's list (src/risk.c), the
-- one place they are written.
CREATE FUNCTION loyalty._capabilities_valid(freezes text[]) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_capabilities_valid';
REVOKE ALL ON FUNCTION loyalty._capabilities_valid(text[]) FROM PUBLIC;

CREATE TABLE loyalty.risk_type (
    risk_code   text PRIMARY KEY
        CONSTRAINT risk_code_format CHECK (risk_code ~ '^[a-z][a-z0-9_]{0,31}$'),
    name        text NOT NULL
        CONSTRAINT risk_name_length CHECK (length(name) BETWEEN 1 AND 200),
    freezes     text[] NOT NULL DEFAULT '{}'
        CONSTRAINT risk_freezes_valid CHECK (loyalty._capabilities_valid(freezes)),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.risk_type IS 'Kinds of risk tag and the capabilities an unresolved tag of the kind freezes';
-- the shipped types are part of the extension; others are user data
SELECT pg_catalog.pg_extension_config_dump('loyalty.risk_type',
    $$WHERE risk_code NOT IN ('unresolved_violation', 'fraud_review')$$);

-- every backend caches what each type freezes (src/benefit_catalog.c)
CREATE TRIGGER risk_type_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.risk_type
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._cache_invalidate();

INSERT INTO loyalty.risk_type (risk_code, name, freezes) VALUES
    ('unresolved_violation', 'Unresolved violation (damage, unpaid charges)',
     ARRAY['redemption', 'room_upgrade']),
    ('fraud_review', 'Account under fraud review',
     ARRAY['redemption', 'transfer', 'room_discount', 'breakfast', 'late_checkout',
           'room_upgrade', 'gift', 'voucher', 'amenity', 'other']);

CREATE TABLE loyalty.risk_tag (
    tag_id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id     uuid NOT NULL REFERENCES loyalty.member,
    risk_code     text NOT NULL REFERENCES loyalty.risk_type,
    store_code    text REFERENCES loyalty.store,      -- NULL: raised by HQ
    note          text NOT NULL
        CONSTRAINT risk_tag_note_length CHECK (length(note) BETWEEN 1 AND 1000),
    amount_owed   numeric(12, 2)
        CONSTRAINT risk_tag_amount_owed_positive CHECK (amount_owed > 0),
    raised_at     timestamptz NOT NULL DEFAULT now(),
    raised_by     name NOT NULL,
    resolved_at   timestamptz,
    resolved_by   name,
    resolved_store text REFERENCES loyalty.store,
    resolution    text
        CONSTRAINT risk_tag_resolution_valid CHECK (resolution IN ('settled', 'waived', 'raised_in_error')),
    resolution_note text
        CONSTRAINT risk_tag_resolution_note_length CHECK (length(resolution_note) BETWEEN 1 AND 1000),
    CONSTRAINT risk_tag_resolution_complete CHECK
        ((resolved_at IS NULL) = (resolved_by IS NULL) AND
         (resolved_at IS NULL) = (resolution IS NULL) AND
         (resolved_at IS NULL) = (resolution_note IS NULL))
);
COMMENT ON TABLE loyalty.risk_tag IS 'Risk tags of members; an unresolved tag freezes its type''s capabilities chain-wide';
CREATE INDEX risk_tag_member_idx ON loyalty.risk_tag (member_id, raised_at);
CREATE INDEX risk_tag_unresolved_idx ON loyalty.risk_tag (member_id) WHERE resolved_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('loyalty.risk_tag', '');
-- every backend caches the unresolved tags (src/risk_cache.c)
CREATE TRIGGER risk_tag_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.risk_tag
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._cache_invalidate();

CREATE TABLE loyalty.risk_tag_event (
    event_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tag_id      uuid NOT NULL REFERENCES loyalty.risk_tag,
    member_id   uuid NOT NULL REFERENCES loyalty.member,
    action      text NOT NULL
        CONSTRAINT risk_event_action_valid CHECK (action IN ('raised', 'resolved')),
    store_code  text REFERENCES loyalty.store,        -- where the staff acted; NULL: HQ
    login       name NOT NULL,
    role        name NOT NULL,
    department  text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    detail      jsonb NOT NULL
);
COMMENT ON TABLE loyalty.risk_tag_event IS 'Audit trail of risk tags: who raised and resolved each, where and when (append-only)';
CREATE INDEX risk_tag_event_tag_idx ON loyalty.risk_tag_event (tag_id, at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.risk_tag_event', '');

-- The audit trail is append-only: nobody, not even the owner through the API,
-- changes or deletes a step.  One change is allowed (since 1.2): erasure
-- (loyalty._member_erase) removes the free-text note from a step's detail
-- and changes nothing else.
CREATE FUNCTION loyalty._risk_event_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.detail = OLD.detail - 'note'
       AND (NEW.event_id, NEW.tag_id, NEW.member_id, NEW.action, NEW.store_code, NEW.login,
            NEW.role, NEW.department, NEW.at)
           IS NOT DISTINCT FROM (OLD.event_id, OLD.tag_id, OLD.member_id, OLD.action, OLD.store_code,
                                 OLD.login, OLD.role, OLD.department, OLD.at) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the risk tag audit trail is append-only'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'Steps of loyalty.risk_tag_event are never updated or deleted.';
END
$$;
REVOKE ALL ON FUNCTION loyalty._risk_event_append_only() FROM PUBLIC;
CREATE TRIGGER risk_tag_event_append_only
    BEFORE UPDATE OR DELETE ON loyalty.risk_tag_event
    FOR EACH ROW EXECUTE FUNCTION loyalty._risk_event_append_only();

-- set_risk_type: HQ says what an unresolved tag of a type freezes (new type,
-- or a change that takes effect for the type's open tags at once).
CREATE FUNCTION loyalty.risk_type_set(idempotency_key text, risk_code text, name text, freezes text[])
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    prior jsonb;
    bad text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    req := pg_catalog.jsonb_build_array(risk_code, name, freezes);
    prior := loyalty._request_begin('risk_type_set', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN prior #>> '{}';
    END IF;
    IF risk_code IS NULL OR name IS NULL OR freezes IS NULL THEN
        RAISE EXCEPTION 'risk_code, name and freezes must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF risk_code !~ '^[a-z][a-z0-9_]{0,31}$' THEN
        RAISE EXCEPTION 'invalid risk code "%"', risk_code
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A risk code is 1 to 32 lowercase letters, digits and underscores, starting with a letter.';
    END IF;
    IF btrim(name) = '' OR length(name) > 200 THEN
        RAISE EXCEPTION 'a risk type name is 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT f INTO bad FROM unnest(freezes) f
     WHERE f IS NULL OR NOT loyalty._capabilities_valid(ARRAY[f])
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown capability "%"', coalesce(bad, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The capabilities are redemption, transfer and the benefit kinds; earning cannot be frozen.';
    END IF;
    INSERT INTO loyalty.risk_type AS t (risk_code, name, freezes)
        VALUES (risk_code, name, ARRAY(SELECT DISTINCT f FROM unnest(freezes) f ORDER BY f))
        ON CONFLICT ON CONSTRAINT risk_type_pkey
        DO UPDATE SET name = EXCLUDED.name, freezes = EXCLUDED.freezes;
    PERFORM loyalty._audit_change(NULL, 'risk_type_set', 'security', pg_catalog.jsonb_build_object('risk_code', risk_code, 'freezes', freezes));
    PERFORM loyalty._request_end('risk_type_set', idempotency_key, req, pg_catalog.to_jsonb(risk_code));
    RETURN risk_code;
END
$$;
COMMENT ON FUNCTION loyalty.risk_type_set(text, text, text, text[]) IS
    'Create or change a risk type and the capabilities its unresolved tags freeze';

-- C: the freeze check shared with the ledger (src/risk.h).
CREATE FUNCTION loyalty.assert_not_frozen(member_id uuid, capability text)
    RETURNS void
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_assert_not_frozen_sql';
COMMENT ON FUNCTION loyalty.assert_not_frozen(uuid, text) IS
    'Error LY001 if an unresolved risk tag of the member freezes the capability';

CREATE FUNCTION loyalty.frozen_by(member_id uuid, capability text)
    RETURNS text
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_frozen_by_sql';
COMMENT ON FUNCTION loyalty.frozen_by(uuid, text) IS
    'The risk code of the oldest unresolved tag freezing the capability, or NULL';

-- _risk_actor: the caller as recorded in the audit trail.
CREATE FUNCTION loyalty._risk_actor(OUT login name, OUT role name,
    OUT store_code text, OUT department text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT w.login::name, w.role::name, w.store_code, w.department FROM loyalty.whoami() w
$$;
REVOKE ALL ON FUNCTION loyalty._risk_actor() FROM PUBLIC;

CREATE FUNCTION loyalty.risk_tag_raise(
    idempotency_key text,
    member_id   uuid,
    store_code  text,
    risk_code   text,
    note        text,
    amount_owed numeric DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    prior jsonb;
    actor record;
    tag uuid;
    payload jsonb;
BEGIN
    IF member_id IS NULL OR risk_code IS NULL OR note IS NULL THEN
        RAISE EXCEPTION 'member_id, risk_code and note must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- store staff raise for their own store; HQ for any store or none
    PERFORM loyalty._check_access(store_code,
        ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm', 'dba']);
    req := pg_catalog.jsonb_build_array(member_id, store_code, risk_code, note, amount_owed);
    prior := loyalty._request_begin('risk_tag_raise', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN (prior #>> '{}')::uuid;
    END IF;
    SELECT * INTO actor FROM loyalty._risk_actor();
    IF store_code IS NULL AND actor.store_code IS NOT NULL THEN
        RAISE EXCEPTION 'store_code must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Store staff raise risk tags for their own store.';
    END IF;
    IF store_code IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM loyalty.store s WHERE s.store_code = risk_tag_raise.store_code) THEN
        RAISE EXCEPTION 'store "%" does not exist', store_code USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.risk_type t WHERE t.risk_code = risk_tag_raise.risk_code) THEN
        RAISE EXCEPTION 'unknown risk type "%"', risk_code
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The risk types are listed in loyalty.risk_type.';
    END IF;
    IF btrim(note) = '' THEN
        RAISE EXCEPTION 'note must not be empty' USING ERRCODE = 'invalid_parameter_value';
    ELSIF length(note) > 1000 THEN
        RAISE EXCEPTION 'note is longer than 1000 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF amount_owed IS NOT NULL AND (amount_owed <= 0 OR amount_owed <> round(amount_owed, 2)
                                    OR amount_owed >= 10000000000) THEN
        RAISE EXCEPTION 'invalid amount owed %', amount_owed
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'An amount owed is positive, in currency units with at most two decimals, below 10,000,000,000.';
    END IF;
    -- the member row lock orders this raise with concurrent benefit uses and
    -- redemptions of the member: they see the tag once it commits
    PERFORM 1 FROM loyalty.member m WHERE m.member_id = risk_tag_raise.member_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member_id USING ERRCODE = 'no_data_found';
    END IF;

    INSERT INTO loyalty.risk_tag (member_id, risk_code, store_code, note, amount_owed, raised_by)
        VALUES (member_id, risk_code, store_code, note, amount_owed, actor.login)
        RETURNING tag_id INTO tag;
    payload := jsonb_build_object('event', 'risk_tag_raised', 'tag_id', tag,
        'member_id', member_id, 'risk_code', risk_code, 'store_code', store_code,
        'freezes', (SELECT to_jsonb(t.freezes) FROM loyalty.risk_type t WHERE t.risk_code = risk_tag_raise.risk_code),
        'amount_owed', amount_owed);
    INSERT INTO loyalty.risk_tag_event (tag_id, member_id, action, store_code, login, role, department, detail)
        VALUES (tag, member_id, 'raised', actor.store_code, actor.login, actor.role, actor.department, payload);
    -- the event goes to every store: no note in it
    PERFORM loyalty._event_emit('risk_tag_raised', member_id, actor.store_code, payload);
    PERFORM loyalty._audit_change(member_id, 'risk_tag_raise', 'security', pg_catalog.jsonb_build_object('tag_id', tag, 'risk_code', risk_code, 'store_code', store_code));
    PERFORM loyalty._request_end('risk_tag_raise', idempotency_key, req, pg_catalog.to_jsonb(tag));
    RETURN tag;
END
$$;
COMMENT ON FUNCTION loyalty.risk_tag_raise(text, uuid, text, text, text, numeric) IS
    'Raise a risk tag against a member for a store; freezes the risk type''s capabilities chain-wide';

CREATE FUNCTION loyalty.risk_tag_resolve(
    idempotency_key text,
    tag_id     uuid,
    resolution text,
    note       text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    prior jsonb;
    actor record;
    t loyalty.risk_tag;
    payload jsonb;
BEGIN
    IF tag_id IS NULL OR resolution IS NULL OR note IS NULL THEN
        RAISE EXCEPTION 'tag_id, resolution and note must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm', 'dba']);
    req := pg_catalog.jsonb_build_array(tag_id, resolution, note);
    prior := loyalty._request_begin('risk_tag_resolve', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN;
    END IF;
    SELECT * INTO actor FROM loyalty._risk_actor();
    IF resolution NOT IN ('settled', 'waived', 'raised_in_error') THEN
        RAISE EXCEPTION 'invalid resolution "%"', resolution
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A resolution is settled, waived or raised_in_error.';
    END IF;
    IF btrim(note) = '' THEN
        RAISE EXCEPTION 'note must not be empty' USING ERRCODE = 'invalid_parameter_value';
    ELSIF length(note) > 1000 THEN
        RAISE EXCEPTION 'note is longer than 1000 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    SELECT * INTO t FROM loyalty.risk_tag r WHERE r.tag_id = risk_tag_resolve.tag_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'risk tag % does not exist', tag_id USING ERRCODE = 'no_data_found';
    END IF;
    -- a store resolves its own tags; HQ any
    IF actor.store_code IS NOT NULL AND actor.store_code IS DISTINCT FROM t.store_code THEN
        RAISE EXCEPTION 'permission denied for risk tag %', tag_id
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('The tag was raised by %s; staff of store "%s" may resolve only their own store''s tags.',
                                             coalesce('store "' || t.store_code || '"', 'HQ'), actor.store_code),
                  HINT = 'Ask the raising store or HQ to resolve it.';
    END IF;
    -- lock order as in raise_risk_tag: member row, then the tag
    PERFORM 1 FROM loyalty.member m WHERE m.member_id = t.member_id FOR NO KEY UPDATE;
    SELECT * INTO t FROM loyalty.risk_tag r WHERE r.tag_id = risk_tag_resolve.tag_id FOR UPDATE;
    IF t.resolved_at IS NOT NULL THEN
        RAISE EXCEPTION 'risk tag % is already resolved', tag_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = pg_catalog.format('It was resolved (%s) at %s by %s.', t.resolution, t.resolved_at, t.resolved_by);
    END IF;
    UPDATE loyalty.risk_tag r
       SET resolved_at = now(), resolved_by = actor.login, resolved_store = actor.store_code,
           resolution = risk_tag_resolve.resolution, resolution_note = risk_tag_resolve.note
     WHERE r.tag_id = risk_tag_resolve.tag_id;
    payload := jsonb_build_object('event', 'risk_tag_resolved', 'tag_id', t.tag_id,
        'member_id', t.member_id, 'risk_code', t.risk_code, 'store_code', t.store_code,
        'resolution', resolution,
        'unfreezes', (SELECT to_jsonb(y.freezes) FROM loyalty.risk_type y WHERE y.risk_code = t.risk_code));
    INSERT INTO loyalty.risk_tag_event (tag_id, member_id, action, store_code, login, role, department, detail)
        VALUES (t.tag_id, t.member_id, 'resolved', actor.store_code, actor.login, actor.role, actor.department,
                payload || jsonb_build_object('note', note));
    PERFORM loyalty._event_emit('risk_tag_resolved', t.member_id, actor.store_code, payload);
    PERFORM loyalty._audit_change(t.member_id, 'risk_tag_resolve', 'security', pg_catalog.jsonb_build_object('tag_id', tag_id, 'resolution', resolution));
    PERFORM loyalty._request_end('risk_tag_resolve', idempotency_key, req, 'null'::jsonb);
END
$$;
COMMENT ON FUNCTION loyalty.risk_tag_resolve(text, uuid, text, text) IS
    'Resolve a risk tag (settled, waived, raised_in_error); unfreezes what it froze';

CREATE FUNCTION loyalty.risk_tags(member_id uuid, include_resolved boolean DEFAULT false)
    RETURNS TABLE (tag_id uuid, risk_code text, freezes text[], store_code text,
                   raised_at timestamptz, unresolved boolean, resolved_at timestamptz,
                   resolution text, internal_visible boolean, note text,
                   amount_owed numeric, raised_by name, resolved_by name, resolution_note text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mine text;
    hq boolean;
BEGIN
    PERFORM loyalty._check_access(NULL,
        ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm', 'marketing', 'dba']);
    hq := loyalty.caller_is_hq();
    mine := loyalty.caller_store();
    IF NOT EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = risk_tags.member_id) THEN
        RAISE EXCEPTION 'member % does not exist', member_id USING ERRCODE = 'no_data_found';
    END IF;
    -- everyone sees that a tag exists and what it freezes; only the raising
    -- store and HQ see its internal fields
    RETURN QUERY
    SELECT r.tag_id, r.risk_code, y.freezes, r.store_code, r.raised_at,
           r.resolved_at IS NULL, r.resolved_at, r.resolution, v.visible,
           CASE WHEN v.visible THEN r.note END,
           CASE WHEN v.visible THEN r.amount_owed END,
           CASE WHEN v.visible THEN r.raised_by END,
           CASE WHEN v.visible THEN r.resolved_by END,
           CASE WHEN v.visible THEN r.resolution_note END
      FROM loyalty.risk_tag r
      JOIN loyalty.risk_type y ON y.risk_code = r.risk_code
     CROSS JOIN LATERAL (SELECT hq OR r.store_code = mine AS visible) v
     WHERE r.member_id = risk_tags.member_id
       AND (include_resolved OR r.resolved_at IS NULL)
     ORDER BY r.raised_at, r.tag_id;
END
$$;
COMMENT ON FUNCTION loyalty.risk_tags(uuid, boolean) IS
    'A member''s risk tags; notes, amounts and names only for the raising store and HQ';

CREATE FUNCTION loyalty.risk_tag_history(tag_id uuid)
    RETURNS TABLE (action text, at timestamptz, store_code text, login name, role name,
                   department text, detail jsonb)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t loyalty.risk_tag;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm', 'dba']);
    SELECT * INTO t FROM loyalty.risk_tag r WHERE r.tag_id = risk_tag_history.tag_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'risk tag % does not exist', tag_id USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT loyalty.caller_is_hq() AND t.store_code IS DISTINCT FROM loyalty.caller_store() THEN
        RAISE EXCEPTION 'permission denied for risk tag %', tag_id
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The audit trail of a risk tag is shown to the raising store and HQ only.';
    END IF;
    RETURN QUERY
    SELECT e.action, e.at, e.store_code, e.login, e.role, e.department, e.detail
      FROM loyalty.risk_tag_event e
     WHERE e.tag_id = risk_tag_history.tag_id
     ORDER BY e.at, e.action DESC;
END
$$;
COMMENT ON FUNCTION loyalty.risk_tag_history(uuid) IS
    'The audit trail of one risk tag (raising store and HQ only)';

REVOKE ALL ON FUNCTION loyalty.risk_type_set(text, text, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.risk_type_set(text, text, text, text[]) TO loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.assert_not_frozen(uuid, text), loyalty.frozen_by(uuid, text),
    loyalty.risk_tag_raise(text, uuid, text, text, text, numeric),
    loyalty.risk_tag_resolve(text, uuid, text, text), loyalty.risk_tags(uuid, boolean),
    loyalty.risk_tag_history(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.assert_not_frozen(uuid, text), loyalty.frozen_by(uuid, text),
    loyalty.risk_tags(uuid, boolean)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.risk_tag_raise(text, uuid, text, text, text, numeric)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.risk_tag_resolve(text, uuid, text, text),
    loyalty.risk_tag_history(uuid)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
GRANT SELECT ON loyalty.risk_type TO loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT SELECT ON loyalty.risk_tag, loyalty.risk_tag_event TO loyalty_crm, loyalty_dba;
