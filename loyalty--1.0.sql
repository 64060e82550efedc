-- loyalty 1.0: base objects.  Every object lives in schema "loyalty", which
-- the extension creates and owns, so DROP EXTENSION removes it (the control
-- file names pg_catalog, as pg_cron does, so that nothing else lands in a
-- user schema).  Every name in these scripts is schema-qualified.

\echo Use "CREATE EXTENSION loyalty" to load this file. \quit

CREATE SCHEMA loyalty;
REVOKE ALL ON SCHEMA loyalty FROM PUBLIC;

-- The chain-wide group roles.  Privileges on views and functions are granted
-- to these; each store's department roles (loyalty_<store>_<department>,
-- made by loyalty.create_store) and HQ staff logins are members of them.
-- Roles are cluster-wide objects, so an existing role of the same name is
-- reused; see docs/roles.md.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['loyalty_frontdesk', 'loyalty_housekeeping',
                             'loyalty_fnb', 'loyalty_store_manager',
                             'loyalty_crm', 'loyalty_marketing',
                             'loyalty_bi', 'loyalty_dba']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA loyalty TO loyalty_frontdesk, loyalty_housekeeping,
    loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_marketing,
    loyalty_bi, loyalty_dba;

-- Statement trigger that invalidates per-backend caches of a table.
CREATE FUNCTION loyalty._cache_invalidate() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'loyalty_cache_invalidate';

