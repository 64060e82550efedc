-- Tier and earning engine: the data (docs/tiers.md).
--
-- tier_activity is the append-only record of every change to a member's
-- qualification counters, by calendar month of the member's time zone;
-- tier_counter is its running sum, kept in the same transaction, so that a
-- period's counters are at most 12 rows.  Counters as of a past time are
-- summed from tier_activity.

CREATE TABLE loyalty.tier_activity (
    activity_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id        uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    month            date NOT NULL
        CONSTRAINT tier_activity_month_first CHECK (extract(day FROM month) = 1),
    nights           integer NOT NULL DEFAULT 0,
    stays            integer NOT NULL DEFAULT 0,
    base_points      bigint NOT NULL DEFAULT 0,
    qualifying_spend bigint NOT NULL DEFAULT 0,   -- minor currency units
    source           text NOT NULL
        CONSTRAINT tier_activity_source_valid CHECK (source IN ('stay', 'charge', 'adjustment')),
    source_id        uuid,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.tier_activity IS 'Append-only changes to qualification counters, per member and month';
CREATE INDEX tier_activity_member_idx ON loyalty.tier_activity (member_id, recorded_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_activity', '');

CREATE TABLE loyalty.tier_counter (
    member_id        uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    month            date NOT NULL,
    nights           integer NOT NULL DEFAULT 0,
    stays            integer NOT NULL DEFAULT 0,
    base_points      bigint NOT NULL DEFAULT 0,
    qualifying_spend bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (member_id, month)
);
COMMENT ON TABLE loyalty.tier_counter IS 'Qualification counters per member and month (sum of tier_activity)';
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_counter', '');

-- Every line of points the engine computed, with the rule that produced
-- it.  The points themselves are posted to the point ledger.
CREATE TABLE loyalty.earning_line (
    line_id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id        uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    store_code       text NOT NULL REFERENCES loyalty.store,
    source           text NOT NULL
        CONSTRAINT earning_line_source_valid CHECK (source IN ('stay', 'charge')),
    source_id        uuid NOT NULL,
    kind             text NOT NULL
        CONSTRAINT earning_line_kind_valid CHECK (kind IN ('base', 'elite', 'campaign', 'milestone')),
    rule             text NOT NULL,
    campaign_id      uuid,
    points           bigint NOT NULL CONSTRAINT earning_line_points_positive CHECK (points > 0),
    pending          boolean NOT NULL,
    occurred_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.earning_line IS 'Points computed by the earning engine, one row per rule that produced points';
CREATE INDEX earning_line_source_idx ON loyalty.earning_line (source_id);
CREATE INDEX earning_line_campaign_idx ON loyalty.earning_line (member_id, campaign_id) WHERE campaign_id IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('loyalty.earning_line', '');

-- Charges outside a stay (restaurant, spa): base points and qualifying spend.
CREATE TABLE loyalty.charge (
    charge_id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id        uuid NOT NULL REFERENCES loyalty.member,
    store_code       text NOT NULL REFERENCES loyalty.store,
    amount           numeric(12, 2) NOT NULL CONSTRAINT charge_amount_positive CHECK (amount > 0),
    occurred_at      timestamptz NOT NULL,
    idempotency_key  text NOT NULL
        CONSTRAINT charge_idempotency_key_key UNIQUE
        CONSTRAINT charge_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.charge IS 'Eligible charges outside a stay';
CREATE INDEX charge_member_idx ON loyalty.charge (member_id, occurred_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.charge', '');

-- Every tier change (append-only): the tier as of any time.
CREATE TABLE loyalty.tier_history (
    event_id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id        uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    changed_at       timestamptz NOT NULL DEFAULT now(),
    old_tier         text NOT NULL,
    new_tier         text NOT NULL,
    old_valid_until  timestamptz,
    valid_until      timestamptz,
    reason           text NOT NULL,
    store_code       text,
    detail           jsonb
);
COMMENT ON TABLE loyalty.tier_history IS 'Every change of a member''s tier or tier validity, with its reason';
CREATE INDEX tier_history_member_idx ON loyalty.tier_history (member_id, changed_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_history', '');

-- Manual tier grants: a floor the downgrade batch never goes below while
-- the grant is in force.
CREATE TABLE loyalty.tier_grant (
    grant_id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id        uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    tier             text NOT NULL,
    reason           text NOT NULL
        CONSTRAINT tier_grant_reason_length CHECK (length(btrim(reason)) BETWEEN 1 AND 500),
    granted_at       timestamptz NOT NULL DEFAULT now(),
    granted_by       name NOT NULL DEFAULT session_user,
    expires_at       timestamptz,
    CONSTRAINT tier_grant_expiry_after_grant CHECK (expires_at IS NULL OR expires_at > granted_at)
);
COMMENT ON TABLE loyalty.tier_grant IS 'Manual tier grants with reason and expiry';
CREATE INDEX tier_grant_member_idx ON loyalty.tier_grant (member_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_grant', '');

-- Batch jobs (requalification, downgrade): progress a DBA can watch, each
-- batch committed in its own transaction.
CREATE TABLE loyalty.tier_job (
    job_id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind             text NOT NULL
        CONSTRAINT tier_job_kind_valid CHECK (kind IN ('requalify', 'downgrade')),
    as_of            timestamptz NOT NULL,
    state            text NOT NULL DEFAULT 'running'
        CONSTRAINT tier_job_state_valid CHECK (state IN ('running', 'done', 'failed')),
    members_total    bigint NOT NULL DEFAULT 0,
    members_done     bigint NOT NULL DEFAULT 0,
    members_changed  bigint NOT NULL DEFAULT 0,
    started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz,
    started_by       name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.tier_job IS 'Tier batch jobs and their progress';
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_job', '');

REVOKE ALL ON loyalty.tier_activity, loyalty.tier_counter, loyalty.earning_line,
    loyalty.charge, loyalty.tier_history, loyalty.tier_grant, loyalty.tier_job FROM PUBLIC;
GRANT SELECT ON loyalty.tier_activity, loyalty.tier_counter, loyalty.earning_line,
    loyalty.charge, loyalty.tier_history, loyalty.tier_grant TO loyalty_crm, loyalty_dba;
GRANT SELECT ON loyalty.tier_job TO loyalty_dba, loyalty_crm;
