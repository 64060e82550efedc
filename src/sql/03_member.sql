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
-- Preferences: recorded at one store, chain-wide (known at every store) or
-- store-only (known at the recording store only).

CREATE TABLE loyalty.member_preference (
    preference_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id     uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    category      text NOT NULL
        CONSTRAINT preference_category_valid CHECK (category IN
            ('pillow', 'allergy', 'floor', 'lighting', 'bed', 'crib',
             'smoking', 'room', 'dining', 'other')),
    value         text NOT NULL
        CONSTRAINT preference_value_length CHECK (length(value) BETWEEN 1 AND 200),
    scope         text NOT NULL DEFAULT 'chain'
        CONSTRAINT preference_scope_valid CHECK (scope IN ('chain', 'store')),
    store_code    text NOT NULL REFERENCES loyalty.store,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    recorded_by   name NOT NULL DEFAULT session_user,
    retired_at    timestamptz
);
COMMENT ON TABLE loyalty.member_preference IS 'Guest preferences; scope chain is known at every store, scope store only at store_code';
CREATE INDEX member_preference_member_idx ON loyalty.member_preference (member_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_preference', '');
-- Behaviour tags ("frequent business traveller", "prefers quiet rooms").
-- Risk tags (an unresolved violation, an amount owed) have their own table,
-- loyalty.risk_tag (src/sql/30_risk.sql), because they freeze benefits and
-- carry an audit trail; see docs/benefits.md.

CREATE TABLE loyalty.member_tag (
    tag_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id    uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    code         text NOT NULL
        CONSTRAINT tag_code_format CHECK (code ~ '^[a-z][a-z0-9_]{0,31}$'),
    store_code   text REFERENCES loyalty.store,
    note         text
        CONSTRAINT tag_note_length CHECK (length(note) <= 1000),
    tagged_at    timestamptz NOT NULL DEFAULT now(),
    tagged_by    name NOT NULL DEFAULT session_user,
    retired_at   timestamptz
);
COMMENT ON TABLE loyalty.member_tag IS 'Behaviour tags of members (risk tags are in loyalty.risk_tag)';
CREATE INDEX member_tag_member_idx ON loyalty.member_tag (member_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_tag', '');
-- Consents: what a member agreed to, when, where and under which notice.

CREATE TABLE loyalty.member_consent (
    consent_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id      uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    purpose        text NOT NULL
        CONSTRAINT consent_purpose_valid CHECK (purpose IN
            ('marketing_email', 'marketing_sms', 'profiling', 'cross_border', 'third_party')),
    granted        boolean NOT NULL,
    notice_version text NOT NULL
        CONSTRAINT consent_notice_length CHECK (length(notice_version) BETWEEN 1 AND 50),
    store_code     text REFERENCES loyalty.store,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.member_consent IS 'What a member agreed to, when, where and under which notice (latest row per purpose wins)';
CREATE INDEX member_consent_member_idx ON loyalty.member_consent (member_id, purpose, recorded_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_consent', '');
-- (privacy functions over this table: src/sql/41_privacy.sql)
-- Enrolment.

CREATE FUNCTION loyalty.member_enroll(
    idempotency_key text,
    home_store  text,
    full_name   text,
    phone       text DEFAULT NULL,
    email       text DEFAULT NULL,
    birth_date  date DEFAULT NULL,
    gender      text DEFAULT NULL,
    nationality text DEFAULT NULL,
    time_zone   text DEFAULT NULL,
    OUT member_id uuid,
    OUT card_no text)
    RETURNS record
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    prior jsonb;
    attempt int;
BEGIN
    IF home_store IS NULL OR full_name IS NULL THEN
        RAISE EXCEPTION 'home_store and full_name must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty._check_access(home_store, ARRAY['frontdesk', 'store_manager', 'crm', 'dba']);
    req := pg_catalog.jsonb_build_array(home_store, full_name, phone, email, birth_date, gender, nationality, time_zone);
    prior := loyalty._request_begin('member_enroll', idempotency_key, req);
    IF prior IS NOT NULL THEN
        member_id := (prior ->> 'member_id')::uuid;
        card_no := prior ->> 'card_no';
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.store s WHERE s.store_code = home_store) THEN
        RAISE EXCEPTION 'store "%" does not exist', home_store
            USING ERRCODE = 'no_data_found';
    END IF;
    IF btrim(full_name) = '' THEN
        RAISE EXCEPTION 'full_name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    ELSIF length(full_name) > 100 THEN
        RAISE EXCEPTION 'full_name is longer than 100 characters' USING ERRCODE = 'string_data_right_truncation';
    ELSIF phone IS NOT NULL AND phone !~ '^\+?[0-9]{5,20}$' THEN
        -- never echo a rejected personal value: errors reach logs (issue 12.2)
        RAISE EXCEPTION 'invalid phone number'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A phone number is 5 to 20 digits with an optional leading +.';
    ELSIF email IS NOT NULL AND (length(email) > 254 OR email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$') THEN
        RAISE EXCEPTION 'invalid email address' USING ERRCODE = 'invalid_parameter_value',
              DETAIL = 'An email address is local@domain.tld, at most 254 characters.';
    ELSIF birth_date IS NOT NULL AND (birth_date < DATE '1900-01-01' OR birth_date > current_date) THEN
        RAISE EXCEPTION 'birth date is out of range' USING ERRCODE = 'datetime_field_overflow',
              DETAIL = 'A birth date is between 1900-01-01 and today.';
    ELSIF time_zone IS NOT NULL AND NOT loyalty._valid_time_zone(time_zone) THEN
        RAISE EXCEPTION 'invalid time zone "%"', time_zone
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use a time zone name such as "Asia/Shanghai".';
    END IF;

    IF EXISTS (SELECT 1 FROM loyalty.replica_node) THEN
        -- a store replica: a card of the store's block and an 'enrol' event
        -- HQ applies with this function (src/sql/52_replica_offline.sql)
        SELECT e.member_id, e.card_no INTO member_id, card_no
          FROM loyalty._store_member_enroll(idempotency_key, home_store, full_name, phone, email,
                                            birth_date, gender, nationality, time_zone) e;
    ELSE
        FOR attempt IN 1..5 LOOP
            BEGIN
                INSERT INTO loyalty.member (card_no, home_store, time_zone)
                    VALUES (loyalty.card_number_new(), home_store, time_zone)
                    RETURNING member.member_id, member.card_no INTO member_id, card_no;
                EXIT;
            EXCEPTION WHEN unique_violation THEN
                IF attempt = 5 THEN
                    RAISE;
                END IF;
            END;
        END LOOP;
        INSERT INTO loyalty.member_profile (member_id, full_name, phone, email, birth_date, gender, nationality)
            VALUES (member_id, full_name, phone, email, birth_date, gender, nationality);
        PERFORM loyalty._audit_change(member_id, 'member_enroll', 'account', pg_catalog.jsonb_build_object('home_store', home_store));
    END IF;
    PERFORM loyalty._request_end('member_enroll', idempotency_key, req, pg_catalog.jsonb_build_object('member_id', member_id, 'card_no', card_no));
END
$$;
COMMENT ON FUNCTION loyalty.member_enroll(text, text, text, text, text, date, text, text, text) IS
    'Enrol a member at a store; returns the new member id and card number';

REVOKE ALL ON FUNCTION loyalty.member_enroll(text, text, text, text, text, date, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.member_enroll(text, text, text, text, text, date, text, text, text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
