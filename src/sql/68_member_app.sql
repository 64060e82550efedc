-- CRM: the member-facing role (docs/crm.md).  A guest app's login is bound
-- to exactly one member by HQ CRM and is a member of the group role
-- loyalty_member_app; the my_* functions act for that member only.  The
-- member is found from the caller's role (the outer user, as for staff:
-- loyalty.whoami()), never from an argument or a setting.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'loyalty_member_app') THEN
        CREATE ROLE loyalty_member_app NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA loyalty TO loyalty_member_app;

CREATE TABLE loyalty.member_app_login (
    login       name PRIMARY KEY,
    member_id   uuid NOT NULL REFERENCES loyalty.member,
    bound_at    timestamptz NOT NULL DEFAULT now(),
    bound_by    name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.member_app_login IS 'Guest app logins, each bound to exactly one member';
CREATE INDEX member_app_login_member_idx ON loyalty.member_app_login (member_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_app_login', '');
REVOKE ALL ON loyalty.member_app_login FROM PUBLIC;

-- Export and erasure requests made by members, for HQ to act on
-- (member_export, member_erase: docs/privacy.md).
CREATE TABLE loyalty.member_app_request (
    request_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id    uuid NOT NULL REFERENCES loyalty.member,
    kind         text NOT NULL
        CONSTRAINT member_app_request_kind_valid CHECK (kind IN ('export', 'erasure')),
    requested_at timestamptz NOT NULL DEFAULT now(),
    login        name NOT NULL
);
COMMENT ON TABLE loyalty.member_app_request IS 'Export and erasure requests members made in the guest app';
CREATE INDEX member_app_request_member_idx ON loyalty.member_app_request (member_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_app_request', '');
REVOKE ALL ON loyalty.member_app_request FROM PUBLIC;
GRANT SELECT ON loyalty.member_app_request TO loyalty_crm, loyalty_dba;

-- loyalty.member_app_bind(idempotency_key, login, member_id): HQ CRM binds
-- a guest app login (an existing role that is no staff member) to a member
-- and makes it a member of loyalty_member_app.
CREATE FUNCTION loyalty.member_app_bind(idempotency_key text, login name, member_id uuid)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    st text;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm']);
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    IF login IS NULL OR member_id IS NULL THEN
        RAISE EXCEPTION 'login and member_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    req := pg_catalog.jsonb_build_array(login, member_id);
    IF loyalty._request_begin('member_app_bind', idempotency_key, req) IS NOT NULL THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = login) THEN
        RAISE EXCEPTION 'role "%" does not exist', login USING ERRCODE = 'undefined_object';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = login AND r.rolsuper)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles g
                   WHERE g.rolname IN ('loyalty_frontdesk', 'loyalty_housekeeping', 'loyalty_fnb',
                                       'loyalty_store_manager', 'loyalty_crm', 'loyalty_marketing',
                                       'loyalty_bi', 'loyalty_dba', 'loyalty_view_owner')
                     AND pg_catalog.pg_has_role(login, g.oid, 'MEMBER')) THEN
        RAISE EXCEPTION 'role "%" is staff and cannot act for a member', login
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT m.status INTO st FROM loyalty.member m WHERE m.member_id = member_app_bind.member_id;
    IF st IS NULL OR st = 'erased' THEN
        PERFORM loyalty._member_not_found();
    ELSIF st = 'closed' THEN
        RAISE EXCEPTION 'member is closed' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF EXISTS (SELECT 1 FROM loyalty.member_app_login l WHERE l.login = member_app_bind.login) THEN
        RAISE EXCEPTION 'login "%" is already bound to a member', login
            USING ERRCODE = 'unique_violation', HINT = 'Unbind it first.';
    END IF;
    INSERT INTO loyalty.member_app_login (login, member_id) VALUES (login, member_id);
    EXECUTE pg_catalog.format('GRANT loyalty_member_app TO %I', login);
    PERFORM loyalty._audit_change(member_id, 'member_app_bind', 'crm',
        pg_catalog.jsonb_build_object('login', login));
    PERFORM loyalty._request_end('member_app_bind', idempotency_key, req, 'null'::jsonb);
END
$$;
COMMENT ON FUNCTION loyalty.member_app_bind(text, name, uuid) IS
    'Bind a guest app login to one member (HQ CRM); it joins loyalty_member_app; audited';

