-- privacy: lookups without oracles, plans and error details (issue 12.1,
-- 12.2, 12.9).  Takes a database with the 1.2 names (41_privacy_structure,
-- 03_member_structure) to src/sql/41_privacy.sql, 46_privacy_lookup.sql and
-- 03_member.sql: ID numbers and bank cards no longer unique (clashes go to
-- loyalty.identity_conflict), store views filtered to the members in
-- reach, card-only frontdesk_lookup, budgeted and audited lookups and ID
-- verifications, enroll errors without the rejected value.

-- a clash is recorded, never told (identity_set)
DROP INDEX loyalty.member_identity_id_number_key;
DROP INDEX loyalty.member_identity_bank_card_key;
CREATE INDEX member_identity_id_number_idx ON loyalty.member_identity (id_number_index);
CREATE INDEX member_identity_bank_card_idx ON loyalty.member_identity (bank_card_index);

-- the store views' filter
CREATE FUNCTION loyalty._member_in_reach(member_id uuid, home_store text) RETURNS boolean
    LANGUAGE c STABLE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'loyalty_member_in_reach';
COMMENT ON FUNCTION loyalty._member_in_reach(uuid, text) IS
    'Store views: true for HQ, for members enrolled at the caller''s store and for members its lookups found in this transaction';
