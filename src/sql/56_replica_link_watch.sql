-- The replication links watched on a schedule (issue 14, follow-up):
-- loyalty.replica_link_watch() runs loyalty.replica_link_check(), keeps
-- each answer in loyalty.replica_link_log (the last
-- loyalty.replica_link_log_keep per link), where a DBA's monitoring reads
-- it, and raises a WARNING in the server log for each link that is down
-- (unreachable, no slot, slot lost, disabled, not subscribed or attached,
-- restored, or disconnected outside a batch store) or whose events have
-- waited longer than loyalty.replica_link_wait_warn.  pg_cron runs it every
-- five minutes as job loyalty-replica-links (src/sql/60_job.sql).

CREATE TABLE loyalty.replica_link_log (
    checked_at     timestamptz NOT NULL,
    store_code     text NOT NULL,
    direction      text NOT NULL,
    status         text NOT NULL,
    wal_status     text,
    events_waiting bigint,
    waiting_since  timestamptz,  -- first check of the current run of checks that found events waiting
    detail         text,
    alert          text,         -- why this check raised a WARNING; NULL when the link is well
    PRIMARY KEY (store_code, direction, checked_at)
);
COMMENT ON TABLE loyalty.replica_link_log IS
    'What loyalty.replica_link_watch() found per replication link: the last loyalty.replica_link_log_keep checks of each, with the alert it raised';
-- kept by pg_dump: the history of the links is the DBA's record
SELECT pg_catalog.pg_extension_config_dump('loyalty.replica_link_log', '');
REVOKE ALL ON loyalty.replica_link_log FROM PUBLIC;
GRANT SELECT ON loyalty.replica_link_log TO loyalty_dba;

CREATE FUNCTION loyalty.replica_link_watch() RETURNS SETOF loyalty.replica_link_log
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
    prev loyalty.replica_link_log;
    r loyalty.replica_link_log;
    wait_warn interval;
    keep integer;
BEGIN
    -- the settings (src/replica_link.c), read as text: this session may
    -- not have loaded the library yet
    wait_warn := coalesce(NULLIF(pg_catalog.current_setting('loyalty.replica_link_wait_warn', true), ''),
                          '15min')::interval;
    keep := coalesce(NULLIF(pg_catalog.current_setting('loyalty.replica_link_log_keep', true), ''),
                     '288')::integer;
    FOR c IN SELECT * FROM loyalty.replica_link_check() LOOP
        prev := NULL;
        SELECT * INTO prev FROM loyalty.replica_link_log l
         WHERE l.store_code = c.store_code AND l.direction = c.direction
         ORDER BY l.checked_at DESC LIMIT 1;
        r := NULL;
        r.checked_at := pg_catalog.clock_timestamp();
        r.store_code := c.store_code;
        r.direction := c.direction;
        r.status := c.status;
        r.wal_status := c.wal_status;
        r.events_waiting := c.events_waiting;
        r.detail := c.detail;
        IF coalesce(c.events_waiting, 0) > 0 THEN
            r.waiting_since := CASE WHEN coalesce(prev.events_waiting, 0) > 0 THEN prev.waiting_since END;
            r.waiting_since := coalesce(r.waiting_since, r.checked_at);
        END IF;
        IF c.status <> 'streaming'
           AND NOT (c.status = 'disconnected'
                    AND EXISTS (SELECT 1 FROM loyalty.replica_store x
                                 WHERE x.store_code = c.store_code AND x.mode = 'batch')) THEN
            r.alert := 'link ' || c.status;
        ELSIF wait_warn > interval '0' AND r.waiting_since <= r.checked_at - wait_warn THEN
            r.alert := pg_catalog.format('%s events waiting since %s', c.events_waiting, r.waiting_since);
        END IF;
        INSERT INTO loyalty.replica_link_log VALUES (r.*);
        IF r.alert IS NOT NULL THEN
            RAISE WARNING 'replication link of store "%" (%): %', r.store_code, r.direction, r.alert
                USING DETAIL = coalesce(r.detail, ''),
                      HINT = 'See loyalty.replica_link_log and docs/replication.md, "The DBA view".';
        END IF;
        DELETE FROM loyalty.replica_link_log l
         WHERE l.store_code = r.store_code AND l.direction = r.direction
           AND l.checked_at < (SELECT k.checked_at FROM loyalty.replica_link_log k
                                WHERE k.store_code = r.store_code AND k.direction = r.direction
                                ORDER BY k.checked_at DESC OFFSET keep - 1 LIMIT 1);
        RETURN NEXT r;
    END LOOP;
END
$$;
COMMENT ON FUNCTION loyalty.replica_link_watch() IS
    'DBA (pg_cron job loyalty-replica-links): run replica_link_check(), keep its answers in replica_link_log, and WARN in the server log of each link down or with events waiting too long';
REVOKE ALL ON FUNCTION loyalty.replica_link_watch() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_link_watch() TO loyalty_dba;
