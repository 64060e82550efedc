-- privacy: consent drives the views (issue 12.5).  BI views leave out
-- members without a profiling consent in effect; the marketing view's
-- filter is in views_regenerate (46_privacy_lookup); marketing_contacts gives
-- the unmasked contact of consenting members, each read audited.

CREATE OR REPLACE VIEW loyalty.bi_members WITH (security_barrier) AS
SELECT loyalty.pseudonym(m.member_id) AS member_key,
       m.home_store, m.tier, m.status, p.gender,
       loyalty.mask_birth_decade(p.birth_date) AS birth_decade,
       loyalty.mask_month_utc(m.enrolled_at) AS enrolled_month
  FROM loyalty.member m
  LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id
 WHERE m.status <> 'erased'
   AND m.member_id IN (SELECT k.member_id FROM loyalty.member_consents k
                        WHERE k.purpose = 'profiling' AND k.granted);

CREATE OR REPLACE VIEW loyalty.bi_stays WITH (security_barrier) AS
SELECT loyalty.pseudonym(s.member_id) AS member_key, s.store_code,
       date_trunc('month', s.check_in)::date AS stay_month,
       (s.check_out - s.check_in) AS nights, s.rooms, s.room_revenue, s.other_revenue, s.status
  FROM loyalty.stay s
 WHERE s.member_id IN (SELECT k.member_id FROM loyalty.member_consents k
                       WHERE k.purpose = 'profiling' AND k.granted);

CREATE OR REPLACE VIEW loyalty.bi_segments WITH (security_barrier) AS
SELECT m.home_store, m.tier, p.gender, loyalty.mask_birth_decade(p.birth_date) AS birth_decade,
       count(*) AS members
  FROM loyalty.member m
  LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id
 WHERE m.status <> 'erased'
   AND m.member_id IN (SELECT k.member_id FROM loyalty.member_consents k
                        WHERE k.purpose = 'profiling' AND k.granted)
 GROUP BY 1, 2, 3, 4
HAVING count(*) >= loyalty.bi_min_group_size();

-- loyalty.marketing_contacts(channel, purpose): the unmasked contact of every
-- active member whose consent in effect covers the channel (issue 12.5);
-- each member's read is audited as contact_read with the purpose.
CREATE FUNCTION loyalty.marketing_contacts(channel text, purpose text)
    RETURNS TABLE (member_id uuid, full_name text, contact text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    consent text;
    field text;
    r record;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['marketing', 'crm']);
    IF channel IS NULL OR purpose IS NULL OR btrim(purpose) = '' THEN
        RAISE EXCEPTION 'channel and purpose must not be empty' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF channel NOT IN ('email', 'sms') THEN
        RAISE EXCEPTION 'invalid channel "%"', channel
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use "email" or "sms".';
    END IF;
    IF length(purpose) > 200 THEN
        RAISE EXCEPTION 'purpose is longer than 200 characters' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    consent := 'marketing_' || channel;
    field := CASE channel WHEN 'email' THEN 'email' ELSE 'phone' END;
    FOR r IN
        SELECT m.member_id, p.full_name,
               CASE channel WHEN 'email' THEN p.email ELSE p.phone END AS contact
          FROM loyalty.member m
          JOIN loyalty.member_profile p ON p.member_id = m.member_id
          JOIN loyalty.member_consents k ON k.member_id = m.member_id AND k.purpose = consent
         WHERE m.status = 'active' AND k.granted
           AND CASE channel WHEN 'email' THEN p.email ELSE p.phone END IS NOT NULL
         ORDER BY m.member_id
    LOOP
        PERFORM loyalty._audit(r.member_id, 'contact_read', ARRAY['full_name', field], purpose);
        member_id := r.member_id;
        full_name := r.full_name;
        contact := r.contact;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION loyalty.marketing_contacts(text, text) IS
    'Marketing: unmasked email or phone of the members who consented to that channel; each read audited with the purpose';
REVOKE ALL ON FUNCTION loyalty.marketing_contacts(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.marketing_contacts(text, text) TO loyalty_marketing, loyalty_crm;

-- consents ordered by the clock, also within one transaction
CREATE OR REPLACE FUNCTION loyalty.consent_record(member_id uuid, purpose text, granted boolean,
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
    -- the clock, not the transaction's start: a grant and a withdrawal in
    -- one transaction must stay in order ("latest row wins" decides who is
    -- in the marketing and BI views)
    INSERT INTO loyalty.member_consent (member_id, purpose, granted, notice_version, store_code, recorded_at)
        VALUES (consent_record.member_id, purpose, granted, notice_version, store,
                pg_catalog.clock_timestamp())
        RETURNING consent_id INTO id;
    PERFORM loyalty._audit(member_id, 'consent_record', ARRAY['consent:' || purpose], notice_version);
    RETURN id;
END
$$;
COMMENT ON FUNCTION loyalty.consent_record(uuid, text, boolean, text, text) IS
    'Record a member''s consent (or withdrawal) for a purpose under a notice version; audited';
