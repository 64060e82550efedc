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
