-- Members: the core record (what every store may hold), personal data
-- (masked per department), and the sensitive identity data (never at a
-- store) each in a table of its own, so that field policies and store
-- replicas can include or leave out whole tables.

CREATE TABLE loyalty.member (
    member_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    card_no         text NOT NULL
        CONSTRAINT member_card_no_key UNIQUE
        CONSTRAINT member_card_no_valid CHECK (loyalty.card_number_valid(card_no)),
    status          text NOT NULL DEFAULT 'active'
        CONSTRAINT member_status_valid CHECK (status IN ('active', 'suspended', 'erased')),
    home_store      text NOT NULL REFERENCES loyalty.store,
    tier            text NOT NULL DEFAULT 'member'
        CONSTRAINT member_tier_format CHECK (tier ~ '^[a-z][a-z0-9_]{0,31}$'),
    tier_valid_until timestamptz,
    time_zone       text
        CONSTRAINT member_time_zone_valid CHECK (time_zone IS NULL OR loyalty._valid_time_zone(time_zone)),
    enrolled_at     timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.member IS 'Core member record, the same at every store';
CREATE INDEX member_home_store_idx ON loyalty.member (home_store);
SELECT pg_catalog.pg_extension_config_dump('loyalty.member', '');

CREATE TABLE loyalty.member_profile (
    member_id   uuid PRIMARY KEY REFERENCES loyalty.member ON DELETE CASCADE,
    full_name   text NOT NULL
        CONSTRAINT profile_full_name_length CHECK (length(full_name) BETWEEN 1 AND 100),
    gender      text
        CONSTRAINT profile_gender_valid CHECK (gender IN ('female', 'male', 'other', 'unspecified')),
    birth_date  date
        CONSTRAINT profile_birth_date_range CHECK (birth_date >= DATE '1900-01-01'),
    nationality text
        CONSTRAINT profile_nationality_format CHECK (nationality ~ '^[A-Z]{2}$'),
    phone       text
        CONSTRAINT profile_phone_format CHECK (phone ~ '^\+?[0-9]{5,20}$'),
    email       text
        CONSTRAINT profile_email_format CHECK (length(email) <= 254 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
    address     text
        CONSTRAINT profile_address_length CHECK (length(address) BETWEEN 1 AND 500)
);
COMMENT ON TABLE loyalty.member_profile IS 'Personal data a store may see, masked per department';
CREATE INDEX member_profile_phone_idx ON loyalty.member_profile (phone);
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_profile', '');

CREATE TABLE loyalty.member_identity (
    member_id        uuid PRIMARY KEY REFERENCES loyalty.member ON DELETE CASCADE,
    id_type          text
        CONSTRAINT identity_id_type_valid CHECK (id_type IN ('resident_id', 'passport', 'hk_macau_permit', 'taiwan_permit', 'other')),
    id_number_cipher bytea,
    id_number_index  bytea,
    id_number_last4  text
        CONSTRAINT identity_id_last4_format CHECK (id_number_last4 ~ '^[0-9A-Za-z]{1,4}$'),
    bank_card_cipher bytea,
    bank_card_index  bytea,
    bank_card_last4  text
        CONSTRAINT identity_card_last4_format CHECK (bank_card_last4 ~ '^[0-9]{4}$')
);
COMMENT ON TABLE loyalty.member_identity IS 'Sensitive identity data (ID number, bank card): never published to stores';
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_identity', '');
