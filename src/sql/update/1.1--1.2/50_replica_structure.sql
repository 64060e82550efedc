-- replica: the 1.2 API names (issue 11, structure): noun_verb, concept first,
-- the idempotency key first; the 1.1 names become wrappers (99_deprecated).
-- Generated from the difference between 1.1 and src/sql/50_replica.sql.

CREATE FUNCTION loyalty.replica_store_add(
    idempotency_key text, store_code text, offline_redeem_cap bigint DEFAULT 5000, via_hub text DEFAULT NULL)
    RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_store_add';
COMMENT ON FUNCTION loyalty.replica_store_add(text, text, bigint, text) IS
    'HQ: create a store''s publication and register its replica; then call replica_slot_create in a new transaction';

CREATE FUNCTION loyalty.replica_hub_add(idempotency_key text, hub_code text) RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_hub_add';
COMMENT ON FUNCTION loyalty.replica_hub_add(text, text) IS
    'HQ: a regional hub that republishes to its stores; then replica_slot_create(hub_code)';

CREATE FUNCTION loyalty.replica_slot_create(store_code text) RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_create_slot';
COMMENT ON FUNCTION loyalty.replica_slot_create(text) IS
    'HQ: (re)make a store''s replication slot; must be the first statement of its transaction';

CREATE FUNCTION loyalty.replica_outbox_attach(idempotency_key text, store_code text, store_conninfo text) RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_outbox_attach';
COMMENT ON FUNCTION loyalty.replica_outbox_attach(text, text, text) IS
    'HQ: subscribe to a store''s outbox; each event is applied once';

CREATE FUNCTION loyalty.replica_store_remove(idempotency_key text, store_code text, force boolean DEFAULT false)
    RETURNS void
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_store_remove';
COMMENT ON FUNCTION loyalty.replica_store_remove(text, text, boolean) IS
    'HQ: drop a store''s outbox subscription, publication and slot';

