-- Stays: one row per booking at a store.  Qualification counters and
-- earning (docs/tiers.md) are derived from these: loyalty.record_stay()
-- writes them, and credits the counters when the stay is checked out.

CREATE TABLE loyalty.stay (
    stay_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id     uuid NOT NULL REFERENCES loyalty.member,
    store_code    text NOT NULL REFERENCES loyalty.store,
    check_in      date NOT NULL,
    check_out     date NOT NULL,
    rooms         integer NOT NULL DEFAULT 1
        CONSTRAINT stay_rooms_range CHECK (rooms BETWEEN 1 AND 50),
    room_revenue  numeric(12, 2) NOT NULL DEFAULT 0
        CONSTRAINT stay_room_revenue_nonnegative CHECK (room_revenue >= 0),
    other_revenue numeric(12, 2) NOT NULL DEFAULT 0
        CONSTRAINT stay_other_revenue_nonnegative CHECK (other_revenue >= 0),
    status        text NOT NULL DEFAULT 'checked_out'
        CONSTRAINT stay_status_valid CHECK (status IN ('booked', 'in_house', 'checked_out', 'cancelled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- written by loyalty.record_stay(); NULL for stays loaded otherwise
    idempotency_key text
        CONSTRAINT stay_idempotency_key_key UNIQUE
        CONSTRAINT stay_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    occurred_at   timestamptz,
    nights_credited integer,        -- set when the stay is credited (checkout)
    credited_at   timestamptz,
    CONSTRAINT stay_dates_ordered CHECK (check_out > check_in)
);
COMMENT ON TABLE loyalty.stay IS 'Stays of members at stores';
CREATE INDEX stay_member_idx ON loyalty.stay (member_id, check_in);
CREATE INDEX stay_store_idx ON loyalty.stay (store_code, check_in);
SELECT pg_catalog.pg_extension_config_dump('loyalty.stay', '');
