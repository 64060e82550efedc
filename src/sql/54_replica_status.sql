-- Replication links as they are (issue 14.11, docs/replication.md "The DBA
-- view"): loyalty.replica_link_check() asks the other end of every link of
-- this server (src/replica_link.c) and says, per store and direction,
-- whether it streams, is disconnected, cannot reach the other server, or
-- reads a slot that is lost or gone, and how many events wait.

CREATE FUNCTION loyalty._replica_probe(
    subscription name, slot_name text, after_seq bigint, verdict_prefix text,
    OUT reachable boolean, OUT slot_found boolean, OUT wal_status text,
    OUT events_after bigint, OUT error text)
    RETURNS record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_replica_probe';
REVOKE ALL ON FUNCTION loyalty._replica_probe(name, text, bigint, text) FROM PUBLIC;

-- The state of one of this server's slots: no slot, slot lost (its WAL was
-- removed: re-seed), streaming (a walsender reads it) or disconnected.
CREATE FUNCTION loyalty._replica_slot_state(slot text, OUT status text, OUT wal_status text, OUT lag_bytes bigint)
    RETURNS record
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN s.slot_name IS NULL THEN 'no slot'
                WHEN s.wal_status = 'lost' THEN 'slot lost'
                WHEN s.active THEN 'streaming'
                ELSE 'disconnected' END,
           s.wal_status,
           pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint
      FROM (SELECT 1) x
      LEFT JOIN pg_catalog.pg_replication_slots s
             ON s.slot_name = slot AND s.database = pg_catalog.current_database()
$$;
REVOKE ALL ON FUNCTION loyalty._replica_slot_state(text) FROM PUBLIC;

-- The state of one of this server's subscriptions, asking its publisher
-- about the slot it reads: not subscribed, unreachable (the publisher
-- does not answer), no slot / slot lost (at the publisher: re-seed),
-- disabled, streaming, or disconnected (reachable, slot intact, but no
-- worker streams: it is starting again or keeps failing).
CREATE FUNCTION loyalty._replica_sub_state(sub name, slot text, after_seq bigint, verdict_prefix text,
    OUT status text, OUT wal_status text, OUT events_after bigint, OUT detail text)
    RETURNS record
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    p record;
BEGIN
    SELECT x.oid, x.subenabled, (st.pid IS NOT NULL AND coalesce(pg_catalog.isfinite(st.last_msg_receipt_time), false)) AS streaming
      INTO s
      FROM pg_catalog.pg_subscription x
      LEFT JOIN pg_catalog.pg_stat_subscription st ON st.subid = x.oid AND st.relid IS NULL
     WHERE x.subname = sub
       AND x.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
    IF NOT FOUND THEN
        status := 'not subscribed';
        RETURN;
    END IF;
    p := loyalty._replica_probe(sub, slot, after_seq, verdict_prefix);
    wal_status := p.wal_status;
    events_after := p.events_after;
    detail := p.error;
    status := CASE WHEN NOT p.reachable THEN 'unreachable'
                   WHEN p.slot_found IS NOT TRUE AND p.error IS NULL THEN 'no slot'
                   WHEN p.wal_status = 'lost' THEN 'slot lost'
                   WHEN NOT s.subenabled THEN 'disabled'
                   WHEN s.streaming THEN 'streaming'
                   ELSE 'disconnected' END;
END
$$;
REVOKE ALL ON FUNCTION loyalty._replica_sub_state(name, text, bigint, text) FROM PUBLIC;

CREATE FUNCTION loyalty.replica_link_check(
    OUT store_code text, OUT direction text, OUT status text, OUT wal_status text,
    OUT events_waiting bigint, OUT detail text)
    RETURNS SETOF record
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    node loyalty.replica_node;
    r loyalty.replica_store;
    sl record;
    su record;
    upstream text;
    prefix text;
    issued bigint;
BEGIN
    SELECT * INTO node FROM loyalty.replica_node;
    IF FOUND THEN
        -- this server is a store or hub: its subscription to HQ (or its
        -- hub) and HQ's view of it, then its outbox slot and the events
        -- that wait for HQ's verdict
        upstream := CASE node.node_role WHEN 'store' THEN 'loyalty_store_' ELSE 'loyalty_hub_' END
                    || node.store_code;
        prefix := node.store_code || '-' || node.incarnation || '-';
        su := loyalty._replica_sub_state(upstream::name, upstream, NULL,
                                         CASE WHEN node.node_role = 'store' THEN prefix END);
        store_code := node.store_code;
        direction := 'from HQ';
        status := su.status;
        wal_status := su.wal_status;
        events_waiting := NULL;  -- (su.events_after is HQ's last event of this incarnation)
        detail := su.detail;
        RETURN NEXT;
        sl := loyalty._replica_slot_state('loyalty_outbox');
        direction := 'to HQ';
        status := sl.status;
        wal_status := sl.wal_status;
        SELECT pg_catalog.count(*) INTO events_waiting
          FROM loyalty.store_outbox_status o WHERE o.status IN ('pending', 'held');
        detail := NULL;
        -- HQ has seen events of this incarnation beyond the last number
        -- this store issued: it was restored from an older backup, and its
        -- next events would take ids HQ already holds
        SELECT CASE WHEN q.is_called THEN q.last_value ELSE 0 END INTO issued FROM loyalty.outbox_seq q;
        IF su.events_after IS NOT NULL AND su.events_after > issued THEN
            status := 'restored';
            detail := pg_catalog.format('headquarters holds events of this store up to %s%s, this store''s outbox ends at %s%s: '
                                        'it was restored from an older backup; re-seed it before it records anything else '
                                        '(docs/replication.md, "Restoring a store")',
                                        prefix, su.events_after, prefix, issued);
        END IF;
        RETURN NEXT;
    END IF;
    -- the stores this server serves (HQ: those not served through a hub;
    -- a hub: its own): its slot for each, and its subscription to each one's
    -- outbox with the events the store holds that have not arrived here
    FOR r IN SELECT * FROM loyalty.replica_store x
              WHERE (node.node_role IS NULL AND x.via_hub IS NULL)
                 OR (node.node_role = 'hub' AND x.via_hub = node.store_code)
              ORDER BY x.store_code LOOP
        store_code := r.store_code;
        sl := loyalty._replica_slot_state(r.slot_name);
        direction := 'to store';
        status := sl.status;
        wal_status := sl.wal_status;
        events_waiting := NULL;
        detail := CASE WHEN sl.lag_bytes IS NOT NULL THEN sl.lag_bytes || ' bytes of WAL not confirmed' END;
        RETURN NEXT;
        su := loyalty._replica_sub_state(('loyalty_outbox_' || r.store_code)::name, 'loyalty_outbox',
                CASE WHEN r.kind = 'store' THEN
                    (SELECT coalesce(pg_catalog.max(o.seq), 0) FROM loyalty.outbox o WHERE o.store_code = r.store_code)
                END, NULL);
        direction := 'from store';
        status := CASE su.status WHEN 'not subscribed' THEN 'not attached' ELSE su.status END;
        wal_status := su.wal_status;
        events_waiting := su.events_after;
        detail := su.detail;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION loyalty.replica_link_check() IS
    'DBA: every replication link of this server as it is (streaming, disconnected, unreachable, slot lost), asking the other end, and the events waiting';
REVOKE ALL ON FUNCTION loyalty.replica_link_check() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_link_check() TO loyalty_dba;
