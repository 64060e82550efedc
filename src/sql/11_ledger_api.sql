-- The ledger's SQL API (docs/ledger.md).  The mutating functions are C
-- (src/ledger_sql.c); each takes a client idempotency key and returns a
-- loyalty.ledger_result row.

CREATE FUNCTION loyalty.accrue(
    member_id uuid, store_code text, points bigint, source text, idem_key text,
    rule text DEFAULT NULL, reference text DEFAULT NULL,
    occurred_at timestamptz DEFAULT NULL, pending boolean DEFAULT false,
    activate_at timestamptz DEFAULT NULL)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_accrue';
COMMENT ON FUNCTION loyalty.accrue(uuid, text, bigint, text, text, text, text, timestamptz, boolean, timestamptz) IS
    'Credit points to a member at a store (one entry, one lot; pending lots count once activated)';

CREATE FUNCTION loyalty.activate(
    member_id uuid, store_code text, reference text, idem_key text)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_activate';
COMMENT ON FUNCTION loyalty.activate(uuid, text, text, text) IS
    'Activate a member''s pending points with this reference (e.g. a stay at checkout)';

CREATE FUNCTION loyalty.activate_due(idem_key text, as_of timestamptz DEFAULT now())
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_activate_due';
COMMENT ON FUNCTION loyalty.activate_due(text, timestamptz) IS
    'Batch: activate every pending lot whose activate_at has passed';

CREATE FUNCTION loyalty.redeem(
    member_id uuid, store_code text, points bigint, reward text, idem_key text)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_redeem';
COMMENT ON FUNCTION loyalty.redeem(uuid, text, bigint, text, text) IS
    'Redeem points for a reward (minimum and step of the policy)';

CREATE FUNCTION loyalty.redeem_cash(
    member_id uuid, store_code text, amount numeric, idem_key text)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_redeem_cash';
COMMENT ON FUNCTION loyalty.redeem_cash(uuid, text, numeric, text) IS
    'Pay amount of a bill with points at the program''s single rate';

CREATE FUNCTION loyalty.reverse(
    accrual_entry uuid, store_code text, refund_amount numeric,
    original_amount numeric, idem_key text)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_reverse';
COMMENT ON FUNCTION loyalty.reverse(uuid, text, numeric, numeric, text) IS
    'Take back an accrual''s points in proportion to a refund';

CREATE FUNCTION loyalty.transfer(
    from_member uuid, to_member uuid, store_code text, points bigint, idem_key text)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_transfer';
COMMENT ON FUNCTION loyalty.transfer(uuid, uuid, text, bigint, text) IS
    'Move points between members (keeps expiry dates; yearly caps)';

CREATE FUNCTION loyalty.expire_points(idem_key text, as_of timestamptz DEFAULT now())
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_expire_points';
COMMENT ON FUNCTION loyalty.expire_points(text, timestamptz) IS
    'Batch: emit expiry notices and expire the points due at as_of';

-- Reads.

CREATE FUNCTION loyalty.balance(member_id uuid) RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = $1)
                THEN NULL
                ELSE coalesce((SELECT b.balance FROM loyalty.point_balance b WHERE b.member_id = $1), 0) END
$$;
COMMENT ON FUNCTION loyalty.balance(uuid) IS 'A member''s active points now (NULL for an unknown member)';

CREATE FUNCTION loyalty.balance_at(member_id uuid, at timestamptz) RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = $1)
                THEN NULL
                ELSE coalesce((SELECT sum(e.points) FROM loyalty.point_entry e
                                WHERE e.member_id = $1 AND e.recorded_at <= $2), 0)::bigint END
$$;
COMMENT ON FUNCTION loyalty.balance_at(uuid, timestamptz) IS
    'A member''s active points as recorded at a past time (sum of entries recorded until then)';

