-- Store replicas (docs/replication.md): what this server is, the stores HQ
-- replicates to, the store outbox and HQ's record of every outbox event.
--
-- Data flows one way per table: HQ -> store through one publication per
-- store (loyalty_store_<code>), store -> HQ through the store's outbox
-- (publication loyalty_outbox, insert only).  No table is written on both
-- sides.

-- What this server is.  No row: headquarters.  loyalty.store_subscribe()
-- makes a server a store replica.
CREATE TABLE loyalty.replica_node (
    singleton   boolean PRIMARY KEY DEFAULT true
        CONSTRAINT replica_node_singleton CHECK (singleton),
    node_role   text NOT NULL
        CONSTRAINT replica_node_role_valid CHECK (node_role IN ('store', 'hub')),
    store_code  text NOT NULL  -- the store's code, or the hub's
        CONSTRAINT replica_node_store_code_format CHECK (store_code ~ '^[a-z][a-z0-9_]{0,15}$'),
    incarnation bigint NOT NULL
        CONSTRAINT replica_node_incarnation_positive CHECK (incarnation > 0),
    configured_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.replica_node IS 'What this server is: no row at HQ; one row at a store replica or a hub';
SELECT pg_catalog.pg_extension_config_dump('loyalty.replica_node', '');

-- The replica registry, kept at HQ (and replicated to hubs and stores):
-- every store replica and every regional hub.  A store replicated through
-- a hub (via_hub) has its publication and slot at the hub, not at HQ.
CREATE TABLE loyalty.replica_store (
    store_code   text PRIMARY KEY
        CONSTRAINT replica_store_code_format CHECK (store_code ~ '^[a-z][a-z0-9_]{0,15}$'),
    kind         text NOT NULL DEFAULT 'store'
        CONSTRAINT replica_store_kind_valid CHECK (kind IN ('store', 'hub')),
    publication  name NOT NULL,
    slot_name    name NOT NULL,
    mode         text NOT NULL DEFAULT 'streaming'
        CONSTRAINT replica_store_mode_valid CHECK (mode IN ('streaming', 'batch')),
    window_start time,
    window_end   time,
    via_hub      text
        CONSTRAINT replica_store_via_hub_format CHECK (via_hub ~ '^[a-z][a-z0-9_]{0,15}$'),
    offline_redeem_cap bigint NOT NULL DEFAULT 5000
        CONSTRAINT replica_store_cap_nonnegative CHECK (offline_redeem_cap >= 0),
    added_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT replica_store_window_complete CHECK
        ((mode = 'batch') = (window_start IS NOT NULL AND window_end IS NOT NULL)),
    CONSTRAINT replica_store_hub_not_nested CHECK (kind = 'store' OR via_hub IS NULL)
);
COMMENT ON TABLE loyalty.replica_store IS 'Store replicas and regional hubs: publication, slot, mode, hub, offline cap';
SELECT pg_catalog.pg_extension_config_dump('loyalty.replica_store', '');

-- The outbox: at a store, every operation recorded there, append-only;
-- at HQ, every event received from the stores (each applied once).
CREATE SEQUENCE loyalty.outbox_seq;
CREATE TABLE loyalty.outbox (
    event_id    text PRIMARY KEY,
    store_code  text NOT NULL,
    incarnation bigint NOT NULL,
    seq         bigint NOT NULL,
    kind        text NOT NULL,
    member_id   uuid NOT NULL,
    payload     jsonb NOT NULL,
    idem_key    text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    recorded_by name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.outbox IS 'Store operations (<store>-<incarnation>-<seq>): append-only at the store, applied once at HQ';
CREATE UNIQUE INDEX outbox_idem_key ON loyalty.outbox (store_code, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX outbox_member_idx ON loyalty.outbox (member_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.outbox_seq', '');

-- HQ's verdict on each outbox event, published back to the store it came
-- from (row filter on store_code, which is in the primary key and so in the
-- replica identity).
CREATE TABLE loyalty.outbox_result (
    store_code   text NOT NULL,
    event_id     text NOT NULL,
    status       text NOT NULL
        CONSTRAINT outbox_result_status_valid CHECK (status IN ('applied', 'conflict', 'rejected', 'held')),
    sqlstate     text,
    detail       text,
    result       jsonb,
    received_at  timestamptz NOT NULL DEFAULT now(),
    decided_at   timestamptz NOT NULL DEFAULT now(),
    redeliveries integer NOT NULL DEFAULT 0,
    PRIMARY KEY (store_code, event_id)
);
COMMENT ON TABLE loyalty.outbox_result IS 'HQ''s verdict on each store event: applied, conflict (flagged), rejected (malformed) or held (no applier yet)';
CREATE INDEX outbox_result_status_idx ON loyalty.outbox_result (status) WHERE status <> 'applied';
SELECT pg_catalog.pg_extension_config_dump('loyalty.outbox_result', '');

-- HQ: store events received and not yet applied, in the order the replica
-- applier applies them (a batch per transaction; src/replica_apply.c).
-- Never published; a row leaves in the transaction that records the
-- event's verdict.
CREATE SEQUENCE loyalty.outbox_queue_seq;
CREATE TABLE loyalty.outbox_queue (
    position     bigint PRIMARY KEY DEFAULT nextval('loyalty.outbox_queue_seq'),
    event_id     text NOT NULL UNIQUE,
    queued_at    timestamptz NOT NULL DEFAULT now(),
    redeliveries integer NOT NULL DEFAULT 0
);
COMMENT ON TABLE loyalty.outbox_queue IS 'HQ: store events received and waiting for the replica applier, in apply order';
SELECT pg_catalog.pg_extension_config_dump('loyalty.outbox_queue', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.outbox_queue_seq', '');

-- Store-scoped tables are published with row filters on store_code; PG15
-- requires the filter's columns to be in the replica identity, or UPDATE
-- and DELETE fail at HQ.  The primary key stays as it is; the replica
-- identity is a unique index on the key plus the filter columns.
CREATE UNIQUE INDEX member_preference_replica_key
    ON loyalty.member_preference (preference_id, scope, store_code);
ALTER TABLE loyalty.member_preference REPLICA IDENTITY USING INDEX member_preference_replica_key;
CREATE UNIQUE INDEX stay_replica_key ON loyalty.stay (stay_id, store_code);
ALTER TABLE loyalty.stay REPLICA IDENTITY USING INDEX stay_replica_key;
-- benefit_grant is filtered on source and store_code, which may be NULL
-- (not allowed in a replica identity index): the whole row is its
-- identity.  The table is small and rarely updated.
ALTER TABLE loyalty.benefit_grant REPLICA IDENTITY FULL;

-- The apply worker fires only row triggers, and only ENABLE ALWAYS or
-- ENABLE REPLICA ones: policy versions arriving at a store must still
-- invalidate the store backends' policy caches.
-- The same holds for the benefit catalogue and the risk tags.
CREATE TRIGGER policy_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.policy
    FOR EACH ROW EXECUTE FUNCTION loyalty._cache_invalidate();
ALTER TABLE loyalty.policy ENABLE REPLICA TRIGGER policy_invalidate_replica;
CREATE TRIGGER risk_type_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.risk_type
    FOR EACH ROW EXECUTE FUNCTION loyalty._cache_invalidate();
ALTER TABLE loyalty.risk_type ENABLE REPLICA TRIGGER risk_type_invalidate_replica;
CREATE TRIGGER risk_tag_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.risk_tag
    FOR EACH ROW EXECUTE FUNCTION loyalty._cache_invalidate();
ALTER TABLE loyalty.risk_tag ENABLE REPLICA TRIGGER risk_tag_invalidate_replica;
CREATE TRIGGER benefit_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.benefit
    FOR EACH ROW EXECUTE FUNCTION loyalty._cache_invalidate();
ALTER TABLE loyalty.benefit ENABLE REPLICA TRIGGER benefit_invalidate_replica;
CREATE TRIGGER benefit_grant_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.benefit_grant
    FOR EACH ROW EXECUTE FUNCTION loyalty._cache_invalidate();
ALTER TABLE loyalty.benefit_grant ENABLE REPLICA TRIGGER benefit_grant_invalidate_replica;
-- Store replicas: HQ's DBA functions, the outbox applier, store mode and
-- the store's application functions (docs/replication.md).

-- The applier: a BEFORE INSERT row trigger that fires in the apply worker
-- too (ENABLE ALWAYS).  At a store it lets the row through.
CREATE FUNCTION loyalty._outbox_receive() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'loyalty_outbox_receive';
CREATE TRIGGER outbox_receive
    BEFORE INSERT ON loyalty.outbox
    FOR EACH ROW EXECUTE FUNCTION loyalty._outbox_receive();
ALTER TABLE loyalty.outbox ENABLE ALWAYS TRIGGER outbox_receive;

-- The outbox is append-only: no UPDATE, DELETE or TRUNCATE, at the store
-- or at HQ (loyalty.store_outbox_prune() is the one way to drop rows).
CREATE FUNCTION loyalty._outbox_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.current_setting('loyalty.outbox_prune', true) = 'on' AND TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'loyalty.outbox is append-only'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'Store events are never changed or removed once recorded.';
END
$$;
CREATE TRIGGER outbox_append_only
    BEFORE UPDATE OR DELETE ON loyalty.outbox
    FOR EACH ROW EXECUTE FUNCTION loyalty._outbox_append_only();
CREATE TRIGGER outbox_no_truncate
    BEFORE TRUNCATE ON loyalty.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._outbox_append_only();

-- HQ: DBA functions.
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

CREATE FUNCTION loyalty.hub_subscribe(hq_conninfo text, hub_code text) RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_hub_subscribe';
COMMENT ON FUNCTION loyalty.hub_subscribe(text, text) IS
    'Hub: become a regional hub, subscribing to its publication at HQ (initial copy)';

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

CREATE FUNCTION loyalty.replica_retry(event_id text DEFAULT NULL) RETURNS integer
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_retry';
COMMENT ON FUNCTION loyalty.replica_retry(text) IS
    'HQ: re-apply held and conflicting store events; returns how many are applied now';

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

-- The state of every store's replica.  A definer function, so that a DBA
-- login sees walsender details without pg_monitor.
CREATE FUNCTION loyalty._replica_status(
    OUT store_code text, OUT kind text, OUT mode text, OUT via_hub text, OUT slot_name name,
    OUT slot_status text, OUT wal_status text, OUT retained_wal_bytes bigint,
    OUT lag_bytes bigint, OUT lag_time interval, OUT last_reply timestamptz,
    OUT outbox_attached boolean, OUT outbox_last_message timestamptz,
    OUT last_event_id text, OUT last_event_at timestamptz,
    OUT events_applied bigint, OUT events_held bigint, OUT conflicts bigint,
    OUT rejected bigint, OUT redeliveries bigint, OUT outbox_status text)
    RETURNS SETOF record
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.store_code, r.kind, r.mode, r.via_hub, r.slot_name,
           CASE WHEN r.via_hub IS NOT NULL THEN 'via hub'
                WHEN s.slot_name IS NULL THEN 'no slot'
                WHEN s.wal_status = 'lost' THEN 'lost'
                WHEN s.active THEN 'streaming'
                ELSE 'disconnected' END,
           s.wal_status,
           pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::bigint,
           pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint,
           coalesce(w.replay_lag, w.flush_lag, w.write_lag,
                    CASE WHEN s.active AND s.confirmed_flush_lsn = pg_catalog.pg_current_wal_lsn()
                         THEN interval '0' END),
           w.reply_time,
           sub.oid IS NOT NULL,
           CASE WHEN pg_catalog.isfinite(ss.last_msg_receipt_time) THEN ss.last_msg_receipt_time END,
           e.last_event_id, e.last_event_at,
           coalesce(e.applied, 0), coalesce(e.held, 0), coalesce(e.conflicts, 0),
           coalesce(e.rejected, 0), coalesce(e.redeliveries, 0),
           CASE WHEN r.via_hub IS NOT NULL THEN 'via hub'
                WHEN sub.oid IS NULL THEN 'not attached'
                WHEN NOT sub.subenabled THEN 'disabled'
                WHEN ss.pid IS NOT NULL AND coalesce(pg_catalog.isfinite(ss.last_msg_receipt_time), false) THEN 'streaming'
                ELSE 'disconnected' END
      FROM loyalty.replica_store r
      LEFT JOIN pg_catalog.pg_replication_slots s ON s.slot_name = r.slot_name AND r.via_hub IS NULL
            AND s.database = pg_catalog.current_database()
      LEFT JOIN pg_catalog.pg_stat_replication w ON w.pid = s.active_pid
      LEFT JOIN pg_catalog.pg_subscription sub
             ON sub.subname = 'loyalty_outbox_' || r.store_code
            AND sub.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d
                                WHERE d.datname = pg_catalog.current_database())
      LEFT JOIN pg_catalog.pg_stat_subscription ss ON ss.subid = sub.oid AND ss.relid IS NULL
      LEFT JOIN LATERAL (
            SELECT (pg_catalog.array_agg(x.event_id ORDER BY x.decided_at DESC)
                        FILTER (WHERE x.status = 'applied'))[1] AS last_event_id,
                   pg_catalog.max(x.decided_at) FILTER (WHERE x.status = 'applied') AS last_event_at,
                   pg_catalog.count(*) FILTER (WHERE x.status = 'applied') AS applied,
                   pg_catalog.count(*) FILTER (WHERE x.status = 'held') AS held,
                   pg_catalog.count(*) FILTER (WHERE x.status = 'conflict') AS conflicts,
                   pg_catalog.count(*) FILTER (WHERE x.status = 'rejected') AS rejected,
                   pg_catalog.sum(x.redeliveries) AS redeliveries
              FROM loyalty.outbox_result x
             WHERE x.store_code = r.store_code
                OR x.store_code IN (SELECT h.store_code FROM loyalty.replica_store h
                                     WHERE h.via_hub = r.store_code)) e ON true
     ORDER BY r.store_code
$$;
CREATE VIEW loyalty.replica_status AS SELECT * FROM loyalty._replica_status();
COMMENT ON VIEW loyalty.replica_status IS
    'HQ: every store replica''s slot, retained WAL, lag, outbox subscription and event verdicts';

-- Store mode.
CREATE FUNCTION loyalty.store_subscribe(hq_conninfo text, store_code text) RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_store_subscribe';
COMMENT ON FUNCTION loyalty.store_subscribe(text, text) IS
    'Store: become the replica of a store, subscribing to its publication at HQ (initial copy)';

CREATE FUNCTION loyalty.store_unsubscribe(drop_outbox_slot boolean DEFAULT false) RETURNS void
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_store_unsubscribe';
COMMENT ON FUNCTION loyalty.store_unsubscribe(boolean) IS
    'Store: drop the subscription to HQ (to re-seed), optionally the outbox slot (to leave)';

CREATE FUNCTION loyalty.store_window_tick() RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_store_window_tick';
COMMENT ON FUNCTION loyalty.store_window_tick() IS
    'Store: enable the subscription inside the batch window, disable it outside (schedule with pg_cron)';

-- Append one event to the store's outbox.  Idempotent on idem_key.
CREATE FUNCTION loyalty._outbox_append(
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

-- What a member may still redeem at this store before HQ confirms: the
-- replicated balance and the store's offline cap, each less the
-- redemptions this store recorded that HQ has not yet decided.
CREATE FUNCTION loyalty.store_offline_redeemable(member_id uuid) RETURNS bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    node loyalty.replica_node;
    cap bigint;
    balance bigint;
    unconfirmed bigint;
BEGIN
    SELECT * INTO node FROM loyalty.replica_node;
    IF NOT FOUND OR node.node_role <> 'store' THEN
        RAISE EXCEPTION 'this server is not a store replica' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT r.offline_redeem_cap INTO cap FROM loyalty.replica_store r WHERE r.store_code = node.store_code;
    cap := coalesce(cap, 0);
    SELECT coalesce(sum((o.payload ->> 'points')::bigint), 0) INTO unconfirmed
      FROM loyalty.outbox o
      LEFT JOIN loyalty.outbox_result x USING (store_code, event_id)
     WHERE o.member_id = store_offline_redeemable.member_id AND o.kind = 'redemption'
       AND (x.status IS NULL OR x.status = 'held');
    IF pg_catalog.to_regclass('loyalty.point_balance') IS NOT NULL THEN
        SELECT b.balance INTO balance FROM loyalty.point_balance b
         WHERE b.member_id = store_offline_redeemable.member_id;
    END IF;
    RETURN greatest(0, least(cap, coalesce(balance, 0)) - unconfirmed);
END
$$;
COMMENT ON FUNCTION loyalty.store_offline_redeemable(uuid) IS
    'Store: points a member may redeem here before HQ confirms (offline limit)';

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

-- The store's events and HQ's verdict on each: pending until HQ decides.
CREATE VIEW loyalty.store_outbox_status WITH (security_barrier) AS
SELECT o.event_id, o.store_code, o.kind, o.member_id, o.payload, o.recorded_at, o.recorded_by,
       coalesce(x.status, 'pending') AS status, x.sqlstate, x.detail, x.decided_at, x.redeliveries
  FROM loyalty.outbox o
  LEFT JOIN loyalty.outbox_result x USING (store_code, event_id)
 WHERE o.store_code = (SELECT n.store_code FROM loyalty.replica_node n);
COMMENT ON VIEW loyalty.store_outbox_status IS
    'Store: every event recorded here and HQ''s verdict (pending, applied, conflict, rejected, held)';

-- A store's preferences as staff see them: HQ's (replicated) plus what
-- was recorded here and is not yet back from HQ.
CREATE VIEW loyalty.store_member_preferences WITH (security_barrier) AS
SELECT p.member_id, p.category, p.value, p.scope, p.store_code, p.recorded_at, false AS provisional
  FROM loyalty.member_preference p
 WHERE p.retired_at IS NULL
UNION ALL
SELECT o.member_id, o.payload ->> 'category', o.payload ->> 'value', o.payload ->> 'scope',
       o.store_code, o.recorded_at, true
  FROM loyalty.store_outbox_status o
 WHERE o.kind = 'preference' AND o.status IN ('pending', 'held');
COMMENT ON VIEW loyalty.store_member_preferences IS
    'Store: preferences known here, including those recorded here and not yet confirmed by HQ';

-- The store's side of replication.
CREATE FUNCTION loyalty._store_replica_state(
    OUT store_code text, OUT subscription name, OUT enabled boolean,
    OUT last_message timestamptz, OUT hq_wal_time timestamptz,
    OUT events_pending bigint, OUT oldest_pending timestamptz,
    OUT events_applied bigint, OUT conflicts bigint, OUT rejected bigint,
    OUT status text, OUT errors bigint)
    RETURNS SETOF record
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.store_code, sub.subname, sub.subenabled, CASE WHEN pg_catalog.isfinite(ss.last_msg_receipt_time) THEN ss.last_msg_receipt_time END, ss.latest_end_time,
           e.pending, e.oldest, e.applied, e.conflicts, e.rejected,
           CASE WHEN sub.oid IS NULL THEN 'not subscribed'
                WHEN NOT sub.subenabled THEN 'disabled'
                WHEN ss.pid IS NOT NULL AND coalesce(pg_catalog.isfinite(ss.last_msg_receipt_time), false) THEN 'streaming'
                ELSE 'disconnected' END,
           coalesce(st.apply_error_count + st.sync_error_count, 0)
      FROM loyalty.replica_node n
      LEFT JOIN pg_catalog.pg_subscription sub ON sub.subname = 'loyalty_store_' || n.store_code
      LEFT JOIN pg_catalog.pg_stat_subscription ss ON ss.subid = sub.oid AND ss.relid IS NULL
      LEFT JOIN pg_catalog.pg_stat_subscription_stats st ON st.subid = sub.oid
      LEFT JOIN LATERAL (
            SELECT pg_catalog.count(*) FILTER (WHERE s.status IN ('pending', 'held')) AS pending,
                   pg_catalog.min(s.recorded_at) FILTER (WHERE s.status IN ('pending', 'held')) AS oldest,
                   pg_catalog.count(*) FILTER (WHERE s.status = 'applied') AS applied,
                   pg_catalog.count(*) FILTER (WHERE s.status = 'conflict') AS conflicts,
                   pg_catalog.count(*) FILTER (WHERE s.status = 'rejected') AS rejected
              FROM loyalty.store_outbox_status s) e ON true
$$;
CREATE VIEW loyalty.store_replica_state AS SELECT * FROM loyalty._store_replica_state();
COMMENT ON VIEW loyalty.store_replica_state IS
    'Store: the subscription to HQ and the outbox events pending, applied and in conflict';

-- Remove events HQ has applied, older than keep; never pending ones.
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

REVOKE ALL ON FUNCTION loyalty._outbox_receive(), loyalty._outbox_append_only(),
    loyalty.replica_store_add(text, text, bigint, text), loyalty.replica_slot_create(text),
    loyalty.replica_outbox_attach(text, text, text), loyalty.replica_store_remove(text, text, boolean),
    loyalty.replica_retry(text), loyalty.replica_mode_set(text, text, text, time, time),
    loyalty.replica_offline_cap_set(text, text, bigint), loyalty._replica_status(),
    loyalty.replica_hub_add(text, text), loyalty.hub_subscribe(text, text),
    loyalty.store_subscribe(text, text), loyalty.store_unsubscribe(boolean),
    loyalty.store_window_tick(), loyalty._outbox_append(text, uuid, jsonb, text, text[]),
    loyalty.store_preference_record(text, uuid, text, text, text),
    loyalty.store_risk_tag_raise(text, uuid, text, text, numeric),
    loyalty.store_points_accrue(text, uuid, bigint, text, text),
    loyalty.store_offline_redeemable(uuid),
    loyalty.store_points_redeem(text, uuid, bigint, text),
    loyalty.store_benefit_use(text, uuid, text, jsonb),
    loyalty._store_replica_state(), loyalty.store_outbox_prune(text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_store_add(text, text, bigint, text), loyalty.replica_slot_create(text),
    loyalty.replica_outbox_attach(text, text, text), loyalty.replica_store_remove(text, text, boolean),
    loyalty.replica_retry(text), loyalty.replica_mode_set(text, text, text, time, time),
    loyalty.replica_offline_cap_set(text, text, bigint), loyalty._replica_status(),
    loyalty.store_subscribe(text, text), loyalty.store_unsubscribe(boolean),
    loyalty.store_window_tick(), loyalty._store_replica_state(),
    loyalty.replica_hub_add(text, text), loyalty.hub_subscribe(text, text),
    loyalty.store_outbox_prune(text, interval) TO loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.replica_offline_cap_set(text, text, bigint) TO loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.store_preference_record(text, uuid, text, text, text)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.store_risk_tag_raise(text, uuid, text, text, numeric)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.store_points_accrue(text, uuid, bigint, text, text),
    loyalty.store_offline_redeemable(uuid), loyalty.store_points_redeem(text, uuid, bigint, text),
    loyalty.store_benefit_use(text, uuid, text, jsonb)
    TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_dba;
GRANT SELECT ON loyalty.replica_status TO loyalty_dba;
GRANT SELECT ON loyalty.store_replica_state TO loyalty_dba, loyalty_store_manager;
GRANT SELECT ON loyalty.store_outbox_status, loyalty.store_member_preferences
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_dba;
GRANT SELECT ON loyalty.replica_store, loyalty.outbox_result, loyalty.outbox_queue TO loyalty_dba;

-- At a store replica, its department roles appear with its store row
-- (src/replica_store_roles.c).
CREATE FUNCTION loyalty._store_arrived() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'loyalty_store_arrived';
REVOKE ALL ON FUNCTION loyalty._store_arrived() FROM PUBLIC;
CREATE TRIGGER store_arrived
    AFTER INSERT ON loyalty.store
    FOR EACH ROW EXECUTE FUNCTION loyalty._store_arrived();
ALTER TABLE loyalty.store ENABLE ALWAYS TRIGGER store_arrived;
-- Store-mode views that show member data are owned by loyalty_view_owner,
-- which cannot bypass row level security (docs/privacy.md).  The DBA views
-- over replication statistics (replica_status, store_replica_state) stay
-- with the extension owner: they read pg_replication_slots and
-- pg_stat_subscription, and hold no member data.
GRANT SELECT ON loyalty.outbox, loyalty.outbox_result, loyalty.replica_node TO loyalty_view_owner;
ALTER VIEW loyalty.store_outbox_status OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.store_member_preferences OWNER TO loyalty_view_owner;
