-- Privacy: lookups without oracles (issue 12.1; docs/privacy.md "Lookups",
-- docs/threat-model.md).  What a store may reach beyond its own members
-- (src/privacy_lookup.c), the per-login lookup budget and its alert, the
-- card-only and phone-plus-surname lookups, and the record of ID numbers
-- that clash between members, kept for HQ instead of being told to the
-- caller.  The store views' filter (loyalty._member_in_reach) is in
-- 41_privacy.sql, because the views are built there.

-- C helpers (src/privacy_lookup.c): the transaction's reach, the audit
-- count that a rollback cannot reset, the privacy settings.
CREATE FUNCTION loyalty._reach_grant(member_ids uuid[]) RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'loyalty_reach_grant';
CREATE FUNCTION loyalty._audit_recent(role text, member_id uuid, actions text[], since interval)
    RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'loyalty_audit_recent';
CREATE FUNCTION loyalty._privacy_setting(name text) RETURNS integer
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_privacy_setting';
COMMENT ON FUNCTION loyalty._reach_grant(uuid[]) IS
    'Put members found by a lookup in the caller''s reach until the end of the transaction';
COMMENT ON FUNCTION loyalty._audit_recent(text, uuid, text[], interval) IS
    'Audit records of the given actions within an interval, counted with the latest snapshot';
COMMENT ON FUNCTION loyalty._privacy_setting(text) IS
    'The value of an integer privacy setting (loyalty.lookup_budget, loyalty.verify_failures, loyalty.bi_k_anonymity)';
-- the budget counts a login's lookups of the last hour (audit_log.role is
-- the login whoami() reports) through the partial role index of each
-- partition (40_audit.sql);
-- the per-member count uses audit_log_member_idx

REVOKE ALL ON FUNCTION loyalty._reach_grant(uuid[]),
    loyalty._audit_recent(text, uuid, text[], interval), loyalty._privacy_setting(text) FROM PUBLIC;

-- Lookups (docs/privacy.md, "Lookups"; issue 12.1).  A store reaches a
-- member it has no stay, booking or enrolment of only by a lookup that the
-- guest's presence justifies: the exact card number, or the full phone
-- number together with the surname.  Every lookup is audited, misses
-- included; each login has a budget of loyalty.lookup_budget lookups and
-- ID verifications per hour, counted from the audit trail (which a
-- rollback does not undo); beyond it lookups are refused, the refusal is
-- audited and the first refusal of the hour raises an alert event.