CREATE FUNCTION loyalty.points_summary(
    member_id uuid,
    OUT balance bigint, OUT pending bigint, OUT last_activity_at timestamptz,
    OUT expires_at timestamptz)
    RETURNS record
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(b.balance, 0),
           (SELECT coalesce(sum(l.remaining), 0)::bigint FROM loyalty.point_lot l
             WHERE l.member_id = $1 AND l.state = 'pending'),
           b.last_activity_at,
           CASE (loyalty.policy_at(now()) -> 'expiry' ->> 'mode')
               WHEN 'inactivity' THEN b.last_activity_at
                   + make_interval(months => (loyalty.policy_at(now()) -> 'expiry' ->> 'inactivity_months')::int)
               WHEN 'lot_lifetime' THEN (SELECT min(l.expires_at) FROM loyalty.point_lot l
                   WHERE l.member_id = $1 AND l.state = 'active' AND l.remaining > 0)
           END
      FROM loyalty.member m
      LEFT JOIN loyalty.point_balance b ON b.member_id = m.member_id
     WHERE m.member_id = $1
$$;
COMMENT ON FUNCTION loyalty.points_summary(uuid) IS
    'Balance, pending points, last activity and the next expiry date of a member';

CREATE FUNCTION loyalty.member_ledger(member_id uuid, max_rows integer DEFAULT 100)
    RETURNS TABLE (entry_id uuid, recorded_at timestamptz, occurred_at timestamptz,
                   store_code text, kind text, points bigint, pending_points bigint,
                   balance_after bigint, reference text, cash_amount numeric)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.entry_id, e.recorded_at, e.occurred_at, e.store_code, e.kind, e.points,
           e.pending_points, e.balance_after, e.reference, e.cash_amount
      FROM loyalty.point_entry e
     WHERE e.member_id = $1
     ORDER BY e.recorded_at DESC, e.balance_after
     LIMIT least(greatest($2, 0), 1000)
$$;
COMMENT ON FUNCTION loyalty.member_ledger(uuid, integer) IS 'A member''s latest ledger entries (statement)';

-- The invariant: for each member, stored balance = sum of active lots'
-- remaining = sum of entries; each lot's remaining = points - its draws.
-- Returns one row per violation; no rows means the ledger is consistent.
CREATE FUNCTION loyalty.ledger_check(member_id uuid DEFAULT NULL)
    RETURNS TABLE (member_id uuid, problem text, expected bigint, actual bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH members AS (
        SELECT b.member_id, b.balance FROM loyalty.point_balance b
         WHERE $1 IS NULL OR b.member_id = $1
    ), lots AS (
        SELECT l.member_id, sum(l.remaining) FILTER (WHERE l.state = 'active') AS active
          FROM loyalty.point_lot l
         WHERE $1 IS NULL OR l.member_id = $1
         GROUP BY l.member_id
    ), entries AS (
        SELECT e.member_id, sum(e.points) AS total
          FROM loyalty.point_entry e
         WHERE $1 IS NULL OR e.member_id = $1
         GROUP BY e.member_id
    )
    SELECT m.member_id, 'balance <> sum of active lots', m.balance, coalesce(l.active, 0)::bigint
      FROM members m LEFT JOIN lots l ON l.member_id = m.member_id
     WHERE m.balance <> coalesce(l.active, 0)
    UNION ALL
    SELECT m.member_id, 'balance <> sum of entries', m.balance, coalesce(e.total, 0)::bigint
      FROM members m LEFT JOIN entries e ON e.member_id = m.member_id
     WHERE m.balance <> coalesce(e.total, 0)
    UNION ALL
    SELECT e.member_id, 'entries without a balance row', 0, e.total::bigint
      FROM entries e
     WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.member_id = e.member_id)
    UNION ALL
    SELECT l.member_id, 'lot ' || l.lot_id || ': remaining <> points - draws',
           l.points - coalesce(d.drawn, 0), l.remaining
      FROM loyalty.point_lot l
      LEFT JOIN (SELECT d.lot_id, sum(d.points) AS drawn FROM loyalty.point_draw d GROUP BY d.lot_id) d
        ON d.lot_id = l.lot_id
     WHERE ($1 IS NULL OR l.member_id = $1)
       AND l.remaining <> l.points - coalesce(d.drawn, 0)
    UNION ALL
    SELECT l.member_id, 'lot ' || l.lot_id || ': positive remaining while the balance is negative', 0, l.remaining
      FROM loyalty.point_lot l JOIN members m ON m.member_id = l.member_id
     WHERE l.state = 'active' AND l.remaining > 0 AND m.balance < 0
$$;
COMMENT ON FUNCTION loyalty.ledger_check(uuid) IS
    'Ledger invariant check for one member or all; returns the violations (none: consistent)';

