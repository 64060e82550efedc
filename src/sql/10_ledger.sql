-- The point ledger (docs/ledger.md): lots, entries, the draws that link
-- debits to lots, the stored balance, and the idempotency record of every
-- mutating call.  Only the SECURITY DEFINER API functions write here; no
-- store or HQ role holds a privilege on these tables (HQ reads them through
-- the functions of 11_ledger_api.sql).
--
-- Members and stores are checked by the C code before every write, and the
-- hot tables (entry, lot, draw) carry no foreign keys: a foreign key check
-- share-locks the referenced store and member rows on every insert, which
-- would make every store's accruals contend on one row.  The links are
-- verified by loyalty.ledger_check().

-- The CHECK functions of point_lot and point_entry are in
-- 09_ledger_rowcheck.sql.

-- One row per member who ever had points: the stored balance (the sum of
-- the member's active lots' remaining points) and the inactivity clock.
-- Every ledger operation locks this row first, which serialises all
-- operations on one member.
CREATE TABLE loyalty.point_balance (
    member_id        uuid PRIMARY KEY REFERENCES loyalty.member,
    balance          bigint NOT NULL DEFAULT 0,
    last_activity_at timestamptz,
    notice_for       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 80);   -- room for HOT updates of the hot row
COMMENT ON TABLE loyalty.point_balance IS 'Stored point balance and inactivity clock per member';
SELECT pg_catalog.pg_extension_config_dump('loyalty.point_balance', '');

