-- Points sale (docs/rewards.md, issue 17 item 4): points a member buys for
-- themselves (points_buy) or buys as a gift for another member
-- (points_gift), priced by a table of bands, within a yearly cap, recorded
-- in the ledger as lots of their own source "purchase" (tier counts stays,
-- never ledger lots), and refundable within a window (points_sale_refund).
-- The rules are C (src/reward_sale.c); this file is the shape.

-- The sale rules: one row.  yearly_cap: the most points one member may
-- receive (bought or gifted to them) and the most one member may buy (for
-- themselves or as gifts) in a calendar year of their time zone; step: a
-- sale is a multiple of it; refund_days: how long a sale may be refunded.
-- No row: the defaults (100,000 points, step 1,000, 30 days), so that a
-- restore never meets a row the extension script inserted.
CREATE TABLE loyalty.points_sale_rule (
    singleton   boolean PRIMARY KEY DEFAULT true
        CONSTRAINT points_sale_rule_one_row CHECK (singleton),
    yearly_cap  bigint NOT NULL
        CONSTRAINT points_sale_rule_cap CHECK (yearly_cap BETWEEN 1 AND 100000000),
    step        bigint NOT NULL
        CONSTRAINT points_sale_rule_step CHECK (step BETWEEN 1 AND 1000000),
    refund_days integer NOT NULL
        CONSTRAINT points_sale_rule_refund_days CHECK (refund_days BETWEEN 0 AND 365),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.points_sale_rule IS 'Points sale rules: yearly cap per member, step, refund window';
SELECT pg_catalog.pg_extension_config_dump('loyalty.points_sale_rule', '');

-- The price table: a sale of N points costs N / 1000 times the
-- price_per_thousand of the largest band whose min_points is at most N
-- (volume discounts), in the program's currency, rounded to cents.
CREATE TABLE loyalty.points_sale_price (
    min_points         bigint PRIMARY KEY
        CONSTRAINT points_sale_price_min CHECK (min_points BETWEEN 1 AND 100000000),
    price_per_thousand numeric NOT NULL
        CONSTRAINT points_sale_price_positive CHECK (price_per_thousand > 0 AND price_per_thousand < 1000000),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.points_sale_price IS 'Price of points by volume band (price per 1,000 points)';
SELECT pg_catalog.pg_extension_config_dump('loyalty.points_sale_price', '');

-- Sales: who received the points, who paid, the price and the ledger entry.
CREATE TABLE loyalty.points_sale (
    sale_id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id         uuid NOT NULL REFERENCES loyalty.member,
    buyer_id          uuid NOT NULL REFERENCES loyalty.member,
    kind              text NOT NULL
        CONSTRAINT points_sale_kind_valid CHECK (kind IN ('purchase', 'gift')),
    store_code        text NOT NULL REFERENCES loyalty.store,
    points            bigint NOT NULL
        CONSTRAINT points_sale_points_range CHECK (points BETWEEN 1 AND 100000000),
    price             numeric NOT NULL
        CONSTRAINT points_sale_price_range CHECK (price > 0),
    payment_reference text NOT NULL
        CONSTRAINT points_sale_payment_reference_length CHECK (length(payment_reference) BETWEEN 1 AND 200),
    entry_id          uuid NOT NULL,
    state             text NOT NULL DEFAULT 'sold'
        CONSTRAINT points_sale_state_valid CHECK (state IN ('sold', 'refunded')),
    sold_at           timestamptz NOT NULL DEFAULT now(),
    refundable_until  timestamptz NOT NULL,
    refunded_at       timestamptz,
    refund_entry_id   uuid,
    sold_by           name NOT NULL DEFAULT session_user,
    CONSTRAINT points_sale_kind_buyer CHECK ((kind = 'gift') = (buyer_id <> member_id)),
    CONSTRAINT points_sale_refunded CHECK ((state = 'refunded') = (refunded_at IS NOT NULL))
);
COMMENT ON TABLE loyalty.points_sale IS 'Points bought by members for themselves or as gifts, with price and ledger entry';
CREATE INDEX points_sale_member_idx ON loyalty.points_sale (member_id, sold_at);
CREATE INDEX points_sale_buyer_idx ON loyalty.points_sale (buyer_id, sold_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.points_sale', '');

CREATE FUNCTION loyalty.points_sale_rule_set(idempotency_key text, yearly_cap bigint,
    step bigint DEFAULT 1000, refund_days integer DEFAULT 30)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text := pg_catalog.jsonb_build_array(yearly_cap, step, refund_days)::text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    IF loyalty._reward_request(idempotency_key, 'points_sale_rule_set', args) IS NOT NULL THEN
        RETURN;
    END IF;
    IF yearly_cap IS NULL OR step IS NULL OR refund_days IS NULL THEN
        RAISE EXCEPTION 'yearly_cap, step and refund_days must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF yearly_cap NOT BETWEEN 1 AND 100000000 OR step NOT BETWEEN 1 AND 1000000
       OR refund_days NOT BETWEEN 0 AND 365 THEN
        RAISE EXCEPTION 'invalid points sale rules' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'yearly_cap is 1 to 100000000 points, step 1 to 1000000, refund_days 0 to 365.';
    END IF;
    INSERT INTO loyalty.points_sale_rule (yearly_cap, step, refund_days)
        VALUES (yearly_cap, step, refund_days)
        ON CONFLICT ON CONSTRAINT points_sale_rule_pkey
        DO UPDATE SET yearly_cap = EXCLUDED.yearly_cap, step = EXCLUDED.step,
                      refund_days = EXCLUDED.refund_days, updated_at = now();
    PERFORM loyalty._audit_change(NULL, 'points_sale_rule_set', 'loyalty',
        pg_catalog.jsonb_build_object('yearly_cap', yearly_cap, 'step', step, 'refund_days', refund_days));
    PERFORM loyalty._reward_request_save(idempotency_key, 'points_sale_rule_set', args, '{}');
END
$$;
COMMENT ON FUNCTION loyalty.points_sale_rule_set(text, bigint, bigint, integer) IS
    'Set the points sale rules: yearly cap per member, step, refund window in days';

CREATE FUNCTION loyalty.points_sale_price_set(idempotency_key text, min_points bigint,
    price_per_thousand numeric)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text := pg_catalog.jsonb_build_array(min_points, price_per_thousand)::text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    IF loyalty._reward_request(idempotency_key, 'points_sale_price_set', args) IS NOT NULL THEN
        RETURN;
    END IF;
    IF min_points IS NULL THEN
        RAISE EXCEPTION 'min_points must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF min_points NOT BETWEEN 1 AND 100000000 THEN
        RAISE EXCEPTION 'min_points must be 1 to 100000000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF price_per_thousand IS NULL THEN
        DELETE FROM loyalty.points_sale_price p WHERE p.min_points = points_sale_price_set.min_points;
    ELSIF price_per_thousand <= 0 OR price_per_thousand >= 1000000 THEN
        RAISE EXCEPTION 'price_per_thousand must be positive and below 1000000' USING ERRCODE = 'invalid_parameter_value';
    ELSE
        INSERT INTO loyalty.points_sale_price (min_points, price_per_thousand)
            VALUES (min_points, price_per_thousand)
            ON CONFLICT ON CONSTRAINT points_sale_price_pkey
            DO UPDATE SET price_per_thousand = EXCLUDED.price_per_thousand, updated_at = now();
    END IF;
    PERFORM loyalty._audit_change(NULL, 'points_sale_price_set', 'loyalty',
        pg_catalog.jsonb_build_object('min_points', min_points, 'price_per_thousand', price_per_thousand));
    PERFORM loyalty._reward_request_save(idempotency_key, 'points_sale_price_set', args, '{}');
END
$$;
COMMENT ON FUNCTION loyalty.points_sale_price_set(text, bigint, numeric) IS
    'Set (or, with a NULL price, remove) the price per 1,000 points of a volume band';

CREATE FUNCTION loyalty.points_sale_quote(points bigint)
    RETURNS numeric
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.round($1::numeric * p.price_per_thousand / 1000, 2)
      FROM loyalty.points_sale_price p
     WHERE p.min_points <= $1
     ORDER BY p.min_points DESC
     LIMIT 1
$$;
COMMENT ON FUNCTION loyalty.points_sale_quote(bigint) IS
    'The price of a number of points (NULL: no band applies, points are not sold in that quantity)';

CREATE FUNCTION loyalty._points_sell(idempotency_key text, buyer_id uuid, member_id uuid,
    store_code text, points bigint, payment_reference text)
    RETURNS jsonb
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_points_sell';

CREATE FUNCTION loyalty.points_buy(idempotency_key text, member_id uuid, store_code text,
    points bigint, payment_reference text,
    OUT sale_id uuid, OUT price numeric, OUT balance bigint, OUT entry_id uuid,
    OUT refundable_until timestamptz, OUT replayed boolean)
    RETURNS record
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.* FROM pg_catalog.jsonb_to_record(loyalty._points_sell($1, $2, $2, $3, $4, $5))
        AS r(sale_id uuid, price numeric, balance bigint, entry_id uuid,
             refundable_until timestamptz, replayed boolean)
$$;
COMMENT ON FUNCTION loyalty.points_buy(text, uuid, text, bigint, text) IS
    'A member buys points for themselves (price table, yearly cap; never counts toward tier)';

CREATE FUNCTION loyalty.points_gift(idempotency_key text, buyer_id uuid, member_id uuid,
    store_code text, points bigint, payment_reference text,
    OUT sale_id uuid, OUT price numeric, OUT balance bigint, OUT entry_id uuid,
    OUT refundable_until timestamptz, OUT replayed boolean)
    RETURNS record
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.* FROM pg_catalog.jsonb_to_record(loyalty._points_sell($1, $2, $3, $4, $5, $6))
        AS r(sale_id uuid, price numeric, balance bigint, entry_id uuid,
             refundable_until timestamptz, replayed boolean)
$$;
COMMENT ON FUNCTION loyalty.points_gift(text, uuid, uuid, text, bigint, text) IS
    'A member buys points as a gift for another member (balance: the recipient''s)';

CREATE FUNCTION loyalty._points_sale_refund(idempotency_key text, sale_id uuid, store_code text)
    RETURNS jsonb
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_points_sale_refund';

CREATE FUNCTION loyalty.points_sale_refund(idempotency_key text, sale_id uuid, store_code text,
    OUT points bigint, OUT price numeric, OUT balance bigint, OUT entry_id uuid,
    OUT replayed boolean)
    RETURNS record
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.* FROM pg_catalog.jsonb_to_record(loyalty._points_sale_refund($1, $2, $3))
        AS r(points bigint, price numeric, balance bigint, entry_id uuid, replayed boolean)
$$;
COMMENT ON FUNCTION loyalty.points_sale_refund(text, uuid, text) IS
    'Refund a points sale within its window: the points are taken back (the recipient must still hold them)';

CREATE FUNCTION loyalty.member_points_sales(member_id uuid)
    RETURNS TABLE (sale_id uuid, kind text, member_id uuid, buyer_id uuid, store_code text,
                   points bigint, price numeric, state text, sold_at timestamptz,
                   refundable_until timestamptz, refunded_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.sale_id, s.kind, s.member_id, s.buyer_id, s.store_code, s.points, s.price, s.state,
           s.sold_at, s.refundable_until, s.refunded_at
      FROM loyalty.points_sale s
     WHERE (s.member_id = $1 OR s.buyer_id = $1)
       AND ((SELECT loyalty.caller_is_hq()) OR s.store_code = (SELECT loyalty.caller_store()))
     ORDER BY s.sold_at DESC, s.sale_id
$$;
COMMENT ON FUNCTION loyalty.member_points_sales(uuid) IS
    'Points a member bought or received as a gift, newest first (store staff: their store''s only)';

REVOKE ALL ON TABLE loyalty.points_sale_rule, loyalty.points_sale_price, loyalty.points_sale FROM PUBLIC;
REVOKE ALL ON FUNCTION
    loyalty.points_sale_rule_set(text, bigint, bigint, integer),
    loyalty.points_sale_price_set(text, bigint, numeric),
    loyalty.points_sale_quote(bigint),
    loyalty._points_sell(text, uuid, uuid, text, bigint, text),
    loyalty.points_buy(text, uuid, text, bigint, text),
    loyalty.points_gift(text, uuid, uuid, text, bigint, text),
    loyalty._points_sale_refund(text, uuid, text),
    loyalty.points_sale_refund(text, uuid, text),
    loyalty.member_points_sales(uuid)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.points_sale_rule_set(text, bigint, bigint, integer),
    loyalty.points_sale_price_set(text, bigint, numeric)
    TO loyalty_crm, loyalty_marketing;
GRANT EXECUTE ON FUNCTION loyalty.points_sale_quote(bigint), loyalty.member_points_sales(uuid)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.points_buy(text, uuid, text, bigint, text),
    loyalty.points_gift(text, uuid, uuid, text, bigint, text),
    loyalty.points_sale_refund(text, uuid, text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;