-- _lookup_budget_spend(purpose): refuse when the caller's budget is spent,
-- before the lookup searches.  Two sessions of one login may both pass it
-- for the last unit; _lookup_budget_settle() decides between them.
CREATE FUNCTION loyalty._lookup_budget_spend(purpose text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    used bigint;
    budget integer := loyalty._privacy_setting('lookup_budget');
BEGIN
    -- the purpose goes to the audit trail, which erasure cannot rewrite:
    -- no personal data in it (48_privacy_erasure.sql), checked before
    -- anything is written
    PERFORM loyalty._audit_free_text(NULL, purpose);
    used := loyalty._audit_recent((loyalty.whoami()).role, NULL,
                '{lookup,lookup_miss,verify_id,verify_id_miss}', interval '1 hour');
    IF used >= budget THEN
        PERFORM loyalty._lookup_refuse(purpose, budget);
    END IF;
END
$$;

-- _lookup_budget_settle(purpose): after the lookup's own audit record is
-- committed (the audit writer commits it before _audit returns), count
-- again, this record included: more than the budget means another session
-- of the login spent the last unit first, and this lookup is refused
-- before it answers.  Increment, then check: records are committed one
-- after the other, so the later of two racing lookups always counts the
-- earlier one and never both pass (the earlier may be refused too, which
-- errs on the safe side).  No lock is held, so a login's sessions never
-- wait for each other (test/isolation/specs/privacy_lookup_budget.spec).
CREATE FUNCTION loyalty._lookup_budget_settle(purpose text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    budget integer := loyalty._privacy_setting('lookup_budget');
BEGIN
    IF loyalty._audit_recent((loyalty.whoami()).role, NULL,
           '{lookup,lookup_miss,verify_id,verify_id_miss}', interval '1 hour') > budget THEN
        PERFORM loyalty._lookup_refuse(purpose, budget);
    END IF;
END
$$;

-- _lookup_refuse(purpose, budget): audit the refusal (the alert trigger
-- below raises the event) and raise the error.
CREATE FUNCTION loyalty._lookup_refuse(purpose text, budget integer) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty._audit(NULL, 'lookup_refused', NULL, left(purpose, 200));
    RAISE EXCEPTION 'lookup budget exceeded'
        USING ERRCODE = 'program_limit_exceeded',
              DETAIL = pg_catalog.format('A login may make %s lookups and ID verifications per hour.', budget),
              HINT = 'Ask HQ to raise loyalty.lookup_budget if the desk really needs more.';
END
$$;

-- _lookup_finish(ids, keys, purpose): audit the hits (or the miss), put the
-- hits in the caller's reach, or raise "member not found".
CREATE FUNCTION loyalty._lookup_finish(ids uuid[], keys text[], purpose text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id uuid;
    fields text[] := loyalty._visible_fields('frontdesk');
BEGIN
    IF ids IS NULL OR cardinality(ids) = 0 THEN
        -- the keys' names, never their values
        PERFORM loyalty._audit(NULL, 'lookup_miss', keys, left(purpose, 200));
        PERFORM loyalty._lookup_budget_settle(purpose);
        PERFORM loyalty._member_not_found();
    END IF;
    FOREACH id IN ARRAY ids LOOP
        PERFORM loyalty._audit(id, 'lookup', fields, left(purpose, 200));
    END LOOP;
    PERFORM loyalty._lookup_budget_settle(purpose);
    PERFORM loyalty._reach_grant(ids);
END
$$;

-- _member_reachable(member_id): the member exists, is not erased, and the
-- caller may reach it (HQ: any; a store: enrolled or stayed or booked there,
-- or found by a lookup of this transaction).
CREATE FUNCTION loyalty._member_reachable(member_id uuid) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN EXISTS (SELECT 1 FROM loyalty.member m
                    WHERE m.member_id = _member_reachable.member_id AND m.status <> 'erased'
                      AND (loyalty._member_in_reach(m.member_id, m.home_store)
                           OR EXISTS (SELECT 1 FROM loyalty.stay s
                                       WHERE s.member_id = m.member_id
                                         AND s.store_code = loyalty.caller_store())));
REVOKE ALL ON FUNCTION loyalty._member_reachable(uuid) FROM PUBLIC;

-- loyalty.frontdesk_lookup_phone(phone, surname, purpose): members with this
-- full phone number whose name has this surname (at its start, as in
-- Chinese names, or as its last word); rows of loyalty.member_frontdesk.
CREATE FUNCTION loyalty.frontdesk_lookup_phone(phone text, surname text, purpose text DEFAULT 'check_in')
    RETURNS SETOF loyalty.member_frontdesk
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids uuid[];
    sn text := lower(btrim(surname));
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm']);
    IF phone IS NULL OR btrim(phone) = '' OR sn IS NULL OR sn = '' THEN
        RAISE EXCEPTION 'phone and surname must not be empty' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF length(phone) > 32 OR length(sn) > 50 THEN
        RAISE EXCEPTION 'phone or surname is too long' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    PERFORM loyalty._lookup_budget_spend(purpose);
    SELECT array_agg(m.member_id ORDER BY m.member_id) INTO ids
      FROM loyalty.member_profile p
      JOIN loyalty.member m ON m.member_id = p.member_id
     WHERE p.phone = frontdesk_lookup_phone.phone AND m.status <> 'erased'
       AND length(p.full_name) > length(sn)
       AND (starts_with(lower(p.full_name), sn) OR lower(p.full_name) LIKE '% ' || sn);
    PERFORM loyalty._lookup_finish(ids, '{phone,surname}', purpose);
    RETURN QUERY SELECT v.* FROM loyalty.member_frontdesk v WHERE v.member_id = ANY (ids)
                  ORDER BY v.member_id;
END
$$;
COMMENT ON FUNCTION loyalty.frontdesk_lookup_phone(text, text, text) IS
    'Front desk: members with this full phone number and surname, masked for the front desk; budgeted; audited, misses too';

-- The alert: the first refused lookup of a role within an hour emits a
-- lookup_budget_exceeded event.  A trigger on the audit trail, so the
-- event is committed with the audit record (by the audit writer), also
-- when the refused caller rolls back.
CREATE FUNCTION loyalty._lookup_alert() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM loyalty.audit_log a
                    WHERE a.role = NEW.role AND a.action = 'lookup_refused'
                      AND a.audit_id < NEW.audit_id AND a.at > NEW.at - interval '1 hour') THEN
        PERFORM loyalty._event_emit('lookup_budget_exceeded', NULL, NEW.store_code,
            pg_catalog.jsonb_build_object('login', NEW.login, 'role', NEW.role,
                'department', NEW.department, 'audit_id', NEW.audit_id));
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION loyalty._lookup_alert() FROM PUBLIC;
CREATE TRIGGER audit_log_lookup_alert AFTER INSERT ON loyalty.audit_log
    FOR EACH ROW WHEN (NEW.action = 'lookup_refused')
    EXECUTE FUNCTION loyalty._lookup_alert();

REVOKE ALL ON FUNCTION loyalty._lookup_budget_spend(text), loyalty._lookup_budget_settle(text),
    loyalty._lookup_refuse(text, integer), loyalty._lookup_finish(uuid[], text[], text),
    loyalty.frontdesk_lookup_phone(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.frontdesk_lookup_phone(text, text, text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;

-- identity_set (41_privacy.sql) stores an ID number or bank card that
-- another member already has, with the same answer as any other, and
-- records the clash here for HQ CRM.
CREATE TABLE loyalty.identity_conflict (
    conflict_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL
        CONSTRAINT identity_conflict_kind_valid CHECK (kind IN ('id_number', 'bank_card')),
    member_id       uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    other_member_id uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    store_code      text,
    detected_at     timestamptz NOT NULL DEFAULT now(),
    detected_by     text NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.identity_conflict IS
    'ID numbers or bank cards stored for a member that another member already had; HQ CRM resolves them';
SELECT pg_catalog.pg_extension_config_dump('loyalty.identity_conflict', '');
-- its identity's sequence too: a restore goes on from the last id dumped
SELECT pg_catalog.pg_extension_config_dump('loyalty.identity_conflict_conflict_id_seq', '');
REVOKE ALL ON loyalty.identity_conflict FROM PUBLIC;
GRANT SELECT ON loyalty.identity_conflict TO loyalty_crm;

