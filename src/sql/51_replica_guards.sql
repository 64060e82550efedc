-- Store replica guards (issue 14: restore, subscribe, drop; docs/replication.md
-- and docs/operations.md).

-- Which server and database this node is: recorded when HQ first adds a
-- store, a hub or an outbox, and when a server subscribes as a store or
-- hub.  Dumped with the database, so a restored copy (another database,
-- another server) carries the identity of the original: HQ's outbox
-- applier then leaves store events alone (they are the restore's data)
-- until a DBA calls loyalty.replica_adopt().
CREATE TABLE loyalty.replica_identity (
    singleton         boolean PRIMARY KEY DEFAULT true
        CONSTRAINT replica_identity_singleton CHECK (singleton),
    system_identifier text NOT NULL
        CONSTRAINT replica_identity_sysid_format CHECK (system_identifier ~ '^[0-9]{1,20}$'),
    database_oid      oid NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.replica_identity IS 'The server (system identifier) and database this replication node is; a restored copy names the original';
SELECT pg_catalog.pg_extension_config_dump('loyalty.replica_identity', '');
GRANT SELECT ON loyalty.replica_identity TO loyalty_dba;

-- HQ: store events whose id HQ had already seen with other content.  A
-- store restored from an older backup numbers its new operations again
-- from where the backup left off; such an event is another operation,
-- not a redelivery: it is kept here (with a WARNING), never applied and
-- never dropped silently.  Not published.
CREATE TABLE loyalty.outbox_reused (
    reuse_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_code  text NOT NULL,
    event_id    text NOT NULL,
    event       jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.outbox_reused IS 'HQ: store events that reused an id HQ had seen with other content (a store restored from an older backup); kept, not applied';
CREATE INDEX outbox_reused_event_idx ON loyalty.outbox_reused (store_code, event_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.outbox_reused', '');
-- its identity's sequence too: a restore goes on from the last id dumped
SELECT pg_catalog.pg_extension_config_dump('loyalty.outbox_reused_reuse_id_seq', '');
GRANT SELECT ON loyalty.outbox_reused TO loyalty_dba;

CREATE FUNCTION loyalty.replica_adopt() RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_adopt';
COMMENT ON FUNCTION loyalty.replica_adopt() IS
    'DBA: make this (restored) database the replication node its identity names; returns system identifier/database OID';
REVOKE ALL ON FUNCTION loyalty.replica_adopt() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_adopt() TO loyalty_dba;

-- DROP EXTENSION loyalty: refused while stores are attached (a loyalty_*
-- slot or subscription in this database); otherwise the loyalty_*
-- publications go with it (src/replica_guard.c).
CREATE FUNCTION loyalty._drop_guard() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'loyalty_drop_guard';
REVOKE ALL ON FUNCTION loyalty._drop_guard() FROM PUBLIC;
CREATE EVENT TRIGGER loyalty_drop_guard ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION')
    EXECUTE FUNCTION loyalty._drop_guard();
