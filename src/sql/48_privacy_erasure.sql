-- Privacy: erasure that leaves no personal value anywhere (issue 12.7;
-- docs/privacy.md "Privacy operations", docs/audit.md "Personal data and
-- erasure", docs/threat-model.md).
--
-- The audit log is append-only and hash-chained, so erasure does not
-- rewrite it: instead nothing personal is ever written to it.  Change
-- records carry ids, codes and masked values only (the functions build
-- them), their purpose is a code of loyalty.audit_purpose, and the free
-- text a caller may give a read (the purpose of a lookup, an export, an
-- erasure's reason) is checked by loyalty._audit_free_text() before
-- anything is written: no e-mail address, no run of five or more digits
-- (phone, ID and card numbers) and none of the member's own name, phone,
-- e-mail or card number.  Everything else that holds free text about a
-- member is scrubbed by erasure: tag and risk tag notes, the notes kept in
-- risk tag events, service case subjects and interaction summaries,
-- imported source rows, the card number in the enrolment's idempotent
-- answer; and the BI pseudonym is re-keyed (47_privacy_bi.sql).

-- loyalty._audit_free_text(member_id, value): value (at most 200
-- characters) if it carries no personal data, else 22023 without echoing it.
CREATE FUNCTION loyalty._audit_free_text(member_id uuid, value text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text := lower(value);
BEGIN
    IF value IS NULL THEN
        RETURN NULL;
    END IF;
    IF v ~ '@' OR pg_catalog.normalize(v, 'NFKC') ~ '[0-9]{5}'
       OR EXISTS (SELECT 1 FROM loyalty.member m
                    LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id
                   WHERE m.member_id = _audit_free_text.member_id
                     AND ((length(p.full_name) >= 2 AND strpos(v, lower(p.full_name)) > 0)
                          OR (length(p.phone) >= 5 AND strpos(v, lower(p.phone)) > 0)
                          OR (length(p.email) >= 3 AND strpos(v, lower(p.email)) > 0)
                          OR strpos(v, lower(m.card_no)) > 0)) THEN
        RAISE EXCEPTION 'an audit purpose or reason must not carry personal data'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Purposes and reasons are kept in the audit trail, which erasure cannot rewrite.',
                  HINT = 'Use a purpose code such as check_in or subject_access_request.';
    END IF;
    RETURN left(value, 200);
END
$$;
REVOKE ALL ON FUNCTION loyalty._audit_free_text(uuid, text) FROM PUBLIC;

-- loyalty.member_erase(member_id, reason): erasure by pseudonymisation.  The
-- member id stays (so the point ledger, stays and the audit trail keep their
-- sums and history), but nothing links it to a person any more: profile,
-- identity, preferences and consents are deleted, notes and free texts
-- scrubbed, the card number replaced, the BI pseudonym re-keyed.
-- A retention purge (scheduled as an HQ DBA or CRM, docs/operations.md)
-- erases members through the same code, loyalty._member_erase(), granted to
-- nobody; member_erase() checks the caller and calls it.
CREATE OR REPLACE FUNCTION loyalty._member_erase(member_id uuid, reason text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_card text;
BEGIN
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'an erasure needs a reason' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM 1 FROM loyalty.member m
      WHERE m.member_id = _member_erase.member_id AND m.status <> 'erased' FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM loyalty._member_not_found();
    END IF;
    -- the record first: an erasure that fails is still on record as tried
    -- (the reason is checked by member_erase(); the retention purge's is
    -- the extension's own text)
    PERFORM loyalty._audit(member_id, 'erase', ARRAY['*'], left(reason, 200));
    DELETE FROM loyalty.member_profile p WHERE p.member_id = _member_erase.member_id;
    DELETE FROM loyalty.member_identity i WHERE i.member_id = _member_erase.member_id;
    DELETE FROM loyalty.member_preference x WHERE x.member_id = _member_erase.member_id;
    DELETE FROM loyalty.member_consent x WHERE x.member_id = _member_erase.member_id;
    UPDATE loyalty.member_tag t SET note = NULL WHERE t.member_id = _member_erase.member_id;
    -- risk tags stay (an amount owed is the chain's record), their notes go,
    -- also from the tag's event history (its only allowed change)
    UPDATE loyalty.risk_tag t
       SET note = CASE WHEN t.note IS NOT NULL THEN '[erased]' END,
           resolution_note = CASE WHEN t.resolution_note IS NOT NULL THEN '[erased]' END
     WHERE t.member_id = _member_erase.member_id;
    UPDATE loyalty.risk_tag_event e SET detail = e.detail - 'note'
     WHERE e.member_id = _member_erase.member_id AND e.detail ? 'note';
    -- service cases and interactions: the free text goes, the facts stay
    UPDATE loyalty.service_case c SET subject = '[erased]',
           resolution = CASE WHEN c.resolution IS NOT NULL THEN '[erased]' END
     WHERE c.member_id = _member_erase.member_id;
    UPDATE loyalty.service_interaction x SET summary = '[erased]'
     WHERE x.member_id = _member_erase.member_id;
    -- the imported source rows that became (or matched) this member
    UPDATE loyalty.import_member i
       SET full_name = NULL, phone = NULL, email = NULL, birth_date = NULL, gender = NULL,
           nationality = NULL, external_ref = 'erased-' || i.row_no
     WHERE i.member_id = _member_erase.member_id;
    -- a new random pseudonym seed: the old BI key cannot be recomputed
    -- (the insert replaces the member's seed row, see 47_privacy_bi.sql)
    INSERT INTO loyalty.member_pseudonym_key (member_id, seed)
        VALUES (_member_erase.member_id, pg_catalog.gen_random_uuid());
    UPDATE loyalty.member m
       SET status = 'erased', card_no = loyalty.card_number_new(), time_zone = NULL,
           updated_at = now()
     WHERE m.member_id = _member_erase.member_id
    RETURNING m.card_no INTO new_card;
    -- the enrolment's idempotent answer names the card: the new one now
    UPDATE loyalty.request_key r
       SET response = pg_catalog.jsonb_set(r.response, '{card_no}', pg_catalog.to_jsonb(new_card))
     WHERE r.action = 'member_enroll'
       AND r.response @> pg_catalog.jsonb_build_object('member_id', _member_erase.member_id);
END
$$;
REVOKE ALL ON FUNCTION loyalty._member_erase(uuid, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION loyalty.member_erase(member_id uuid, reason text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm']);
    -- no personal data in the reason, which stays in the audit trail
    IF reason IS NOT NULL AND btrim(reason) <> '' AND EXISTS (SELECT 1 FROM loyalty.member m
            WHERE m.member_id = member_erase.member_id AND m.status <> 'erased') THEN
        PERFORM loyalty._audit_free_text(member_id, reason);
    END IF;
    PERFORM loyalty._member_erase(member_id, reason);
END
$$;
COMMENT ON FUNCTION loyalty.member_erase(uuid, text) IS
    'Erase a member by pseudonymisation: personal data deleted, free texts scrubbed, BI key re-keyed; ledger and audit trail kept; HQ CRM only; audited';
REVOKE ALL ON FUNCTION loyalty.member_erase(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.member_erase(uuid, text) TO loyalty_crm;