-- Every credit or debit of a member's balance, append-only.  points is the
-- effect on the balance (pending accruals have 0: they count at activation).
CREATE TABLE loyalty.point_entry (
    entry_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id     uuid NOT NULL,
    store_code    text NOT NULL,
    kind          text NOT NULL,
    points        bigint NOT NULL,
    pending_points bigint NOT NULL DEFAULT 0,
    balance_after bigint NOT NULL,
    occurred_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    reference     text,
    related_entry uuid,
    cash_amount   numeric,
    note          text,
    -- kind IN ('accrue', 'activate', 'redeem', 'reverse', 'transfer_out',
    -- 'transfer_in', 'expire', 'refund') AND length(reference) <= 200 AND
    -- length(note) <= 200, as one C function (see above)
    CONSTRAINT point_entry_valid CHECK (loyalty._entry_row_valid(kind, reference, note))
);
COMMENT ON TABLE loyalty.point_entry IS 'Append-only ledger entries; the sum of a member''s points is the balance';
CREATE INDEX point_entry_member_idx ON loyalty.point_entry (member_id, recorded_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.point_entry', '');

-- Every accrual creates a lot.  remaining is what is left of points after
-- the draws recorded in point_draw.  Deficit lots (source 'deficit') carry
-- a negative remaining after a reversal under the allow_negative policy.
CREATE TABLE loyalty.point_lot (
    lot_id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id      uuid NOT NULL,
    store_code     text NOT NULL,
    source         text NOT NULL,
    rule           text,
    reference      text,
    points         bigint NOT NULL,
    remaining      bigint NOT NULL,
    reversed       bigint NOT NULL DEFAULT 0,
    state          text NOT NULL,
    earned_at      timestamptz NOT NULL,
    activate_at    timestamptz,
    active_from    timestamptz,
    expires_at     timestamptz,
    entry_id       uuid NOT NULL,
    notice_sent_at timestamptz,
    -- whether the lot still holds points a debit can draw on; stored, so
    -- that the spend indexes can leave exhausted lots out while the update
    -- of "remaining" by a partial draw stays HOT (its value changes only
    -- when a lot is exhausted, or given points back)
    spendable      boolean GENERATED ALWAYS AS (remaining > 0) STORED,
    -- source IN ('stay', 'spend', 'campaign', 'bonus', 'milestone',
    -- 'adjustment', 'transfer', 'deficit', 'purchase') AND state IN
    -- ('pending', 'active', 'expired', 'cancelled') AND length(rule) <= 100
    -- AND length(reference) <= 200 AND points >= 0 AND remaining <= points
    -- AND (remaining >= 0 OR source = 'deficit') AND (state = 'pending' OR
    -- active_from IS NOT NULL OR state = 'cancelled'), as one C function
    CONSTRAINT point_lot_valid CHECK
        (loyalty._lot_row_valid(source, state, rule, reference, points, remaining, active_from))
) WITH (fillfactor = 90);   -- room for HOT updates of "remaining"
COMMENT ON TABLE loyalty.point_lot IS 'Point lots: one per accrual, with what remains of it';
-- a member's lots that no spend index below holds: pending lots, and active
-- lots without points to draw (used up, or deficit lots); a new active lot
-- enters the spend indexes instead, so that an accrual writes one index
-- entry less (issue 19).  A member's spendable lots are found through
-- point_lot_spend_oldest_idx.
CREATE INDEX point_lot_member_idx ON loyalty.point_lot (member_id)
    WHERE state = 'pending' OR (state = 'active' AND NOT spendable);
-- the lots a debit draws on, in each redemption order: active lots that
-- still hold points.  "remaining" is deliberately in no index (not even a
-- predicate), so the update of a lot a debit draws from is a HOT update: a
-- member redeeming again and again (the hot path) does not leave a dead
-- index entry per redemption.  Only the draw that exhausts a lot changes
-- "spendable" and takes the lot out of these indexes, so that a debit never
-- walks past the exhausted lots of a member's history (issue 19).
CREATE INDEX point_lot_spend_soonest_idx ON loyalty.point_lot (member_id, expires_at, active_from, lot_id)
    WHERE state = 'active' AND spendable;
CREATE INDEX point_lot_spend_oldest_idx ON loyalty.point_lot (member_id, active_from, lot_id)
    WHERE state = 'active' AND spendable;
CREATE INDEX point_lot_reference_idx ON loyalty.point_lot (reference) WHERE state = 'pending';
CREATE INDEX point_lot_due_idx ON loyalty.point_lot (activate_at) WHERE state = 'pending';
CREATE INDEX point_lot_expiry_idx ON loyalty.point_lot (expires_at) WHERE state = 'active';
SELECT pg_catalog.pg_extension_config_dump('loyalty.point_lot', '');

-- Which lots each entry drew from, and how much from each.
CREATE TABLE loyalty.point_draw (
    entry_id uuid NOT NULL,
    lot_id   uuid NOT NULL,
    points   bigint NOT NULL,
    PRIMARY KEY (entry_id, lot_id)
);
COMMENT ON TABLE loyalty.point_draw IS 'Draws of debit entries on lots';
CREATE INDEX point_draw_lot_idx ON loyalty.point_draw (lot_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.point_draw', '');

-- The result of every mutating call, by its client idempotency key,
-- written in the same transaction as the ledger rows.
CREATE TABLE loyalty.ledger_request (
    idem_key    text PRIMARY KEY
        CONSTRAINT ledger_request_key_length CHECK (length(idem_key) BETWEEN 1 AND 200),
    operation   text NOT NULL,
    args        text NOT NULL,
    entry_id    uuid,
    lot_id      uuid,
    member_id   uuid,
    points      bigint,
    balance     bigint,
    cash_amount numeric,
    lots        jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.ledger_request IS 'Idempotency keys of ledger calls and the result each returned';
SELECT pg_catalog.pg_extension_config_dump('loyalty.ledger_request', '');

-- The ledger's calls check their store against a per-backend set of known
-- stores (src/ledger_core.c); any change to loyalty.store drops the set in
-- every backend (a relcache invalidation, as for the policy cache).
CREATE TRIGGER store_known_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.store
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._cache_invalidate();

-- What every mutating ledger function returns.
CREATE TYPE loyalty.ledger_result AS (
    entry_id    uuid,
    lot_id      uuid,
    operation   text,
    member_id   uuid,
    points      bigint,
    balance     bigint,
    cash_amount numeric,
    lots        jsonb,
    replayed    boolean
);
COMMENT ON TYPE loyalty.ledger_result IS 'Result of a ledger call: entry, lot, points moved, new balance, lots touched';

-- The event outbox of the whole extension (src/event_outbox.c).  Consumers read
-- in (txid, event_id) order through loyalty.event_read and record progress
-- with loyalty.event_ack; see docs/ledger.md, "Events".
CREATE TABLE loyalty.event_outbox (
    event_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid       xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    kind       text NOT NULL
        CONSTRAINT event_kind_format CHECK (kind ~ '^[a-z][a-z0-9_.]{0,63}$'),
    member_id  uuid,
    store_code text,
    payload    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.event_outbox IS 'Events for applications, in commit-safe (txid, event_id) order; NOTIFY channel loyalty_event';
CREATE INDEX event_outbox_order_idx ON loyalty.event_outbox (txid, event_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.event_outbox', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.event_outbox_event_id_seq', '');

CREATE TABLE loyalty.event_consumer (
    consumer      text PRIMARY KEY
        CONSTRAINT event_consumer_format CHECK (consumer ~ '^[a-z][a-z0-9_]{0,62}$'),
    last_txid     xid8 NOT NULL DEFAULT '0',
    last_event_id bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.event_consumer IS 'Progress of each outbox consumer';
SELECT pg_catalog.pg_extension_config_dump('loyalty.event_consumer', '');
-- The ledger's SQL API (docs/ledger.md).  The mutating functions are C
-- (src/ledger_sql.c); each takes a client idempotency key and returns a
-- loyalty.ledger_result row.

CREATE FUNCTION loyalty.points_accrue(
    idempotency_key text, member_id uuid, store_code text, points bigint, source text,
    rule text DEFAULT NULL, reference text DEFAULT NULL,
    occurred_at timestamptz DEFAULT NULL, pending boolean DEFAULT false,
    activate_at timestamptz DEFAULT NULL)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_points_accrue';
COMMENT ON FUNCTION loyalty.points_accrue(text, uuid, text, bigint, text, text, text, timestamptz, boolean, timestamptz) IS
    'Credit points to a member at a store (one entry, one lot; pending lots count once activated)';

CREATE FUNCTION loyalty.points_activate(
    idempotency_key text, member_id uuid, store_code text, reference text)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_points_activate';
COMMENT ON FUNCTION loyalty.points_activate(text, uuid, text, text) IS
    'Activate a member''s pending points with this reference (e.g. a stay at checkout)';

CREATE FUNCTION loyalty.points_activate_due(idempotency_key text, as_of timestamptz DEFAULT now())
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_activate_due';
COMMENT ON FUNCTION loyalty.points_activate_due(text, timestamptz) IS
    'Batch: activate every pending lot whose activate_at has passed';

CREATE FUNCTION loyalty.points_redeem(
    idempotency_key text, member_id uuid, store_code text, points bigint, reward text)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_points_redeem';
COMMENT ON FUNCTION loyalty.points_redeem(text, uuid, text, bigint, text) IS
    'Redeem points for a reward (minimum and step of the policy)';

CREATE FUNCTION loyalty.points_redeem_cash(
    idempotency_key text, member_id uuid, store_code text, amount numeric)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_points_redeem_cash';
COMMENT ON FUNCTION loyalty.points_redeem_cash(text, uuid, text, numeric) IS
    'Pay amount of a bill with points at the program''s single rate';

CREATE FUNCTION loyalty.points_reverse(
    idempotency_key text, accrual_entry uuid, store_code text, refund_amount numeric,
    original_amount numeric)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_points_reverse';
COMMENT ON FUNCTION loyalty.points_reverse(text, uuid, text, numeric, numeric) IS
    'Take back an accrual''s points in proportion to a refund';

CREATE FUNCTION loyalty.points_transfer(
    idempotency_key text, from_member uuid, to_member uuid, store_code text, points bigint)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_points_transfer';
COMMENT ON FUNCTION loyalty.points_transfer(text, uuid, uuid, text, bigint) IS
    'Move points between members (keeps expiry dates; yearly caps)';

CREATE FUNCTION loyalty.points_expire(idempotency_key text, as_of timestamptz DEFAULT now())
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_expire_points';
COMMENT ON FUNCTION loyalty.points_expire(text, timestamptz) IS
    'Batch: emit expiry notices and expire the points due at as_of';

-- The ledger's redemption rules (points, minimum, step) for callers that
-- record a redemption before the ledger sees it (a store offline).
CREATE FUNCTION loyalty._redemption_check(points bigint) RETURNS void
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'loyalty_redemption_check';
REVOKE ALL ON FUNCTION loyalty._redemption_check(bigint) FROM PUBLIC;

-- Reads.

CREATE FUNCTION loyalty.points_balance(member_id uuid) RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = $1)
                THEN NULL
                ELSE coalesce((SELECT b.balance FROM loyalty.point_balance b WHERE b.member_id = $1), 0) END
$$;
COMMENT ON FUNCTION loyalty.points_balance(uuid) IS 'A member''s active points now (NULL for an unknown member)';

CREATE FUNCTION loyalty.points_balance_at(member_id uuid, at timestamptz) RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = $1)
                THEN NULL
                ELSE coalesce((SELECT sum(e.points) FROM loyalty.point_entry e
                                WHERE e.member_id = $1 AND e.recorded_at <= $2), 0)::bigint END
$$;
COMMENT ON FUNCTION loyalty.points_balance_at(uuid, timestamptz) IS
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
                   WHERE l.member_id = $1 AND l.state = 'active' AND l.spendable)
           END
      FROM loyalty.member m
      LEFT JOIN loyalty.point_balance b ON b.member_id = m.member_id
     WHERE m.member_id = $1
$$;
COMMENT ON FUNCTION loyalty.points_summary(uuid) IS
    'Balance, pending points, last activity and the next expiry date of a member';

CREATE FUNCTION loyalty.points_ledger(member_id uuid, max_rows integer DEFAULT 100)
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
       -- transactions are store-scoped: a store sees its own, HQ all
       AND (loyalty.caller_is_hq() OR e.store_code = loyalty.caller_store())
     ORDER BY e.recorded_at DESC, e.balance_after
     LIMIT least(greatest($2, 0), 1000)
$$;
COMMENT ON FUNCTION loyalty.points_ledger(uuid, integer) IS 'A member''s latest ledger entries (statement); store staff see their own store''s entries only';

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
    loyalty.points_accrue(text, uuid, text, bigint, text, text, text, timestamptz, boolean, timestamptz),
    loyalty.points_activate(text, uuid, text, text),
    loyalty.points_activate_due(text, timestamptz),
    loyalty.points_redeem(text, uuid, text, bigint, text),
    loyalty.points_redeem_cash(text, uuid, text, numeric),
    loyalty.points_reverse(text, uuid, text, numeric, numeric),
    loyalty.points_transfer(text, uuid, uuid, text, bigint),
    loyalty.points_expire(text, timestamptz),
    loyalty.points_balance(uuid), loyalty.points_balance_at(uuid, timestamptz),
    loyalty.points_summary(uuid), loyalty.points_ledger(uuid, integer),
    loyalty.ledger_check(uuid),
    loyalty.event_read(text, integer), loyalty.event_ack(text, bigint)
    FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    loyalty.points_accrue(text, uuid, text, bigint, text, text, text, timestamptz, boolean, timestamptz),
    loyalty.points_redeem(text, uuid, text, bigint, text),
    loyalty.points_redeem_cash(text, uuid, text, numeric),
    loyalty.points_reverse(text, uuid, text, numeric, numeric)
    TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION
    loyalty.points_activate(text, uuid, text, text),
    loyalty.points_transfer(text, uuid, uuid, text, bigint)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION
    loyalty.points_activate_due(text, timestamptz),
    loyalty.points_expire(text, timestamptz),
    loyalty.ledger_check(uuid)
    TO loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION
    loyalty.points_balance(uuid), loyalty.points_balance_at(uuid, timestamptz),
    loyalty.points_summary(uuid), loyalty.points_ledger(uuid, integer)
    TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm,
       loyalty_marketing, loyalty_dba;
GRANT EXECUTE ON FUNCTION
    loyalty.event_read(text, integer), loyalty.event_ack(text, bigint)
    TO loyalty_crm, loyalty_marketing, loyalty_dba;

-- The outbox for the extension's SQL and PL/pgSQL code (risk tags): one
-- event row plus NOTIFY loyalty_event, in the caller's transaction.
CREATE FUNCTION loyalty._event_emit(kind text, member_id uuid, store_code text, payload jsonb)
    RETURNS bigint
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_event_emit';
REVOKE ALL ON FUNCTION loyalty._event_emit(text, uuid, text, jsonb) FROM PUBLIC;
