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