CREATE FUNCTION loyalty.replica_mode_set(
    idempotency_key text,
    store_code text, mode text, window_start time DEFAULT NULL, window_end time DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    prior jsonb;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['dba']);
    req := pg_catalog.jsonb_build_array(store_code, mode, window_start, window_end);
    prior := loyalty._request_begin('replica_mode_set', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN;
    END IF;
    IF mode IS NULL OR mode NOT IN ('streaming', 'batch') THEN
        RAISE EXCEPTION 'invalid replication mode "%"', mode
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use streaming, or batch with a window.';
    END IF;
    IF (mode = 'batch') <> (window_start IS NOT NULL AND window_end IS NOT NULL)
       OR (mode = 'streaming' AND (window_start IS NOT NULL OR window_end IS NOT NULL)) THEN
        RAISE EXCEPTION 'batch mode needs a window, streaming mode takes none'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE loyalty.replica_store r
       SET mode = replica_mode_set.mode, window_start = replica_mode_set.window_start,
           window_end = replica_mode_set.window_end
     WHERE r.store_code = replica_mode_set.store_code;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'store "%" has no replica', store_code USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty._audit_change(NULL, 'replica_mode_set', 'operations', pg_catalog.jsonb_build_object('request', req));
    PERFORM loyalty._request_end('replica_mode_set', idempotency_key, req, 'null'::jsonb);
END
$$;
COMMENT ON FUNCTION loyalty.replica_mode_set(text, text, text, time, time) IS
    'HQ: streaming, or a nightly batch window (store local time) applied by the store''s store_window_tick()';

CREATE FUNCTION loyalty.replica_offline_cap_set(idempotency_key text, store_code text, points bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    prior jsonb;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['dba', 'crm']);
    req := pg_catalog.jsonb_build_array(store_code, points);
    prior := loyalty._request_begin('replica_offline_cap_set', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN;
    END IF;
    IF points IS NULL OR points < 0 THEN
        RAISE EXCEPTION 'offline redemption cap must be zero or more points'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE loyalty.replica_store r SET offline_redeem_cap = points
     WHERE r.store_code = replica_offline_cap_set.store_code;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'store "%" has no replica', store_code USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty._audit_change(NULL, 'replica_offline_cap_set', 'operations', pg_catalog.jsonb_build_object('request', req));
    PERFORM loyalty._request_end('replica_offline_cap_set', idempotency_key, req, 'null'::jsonb);
END
$$;
COMMENT ON FUNCTION loyalty.replica_offline_cap_set(text, text, bigint) IS
    'HQ: the most points one member may redeem at the store while its redemptions are unconfirmed';

CREATE OR REPLACE FUNCTION loyalty._outbox_append(
    kind text, member_id uuid, payload jsonb, idem_key text, departments text[])
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    node loyalty.replica_node;
    prior loyalty.outbox;
    seq bigint;
    id text;
BEGIN
    SELECT * INTO node FROM loyalty.replica_node;
    IF NOT FOUND OR node.node_role <> 'store' THEN
        RAISE EXCEPTION 'this server is not a store replica'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'At headquarters, call the ledger, preference and tag functions directly.';
    END IF;
    PERFORM loyalty._check_access(node.store_code, departments);
    IF member_id IS NULL THEN
        RAISE EXCEPTION 'member_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = _outbox_append.member_id) THEN
        RAISE EXCEPTION 'member % is not known at this store', member_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'Members enrol at headquarters; the store receives them by replication.';
    END IF;
    PERFORM loyalty._idempotency_key_check(idem_key);
    LOOP
        IF idem_key IS NOT NULL THEN
            SELECT * INTO prior FROM loyalty.outbox o
             WHERE o.store_code = node.store_code AND o.idem_key = _outbox_append.idem_key;
            IF FOUND THEN
                IF prior.kind = _outbox_append.kind AND prior.member_id = _outbox_append.member_id
                   AND prior.payload = _outbox_append.payload THEN
                    RETURN prior.event_id;
                END IF;
                RAISE EXCEPTION 'idempotency_key "%" was already used for another store event', idem_key
                    USING ERRCODE = 'unique_violation',
                          HINT = 'Use a fresh key for a new operation, and the same key and arguments when retrying one.';
            END IF;
        END IF;
        seq := pg_catalog.nextval('loyalty.outbox_seq');
        id := node.store_code || '-' || node.incarnation || '-' || seq;
        BEGIN
            INSERT INTO loyalty.outbox (event_id, store_code, incarnation, seq, kind, member_id, payload, idem_key)
                VALUES (id, node.store_code, node.incarnation, seq, _outbox_append.kind,
                        _outbox_append.member_id, _outbox_append.payload, _outbox_append.idem_key);
            -- the store call's change record, named after its API function
            PERFORM loyalty._audit_change(_outbox_append.member_id,
                CASE _outbox_append.kind WHEN 'accrual' THEN 'store_points_accrue'
                    WHEN 'redemption' THEN 'store_points_redeem' WHEN 'benefit_use' THEN 'store_benefit_use'
                    WHEN 'preference' THEN 'store_preference_record' ELSE 'store_risk_tag_raise' END,
                'service', pg_catalog.jsonb_build_object('event_id', id, 'kind', _outbox_append.kind));
            RETURN id;
        EXCEPTION WHEN unique_violation THEN
            -- a concurrent call with the same key committed first: return its event
            IF idem_key IS NULL THEN
                RAISE;
            END IF;
        END;
    END LOOP;
END
$$;

CREATE FUNCTION loyalty.store_preference_record(
    idempotency_key text, member_id uuid, category text, value text, scope text DEFAULT 'chain')
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF category IS NULL OR category NOT IN ('pillow', 'allergy', 'floor', 'lighting', 'bed', 'crib',
                                            'smoking', 'room', 'dining', 'other') THEN
        RAISE EXCEPTION 'invalid preference category "%"', category USING ERRCODE = 'invalid_parameter_value';
    ELSIF value IS NULL OR length(value) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'preference value must be 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    ELSIF scope IS NULL OR scope NOT IN ('chain', 'store') THEN
        RAISE EXCEPTION 'invalid preference scope "%"', scope
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use chain or store.';
    END IF;
    RETURN loyalty._outbox_append('preference', member_id,
        pg_catalog.jsonb_build_object('category', category, 'value', value, 'scope', scope),
        idempotency_key, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'dba']);
END
$$;
COMMENT ON FUNCTION loyalty.store_preference_record(text, uuid, text, text, text) IS
    'Store: record a guest preference in the outbox; returns the event id';

CREATE FUNCTION loyalty.store_risk_tag_raise(
    idempotency_key text, member_id uuid, risk_code text, note text, amount_owed numeric DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF risk_code IS NULL OR NOT EXISTS (SELECT 1 FROM loyalty.risk_type t WHERE t.risk_code = store_risk_tag_raise.risk_code) THEN
        RAISE EXCEPTION 'unknown risk type "%"', risk_code
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The risk types are listed in loyalty.risk_type.';
    ELSIF note IS NULL OR btrim(note) = '' THEN
        RAISE EXCEPTION 'note must not be empty' USING ERRCODE = 'invalid_parameter_value';
    ELSIF length(note) > 1000 THEN
        RAISE EXCEPTION 'note is longer than 1000 characters' USING ERRCODE = 'string_data_right_truncation';
    ELSIF amount_owed IS NOT NULL AND (amount_owed <= 0 OR amount_owed <> round(amount_owed, 2)
                                       OR amount_owed >= 10000000000) THEN
        RAISE EXCEPTION 'invalid amount owed %', amount_owed USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN loyalty._outbox_append('risk_tag', member_id,
        pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'risk_code', risk_code, 'note', note, 'amount_owed', amount_owed::text)),
        idempotency_key, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'dba']);
