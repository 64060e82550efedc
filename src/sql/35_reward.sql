-- Rewards (docs/rewards.md, issue 17): the catalogue of what points buy,
-- free nights priced by store category and season, inventory per reward,
-- store and date, redemptions, and the vouchers and certificates members
-- hold (from a redemption or awarded by HQ).  The rules are C
-- (src/reward_*.c); this file is the shape: tables,
-- views, grants, and the catalogue maintenance functions.
--
-- No store or HQ role holds a privilege on these tables: they are written
-- and read through the functions below.

-- The idempotency record of every mutating rewards function: the key, the
-- operation and its arguments, and the result returned the first time.
CREATE TABLE loyalty.reward_request (
    idempotency_key text PRIMARY KEY
        CONSTRAINT reward_request_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    operation       text NOT NULL,
    args            text NOT NULL,
    result          jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.reward_request IS 'Idempotency keys of rewards calls and the result each returned';
SELECT pg_catalog.pg_extension_config_dump('loyalty.reward_request', '');

-- A store's category (1 = the most affordable), which prices free nights.
CREATE TABLE loyalty.store_category (
    store_code text PRIMARY KEY REFERENCES loyalty.store ON DELETE CASCADE,
    category   smallint NOT NULL
        CONSTRAINT store_category_range CHECK (category BETWEEN 1 AND 10),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.store_category IS 'Award category of each store (1 to 10), which prices free nights';
SELECT pg_catalog.pg_extension_config_dump('loyalty.store_category', '');

-- The season calendar: peak periods, chain-wide (store_code NULL) or for
-- one store.  Every other date is standard.
CREATE TABLE loyalty.reward_season (
    season_id  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    store_code text REFERENCES loyalty.store ON DELETE CASCADE,
    name       text NOT NULL
        CONSTRAINT reward_season_name_length CHECK (length(name) BETWEEN 1 AND 200),
    first_day  date NOT NULL,
    last_day   date NOT NULL,
    CONSTRAINT reward_season_days CHECK (first_day <= last_day AND last_day - first_day < 366)
);
COMMENT ON TABLE loyalty.reward_season IS 'Peak periods of the award calendar (chain-wide or one store); other dates are standard';
CREATE INDEX reward_season_days_idx ON loyalty.reward_season (first_day, last_day);
SELECT pg_catalog.pg_extension_config_dump('loyalty.reward_season', '');

-- The catalogue.  points: the fixed price (NULL for a free night priced by
-- loyalty.reward_night_price, or for an award-only reward); cash_max: the
-- most of the price a member may pay in cash at the single rate (points +
-- cash; NULL: points only).
CREATE TABLE loyalty.reward (
    reward_code      text PRIMARY KEY
        CONSTRAINT reward_code_format CHECK (reward_code ~ '^[a-z][a-z0-9_]{0,47}$'),
    name             text NOT NULL
        CONSTRAINT reward_name_length CHECK (length(name) BETWEEN 1 AND 200),
    kind             text NOT NULL
        CONSTRAINT reward_kind_valid CHECK (kind IN
            ('free_night', 'fnb_voucher', 'gift', 'upgrade', 'experience')),
    points           bigint
        CONSTRAINT reward_points_range CHECK (points BETWEEN 1 AND 100000000),
    cash_max         numeric
        CONSTRAINT reward_cash_max_positive CHECK (cash_max > 0),
    valid_from       timestamptz NOT NULL DEFAULT '-infinity',
    valid_until      timestamptz NOT NULL DEFAULT 'infinity',
    member_limit     integer
        CONSTRAINT reward_member_limit_positive CHECK (member_limit > 0),
    member_limit_per text
        CONSTRAINT reward_member_limit_per_valid CHECK (member_limit_per IN ('year', 'ever')),
    total_limit      integer
        CONSTRAINT reward_total_limit_positive CHECK (total_limit > 0),
    redeemed         integer NOT NULL DEFAULT 0,
    nightly_capacity integer
        CONSTRAINT reward_nightly_capacity_range CHECK (nightly_capacity >= 0),
    voucher_days     integer NOT NULL DEFAULT 365
        CONSTRAINT reward_voucher_days_range CHECK (voucher_days BETWEEN 1 AND 3660),
    description      text
        CONSTRAINT reward_description_length CHECK (length(description) <= 1000),
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       name NOT NULL DEFAULT session_user,
    CONSTRAINT reward_window CHECK (valid_from < valid_until),
    CONSTRAINT reward_member_limit_pair CHECK ((member_limit IS NULL) = (member_limit_per IS NULL)),
    CONSTRAINT reward_redeemed_range CHECK (redeemed >= 0 AND redeemed <= coalesce(total_limit, redeemed))
);
COMMENT ON TABLE loyalty.reward IS 'Reward catalogue: what points buy, at which price, where, when and how many';
SELECT pg_catalog.pg_extension_config_dump('loyalty.reward', '');

-- The stores a reward is offered at; none: every store.
CREATE TABLE loyalty.reward_store (
    reward_code text NOT NULL REFERENCES loyalty.reward ON DELETE CASCADE,
    store_code  text NOT NULL REFERENCES loyalty.store ON DELETE CASCADE,
    PRIMARY KEY (reward_code, store_code)
);
COMMENT ON TABLE loyalty.reward_store IS 'Stores a reward is offered at (no row: every store)';
SELECT pg_catalog.pg_extension_config_dump('loyalty.reward_store', '');

-- Free-night prices by store category and season.
CREATE TABLE loyalty.reward_night_price (
    reward_code text NOT NULL REFERENCES loyalty.reward ON DELETE CASCADE,
    category    smallint NOT NULL
        CONSTRAINT reward_night_price_category CHECK (category BETWEEN 1 AND 10),
    season      text NOT NULL
        CONSTRAINT reward_night_price_season CHECK (season IN ('standard', 'peak')),
    points      bigint NOT NULL
        CONSTRAINT reward_night_price_points CHECK (points BETWEEN 1 AND 100000000),
    PRIMARY KEY (reward_code, category, season)
);
COMMENT ON TABLE loyalty.reward_night_price IS 'Free-night price in points by store category and season';
SELECT pg_catalog.pg_extension_config_dump('loyalty.reward_night_price', '');

-- Inventory: capacity per reward, store and date, and how much of it
-- redemptions hold.  A row is created from the reward's nightly_capacity
-- at the first redemption of the date, or set by reward_capacity_set().
CREATE TABLE loyalty.reward_inventory (
    reward_code text NOT NULL REFERENCES loyalty.reward ON DELETE CASCADE,
    store_code  text NOT NULL REFERENCES loyalty.store ON DELETE CASCADE,
    day         date NOT NULL,
    capacity    integer NOT NULL
        CONSTRAINT reward_inventory_capacity CHECK (capacity >= 0),
    reserved    integer NOT NULL DEFAULT 0,
    CONSTRAINT reward_inventory_reserved CHECK (reserved >= 0 AND reserved <= capacity),
    PRIMARY KEY (reward_code, store_code, day)
);
COMMENT ON TABLE loyalty.reward_inventory IS 'Capacity of a reward per store and date, and the units redemptions hold';
SELECT pg_catalog.pg_extension_config_dump('loyalty.reward_inventory', '');

-- Vouchers and certificates: what a member holds, from a redemption or an
-- award.  code: 16 digits, the last a Luhn check digit.
CREATE TABLE loyalty.voucher (
    voucher_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code           text NOT NULL
        CONSTRAINT voucher_code_format CHECK (code ~ '^[1-9][0-9]{15}$'),
    member_id      uuid NOT NULL REFERENCES loyalty.member,
    reward_code    text NOT NULL REFERENCES loyalty.reward,
    store_code     text REFERENCES loyalty.store,
    day            date,
    source         text NOT NULL
        CONSTRAINT voucher_source_valid CHECK (source IN ('redemption', 'award')),
    reason         text
        CONSTRAINT voucher_reason_length CHECK (length(reason) <= 200),
    state          text NOT NULL DEFAULT 'issued'
        CONSTRAINT voucher_state_valid CHECK (state IN ('issued', 'used', 'expired', 'cancelled')),
    issued_at      timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    used_store     text REFERENCES loyalty.store,
    notice_sent_at timestamptz,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    issued_by      name NOT NULL DEFAULT session_user,
    CONSTRAINT voucher_code_key UNIQUE (code),
    CONSTRAINT voucher_used_has_store CHECK ((state = 'used') = (used_at IS NOT NULL AND used_store IS NOT NULL))
);
COMMENT ON TABLE loyalty.voucher IS 'Vouchers and certificates members hold: code, owner, store, expiry and state';
CREATE INDEX voucher_member_idx ON loyalty.voucher (member_id, issued_at);
CREATE INDEX voucher_expiry_idx ON loyalty.voucher (expires_at) WHERE state = 'issued';
SELECT pg_catalog.pg_extension_config_dump('loyalty.voucher', '');

-- Redemptions of catalogue rewards.
CREATE TABLE loyalty.reward_redemption (
    redemption_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id       uuid NOT NULL REFERENCES loyalty.member,
    store_code      text NOT NULL REFERENCES loyalty.store,
    reward_code     text NOT NULL REFERENCES loyalty.reward,
    day             date NOT NULL,
    season          text,
    points          bigint NOT NULL,
    cash_amount     numeric,
    entry_id        uuid NOT NULL,
    voucher_id      uuid NOT NULL REFERENCES loyalty.voucher,
    inventory_held  boolean NOT NULL,
    state           text NOT NULL DEFAULT 'redeemed'
        CONSTRAINT reward_redemption_state_valid CHECK (state IN ('redeemed', 'cancelled')),
    redeemed_at     timestamptz NOT NULL DEFAULT now(),
    cancelled_at    timestamptz,
    refund_entry_id uuid,
    redeemed_by     name NOT NULL DEFAULT session_user,
    CONSTRAINT reward_redemption_cancelled CHECK ((state = 'cancelled') = (cancelled_at IS NOT NULL))
);
COMMENT ON TABLE loyalty.reward_redemption IS 'Redemptions of catalogue rewards: points debited, inventory held, voucher issued';
CREATE INDEX reward_redemption_member_idx ON loyalty.reward_redemption (member_id, reward_code, redeemed_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.reward_redemption', '');

-- The idempotency helpers (C, src/reward_request.c), for the PL/pgSQL
-- catalogue functions: _reward_request returns the stored result of a key
-- (NULL if the key is new; an error if it was used for another request),
-- _reward_request_save stores one.
CREATE FUNCTION loyalty._reward_request(idempotency_key text, operation text, args text)
    RETURNS jsonb
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_reward_request';
CREATE FUNCTION loyalty._reward_request_save(idempotency_key text, operation text, args text,
    result jsonb)
    RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_reward_request_save';

-- Catalogue maintenance (HQ CRM and marketing).

CREATE FUNCTION loyalty.reward_define(
    idempotency_key text, reward_code text, name text, kind text,
    points bigint DEFAULT NULL, cash_max numeric DEFAULT NULL,
    valid_from timestamptz DEFAULT '-infinity', valid_until timestamptz DEFAULT 'infinity',
    stores text[] DEFAULT NULL, member_limit integer DEFAULT NULL,
    member_limit_per text DEFAULT NULL, total_limit integer DEFAULT NULL,
    nightly_capacity integer DEFAULT NULL, voucher_days integer DEFAULT 365,
    description text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text := pg_catalog.jsonb_build_array(reward_code, name, kind, points, cash_max,
        valid_from, valid_until, stores, member_limit, member_limit_per, total_limit,
        nightly_capacity, voucher_days, description)::text;
    s text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    IF loyalty._reward_request(idempotency_key, 'reward_define', args) IS NOT NULL THEN
        RETURN reward_code;
    END IF;
    IF reward_code IS NULL OR name IS NULL OR kind IS NULL THEN
        RAISE EXCEPTION 'reward_code, name and kind must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF reward_code !~ '^[a-z][a-z0-9_]{0,47}$' THEN
        RAISE EXCEPTION 'invalid reward code "%"', reward_code USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A reward code is 1 to 48 lowercase letters, digits or underscores, starting with a letter.';
    END IF;
    IF kind NOT IN ('free_night', 'fnb_voucher', 'gift', 'upgrade', 'experience') THEN
        RAISE EXCEPTION 'unknown reward kind "%"', kind USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Kinds are free_night, fnb_voucher, gift, upgrade and experience.';
    END IF;
    IF EXISTS (SELECT 1 FROM loyalty.reward r WHERE r.reward_code = reward_define.reward_code) THEN
        RAISE EXCEPTION 'reward "%" already exists', reward_code USING ERRCODE = 'duplicate_object';
    END IF;
    IF valid_from IS NULL OR valid_until IS NULL OR valid_from >= valid_until THEN
        RAISE EXCEPTION 'a reward must be valid for some time' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'valid_from must be earlier than valid_until.';
    END IF;
    IF (member_limit IS NULL) <> (member_limit_per IS NULL) THEN
        RAISE EXCEPTION 'member_limit and member_limit_per go together' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cash_max IS NOT NULL AND points IS NULL AND kind <> 'free_night' THEN
        RAISE EXCEPTION 'points + cash needs a price in points' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF stores IS NOT NULL AND cardinality(stores) = 0 THEN
        RAISE EXCEPTION 'stores must name at least one store, or be NULL for every store'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF stores IS NOT NULL AND (SELECT count(DISTINCT x) FROM unnest(stores) x) <> cardinality(stores) THEN
        RAISE EXCEPTION 'stores names a store twice' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH s IN ARRAY coalesce(stores, '{}') LOOP
        IF NOT EXISTS (SELECT 1 FROM loyalty.store t WHERE t.store_code = s) THEN
            RAISE EXCEPTION 'store "%" does not exist', s USING ERRCODE = 'no_data_found';
        END IF;
    END LOOP;
    INSERT INTO loyalty.reward (reward_code, name, kind, points, cash_max, valid_from, valid_until,
                                member_limit, member_limit_per, total_limit, nightly_capacity,
                                voucher_days, description)
        VALUES (reward_code, name, kind, points, cash_max, valid_from, valid_until,
                member_limit, member_limit_per, total_limit, nightly_capacity,
                voucher_days, description);
    INSERT INTO loyalty.reward_store (reward_code, store_code)
        SELECT reward_define.reward_code, x FROM unnest(stores) x;
    PERFORM loyalty._audit_change(NULL, 'reward_define', 'loyalty',
        pg_catalog.jsonb_build_object('reward_code', reward_code, 'kind', kind, 'points', points));
    PERFORM loyalty._reward_request_save(idempotency_key, 'reward_define', args,
        pg_catalog.jsonb_build_object('reward_code', reward_code));
    RETURN reward_code;
END
$$;
COMMENT ON FUNCTION loyalty.reward_define(text, text, text, text, bigint, numeric, timestamptz,
    timestamptz, text[], integer, text, integer, integer, integer, text) IS
    'Add a reward to the catalogue (price, points + cash, validity, stores, limits, capacity)';

CREATE FUNCTION loyalty.reward_end(idempotency_key text, reward_code text,
    at timestamptz DEFAULT now())
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text := pg_catalog.jsonb_build_array(reward_code, at)::text;
    r loyalty.reward;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    IF loyalty._reward_request(idempotency_key, 'reward_end', args) IS NOT NULL THEN
        RETURN;
    END IF;
    SELECT * INTO r FROM loyalty.reward x WHERE x.reward_code = reward_end.reward_code FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'reward "%" does not exist', reward_code USING ERRCODE = 'no_data_found';
    END IF;
    IF at IS NULL OR at <= r.valid_from OR at > r.valid_until THEN
        RAISE EXCEPTION 'reward "%" cannot end at that time', reward_code USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'The end must fall after the reward''s start and not after its current end.';
    END IF;
    UPDATE loyalty.reward x SET valid_until = at WHERE x.reward_code = r.reward_code;
    PERFORM loyalty._audit_change(NULL, 'reward_end', 'loyalty',
        pg_catalog.jsonb_build_object('reward_code', reward_code, 'at', at));
    PERFORM loyalty._reward_request_save(idempotency_key, 'reward_end', args, '{}');
END
$$;
COMMENT ON FUNCTION loyalty.reward_end(text, text, timestamptz) IS
    'End a reward''s validity (redemptions after that time are refused; vouchers already issued stay valid)';

CREATE FUNCTION loyalty.reward_night_price_set(idempotency_key text, reward_code text,
    category smallint, season text, points bigint)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text := pg_catalog.jsonb_build_array(reward_code, category, season, points)::text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    IF loyalty._reward_request(idempotency_key, 'reward_night_price_set', args) IS NOT NULL THEN
        RETURN;
    END IF;
    IF reward_code IS NULL OR category IS NULL OR season IS NULL OR points IS NULL THEN
        RAISE EXCEPTION 'reward_code, category, season and points must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.reward r WHERE r.reward_code = reward_night_price_set.reward_code
                      AND r.kind = 'free_night') THEN
        RAISE EXCEPTION 'free-night reward "%" does not exist', reward_code USING ERRCODE = 'no_data_found';
    END IF;
    IF category NOT BETWEEN 1 AND 10 OR season NOT IN ('standard', 'peak') OR points NOT BETWEEN 1 AND 100000000 THEN
        RAISE EXCEPTION 'invalid free-night price' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'The category is 1 to 10, the season standard or peak, the points 1 to 100,000,000.';
    END IF;
    INSERT INTO loyalty.reward_night_price AS p (reward_code, category, season, points)
        VALUES (reward_code, category, season, points)
        ON CONFLICT ON CONSTRAINT reward_night_price_pkey DO UPDATE SET points = excluded.points;
    PERFORM loyalty._audit_change(NULL, 'reward_night_price_set', 'loyalty',
        pg_catalog.jsonb_build_object('reward_code', reward_code, 'category', category,
                                      'season', season, 'points', points));
    PERFORM loyalty._reward_request_save(idempotency_key, 'reward_night_price_set', args, '{}');
END
$$;
COMMENT ON FUNCTION loyalty.reward_night_price_set(text, text, smallint, text, bigint) IS
    'Set the points price of a free night for a store category and season';

CREATE FUNCTION loyalty.store_category_set(idempotency_key text, store_code text, category smallint)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text := pg_catalog.jsonb_build_array(store_code, category)::text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing', 'dba']);
    IF loyalty._reward_request(idempotency_key, 'store_category_set', args) IS NOT NULL THEN
        RETURN;
    END IF;
    IF store_code IS NULL OR category IS NULL THEN
        RAISE EXCEPTION 'store_code and category must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.store s WHERE s.store_code = store_category_set.store_code) THEN
        RAISE EXCEPTION 'store "%" does not exist', store_code USING ERRCODE = 'no_data_found';
    END IF;
    IF category NOT BETWEEN 1 AND 10 THEN
        RAISE EXCEPTION 'store category must be 1 to 10' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO loyalty.store_category AS c (store_code, category) VALUES (store_code, category)
        ON CONFLICT ON CONSTRAINT store_category_pkey
        DO UPDATE SET category = excluded.category, updated_at = now();
    PERFORM loyalty._audit_change(NULL, 'store_category_set', 'loyalty',
        pg_catalog.jsonb_build_object('store_code', store_code, 'category', category));
    PERFORM loyalty._reward_request_save(idempotency_key, 'store_category_set', args, '{}');
END
$$;
COMMENT ON FUNCTION loyalty.store_category_set(text, text, smallint) IS
    'Set a store''s award category (1 to 10), which prices its free nights';

CREATE FUNCTION loyalty.reward_season_add(idempotency_key text, name text, first_day date,
    last_day date, store_code text DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text := pg_catalog.jsonb_build_array(name, first_day, last_day, store_code)::text;
    prior jsonb;
    id uuid;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    prior := loyalty._reward_request(idempotency_key, 'reward_season_add', args);
    IF prior IS NOT NULL THEN
        RETURN (prior ->> 'season_id')::uuid;
    END IF;
    IF name IS NULL OR first_day IS NULL OR last_day IS NULL THEN
        RAISE EXCEPTION 'name, first_day and last_day must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF first_day > last_day OR last_day - first_day >= 366 OR NOT isfinite(first_day) OR NOT isfinite(last_day) THEN
        RAISE EXCEPTION 'a peak period is 1 to 366 days, first_day not after last_day'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF store_code IS NOT NULL AND NOT EXISTS (SELECT 1 FROM loyalty.store s WHERE s.store_code = reward_season_add.store_code) THEN
        RAISE EXCEPTION 'store "%" does not exist', store_code USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO loyalty.reward_season (store_code, name, first_day, last_day)
        VALUES (store_code, name, first_day, last_day) RETURNING season_id INTO id;
    PERFORM loyalty._audit_change(NULL, 'reward_season_add', 'loyalty',
        pg_catalog.jsonb_build_object('season_id', id, 'store_code', store_code,
                                      'first_day', first_day, 'last_day', last_day));
    PERFORM loyalty._reward_request_save(idempotency_key, 'reward_season_add', args,
        pg_catalog.jsonb_build_object('season_id', id));
    RETURN id;
END
$$;
COMMENT ON FUNCTION loyalty.reward_season_add(text, text, date, date, text) IS
    'Add a peak period to the award calendar, chain-wide or for one store';

CREATE FUNCTION loyalty.reward_capacity_set(idempotency_key text, reward_code text,
    store_code text, day date, capacity integer)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text := pg_catalog.jsonb_build_array(reward_code, store_code, day, capacity)::text;
    held integer;
BEGIN
    PERFORM loyalty._check_access(store_code, ARRAY['store_manager', 'crm', 'marketing']);
    IF loyalty._reward_request(idempotency_key, 'reward_capacity_set', args) IS NOT NULL THEN
        RETURN;
    END IF;
    IF reward_code IS NULL OR store_code IS NULL OR day IS NULL OR capacity IS NULL THEN
        RAISE EXCEPTION 'reward_code, store_code, day and capacity must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.reward r WHERE r.reward_code = reward_capacity_set.reward_code) THEN
        RAISE EXCEPTION 'reward "%" does not exist', reward_code USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.store s WHERE s.store_code = reward_capacity_set.store_code) THEN
        RAISE EXCEPTION 'store "%" does not exist', store_code USING ERRCODE = 'no_data_found';
    END IF;
    IF capacity < 0 OR NOT isfinite(day) THEN
        RAISE EXCEPTION 'capacity must not be negative' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- lock the row the redemptions update, then check what they hold
    INSERT INTO loyalty.reward_inventory (reward_code, store_code, day, capacity)
        VALUES (reward_code, store_code, day, capacity)
        ON CONFLICT ON CONSTRAINT reward_inventory_pkey DO NOTHING;
    SELECT i.reserved INTO held FROM loyalty.reward_inventory i
     WHERE i.reward_code = reward_capacity_set.reward_code AND i.store_code = reward_capacity_set.store_code
       AND i.day = reward_capacity_set.day FOR UPDATE;
    IF held > capacity THEN
        RAISE EXCEPTION 'capacity % is below the % units already redeemed', capacity, held
            USING ERRCODE = 'check_violation';
    END IF;
    UPDATE loyalty.reward_inventory i SET capacity = reward_capacity_set.capacity
     WHERE i.reward_code = reward_capacity_set.reward_code AND i.store_code = reward_capacity_set.store_code
       AND i.day = reward_capacity_set.day;
    PERFORM loyalty._audit_change(NULL, 'reward_capacity_set', 'loyalty',
        pg_catalog.jsonb_build_object('reward_code', reward_code, 'store_code', store_code,
                                      'day', day, 'capacity', capacity));
    PERFORM loyalty._reward_request_save(idempotency_key, 'reward_capacity_set', args, '{}');
END
$$;
COMMENT ON FUNCTION loyalty.reward_capacity_set(text, text, text, date, integer) IS
    'Set how many units of a reward a store offers on a date (award nights per night)';

-- Reads.

CREATE FUNCTION loyalty.reward_catalog()
    RETURNS TABLE (reward_code text, name text, kind text, points bigint, cash_max numeric,
                   valid_from timestamptz, valid_until timestamptz, stores text[],
                   member_limit integer, member_limit_per text, total_limit integer,
                   total_left integer, nightly_capacity integer, voucher_days integer,
                   description text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.reward_code, r.name, r.kind, r.points, r.cash_max, r.valid_from, r.valid_until,
           (SELECT pg_catalog.array_agg(s.store_code ORDER BY s.store_code)
              FROM loyalty.reward_store s WHERE s.reward_code = r.reward_code),
           r.member_limit, r.member_limit_per, r.total_limit,
           r.total_limit - r.redeemed, r.nightly_capacity, r.voucher_days, r.description
      FROM loyalty.reward r
     ORDER BY r.reward_code
$$;
COMMENT ON FUNCTION loyalty.reward_catalog() IS
    'The reward catalogue (stores NULL: every store; total_left NULL: no overall limit)';

CREATE FUNCTION loyalty.reward_quote(reward_code text, store_code text, day date DEFAULT NULL,
    OUT points bigint, OUT season text, OUT category smallint, OUT units_left integer)
    RETURNS record
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_reward_quote';
COMMENT ON FUNCTION loyalty.reward_quote(text, text, date) IS
    'Price of a reward at a store on a date (free nights: by category and season) and the units left';

-- Mutations (C, src/reward_redeem.c, src/reward_voucher.c): each returns jsonb,
-- turned into columns by these wrappers.

CREATE FUNCTION loyalty._reward_redeem(idempotency_key text, member_id uuid, store_code text,
    reward_code text, stay_date date, cash_amount numeric)
    RETURNS jsonb
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_reward_redeem';

CREATE FUNCTION loyalty.reward_redeem(idempotency_key text, member_id uuid, store_code text,
    reward_code text, stay_date date DEFAULT NULL, cash_amount numeric DEFAULT NULL,
    OUT redemption_id uuid, OUT points bigint, OUT paid_cash numeric, OUT balance bigint,
    OUT season text, OUT voucher_code text, OUT expires_at timestamptz, OUT entry_id uuid,
    OUT replayed boolean)
    RETURNS record
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.* FROM pg_catalog.jsonb_to_record(
        loyalty._reward_redeem($1, $2, $3, $4, $5, $6))
        AS r(redemption_id uuid, points bigint, paid_cash numeric, balance bigint, season text,
             voucher_code text, expires_at timestamptz, entry_id uuid, replayed boolean)
$$;
COMMENT ON FUNCTION loyalty.reward_redeem(text, uuid, text, text, date, numeric) IS
    'Redeem a catalogue reward: debit the points, hold the inventory, issue the voucher';

CREATE FUNCTION loyalty._reward_redemption_cancel(idempotency_key text, redemption_id uuid,
    store_code text)
    RETURNS jsonb
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_reward_redemption_cancel';

CREATE FUNCTION loyalty.reward_redemption_cancel(idempotency_key text, redemption_id uuid,
    store_code text,
    OUT points_refunded bigint, OUT points_forfeited bigint, OUT balance bigint,
    OUT entry_id uuid, OUT replayed boolean)
    RETURNS record
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.* FROM pg_catalog.jsonb_to_record(loyalty._reward_redemption_cancel($1, $2, $3))
        AS r(points_refunded bigint, points_forfeited bigint, balance bigint, entry_id uuid,
             replayed boolean)
$$;
COMMENT ON FUNCTION loyalty.reward_redemption_cancel(text, uuid, text) IS
    'Cancel a redemption whose voucher is unused: points back, inventory released, voucher cancelled';

CREATE FUNCTION loyalty._award_issue(idempotency_key text, member_id uuid, reward_code text,
    reason text, store_code text, expires_at timestamptz)
    RETURNS jsonb
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_award_issue';

CREATE FUNCTION loyalty.award_issue(idempotency_key text, member_id uuid, reward_code text,
    reason text, store_code text DEFAULT NULL, expires_at timestamptz DEFAULT NULL,
    OUT voucher_id uuid, OUT voucher_code text, OUT valid_until timestamptz, OUT replayed boolean)
    RETURNS record
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.* FROM pg_catalog.jsonb_to_record(loyalty._award_issue($1, $2, $3, $4, $5, $6))
        AS r(voucher_id uuid, voucher_code text, valid_until timestamptz, replayed boolean)
$$;
COMMENT ON FUNCTION loyalty.award_issue(text, uuid, text, text, text, timestamptz) IS
    'Issue a certificate to one member without points (anniversary offer, campaign prize, goodwill)';

CREATE FUNCTION loyalty._voucher_use(idempotency_key text, code text, store_code text)
    RETURNS jsonb
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_voucher_use';

CREATE FUNCTION loyalty.voucher_use(idempotency_key text, code text, store_code text,
    OUT voucher_id uuid, OUT member_id uuid, OUT reward_code text, OUT kind text,
    OUT used_at timestamptz, OUT replayed boolean)
    RETURNS record
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.* FROM pg_catalog.jsonb_to_record(loyalty._voucher_use($1, $2, $3))
        AS r(voucher_id uuid, member_id uuid, reward_code text, kind text, used_at timestamptz,
             replayed boolean)
$$;
COMMENT ON FUNCTION loyalty.voucher_use(text, text, text) IS
    'Use a voucher or certificate at a store (once; a retry with the same key returns the first use)';

CREATE FUNCTION loyalty._voucher_expire(idempotency_key text, as_of timestamptz, notice_days integer)
    RETURNS jsonb
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_voucher_expire';

CREATE FUNCTION loyalty.voucher_expire(idempotency_key text, as_of timestamptz DEFAULT now(),
    notice_days integer DEFAULT 14, OUT expired integer, OUT notices integer, OUT replayed boolean)
    RETURNS record
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.* FROM pg_catalog.jsonb_to_record(loyalty._voucher_expire($1, $2, $3))
        AS r(expired integer, notices integer, replayed boolean)
$$;
COMMENT ON FUNCTION loyalty.voucher_expire(text, timestamptz, integer) IS
    'Batch: expire the vouchers due at as_of and send a notice notice_days before';

CREATE FUNCTION loyalty.member_vouchers(member_id uuid)
    RETURNS TABLE (voucher_id uuid, code text, reward_code text, kind text, name text,
                   store_code text, day date, source text, state text, issued_at timestamptz,
                   expires_at timestamptz, used_at timestamptz, used_store text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT v.voucher_id, v.code, v.reward_code, r.kind, r.name, v.store_code, v.day, v.source,
           v.state, v.issued_at, v.expires_at, v.used_at, v.used_store
      FROM loyalty.voucher v JOIN loyalty.reward r ON r.reward_code = v.reward_code
     WHERE v.member_id = $1
       AND (SELECT loyalty.caller_is_hq() OR loyalty.caller_store() IS NOT NULL)
     ORDER BY v.issued_at DESC, v.voucher_id
$$;
COMMENT ON FUNCTION loyalty.member_vouchers(uuid) IS 'A member''s vouchers and certificates, newest first';

CREATE FUNCTION loyalty.member_redemptions(member_id uuid)
    RETURNS TABLE (redemption_id uuid, reward_code text, store_code text, day date, season text,
                   points bigint, cash_amount numeric, state text, redeemed_at timestamptz,
                   cancelled_at timestamptz, voucher_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT x.redemption_id, x.reward_code, x.store_code, x.day, x.season, x.points, x.cash_amount,
           x.state, x.redeemed_at, x.cancelled_at, x.voucher_id
      FROM loyalty.reward_redemption x
     WHERE x.member_id = $1
       AND ((SELECT loyalty.caller_is_hq()) OR x.store_code = (SELECT loyalty.caller_store()))
     ORDER BY x.redeemed_at DESC, x.redemption_id
$$;
COMMENT ON FUNCTION loyalty.member_redemptions(uuid) IS
    'A member''s reward redemptions, newest first (store staff: their store''s only)';

REVOKE ALL ON TABLE loyalty.reward_request, loyalty.store_category, loyalty.reward_season,
    loyalty.reward, loyalty.reward_store, loyalty.reward_night_price, loyalty.reward_inventory,
    loyalty.voucher, loyalty.reward_redemption FROM PUBLIC;
REVOKE ALL ON FUNCTION
    loyalty._reward_request(text, text, text), loyalty._reward_request_save(text, text, text, jsonb),
    loyalty.reward_define(text, text, text, text, bigint, numeric, timestamptz, timestamptz,
                          text[], integer, text, integer, integer, integer, text),
    loyalty.reward_end(text, text, timestamptz),
    loyalty.reward_night_price_set(text, text, smallint, text, bigint),
    loyalty.store_category_set(text, text, smallint),
    loyalty.reward_season_add(text, text, date, date, text),
    loyalty.reward_capacity_set(text, text, text, date, integer),
    loyalty.reward_quote(text, text, date), loyalty.reward_catalog(),
    loyalty._reward_redeem(text, uuid, text, text, date, numeric),
    loyalty.reward_redeem(text, uuid, text, text, date, numeric),
    loyalty._reward_redemption_cancel(text, uuid, text),
    loyalty.reward_redemption_cancel(text, uuid, text),
    loyalty._award_issue(text, uuid, text, text, text, timestamptz),
    loyalty.award_issue(text, uuid, text, text, text, timestamptz),
    loyalty._voucher_use(text, text, text), loyalty.voucher_use(text, text, text),
    loyalty._voucher_expire(text, timestamptz, integer),
    loyalty.voucher_expire(text, timestamptz, integer),
    loyalty.member_vouchers(uuid), loyalty.member_redemptions(uuid)
    FROM PUBLIC;

GRANT EXECUTE ON FUNCTION loyalty.reward_catalog() TO loyalty_frontdesk, loyalty_fnb,
    loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT EXECUTE ON FUNCTION
    loyalty.reward_define(text, text, text, text, bigint, numeric, timestamptz, timestamptz,
                          text[], integer, text, integer, integer, integer, text),
    loyalty.reward_end(text, text, timestamptz),
    loyalty.reward_night_price_set(text, text, smallint, text, bigint),
    loyalty.reward_season_add(text, text, date, date, text)
    TO loyalty_crm, loyalty_marketing;
GRANT EXECUTE ON FUNCTION loyalty.store_category_set(text, text, smallint)
    TO loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.reward_capacity_set(text, text, text, date, integer)
    TO loyalty_store_manager, loyalty_crm, loyalty_marketing;
GRANT EXECUTE ON FUNCTION loyalty.reward_quote(text, text, date)
    TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_marketing,
       loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.reward_redeem(text, uuid, text, text, date, numeric),
    loyalty.reward_redemption_cancel(text, uuid, text),
    loyalty.voucher_use(text, text, text)
    TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.award_issue(text, uuid, text, text, text, timestamptz)
    TO loyalty_store_manager, loyalty_crm, loyalty_marketing;
GRANT EXECUTE ON FUNCTION loyalty.voucher_expire(text, timestamptz, integer)
    TO loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.member_vouchers(uuid), loyalty.member_redemptions(uuid)
    TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_marketing,
       loyalty_dba;