CREATE FUNCTION loyalty._valid_time_zone(text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_valid_time_zone';

CREATE FUNCTION loyalty.new_card_number() RETURNS text
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_new_card_number';

CREATE FUNCTION loyalty.card_number_valid(text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_card_number_valid';

REVOKE ALL ON FUNCTION loyalty._cache_invalidate(), loyalty._valid_time_zone(text),
    loyalty.new_card_number(), loyalty.card_number_valid(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.card_number_valid(text) TO loyalty_frontdesk,
    loyalty_store_manager, loyalty_crm, loyalty_dba;
-- Stores (hotels) of the chain.

CREATE TABLE loyalty.store (
    store_code  text PRIMARY KEY
        CONSTRAINT store_code_format CHECK (store_code ~ '^[a-z][a-z0-9_]{0,15}$'),
    name        text NOT NULL
        CONSTRAINT store_name_length CHECK (length(name) BETWEEN 1 AND 200),
    brand       text NOT NULL
        CONSTRAINT store_brand_format CHECK (brand ~ '^[a-z][a-z0-9_]{0,31}$'),
    region      text NOT NULL
        CONSTRAINT store_region_length CHECK (length(region) BETWEEN 1 AND 100),
    time_zone   text NOT NULL
        CONSTRAINT store_time_zone_valid CHECK (loyalty._valid_time_zone(time_zone)),
    status      text NOT NULL DEFAULT 'open'
        CONSTRAINT store_status_valid CHECK (status IN ('open', 'closed')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.store IS 'Hotels ("stores") of the chain';
SELECT pg_catalog.pg_extension_config_dump('loyalty.store', '');
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
-- (privacy functions over this table: src/sql/45_privacy_ops.sql)
-- The role model: which roles are which store's departments.

CREATE TABLE loyalty.staff_role (
    role        regrole PRIMARY KEY,
    store_code  text REFERENCES loyalty.store ON DELETE CASCADE,
    department  text NOT NULL
        CONSTRAINT staff_role_department_valid CHECK (department IN
            ('frontdesk', 'housekeeping', 'fnb', 'store_manager',
             'crm', 'marketing', 'bi', 'dba')),
    CONSTRAINT staff_role_hq_has_no_store CHECK
        ((store_code IS NULL) = (department IN ('crm', 'marketing', 'bi', 'dba')))
);
COMMENT ON TABLE loyalty.staff_role IS 'Maps department roles to a store (NULL: HQ) and a department; read by loyalty.whoami()';
-- the HQ rows are part of the extension; store rows are user data
SELECT pg_catalog.pg_extension_config_dump('loyalty.staff_role', 'WHERE store_code IS NOT NULL');

INSERT INTO loyalty.staff_role (role, store_code, department) VALUES
    ('loyalty_crm', NULL, 'crm'),
    ('loyalty_marketing', NULL, 'marketing'),
    ('loyalty_bi', NULL, 'bi'),
    ('loyalty_dba', NULL, 'dba');

CREATE TRIGGER staff_role_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.staff_role
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._cache_invalidate();

CREATE FUNCTION loyalty.whoami(
    OUT login text, OUT role text, OUT store_code text,
    OUT department text, OUT is_hq boolean)
    RETURNS record
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'loyalty_whoami';
COMMENT ON FUNCTION loyalty.whoami() IS 'The caller''s store and department, from role membership';

CREATE FUNCTION loyalty.caller_store() RETURNS text
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'loyalty_caller_store';

CREATE FUNCTION loyalty.caller_is_hq() RETURNS boolean
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'loyalty_caller_is_hq';

CREATE FUNCTION loyalty._check_access(store_code text, departments text[])
    RETURNS void
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'loyalty_check_access';

CREATE FUNCTION loyalty.create_store(
    store_code text, name text, brand text, region text, time_zone text)
    RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_create_store';
COMMENT ON FUNCTION loyalty.create_store(text, text, text, text, text) IS
    'Create a store and its department roles loyalty_<store>_<department>';

CREATE FUNCTION loyalty.create_staff(
    login text, store_code text, department text, password text DEFAULT NULL)
    RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_create_staff';
COMMENT ON FUNCTION loyalty.create_staff(text, text, text, text) IS
    'Create a login role in one store department (or HQ department when store_code is NULL)';

REVOKE ALL ON FUNCTION loyalty.whoami(), loyalty.caller_store(),
    loyalty.caller_is_hq(), loyalty._check_access(text, text[]),
    loyalty.create_store(text, text, text, text, text),
    loyalty.create_staff(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.whoami(), loyalty.caller_store(), loyalty.caller_is_hq()
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.create_store(text, text, text, text, text),
    loyalty.create_staff(text, text, text, text) TO loyalty_dba;
GRANT SELECT ON loyalty.store TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb,
    loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba;
-- Program policy documents (docs/policy.md).  Every version is kept with
-- the time it takes effect; the C code compiles the version in effect and
-- caches it per backend.

CREATE TABLE loyalty.policy (
    policy_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document       text NOT NULL,
    effective_from timestamptz NOT NULL DEFAULT now()
        CONSTRAINT policy_effective_from_key UNIQUE,
    note           text
        CONSTRAINT policy_note_length CHECK (length(note) <= 1000),
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.policy IS 'Versions of the program policy document, by the time each takes effect';

CREATE FUNCTION loyalty._policy_check() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'loyalty_policy_check_trigger';
REVOKE ALL ON FUNCTION loyalty._policy_check() FROM PUBLIC;

CREATE TRIGGER policy_check
    BEFORE INSERT OR UPDATE OR DELETE ON loyalty.policy
    FOR EACH ROW EXECUTE FUNCTION loyalty._policy_check();
CREATE TRIGGER policy_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.policy
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._cache_invalidate();

CREATE FUNCTION loyalty.policy_validate(document text) RETURNS jsonb
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_policy_validate';
COMMENT ON FUNCTION loyalty.policy_validate(text) IS
    'Validate a policy document without storing it; returns it with every default spelled out';

CREATE FUNCTION loyalty.policy_at(at timestamptz DEFAULT now()) RETURNS jsonb
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_policy_at_sql';
COMMENT ON FUNCTION loyalty.policy_at(timestamptz) IS
    'The policy in effect at a time, normalised';

CREATE FUNCTION loyalty.policy_set(
    document text, effective_from timestamptz DEFAULT now(), note text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id bigint;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF document IS NULL OR effective_from IS NULL THEN
        RAISE EXCEPTION 'policy document and effective_from must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF EXISTS (SELECT 1 FROM loyalty.policy p WHERE p.effective_from = policy_set.effective_from) THEN
        RAISE EXCEPTION 'a policy version already takes effect at %', effective_from
            USING ERRCODE = 'unique_violation',
                  HINT = 'Choose another effective_from time.';
    END IF;
    INSERT INTO loyalty.policy (document, effective_from, note)
        VALUES (policy_set.document, policy_set.effective_from, policy_set.note)
        RETURNING policy_id INTO id;
    RETURN id;
END
$$;
COMMENT ON FUNCTION loyalty.policy_set(text, timestamptz, text) IS
    'Validate and store a policy version taking effect at effective_from';

REVOKE ALL ON FUNCTION loyalty.policy_validate(text), loyalty.policy_at(timestamptz),
    loyalty.policy_set(text, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.policy_validate(text), loyalty.policy_at(timestamptz)
    TO loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba, loyalty_store_manager;
GRANT EXECUTE ON FUNCTION loyalty.policy_set(text, timestamptz, text) TO loyalty_crm, loyalty_dba;
GRANT SELECT ON loyalty.policy TO loyalty_crm, loyalty_dba;

-- The demo chain's default policy (docs/policy.md explains every key).  It
-- takes effect from the beginning of time; later versions are user data.
INSERT INTO loyalty.policy (document, effective_from, note) VALUES ($json$
{
  "version": 1,
  "comment": "Demo chain default policy",
  "currency": {"code": "CNY", "scale": 2},
  "tiers": [
    {"code": "member", "name": "Member", "rank": 0},
    {"code": "silver", "name": "Silver", "rank": 1, "elite_bonus_percent": 20,
     "qualify": {"any": {"nights": 10, "stays": 4, "base_points": 25000}}},
    {"code": "gold", "name": "Gold", "rank": 2, "elite_bonus_percent": 80,
     "qualify": {"any": {"nights": 40, "stays": 20, "base_points": 75000}}},
    {"code": "platinum", "name": "Platinum", "rank": 3, "elite_bonus_percent": 100,
     "qualify": {"any": {"nights": 60, "stays": 30, "base_points": 120000}}}
  ],
  "qualification": {
    "period": "calendar_year",
    "validity": {"years_after": 2, "through_month": 3},
    "downgrade": "one_tier"
  },
  "earning": {
    "base_points_per_unit": 10,
    "pending_until": "checkout",
    "milestones": [{"nights": 40, "points": 10000, "every": 10}]
  },
  "expiry": {"mode": "inactivity", "inactivity_months": 24, "notice_days": 30},
  "redemption": {
    "rate": {"points": 1000, "amount": "100.00"},
    "minimum_points": 1000,
    "step_points": 100,
    "order": "soonest_expiring"
  },
  "reversal": {"mode": "within_balance"},
  "transfer": {"enabled": true, "yearly_cap_out": 50000, "yearly_cap_in": 100000}
}
$json$, '-infinity', 'default policy shipped with the extension');

SELECT pg_catalog.pg_extension_config_dump('loyalty.policy', $$WHERE effective_from <> '-infinity'$$);
SELECT pg_catalog.pg_extension_config_dump('loyalty.policy_policy_id_seq', '');
-- Enrolment.

CREATE FUNCTION loyalty.enroll(
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
    attempt int;
BEGIN
    IF home_store IS NULL OR full_name IS NULL THEN
        RAISE EXCEPTION 'home_store and full_name must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty._check_access(home_store, ARRAY['frontdesk', 'store_manager', 'crm', 'dba']);
    IF NOT EXISTS (SELECT 1 FROM loyalty.store s WHERE s.store_code = home_store) THEN
        RAISE EXCEPTION 'store "%" does not exist', home_store
            USING ERRCODE = 'no_data_found';
    END IF;
    IF btrim(full_name) = '' THEN
        RAISE EXCEPTION 'full_name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    ELSIF length(full_name) > 100 THEN
        RAISE EXCEPTION 'full_name is longer than 100 characters' USING ERRCODE = 'string_data_right_truncation';
    ELSIF phone IS NOT NULL AND phone !~ '^\+?[0-9]{5,20}$' THEN
        RAISE EXCEPTION 'invalid phone number "%"', phone
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A phone number is 5 to 20 digits with an optional leading +.';
    ELSIF email IS NOT NULL AND (length(email) > 254 OR email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$') THEN
        RAISE EXCEPTION 'invalid email address "%"', email USING ERRCODE = 'invalid_parameter_value';
    ELSIF birth_date IS NOT NULL AND (birth_date < DATE '1900-01-01' OR birth_date > current_date) THEN
        RAISE EXCEPTION 'birth date % is out of range', birth_date USING ERRCODE = 'datetime_field_overflow';
    ELSIF time_zone IS NOT NULL AND NOT loyalty._valid_time_zone(time_zone) THEN
        RAISE EXCEPTION 'invalid time zone "%"', time_zone
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use a time zone name such as "Asia/Shanghai".';
    END IF;

    FOR attempt IN 1..5 LOOP
        BEGIN
            INSERT INTO loyalty.member (card_no, home_store, time_zone)
                VALUES (loyalty.new_card_number(), home_store, time_zone)
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
END
$$;
COMMENT ON FUNCTION loyalty.enroll(text, text, text, text, date, text, text, text) IS
    'Enrol a member at a store; returns the new member id and card number';

REVOKE ALL ON FUNCTION loyalty.enroll(text, text, text, text, date, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.enroll(text, text, text, text, date, text, text, text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
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
) WITH (fillfactor = 80);   -- room for HOT updates of the hot row
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
) WITH (fillfactor = 90);   -- room for HOT updates of "remaining"
COMMENT ON TABLE loyalty.point_lot IS 'Point lots: one per accrual, with what remains of it';
CREATE INDEX point_lot_member_idx ON loyalty.point_lot (member_id) WHERE state IN ('active', 'pending');
-- the lots a debit draws on, in each redemption order.  "remaining" is
-- deliberately in no index (not even a predicate), so the update of a lot a
-- debit draws from is a HOT update: a member redeeming again and again (the
-- hot path) does not leave a dead index entry per redemption.
CREATE INDEX point_lot_spend_soonest_idx ON loyalty.point_lot (member_id, expires_at, active_from, lot_id)
    WHERE state = 'active';
CREATE INDEX point_lot_spend_oldest_idx ON loyalty.point_lot (member_id, active_from, lot_id)
    WHERE state = 'active';
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
       -- transactions are store-scoped: a store sees its own, HQ all
       AND (loyalty.caller_is_hq() OR e.store_code = loyalty.caller_store())
     ORDER BY e.recorded_at DESC, e.balance_after
     LIMIT least(greatest($2, 0), 1000)
$$;
COMMENT ON FUNCTION loyalty.member_ledger(uuid, integer) IS 'A member''s latest ledger entries (statement); store staff see their own store''s entries only';

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

-- The outbox for the extension's SQL and PL/pgSQL code (risk tags): one
-- event row plus NOTIFY loyalty_event, in the caller's transaction.
CREATE FUNCTION loyalty._event_emit(kind text, member_id uuid, store_code text, payload jsonb)
    RETURNS bigint
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_event_emit';
REVOKE ALL ON FUNCTION loyalty._event_emit(text, uuid, text, jsonb) FROM PUBLIC;
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
-- Stays and charges: the calls applications make (docs/tiers.md).

CREATE FUNCTION loyalty.record_stay(
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
COMMENT ON FUNCTION loyalty.record_stay(text, text, uuid, date, date, integer, numeric, numeric, boolean, timestamptz) IS
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

CREATE FUNCTION loyalty.record_charge(
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
COMMENT ON FUNCTION loyalty.record_charge(text, text, uuid, numeric, timestamptz) IS
    'Record an eligible charge outside a stay: points, base points and spend counters; idempotent';

REVOKE ALL ON FUNCTION
    loyalty.record_stay(text, text, uuid, date, date, integer, numeric, numeric, boolean, timestamptz),
    loyalty.stay_checkout(text, timestamptz),
    loyalty.record_charge(text, text, uuid, numeric, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.record_stay(text, text, uuid, date, date, integer, numeric, numeric, boolean, timestamptz),
    loyalty.stay_checkout(text, timestamptz),
    loyalty.record_charge(text, text, uuid, numeric, timestamptz)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
-- Tiers: as-of queries, status, manual grants (docs/tiers.md).

CREATE FUNCTION loyalty._tier_period_start(period integer, local date, enrolled date)
    RETURNS date
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_tier_period_start';

CREATE FUNCTION loyalty._counters_at(member_id uuid, at timestamptz,
    OUT period_start date, OUT period_end date, OUT nights bigint, OUT stays bigint,
    OUT base_points bigint, OUT qualifying_spend_minor bigint, OUT qualifies_for text)
    RETURNS record
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'loyalty_counters_at';

-- who may look a member's tier up: every store department that serves
-- guests, and HQ
CREATE FUNCTION loyalty.counters_at(member_id uuid, at timestamptz DEFAULT now(),
    OUT period_start date, OUT period_end date, OUT nights bigint, OUT stays bigint,
    OUT base_points bigint, OUT qualifying_spend numeric, OUT qualifies_for text)
    RETURNS record
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm', 'marketing', 'dba']);
    IF member_id IS NULL OR at IS NULL THEN
        RAISE EXCEPTION 'member_id and at must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO c FROM loyalty._counters_at(counters_at.member_id, counters_at.at);
    period_start := c.period_start;
    period_end := c.period_end;
    nights := c.nights;
    stays := c.stays;
    base_points := c.base_points;
    qualifying_spend := round(c.qualifying_spend_minor
        / (10::numeric ^ (loyalty.policy_at(at) -> 'currency' ->> 'scale')::int),
        (loyalty.policy_at(at) -> 'currency' ->> 'scale')::int);
    qualifies_for := c.qualifies_for;
END
$$;
COMMENT ON FUNCTION loyalty.counters_at(uuid, timestamptz) IS
    'A member''s qualification period and counters as they were recorded at a time';

CREATE FUNCTION loyalty.tier_at(member_id uuid, at timestamptz DEFAULT now(),
    OUT tier text, OUT valid_until timestamptz, OUT since timestamptz, OUT reason text)
    RETURNS record
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm', 'marketing', 'dba']);
    IF member_id IS NULL OR at IS NULL THEN
        RAISE EXCEPTION 'member_id and at must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT h.new_tier, h.valid_until, h.changed_at, h.reason
      INTO tier, valid_until, since, reason
      FROM loyalty.tier_history h
     WHERE h.member_id = tier_at.member_id AND h.changed_at <= tier_at.at
     ORDER BY h.changed_at DESC LIMIT 1;
    IF NOT FOUND THEN
        SELECT loyalty.policy_at(at) -> 'tiers' -> 0 ->> 'code', NULL, m.enrolled_at, 'enrolled'
          INTO tier, valid_until, since, reason
          FROM loyalty.member m WHERE m.member_id = tier_at.member_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'member % does not exist', member_id USING ERRCODE = 'no_data_found';
        END IF;
        IF since > at THEN
            tier := NULL;
            reason := 'not yet enrolled';
        END IF;
    END IF;
END
$$;
COMMENT ON FUNCTION loyalty.tier_at(uuid, timestamptz) IS
    'A member''s tier and its validity as they were at a time';

CREATE FUNCTION loyalty.tier_status(member_id uuid)
    RETURNS TABLE (tier text, valid_until timestamptz, period_start date, period_end date,
                   counter text, value numeric, next_tier text, next_threshold numeric)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol jsonb := loyalty.policy_at(now());
    c record;
    m record;
    nxt jsonb;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm', 'marketing', 'dba']);
    SELECT mm.tier, mm.tier_valid_until INTO m FROM loyalty.member mm WHERE mm.member_id = tier_status.member_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member_id USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO c FROM loyalty._counters_at(tier_status.member_id, now());
    SELECT t INTO nxt FROM jsonb_array_elements(pol -> 'tiers') t
     WHERE (t ->> 'rank')::int > (SELECT (u ->> 'rank')::int FROM jsonb_array_elements(pol -> 'tiers') u
                                   WHERE u ->> 'code' = m.tier UNION ALL SELECT 0 LIMIT 1)
     ORDER BY (t ->> 'rank')::int LIMIT 1;
    RETURN QUERY
    SELECT m.tier, m.tier_valid_until, c.period_start, c.period_end, k.counter, k.value,
           nxt ->> 'code', (nxt -> 'qualify' -> 'any' ->> k.counter)::numeric
      FROM (VALUES ('nights', c.nights::numeric, 1), ('stays', c.stays::numeric, 2),
                   ('base_points', c.base_points::numeric, 3),
                   ('qualifying_spend', round(c.qualifying_spend_minor
                        / (10::numeric ^ (pol -> 'currency' ->> 'scale')::int),
                        (pol -> 'currency' ->> 'scale')::int), 4)) AS k(counter, value, ord)
     ORDER BY k.ord;
END
$$;
COMMENT ON FUNCTION loyalty.tier_status(uuid) IS
    'A member''s tier, this period''s counters and the next tier''s any-of thresholds';

CREATE FUNCTION loyalty.tier_grant(member_id uuid, tier text, reason text,
    expires_at timestamptz DEFAULT NULL)
    RETURNS uuid
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_tier_grant';
COMMENT ON FUNCTION loyalty.tier_grant(uuid, text, text, timestamptz) IS
    'Grant a tier by hand with a reason and an expiry; a floor for downgrades while in force';

REVOKE ALL ON FUNCTION loyalty._tier_period_start(integer, date, date),
    loyalty._counters_at(uuid, timestamptz), loyalty.counters_at(uuid, timestamptz),
    loyalty.tier_at(uuid, timestamptz), loyalty.tier_status(uuid),
    loyalty.tier_grant(uuid, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.counters_at(uuid, timestamptz), loyalty.tier_at(uuid, timestamptz),
    loyalty.tier_status(uuid)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.tier_grant(uuid, text, text, timestamptz) TO loyalty_crm, loyalty_dba;
-- Tier batches: downgrade preview and apply, requalification of every
-- member with progress (docs/tiers.md, "Batches").

CREATE FUNCTION loyalty._tier_decide(member_id uuid, at timestamptz,
    OUT action text, OUT new_tier text, OUT new_valid_until timestamptz, OUT reason text)
    RETURNS record
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'loyalty_tier_decide';

CREATE FUNCTION loyalty._tier_requalify_batch(after uuid, batch_size integer,
    at timestamptz, expired_only boolean,
    OUT last_member uuid, OUT processed integer, OUT changed integer)
    RETURNS record
    LANGUAGE c VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_tier_requalify_batch';

CREATE FUNCTION loyalty.tier_downgrade_preview(at timestamptz DEFAULT now())
    RETURNS TABLE (member_id uuid, card_no text, old_tier text, new_tier text,
                   old_valid_until timestamptz, new_valid_until timestamptz,
                   action text, reason text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF at IS NULL THEN
        RAISE EXCEPTION 'at must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN QUERY
    SELECT m.member_id, m.card_no, m.tier, d.new_tier, m.tier_valid_until, d.new_valid_until,
           d.action, d.reason
      FROM loyalty.member m, LATERAL loyalty._tier_decide(m.member_id, tier_downgrade_preview.at) d
     WHERE m.status = 'active' AND m.tier_valid_until <= tier_downgrade_preview.at
       AND d.action <> 'keep'
     ORDER BY m.card_no;
END
$$;
COMMENT ON FUNCTION loyalty.tier_downgrade_preview(timestamptz) IS
    'Who the downgrade batch would change at a time, to what, and why; changes nothing';

-- Job bookkeeping, each call in the procedure's current transaction.
CREATE FUNCTION loyalty._tier_job(job_id uuid, kind text, at timestamptz,
    done bigint, changed bigint, finished boolean)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id uuid := job_id;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF id IS NULL THEN
        INSERT INTO loyalty.tier_job (kind, as_of, members_total)
        VALUES (kind, at, (SELECT count(*) FROM loyalty.member m WHERE m.status = 'active'))
        RETURNING tier_job.job_id INTO id;
    ELSE
        UPDATE loyalty.tier_job j
           SET members_done = j.members_done + done,
               members_changed = j.members_changed + changed,
               updated_at = clock_timestamp(),
               state = CASE WHEN finished THEN 'done' ELSE j.state END,
               finished_at = CASE WHEN finished THEN clock_timestamp() END
         WHERE j.job_id = id;
    END IF;
    RETURN id;
END
$$;

-- A procedure (not SECURITY DEFINER: those cannot commit) that commits
-- after every batch, so that progress is visible and locks are short.
CREATE PROCEDURE loyalty.tier_requalify(at timestamptz DEFAULT NULL,
    batch_size integer DEFAULT 5000, expired_only boolean DEFAULT false)
    LANGUAGE plpgsql
AS $$
DECLARE
    as_of timestamptz := coalesce(at, now());
    job uuid;
    last uuid := '00000000-0000-0000-0000-000000000000';
    b record;
BEGIN
    job := loyalty._tier_job(NULL, CASE WHEN expired_only THEN 'downgrade' ELSE 'requalify' END,
                             as_of, 0, 0, false);
    COMMIT;
    LOOP
        b := loyalty._tier_requalify_batch(last, batch_size, as_of, expired_only);
        EXIT WHEN b.processed = 0;
        PERFORM loyalty._tier_job(job, NULL, NULL, b.processed, b.changed, false);
        COMMIT;
        last := b.last_member;
    END LOOP;
    PERFORM loyalty._tier_job(job, NULL, NULL, 0, 0, true);
    COMMIT;
END
$$;
COMMENT ON PROCEDURE loyalty.tier_requalify(timestamptz, integer, boolean) IS
    'Requalify every member (upgrades, extensions, downgrades of ended validity), one committed batch at a time';

CREATE PROCEDURE loyalty.tier_downgrade_apply(at timestamptz DEFAULT NULL,
    batch_size integer DEFAULT 5000)
    LANGUAGE plpgsql
AS $$
BEGIN
    CALL loyalty.tier_requalify(at, batch_size, true);
END
$$;
COMMENT ON PROCEDURE loyalty.tier_downgrade_apply(timestamptz, integer) IS
    'Apply the period-end downgrades that loyalty.tier_downgrade_preview() lists';

CREATE VIEW loyalty.tier_job_progress WITH (security_barrier) AS
SELECT j.job_id, j.kind, j.state, j.as_of, j.members_done, j.members_total,
       round(100.0 * j.members_done / greatest(j.members_total, 1), 1) AS percent,
       j.members_changed, j.started_at, j.updated_at, j.finished_at,
       round(j.members_done / greatest(extract(epoch FROM j.updated_at - j.started_at), 0.001)::numeric)
           AS members_per_second,
       CASE WHEN j.state = 'running' AND j.members_done > 0
            THEN (j.updated_at - j.started_at) * ((j.members_total - j.members_done)::float8 / j.members_done)
       END AS eta,
       j.started_by
  FROM loyalty.tier_job j;
COMMENT ON VIEW loyalty.tier_job_progress IS 'Progress of tier batch jobs, updated after every committed batch';

REVOKE ALL ON FUNCTION loyalty._tier_decide(uuid, timestamptz),
    loyalty._tier_requalify_batch(uuid, integer, timestamptz, boolean),
    loyalty.tier_downgrade_preview(timestamptz),
    loyalty._tier_job(uuid, text, timestamptz, bigint, bigint, boolean) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.tier_requalify(timestamptz, integer, boolean),
    loyalty.tier_downgrade_apply(timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON loyalty.tier_job_progress FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._tier_requalify_batch(uuid, integer, timestamptz, boolean),
    loyalty.tier_downgrade_preview(timestamptz),
    loyalty._tier_job(uuid, text, timestamptz, bigint, bigint, boolean) TO loyalty_crm, loyalty_dba;
GRANT EXECUTE ON PROCEDURE loyalty.tier_requalify(timestamptz, integer, boolean),
    loyalty.tier_downgrade_apply(timestamptz, integer) TO loyalty_crm, loyalty_dba;
GRANT SELECT ON loyalty.tier_job_progress TO loyalty_crm, loyalty_dba;
-- Risk tags (docs/benefits.md, "Risk tags and the freeze").
--
-- A risk type says what an unresolved tag of that type freezes: capability
-- names, which are "redemption" (points redemption, checked by the ledger),
-- "transfer", and the benefit kinds of loyalty.benefit.  A risk tag is raised
-- by one store (or HQ) against a member, freezes its type's capabilities at
-- every store from the moment it commits, and is resolved once.  Every step
-- is recorded in loyalty.risk_tag_event.  Store staff see that a member has
-- an unresolved tag through loyalty.risk_tags(); only the raising store and
-- HQ see its internal note, amount owed and resolution.

CREATE TABLE loyalty.risk_type (
    risk_code   text PRIMARY KEY
        CONSTRAINT risk_code_format CHECK (risk_code ~ '^[a-z][a-z0-9_]{0,31}$'),
    name        text NOT NULL
        CONSTRAINT risk_name_length CHECK (length(name) BETWEEN 1 AND 200),
    freezes     text[] NOT NULL DEFAULT '{}'
        CONSTRAINT risk_freezes_valid CHECK (freezes <@ ARRAY[
            'redemption', 'transfer', 'room_discount', 'breakfast', 'late_checkout',
            'room_upgrade', 'gift', 'voucher', 'amenity', 'other']::text[]
            AND array_position(freezes, NULL) IS NULL),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.risk_type IS 'Kinds of risk tag and the capabilities an unresolved tag of the kind freezes';
-- the shipped types are part of the extension; others are user data
SELECT pg_catalog.pg_extension_config_dump('loyalty.risk_type',
    $$WHERE risk_code NOT IN ('unresolved_violation', 'fraud_review')$$);

-- every backend caches what each type freezes (src/benefit_catalog.c)
CREATE TRIGGER risk_type_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.risk_type
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._cache_invalidate();

INSERT INTO loyalty.risk_type (risk_code, name, freezes) VALUES
    ('unresolved_violation', 'Unresolved violation (damage, unpaid charges)',
     ARRAY['redemption', 'room_upgrade']),
    ('fraud_review', 'Account under fraud review',
     ARRAY['redemption', 'transfer', 'room_discount', 'breakfast', 'late_checkout',
           'room_upgrade', 'gift', 'voucher', 'amenity', 'other']);

CREATE TABLE loyalty.risk_tag (
    tag_id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id     uuid NOT NULL REFERENCES loyalty.member,
    risk_code     text NOT NULL REFERENCES loyalty.risk_type,
    store_code    text REFERENCES loyalty.store,      -- NULL: raised by HQ
    note          text NOT NULL
        CONSTRAINT risk_tag_note_length CHECK (length(note) BETWEEN 1 AND 1000),
    amount_owed   numeric(12, 2)
        CONSTRAINT risk_tag_amount_owed_positive CHECK (amount_owed > 0),
    raised_at     timestamptz NOT NULL DEFAULT now(),
    raised_by     name NOT NULL,
    resolved_at   timestamptz,
    resolved_by   name,
    resolved_store text REFERENCES loyalty.store,
    resolution    text
        CONSTRAINT risk_tag_resolution_valid CHECK (resolution IN ('settled', 'waived', 'raised_in_error')),
    resolution_note text
        CONSTRAINT risk_tag_resolution_note_length CHECK (length(resolution_note) BETWEEN 1 AND 1000),
    CONSTRAINT risk_tag_resolution_complete CHECK
        ((resolved_at IS NULL) = (resolved_by IS NULL) AND
         (resolved_at IS NULL) = (resolution IS NULL) AND
         (resolved_at IS NULL) = (resolution_note IS NULL))
);
COMMENT ON TABLE loyalty.risk_tag IS 'Risk tags of members; an unresolved tag freezes its type''s capabilities chain-wide';
CREATE INDEX risk_tag_member_idx ON loyalty.risk_tag (member_id, raised_at);
CREATE INDEX risk_tag_unresolved_idx ON loyalty.risk_tag (member_id) WHERE resolved_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('loyalty.risk_tag', '');
-- every backend caches the unresolved tags (src/risk_cache.c)
CREATE TRIGGER risk_tag_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.risk_tag
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._cache_invalidate();

CREATE TABLE loyalty.risk_tag_event (
    event_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tag_id      uuid NOT NULL REFERENCES loyalty.risk_tag,
    member_id   uuid NOT NULL REFERENCES loyalty.member,
    action      text NOT NULL
        CONSTRAINT risk_event_action_valid CHECK (action IN ('raised', 'resolved')),
    store_code  text REFERENCES loyalty.store,        -- where the staff acted; NULL: HQ
    login       name NOT NULL,
    role        name NOT NULL,
    department  text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    detail      jsonb NOT NULL
);
COMMENT ON TABLE loyalty.risk_tag_event IS 'Audit trail of risk tags: who raised and resolved each, where and when (append-only)';
CREATE INDEX risk_tag_event_tag_idx ON loyalty.risk_tag_event (tag_id, at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.risk_tag_event', '');

-- The audit trail is append-only: nobody, not even the owner through the API,
-- changes or deletes a step.
CREATE FUNCTION loyalty._risk_event_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'the risk tag audit trail is append-only'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'Steps of loyalty.risk_tag_event are never updated or deleted.';
END
$$;
REVOKE ALL ON FUNCTION loyalty._risk_event_append_only() FROM PUBLIC;
CREATE TRIGGER risk_tag_event_append_only
    BEFORE UPDATE OR DELETE ON loyalty.risk_tag_event
    FOR EACH ROW EXECUTE FUNCTION loyalty._risk_event_append_only();

-- set_risk_type: HQ says what an unresolved tag of a type freezes (new type,
-- or a change that takes effect for the type's open tags at once).
CREATE FUNCTION loyalty.set_risk_type(risk_code text, name text, freezes text[])
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF risk_code IS NULL OR name IS NULL OR freezes IS NULL THEN
        RAISE EXCEPTION 'risk_code, name and freezes must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF risk_code !~ '^[a-z][a-z0-9_]{0,31}$' THEN
        RAISE EXCEPTION 'invalid risk code "%"', risk_code
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A risk code is 1 to 32 lowercase letters, digits and underscores, starting with a letter.';
    END IF;
    IF btrim(name) = '' OR length(name) > 200 THEN
        RAISE EXCEPTION 'a risk type name is 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT f INTO bad FROM unnest(freezes) f
     WHERE f IS NULL OR f NOT IN ('redemption', 'transfer', 'room_discount', 'breakfast', 'late_checkout',
                                  'room_upgrade', 'gift', 'voucher', 'amenity', 'other')
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown capability "%"', coalesce(bad, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The capabilities are redemption, transfer and the benefit kinds; earning cannot be frozen.';
    END IF;
    INSERT INTO loyalty.risk_type AS t (risk_code, name, freezes)
        VALUES (risk_code, name, ARRAY(SELECT DISTINCT f FROM unnest(freezes) f ORDER BY f))
        ON CONFLICT ON CONSTRAINT risk_type_pkey
        DO UPDATE SET name = EXCLUDED.name, freezes = EXCLUDED.freezes;
    RETURN risk_code;
END
$$;
COMMENT ON FUNCTION loyalty.set_risk_type(text, text, text[]) IS
    'Create or change a risk type and the capabilities its unresolved tags freeze';

-- C: the freeze check shared with the ledger (src/risk.h).
CREATE FUNCTION loyalty.assert_not_frozen(member_id uuid, capability text)
    RETURNS void
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_assert_not_frozen_sql';
COMMENT ON FUNCTION loyalty.assert_not_frozen(uuid, text) IS
    'Error LY001 if an unresolved risk tag of the member freezes the capability';

CREATE FUNCTION loyalty.frozen_by(member_id uuid, capability text)
    RETURNS text
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_frozen_by_sql';
COMMENT ON FUNCTION loyalty.frozen_by(uuid, text) IS
    'The risk code of the oldest unresolved tag freezing the capability, or NULL';

-- _risk_actor: the caller as recorded in the audit trail.
CREATE FUNCTION loyalty._risk_actor(OUT login name, OUT role name,
    OUT store_code text, OUT department text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT w.login::name, w.role::name, w.store_code, w.department FROM loyalty.whoami() w
$$;
REVOKE ALL ON FUNCTION loyalty._risk_actor() FROM PUBLIC;

CREATE FUNCTION loyalty.raise_risk_tag(
    member_id   uuid,
    store_code  text,
    risk_code   text,
    note        text,
    amount_owed numeric DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    actor record;
    tag uuid;
    payload jsonb;
BEGIN
    IF member_id IS NULL OR risk_code IS NULL OR note IS NULL THEN
        RAISE EXCEPTION 'member_id, risk_code and note must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- store staff raise for their own store; HQ for any store or none
    PERFORM loyalty._check_access(store_code,
        ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm', 'dba']);
    SELECT * INTO actor FROM loyalty._risk_actor();
    IF store_code IS NULL AND actor.store_code IS NOT NULL THEN
        RAISE EXCEPTION 'store_code must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Store staff raise risk tags for their own store.';
    END IF;
    IF store_code IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM loyalty.store s WHERE s.store_code = raise_risk_tag.store_code) THEN
        RAISE EXCEPTION 'store "%" does not exist', store_code USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.risk_type t WHERE t.risk_code = raise_risk_tag.risk_code) THEN
        RAISE EXCEPTION 'unknown risk type "%"', risk_code
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The risk types are listed in loyalty.risk_type.';
    END IF;
    IF btrim(note) = '' THEN
        RAISE EXCEPTION 'note must not be empty' USING ERRCODE = 'invalid_parameter_value';
    ELSIF length(note) > 1000 THEN
        RAISE EXCEPTION 'note is longer than 1000 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF amount_owed IS NOT NULL AND (amount_owed <= 0 OR amount_owed <> round(amount_owed, 2)
                                    OR amount_owed >= 10000000000) THEN
        RAISE EXCEPTION 'invalid amount owed %', amount_owed
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'An amount owed is positive, in currency units with at most two decimals, below 10,000,000,000.';
    END IF;
    -- the member row lock orders this raise with concurrent benefit uses and
    -- redemptions of the member: they see the tag once it commits
    PERFORM 1 FROM loyalty.member m WHERE m.member_id = raise_risk_tag.member_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member_id USING ERRCODE = 'no_data_found';
    END IF;

    INSERT INTO loyalty.risk_tag (member_id, risk_code, store_code, note, amount_owed, raised_by)
        VALUES (member_id, risk_code, store_code, note, amount_owed, actor.login)
        RETURNING tag_id INTO tag;
    payload := jsonb_build_object('event', 'risk_tag_raised', 'tag_id', tag,
        'member_id', member_id, 'risk_code', risk_code, 'store_code', store_code,
        'freezes', (SELECT to_jsonb(t.freezes) FROM loyalty.risk_type t WHERE t.risk_code = raise_risk_tag.risk_code),
        'amount_owed', amount_owed);
    INSERT INTO loyalty.risk_tag_event (tag_id, member_id, action, store_code, login, role, department, detail)
        VALUES (tag, member_id, 'raised', actor.store_code, actor.login, actor.role, actor.department, payload);
    -- the event goes to every store: no note in it
    PERFORM loyalty._event_emit('risk_tag_raised', member_id, actor.store_code, payload);
    RETURN tag;
END
$$;
COMMENT ON FUNCTION loyalty.raise_risk_tag(uuid, text, text, text, numeric) IS
    'Raise a risk tag against a member for a store; freezes the risk type''s capabilities chain-wide';

CREATE FUNCTION loyalty.resolve_risk_tag(
    tag_id     uuid,
    resolution text,
    note       text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    actor record;
    t loyalty.risk_tag;
    payload jsonb;
BEGIN
    IF tag_id IS NULL OR resolution IS NULL OR note IS NULL THEN
        RAISE EXCEPTION 'tag_id, resolution and note must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm', 'dba']);
    SELECT * INTO actor FROM loyalty._risk_actor();
    IF resolution NOT IN ('settled', 'waived', 'raised_in_error') THEN
        RAISE EXCEPTION 'invalid resolution "%"', resolution
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A resolution is settled, waived or raised_in_error.';
    END IF;
    IF btrim(note) = '' THEN
        RAISE EXCEPTION 'note must not be empty' USING ERRCODE = 'invalid_parameter_value';
    ELSIF length(note) > 1000 THEN
        RAISE EXCEPTION 'note is longer than 1000 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    SELECT * INTO t FROM loyalty.risk_tag r WHERE r.tag_id = resolve_risk_tag.tag_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'risk tag % does not exist', tag_id USING ERRCODE = 'no_data_found';
    END IF;
    -- a store resolves its own tags; HQ any
    IF actor.store_code IS NOT NULL AND actor.store_code IS DISTINCT FROM t.store_code THEN
        RAISE EXCEPTION 'permission denied for risk tag %', tag_id
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('The tag was raised by %s; staff of store "%s" may resolve only their own store''s tags.',
                                             coalesce('store "' || t.store_code || '"', 'HQ'), actor.store_code),
                  HINT = 'Ask the raising store or HQ to resolve it.';
    END IF;
    -- lock order as in raise_risk_tag: member row, then the tag
    PERFORM 1 FROM loyalty.member m WHERE m.member_id = t.member_id FOR NO KEY UPDATE;
    SELECT * INTO t FROM loyalty.risk_tag r WHERE r.tag_id = resolve_risk_tag.tag_id FOR UPDATE;
    IF t.resolved_at IS NOT NULL THEN
        RAISE EXCEPTION 'risk tag % is already resolved', tag_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = pg_catalog.format('It was resolved (%s) at %s by %s.', t.resolution, t.resolved_at, t.resolved_by);
    END IF;
    UPDATE loyalty.risk_tag r
       SET resolved_at = now(), resolved_by = actor.login, resolved_store = actor.store_code,
           resolution = resolve_risk_tag.resolution, resolution_note = resolve_risk_tag.note
     WHERE r.tag_id = resolve_risk_tag.tag_id;
    payload := jsonb_build_object('event', 'risk_tag_resolved', 'tag_id', t.tag_id,
        'member_id', t.member_id, 'risk_code', t.risk_code, 'store_code', t.store_code,
        'resolution', resolution,
        'unfreezes', (SELECT to_jsonb(y.freezes) FROM loyalty.risk_type y WHERE y.risk_code = t.risk_code));
    INSERT INTO loyalty.risk_tag_event (tag_id, member_id, action, store_code, login, role, department, detail)
        VALUES (t.tag_id, t.member_id, 'resolved', actor.store_code, actor.login, actor.role, actor.department,
                payload || jsonb_build_object('note', note));
    PERFORM loyalty._event_emit('risk_tag_resolved', t.member_id, actor.store_code, payload);
END
$$;
COMMENT ON FUNCTION loyalty.resolve_risk_tag(uuid, text, text) IS
    'Resolve a risk tag (settled, waived, raised_in_error); unfreezes what it froze';

CREATE FUNCTION loyalty.risk_tags(member_id uuid, include_resolved boolean DEFAULT false)
    RETURNS TABLE (tag_id uuid, risk_code text, freezes text[], store_code text,
                   raised_at timestamptz, unresolved boolean, resolved_at timestamptz,
                   resolution text, internal_visible boolean, note text,
                   amount_owed numeric, raised_by name, resolved_by name, resolution_note text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mine text;
    hq boolean;
BEGIN
    PERFORM loyalty._check_access(NULL,
        ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm', 'marketing', 'dba']);
    hq := loyalty.caller_is_hq();
    mine := loyalty.caller_store();
    IF NOT EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = risk_tags.member_id) THEN
        RAISE EXCEPTION 'member % does not exist', member_id USING ERRCODE = 'no_data_found';
    END IF;
    -- everyone sees that a tag exists and what it freezes; only the raising
    -- store and HQ see its internal fields
    RETURN QUERY
    SELECT r.tag_id, r.risk_code, y.freezes, r.store_code, r.raised_at,
           r.resolved_at IS NULL, r.resolved_at, r.resolution, v.visible,
           CASE WHEN v.visible THEN r.note END,
           CASE WHEN v.visible THEN r.amount_owed END,
           CASE WHEN v.visible THEN r.raised_by END,
           CASE WHEN v.visible THEN r.resolved_by END,
           CASE WHEN v.visible THEN r.resolution_note END
      FROM loyalty.risk_tag r
      JOIN loyalty.risk_type y ON y.risk_code = r.risk_code
     CROSS JOIN LATERAL (SELECT hq OR r.store_code = mine AS visible) v
     WHERE r.member_id = risk_tags.member_id
       AND (include_resolved OR r.resolved_at IS NULL)
     ORDER BY r.raised_at, r.tag_id;
END
$$;
COMMENT ON FUNCTION loyalty.risk_tags(uuid, boolean) IS
    'A member''s risk tags; notes, amounts and names only for the raising store and HQ';

CREATE FUNCTION loyalty.risk_tag_history(tag_id uuid)
    RETURNS TABLE (action text, at timestamptz, store_code text, login name, role name,
                   department text, detail jsonb)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t loyalty.risk_tag;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm', 'dba']);
    SELECT * INTO t FROM loyalty.risk_tag r WHERE r.tag_id = risk_tag_history.tag_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'risk tag % does not exist', tag_id USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT loyalty.caller_is_hq() AND t.store_code IS DISTINCT FROM loyalty.caller_store() THEN
        RAISE EXCEPTION 'permission denied for risk tag %', tag_id
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The audit trail of a risk tag is shown to the raising store and HQ only.';
    END IF;
    RETURN QUERY
    SELECT e.action, e.at, e.store_code, e.login, e.role, e.department, e.detail
      FROM loyalty.risk_tag_event e
     WHERE e.tag_id = risk_tag_history.tag_id
     ORDER BY e.at, e.action DESC;
END
$$;
COMMENT ON FUNCTION loyalty.risk_tag_history(uuid) IS
    'The audit trail of one risk tag (raising store and HQ only)';

REVOKE ALL ON FUNCTION loyalty.set_risk_type(text, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.set_risk_type(text, text, text[]) TO loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.assert_not_frozen(uuid, text), loyalty.frozen_by(uuid, text),
    loyalty.raise_risk_tag(uuid, text, text, text, numeric),
    loyalty.resolve_risk_tag(uuid, text, text), loyalty.risk_tags(uuid, boolean),
    loyalty.risk_tag_history(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.assert_not_frozen(uuid, text), loyalty.frozen_by(uuid, text),
    loyalty.risk_tags(uuid, boolean)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.raise_risk_tag(uuid, text, text, text, numeric)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.resolve_risk_tag(uuid, text, text),
    loyalty.risk_tag_history(uuid)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
GRANT SELECT ON loyalty.risk_type TO loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT SELECT ON loyalty.risk_tag, loyalty.risk_tag_event TO loyalty_crm, loyalty_dba;
-- The benefit catalogue (docs/benefits.md, "The catalogue").
--
-- A benefit (loyalty.benefit) is a thing a member may get: a kind and a name.
-- A grant (loyalty.benefit_grant) says who gets it, where, when and with
-- which parameters:
--   source tier      chain-wide, to members of min_tier and above
--   source store     at one store (a grant per store for a list of stores),
--                    optionally from min_tier up
--   source campaign  a named campaign, chain-wide or at one store, optionally
--                    from min_tier up
-- each valid in [valid_from, valid_until) and optionally limited to
-- use_limit uses per stay, day, month, year (in the member's time zone) or
-- ever.  Uses are recorded in loyalty.benefit_use, per store.  Store rows
-- (store grants, uses) carry store_code for row-level security.

CREATE TABLE loyalty.benefit (
    benefit_code text PRIMARY KEY
        CONSTRAINT benefit_code_format CHECK (benefit_code ~ '^[a-z][a-z0-9_]{0,47}$'),
    name         text NOT NULL
        CONSTRAINT benefit_name_length CHECK (length(name) BETWEEN 1 AND 200),
    kind         text NOT NULL
        CONSTRAINT benefit_kind_valid CHECK (kind IN ('room_discount', 'breakfast',
            'late_checkout', 'room_upgrade', 'gift', 'voucher', 'amenity', 'other')),
    description  text
        CONSTRAINT benefit_description_length CHECK (length(description) <= 1000),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.benefit IS 'Benefits a member may get (the kind decides its parameters and which risk tags freeze it)';
SELECT pg_catalog.pg_extension_config_dump('loyalty.benefit', '');

CREATE TABLE loyalty.benefit_grant (
    grant_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    benefit_code text NOT NULL REFERENCES loyalty.benefit,
    source       text NOT NULL
        CONSTRAINT grant_source_valid CHECK (source IN ('tier', 'store', 'campaign')),
    min_tier     text
        CONSTRAINT grant_min_tier_format CHECK (min_tier ~ '^[a-z][a-z0-9_]{0,31}$'),
    store_code   text REFERENCES loyalty.store,
    campaign     text
        CONSTRAINT grant_campaign_format CHECK (campaign ~ '^[a-z][a-z0-9_]{0,47}$'),
    valid_from   timestamptz NOT NULL DEFAULT '-infinity',
    valid_until  timestamptz NOT NULL DEFAULT 'infinity',
    params       jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT grant_params_object CHECK (jsonb_typeof(params) = 'object'),
    use_limit    integer
        CONSTRAINT grant_use_limit_positive CHECK (use_limit BETWEEN 1 AND 1000),
    limit_per    text
        CONSTRAINT grant_limit_per_valid CHECK (limit_per IN ('stay', 'day', 'month', 'year', 'ever')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   name NOT NULL DEFAULT session_user,
    CONSTRAINT grant_window_nonempty CHECK (valid_from < valid_until),
    CONSTRAINT grant_limit_complete CHECK ((use_limit IS NULL) = (limit_per IS NULL)),
    CONSTRAINT grant_source_shape CHECK (CASE source
        WHEN 'tier' THEN min_tier IS NOT NULL AND store_code IS NULL AND campaign IS NULL
        WHEN 'store' THEN store_code IS NOT NULL AND campaign IS NULL
        ELSE campaign IS NOT NULL END)
);
COMMENT ON TABLE loyalty.benefit_grant IS 'Who gets a benefit (tier, store, campaign), where, when, with which parameters and limits';
CREATE INDEX benefit_grant_benefit_idx ON loyalty.benefit_grant (benefit_code);
CREATE INDEX benefit_grant_store_idx ON loyalty.benefit_grant (store_code) WHERE store_code IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('loyalty.benefit_grant', '');

-- every backend caches the catalogue (src/benefit_catalog.c)
CREATE TRIGGER benefit_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.benefit
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._cache_invalidate();
CREATE TRIGGER benefit_grant_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.benefit_grant
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._cache_invalidate();

CREATE TABLE loyalty.benefit_use (
    use_id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    store_code      text NOT NULL REFERENCES loyalty.store,
    idempotency_key text NOT NULL
        CONSTRAINT benefit_use_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    member_id       uuid NOT NULL REFERENCES loyalty.member,
    benefit_code    text NOT NULL REFERENCES loyalty.benefit,
    grant_id        uuid NOT NULL REFERENCES loyalty.benefit_grant,
    stay_id         uuid REFERENCES loyalty.stay,
    used_at         timestamptz NOT NULL DEFAULT now(),
    params          jsonb NOT NULL,
    reason          text NOT NULL,
    use_number      integer,          -- 1, 2, ... within the grant's limit window; NULL: unlimited
    recorded_by     name NOT NULL,
    role            name NOT NULL,
    CONSTRAINT benefit_use_key UNIQUE (store_code, idempotency_key)
);
COMMENT ON TABLE loyalty.benefit_use IS 'Benefits used (vouchers, certificates, upgrades), per store; one row per idempotency key';
CREATE INDEX benefit_use_member_idx ON loyalty.benefit_use (member_id, benefit_code, used_at);
CREATE INDEX benefit_use_stay_idx ON loyalty.benefit_use (stay_id, benefit_code) WHERE stay_id IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('loyalty.benefit_use', '');

-- _benefit_params: a kind's parameters, checked and with defaults filled in.
CREATE FUNCTION loyalty._benefit_params(kind text, params jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    allowed text[];
    required text[];
    k text;
    v jsonb;
BEGIN
    IF params IS NULL THEN
        params := '{}';
    END IF;
    IF jsonb_typeof(params) <> 'object' THEN
        RAISE EXCEPTION 'benefit parameters must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    CASE kind
        WHEN 'room_discount' THEN allowed := '{percent}'; required := '{percent}';
        WHEN 'breakfast' THEN allowed := '{count}'; required := '{count}';
        WHEN 'late_checkout' THEN allowed := '{hour}'; required := '{hour}';
        WHEN 'room_upgrade' THEN allowed := '{subject_to_availability,max_steps}'; required := '{}';
            params := jsonb_build_object('subject_to_availability', true) || params;
        WHEN 'gift', 'amenity' THEN allowed := '{item}'; required := '{item}';
        WHEN 'voucher' THEN allowed := '{amount}'; required := '{amount}';
        ELSE allowed := NULL; required := '{}';
    END CASE;
    FOREACH k IN ARRAY required LOOP
        IF NOT params ? k THEN
            RAISE EXCEPTION 'a % benefit needs parameter "%"', kind, k
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    FOR k, v IN SELECT * FROM jsonb_each(params) LOOP
        IF allowed IS NOT NULL AND NOT k = ANY (allowed) THEN
            RAISE EXCEPTION 'unknown parameter "%" for a % benefit', k, kind
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = pg_catalog.format('A %s benefit takes: %s.', kind, array_to_string(allowed, ', '));
        END IF;
        IF (k = 'percent' AND NOT (jsonb_typeof(v) = 'number' AND v::text ~ '^[0-9]+$' AND v::text::int BETWEEN 1 AND 100))
           OR (k = 'count' AND NOT (jsonb_typeof(v) = 'number' AND v::text ~ '^[0-9]+$' AND v::text::int BETWEEN 1 AND 10))
           OR (k = 'hour' AND NOT (jsonb_typeof(v) = 'number' AND v::text ~ '^[0-9]+$' AND v::text::int BETWEEN 12 AND 23))
           OR (k = 'max_steps' AND NOT (jsonb_typeof(v) = 'number' AND v::text ~ '^[0-9]+$' AND v::text::int BETWEEN 1 AND 5))
           OR (k = 'subject_to_availability' AND jsonb_typeof(v) <> 'boolean')
           OR (k = 'item' AND NOT (jsonb_typeof(v) = 'string' AND length(v #>> '{}') BETWEEN 1 AND 200))
           OR (k = 'amount' AND NOT (jsonb_typeof(v) = 'string' AND v #>> '{}' ~ '^[0-9]{1,9}(\.[0-9]{1,2})?$'
                                     AND (v #>> '{}')::numeric > 0))
           OR (allowed IS NULL AND jsonb_typeof(v) NOT IN ('string', 'number', 'boolean'))
        THEN
            RAISE EXCEPTION 'invalid value % for parameter "%" of a % benefit', v, k, kind
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = CASE k
                          WHEN 'percent' THEN 'A percent is a whole number from 1 to 100.'
                          WHEN 'count' THEN 'A count is a whole number from 1 to 10.'
                          WHEN 'hour' THEN 'A late checkout hour is a whole number from 12 to 23.'
                          WHEN 'max_steps' THEN 'max_steps is a whole number from 1 to 5.'
                          WHEN 'subject_to_availability' THEN 'subject_to_availability is true or false.'
                          WHEN 'item' THEN 'An item is a text of 1 to 200 characters.'
                          WHEN 'amount' THEN 'An amount is a decimal string such as "100.00" (never a JSON number).'
                          ELSE 'Parameters of other benefits are strings, numbers or booleans.' END;
        END IF;
    END LOOP;
    RETURN params;
END
$$;
REVOKE ALL ON FUNCTION loyalty._benefit_params(text, jsonb) FROM PUBLIC;

CREATE FUNCTION loyalty.define_benefit(
    benefit_code text, name text, kind text, description text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    IF benefit_code IS NULL OR name IS NULL OR kind IS NULL THEN
        RAISE EXCEPTION 'benefit_code, name and kind must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF benefit_code !~ '^[a-z][a-z0-9_]{0,47}$' THEN
        RAISE EXCEPTION 'invalid benefit code "%"', benefit_code
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A benefit code is 1 to 48 lowercase letters, digits and underscores, starting with a letter.';
    END IF;
    IF kind NOT IN ('room_discount', 'breakfast', 'late_checkout', 'room_upgrade',
                    'gift', 'voucher', 'amenity', 'other') THEN
        RAISE EXCEPTION 'unknown benefit kind "%"', kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The kinds are room_discount, breakfast, late_checkout, room_upgrade, gift, voucher, amenity and other.';
    END IF;
    IF btrim(name) = '' THEN
        RAISE EXCEPTION 'benefit name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    ELSIF length(name) > 200 THEN
        RAISE EXCEPTION 'benefit name is longer than 200 characters' USING ERRCODE = 'string_data_right_truncation';
    ELSIF length(description) > 1000 THEN
        RAISE EXCEPTION 'benefit description is longer than 1000 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF EXISTS (SELECT 1 FROM loyalty.benefit b WHERE b.benefit_code = define_benefit.benefit_code) THEN
        RAISE EXCEPTION 'benefit "%" already exists', benefit_code USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO loyalty.benefit (benefit_code, name, kind, description)
        VALUES (benefit_code, name, kind, description);
    RETURN benefit_code;
END
$$;
COMMENT ON FUNCTION loyalty.define_benefit(text, text, text, text) IS
    'Add a benefit to the catalogue (it applies to nobody until it is granted)';

CREATE FUNCTION loyalty.grant_benefit(
    benefit_code text,
    source       text,
    params       jsonb DEFAULT '{}',
    min_tier     text DEFAULT NULL,
    stores       text[] DEFAULT NULL,
    campaign     text DEFAULT NULL,
    valid_from   timestamptz DEFAULT '-infinity',
    valid_until  timestamptz DEFAULT 'infinity',
    use_limit    integer DEFAULT NULL,
    limit_per    text DEFAULT NULL)
    RETURNS SETOF uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b loyalty.benefit;
    s text;
    clash loyalty.benefit_grant;
    id uuid;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    IF benefit_code IS NULL OR source IS NULL OR valid_from IS NULL OR valid_until IS NULL THEN
        RAISE EXCEPTION 'benefit_code, source, valid_from and valid_until must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- one definer at a time per benefit, so that the overlap check holds
    SELECT * INTO b FROM loyalty.benefit x WHERE x.benefit_code = grant_benefit.benefit_code FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'benefit "%" does not exist', benefit_code
            USING ERRCODE = 'no_data_found', HINT = 'Define it first with loyalty.define_benefit().';
    END IF;
    IF source NOT IN ('tier', 'store', 'campaign') THEN
        RAISE EXCEPTION 'invalid grant source "%"', source
            USING ERRCODE = 'invalid_parameter_value', HINT = 'A grant''s source is tier, store or campaign.';
    END IF;
    IF source = 'tier' AND (min_tier IS NULL OR stores IS NOT NULL OR campaign IS NOT NULL) THEN
        RAISE EXCEPTION 'a tier grant needs min_tier and no stores or campaign'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use source store for store benefits and source campaign for campaign benefits.';
    ELSIF source = 'store' AND campaign IS NOT NULL THEN
        RAISE EXCEPTION 'a store grant has no campaign' USING ERRCODE = 'invalid_parameter_value';
    ELSIF source = 'store' AND (stores IS NULL OR cardinality(stores) = 0) THEN
        RAISE EXCEPTION 'a store benefit must name at least one store'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A store grant without stores would be valid nowhere.';
    ELSIF source = 'campaign' AND campaign IS NULL THEN
        RAISE EXCEPTION 'a campaign grant needs a campaign name' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF campaign IS NOT NULL AND campaign !~ '^[a-z][a-z0-9_]{0,47}$' THEN
        RAISE EXCEPTION 'invalid campaign name "%"', campaign
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A campaign name is 1 to 48 lowercase letters, digits and underscores, starting with a letter.';
    END IF;
    IF stores IS NOT NULL AND cardinality(stores) = 0 THEN
        RAISE EXCEPTION 'stores must be NULL (every store) or name at least one store'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A grant for an empty list of stores would be valid nowhere.';
    END IF;
    IF stores IS NOT NULL THEN
        IF array_position(stores, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'stores must not contain NULL' USING ERRCODE = 'null_value_not_allowed';
        END IF;
        IF cardinality(stores) <> (SELECT count(DISTINCT x) FROM unnest(stores) x) THEN
            RAISE EXCEPTION 'stores names a store twice' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT x INTO s FROM unnest(stores) x
         WHERE NOT EXISTS (SELECT 1 FROM loyalty.store t WHERE t.store_code = x) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'store "%" does not exist', s USING ERRCODE = 'no_data_found';
        END IF;
    END IF;
    IF min_tier IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM jsonb_array_elements(loyalty.policy_at()->'tiers') t WHERE t->>'code' = min_tier) THEN
        RAISE EXCEPTION 'unknown tier "%"', min_tier
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The tiers are those of the policy in effect (loyalty.policy_at()).';
    END IF;
    IF valid_from >= valid_until THEN
        RAISE EXCEPTION 'validity window [%, %) is empty', valid_from, valid_until
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A grant valid at no time would be valid nowhere.';
    END IF;
    IF (use_limit IS NULL) <> (limit_per IS NULL) THEN
        RAISE EXCEPTION 'use_limit and limit_per go together' USING ERRCODE = 'invalid_parameter_value';
    ELSIF use_limit IS NOT NULL AND (use_limit NOT BETWEEN 1 AND 1000
                                     OR limit_per NOT IN ('stay', 'day', 'month', 'year', 'ever')) THEN
        RAISE EXCEPTION 'invalid use limit % per %', use_limit, limit_per
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A limit is 1 to 1000 uses per stay, day, month, year or ever.';
    END IF;
    params := loyalty._benefit_params(b.kind, params);

    FOREACH s IN ARRAY coalesce(stores, ARRAY[NULL::text]) LOOP
        SELECT * INTO clash FROM loyalty.benefit_grant g
         WHERE g.benefit_code = grant_benefit.benefit_code AND g.source = grant_benefit.source
           AND g.min_tier IS NOT DISTINCT FROM grant_benefit.min_tier
           AND g.store_code IS NOT DISTINCT FROM s
           AND g.valid_from < grant_benefit.valid_until AND grant_benefit.valid_from < g.valid_until
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'grant of benefit "%" overlaps an existing grant for the same %', benefit_code,
                    CASE WHEN s IS NULL THEN coalesce('tier ' || min_tier, 'campaign scope') ELSE 'store ' || s END
                USING ERRCODE = 'exclusion_violation',
                      DETAIL = pg_catalog.format('Grant %s (%s%s%s) is valid from %s until %s with parameters %s; the new one from %s until %s with parameters %s%s.',
                          clash.grant_id, clash.source,
                          coalesce(', from tier ' || clash.min_tier, ''), coalesce(', store ' || s, ''),
                          clash.valid_from, clash.valid_until, clash.params, valid_from, valid_until, params,
                          CASE WHEN clash.params = params THEN ' (the same)' ELSE ' (contradictory)' END),
                      HINT = 'End the existing grant first with loyalty.end_benefit_grant(), or start the new one when it ends.';
        END IF;
        INSERT INTO loyalty.benefit_grant (benefit_code, source, min_tier, store_code, campaign,
                                           valid_from, valid_until, params, use_limit, limit_per)
            VALUES (benefit_code, source, min_tier, s, campaign, valid_from, valid_until, params,
                    use_limit, limit_per)
            RETURNING grant_id INTO id;
        RETURN NEXT id;
    END LOOP;
END
$$;
COMMENT ON FUNCTION loyalty.grant_benefit(text, text, jsonb, text, text[], text, timestamptz, timestamptz, integer, text) IS
    'Grant a benefit to a tier (chain-wide), at stores, or through a campaign; one grant per store';

CREATE FUNCTION loyalty.end_benefit_grant(grant_id uuid, at timestamptz DEFAULT now())
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    g loyalty.benefit_grant;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    IF grant_id IS NULL OR at IS NULL THEN
        RAISE EXCEPTION 'grant_id and at must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO g FROM loyalty.benefit_grant x WHERE x.grant_id = end_benefit_grant.grant_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'benefit grant % does not exist', grant_id USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM 1 FROM loyalty.benefit b WHERE b.benefit_code = g.benefit_code FOR UPDATE;
    IF at <= g.valid_from OR at >= g.valid_until THEN
        RAISE EXCEPTION 'grant % can only end within its validity window', grant_id
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('It is valid from %s until %s.', g.valid_from, g.valid_until);
    END IF;
    UPDATE loyalty.benefit_grant x SET valid_until = at WHERE x.grant_id = end_benefit_grant.grant_id;
END
$$;
COMMENT ON FUNCTION loyalty.end_benefit_grant(uuid, timestamptz) IS
    'End a grant at a time within its validity window (uses recorded before stay)';

REVOKE ALL ON FUNCTION loyalty.define_benefit(text, text, text, text),
    loyalty.grant_benefit(text, text, jsonb, text, text[], text, timestamptz, timestamptz, integer, text),
    loyalty.end_benefit_grant(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.define_benefit(text, text, text, text),
    loyalty.grant_benefit(text, text, jsonb, text, text[], text, timestamptz, timestamptz, integer, text),
    loyalty.end_benefit_grant(uuid, timestamptz) TO loyalty_crm, loyalty_marketing;
GRANT SELECT ON loyalty.benefit, loyalty.benefit_grant TO loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT SELECT ON loyalty.benefit_use TO loyalty_crm, loyalty_dba;
-- Benefit resolution and use, in C (docs/benefits.md).

-- A named row type rather than RETURNS TABLE: the executor then takes the
-- result descriptor from the type cache instead of rebuilding it from
-- pg_proc on every execution (measurable at this call rate).
CREATE TYPE loyalty.usable_benefit AS (
    benefit_code text, name text, kind text, source text, reason text,
    params jsonb, use_limit integer, limit_per text, valid_until timestamptz,
    frozen boolean, frozen_by text, frozen_tag uuid, grant_id uuid);
COMMENT ON TYPE loyalty.usable_benefit IS 'A row of loyalty.benefits()';

-- at NULL (the default) means now: grants valid at now(), frozen by the tags
-- unresolved now; an explicit time answers as of that time (docs/benefits.md).
CREATE FUNCTION loyalty.benefits(member_id uuid, store_code text, at timestamptz DEFAULT NULL)
    RETURNS SETOF loyalty.usable_benefit
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_benefits';
COMMENT ON FUNCTION loyalty.benefits(uuid, text, timestamptz) IS
    'The benefits a member may use at a store at a time: why, parameters, limit, and whether a risk tag freezes it';

CREATE FUNCTION loyalty.use_benefit(
    member_id uuid, store_code text, benefit_code text, idempotency_key text,
    stay_id uuid DEFAULT NULL,
    OUT use_id uuid, OUT grant_id uuid, OUT params jsonb, OUT reason text,
    OUT use_number integer, OUT use_limit integer, OUT limit_per text, OUT replayed boolean)
    RETURNS record
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_use_benefit';
COMMENT ON FUNCTION loyalty.use_benefit(uuid, text, text, text, uuid) IS
    'Record a benefit used at a store (idempotent per store and key); refused when frozen, not valid there, or used up';

CREATE FUNCTION loyalty.tier_change_benefits(from_tier text, to_tier text, at timestamptz DEFAULT now())
    RETURNS jsonb
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_tier_change_benefits';
COMMENT ON FUNCTION loyalty.tier_change_benefits(text, text, timestamptz) IS
    'Chain benefits gained, lost and changed by a move from one tier to another (for tier-change events)';

REVOKE ALL ON TYPE loyalty.usable_benefit FROM PUBLIC;
GRANT USAGE ON TYPE loyalty.usable_benefit
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_marketing, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.benefits(uuid, text, timestamptz),
    loyalty.use_benefit(uuid, text, text, text, uuid),
    loyalty.tier_change_benefits(text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.benefits(uuid, text, timestamptz),
    loyalty.tier_change_benefits(text, text, timestamptz)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.use_benefit(uuid, text, text, text, uuid)
    TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;
-- Privacy and access (docs/privacy.md): the masks, in C.  Each takes the raw
-- value and returns text; a value too short for its mask comes back as
-- '****'.  They hold no secret and are granted to every department, because
-- a view's functions are called with the querying user's privileges.

CREATE FUNCTION loyalty.mask_phone(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_phone';
COMMENT ON FUNCTION loyalty.mask_phone(text) IS 'Phone mask: 13812345678 -> 138****5678';
CREATE FUNCTION loyalty.mask_name(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_name';
COMMENT ON FUNCTION loyalty.mask_name(text) IS 'Name mask: 张三 -> 张*';
CREATE FUNCTION loyalty.mask_email(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_email';
COMMENT ON FUNCTION loyalty.mask_email(text) IS 'Email mask: jane@example.com -> j***@example.com';
CREATE FUNCTION loyalty.mask_last4(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_last4';
COMMENT ON FUNCTION loyalty.mask_last4(text) IS 'Last-four mask: 6222021234567890 -> ****7890';
CREATE FUNCTION loyalty.mask_full(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_full';
COMMENT ON FUNCTION loyalty.mask_full(text) IS 'Full mask: anything -> ****';
CREATE FUNCTION loyalty.mask_birth_year(date) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_birth_year';
COMMENT ON FUNCTION loyalty.mask_birth_year(date) IS 'Birth date generalised to its year: 1988';
CREATE FUNCTION loyalty.mask_birth_month_day(date) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_birth_month_day';
COMMENT ON FUNCTION loyalty.mask_birth_month_day(date) IS 'Birth date without the year, for birthday service: 03-14';
CREATE FUNCTION loyalty.mask_birth_decade(date) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_birth_decade';
COMMENT ON FUNCTION loyalty.mask_birth_decade(date) IS 'Birth date generalised to its decade: 1980s';

REVOKE ALL ON FUNCTION loyalty.mask_phone(text), loyalty.mask_name(text),
    loyalty.mask_email(text), loyalty.mask_last4(text), loyalty.mask_full(text),
    loyalty.mask_birth_year(date), loyalty.mask_birth_month_day(date),
    loyalty.mask_birth_decade(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.mask_phone(text), loyalty.mask_name(text),
    loyalty.mask_email(text), loyalty.mask_last4(text), loyalty.mask_full(text),
    loyalty.mask_birth_year(date), loyalty.mask_birth_month_day(date),
    loyalty.mask_birth_decade(date)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba;

-- The field policy: for each department and member field, how the field is
-- shown.  Append-only history; the latest row per (department, field) is in
-- effect.  The shipped defaults take effect from -infinity and are not
-- dumped (the extension recreates them); later rows are user data.

CREATE FUNCTION loyalty.field_treatments(field text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE field
        WHEN 'card_no'     THEN '{show,last4,full,hide}'::text[]
        WHEN 'full_name'   THEN '{show,name,full,hide}'::text[]
        WHEN 'gender'      THEN '{show,hide}'::text[]
        WHEN 'birth_date'  THEN '{show,year,month_day,decade,hide}'::text[]
        WHEN 'nationality' THEN '{show,hide}'::text[]
        WHEN 'phone'       THEN '{show,phone,last4,full,hide}'::text[]
        WHEN 'email'       THEN '{show,email,full,hide}'::text[]
        WHEN 'address'     THEN '{show,full,hide}'::text[]
        -- stored encrypted: never shown, at most the last four characters
        WHEN 'id_number'   THEN '{last4,hide}'::text[]
        WHEN 'bank_card'   THEN '{last4,hide}'::text[]
    END;
COMMENT ON FUNCTION loyalty.field_treatments(text) IS
    'The treatments the field policy allows for a member field (NULL: no such field)';

CREATE TABLE loyalty.field_policy (
    department  text NOT NULL
        CONSTRAINT field_policy_department_valid CHECK (department IN
            ('frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm', 'marketing', 'dba')),
    field       text NOT NULL
        CONSTRAINT field_policy_field_valid CHECK (loyalty.field_treatments(field) IS NOT NULL),
    treatment   text NOT NULL,
    set_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    set_by      name NOT NULL DEFAULT session_user,
    CONSTRAINT field_policy_treatment_allowed
        CHECK (coalesce(treatment = ANY (loyalty.field_treatments(field)), false)),
    PRIMARY KEY (department, field, set_at)
);
COMMENT ON TABLE loyalty.field_policy IS
    'Per department and member field: show, a named mask, or hide (latest row wins)';
SELECT pg_catalog.pg_extension_config_dump('loyalty.field_policy', $$WHERE set_at <> '-infinity'$$);

INSERT INTO loyalty.field_policy (department, field, treatment, set_at, set_by)
SELECT d, f, t, '-infinity', 'loyalty'
  FROM (VALUES
    -- front desk: identifies the guest, sees contact data masked
    ('frontdesk', 'card_no', 'show'), ('frontdesk', 'full_name', 'name'),
    ('frontdesk', 'gender', 'show'), ('frontdesk', 'birth_date', 'month_day'),
    ('frontdesk', 'nationality', 'show'), ('frontdesk', 'phone', 'phone'),
    ('frontdesk', 'email', 'email'), ('frontdesk', 'address', 'hide'),
    ('frontdesk', 'id_number', 'last4'), ('frontdesk', 'bank_card', 'hide'),
    -- housekeeping: who is in the room, nothing to contact them with
    ('housekeeping', 'card_no', 'last4'), ('housekeeping', 'full_name', 'name'),
    ('housekeeping', 'gender', 'hide'), ('housekeeping', 'birth_date', 'hide'),
    ('housekeeping', 'nationality', 'hide'), ('housekeeping', 'phone', 'hide'),
    ('housekeeping', 'email', 'hide'), ('housekeeping', 'address', 'hide'),
    ('housekeeping', 'id_number', 'hide'), ('housekeeping', 'bank_card', 'hide'),
    -- F&B: the guest's name and birthday for service
    ('fnb', 'card_no', 'last4'), ('fnb', 'full_name', 'name'),
    ('fnb', 'gender', 'hide'), ('fnb', 'birth_date', 'month_day'),
    ('fnb', 'nationality', 'hide'), ('fnb', 'phone', 'hide'),
    ('fnb', 'email', 'hide'), ('fnb', 'address', 'hide'),
    ('fnb', 'id_number', 'hide'), ('fnb', 'bank_card', 'hide'),
    -- store manager: like the front desk, plus the birth year
    ('store_manager', 'card_no', 'show'), ('store_manager', 'full_name', 'name'),
    ('store_manager', 'gender', 'show'), ('store_manager', 'birth_date', 'year'),
    ('store_manager', 'nationality', 'show'), ('store_manager', 'phone', 'phone'),
    ('store_manager', 'email', 'email'), ('store_manager', 'address', 'hide'),
    ('store_manager', 'id_number', 'last4'), ('store_manager', 'bank_card', 'hide'),
    -- HQ CRM: the member's whole profile, sensitive data as last four only
    ('crm', 'card_no', 'show'), ('crm', 'full_name', 'show'),
    ('crm', 'gender', 'show'), ('crm', 'birth_date', 'show'),
    ('crm', 'nationality', 'show'), ('crm', 'phone', 'show'),
    ('crm', 'email', 'show'), ('crm', 'address', 'show'),
    ('crm', 'id_number', 'last4'), ('crm', 'bank_card', 'last4'),
    -- marketing: segments and campaigns, contact data masked
    ('marketing', 'card_no', 'last4'), ('marketing', 'full_name', 'name'),
    ('marketing', 'gender', 'show'), ('marketing', 'birth_date', 'month_day'),
    ('marketing', 'nationality', 'show'), ('marketing', 'phone', 'phone'),
    ('marketing', 'email', 'email'), ('marketing', 'address', 'hide'),
    ('marketing', 'id_number', 'hide'), ('marketing', 'bank_card', 'hide'),
    -- DBAs run the system, they do not read personal data
    ('dba', 'card_no', 'last4'), ('dba', 'full_name', 'full'),
    ('dba', 'gender', 'hide'), ('dba', 'birth_date', 'hide'),
    ('dba', 'nationality', 'hide'), ('dba', 'phone', 'full'),
    ('dba', 'email', 'full'), ('dba', 'address', 'hide'),
    ('dba', 'id_number', 'hide'), ('dba', 'bank_card', 'hide')
  ) AS v(d, f, t);

-- the policy in effect
CREATE VIEW loyalty.field_policy_current AS
SELECT DISTINCT ON (department, field) department, field, treatment, set_at, set_by
  FROM loyalty.field_policy
 ORDER BY department, field, set_at DESC;
COMMENT ON VIEW loyalty.field_policy_current IS 'The field policy in effect: one row per department and field';

REVOKE ALL ON loyalty.field_policy, loyalty.field_policy_current FROM PUBLIC;
REVOKE ALL ON FUNCTION loyalty.field_treatments(text) FROM PUBLIC;
GRANT SELECT ON loyalty.field_policy_current TO loyalty_crm, loyalty_dba, loyalty_store_manager;
GRANT EXECUTE ON FUNCTION loyalty.field_treatments(text) TO loyalty_crm, loyalty_dba;
-- Masked views per department, generated from the field policy, and row
-- level security per store (docs/privacy.md).
--
-- The views are owned by loyalty_view_owner: a NOLOGIN role that is no
-- superuser and cannot bypass row level security, so the base tables'
-- policies apply to every read through a view.  The base tables force row
-- level security.  Store and BI roles hold no privilege on any base table.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'loyalty_view_owner') THEN
        CREATE ROLE loyalty_view_owner NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'loyalty_view_owner'
                     AND (rolsuper OR rolbypassrls OR rolcanlogin)) THEN
        RAISE EXCEPTION 'role "loyalty_view_owner" exists and can log in or bypass row level security'
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Drop that role or make it NOLOGIN NOSUPERUSER NOBYPASSRLS.';
    END IF;
END
$$;
GRANT USAGE ON SCHEMA loyalty TO loyalty_view_owner;

-- The row level security pattern for store-scoped rows: a row recorded at a
-- store is visible to that store's roles and to HQ.  Store identity comes
-- from role membership (loyalty.caller_store(), loyalty.caller_is_hq()),
-- never from a setting.  A plain SQL function, inlined by the planner, so
-- "store_code = caller_store()" can use an index.
CREATE FUNCTION loyalty.store_visible(store_code text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL RESTRICTED
    RETURN loyalty.caller_is_hq() OR store_code = loyalty.caller_store();
COMMENT ON FUNCTION loyalty.store_visible(text) IS
    'Row level security predicate for store-scoped rows: the caller''s own store, or any store for HQ';
REVOKE ALL ON FUNCTION loyalty.store_visible(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_visible(text), loyalty.caller_store(), loyalty.caller_is_hq()
    TO loyalty_view_owner, loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb,
       loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.mask_phone(text), loyalty.mask_name(text),
    loyalty.mask_email(text), loyalty.mask_last4(text), loyalty.mask_full(text),
    loyalty.mask_birth_year(date), loyalty.mask_birth_month_day(date),
    loyalty.mask_birth_decade(date) TO loyalty_view_owner;

-- Chain-wide member data: every row is readable through the views.
ALTER TABLE loyalty.member ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.member_profile ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.member_identity ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.member_tag ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.member_consent ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY chain_read ON loyalty.member FOR SELECT USING (true);
CREATE POLICY chain_read ON loyalty.member_profile FOR SELECT USING (true);
CREATE POLICY chain_read ON loyalty.member_identity FOR SELECT USING (true);
-- behaviour tags are chain-wide; their notes are store-scoped, see
-- loyalty.member_tags
CREATE POLICY chain_read ON loyalty.member_tag FOR SELECT USING (true);
CREATE POLICY chain_read ON loyalty.member_consent FOR SELECT USING (true);

-- Store-scoped rows.
ALTER TABLE loyalty.stay ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY store_scope ON loyalty.stay FOR SELECT
    USING (loyalty.store_visible(store_code));
ALTER TABLE loyalty.member_preference ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY store_scope ON loyalty.member_preference FOR SELECT
    USING (scope = 'chain' OR loyalty.store_visible(store_code));

GRANT SELECT ON loyalty.member, loyalty.member_profile, loyalty.member_identity,
    loyalty.member_tag, loyalty.member_consent, loyalty.stay, loyalty.member_preference,
    loyalty.store TO loyalty_view_owner;

-- _field_expr: the SQL expression for one field under one treatment, from a
-- fixed table of fragments (no input text reaches the generated SQL).
CREATE FUNCTION loyalty._field_expr(field text, treatment text) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN CASE treatment
        WHEN 'hide' THEN 'NULL::text'
        ELSE CASE field
            WHEN 'card_no' THEN CASE treatment
                WHEN 'show' THEN 'm.card_no' WHEN 'last4' THEN 'loyalty.mask_last4(m.card_no)'
                WHEN 'full' THEN 'loyalty.mask_full(m.card_no)' END
            WHEN 'full_name' THEN CASE treatment
                WHEN 'show' THEN 'p.full_name' WHEN 'name' THEN 'loyalty.mask_name(p.full_name)'
                WHEN 'full' THEN 'loyalty.mask_full(p.full_name)' END
            WHEN 'gender' THEN 'p.gender'
            WHEN 'birth_date' THEN CASE treatment
                WHEN 'show' THEN 'p.birth_date::text'
                WHEN 'year' THEN 'loyalty.mask_birth_year(p.birth_date)'
                WHEN 'month_day' THEN 'loyalty.mask_birth_month_day(p.birth_date)'
                WHEN 'decade' THEN 'loyalty.mask_birth_decade(p.birth_date)' END
            WHEN 'nationality' THEN 'p.nationality'
            WHEN 'phone' THEN CASE treatment
                WHEN 'show' THEN 'p.phone' WHEN 'phone' THEN 'loyalty.mask_phone(p.phone)'
                WHEN 'last4' THEN 'loyalty.mask_last4(p.phone)'
                WHEN 'full' THEN 'loyalty.mask_full(p.phone)' END
            WHEN 'email' THEN CASE treatment
                WHEN 'show' THEN 'p.email' WHEN 'email' THEN 'loyalty.mask_email(p.email)'
                WHEN 'full' THEN 'loyalty.mask_full(p.email)' END
            WHEN 'address' THEN CASE treatment
                WHEN 'show' THEN 'p.address' WHEN 'full' THEN 'loyalty.mask_full(p.address)' END
            WHEN 'id_number' THEN '(''****'' || i.id_number_last4)'
            WHEN 'bank_card' THEN '(''****'' || i.bank_card_last4)'
        END
    END;
REVOKE ALL ON FUNCTION loyalty._field_expr(text, text) FROM PUBLIC;

-- loyalty.regenerate_views(): (re)build loyalty.member_<department> for every
-- department of the field policy.  Every view has the same columns (the
-- policy-controlled ones as text, NULL when hidden), so CREATE OR REPLACE
-- keeps grants, ownership and the extension membership.
CREATE FUNCTION loyalty.regenerate_views() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dept text;
    cols text;
    n integer := 0;
    fields constant text[] := ARRAY['card_no', 'full_name', 'gender', 'birth_date',
        'nationality', 'phone', 'email', 'address', 'id_number', 'bank_card'];
BEGIN
    FOREACH dept IN ARRAY ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager',
                                'crm', 'marketing', 'dba'] LOOP
        SELECT string_agg(pg_catalog.format('%s AS %I',
                   loyalty._field_expr(f.field, coalesce(c.treatment, 'hide')), f.field),
                   ', ' ORDER BY f.ord)
          INTO cols
          FROM unnest(fields) WITH ORDINALITY AS f(field, ord)
          LEFT JOIN loyalty.field_policy_current c
                 ON c.department = dept AND c.field = f.field;
        EXECUTE pg_catalog.format(
            'CREATE OR REPLACE VIEW loyalty.%I WITH (security_barrier) AS '
            'SELECT m.member_id, m.status, m.home_store, m.tier, m.tier_valid_until, '
            'm.time_zone, %s '
            'FROM loyalty.member m '
            'LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id '
            'LEFT JOIN loyalty.member_identity i ON i.member_id = m.member_id',
            'member_' || dept, cols);
        EXECUTE pg_catalog.format('ALTER VIEW loyalty.%I OWNER TO loyalty_view_owner',
                                  'member_' || dept);
        EXECUTE pg_catalog.format('REVOKE ALL ON loyalty.%I FROM PUBLIC', 'member_' || dept);
        EXECUTE pg_catalog.format('GRANT SELECT ON loyalty.%I TO %I',
                                  'member_' || dept, 'loyalty_' || dept);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION loyalty.regenerate_views() IS
    'Rebuild the masked member views from the field policy (runs by itself when the policy changes)';

CREATE FUNCTION loyalty._field_policy_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.regenerate_views();
    RETURN NULL;
END
$$;
CREATE TRIGGER field_policy_regenerate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.field_policy
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._field_policy_changed();

-- loyalty.field_policy_set(department, field, treatment): change the policy;
-- the views follow in the same transaction.
CREATE FUNCTION loyalty.field_policy_set(department text, field text, treatment text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF department IS NULL OR field IS NULL OR treatment IS NULL THEN
        RAISE EXCEPTION 'department, field and treatment must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF department NOT IN ('frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm', 'marketing', 'dba') THEN
        RAISE EXCEPTION 'unknown department "%"', department
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Departments with a member view are frontdesk, housekeeping, fnb, store_manager, crm, marketing and dba.';
    END IF;
    IF loyalty.field_treatments(field) IS NULL THEN
        RAISE EXCEPTION 'unknown member field "%"', field
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Fields are card_no, full_name, gender, birth_date, nationality, phone, email, address, id_number and bank_card.';
    END IF;
    IF NOT treatment = ANY (loyalty.field_treatments(field)) THEN
        RAISE EXCEPTION 'treatment "%" is not allowed for field "%"', treatment, field
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('Allowed treatments: %s.',
                               pg_catalog.array_to_string(loyalty.field_treatments(field), ', '));
    END IF;
    INSERT INTO loyalty.field_policy (department, field, treatment)
        VALUES (field_policy_set.department, field_policy_set.field, field_policy_set.treatment);
END
$$;
COMMENT ON FUNCTION loyalty.field_policy_set(text, text, text) IS
    'Set how a department sees a member field; regenerates the masked views';

REVOKE ALL ON FUNCTION loyalty.regenerate_views(), loyalty._field_policy_changed(),
    loyalty.field_policy_set(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.regenerate_views(), loyalty.field_policy_set(text, text, text)
    TO loyalty_crm, loyalty_dba;

SELECT loyalty.regenerate_views();

-- Store-scoped and chain-wide side tables, through views owned by the same
-- role.  Preferences: chain-wide ones everywhere, store-only ones at their
-- store (row level security on member_preference).
CREATE VIEW loyalty.member_preferences WITH (security_barrier) AS
SELECT preference_id, member_id, category, value, scope, store_code, recorded_at
  FROM loyalty.member_preference
 WHERE retired_at IS NULL;
COMMENT ON VIEW loyalty.member_preferences IS
    'Current preferences: chain-wide ones, and store-only ones of the caller''s store (all for HQ)';

-- Behaviour tags are chain-wide; the free-text note is shown only at the
-- tagging store and at HQ.  (Risk tags, which freeze benefits, have their
-- own API with the same rule: loyalty.risk_tags(), docs/benefits.md.)
CREATE VIEW loyalty.member_tags WITH (security_barrier) AS
SELECT tag_id, member_id, code, store_code,
       CASE WHEN loyalty.store_visible(store_code) THEN note END AS note,
       tagged_at, retired_at
  FROM loyalty.member_tag;
COMMENT ON VIEW loyalty.member_tags IS
    'Behaviour tags; notes only at the tagging store and at HQ';

-- Stays: the caller's store's stays (all for HQ).
CREATE VIEW loyalty.stays WITH (security_barrier) AS
SELECT stay_id, member_id, store_code, check_in, check_out, rooms,
       room_revenue, other_revenue, status
  FROM loyalty.stay;
COMMENT ON VIEW loyalty.stays IS 'Stays at the caller''s store (every store for HQ)';

ALTER VIEW loyalty.member_preferences OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.member_tags OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.stays OWNER TO loyalty_view_owner;
REVOKE ALL ON loyalty.member_preferences, loyalty.member_tags, loyalty.stays FROM PUBLIC;
GRANT SELECT ON loyalty.member_preferences TO loyalty_frontdesk, loyalty_housekeeping,
    loyalty_fnb, loyalty_store_manager, loyalty_crm;
GRANT SELECT ON loyalty.member_tags TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;
GRANT SELECT ON loyalty.stays TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;

-- No temporary objects for anyone but superusers and roles granted TEMP
-- explicitly: a store role cannot plant a function in pg_temp.  This is a
-- database-wide setting (docs/threat-model.md); DROP EXTENSION leaves it.
DO $$
BEGIN
    EXECUTE pg_catalog.format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC',
                              pg_catalog.current_database());
END
$$;
-- The audit trail (docs/privacy.md): who (login and role), where (store,
-- department), what (member, fields, action, purpose) and when.  Records are
-- written by each session's audit writer (src/audit.c) in transactions of
-- their own, so a read stays on record when the reader rolls back.
-- Append-only for everyone, and a hash chain makes any edit detectable.

CREATE TABLE loyalty.audit_log (
    audit_id    bigint PRIMARY KEY,         -- gapless, in chain order
    at          timestamptz NOT NULL,
    login       text NOT NULL,
    role        text NOT NULL,
    store_code  text,
    department  text,
    member_id   uuid,
    action      text NOT NULL
        CONSTRAINT audit_action_format CHECK (action ~ '^[a-z][a-z_]{0,31}$'),
    fields      text[],
    purpose     text
        CONSTRAINT audit_purpose_length CHECK (length(purpose) <= 200),
    prev_hash   bytea,
    hash        bytea NOT NULL
);
COMMENT ON TABLE loyalty.audit_log IS
    'Append-only, hash-chained record of sensitive reads and of every change to member data';
CREATE INDEX audit_log_member_idx ON loyalty.audit_log (member_id, at);
CREATE INDEX audit_log_login_idx ON loyalty.audit_log (login, at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.audit_log', '');
ALTER TABLE loyalty.audit_log ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
REVOKE ALL ON loyalty.audit_log FROM PUBLIC;

-- The canonical text of a record, hashed with the previous record's hash.
-- %L quotes every value and spells NULL, so no two records share a text.
CREATE FUNCTION loyalty._audit_hash(prev bytea, audit_id bigint, at timestamptz,
    login text, role text, store_code text, department text, member_id uuid,
    action text, fields text[], purpose text) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN pg_catalog.sha256(coalesce(prev, '\x'::bytea) || pg_catalog.convert_to(
        pg_catalog.format('%s %s %L %L %L %L %L %L %L %L', audit_id,
            (extract(epoch FROM at) * 1000000)::bigint, login, role, store_code,
            department, member_id, action, fields, purpose), 'UTF8'));

-- Called by the audit writer only (as the bootstrap superuser).
CREATE FUNCTION loyalty._audit_append(login text, role text, store_code text,
    department text, member_id uuid, action text, fields text[], purpose text,
    at timestamptz) RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    last_id bigint;
    last_hash bytea;
BEGIN
    -- one writer at a time extends the chain; readers are not blocked
    LOCK TABLE loyalty.audit_log IN SHARE ROW EXCLUSIVE MODE;
    SELECT a.audit_id, a.hash INTO last_id, last_hash
      FROM loyalty.audit_log a ORDER BY a.audit_id DESC LIMIT 1;
    last_id := coalesce(last_id, 0) + 1;
    INSERT INTO loyalty.audit_log (audit_id, at, login, role, store_code, department,
                                   member_id, action, fields, purpose, prev_hash, hash)
    VALUES (last_id, at, login, role, store_code, department, member_id, action,
            fields, purpose, last_hash,
            loyalty._audit_hash(last_hash, last_id, at, login, role, store_code,
                                department, member_id, action, fields, purpose));
    RETURN last_id;
END
$$;

CREATE FUNCTION loyalty._audit(member_id uuid, action text, fields text[], purpose text)
    RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'loyalty_audit';

-- Append-only, also for the owner of the API functions: no UPDATE, DELETE
-- or TRUNCATE (superusers can drop the triggers; the hash chain then shows
-- any change, see loyalty.audit_verify()).
CREATE FUNCTION loyalty._audit_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = pg_catalog.format('%s on loyalty.audit_log is not allowed.', TG_OP);
END
$$;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON loyalty.audit_log
    FOR EACH ROW EXECUTE FUNCTION loyalty._audit_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON loyalty.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._audit_append_only();
-- the triggers fire in replica mode too (session_replication_role)
ALTER TABLE loyalty.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE loyalty.audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;

-- loyalty.audit_verify(): every break of the chain (edited, deleted or
-- inserted records); no rows means the log is intact.
CREATE FUNCTION loyalty.audit_verify()
    RETURNS TABLE (audit_id bigint, problem text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT c.audit_id, c.problem FROM (
        SELECT a.audit_id,
               CASE
                 WHEN a.audit_id <> coalesce(lag(a.audit_id) OVER w, 0) + 1 THEN 'gap before this record'
                 WHEN a.prev_hash IS DISTINCT FROM lag(a.hash) OVER w THEN 'previous hash does not match'
                 WHEN a.hash <> loyalty._audit_hash(a.prev_hash, a.audit_id, a.at, a.login, a.role,
                          a.store_code, a.department, a.member_id, a.action, a.fields, a.purpose)
                   THEN 'record does not match its hash'
               END AS problem
          FROM loyalty.audit_log a
        WINDOW w AS (ORDER BY a.audit_id)) c
     WHERE c.problem IS NOT NULL
     ORDER BY c.audit_id;
END;
COMMENT ON FUNCTION loyalty.audit_verify() IS
    'Check the audit hash chain; returns each broken record (none: intact)';

-- loyalty.audit_head(): the latest record's id and hash, to be kept outside
-- the database (anchoring the chain against a rewrite of the whole log).
CREATE FUNCTION loyalty.audit_head(OUT audit_id bigint, OUT hash text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT a.audit_id, pg_catalog.encode(a.hash, 'hex') FROM loyalty.audit_log a
     ORDER BY a.audit_id DESC LIMIT 1;
END;

-- "Who saw member X": every access to one member.
CREATE FUNCTION loyalty.audit_member(member_id uuid, since timestamptz DEFAULT '-infinity')
    RETURNS TABLE (at timestamptz, login text, role text, store_code text,
                   department text, action text, fields text[], purpose text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT a.at, a.login, a.role, a.store_code, a.department, a.action, a.fields, a.purpose
      FROM loyalty.audit_log a
     WHERE a.member_id = audit_member.member_id AND a.at >= audit_member.since
       AND (SELECT loyalty.caller_is_hq())
     ORDER BY a.audit_id;
END;
COMMENT ON FUNCTION loyalty.audit_member(uuid, timestamptz) IS 'Who accessed a member, when, what and why';

-- "What did role Y see": every access by one login (or department role).
CREATE FUNCTION loyalty.audit_role(role text, since timestamptz DEFAULT '-infinity')
    RETURNS TABLE (at timestamptz, login text, store_code text, department text,
                   member_id uuid, action text, fields text[], purpose text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT a.at, a.login, a.store_code, a.department, a.member_id, a.action, a.fields, a.purpose
      FROM loyalty.audit_log a
     WHERE (a.login = audit_role.role OR a.role = audit_role.role) AND a.at >= audit_role.since
       AND (SELECT loyalty.caller_is_hq())
     ORDER BY a.audit_id;
END;
COMMENT ON FUNCTION loyalty.audit_role(text, timestamptz) IS 'What a login or role accessed, when and why';

REVOKE ALL ON FUNCTION loyalty._audit_hash(bytea, bigint, timestamptz, text, text, text, text, uuid, text, text[], text),
    loyalty._audit_append(text, text, text, text, uuid, text, text[], text, timestamptz),
    loyalty._audit(uuid, text, text[], text), loyalty._audit_append_only(),
    loyalty.audit_verify(), loyalty.audit_head(),
    loyalty.audit_member(uuid, timestamptz), loyalty.audit_role(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.audit_verify(), loyalty.audit_head(),
    loyalty.audit_member(uuid, timestamptz), loyalty.audit_role(text, timestamptz)
    TO loyalty_crm, loyalty_dba;
-- API functions for applications (docs/privacy.md): SECURITY DEFINER, fixed
-- search_path, the caller's store and department from role membership,
-- results in the caller's department view, every access audited before the
-- result is returned.  A member that does not exist and one out of reach
-- (erased) give the same error.

-- _not_found: the one error for "no such member" and "not yours to see".
CREATE FUNCTION loyalty._member_not_found() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'member not found' USING ERRCODE = 'no_data_found';
END
$$;

-- _visible_fields: the fields a department's view shows (not hidden).
CREATE FUNCTION loyalty._visible_fields(department text) RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT coalesce(array_agg(c.field ORDER BY c.field), '{}')
      FROM loyalty.field_policy_current c
     WHERE c.department = _visible_fields.department AND c.treatment <> 'hide';
END;

-- loyalty.frontdesk_lookup(key, purpose): find members by card number,
-- phone or ID number (through its blind index, src/sql/44_identity.sql);
-- rows of loyalty.member_frontdesk.
CREATE FUNCTION loyalty.frontdesk_lookup(key text, purpose text DEFAULT 'check_in')
    RETURNS SETOF loyalty.member_frontdesk
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids uuid[];
    id uuid;
    fields text[];
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm']);
    IF key IS NULL OR btrim(key) = '' THEN
        RAISE EXCEPTION 'lookup key must not be empty' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF length(key) > 32 THEN
        RAISE EXCEPTION 'lookup key is longer than 32 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    -- three index lookups (a single OR would scan every member)
    SELECT array_agg(DISTINCT m.member_id ORDER BY m.member_id) INTO ids
      FROM loyalty.member m
     WHERE m.status <> 'erased'
       AND m.member_id IN (
            SELECT c.member_id FROM loyalty.member c WHERE c.card_no = key
            UNION ALL
            SELECT p.member_id FROM loyalty.member_profile p WHERE p.phone = key
            UNION ALL
            SELECT i.member_id FROM loyalty.member_identity i
             WHERE i.id_number_index = loyalty._blind_index('id_number', key));
    IF ids IS NULL THEN
        PERFORM loyalty._member_not_found();
    END IF;
    fields := loyalty._visible_fields('frontdesk');
    FOREACH id IN ARRAY ids LOOP
        PERFORM loyalty._audit(id, 'lookup', fields, purpose);
    END LOOP;
    RETURN QUERY SELECT v.* FROM loyalty.member_frontdesk v WHERE v.member_id = ANY (ids)
                  ORDER BY v.member_id;
END
$$;
COMMENT ON FUNCTION loyalty.frontdesk_lookup(text, text) IS
    'Front desk: find members by card number, phone or ID number, masked for the front desk; audited';

-- loyalty.housekeeping_profile(member_id, purpose): the housekeeping view of
-- a member and the preferences the caller's store may see, as jsonb.
CREATE FUNCTION loyalty.housekeeping_profile(member_id uuid, purpose text DEFAULT 'room_preparation')
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result jsonb;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['housekeeping', 'store_manager', 'crm']);
    SELECT pg_catalog.to_jsonb(v) INTO result
      FROM loyalty.member_housekeeping v
     WHERE v.member_id = housekeeping_profile.member_id AND v.status <> 'erased';
    IF result IS NULL THEN
        PERFORM loyalty._member_not_found();
    END IF;
    PERFORM loyalty._audit(member_id, 'profile',
        loyalty._visible_fields('housekeeping') || '{preferences}'::text[], purpose);
    RETURN pg_catalog.jsonb_strip_nulls(result) || pg_catalog.jsonb_build_object('preferences',
        (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                    'category', p.category, 'value', p.value, 'scope', p.scope,
                    'store_code', p.store_code, 'recorded_at', p.recorded_at)
                  ORDER BY p.category, p.recorded_at), '[]')
           FROM loyalty.member_preferences p
          WHERE p.member_id = housekeeping_profile.member_id));
END
$$;
COMMENT ON FUNCTION loyalty.housekeeping_profile(uuid, text) IS
    'Housekeeping: a member''s masked profile and the preferences the caller''s store may see; audited';

-- loyalty.preferences(member_id): the member's current preferences the
-- caller's store may see.
CREATE FUNCTION loyalty.preferences(member_id uuid)
    RETURNS SETOF loyalty.member_preferences
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm']);
    IF NOT EXISTS (SELECT 1 FROM loyalty.member m
                    WHERE m.member_id = preferences.member_id AND m.status <> 'erased') THEN
        PERFORM loyalty._member_not_found();
    END IF;
    RETURN QUERY SELECT p.* FROM loyalty.member_preferences p
                  WHERE p.member_id = preferences.member_id
                  ORDER BY p.category, p.recorded_at;
END
$$;
COMMENT ON FUNCTION loyalty.preferences(uuid) IS
    'Current preferences of a member: chain-wide ones and the caller''s store''s own';

-- loyalty.preference_add(member_id, category, value, scope, store_code):
-- record a preference at the caller's store (HQ names the store).
CREATE FUNCTION loyalty.preference_add(member_id uuid, category text, value text,
    scope text DEFAULT 'chain', store_code text DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    store text := coalesce(store_code, loyalty.caller_store());
    id uuid;
BEGIN
    PERFORM loyalty._check_access(store, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm']);
    IF store IS NULL THEN
        RAISE EXCEPTION 'store_code is required for HQ callers' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF member_id IS NULL OR category IS NULL OR value IS NULL OR scope IS NULL THEN
        RAISE EXCEPTION 'member_id, category, value and scope must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF scope NOT IN ('chain', 'store') THEN
        RAISE EXCEPTION 'invalid preference scope "%"', scope
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use "chain" or "store".';
    END IF;
    IF category NOT IN ('pillow', 'allergy', 'floor', 'lighting', 'bed', 'crib',
                        'smoking', 'room', 'dining', 'other') THEN
        RAISE EXCEPTION 'invalid preference category "%"', category
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Categories are pillow, allergy, floor, lighting, bed, crib, smoking, room, dining and other.';
    END IF;
    IF btrim(value) = '' OR length(value) > 200 THEN
        RAISE EXCEPTION 'preference value must be 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.member m
                    WHERE m.member_id = preference_add.member_id AND m.status <> 'erased') THEN
        PERFORM loyalty._member_not_found();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.store s WHERE s.store_code = store) THEN
        RAISE EXCEPTION 'store "%" does not exist', store USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO loyalty.member_preference (member_id, category, value, scope, store_code)
        VALUES (preference_add.member_id, category, value, scope, store)
        RETURNING preference_id INTO id;
    PERFORM loyalty._audit(member_id, 'preference_add', ARRAY['preferences'], category);
    RETURN id;
END
$$;
COMMENT ON FUNCTION loyalty.preference_add(uuid, text, text, text, text) IS
    'Record a guest preference, chain-wide or store-only, at the caller''s store; audited';

-- loyalty.preference_retire(preference_id): retire a preference the caller
-- may see (a store-only one at its own store only).
CREATE FUNCTION loyalty.preference_retire(preference_id uuid)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    member uuid;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm']);
    SELECT p.member_id INTO member FROM loyalty.member_preference p
     WHERE p.preference_id = preference_retire.preference_id AND p.retired_at IS NULL
       AND (p.scope = 'chain' OR loyalty.store_visible(p.store_code))
     FOR UPDATE;
    IF member IS NULL THEN
        RAISE EXCEPTION 'preference not found' USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE loyalty.member_preference p SET retired_at = now()
     WHERE p.preference_id = preference_retire.preference_id;
    PERFORM loyalty._audit(member, 'preference_retire', ARRAY['preferences'], NULL);
END
$$;
COMMENT ON FUNCTION loyalty.preference_retire(uuid) IS 'Retire a guest preference; audited';

REVOKE ALL ON FUNCTION loyalty._member_not_found(), loyalty._visible_fields(text),
    loyalty.frontdesk_lookup(text, text), loyalty.housekeeping_profile(uuid, text),
    loyalty.preferences(uuid), loyalty.preference_add(uuid, text, text, text, text),
    loyalty.preference_retire(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.frontdesk_lookup(text, text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.housekeeping_profile(uuid, text)
    TO loyalty_housekeeping, loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.preferences(uuid), loyalty.preference_add(uuid, text, text, text, text),
    loyalty.preference_retire(uuid)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_crm;
-- Sensitive identity data at rest (docs/privacy.md): ID numbers and bank
-- cards are stored encrypted (AES-256-GCM), with a keyed blind index for
-- lookup and uniqueness and the last four characters for display.  The key
-- is in the data directory (file loyalty_keys), never in SQL, settings or
-- logs.  Stores verify ("does this ID match the member") instead of
-- decrypting; nobody but the export function decrypts.

CREATE FUNCTION loyalty._identity_seal(member_id uuid, kind text, value text) RETURNS bytea
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'loyalty_identity_seal';
CREATE FUNCTION loyalty._identity_open(member_id uuid, kind text, sealed bytea) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'loyalty_identity_open';
CREATE FUNCTION loyalty._blind_index(kind text, value text) RETURNS bytea
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_blind_index';
CREATE FUNCTION loyalty._normalise_identifier(value text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_normalise_identifier';
CREATE FUNCTION loyalty.pseudonym(member_id uuid) RETURNS text
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_pseudonym';
COMMENT ON FUNCTION loyalty.pseudonym(uuid) IS
    'Keyed pseudonymous member key for BI (HMAC of the member id)';

-- one member per ID number and per bank card
CREATE UNIQUE INDEX member_identity_id_number_key ON loyalty.member_identity (id_number_index);
CREATE UNIQUE INDEX member_identity_bank_card_key ON loyalty.member_identity (bank_card_index);

-- loyalty.identity_set(member_id, id_type, id_number, bank_card): store or
-- replace a member's ID number and bank card (NULL keeps the current one).
CREATE FUNCTION loyalty.identity_set(member_id uuid, id_type text, id_number text,
    bank_card text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idn text := loyalty._normalise_identifier(id_number);
    card text := loyalty._normalise_identifier(bank_card);
    changed text[] := '{}';
    constraint_name text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm']);
    IF member_id IS NULL THEN
        RAISE EXCEPTION 'member_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.member m
                    WHERE m.member_id = identity_set.member_id AND m.status <> 'erased') THEN
        PERFORM loyalty._member_not_found();
    END IF;
    IF idn IS NOT NULL AND idn !~ '^[0-9A-Z]{5,32}$' THEN
        -- the value itself is never echoed: it would land in logs
        RAISE EXCEPTION 'invalid ID number'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'An ID number is 5 to 32 letters and digits.';
    END IF;
    IF idn IS NOT NULL AND (id_type IS NULL OR id_type NOT IN
            ('resident_id', 'passport', 'hk_macau_permit', 'taiwan_permit', 'other')) THEN
        RAISE EXCEPTION 'invalid ID type'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'ID types are resident_id, passport, hk_macau_permit, taiwan_permit and other.';
    END IF;
    IF card IS NOT NULL AND card !~ '^[0-9]{12,19}$' THEN
        RAISE EXCEPTION 'invalid bank card number'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A bank card number is 12 to 19 digits.';
    END IF;
    IF idn IS NULL AND card IS NULL THEN
        RAISE EXCEPTION 'nothing to store' USING ERRCODE = 'null_value_not_allowed',
              HINT = 'Give an ID number, a bank card number, or both.';
    END IF;
    IF idn IS NOT NULL AND EXISTS (SELECT 1 FROM loyalty.member_identity i
            WHERE i.id_number_index = loyalty._blind_index('id_number', idn)
              AND i.member_id <> identity_set.member_id) THEN
        RAISE EXCEPTION 'this ID number belongs to another member'
            USING ERRCODE = 'unique_violation';
    END IF;
    IF card IS NOT NULL AND EXISTS (SELECT 1 FROM loyalty.member_identity i
            WHERE i.bank_card_index = loyalty._blind_index('bank_card', card)
              AND i.member_id <> identity_set.member_id) THEN
        RAISE EXCEPTION 'this bank card belongs to another member'
            USING ERRCODE = 'unique_violation';
    END IF;
    -- a concurrent call storing the same number for another member waits
    -- on the unique index and fails here
    BEGIN
        INSERT INTO loyalty.member_identity AS i (member_id) VALUES (identity_set.member_id)
            ON CONFLICT ON CONSTRAINT member_identity_pkey DO NOTHING;
        IF idn IS NOT NULL THEN
            UPDATE loyalty.member_identity i
               SET id_type = identity_set.id_type,
                   id_number_cipher = loyalty._identity_seal(i.member_id, 'id_number', idn),
                   id_number_index = loyalty._blind_index('id_number', idn),
                   id_number_last4 = right(idn, 4)
             WHERE i.member_id = identity_set.member_id;
            changed := changed || '{id_number}'::text[];
        END IF;
        IF card IS NOT NULL THEN
            UPDATE loyalty.member_identity i
               SET bank_card_cipher = loyalty._identity_seal(i.member_id, 'bank_card', card),
                   bank_card_index = loyalty._blind_index('bank_card', card),
                   bank_card_last4 = right(card, 4)
             WHERE i.member_id = identity_set.member_id;
            changed := changed || '{bank_card}'::text[];
        END IF;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS constraint_name = CONSTRAINT_NAME;
        RAISE EXCEPTION 'this % belongs to another member',
            CASE WHEN constraint_name = 'member_identity_bank_card_key' THEN 'bank card' ELSE 'ID number' END
            USING ERRCODE = 'unique_violation';
    END;
    PERFORM loyalty._audit(member_id, 'identity_set', changed, NULL);
END
$$;
COMMENT ON FUNCTION loyalty.identity_set(uuid, text, text, text) IS
    'Store a member''s ID number and/or bank card encrypted, with blind index and last four; audited';

-- loyalty.identity_matches(member_id, id_number): does this ID number belong
-- to this member?  Verification without decryption; audited.
CREATE FUNCTION loyalty.identity_matches(member_id uuid, id_number text,
    purpose text DEFAULT 'check_in')
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stored bytea;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm']);
    IF id_number IS NULL THEN
        RAISE EXCEPTION 'id_number must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.member m
                    WHERE m.member_id = identity_matches.member_id AND m.status <> 'erased') THEN
        PERFORM loyalty._member_not_found();
    END IF;
    SELECT i.id_number_index INTO stored FROM loyalty.member_identity i
     WHERE i.member_id = identity_matches.member_id;
    PERFORM loyalty._audit(member_id, 'verify_id', '{id_number}', purpose);
    RETURN coalesce(stored = loyalty._blind_index('id_number', id_number), false);
END
$$;
COMMENT ON FUNCTION loyalty.identity_matches(uuid, text, text) IS
    'Verify that an ID number belongs to a member, without revealing it; audited';

REVOKE ALL ON FUNCTION loyalty._identity_seal(uuid, text, text), loyalty._identity_open(uuid, text, bytea),
    loyalty._blind_index(text, text), loyalty._normalise_identifier(text), loyalty.pseudonym(uuid),
    loyalty.identity_set(uuid, text, text, text), loyalty.identity_matches(uuid, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.identity_set(uuid, text, text, text),
    loyalty.identity_matches(uuid, text, text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;
-- Privacy operations (docs/privacy.md): consents, export of one member,
-- erasure by pseudonymisation, retention purge with a dry run.  Every call
-- is audited.

-- loyalty.consent_record(member_id, purpose, granted, notice_version,
-- store_code): record what a member agreed to (or withdrew), where and
-- under which notice.  The latest row per purpose is in effect.
CREATE FUNCTION loyalty.consent_record(member_id uuid, purpose text, granted boolean,
    notice_version text, store_code text DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    store text := coalesce(store_code, loyalty.caller_store());
    id uuid;
BEGIN
    PERFORM loyalty._check_access(store, ARRAY['frontdesk', 'store_manager', 'crm']);
    IF member_id IS NULL OR purpose IS NULL OR granted IS NULL OR notice_version IS NULL THEN
        RAISE EXCEPTION 'member_id, purpose, granted and notice_version must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF purpose NOT IN ('marketing_email', 'marketing_sms', 'profiling', 'cross_border', 'third_party') THEN
        RAISE EXCEPTION 'invalid consent purpose "%"', purpose
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Purposes are marketing_email, marketing_sms, profiling, cross_border and third_party.';
    END IF;
    IF length(notice_version) NOT BETWEEN 1 AND 50 THEN
        RAISE EXCEPTION 'notice_version must be 1 to 50 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.member m
                    WHERE m.member_id = consent_record.member_id AND m.status <> 'erased') THEN
        PERFORM loyalty._member_not_found();
    END IF;
    INSERT INTO loyalty.member_consent (member_id, purpose, granted, notice_version, store_code)
        VALUES (consent_record.member_id, purpose, granted, notice_version, store)
        RETURNING consent_id INTO id;
    PERFORM loyalty._audit(member_id, 'consent_record', ARRAY['consent:' || purpose], notice_version);
    RETURN id;
END
$$;
COMMENT ON FUNCTION loyalty.consent_record(uuid, text, boolean, text, text) IS
    'Record a member''s consent (or withdrawal) for a purpose under a notice version; audited';

-- The consents in effect: the latest row per member and purpose.
CREATE VIEW loyalty.member_consents WITH (security_barrier) AS
SELECT DISTINCT ON (member_id, purpose)
       member_id, purpose, granted, notice_version, store_code, recorded_at
  FROM loyalty.member_consent
 ORDER BY member_id, purpose, recorded_at DESC, consent_id;
COMMENT ON VIEW loyalty.member_consents IS 'Consents in effect: latest decision per member and purpose';
ALTER VIEW loyalty.member_consents OWNER TO loyalty_view_owner;
REVOKE ALL ON loyalty.member_consents FROM PUBLIC;
GRANT SELECT ON loyalty.member_consents TO loyalty_frontdesk, loyalty_store_manager,
    loyalty_crm, loyalty_marketing;

-- loyalty.member_export(member_id): everything held about one member, as
-- jsonb, for a data subject's access request (HQ CRM only; audited).  The
-- ID number and bank card are decrypted here and nowhere else.
CREATE FUNCTION loyalty.member_export(member_id uuid, purpose text DEFAULT 'subject_access_request')
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result jsonb;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm']);
    SELECT pg_catalog.jsonb_build_object(
        'member', pg_catalog.to_jsonb(m),
        'profile', (SELECT pg_catalog.to_jsonb(p) FROM loyalty.member_profile p WHERE p.member_id = m.member_id),
        'identity', (SELECT pg_catalog.jsonb_build_object(
                         'id_type', i.id_type,
                         'id_number', CASE WHEN i.id_number_cipher IS NOT NULL
                             THEN loyalty._identity_open(i.member_id, 'id_number', i.id_number_cipher) END,
                         'bank_card', CASE WHEN i.bank_card_cipher IS NOT NULL
                             THEN loyalty._identity_open(i.member_id, 'bank_card', i.bank_card_cipher) END)
                       FROM loyalty.member_identity i WHERE i.member_id = m.member_id),
        'preferences', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.recorded_at), '[]')
                          FROM loyalty.member_preference x WHERE x.member_id = m.member_id),
        'tags', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.tagged_at), '[]')
                   FROM loyalty.member_tag x WHERE x.member_id = m.member_id),
        'risk_tags', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.raised_at), '[]')
                        FROM loyalty.risk_tag x WHERE x.member_id = m.member_id),
        'stays', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.check_in), '[]')
                    FROM loyalty.stay x WHERE x.member_id = m.member_id),
        'consents', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x) ORDER BY x.recorded_at), '[]')
                       FROM loyalty.member_consent x WHERE x.member_id = m.member_id),
        'accesses', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                               'at', a.at, 'store_code', a.store_code, 'department', a.department,
                               'action', a.action, 'fields', a.fields, 'purpose', a.purpose)
                             ORDER BY a.audit_id), '[]')
                       FROM loyalty.audit_log a WHERE a.member_id = m.member_id))
      INTO result
      FROM loyalty.member m
     WHERE m.member_id = member_export.member_id AND m.status <> 'erased';
    IF result IS NULL THEN
        PERFORM loyalty._member_not_found();
    END IF;
    PERFORM loyalty._audit(member_id, 'export', ARRAY['*'], purpose);
    RETURN result;
END
$$;
COMMENT ON FUNCTION loyalty.member_export(uuid, text) IS
    'Everything held about one member (subject access request); HQ CRM only; audited';

-- loyalty.member_erase(member_id, reason): erasure by pseudonymisation.  The
-- member id stays (so the point ledger, stays and the audit trail keep their
-- sums and history), but nothing links it to a person any more: profile,
-- identity, preferences and consents are deleted, tag notes cleared, the
-- card number replaced.
CREATE FUNCTION loyalty.member_erase(member_id uuid, reason text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm']);
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'an erasure needs a reason' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM 1 FROM loyalty.member m
      WHERE m.member_id = member_erase.member_id AND m.status <> 'erased' FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM loyalty._member_not_found();
    END IF;
    -- the record first: an erasure that fails is still on record as tried
    PERFORM loyalty._audit(member_id, 'erase', ARRAY['*'], left(reason, 200));
    DELETE FROM loyalty.member_profile p WHERE p.member_id = member_erase.member_id;
    DELETE FROM loyalty.member_identity i WHERE i.member_id = member_erase.member_id;
    DELETE FROM loyalty.member_preference x WHERE x.member_id = member_erase.member_id;
    DELETE FROM loyalty.member_consent x WHERE x.member_id = member_erase.member_id;
    UPDATE loyalty.member_tag t SET note = NULL WHERE t.member_id = member_erase.member_id;
    -- risk tags stay (an amount owed is the chain's record), their notes go
    UPDATE loyalty.risk_tag t SET note = '[erased]' WHERE t.member_id = member_erase.member_id;
    UPDATE loyalty.member m
       SET status = 'erased', card_no = loyalty.new_card_number(), time_zone = NULL,
           updated_at = now()
     WHERE m.member_id = member_erase.member_id;
END
$$;
COMMENT ON FUNCTION loyalty.member_erase(uuid, text) IS
    'Erase a member by pseudonymisation, keeping ledger sums and the audit trail; HQ CRM only; audited';

-- loyalty.retention_purge(dry_run, inactive_for, retired_for): what the
-- retention rules remove; with dry_run (the default) nothing is changed.
--   retired preferences older than retired_for are deleted;
--   members with no stay and no enrolment within inactive_for are erased.
CREATE FUNCTION loyalty.retention_purge(dry_run boolean DEFAULT true,
    inactive_for interval DEFAULT '3 years', retired_for interval DEFAULT '1 year')
    RETURNS TABLE (action text, rows bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    victims uuid[];
    n bigint;
    v uuid;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    IF dry_run IS NULL OR inactive_for IS NULL OR retired_for IS NULL THEN
        RAISE EXCEPTION 'dry_run, inactive_for and retired_for must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF inactive_for < interval '1 year' OR retired_for < interval '0' THEN
        RAISE EXCEPTION 'retention periods are too short'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Members are kept at least one year after their last activity.';
    END IF;
    SELECT count(*) INTO n FROM loyalty.member_preference p
     WHERE p.retired_at < now() - retired_for;
    action := 'delete_retired_preferences'; rows := n;
    RETURN NEXT;
    SELECT coalesce(array_agg(m.member_id), '{}') INTO victims FROM loyalty.member m
     WHERE m.status <> 'erased' AND m.enrolled_at < now() - inactive_for
       AND NOT EXISTS (SELECT 1 FROM loyalty.stay s
                        WHERE s.member_id = m.member_id AND s.check_out >= (now() - inactive_for)::date);
    action := 'erase_inactive_members'; rows := cardinality(victims);
    RETURN NEXT;
    IF NOT dry_run THEN
        DELETE FROM loyalty.member_preference p WHERE p.retired_at < now() - retired_for;
        FOREACH v IN ARRAY victims LOOP
            PERFORM loyalty.member_erase(v, 'retention: inactive for ' || inactive_for::text);
        END LOOP;
    END IF;
END
$$;
COMMENT ON FUNCTION loyalty.retention_purge(boolean, interval, interval) IS
    'Apply the retention rules; dry_run (default) only reports what would be removed';

REVOKE ALL ON FUNCTION loyalty.consent_record(uuid, text, boolean, text, text),
    loyalty.member_export(uuid, text), loyalty.member_erase(uuid, text),
    loyalty.retention_purge(boolean, interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.consent_record(uuid, text, boolean, text, text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.member_export(uuid, text), loyalty.member_erase(uuid, text)
    TO loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.retention_purge(boolean, interval, interval) TO loyalty_crm, loyalty_dba;
-- BI (docs/privacy.md): pseudonymous member keys, generalised
-- quasi-identifiers, no contact data, and aggregates that hide every group
-- smaller than loyalty.bi_min_group_size().

CREATE FUNCTION loyalty.bi_min_group_size() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 10;
COMMENT ON FUNCTION loyalty.bi_min_group_size() IS
    'Smallest group an aggregate BI view shows (k); smaller groups are suppressed';

-- One row per member: keyed pseudonym, store, tier, gender, decade of birth,
-- month of enrolment.  Erased members are left out.
CREATE VIEW loyalty.bi_members WITH (security_barrier) AS
SELECT loyalty.pseudonym(m.member_id) AS member_key,
       m.home_store, m.tier, m.status, p.gender,
       loyalty.mask_birth_decade(p.birth_date) AS birth_decade,
       to_char(m.enrolled_at AT TIME ZONE 'UTC', 'YYYY-MM') AS enrolled_month
  FROM loyalty.member m
  LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id
 WHERE m.status <> 'erased';
COMMENT ON VIEW loyalty.bi_members IS 'Members for BI: pseudonymous key, generalised quasi-identifiers';

-- One row per stay, by month.
CREATE VIEW loyalty.bi_stays WITH (security_barrier) AS
SELECT loyalty.pseudonym(s.member_id) AS member_key, s.store_code,
       date_trunc('month', s.check_in)::date AS stay_month,
       (s.check_out - s.check_in) AS nights, s.rooms, s.room_revenue, s.other_revenue, s.status
  FROM loyalty.stay s;
COMMENT ON VIEW loyalty.bi_stays IS 'Stays for BI by month, with pseudonymous member keys';

-- Member counts by store, tier, gender and decade of birth; groups of fewer
-- than k members are not shown.
CREATE VIEW loyalty.bi_segments WITH (security_barrier) AS
SELECT m.home_store, m.tier, p.gender, loyalty.mask_birth_decade(p.birth_date) AS birth_decade,
       count(*) AS members
  FROM loyalty.member m
  LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id
 WHERE m.status <> 'erased'
 GROUP BY 1, 2, 3, 4
HAVING count(*) >= loyalty.bi_min_group_size();
COMMENT ON VIEW loyalty.bi_segments IS 'Member counts per segment; groups smaller than bi_min_group_size() suppressed';

ALTER VIEW loyalty.bi_members OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.bi_stays OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.bi_segments OWNER TO loyalty_view_owner;
REVOKE ALL ON loyalty.bi_members, loyalty.bi_stays, loyalty.bi_segments FROM PUBLIC;
REVOKE ALL ON FUNCTION loyalty.bi_min_group_size() FROM PUBLIC;
GRANT SELECT ON loyalty.bi_members, loyalty.bi_stays, loyalty.bi_segments TO loyalty_bi;
GRANT EXECUTE ON FUNCTION loyalty.pseudonym(uuid), loyalty.bi_min_group_size()
    TO loyalty_bi, loyalty_view_owner;
-- Row level security for the store-scoped tables of other areas, following
-- the pattern of docs/privacy.md ("Row level security per store"): the
-- extension's SECURITY DEFINER functions run as the extension owner, so
-- these policies bind every other reader, including views owned by
-- loyalty_view_owner.

-- point ledger: lots and entries are a store's transactions
ALTER TABLE loyalty.point_lot ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.point_entry ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY store_scope ON loyalty.point_lot FOR SELECT
    USING (loyalty.store_visible(store_code));
CREATE POLICY store_scope ON loyalty.point_entry FOR SELECT
    USING (loyalty.store_visible(store_code));

-- benefits: a store's own benefits and the uses recorded at a store
ALTER TABLE loyalty.benefit_grant ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.benefit_use ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY store_scope ON loyalty.benefit_grant FOR SELECT
    USING (store_code IS NULL OR loyalty.store_visible(store_code));
CREATE POLICY store_scope ON loyalty.benefit_use FOR SELECT
    USING (loyalty.store_visible(store_code));

-- every view is owned by loyalty_view_owner, which cannot bypass row level
-- security (docs/privacy.md); the tier engine's job progress view too
GRANT SELECT ON loyalty.tier_job TO loyalty_view_owner;
ALTER VIEW loyalty.tier_job_progress OWNER TO loyalty_view_owner;
-- Store replicas (docs/replication.md): what this server is, the stores HQ
-- replicates to, the store outbox and HQ's record of every outbox event.
--
-- Data flows one way per table: HQ -> store through one publication per
-- store (loyalty_store_<code>), store -> HQ through the store's outbox
-- (publication loyalty_outbox, insert only).  No table is written on both
-- sides.

-- What this server is.  No row: headquarters.  loyalty.store_subscribe()
-- makes a server a store replica.
CREATE TABLE loyalty.replica_node (
    singleton   boolean PRIMARY KEY DEFAULT true
        CONSTRAINT replica_node_singleton CHECK (singleton),
    node_role   text NOT NULL
        CONSTRAINT replica_node_role_valid CHECK (node_role IN ('store', 'hub')),
    store_code  text NOT NULL  -- the store's code, or the hub's
        CONSTRAINT replica_node_store_code_format CHECK (store_code ~ '^[a-z][a-z0-9_]{0,15}$'),
    incarnation bigint NOT NULL
        CONSTRAINT replica_node_incarnation_positive CHECK (incarnation > 0),
    configured_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.replica_node IS 'What this server is: no row at HQ; one row at a store replica or a hub';
SELECT pg_catalog.pg_extension_config_dump('loyalty.replica_node', '');

-- The replica registry, kept at HQ (and replicated to hubs and stores):
-- every store replica and every regional hub.  A store replicated through
-- a hub (via_hub) has its publication and slot at the hub, not at HQ.
CREATE TABLE loyalty.replica_store (
    store_code   text PRIMARY KEY
        CONSTRAINT replica_store_code_format CHECK (store_code ~ '^[a-z][a-z0-9_]{0,15}$'),
    kind         text NOT NULL DEFAULT 'store'
        CONSTRAINT replica_store_kind_valid CHECK (kind IN ('store', 'hub')),
    publication  name NOT NULL,
    slot_name    name NOT NULL,
    mode         text NOT NULL DEFAULT 'streaming'
        CONSTRAINT replica_store_mode_valid CHECK (mode IN ('streaming', 'batch')),
    window_start time,
    window_end   time,
    via_hub      text
        CONSTRAINT replica_store_via_hub_format CHECK (via_hub ~ '^[a-z][a-z0-9_]{0,15}$'),
    offline_redeem_cap bigint NOT NULL DEFAULT 5000
        CONSTRAINT replica_store_cap_nonnegative CHECK (offline_redeem_cap >= 0),
    added_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT replica_store_window_complete CHECK
        ((mode = 'batch') = (window_start IS NOT NULL AND window_end IS NOT NULL)),
    CONSTRAINT replica_store_hub_not_nested CHECK (kind = 'store' OR via_hub IS NULL)
);
COMMENT ON TABLE loyalty.replica_store IS 'Store replicas and regional hubs: publication, slot, mode, hub, offline cap';
SELECT pg_catalog.pg_extension_config_dump('loyalty.replica_store', '');

-- The outbox: at a store, every operation recorded there, append-only;
-- at HQ, every event received from the stores (each applied once).
CREATE SEQUENCE loyalty.outbox_seq;
CREATE TABLE loyalty.outbox (
    event_id    text PRIMARY KEY,
    store_code  text NOT NULL,
    incarnation bigint NOT NULL,
    seq         bigint NOT NULL,
    kind        text NOT NULL,
    member_id   uuid NOT NULL,
    payload     jsonb NOT NULL,
    idem_key    text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    recorded_by name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.outbox IS 'Store operations (<store>-<incarnation>-<seq>): append-only at the store, applied once at HQ';
CREATE UNIQUE INDEX outbox_idem_key ON loyalty.outbox (store_code, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX outbox_member_idx ON loyalty.outbox (member_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.outbox_seq', '');

-- HQ's verdict on each outbox event, published back to the store it came
-- from (row filter on store_code, which is in the primary key and so in the
-- replica identity).
CREATE TABLE loyalty.outbox_result (
    store_code   text NOT NULL,
    event_id     text NOT NULL,
    status       text NOT NULL
        CONSTRAINT outbox_result_status_valid CHECK (status IN ('applied', 'conflict', 'rejected', 'held')),
    sqlstate     text,
    detail       text,
    result       jsonb,
    received_at  timestamptz NOT NULL DEFAULT now(),
    decided_at   timestamptz NOT NULL DEFAULT now(),
    redeliveries integer NOT NULL DEFAULT 0,
    PRIMARY KEY (store_code, event_id)
);
COMMENT ON TABLE loyalty.outbox_result IS 'HQ''s verdict on each store event: applied, conflict (flagged), rejected (malformed) or held (no applier yet)';
CREATE INDEX outbox_result_status_idx ON loyalty.outbox_result (status) WHERE status <> 'applied';
SELECT pg_catalog.pg_extension_config_dump('loyalty.outbox_result', '');

-- Store-scoped tables are published with row filters on store_code; PG15
-- requires the filter's columns to be in the replica identity, or UPDATE
-- and DELETE fail at HQ.  The primary key stays as it is; the replica
-- identity is a unique index on the key plus the filter columns.
CREATE UNIQUE INDEX member_preference_replica_key
    ON loyalty.member_preference (preference_id, scope, store_code);
ALTER TABLE loyalty.member_preference REPLICA IDENTITY USING INDEX member_preference_replica_key;
CREATE UNIQUE INDEX stay_replica_key ON loyalty.stay (stay_id, store_code);
ALTER TABLE loyalty.stay REPLICA IDENTITY USING INDEX stay_replica_key;
-- benefit_grant is filtered on source and store_code, which may be NULL
-- (not allowed in a replica identity index): the whole row is its
-- identity.  The table is small and rarely updated.
ALTER TABLE loyalty.benefit_grant REPLICA IDENTITY FULL;

-- The apply worker fires only row triggers, and only ENABLE ALWAYS or
-- ENABLE REPLICA ones: policy versions arriving at a store must still
-- invalidate the store backends' policy caches.
-- The same holds for the benefit catalogue and the risk tags.
CREATE TRIGGER policy_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.policy
    FOR EACH ROW EXECUTE FUNCTION loyalty._cache_invalidate();
ALTER TABLE loyalty.policy ENABLE REPLICA TRIGGER policy_invalidate_replica;
CREATE TRIGGER risk_type_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.risk_type
    FOR EACH ROW EXECUTE FUNCTION loyalty._cache_invalidate();
ALTER TABLE loyalty.risk_type ENABLE REPLICA TRIGGER risk_type_invalidate_replica;
CREATE TRIGGER risk_tag_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.risk_tag
    FOR EACH ROW EXECUTE FUNCTION loyalty._cache_invalidate();
ALTER TABLE loyalty.risk_tag ENABLE REPLICA TRIGGER risk_tag_invalidate_replica;
CREATE TRIGGER benefit_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.benefit
    FOR EACH ROW EXECUTE FUNCTION loyalty._cache_invalidate();
ALTER TABLE loyalty.benefit ENABLE REPLICA TRIGGER benefit_invalidate_replica;
CREATE TRIGGER benefit_grant_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.benefit_grant
    FOR EACH ROW EXECUTE FUNCTION loyalty._cache_invalidate();
ALTER TABLE loyalty.benefit_grant ENABLE REPLICA TRIGGER benefit_grant_invalidate_replica;
-- Store replicas: HQ's DBA functions, the outbox applier, store mode and
-- the store's application functions (docs/replication.md).

-- The applier: a BEFORE INSERT row trigger that fires in the apply worker
-- too (ENABLE ALWAYS).  At a store it lets the row through.
CREATE FUNCTION loyalty._outbox_receive() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'loyalty_outbox_receive';
CREATE TRIGGER outbox_receive
    BEFORE INSERT ON loyalty.outbox
    FOR EACH ROW EXECUTE FUNCTION loyalty._outbox_receive();
ALTER TABLE loyalty.outbox ENABLE ALWAYS TRIGGER outbox_receive;

-- The outbox is append-only: no UPDATE, DELETE or TRUNCATE, at the store
-- or at HQ (loyalty.store_prune_outbox() is the one way to drop rows).
CREATE FUNCTION loyalty._outbox_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.current_setting('loyalty.outbox_prune', true) = 'on' AND TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'loyalty.outbox is append-only'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'Store events are never changed or removed once recorded.';
END
$$;
CREATE TRIGGER outbox_append_only
    BEFORE UPDATE OR DELETE ON loyalty.outbox
    FOR EACH ROW EXECUTE FUNCTION loyalty._outbox_append_only();
CREATE TRIGGER outbox_no_truncate
    BEFORE TRUNCATE ON loyalty.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._outbox_append_only();

-- HQ: DBA functions.
CREATE FUNCTION loyalty.replica_add_store(
    store_code text, offline_redeem_cap bigint DEFAULT 5000, via_hub text DEFAULT NULL)
    RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_add_store';
COMMENT ON FUNCTION loyalty.replica_add_store(text, bigint, text) IS
    'HQ: create a store''s publication and register its replica; then call replica_create_slot in a new transaction';

CREATE FUNCTION loyalty.replica_add_hub(hub_code text) RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_add_hub';
COMMENT ON FUNCTION loyalty.replica_add_hub(text) IS
    'HQ: a regional hub that republishes to its stores; then replica_create_slot(hub_code)';

CREATE FUNCTION loyalty.hub_subscribe(hq_conninfo text, hub_code text) RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_hub_subscribe';
COMMENT ON FUNCTION loyalty.hub_subscribe(text, text) IS
    'Hub: become a regional hub, subscribing to its publication at HQ (initial copy)';

CREATE FUNCTION loyalty.replica_create_slot(store_code text) RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_create_slot';
COMMENT ON FUNCTION loyalty.replica_create_slot(text) IS
    'HQ: (re)make a store''s replication slot; must be the first statement of its transaction';

CREATE FUNCTION loyalty.replica_attach_outbox(store_code text, store_conninfo text) RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_attach_outbox';
COMMENT ON FUNCTION loyalty.replica_attach_outbox(text, text) IS
    'HQ: subscribe to a store''s outbox; each event is applied once';

CREATE FUNCTION loyalty.replica_remove_store(store_code text, force boolean DEFAULT false)
    RETURNS void
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_remove_store';
COMMENT ON FUNCTION loyalty.replica_remove_store(text, boolean) IS
    'HQ: drop a store''s outbox subscription, publication and slot';

CREATE FUNCTION loyalty.replica_retry(event_id text DEFAULT NULL) RETURNS integer
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_retry';
COMMENT ON FUNCTION loyalty.replica_retry(text) IS
    'HQ: re-apply held and conflicting store events; returns how many are applied now';

CREATE FUNCTION loyalty.replica_set_mode(
    store_code text, mode text, window_start time DEFAULT NULL, window_end time DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['dba']);
    IF mode IS NULL OR mode NOT IN ('streaming', 'batch') THEN
        RAISE EXCEPTION 'invalid replication mode "%"', mode
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use streaming, or batch with a window.';
    END IF;
    IF (mode = 'batch') <> (window_start IS NOT NULL AND window_end IS NOT NULL)
       OR (mode = 'streaming' AND (window_start IS NOT NULL OR window_end IS NOT NULL)) THEN
        RAISE EXCEPTION 'batch mode needs a window, streaming mode takes none'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE loyalty.replica_store r
       SET mode = replica_set_mode.mode, window_start = replica_set_mode.window_start,
           window_end = replica_set_mode.window_end
     WHERE r.store_code = replica_set_mode.store_code;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'store "%" has no replica', store_code USING ERRCODE = 'no_data_found';
    END IF;
END
$$;
COMMENT ON FUNCTION loyalty.replica_set_mode(text, text, time, time) IS
    'HQ: streaming, or a nightly batch window (store local time) applied by the store''s store_window_tick()';

CREATE FUNCTION loyalty.replica_set_offline_cap(store_code text, points bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['dba', 'crm']);
    IF points IS NULL OR points < 0 THEN
        RAISE EXCEPTION 'offline redemption cap must be zero or more points'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE loyalty.replica_store r SET offline_redeem_cap = points
     WHERE r.store_code = replica_set_offline_cap.store_code;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'store "%" has no replica', store_code USING ERRCODE = 'no_data_found';
    END IF;
END
$$;
COMMENT ON FUNCTION loyalty.replica_set_offline_cap(text, bigint) IS
    'HQ: the most points one member may redeem at the store while its redemptions are unconfirmed';

-- The state of every store's replica.  A definer function, so that a DBA
-- login sees walsender details without pg_monitor.
CREATE FUNCTION loyalty._replica_status(
    OUT store_code text, OUT kind text, OUT mode text, OUT via_hub text, OUT slot_name name,
    OUT slot_status text, OUT wal_status text, OUT retained_wal_bytes bigint,
    OUT lag_bytes bigint, OUT lag_time interval, OUT last_reply timestamptz,
    OUT outbox_attached boolean, OUT outbox_last_message timestamptz,
    OUT last_event_id text, OUT last_event_at timestamptz,
    OUT events_applied bigint, OUT events_held bigint, OUT conflicts bigint,
    OUT rejected bigint, OUT redeliveries bigint)
    RETURNS SETOF record
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.store_code, r.kind, r.mode, r.via_hub, r.slot_name,
           CASE WHEN r.via_hub IS NOT NULL THEN 'via hub'
                WHEN s.slot_name IS NULL THEN 'no slot'
                WHEN s.wal_status = 'lost' THEN 'lost'
                WHEN s.active THEN 'streaming'
                ELSE 'disconnected' END,
           s.wal_status,
           pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::bigint,
           pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint,
           coalesce(w.replay_lag, w.flush_lag, w.write_lag,
                    CASE WHEN s.active AND s.confirmed_flush_lsn = pg_catalog.pg_current_wal_lsn()
                         THEN interval '0' END),
           w.reply_time,
           sub.oid IS NOT NULL,
           ss.last_msg_receipt_time,
           e.last_event_id, e.last_event_at,
           coalesce(e.applied, 0), coalesce(e.held, 0), coalesce(e.conflicts, 0),
           coalesce(e.rejected, 0), coalesce(e.redeliveries, 0)
      FROM loyalty.replica_store r
      LEFT JOIN pg_catalog.pg_replication_slots s ON s.slot_name = r.slot_name AND r.via_hub IS NULL
      LEFT JOIN pg_catalog.pg_stat_replication w ON w.pid = s.active_pid
      LEFT JOIN pg_catalog.pg_subscription sub
             ON sub.subname = 'loyalty_outbox_' || r.store_code
            AND sub.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d
                                WHERE d.datname = pg_catalog.current_database())
      LEFT JOIN pg_catalog.pg_stat_subscription ss ON ss.subid = sub.oid AND ss.relid IS NULL
      LEFT JOIN LATERAL (
            SELECT (pg_catalog.array_agg(x.event_id ORDER BY x.decided_at DESC)
                        FILTER (WHERE x.status = 'applied'))[1] AS last_event_id,
                   pg_catalog.max(x.decided_at) FILTER (WHERE x.status = 'applied') AS last_event_at,
                   pg_catalog.count(*) FILTER (WHERE x.status = 'applied') AS applied,
                   pg_catalog.count(*) FILTER (WHERE x.status = 'held') AS held,
                   pg_catalog.count(*) FILTER (WHERE x.status = 'conflict') AS conflicts,
                   pg_catalog.count(*) FILTER (WHERE x.status = 'rejected') AS rejected,
                   pg_catalog.sum(x.redeliveries) AS redeliveries
              FROM loyalty.outbox_result x
             WHERE x.store_code = r.store_code
                OR x.store_code IN (SELECT h.store_code FROM loyalty.replica_store h
                                     WHERE h.via_hub = r.store_code)) e ON true
     ORDER BY r.store_code
$$;
CREATE VIEW loyalty.replica_status AS SELECT * FROM loyalty._replica_status();
COMMENT ON VIEW loyalty.replica_status IS
    'HQ: every store replica''s slot, retained WAL, lag, outbox subscription and event verdicts';

-- Store mode.
CREATE FUNCTION loyalty.store_subscribe(hq_conninfo text, store_code text) RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_store_subscribe';
COMMENT ON FUNCTION loyalty.store_subscribe(text, text) IS
    'Store: become the replica of a store, subscribing to its publication at HQ (initial copy)';

CREATE FUNCTION loyalty.store_unsubscribe(drop_outbox_slot boolean DEFAULT false) RETURNS void
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_store_unsubscribe';
COMMENT ON FUNCTION loyalty.store_unsubscribe(boolean) IS
    'Store: drop the subscription to HQ (to re-seed), optionally the outbox slot (to leave)';

CREATE FUNCTION loyalty.store_window_tick() RETURNS text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_store_window_tick';
COMMENT ON FUNCTION loyalty.store_window_tick() IS
    'Store: enable the subscription inside the batch window, disable it outside (schedule with pg_cron)';

-- Append one event to the store's outbox.  Idempotent on idem_key.
CREATE FUNCTION loyalty._outbox_append(
    kind text, member_id uuid, payload jsonb, idem_key text, departments text[])
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    node loyalty.replica_node;
    prior loyalty.outbox;
    seq bigint;
    id text;
BEGIN
    SELECT * INTO node FROM loyalty.replica_node;
    IF NOT FOUND OR node.node_role <> 'store' THEN
        RAISE EXCEPTION 'this server is not a store replica'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'At headquarters, call the ledger, preference and tag functions directly.';
    END IF;
    PERFORM loyalty._check_access(node.store_code, departments);
    IF member_id IS NULL THEN
        RAISE EXCEPTION 'member_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = _outbox_append.member_id) THEN
        RAISE EXCEPTION 'member % is not known at this store', member_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'Members enrol at headquarters; the store receives them by replication.';
    END IF;
    IF idem_key IS NOT NULL AND (length(idem_key) NOT BETWEEN 1 AND 200) THEN
        RAISE EXCEPTION 'idempotency key must be 1 to 200 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        IF idem_key IS NOT NULL THEN
            SELECT * INTO prior FROM loyalty.outbox o
             WHERE o.store_code = node.store_code AND o.idem_key = _outbox_append.idem_key;
            IF FOUND THEN
                IF prior.kind = _outbox_append.kind AND prior.member_id = _outbox_append.member_id
                   AND prior.payload = _outbox_append.payload THEN
                    RETURN prior.event_id;
                END IF;
                RAISE EXCEPTION 'idempotency key "%" was used for another operation', idem_key
                    USING ERRCODE = 'unique_violation',
                          DETAIL = pg_catalog.format('It recorded event %s.', prior.event_id);
            END IF;
        END IF;
        seq := pg_catalog.nextval('loyalty.outbox_seq');
        id := node.store_code || '-' || node.incarnation || '-' || seq;
        BEGIN
            INSERT INTO loyalty.outbox (event_id, store_code, incarnation, seq, kind, member_id, payload, idem_key)
                VALUES (id, node.store_code, node.incarnation, seq, _outbox_append.kind,
                        _outbox_append.member_id, _outbox_append.payload, _outbox_append.idem_key);
            RETURN id;
        EXCEPTION WHEN unique_violation THEN
            -- a concurrent call with the same key committed first: return its event
            IF idem_key IS NULL THEN
                RAISE;
            END IF;
        END;
    END LOOP;
END
$$;

CREATE FUNCTION loyalty.store_record_preference(
    member_id uuid, category text, value text, scope text DEFAULT 'chain', idem_key text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF category IS NULL OR category NOT IN ('pillow', 'allergy', 'floor', 'lighting', 'bed', 'crib',
                                            'smoking', 'room', 'dining', 'other') THEN
        RAISE EXCEPTION 'invalid preference category "%"', category USING ERRCODE = 'invalid_parameter_value';
    ELSIF value IS NULL OR length(value) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'preference value must be 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    ELSIF scope IS NULL OR scope NOT IN ('chain', 'store') THEN
        RAISE EXCEPTION 'invalid preference scope "%"', scope
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use chain or store.';
    END IF;
    RETURN loyalty._outbox_append('preference', member_id,
        pg_catalog.jsonb_build_object('category', category, 'value', value, 'scope', scope),
        idem_key, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'dba']);
END
$$;
COMMENT ON FUNCTION loyalty.store_record_preference(uuid, text, text, text, text) IS
    'Store: record a guest preference in the outbox; returns the event id';

CREATE FUNCTION loyalty.store_raise_risk_tag(
    member_id uuid, risk_code text, note text, amount_owed numeric DEFAULT NULL,
    idem_key text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF risk_code IS NULL OR NOT EXISTS (SELECT 1 FROM loyalty.risk_type t WHERE t.risk_code = store_raise_risk_tag.risk_code) THEN
        RAISE EXCEPTION 'unknown risk type "%"', risk_code
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The risk types are listed in loyalty.risk_type.';
    ELSIF note IS NULL OR btrim(note) = '' THEN
        RAISE EXCEPTION 'note must not be empty' USING ERRCODE = 'invalid_parameter_value';
    ELSIF length(note) > 1000 THEN
        RAISE EXCEPTION 'note is longer than 1000 characters' USING ERRCODE = 'string_data_right_truncation';
    ELSIF amount_owed IS NOT NULL AND (amount_owed <= 0 OR amount_owed <> round(amount_owed, 2)
                                       OR amount_owed >= 10000000000) THEN
        RAISE EXCEPTION 'invalid amount owed %', amount_owed USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN loyalty._outbox_append('risk_tag', member_id,
        pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'risk_code', risk_code, 'note', note, 'amount_owed', amount_owed::text)),
        idem_key, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'dba']);
END
$$;
COMMENT ON FUNCTION loyalty.store_raise_risk_tag(uuid, text, text, numeric, text) IS
    'Store: raise a risk tag (e.g. an unresolved violation) in the outbox; HQ raises it with loyalty.raise_risk_tag()';

CREATE FUNCTION loyalty.store_accrue(
    member_id uuid, points bigint, source text DEFAULT 'stay', reference text DEFAULT NULL,
    idem_key text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF points IS NULL OR points <= 0 OR points > 100000000 THEN
        RAISE EXCEPTION 'points must be between 1 and 100000000' USING ERRCODE = 'invalid_parameter_value';
    ELSIF source IS NULL OR source NOT IN ('stay', 'spend') THEN
        RAISE EXCEPTION 'invalid accrual source "%"', source
            USING ERRCODE = 'invalid_parameter_value', HINT = 'A store records stay or spend accruals.';
    ELSIF reference IS NOT NULL AND length(reference) > 200 THEN
        RAISE EXCEPTION 'reference is longer than 200 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    RETURN loyalty._outbox_append('accrual', member_id,
        pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'points', points, 'source', source, 'reference', reference)),
        idem_key, ARRAY['frontdesk', 'fnb', 'store_manager', 'dba']);
END
$$;
COMMENT ON FUNCTION loyalty.store_accrue(uuid, bigint, text, text, text) IS
    'Store: record points earned in the outbox (provisional until HQ applies it); returns the event id';

-- What a member may still redeem at this store before HQ confirms: the
-- replicated balance and the store's offline cap, each less the
-- redemptions this store recorded that HQ has not yet decided.
CREATE FUNCTION loyalty.store_offline_redeemable(member_id uuid) RETURNS bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    node loyalty.replica_node;
    cap bigint;
    balance bigint;
    unconfirmed bigint;
BEGIN
    SELECT * INTO node FROM loyalty.replica_node;
    IF NOT FOUND OR node.node_role <> 'store' THEN
        RAISE EXCEPTION 'this server is not a store replica' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT r.offline_redeem_cap INTO cap FROM loyalty.replica_store r WHERE r.store_code = node.store_code;
    cap := coalesce(cap, 0);
    SELECT coalesce(sum((o.payload ->> 'points')::bigint), 0) INTO unconfirmed
      FROM loyalty.outbox o
      LEFT JOIN loyalty.outbox_result x USING (store_code, event_id)
     WHERE o.member_id = store_offline_redeemable.member_id AND o.kind = 'redemption'
       AND (x.status IS NULL OR x.status = 'held');
    IF pg_catalog.to_regclass('loyalty.point_balance') IS NOT NULL THEN
        SELECT b.balance INTO balance FROM loyalty.point_balance b
         WHERE b.member_id = store_offline_redeemable.member_id;
    END IF;
    RETURN greatest(0, least(cap, coalesce(balance, 0)) - unconfirmed);
END
$$;
COMMENT ON FUNCTION loyalty.store_offline_redeemable(uuid) IS
    'Store: points a member may redeem here before HQ confirms (offline limit)';

CREATE FUNCTION loyalty.store_redeem(
    member_id uuid, points bigint, reward text, idem_key text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    allowed bigint;
    minimum bigint;
    step bigint;
BEGIN
    IF points IS NULL OR points <= 0 OR points > 100000000 THEN
        RAISE EXCEPTION 'points must be between 1 and 100000000' USING ERRCODE = 'invalid_parameter_value';
    ELSIF reward IS NULL OR length(reward) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'reward must be 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the replicated policy's minimum and step, as HQ's ledger checks them
    SELECT (p -> 'redemption' ->> 'minimum_points')::bigint, (p -> 'redemption' ->> 'step_points')::bigint
      INTO minimum, step FROM loyalty.policy_at() p;
    IF points < minimum OR points % step <> 0 THEN
        RAISE EXCEPTION 'redemption of % points is below the minimum of % or not a multiple of %', points, minimum, step
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the same freeze check, message and SQLSTATE (LY001) as HQ's ledger
    IF member_id IS NOT NULL THEN
        PERFORM loyalty.assert_not_frozen(member_id, 'redemption');
    END IF;
    -- serialise this member's redemptions at this store
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('loyalty.store_redeem'),
                                             pg_catalog.hashtext(member_id::text));
    IF idem_key IS NULL OR NOT EXISTS (SELECT 1 FROM loyalty.outbox o WHERE o.idem_key = store_redeem.idem_key) THEN
        allowed := loyalty.store_offline_redeemable(member_id);
        IF points > allowed THEN
            RAISE EXCEPTION 'redemption of % points exceeds the offline limit', points
                USING ERRCODE = 'check_violation',
                      DETAIL = pg_catalog.format('At most %s points may be redeemed for this member here until headquarters confirms earlier redemptions.', allowed);
        END IF;
    END IF;
    RETURN loyalty._outbox_append('redemption', member_id,
        pg_catalog.jsonb_build_object('points', points, 'reward', reward),
        idem_key, ARRAY['frontdesk', 'fnb', 'store_manager', 'dba']);
END
$$;
COMMENT ON FUNCTION loyalty.store_redeem(uuid, bigint, text, text) IS
    'Store: redeem points within the offline limit, recorded in the outbox; returns the event id';

CREATE FUNCTION loyalty.store_use_benefit(
    member_id uuid, benefit text, detail jsonb DEFAULT '{}', idem_key text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    here text := (SELECT n.store_code FROM loyalty.replica_node n WHERE n.node_role = 'store');
    usable loyalty.usable_benefit;
BEGIN
    IF benefit IS NULL OR benefit !~ '^[a-z][a-z0-9_]{0,47}$' THEN
        RAISE EXCEPTION 'invalid benefit code "%"', benefit USING ERRCODE = 'invalid_parameter_value';
    ELSIF detail IS NULL OR pg_catalog.jsonb_typeof(detail) <> 'object' THEN
        RAISE EXCEPTION 'benefit detail must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- resolved on the replicated catalogue, tier and risk tags; limits are
    -- checked by HQ when the event arrives (a use beyond them is a conflict)
    IF here IS NOT NULL AND member_id IS NOT NULL THEN
        SELECT * INTO usable FROM loyalty.benefits(member_id, here) b WHERE b.benefit_code = store_use_benefit.benefit;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'benefit "%" is not available to this member at this store', benefit
                USING ERRCODE = 'no_data_found';
        ELSIF usable.frozen THEN
            RAISE EXCEPTION 'benefit "%" is frozen by an unresolved risk tag (%)', benefit, usable.frozen_by
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN loyalty._outbox_append('benefit_use', member_id,
        pg_catalog.jsonb_build_object('benefit', benefit, 'detail', detail),
        idem_key, ARRAY['frontdesk', 'fnb', 'store_manager', 'dba']);
END
$$;
COMMENT ON FUNCTION loyalty.store_use_benefit(uuid, text, jsonb, text) IS
    'Store: record a benefit used (voucher, late checkout) in the outbox; HQ applies it with loyalty.use_benefit()';

-- The store's events and HQ's verdict on each: pending until HQ decides.
CREATE VIEW loyalty.store_outbox_status WITH (security_barrier) AS
SELECT o.event_id, o.store_code, o.kind, o.member_id, o.payload, o.recorded_at, o.recorded_by,
       coalesce(x.status, 'pending') AS status, x.sqlstate, x.detail, x.decided_at, x.redeliveries
  FROM loyalty.outbox o
  LEFT JOIN loyalty.outbox_result x USING (store_code, event_id)
 WHERE o.store_code = (SELECT n.store_code FROM loyalty.replica_node n);
COMMENT ON VIEW loyalty.store_outbox_status IS
    'Store: every event recorded here and HQ''s verdict (pending, applied, conflict, rejected, held)';

-- A store's preferences as staff see them: HQ's (replicated) plus what
-- was recorded here and is not yet back from HQ.
CREATE VIEW loyalty.store_member_preferences WITH (security_barrier) AS
SELECT p.member_id, p.category, p.value, p.scope, p.store_code, p.recorded_at, false AS provisional
  FROM loyalty.member_preference p
 WHERE p.retired_at IS NULL
UNION ALL
SELECT o.member_id, o.payload ->> 'category', o.payload ->> 'value', o.payload ->> 'scope',
       o.store_code, o.recorded_at, true
  FROM loyalty.store_outbox_status o
 WHERE o.kind = 'preference' AND o.status IN ('pending', 'held');
COMMENT ON VIEW loyalty.store_member_preferences IS
    'Store: preferences known here, including those recorded here and not yet confirmed by HQ';

-- The store's side of replication.
CREATE FUNCTION loyalty._store_replica_state(
    OUT store_code text, OUT subscription name, OUT enabled boolean,
    OUT last_message timestamptz, OUT hq_wal_time timestamptz,
    OUT events_pending bigint, OUT oldest_pending timestamptz,
    OUT events_applied bigint, OUT conflicts bigint, OUT rejected bigint)
    RETURNS SETOF record
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.store_code, sub.subname, sub.subenabled, ss.last_msg_receipt_time, ss.latest_end_time,
           e.pending, e.oldest, e.applied, e.conflicts, e.rejected
      FROM loyalty.replica_node n
      LEFT JOIN pg_catalog.pg_subscription sub ON sub.subname = 'loyalty_store_' || n.store_code
      LEFT JOIN pg_catalog.pg_stat_subscription ss ON ss.subid = sub.oid AND ss.relid IS NULL
      LEFT JOIN LATERAL (
            SELECT pg_catalog.count(*) FILTER (WHERE s.status IN ('pending', 'held')) AS pending,
                   pg_catalog.min(s.recorded_at) FILTER (WHERE s.status IN ('pending', 'held')) AS oldest,
                   pg_catalog.count(*) FILTER (WHERE s.status = 'applied') AS applied,
                   pg_catalog.count(*) FILTER (WHERE s.status = 'conflict') AS conflicts,
                   pg_catalog.count(*) FILTER (WHERE s.status = 'rejected') AS rejected
              FROM loyalty.store_outbox_status s) e ON true
$$;
CREATE VIEW loyalty.store_replica_state AS SELECT * FROM loyalty._store_replica_state();
COMMENT ON VIEW loyalty.store_replica_state IS
    'Store: the subscription to HQ and the outbox events pending, applied and in conflict';

-- Remove events HQ has applied, older than keep; never pending ones.
CREATE FUNCTION loyalty.store_prune_outbox(keep interval DEFAULT '30 days') RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['dba']);
    IF keep IS NULL OR keep < interval '0' THEN
        RAISE EXCEPTION 'keep must be a non-negative interval' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_catalog.set_config('loyalty.outbox_prune', 'on', true);
    DELETE FROM loyalty.outbox o
     USING loyalty.outbox_result x
     WHERE x.store_code = o.store_code AND x.event_id = o.event_id
       AND x.status = 'applied' AND x.decided_at < pg_catalog.now() - keep
       AND EXISTS (SELECT 1 FROM loyalty.replica_node n WHERE n.node_role = 'store');
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM pg_catalog.set_config('loyalty.outbox_prune', 'off', true);
    RETURN n;
END
$$;
COMMENT ON FUNCTION loyalty.store_prune_outbox(interval) IS
    'Store: drop outbox events HQ applied more than keep ago (the deletes are not published)';

REVOKE ALL ON FUNCTION loyalty._outbox_receive(), loyalty._outbox_append_only(),
    loyalty.replica_add_store(text, bigint, text), loyalty.replica_create_slot(text),
    loyalty.replica_attach_outbox(text, text), loyalty.replica_remove_store(text, boolean),
    loyalty.replica_retry(text), loyalty.replica_set_mode(text, text, time, time),
    loyalty.replica_set_offline_cap(text, bigint), loyalty._replica_status(),
    loyalty.replica_add_hub(text), loyalty.hub_subscribe(text, text),
    loyalty.store_subscribe(text, text), loyalty.store_unsubscribe(boolean),
    loyalty.store_window_tick(), loyalty._outbox_append(text, uuid, jsonb, text, text[]),
    loyalty.store_record_preference(uuid, text, text, text, text),
    loyalty.store_raise_risk_tag(uuid, text, text, numeric, text),
    loyalty.store_accrue(uuid, bigint, text, text, text),
    loyalty.store_offline_redeemable(uuid),
    loyalty.store_redeem(uuid, bigint, text, text),
    loyalty.store_use_benefit(uuid, text, jsonb, text),
    loyalty._store_replica_state(), loyalty.store_prune_outbox(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_add_store(text, bigint, text), loyalty.replica_create_slot(text),
    loyalty.replica_attach_outbox(text, text), loyalty.replica_remove_store(text, boolean),
    loyalty.replica_retry(text), loyalty.replica_set_mode(text, text, time, time),
    loyalty.replica_set_offline_cap(text, bigint), loyalty._replica_status(),
    loyalty.store_subscribe(text, text), loyalty.store_unsubscribe(boolean),
    loyalty.store_window_tick(), loyalty._store_replica_state(),
    loyalty.replica_add_hub(text), loyalty.hub_subscribe(text, text),
    loyalty.store_prune_outbox(interval) TO loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.replica_set_offline_cap(text, bigint) TO loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.store_record_preference(uuid, text, text, text, text)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.store_raise_risk_tag(uuid, text, text, numeric, text)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.store_accrue(uuid, bigint, text, text, text),
    loyalty.store_offline_redeemable(uuid), loyalty.store_redeem(uuid, bigint, text, text),
    loyalty.store_use_benefit(uuid, text, jsonb, text)
    TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_dba;
GRANT SELECT ON loyalty.replica_status TO loyalty_dba;
GRANT SELECT ON loyalty.store_replica_state TO loyalty_dba, loyalty_store_manager;
GRANT SELECT ON loyalty.store_outbox_status, loyalty.store_member_preferences
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_dba;
GRANT SELECT ON loyalty.replica_store, loyalty.outbox_result TO loyalty_dba;

-- At a store replica, its department roles appear with its store row
-- (src/store_mode_roles.c).
CREATE FUNCTION loyalty._store_arrived() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'loyalty_store_arrived';
REVOKE ALL ON FUNCTION loyalty._store_arrived() FROM PUBLIC;
CREATE TRIGGER store_arrived
    AFTER INSERT ON loyalty.store
    FOR EACH ROW EXECUTE FUNCTION loyalty._store_arrived();
ALTER TABLE loyalty.store ENABLE ALWAYS TRIGGER store_arrived;
-- Store-mode views that show member data are owned by loyalty_view_owner,
-- which cannot bypass row level security (docs/privacy.md).  The DBA views
-- over replication statistics (replica_status, store_replica_state) stay
-- with the extension owner: they read pg_replication_slots and
-- pg_stat_subscription, and hold no member data.
GRANT SELECT ON loyalty.outbox, loyalty.outbox_result, loyalty.replica_node TO loyalty_view_owner;
ALTER VIEW loyalty.store_outbox_status OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.store_member_preferences OWNER TO loyalty_view_owner;
-- Schedules: the extension's batch jobs as pg_cron jobs (docs/operations.md).
--
-- pg_cron is optional: these functions look it up when called and say
-- clearly when it is missing.  pg_cron runs a job as the role that
-- scheduled it, so the functions run with the caller's rights (SECURITY
-- INVOKER): the jobs run as the HQ DBA or CRM login that installed them,
-- never as a superuser by accident.  Times are GMT (pg_cron 1.4).

CREATE FUNCTION loyalty.job_schedule_defaults(
    OUT job_name text, OUT schedule text, OUT command text, OUT what text)
    RETURNS SETOF record
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    VALUES
    ('loyalty-activate-due', '*/15 * * * *',
     $c$SELECT loyalty.activate_due('cron-activate-' || to_char(now(), 'YYYYMMDDHH24MI'))$c$,
     'activate pending points whose activation date has come'),
    ('loyalty-requalify', '30 18 * * *',
     $c$CALL loyalty.tier_requalify()$c$,
     'requalify every member: upgrades the counters earn, downgrades of ended validity (02:30 in China)'),
    ('loyalty-expire', '0 19 * * *',
     $c$SELECT loyalty.expire_points('cron-expire-' || current_date)$c$,
     'expire points and send expiry notices (03:00 in China)'),
    ('loyalty-retention', '0 20 * * 0',
     $c$SELECT * FROM loyalty.retention_purge(false)$c$,
     'purge personal data past its retention period (Sundays, 04:00 in China)')
$$;
COMMENT ON FUNCTION loyalty.job_schedule_defaults() IS
    'The batch jobs loyalty.schedule_jobs() installs, with their pg_cron schedules (GMT)';

CREATE FUNCTION loyalty._require_pg_cron() RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, and CREATE EXTENSION pg_cron here.';
    END IF;
END
$$;

CREATE FUNCTION loyalty.schedule_jobs()
    RETURNS TABLE (job_name text, schedule text, command text, jobid bigint)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j record;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    PERFORM loyalty._require_pg_cron();
    FOR j IN SELECT * FROM loyalty.job_schedule_defaults() LOOP
        job_name := j.job_name;
        schedule := j.schedule;
        command := j.command;
        -- scheduling a name again replaces the job of that name
        EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO jobid
            USING j.job_name, j.schedule, j.command;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION loyalty.schedule_jobs() IS
    'Install (or replace) the extension''s pg_cron jobs; they run as the caller';

CREATE FUNCTION loyalty.scheduled_jobs()
    RETURNS TABLE (jobid bigint, job_name text, schedule text, command text, run_as text,
                   active boolean, last_status text, last_start timestamptz, last_message text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    PERFORM loyalty._require_pg_cron();
    RETURN QUERY EXECUTE
        'SELECT j.jobid, j.jobname::text, j.schedule, j.command, j.username::text, j.active,
                r.status, r.start_time, r.return_message
           FROM cron.job j
           LEFT JOIN LATERAL (SELECT d.status, d.start_time, d.return_message
                                FROM cron.job_run_details d WHERE d.jobid = j.jobid
                               ORDER BY d.start_time DESC LIMIT 1) r ON true
          WHERE j.jobname LIKE $1
          ORDER BY j.jobname'
        USING 'loyalty-%';
END
$$;
COMMENT ON FUNCTION loyalty.scheduled_jobs() IS
    'The extension''s pg_cron jobs with their last run';

CREATE FUNCTION loyalty.unschedule_jobs() RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer := 0;
    name text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    PERFORM loyalty._require_pg_cron();
    FOR name IN EXECUTE 'SELECT jobname FROM cron.job WHERE jobname LIKE $1' USING 'loyalty-%' LOOP
        EXECUTE 'SELECT cron.unschedule($1)' USING name;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION loyalty.unschedule_jobs() IS
    'Remove every pg_cron job of the extension; returns how many';

REVOKE ALL ON FUNCTION loyalty.job_schedule_defaults(), loyalty._require_pg_cron(),
    loyalty.schedule_jobs(), loyalty.scheduled_jobs(), loyalty.unschedule_jobs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.job_schedule_defaults(), loyalty._require_pg_cron(),
    loyalty.schedule_jobs(), loyalty.scheduled_jobs(), loyalty.unschedule_jobs()
    TO loyalty_crm, loyalty_dba;
-- the schedule functions run with the caller's rights and check them first
GRANT EXECUTE ON FUNCTION loyalty._check_access(text, text[]) TO loyalty_crm, loyalty_dba;
