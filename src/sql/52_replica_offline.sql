-- Enrolment at a store replica (issue 18, docs/replication.md "Enrolment at
-- a store").  Stays, check-outs and charges at a store need no SQL of their
-- own: loyalty.stay_record() and the others record outbox events there
-- (src/replica_offline.c).

-- Each store's card block, assigned by HQ when the store is added and
-- replicated to the store with its replica_store row: offline card numbers
-- are 9, the block, a number and the check digit, so no two stores (and
-- never HQ, whose numbers start with 1 to 8) issue the same number.
CREATE SEQUENCE loyalty.replica_card_block_seq MINVALUE 1 MAXVALUE 999;
SELECT pg_catalog.pg_extension_config_dump('loyalty.replica_card_block_seq', '');
ALTER TABLE loyalty.replica_store
    ADD COLUMN card_block integer
        DEFAULT pg_catalog.nextval('loyalty.replica_card_block_seq')
        CONSTRAINT replica_store_card_block_key UNIQUE
        CONSTRAINT replica_store_card_block_range CHECK (card_block BETWEEN 1 AND 999);
COMMENT ON COLUMN loyalty.replica_store.card_block IS
    'The store''s block of offline card numbers (9, the block, a number, the check digit)';

-- The profile fields of an enrolment travel to HQ in their own column,
-- which loyalty.store_outbox_status (readable by every store department)
-- does not show.
ALTER TABLE loyalty.outbox ADD COLUMN personal jsonb;
COMMENT ON COLUMN loyalty.outbox.personal IS
    'Profile fields of an enrolment event (name, phone, email, birth date...), never shown by store_outbox_status';

CREATE FUNCTION loyalty._card_number_offline(block integer, seq bigint) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_card_number_offline';
REVOKE ALL ON FUNCTION loyalty._card_number_offline(integer, bigint) FROM PUBLIC;

-- Called by loyalty.member_enroll() at a store replica, once the arguments
-- are checked: the next card number of the store's block (after every one
-- issued here, replicated back or still in the outbox), a provisional
-- member id, and an 'enrol' event for HQ.  The member is not written
-- here: HQ's row arrives by replication once HQ has applied the event.
CREATE FUNCTION loyalty._store_member_enroll(
    idempotency_key text, home_store text, full_name text, phone text, email text,
    birth_date date, gender text, nationality text, time_zone text,
    OUT member_id uuid, OUT card_no text)
    RETURNS record
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    node loyalty.replica_node;
    block integer;
    prefix text;
    last bigint;
    seq bigint;
BEGIN
    SELECT * INTO node FROM loyalty.replica_node;
    IF NOT FOUND OR node.node_role <> 'store' THEN
        RAISE EXCEPTION 'this server is not a store replica'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Enrol members at headquarters or at their store''s replica.';
    ELSIF home_store IS DISTINCT FROM node.store_code THEN
        RAISE EXCEPTION 'the replica of store "%" enrols members only at its own store, not "%"',
            node.store_code, home_store
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT r.card_block INTO block FROM loyalty.replica_store r WHERE r.store_code = node.store_code;
    IF block IS NULL THEN
        RAISE EXCEPTION 'store "%" has no block of offline card numbers', node.store_code
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Update the extension at headquarters, then wait for the store''s row to arrive.';
    END IF;
    prefix := '9' || pg_catalog.lpad(block::text, 3, '0');
    -- one enrolment at a time here; the numbers issued so far are HQ's
    -- members of the block and this store's enrolments not yet back
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('loyalty._store_member_enroll'), block);
    SELECT pg_catalog.max(pg_catalog.substr(c, 5, 7)::bigint) INTO last
      FROM (SELECT m.card_no AS c FROM loyalty.member m WHERE m.card_no LIKE prefix || '%'
            UNION ALL
            SELECT o.payload ->> 'card_no' FROM loyalty.outbox o
             WHERE o.store_code = node.store_code AND o.kind = 'enrol') x;
    seq := coalesce(last, 0) + 1;
    card_no := loyalty._card_number_offline(block, seq);
    member_id := pg_catalog.gen_random_uuid();
    seq := pg_catalog.nextval('loyalty.outbox_seq');
    INSERT INTO loyalty.outbox (event_id, store_code, incarnation, seq, kind, member_id, payload, idem_key, personal)
    VALUES (node.store_code || '-' || node.incarnation || '-' || seq, node.store_code, node.incarnation, seq,
            'enrol', member_id,
            pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                'key', idempotency_key, 'card_no', card_no, 'time_zone', time_zone)),
            'enrol:' || idempotency_key,
            pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                'full_name', full_name, 'phone', phone, 'email', email, 'birth_date', birth_date,
                'gender', gender, 'nationality', nationality)));
END
$$;
REVOKE ALL ON FUNCTION loyalty._store_member_enroll(text, text, text, text, text, date, text, text, text) FROM PUBLIC;

-- HQ's offline reserve (issue 14.8, docs/replication.md "Offline limits",
-- src/replica_reserve.c): the stores HQ counts as offline now, and the sum
-- of their offline caps, which HQ's own spending leaves to every member.
-- A store counts when it is linked (its slot or HQ's subscription to its
-- outbox exists) and not both streaming; a store served through a hub
-- counts by the hub's links.  Nothing at a store or hub.
CREATE FUNCTION loyalty._offline_reserve(OUT points bigint, OUT stores text)
    RETURNS record
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.sum(r.offline_redeem_cap), 0)::bigint,
           pg_catalog.string_agg(r.store_code, ', ' ORDER BY r.store_code)
      FROM loyalty.replica_store r
      JOIN loyalty.replica_store l ON l.store_code = coalesce(r.via_hub, r.store_code)
      LEFT JOIN pg_catalog.pg_replication_slots s
             ON s.slot_name = l.slot_name AND s.database = pg_catalog.current_database()
      LEFT JOIN pg_catalog.pg_subscription sub
             ON sub.subname = 'loyalty_outbox_' || l.store_code
            AND sub.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d
                                WHERE d.datname = pg_catalog.current_database())
      LEFT JOIN pg_catalog.pg_stat_subscription ss ON ss.subid = sub.oid AND ss.relid IS NULL
     WHERE r.kind = 'store' AND r.offline_redeem_cap > 0
       AND NOT EXISTS (SELECT 1 FROM loyalty.replica_node)
       AND (s.slot_name IS NOT NULL OR sub.oid IS NOT NULL)
       AND NOT (s.active IS TRUE AND s.wal_status IS DISTINCT FROM 'lost'
                AND sub.subenabled IS TRUE AND ss.pid IS NOT NULL
                AND coalesce(pg_catalog.isfinite(ss.last_msg_receipt_time), false))
$$;
REVOKE ALL ON FUNCTION loyalty._offline_reserve() FROM PUBLIC;