END
$$;
COMMENT ON FUNCTION loyalty.store_risk_tag_raise(text, uuid, text, text, numeric) IS
    'Store: raise a risk tag (e.g. an unresolved violation) in the outbox; HQ raises it with loyalty.risk_tag_raise()';

CREATE FUNCTION loyalty.store_points_accrue(
    idempotency_key text, member_id uuid, points bigint, source text DEFAULT 'stay', reference text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._points_check(points);
    IF source IS NULL OR source NOT IN ('stay', 'spend') THEN
        RAISE EXCEPTION 'invalid accrual source "%"', source
            USING ERRCODE = 'invalid_parameter_value', HINT = 'A store records stay or spend accruals.';
    ELSIF reference IS NULL OR pg_catalog.btrim(reference) = '' THEN
        -- HQ applies no accrual without a stay or charge behind it (issue
        -- 14.10); refusing it here keeps the guest's points from showing as
        -- provisional at the desk and then vanishing as a conflict
        RAISE EXCEPTION 'a store accrual needs a reference'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Name the stay or charge behind the points: its id, its PMS key or the folio number.';
    ELSIF length(reference) > 200 THEN
        RAISE EXCEPTION 'reference is longer than 200 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    RETURN loyalty._outbox_append('accrual', member_id,
        pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'points', points, 'source', source, 'reference', reference)),
        idempotency_key, ARRAY['frontdesk', 'fnb', 'store_manager', 'dba']);
END
$$;
COMMENT ON FUNCTION loyalty.store_points_accrue(text, uuid, bigint, text, text) IS
    'Store: record points earned in the outbox (provisional until HQ applies it); returns the event id';

CREATE FUNCTION loyalty.store_points_redeem(
    idempotency_key text, member_id uuid, points bigint, reward text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    allowed bigint;
BEGIN
    PERFORM loyalty._points_check(points);
    IF reward IS NULL OR length(reward) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'reward must be 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the replicated policy's minimum and step, by the ledger's own check
    PERFORM loyalty._redemption_check(points);
    -- the same freeze check, message and SQLSTATE (LY001) as HQ's ledger
    IF member_id IS NOT NULL THEN
        PERFORM loyalty.assert_not_frozen(member_id, 'redemption');
    END IF;
    -- serialise this member's redemptions at this store
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('loyalty.store_points_redeem'),
                                             pg_catalog.hashtext(member_id::text));
    IF idempotency_key IS NULL OR NOT EXISTS (SELECT 1 FROM loyalty.outbox o WHERE o.idem_key = store_points_redeem.idempotency_key) THEN
        allowed := loyalty.store_offline_redeemable(member_id);
        IF points > allowed THEN
            RAISE EXCEPTION 'redemption of % points exceeds the offline limit', points
                USING ERRCODE = 'check_violation',
                      DETAIL = pg_catalog.format('At most %s points may be redeemed for this member here until headquarters confirms earlier redemptions.', allowed);
        END IF;
    END IF;
    RETURN loyalty._outbox_append('redemption', member_id,
        pg_catalog.jsonb_build_object('points', points, 'reward', reward),
        idempotency_key, ARRAY['frontdesk', 'fnb', 'store_manager', 'dba']);
END
$$;
COMMENT ON FUNCTION loyalty.store_points_redeem(text, uuid, bigint, text) IS
    'Store: redeem points within the offline limit, recorded in the outbox; returns the event id';

