-- Partner conversion (docs/rewards.md, issue 17 item 5): points converted
-- to a partner's currency (airline miles) at the partner's ratio, minimum
-- and step; the transfer out is a ledger debit, confirmed with the
-- partner's reference or given back when the partner rejects it.  No
-- member data goes to a partner without the member's third_party consent
-- (loyalty.member_consent, docs/privacy.md).  The rules are C
-- (src/reward_partner.c); this file is the shape.

CREATE TABLE loyalty.partner (
    partner_code text PRIMARY KEY
        CONSTRAINT partner_code_format CHECK (partner_code ~ '^[a-z][a-z0-9_]{0,31}$'),
    name         text NOT NULL
        CONSTRAINT partner_name_length CHECK (length(name) BETWEEN 1 AND 200),
    kind         text NOT NULL
        CONSTRAINT partner_kind_valid CHECK (kind IN ('airline', 'rail', 'retail', 'other')),
    points_ratio bigint NOT NULL
        CONSTRAINT partner_points_ratio CHECK (points_ratio BETWEEN 1 AND 1000000),
    units_ratio  bigint NOT NULL
        CONSTRAINT partner_units_ratio CHECK (units_ratio BETWEEN 1 AND 1000000),
    min_points   bigint NOT NULL
        CONSTRAINT partner_min_points CHECK (min_points BETWEEN 1 AND 100000000),
    step_points  bigint NOT NULL
        CONSTRAINT partner_step_points CHECK (step_points BETWEEN 1 AND 100000000),
    active       boolean NOT NULL DEFAULT true,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.partner IS
    'Conversion partners (airlines): points_ratio points give units_ratio partner units; minimum and step';
SELECT pg_catalog.pg_extension_config_dump('loyalty.partner', '');

CREATE TABLE loyalty.partner_transfer (
    transfer_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id         uuid NOT NULL REFERENCES loyalty.member,
    partner_code      text NOT NULL REFERENCES loyalty.partner,
    partner_account   text NOT NULL
        CONSTRAINT partner_transfer_account_length CHECK (length(partner_account) BETWEEN 1 AND 64),
    store_code        text NOT NULL REFERENCES loyalty.store,
    points            bigint NOT NULL
        CONSTRAINT partner_transfer_points CHECK (points BETWEEN 1 AND 100000000),
    units             bigint NOT NULL
        CONSTRAINT partner_transfer_units CHECK (units > 0),
    entry_id          uuid NOT NULL,
    state             text NOT NULL DEFAULT 'sent'
        CONSTRAINT partner_transfer_state_valid CHECK (state IN ('sent', 'confirmed', 'rejected')),
    partner_reference text
        CONSTRAINT partner_transfer_reference_length CHECK (length(partner_reference) BETWEEN 1 AND 200),
    reason            text
        CONSTRAINT partner_transfer_reason_length CHECK (length(reason) <= 200),
    sent_at           timestamptz NOT NULL DEFAULT now(),
    settled_at        timestamptz,
    refund_entry_id   uuid,
    sent_by           name NOT NULL DEFAULT session_user,
    CONSTRAINT partner_transfer_settled CHECK ((state = 'sent') = (settled_at IS NULL)),
    CONSTRAINT partner_transfer_confirmed CHECK ((state = 'confirmed') = (partner_reference IS NOT NULL))
);
COMMENT ON TABLE loyalty.partner_transfer IS
    'Points converted to a partner: the debit, the member''s partner account, the partner''s answer';
CREATE INDEX partner_transfer_member_idx ON loyalty.partner_transfer (member_id, sent_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.partner_transfer', '');

CREATE FUNCTION loyalty.partner_set(idempotency_key text, partner_code text, name text,
    kind text, points_ratio bigint, units_ratio bigint, min_points bigint, step_points bigint,
    active boolean DEFAULT true)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text := pg_catalog.jsonb_build_array(partner_code, name, kind, points_ratio, units_ratio,
        min_points, step_points, active)::text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    IF loyalty._reward_request(idempotency_key, 'partner_set', args) IS NOT NULL THEN
        RETURN;
    END IF;
    IF partner_code IS NULL OR name IS NULL OR kind IS NULL OR points_ratio IS NULL
       OR units_ratio IS NULL OR min_points IS NULL OR step_points IS NULL OR active IS NULL THEN
        RAISE EXCEPTION 'every argument of partner_set must be given' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF partner_code !~ '^[a-z][a-z0-9_]{0,31}$' THEN
        RAISE EXCEPTION 'invalid partner code "%"', partner_code USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A partner code is 1 to 32 lowercase letters, digits or underscores, starting with a letter.';
    END IF;
    IF kind NOT IN ('airline', 'rail', 'retail', 'other') OR length(name) NOT BETWEEN 1 AND 200
       OR points_ratio NOT BETWEEN 1 AND 1000000 OR units_ratio NOT BETWEEN 1 AND 1000000
       OR min_points NOT BETWEEN 1 AND 100000000 OR step_points NOT BETWEEN 1 AND 100000000 THEN
        RAISE EXCEPTION 'invalid partner terms' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'kind is airline, rail, retail or other; ratios 1 to 1000000; minimum and step 1 to 100000000 points.';
    END IF;
    INSERT INTO loyalty.partner (partner_code, name, kind, points_ratio, units_ratio, min_points,
                                 step_points, active)
        VALUES (partner_code, name, kind, points_ratio, units_ratio, min_points, step_points, active)
        ON CONFLICT ON CONSTRAINT partner_pkey DO UPDATE
        SET name = EXCLUDED.name, kind = EXCLUDED.kind, points_ratio = EXCLUDED.points_ratio,
            units_ratio = EXCLUDED.units_ratio, min_points = EXCLUDED.min_points,
            step_points = EXCLUDED.step_points, active = EXCLUDED.active, updated_at = now();
    PERFORM loyalty._audit_change(NULL, 'partner_set', 'loyalty',
        pg_catalog.jsonb_build_object('partner_code', partner_code, 'points_ratio', points_ratio,
                                      'units_ratio', units_ratio, 'active', active));
    PERFORM loyalty._reward_request_save(idempotency_key, 'partner_set', args, '{}');
END
$$;
COMMENT ON FUNCTION loyalty.partner_set(text, text, text, text, bigint, bigint, bigint, bigint, boolean) IS
    'Add or change a conversion partner: ratio, minimum, step, active';

CREATE FUNCTION loyalty._partner_transfer(idempotency_key text, member_id uuid, store_code text,
    partner_code text, points bigint, partner_account text)
    RETURNS jsonb
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_partner_transfer';

CREATE FUNCTION loyalty.partner_transfer(idempotency_key text, member_id uuid, store_code text,
    partner_code text, points bigint, partner_account text,
    OUT transfer_id uuid, OUT units bigint, OUT balance bigint, OUT entry_id uuid,
    OUT replayed boolean)
    RETURNS record
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.* FROM pg_catalog.jsonb_to_record(loyalty._partner_transfer($1, $2, $3, $4, $5, $6))
        AS r(transfer_id uuid, units bigint, balance bigint, entry_id uuid, replayed boolean)
$$;
COMMENT ON FUNCTION loyalty.partner_transfer(text, uuid, text, text, bigint, text) IS
    'Convert points to a partner (needs the member''s third_party consent): a ledger debit, state sent';

CREATE FUNCTION loyalty._partner_transfer_settle(idempotency_key text, transfer_id uuid,
    accepted boolean, partner_reference text, reason text)
    RETURNS jsonb
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_partner_transfer_settle';

CREATE FUNCTION loyalty.partner_transfer_confirm(idempotency_key text, transfer_id uuid,
    partner_reference text, OUT state text, OUT balance bigint, OUT replayed boolean)
    RETURNS record
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.* FROM pg_catalog.jsonb_to_record(loyalty._partner_transfer_settle($1, $2, true, $3, NULL))
        AS r(state text, balance bigint, replayed boolean)
$$;
COMMENT ON FUNCTION loyalty.partner_transfer_confirm(text, uuid, text) IS
    'The partner credited the transfer: record its reference';

CREATE FUNCTION loyalty.partner_transfer_reject(idempotency_key text, transfer_id uuid,
    reason text, OUT state text, OUT balance bigint, OUT replayed boolean)
    RETURNS record
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.* FROM pg_catalog.jsonb_to_record(loyalty._partner_transfer_settle($1, $2, false, NULL, $3))
        AS r(state text, balance bigint, replayed boolean)
$$;
COMMENT ON FUNCTION loyalty.partner_transfer_reject(text, uuid, text) IS
    'The partner rejected the transfer: the points go back to the member (ledger refund)';

CREATE FUNCTION loyalty.member_partner_transfers(member_id uuid)
    RETURNS TABLE (transfer_id uuid, partner_code text, store_code text, points bigint,
                   units bigint, state text, partner_reference text, sent_at timestamptz,
                   settled_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.transfer_id, t.partner_code, t.store_code, t.points, t.units, t.state,
           t.partner_reference, t.sent_at, t.settled_at
      FROM loyalty.partner_transfer t
     WHERE t.member_id = $1
       AND ((SELECT loyalty.caller_is_hq()) OR t.store_code = (SELECT loyalty.caller_store()))
     ORDER BY t.sent_at DESC, t.transfer_id
$$;
COMMENT ON FUNCTION loyalty.member_partner_transfers(uuid) IS
    'A member''s conversions to partners, newest first (store staff: their store''s only)';

REVOKE ALL ON TABLE loyalty.partner, loyalty.partner_transfer FROM PUBLIC;
REVOKE ALL ON FUNCTION
    loyalty.partner_set(text, text, text, text, bigint, bigint, bigint, bigint, boolean),
    loyalty._partner_transfer(text, uuid, text, text, bigint, text),
    loyalty.partner_transfer(text, uuid, text, text, bigint, text),
    loyalty._partner_transfer_settle(text, uuid, boolean, text, text),
    loyalty.partner_transfer_confirm(text, uuid, text),
    loyalty.partner_transfer_reject(text, uuid, text),
    loyalty.member_partner_transfers(uuid)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.partner_set(text, text, text, text, bigint, bigint, bigint, bigint, boolean)
    TO loyalty_crm, loyalty_marketing;
GRANT EXECUTE ON FUNCTION loyalty.partner_transfer(text, uuid, text, text, bigint, text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.partner_transfer_confirm(text, uuid, text),
    loyalty.partner_transfer_reject(text, uuid, text)
    TO loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.member_partner_transfers(uuid)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
