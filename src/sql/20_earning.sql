-- Stays: one row per booking at a store.  Qualification counters and
-- earning (docs/tiers.md) are derived from these: loyalty.stay_record()
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
    -- written by loyalty.stay_record(); NULL for stays loaded otherwise
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
-- Campaigns: extra points for stays and charges in a time window, edited by
-- marketing in this table.  A BEFORE trigger (C, src/earning_campaign.c) rejects
-- inverted windows, inconsistent kinds and two overlapping campaigns with
-- the same priority.  See docs/tiers.md for how they stack.

CREATE TABLE loyalty.campaign (
    campaign_id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code               text NOT NULL
        CONSTRAINT campaign_code_key UNIQUE
        CONSTRAINT campaign_code_format CHECK (code ~ '^[a-z][a-z0-9_]{0,31}$'),
    name               text NOT NULL
        CONSTRAINT campaign_name_length CHECK (length(name) BETWEEN 1 AND 200),
    kind               text NOT NULL
        CONSTRAINT campaign_kind_valid CHECK (kind IN ('multiplier', 'fixed')),
    multiplier_percent integer,     -- 200: double base points
    fixed_points       bigint,      -- per stay or charge
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,
    priority           integer NOT NULL,
    stores             text[],      -- NULL: every store
    brands             text[],      -- NULL: every brand
    birthday_month     boolean NOT NULL DEFAULT false,
    tiers              text[],      -- NULL: every tier
    tag                text,        -- member must carry this unresolved tag
    cap_per_member     bigint,      -- campaign points per member, NULL: none
    cap_total          bigint,      -- campaign points overall, NULL: none
    awarded_total      bigint NOT NULL DEFAULT 0,
    active             boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    created_by         name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.campaign IS 'Earning campaigns: multipliers on base points or fixed bonuses, with windows, filters, conditions and caps';
CREATE INDEX campaign_window_idx ON loyalty.campaign (starts_at, ends_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.campaign', '');

CREATE FUNCTION loyalty._campaign_check() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'loyalty_campaign_check';
REVOKE ALL ON FUNCTION loyalty._campaign_check() FROM PUBLIC;

CREATE TRIGGER campaign_check
    BEFORE INSERT OR UPDATE ON loyalty.campaign
    FOR EACH ROW EXECUTE FUNCTION loyalty._campaign_check();

REVOKE ALL ON loyalty.campaign FROM PUBLIC;
GRANT SELECT, DELETE ON loyalty.campaign TO loyalty_marketing, loyalty_crm;
GRANT INSERT (code, name, kind, multiplier_percent, fixed_points, starts_at, ends_at,
              priority, stores, brands, birthday_month, tiers, tag, cap_per_member,
              cap_total, active),
      UPDATE (name, kind, multiplier_percent, fixed_points, starts_at, ends_at,
              priority, stores, brands, birthday_month, tiers, tag, cap_per_member,
              cap_total, active)
    ON loyalty.campaign TO loyalty_marketing, loyalty_crm;
GRANT SELECT ON loyalty.campaign TO loyalty_dba;
-- Stays and charges: the calls applications make (docs/tiers.md).

CREATE FUNCTION loyalty.stay_record(
    idempotency_key text,
    store_code      text,
    member_id       uuid,
    check_in        date,
    check_out       date,
    rooms           integer DEFAULT 1,
    room_revenue    numeric DEFAULT 0,
    other_revenue   numeric DEFAULT 0,
    checked_out     boolean DEFAULT true,
    occurred_at     timestamptz DEFAULT NULL,
    OUT stay_id uuid, OUT replayed boolean, OUT nights_credited integer,
    OUT base_points bigint, OUT bonus_points bigint, OUT points_pending boolean,
    OUT tier text, OUT tier_changed boolean)
    RETURNS record
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_record_stay';
COMMENT ON FUNCTION loyalty.stay_record(text, text, uuid, date, date, integer, numeric, numeric, boolean, timestamptz) IS
    'Record a stay: points by the earning order, qualification counters at checkout, instant upgrade; idempotent';

CREATE FUNCTION loyalty.stay_checkout(
    idempotency_key text,
    occurred_at     timestamptz DEFAULT NULL,
    OUT stay_id uuid, OUT replayed boolean, OUT nights_credited integer,
    OUT base_points bigint, OUT bonus_points bigint, OUT points_pending boolean,
    OUT tier text, OUT tier_changed boolean)
    RETURNS record
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_stay_checkout';
COMMENT ON FUNCTION loyalty.stay_checkout(text, timestamptz) IS
    'Check out an in-house stay: credit its counters, activate its points, upgrade at once';

CREATE FUNCTION loyalty.charge_record(
    idempotency_key text,
    store_code      text,
    member_id       uuid,
    amount          numeric,
    occurred_at     timestamptz DEFAULT NULL,
    OUT charge_id uuid, OUT replayed boolean, OUT nights_credited integer,
    OUT base_points bigint, OUT bonus_points bigint, OUT points_pending boolean,
    OUT tier text, OUT tier_changed boolean)
    RETURNS record
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_record_charge';
COMMENT ON FUNCTION loyalty.charge_record(text, text, uuid, numeric, timestamptz) IS
    'Record an eligible charge outside a stay: points, base points and spend counters; idempotent';

REVOKE ALL ON FUNCTION
    loyalty.stay_record(text, text, uuid, date, date, integer, numeric, numeric, boolean, timestamptz),
    loyalty.stay_checkout(text, timestamptz),
    loyalty.charge_record(text, text, uuid, numeric, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.stay_record(text, text, uuid, date, date, integer, numeric, numeric, boolean, timestamptz),
    loyalty.stay_checkout(text, timestamptz),
    loyalty.charge_record(text, text, uuid, numeric, timestamptz)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
