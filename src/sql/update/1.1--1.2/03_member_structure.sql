-- member: the 1.2 API names (issue 11, structure): noun_verb, concept first,
-- the idempotency key first; the 1.1 names become wrappers (99_deprecated).
-- Generated from the difference between 1.1 and src/sql/03_member.sql.

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
GRANT EXECUTE ON FUNCTION loyalty.member_enroll(text, text, text, text, text, date, text, text, text) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