REVOKE ALL ON FUNCTION loyalty._member_in_reach(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._member_in_reach(uuid, text)
    TO loyalty_view_owner, loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb,
       loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba;

-- the new lookup concept, written once
\ir 46_privacy_lookup.sql

-- store views: only members in reach; marketing: only members who consented
-- to a channel, contact fields per channel (41_privacy_consent)
CREATE OR REPLACE FUNCTION loyalty.views_regenerate() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dept text;
    cols text;
    n integer := 0;
    fields constant text[] := ARRAY['card_no', 'full_name', 'gender', 'birth_date',
        'nationality', 'phone', 'email', 'address', 'id_number', 'bank_card'];
    -- the member's consent in effect for a purpose (latest decision)
    consented constant text := 'coalesce((SELECT k.granted FROM loyalty.member_consent k '
        'WHERE k.member_id = m.member_id AND k.purpose = %L '
        'ORDER BY k.recorded_at DESC, k.consent_id LIMIT 1), false)';
BEGIN
    FOREACH dept IN ARRAY ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager',
                                'crm', 'marketing', 'dba'] LOOP
        -- marketing sees a contact field only where the member consented
        -- to that channel (issue 12.5)
        SELECT string_agg(pg_catalog.format(
                   CASE WHEN dept = 'marketing' AND f.field IN ('phone', 'email')
                        THEN 'CASE WHEN ' || pg_catalog.format(consented,
                                 CASE f.field WHEN 'phone' THEN 'marketing_sms' ELSE 'marketing_email' END)
                             || ' THEN %s END AS %I'
                        ELSE '%s AS %I' END,
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
            'LEFT JOIN loyalty.member_identity i ON i.member_id = m.member_id%s',
            'member_' || dept, cols,
            -- store departments: only members the store has a reason to see
            CASE WHEN dept IN ('frontdesk', 'housekeeping', 'fnb', 'store_manager') THEN
                ' WHERE (loyalty._member_in_reach(m.member_id, m.home_store) OR EXISTS ('
                'SELECT 1 FROM loyalty.stay s WHERE s.member_id = m.member_id '
                'AND s.store_code = loyalty.caller_store()))'
            -- marketing: only members who consented to a marketing channel
            WHEN dept = 'marketing' THEN
                ' WHERE (' || pg_catalog.format(consented, 'marketing_email')
                || ' OR ' || pg_catalog.format(consented, 'marketing_sms') || ')'
            ELSE '' END);
        EXECUTE pg_catalog.format('ALTER VIEW loyalty.%I OWNER TO loyalty_view_owner',
                                  'member_' || dept);
        EXECUTE pg_catalog.format('REVOKE ALL ON loyalty.%I FROM PUBLIC', 'member_' || dept);
        EXECUTE pg_catalog.format('GRANT SELECT ON loyalty.%I TO %I',
                                  'member_' || dept, 'loyalty_' || dept);
        n := n + 1;
    END LOOP;
    -- a call of its own is recorded; the rebuild the field policy's trigger
    -- runs is not (the change that fired it is: field_policy_set; and a
    -- restore's COPY into field_policy is data, not a change)
    IF pg_catalog.pg_trigger_depth() = 0 THEN
        PERFORM loyalty._audit_change(NULL, 'views_regenerate', 'privacy',
            pg_catalog.jsonb_build_object('views', n));
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION loyalty.views_regenerate() IS
    'Rebuild the masked member views from the field policy (runs by itself when the policy changes)';
SELECT loyalty.views_regenerate();

-- lookups by exact card number only; budgeted, misses audited
CREATE OR REPLACE FUNCTION loyalty.frontdesk_lookup(key text, purpose text DEFAULT 'check_in')
    RETURNS SETOF loyalty.member_frontdesk
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids uuid[];
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm']);
    IF key IS NULL OR btrim(key) = '' THEN
        RAISE EXCEPTION 'lookup key must not be empty' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF length(key) > 32 THEN
        RAISE EXCEPTION 'lookup key is longer than 32 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF NOT loyalty.card_number_valid(key) THEN
        RAISE EXCEPTION 'lookup key is not a card number'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A card number has 12 digits with a check digit.',
                  HINT = 'To find a guest by phone, use loyalty.frontdesk_lookup_phone(phone, surname).';
    END IF;
    PERFORM loyalty._lookup_budget_spend(purpose);
    -- a merged duplicate's card finds the survivor (loyalty.card_resolve)
    SELECT array_agg(DISTINCT coalesce(m.merged_into, m.member_id)) INTO ids
      FROM loyalty.member m WHERE m.card_no = key AND m.status <> 'erased';
    PERFORM loyalty._lookup_finish(ids, '{card_no}', purpose);
    RETURN QUERY SELECT v.* FROM loyalty.member_frontdesk v WHERE v.member_id = ANY (ids)
                  ORDER BY v.member_id;
END
$$;
COMMENT ON FUNCTION loyalty.frontdesk_lookup(text, text) IS
    'Front desk: the member with this exact card number, masked for the front desk; budgeted; audited, misses too';

-- identity: no oracle, verification budgeted and limited per member
CREATE OR REPLACE FUNCTION loyalty.identity_set(member_id uuid, id_type text, id_number text,
    bank_card text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idn text := loyalty._normalise_identifier(id_number);
    card text := loyalty._normalise_identifier(bank_card);
    changed text[] := '{}';
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm']);
    IF member_id IS NULL THEN
        RAISE EXCEPTION 'member_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT loyalty._member_reachable(identity_set.member_id) THEN
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
    -- one call per number at a time: two desks storing the same number at
    -- once wait for each other, so the second sees the first and the clash
    -- is recorded (READ COMMITTED: each statement sees what committed)
    IF idn IS NOT NULL THEN
        PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(
            'loyalty.id_number ' || pg_catalog.encode(loyalty._blind_index('id_number', idn), 'hex'), 0));
    END IF;
    IF card IS NOT NULL THEN
        PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(
            'loyalty.bank_card ' || pg_catalog.encode(loyalty._blind_index('bank_card', card), 'hex'), 0));
    END IF;
    -- the same answer whether or not another member has the number: a clash
    -- is recorded for HQ, never told to the caller
    INSERT INTO loyalty.identity_conflict (kind, member_id, other_member_id, store_code)
    SELECT 'id_number', identity_set.member_id, i.member_id, loyalty.caller_store()
      FROM loyalty.member_identity i
     WHERE idn IS NOT NULL AND i.id_number_index = loyalty._blind_index('id_number', idn)
       AND i.member_id <> identity_set.member_id
    UNION ALL
    SELECT 'bank_card', identity_set.member_id, i.member_id, loyalty.caller_store()
      FROM loyalty.member_identity i
     WHERE card IS NOT NULL AND i.bank_card_index = loyalty._blind_index('bank_card', card)
       AND i.member_id <> identity_set.member_id;
    INSERT INTO loyalty.member_identity AS i (member_id) VALUES (identity_set.member_id)
        ON CONFLICT ON CONSTRAINT member_identity_pkey DO NOTHING;
    IF idn IS NOT NULL THEN
        UPDATE loyalty.member_identity i
           SET id_type = identity_set.id_type,
               id_number_cipher = loyalty._identity_seal(i.member_id, 'id_number', idn),
               id_number_index = loyalty._blind_index('id_number', idn),
               -- at most a third of the number (issue 12.9)
               id_number_last4 = right(idn, least(4, length(idn) / 3))
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
    PERFORM loyalty._audit(member_id, 'identity_set', changed, NULL);
END
$$;
COMMENT ON FUNCTION loyalty.identity_set(uuid, text, text, text) IS
    'Store a member''s ID number and/or bank card encrypted, with blind index and last four; audited';

CREATE OR REPLACE FUNCTION loyalty.identity_matches(member_id uuid, id_number text,
    purpose text DEFAULT 'check_in')
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stored bytea;
    matched boolean;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm']);
    IF id_number IS NULL THEN
        RAISE EXCEPTION 'id_number must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT loyalty._member_reachable(identity_matches.member_id) THEN
        PERFORM loyalty._member_not_found();
    END IF;
    -- budgeted like lookups, and a member's number cannot be guessed: after
    -- loyalty.verify_failures wrong numbers in 24 hours (from any login)
    -- verification of that member is refused
    PERFORM loyalty._lookup_budget_spend(purpose);
    IF loyalty._audit_recent(NULL, member_id, '{verify_id_miss}', interval '24 hours')
       >= loyalty._privacy_setting('verify_failures') THEN
        PERFORM loyalty._audit(member_id, 'verify_id_refused', '{id_number}', left(purpose, 200));
        RAISE EXCEPTION 'too many failed ID verifications for this member'
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Check the guest''s document by eye; HQ can see the attempts in the audit trail.';
    END IF;
    SELECT i.id_number_index INTO stored FROM loyalty.member_identity i
     WHERE i.member_id = identity_matches.member_id;
    matched := coalesce(stored = loyalty._blind_index('id_number', id_number), false);
    PERFORM loyalty._audit(member_id, CASE WHEN matched THEN 'verify_id' ELSE 'verify_id_miss' END,
                           '{id_number}', left(purpose, 200));
    -- this verification counted: refused if another session spent the
    -- last unit first (46_privacy_lookup.sql)
    PERFORM loyalty._lookup_budget_settle(purpose);
    RETURN matched;
END
$$;
COMMENT ON FUNCTION loyalty.identity_matches(uuid, text, text) IS
    'Verify that an ID number belongs to a member, without revealing it; audited';

-- member_enroll (no rejected personal value in an error, the store-mode
-- branch): 03_member_structure.sql creates it with its 1.2 body

-- preferences: only for members in reach
CREATE OR REPLACE FUNCTION loyalty.preferences(member_id uuid)
    RETURNS SETOF loyalty.member_preferences
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm']);
    -- a store: only members in reach (enrolled, stayed or booked there, or
    -- found by this transaction's lookup; issue 12.1)
    IF NOT loyalty._member_reachable(preferences.member_id) THEN
        PERFORM loyalty._member_not_found();
    END IF;
    RETURN QUERY SELECT p.* FROM loyalty.member_preferences p
                  WHERE p.member_id = preferences.member_id
                  ORDER BY p.category, p.recorded_at;
END
$$;
COMMENT ON FUNCTION loyalty.preferences(uuid) IS
    'Current preferences of a member: chain-wide ones and the caller''s store''s own';

CREATE OR REPLACE FUNCTION loyalty.preference_add(member_id uuid, category text, value text,
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
    IF NOT loyalty._member_reachable(preference_add.member_id) THEN
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
