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
