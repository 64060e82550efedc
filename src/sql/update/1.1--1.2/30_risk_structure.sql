-- risk: the 1.2 API names (issue 11, structure): noun_verb, concept first,
-- the idempotency key first; the 1.1 names become wrappers (99_deprecated).
-- Generated from the difference between 1.1 and src/sql/30_risk.sql.

CREATE FUNCTION loyalty._capabilities_valid(freezes text[]) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_capabilities_valid';

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

REVOKE ALL ON FUNCTION loyalty.risk_type_set(text, text, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.risk_type_set(text, text, text, text[]) TO loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.risk_tag_raise(text, uuid, text, text, text, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.risk_tag_raise(text, uuid, text, text, text, numeric) TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.risk_tag_resolve(text, uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.risk_tag_resolve(text, uuid, text, text) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty._capabilities_valid(text[]) FROM PUBLIC;
-- the capability list is C's (src/risk.c)
ALTER TABLE loyalty.risk_type DROP CONSTRAINT risk_freezes_valid,
    ADD CONSTRAINT risk_freezes_valid CHECK (loyalty._capabilities_valid(freezes));