CREATE FUNCTION loyalty.member_app_unbind(idempotency_key text, login name)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    req jsonb;
    m uuid;
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['crm']);
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    req := pg_catalog.jsonb_build_array(login);
    IF loyalty._request_begin('member_app_unbind', idempotency_key, req) IS NOT NULL THEN
        RETURN;
    END IF;
    DELETE FROM loyalty.member_app_login l WHERE l.login = member_app_unbind.login
        RETURNING l.member_id INTO m;
    IF m IS NULL THEN
        RAISE EXCEPTION 'login "%" is not bound', login USING ERRCODE = 'no_data_found';
    END IF;
    EXECUTE pg_catalog.format('REVOKE loyalty_member_app FROM %I', login);
    PERFORM loyalty._audit_change(m, 'member_app_unbind', 'crm', pg_catalog.jsonb_build_object('login', login));
    PERFORM loyalty._request_end('member_app_unbind', idempotency_key, req, 'null'::jsonb);
END
$$;
COMMENT ON FUNCTION loyalty.member_app_unbind(text, name) IS
    'Unbind a guest app login (HQ CRM); it leaves loyalty_member_app; audited';

-- loyalty._app_member(writing): the member the calling app login is bound
-- to; 42501 for any other caller, P0002 for an erased member, 55000 for a
-- closed one when writing.
CREATE FUNCTION loyalty._app_member(writing boolean DEFAULT false) RETURNS uuid
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    who name := (SELECT w.role::name FROM loyalty.whoami() w);
    m uuid;
    st text;
