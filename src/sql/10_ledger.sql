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
);
COMMENT ON TABLE loyalty.point_balance IS 'Stored point balance and inactivity clock per member';
SELECT pg_catalog.pg_extension_config_dump('loyalty.point_balance', '');

-- Every credit or debit of a member's balance, append-only.  points is the
-- effect on the balance (pending accruals have 0: they count at activation).
CREATE TABLE loyalty.point_entry (
    entry_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id     uuid NOT NULL,
    store_code    text NOT NULL,
    kind          text NOT NULL
        CONSTRAINT point_entry_kind_valid CHECK (kind IN
            ('accrue', 'activate', 'redeem', 'reverse', 'transfer_out',
             'transfer_in', 'expire')),
    points        bigint NOT NULL,
    pending_points bigint NOT NULL DEFAULT 0,
    balance_after bigint NOT NULL,
    occurred_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    reference     text
        CONSTRAINT point_entry_reference_length CHECK (length(reference) <= 200),
    related_entry uuid,
    cash_amount   numeric,
    note          text
        CONSTRAINT point_entry_note_length CHECK (length(note) <= 200)
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
    source         text NOT NULL
        CONSTRAINT point_lot_source_valid CHECK (source IN
            ('stay', 'spend', 'campaign', 'bonus', 'milestone', 'adjustment',
             'transfer', 'deficit')),
    rule           text
        CONSTRAINT point_lot_rule_length CHECK (length(rule) <= 100),
    reference      text
        CONSTRAINT point_lot_reference_length CHECK (length(reference) <= 200),
    points         bigint NOT NULL CONSTRAINT point_lot_points_nonnegative CHECK (points >= 0),
    remaining      bigint NOT NULL,
    reversed       bigint NOT NULL DEFAULT 0,
    state          text NOT NULL
        CONSTRAINT point_lot_state_valid CHECK (state IN ('pending', 'active', 'expired', 'cancelled')),
    earned_at      timestamptz NOT NULL,
    activate_at    timestamptz,
    active_from    timestamptz,
    expires_at     timestamptz,
    entry_id       uuid NOT NULL,
    notice_sent_at timestamptz,
    CONSTRAINT point_lot_remaining_range CHECK
        (remaining <= points AND (remaining >= 0 OR source = 'deficit')),
    CONSTRAINT point_lot_active_has_start CHECK
        (state = 'pending' OR active_from IS NOT NULL OR state = 'cancelled')
);
COMMENT ON TABLE loyalty.point_lot IS 'Point lots: one per accrual, with what remains of it';
CREATE INDEX point_lot_member_idx ON loyalty.point_lot (member_id) WHERE state IN ('active', 'pending');
-- the lots a debit draws on, in each redemption order
CREATE INDEX point_lot_spend_soonest_idx ON loyalty.point_lot (member_id, expires_at, active_from, lot_id)
    WHERE state = 'active' AND remaining > 0;
CREATE INDEX point_lot_spend_oldest_idx ON loyalty.point_lot (member_id, active_from, lot_id)
    WHERE state = 'active' AND remaining > 0;
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

-- The event outbox of the whole extension (src/outbox.c).  Consumers read
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