CREATE FUNCTION loyalty.store_benefit_use(
    idempotency_key text, member_id uuid, benefit text, detail jsonb DEFAULT '{}')
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    here text := (SELECT n.store_code FROM loyalty.replica_node n WHERE n.node_role = 'store');
    usable loyalty.usable_benefit;
BEGIN
    IF benefit IS NULL OR benefit !~ '^[a-z][a-z0-9_]{0,47}$' THEN
        RAISE EXCEPTION 'invalid benefit code "%"', benefit USING ERRCODE = 'invalid_parameter_value';
    ELSIF detail IS NULL OR pg_catalog.jsonb_typeof(detail) <> 'object' THEN
        RAISE EXCEPTION 'benefit detail must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- resolved on the replicated catalogue, tier and risk tags; limits are
    -- checked by HQ when the event arrives (a use beyond them is a conflict)
    IF here IS NOT NULL AND member_id IS NOT NULL THEN
        SELECT * INTO usable FROM loyalty.benefits(member_id, here) b WHERE b.benefit_code = store_benefit_use.benefit;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'benefit "%" is not available to this member at this store', benefit
                USING ERRCODE = 'no_data_found';
        ELSIF usable.frozen THEN
            RAISE EXCEPTION 'benefit "%" is frozen by an unresolved risk tag (%)', benefit, usable.frozen_by
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN loyalty._outbox_append('benefit_use', member_id,
        pg_catalog.jsonb_build_object('benefit', benefit, 'detail', detail),
        idempotency_key, ARRAY['frontdesk', 'fnb', 'store_manager', 'dba']);
END
$$;
COMMENT ON FUNCTION loyalty.store_benefit_use(text, uuid, text, jsonb) IS
    'Store: record a benefit used (voucher, late checkout) in the outbox; HQ applies it with loyalty.benefit_use()';

CREATE FUNCTION loyalty.store_outbox_prune(idempotency_key text, keep interval DEFAULT '30 days') RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    prior jsonb;
    n bigint;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['dba']);
    req := pg_catalog.jsonb_build_array(keep);
    prior := loyalty._request_begin('store_outbox_prune', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN (prior #>> '{}')::bigint;
    END IF;
    IF keep IS NULL OR keep < interval '0' THEN
        RAISE EXCEPTION 'keep must be a non-negative interval' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_catalog.set_config('loyalty.outbox_prune', 'on', true);
    DELETE FROM loyalty.outbox o
     USING loyalty.outbox_result x
     WHERE x.store_code = o.store_code AND x.event_id = o.event_id
       AND x.status = 'applied' AND x.decided_at < pg_catalog.now() - keep
       AND EXISTS (SELECT 1 FROM loyalty.replica_node n WHERE n.node_role = 'store');
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM pg_catalog.set_config('loyalty.outbox_prune', 'off', true);
    PERFORM loyalty._audit_change(NULL, 'store_outbox_prune', 'operations', pg_catalog.jsonb_build_object('request', req, 'pruned', n));
    PERFORM loyalty._request_end('store_outbox_prune', idempotency_key, req, pg_catalog.to_jsonb(n));
    RETURN n;
END
$$;
COMMENT ON FUNCTION loyalty.store_outbox_prune(text, interval) IS
    'Store: drop outbox events HQ applied more than keep ago (the deletes are not published)';

REVOKE ALL ON FUNCTION loyalty.replica_store_add(text, text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_store_add(text, text, bigint, text) TO loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.replica_hub_add(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_hub_add(text, text) TO loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.replica_slot_create(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_slot_create(text) TO loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.replica_outbox_attach(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_outbox_attach(text, text, text) TO loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.replica_store_remove(text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_store_remove(text, text, boolean) TO loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.replica_mode_set(text, text, text, time, time) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_mode_set(text, text, text, time, time) TO loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.replica_offline_cap_set(text, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_offline_cap_set(text, text, bigint) TO loyalty_dba, loyalty_crm;
REVOKE ALL ON FUNCTION loyalty.store_preference_record(text, uuid, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_preference_record(text, uuid, text, text, text) TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.store_risk_tag_raise(text, uuid, text, text, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_risk_tag_raise(text, uuid, text, text, numeric) TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.store_points_accrue(text, uuid, bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_points_accrue(text, uuid, bigint, text, text) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.store_points_redeem(text, uuid, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_points_redeem(text, uuid, bigint, text) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.store_benefit_use(text, uuid, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_benefit_use(text, uuid, text, jsonb) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.store_outbox_prune(text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_outbox_prune(text, interval) TO loyalty_dba;
