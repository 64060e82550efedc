-- Campaigns: extra points for stays and charges in a time window, edited by
-- marketing in this table.  A BEFORE trigger (C, src/campaign.c) rejects
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