BEGIN
    SELECT l.member_id INTO m FROM loyalty.member_app_login l WHERE l.login = who;
    IF m IS NULL OR NOT pg_catalog.pg_has_role(who, 'loyalty_member_app', 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied: "%" is not a guest app login bound to a member', who
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT x.status INTO st FROM loyalty.member x WHERE x.member_id = m;
    IF st = 'erased' THEN
        PERFORM loyalty._member_not_found();
    ELSIF writing AND st = 'closed' THEN
        RAISE EXCEPTION 'member is closed' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN m;
END
$$;
REVOKE ALL ON FUNCTION loyalty._app_member(boolean) FROM PUBLIC;

CREATE FUNCTION loyalty.my_profile() RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m uuid := loyalty._app_member();
    r jsonb;
BEGIN
    SELECT pg_catalog.jsonb_build_object(
               'member_id', x.member_id, 'card_no', x.card_no, 'status', x.status,
               'home_store', x.home_store, 'tier', x.tier, 'tier_valid_until', x.tier_valid_until,
               'full_name', p.full_name, 'gender', p.gender, 'birth_date', p.birth_date,
               'nationality', p.nationality, 'phone', p.phone, 'email', p.email,
               'address', p.address, 'last_verified_at', x.last_verified_at,
               'balance', coalesce(b.balance, 0))
      INTO r
      FROM loyalty.member x JOIN loyalty.member_profile p ON p.member_id = x.member_id
      LEFT JOIN loyalty.point_balance b ON b.member_id = x.member_id
     WHERE x.member_id = m;
    PERFORM loyalty._audit(m, 'profile', ARRAY['full_name', 'gender', 'birth_date', 'nationality',
                                               'phone', 'email', 'address'], 'member');
    RETURN r;
END
$$;
COMMENT ON FUNCTION loyalty.my_profile() IS 'Guest app: the bound member''s own profile, tier and balance; audited';

CREATE FUNCTION loyalty.my_statement(max_rows integer DEFAULT 100)
    RETURNS TABLE (occurred_at timestamptz, store_code text, kind text, points bigint,
                   balance_after bigint, reference text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m uuid := loyalty._app_member();
BEGIN
    IF max_rows IS NULL OR max_rows < 1 OR max_rows > 10000 THEN
        RAISE EXCEPTION 'max_rows must be from 1 to 10000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT e.occurred_at, e.store_code, e.kind, e.points, e.balance_after, e.reference
      FROM loyalty.point_entry e WHERE e.member_id = m
     ORDER BY e.occurred_at DESC, e.recorded_at DESC
     LIMIT max_rows;
END
$$;
COMMENT ON FUNCTION loyalty.my_statement(integer) IS 'Guest app: the bound member''s latest ledger entries';

CREATE FUNCTION loyalty.my_tier()
    RETURNS TABLE (tier text, valid_until timestamptz, period_start date, period_end date,
                   nights bigint, stays bigint, base_points bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m uuid := loyalty._app_member();
BEGIN
    RETURN QUERY
    SELECT x.tier, x.tier_valid_until, c.period_start, c.period_end,
           c.nights::bigint, c.stays::bigint, c.base_points::bigint
      FROM loyalty.member x, loyalty._counters_at(m, now()) c
     WHERE x.member_id = m;
END
$$;
COMMENT ON FUNCTION loyalty.my_tier() IS 'Guest app: the bound member''s tier and this period''s counters';

CREATE FUNCTION loyalty.my_consents()
    RETURNS TABLE (purpose text, granted boolean, notice_version text, recorded_at timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m uuid := loyalty._app_member();
BEGIN
    RETURN QUERY
    SELECT DISTINCT ON (c.purpose) c.purpose, c.granted, c.notice_version, c.recorded_at
      FROM loyalty.member_consent c WHERE c.member_id = m
     ORDER BY c.purpose, c.recorded_at DESC, c.consent_id DESC;
END
$$;
COMMENT ON FUNCTION loyalty.my_consents() IS 'Guest app: the bound member''s consents in force';

CREATE FUNCTION loyalty.my_consent_set(idempotency_key text, purpose text, granted boolean,
    notice_version text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m uuid := loyalty._app_member(true);
    req jsonb;
BEGIN
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    IF purpose IS NULL OR granted IS NULL OR notice_version IS NULL THEN
        RAISE EXCEPTION 'purpose, granted and notice_version must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF purpose NOT IN ('marketing_email', 'marketing_sms', 'profiling', 'cross_border', 'third_party') THEN
        RAISE EXCEPTION 'invalid consent purpose "%"', purpose USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Purposes are marketing_email, marketing_sms, profiling, cross_border and third_party.';
    END IF;
    IF length(notice_version) NOT BETWEEN 1 AND 50 THEN
        RAISE EXCEPTION 'notice_version must be 1 to 50 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    req := pg_catalog.jsonb_build_array(m, purpose, granted, notice_version);
    IF loyalty._request_begin('my_consent_set', idempotency_key, req) IS NOT NULL THEN
        RETURN;
    END IF;
    INSERT INTO loyalty.member_consent (member_id, purpose, granted, notice_version, store_code)
        VALUES (m, purpose, granted, notice_version, NULL);
    PERFORM loyalty._audit_change(m, 'my_consent_set', 'member',
        pg_catalog.jsonb_build_object('purpose', purpose, 'granted', granted));
    PERFORM loyalty._event_emit('consent_changed', m, NULL,
        pg_catalog.jsonb_build_object('purpose', purpose, 'granted', granted, 'channel', 'app'));
    PERFORM loyalty._request_end('my_consent_set', idempotency_key, req, 'null'::jsonb);
END
$$;
COMMENT ON FUNCTION loyalty.my_consent_set(text, text, boolean, text) IS
    'Guest app: the bound member grants or withdraws a consent; audited, announced';

-- loyalty.my_contact_update(idempotency_key, phone, email, address): the
-- member's own contact data, checked as at enrolment; null leaves a field
-- as it is, '' clears email or address.
CREATE FUNCTION loyalty.my_contact_update(idempotency_key text, phone text DEFAULT NULL,
    email text DEFAULT NULL, address text DEFAULT NULL)
    RETURNS text[]
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m uuid := loyalty._app_member(true);
    req jsonb;
    prior jsonb;
    old record;
    changed text[] := '{}';
BEGIN
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    IF phone IS NULL AND email IS NULL AND address IS NULL THEN
        RAISE EXCEPTION 'nothing to change' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Give a new phone, email or address.';
    END IF;
    IF phone IS NOT NULL AND phone !~ '^\+?[0-9]{5,20}$' THEN
        RAISE EXCEPTION 'invalid phone number' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'A phone number is 5 to 20 digits with an optional leading +.';
    END IF;
    IF email IS NOT NULL AND email <> '' AND NOT (length(email) <= 254
        AND email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$') THEN
        RAISE EXCEPTION 'invalid email address' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF address IS NOT NULL AND address <> '' AND (btrim(address) = '' OR length(address) > 500) THEN
        RAISE EXCEPTION 'address must be 1 to 500 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    req := pg_catalog.jsonb_build_array(m, phone, email, address);
    prior := loyalty._request_begin('my_contact_update', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(prior));
    END IF;
    SELECT p.phone, p.email, p.address INTO old FROM loyalty.member_profile p
     WHERE p.member_id = m FOR UPDATE;
    IF phone IS NOT NULL AND phone IS DISTINCT FROM old.phone THEN changed := changed || 'phone'::text; END IF;
    IF email IS NOT NULL AND nullif(email, '') IS DISTINCT FROM old.email THEN changed := changed || 'email'::text; END IF;
    IF address IS NOT NULL AND nullif(address, '') IS DISTINCT FROM old.address THEN changed := changed || 'address'::text; END IF;
    UPDATE loyalty.member_profile p
       SET phone = coalesce(my_contact_update.phone, p.phone),
           email = CASE WHEN my_contact_update.email IS NULL THEN p.email ELSE nullif(my_contact_update.email, '') END,
           address = CASE WHEN my_contact_update.address IS NULL THEN p.address ELSE nullif(my_contact_update.address, '') END
     WHERE p.member_id = m;
    UPDATE loyalty.member x SET updated_at = now(), last_verified_at = now() WHERE x.member_id = m;
    -- masked old and new values, as member_update records them
    PERFORM loyalty._audit_change(m, 'my_contact_update', 'member',
        pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'phone', CASE WHEN 'phone' = ANY (changed) THEN pg_catalog.jsonb_build_object(
                'old', loyalty.mask_phone(old.phone), 'new', loyalty.mask_phone(phone)) END,
            'email', CASE WHEN 'email' = ANY (changed) THEN pg_catalog.jsonb_build_object(
                'old', loyalty.mask_email(old.email), 'new', loyalty.mask_email(nullif(email, ''))) END,
            'address', CASE WHEN 'address' = ANY (changed) THEN pg_catalog.jsonb_build_object(
                'old', '****', 'new', '****') END)));
    IF cardinality(changed) > 0 THEN
        PERFORM loyalty._event_emit('member_updated', m, NULL,
            pg_catalog.jsonb_build_object('fields', pg_catalog.to_jsonb(changed), 'channel', 'app'));
    END IF;
    PERFORM loyalty._request_end('my_contact_update', idempotency_key, req, pg_catalog.to_jsonb(changed));
    RETURN changed;
END
$$;
COMMENT ON FUNCTION loyalty.my_contact_update(text, text, text, text) IS
    'Guest app: the bound member changes phone, email or address (checked as at enrolment); audited masked, announced';

CREATE FUNCTION loyalty.my_request(idempotency_key text, kind text)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m uuid := loyalty._app_member(false);
    req jsonb;
    prior jsonb;
    id uuid;
BEGIN
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    IF kind IS NULL OR kind NOT IN ('export', 'erasure') THEN
        RAISE EXCEPTION 'invalid request kind "%"', kind USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use "export" or "erasure".';
    END IF;
    req := pg_catalog.jsonb_build_array(m, kind);
    prior := loyalty._request_begin('my_request', idempotency_key, req);
    IF prior IS NOT NULL THEN
        RETURN (prior #>> '{}')::uuid;
    END IF;
    INSERT INTO loyalty.member_app_request (member_id, kind, login)
        VALUES (m, kind, (SELECT w.role::name FROM loyalty.whoami() w))
        RETURNING request_id INTO id;
    PERFORM loyalty._audit_change(m, 'my_request', 'privacy',
        pg_catalog.jsonb_build_object('request_id', id, 'kind', kind));
    PERFORM loyalty._event_emit('member_privacy_requested', m, NULL,
        pg_catalog.jsonb_build_object('request_id', id, 'kind', kind));
    PERFORM loyalty._request_end('my_request', idempotency_key, req, pg_catalog.to_jsonb(id));
    RETURN id;
END
$$;
COMMENT ON FUNCTION loyalty.my_request(text, text) IS
    'Guest app: the bound member asks for an export or an erasure of their data (HQ acts on it); audited, announced';

REVOKE ALL ON FUNCTION loyalty.member_app_bind(text, name, uuid), loyalty.member_app_unbind(text, name),
    loyalty.my_profile(), loyalty.my_statement(integer), loyalty.my_tier(), loyalty.my_consents(),
    loyalty.my_consent_set(text, text, boolean, text), loyalty.my_contact_update(text, text, text, text),
    loyalty.my_request(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.member_app_bind(text, name, uuid), loyalty.member_app_unbind(text, name)
    TO loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.my_profile(), loyalty.my_statement(integer), loyalty.my_tier(),
    loyalty.my_consents(), loyalty.my_consent_set(text, text, boolean, text),
    loyalty.my_contact_update(text, text, text, text), loyalty.my_request(text, text)
    TO loyalty_member_app;
