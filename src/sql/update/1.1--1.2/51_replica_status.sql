-- replica (issue 14.11 and the per-database slot fix): replica_status
-- joins the slot of this database only (slot names are per server; a
-- same-named slot of another database is that database's) and says
-- whether HQ's outbox subscription is streaming (outbox_status);
-- store_replica_state says whether the store's subscription is streaming
-- (status) and counts its errors.  New output columns: the views and
-- their functions are made again, with their grants.
DROP VIEW loyalty.replica_status;
DROP FUNCTION loyalty._replica_status();
DROP VIEW loyalty.store_replica_state;
DROP FUNCTION loyalty._store_replica_state();
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
REVOKE ALL ON FUNCTION loyalty._replica_status(), loyalty._store_replica_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._replica_status(), loyalty._store_replica_state() TO loyalty_dba;
GRANT SELECT ON loyalty.replica_status TO loyalty_dba;
GRANT SELECT ON loyalty.store_replica_state TO loyalty_dba, loyalty_store_manager;