-- Outbox consumers (docs/ledger.md, "Events").  Events are read in
-- (txid, event_id) order, and only from transactions older than every
-- transaction still running, so that a late commit is never skipped.
CREATE FUNCTION loyalty.event_read(consumer text, max_events integer DEFAULT 100)
    RETURNS SETOF loyalty.event_outbox
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c loyalty.event_consumer;
BEGIN
    IF consumer IS NULL OR max_events IS NULL THEN
        RAISE EXCEPTION 'consumer and max_events must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing', 'dba']);
    SELECT * INTO c FROM loyalty.event_consumer ec WHERE ec.consumer = event_read.consumer;
    IF NOT FOUND THEN
        c.last_txid := '0';
        c.last_event_id := 0;
    END IF;
    RETURN QUERY
        SELECT o.* FROM loyalty.event_outbox o
         WHERE (o.txid, o.event_id) > (c.last_txid, c.last_event_id)
           AND o.txid < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY o.txid, o.event_id
         LIMIT least(greatest(max_events, 1), 10000);
END
$$;
COMMENT ON FUNCTION loyalty.event_read(text, integer) IS
    'The next events for a consumer, in commit-safe order; does not move the consumer on';

CREATE FUNCTION loyalty.event_ack(consumer text, event_id bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t xid8;
BEGIN
    IF consumer IS NULL OR event_id IS NULL THEN
        RAISE EXCEPTION 'consumer and event_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing', 'dba']);
    SELECT o.txid INTO t FROM loyalty.event_outbox o WHERE o.event_id = event_ack.event_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'event % does not exist', event_id USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO loyalty.event_consumer AS ec (consumer, last_txid, last_event_id)
        VALUES (event_ack.consumer, t, event_ack.event_id)
        ON CONFLICT ON CONSTRAINT event_consumer_pkey DO UPDATE
           SET last_txid = excluded.last_txid, last_event_id = excluded.last_event_id,
               updated_at = now()
         WHERE (ec.last_txid, ec.last_event_id) < (excluded.last_txid, excluded.last_event_id);
END
$$;
COMMENT ON FUNCTION loyalty.event_ack(text, bigint) IS
    'Record that a consumer has processed every event up to and including event_id';

REVOKE ALL ON TABLE loyalty.point_balance, loyalty.point_entry, loyalty.point_lot,
    loyalty.point_draw, loyalty.ledger_request, loyalty.event_outbox,
    loyalty.event_consumer FROM PUBLIC;
REVOKE ALL ON FUNCTION
    loyalty.accrue(uuid, text, bigint, text, text, text, text, timestamptz, boolean, timestamptz),
    loyalty.activate(uuid, text, text, text),
    loyalty.activate_due(text, timestamptz),
    loyalty.redeem(uuid, text, bigint, text, text),
    loyalty.redeem_cash(uuid, text, numeric, text),
    loyalty.reverse(uuid, text, numeric, numeric, text),
    loyalty.transfer(uuid, uuid, text, bigint, text),
    loyalty.expire_points(text, timestamptz),
    loyalty.balance(uuid), loyalty.balance_at(uuid, timestamptz),
    loyalty.points_summary(uuid), loyalty.member_ledger(uuid, integer),
    loyalty.ledger_check(uuid),
    loyalty.event_read(text, integer), loyalty.event_ack(text, bigint)
    FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    loyalty.accrue(uuid, text, bigint, text, text, text, text, timestamptz, boolean, timestamptz),
    loyalty.redeem(uuid, text, bigint, text, text),
    loyalty.redeem_cash(uuid, text, numeric, text),
    loyalty.reverse(uuid, text, numeric, numeric, text)
    TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION
    loyalty.activate(uuid, text, text, text),
    loyalty.transfer(uuid, uuid, text, bigint, text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION
    loyalty.activate_due(text, timestamptz),
    loyalty.expire_points(text, timestamptz),
    loyalty.ledger_check(uuid)
    TO loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION
    loyalty.balance(uuid), loyalty.balance_at(uuid, timestamptz),
    loyalty.points_summary(uuid), loyalty.member_ledger(uuid, integer)
    TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm,
       loyalty_marketing, loyalty_dba;
GRANT EXECUTE ON FUNCTION
    loyalty.event_read(text, integer), loyalty.event_ack(text, bigint)
    TO loyalty_crm, loyalty_marketing, loyalty_dba;
