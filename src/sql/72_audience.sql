-- Audiences and the campaigns that use them (docs/segments.md, issue 16
-- item 3): a campaign targets a segment (its audience, with a held-out
-- control group drawn at targeting time), may require registration
-- (opt-in), and its audience is exported for a channel with unmasked
-- contact data only for the members who consented to that channel, each
-- export recorded in the audit trail.
--
-- The campaign table gains two columns here (not in 20_earning.sql, so
-- that a fresh install and an upgraded 1.1 database add them the same
-- way): segment_code, set by loyalty.campaign_target, and
-- registration_required.  The earning engine (src/earning_campaign.c)
-- applies a targeted campaign only to its audience outside the control
-- group, and a campaign that requires registration only to registered
-- members.

ALTER TABLE loyalty.campaign
    ADD COLUMN segment_code text,
    ADD COLUMN registration_required boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN loyalty.campaign.segment_code IS 'The segment the campaign targets (set by campaign_target); NULL: everyone the filters match';
COMMENT ON COLUMN loyalty.campaign.registration_required IS 'The campaign applies only to members who registered (campaign_register)';
GRANT INSERT (registration_required), UPDATE (registration_required)
    ON loyalty.campaign TO loyalty_marketing, loyalty_crm;

-- The targeting of a campaign: one per campaign.
CREATE TABLE loyalty.campaign_targeting (
    campaign_id     uuid PRIMARY KEY REFERENCES loyalty.campaign ON DELETE CASCADE,
    segment_id      uuid NOT NULL REFERENCES loyalty.segment_def,
    segment_run     uuid NOT NULL REFERENCES loyalty.job,
    control_percent integer NOT NULL
        CONSTRAINT campaign_targeting_control_range CHECK (control_percent BETWEEN 0 AND 50),
    audience        bigint NOT NULL,
    control         bigint NOT NULL,
    idempotency_key text NOT NULL
        CONSTRAINT campaign_targeting_idempotency_key_key UNIQUE
        CONSTRAINT campaign_targeting_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    targeted_at     timestamptz NOT NULL DEFAULT now(),
    targeted_by     name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.campaign_targeting IS 'Which segment (and run) a campaign targets, with the control share';
SELECT pg_catalog.pg_extension_config_dump('loyalty.campaign_targeting', '');

-- The audience of a targeted campaign, drawn at targeting time: control
-- members are held out (the campaign does not apply to them) and measured.
CREATE TABLE loyalty.campaign_audience (
    campaign_id uuid NOT NULL REFERENCES loyalty.campaign ON DELETE CASCADE,
    member_id   uuid NOT NULL,
    control     boolean NOT NULL,
    PRIMARY KEY (campaign_id, member_id)
);
COMMENT ON TABLE loyalty.campaign_audience IS 'Members of a campaign''s audience; control members are held out and measured';
SELECT pg_catalog.pg_extension_config_dump('loyalty.campaign_audience', '');

-- Registrations (opt-in) to campaigns.
CREATE TABLE loyalty.campaign_registration (
    registration_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id     uuid NOT NULL REFERENCES loyalty.campaign ON DELETE CASCADE,
    member_id       uuid NOT NULL,
    store_code      text,
    registered_at   timestamptz NOT NULL DEFAULT now(),
    registered_by   name NOT NULL DEFAULT session_user,
    idempotency_key text NOT NULL
        CONSTRAINT campaign_registration_idempotency_key_key UNIQUE
        CONSTRAINT campaign_registration_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    CONSTRAINT campaign_registration_member_key UNIQUE (campaign_id, member_id)
);
COMMENT ON TABLE loyalty.campaign_registration IS 'Members who registered (opted in) to a campaign';
CREATE INDEX campaign_registration_member_idx ON loyalty.campaign_registration (member_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.campaign_registration', '');

-- Every audience export, and the members it gave out.
CREATE TABLE loyalty.audience_export (
    export_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id     uuid NOT NULL REFERENCES loyalty.campaign ON DELETE CASCADE,
    channel         text NOT NULL
        CONSTRAINT audience_export_channel_valid CHECK (channel IN ('sms', 'email')),
    members         bigint NOT NULL,
    idempotency_key text NOT NULL
        CONSTRAINT audience_export_idempotency_key_key UNIQUE
        CONSTRAINT audience_export_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    exported_at     timestamptz NOT NULL DEFAULT now(),
    exported_by     name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.audience_export IS 'Audience exports: campaign, channel, how many members, who and when';
SELECT pg_catalog.pg_extension_config_dump('loyalty.audience_export', '');

CREATE TABLE loyalty.audience_export_member (
    export_id uuid NOT NULL REFERENCES loyalty.audience_export ON DELETE CASCADE,
    member_id uuid NOT NULL,
    PRIMARY KEY (export_id, member_id)
);
COMMENT ON TABLE loyalty.audience_export_member IS 'The members each audience export gave out';
SELECT pg_catalog.pg_extension_config_dump('loyalty.audience_export_member', '');

-- loyalty._audience_control(campaign_id, member_id, percent): is a member
-- in the control group?  A keyed hash of campaign and member, so the draw
-- is fixed at targeting time and reproducible.
CREATE FUNCTION loyalty._audience_control(campaign_id uuid, member_id uuid, control_percent integer)
    RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (('x' || substr(md5($1::text || $2::text), 1, 8))::bit(32)::bigint % 100) < $3
$$;

-- loyalty._campaign_by_code(code): the campaign's id, or error P0002.
CREATE FUNCTION loyalty._campaign_by_code(code text) RETURNS loyalty.campaign
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c loyalty.campaign;
BEGIN
    IF code IS NULL THEN
        RAISE EXCEPTION 'campaign must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO c FROM loyalty.campaign x WHERE x.code = _campaign_by_code.code;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'campaign "%" not found', code USING ERRCODE = 'no_data_found';
    END IF;
    RETURN c;
END
$$;

-- loyalty.campaign_target(idempotency_key, campaign, segment,
-- control_percent): target a campaign at the members of a segment in its
-- latest finished run, holding out control_percent of them as the control
-- group.  A campaign is targeted once.
CREATE FUNCTION loyalty.campaign_target(idempotency_key text, campaign text, segment text,
    control_percent integer DEFAULT 10,
    OUT segment_run uuid, OUT audience bigint, OUT control bigint, OUT replayed boolean)
    RETURNS record
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c loyalty.campaign;
    t loyalty.campaign_targeting;
    seg uuid;
    run uuid;
BEGIN
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    c := loyalty._campaign_by_code(campaign);
    IF segment IS NULL OR control_percent IS NULL THEN
        RAISE EXCEPTION 'segment and control_percent must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF control_percent NOT BETWEEN 0 AND 50 THEN
        RAISE EXCEPTION 'control_percent must be between 0 and 50' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT s.segment_id INTO seg FROM loyalty.segments s WHERE s.code = segment;
    IF seg IS NULL THEN
        RAISE EXCEPTION 'segment "%" not found', segment USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM 1 FROM loyalty.campaign x WHERE x.campaign_id = c.campaign_id FOR UPDATE;
    SELECT * INTO t FROM loyalty.campaign_targeting x WHERE x.idempotency_key = campaign_target.idempotency_key;
    IF FOUND THEN
        IF t.campaign_id = c.campaign_id AND t.segment_id = seg AND t.control_percent = campaign_target.control_percent THEN
            segment_run := t.segment_run; audience := t.audience; control := t.control; replayed := true;
            RETURN;
        END IF;
        RAISE EXCEPTION 'idempotency_key was already used with other arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM loyalty.campaign_targeting x WHERE x.campaign_id = c.campaign_id) THEN
        RAISE EXCEPTION 'campaign "%" is already targeted', campaign USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Create another campaign to target another segment.';
    END IF;
    run := loyalty._segment_run_for(segment, pg_catalog.now());
    IF run IS NULL THEN
        RAISE EXCEPTION 'segment "%" has no finished run', segment USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Run loyalty.segment_refresh first.';
    END IF;
    INSERT INTO loyalty.campaign_audience (campaign_id, member_id, control)
    SELECT c.campaign_id, m.member_id, loyalty._audience_control(c.campaign_id, m.member_id, campaign_target.control_percent)
      FROM loyalty.segment_members(segment, pg_catalog.now()) m;
    SELECT count(*) FILTER (WHERE NOT a.control), count(*) FILTER (WHERE a.control) INTO audience, control
      FROM loyalty.campaign_audience a WHERE a.campaign_id = c.campaign_id;
    INSERT INTO loyalty.campaign_targeting (campaign_id, segment_id, segment_run, control_percent, audience, control, idempotency_key)
    VALUES (c.campaign_id, seg, run, campaign_target.control_percent, audience, control, idempotency_key);
    UPDATE loyalty.campaign x SET segment_code = segment WHERE x.campaign_id = c.campaign_id;
    segment_run := run;
    replayed := false;
    PERFORM loyalty._audit_change(NULL, 'campaign_target', 'marketing',
        jsonb_build_object('campaign', campaign, 'segment', segment, 'segment_run', run,
                           'audience', audience, 'control', control));
END
$$;
COMMENT ON FUNCTION loyalty.campaign_target(text, text, text, integer) IS
    'Target a campaign at a segment''s latest members, holding out a control group drawn now; idempotent, once per campaign';

-- loyalty.campaign_register(idempotency_key, campaign, member_id): a
-- member opts in to a campaign that requires registration (and, for a
-- targeted campaign, is in its audience outside the control group).
CREATE FUNCTION loyalty.campaign_register(idempotency_key text, campaign text, member_id uuid,
    OUT registration_id uuid, OUT registered_at timestamptz, OUT replayed boolean)
    RETURNS record
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c loyalty.campaign;
    g loyalty.campaign_registration;
BEGIN
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    PERFORM loyalty._check_access(NULL, ARRAY['frontdesk', 'store_manager', 'crm', 'marketing']);
    c := loyalty._campaign_by_code(campaign);
    IF member_id IS NULL THEN
        RAISE EXCEPTION 'member_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO g FROM loyalty.campaign_registration x WHERE x.idempotency_key = campaign_register.idempotency_key;
    IF FOUND THEN
        IF g.campaign_id = c.campaign_id AND g.member_id = campaign_register.member_id THEN
            registration_id := g.registration_id; registered_at := g.registered_at; replayed := true;
            RETURN;
        END IF;
        RAISE EXCEPTION 'idempotency_key was already used with other arguments' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = campaign_register.member_id AND m.status = 'active') THEN
        RAISE EXCEPTION 'member not found' USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT c.registration_required THEN
        RAISE EXCEPTION 'campaign "%" does not take registrations', campaign USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'It applies to every member its filters match.';
    END IF;
    IF NOT c.active OR c.ends_at <= pg_catalog.now() THEN
        RAISE EXCEPTION 'campaign "%" is closed', campaign USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF c.segment_code IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM loyalty.campaign_audience a
         WHERE a.campaign_id = c.campaign_id AND a.member_id = campaign_register.member_id AND NOT a.control) THEN
        RAISE EXCEPTION 'the member is not invited to campaign "%"', campaign USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO g FROM loyalty.campaign_registration x
     WHERE x.campaign_id = c.campaign_id AND x.member_id = campaign_register.member_id;
    IF FOUND THEN
        registration_id := g.registration_id; registered_at := g.registered_at; replayed := true;
        RETURN;
    END IF;
    INSERT INTO loyalty.campaign_registration (campaign_id, member_id, store_code, idempotency_key)
    VALUES (c.campaign_id, campaign_register.member_id, loyalty.caller_store(), idempotency_key)
    ON CONFLICT ON CONSTRAINT campaign_registration_member_key DO NOTHING
    RETURNING campaign_registration.registration_id, campaign_registration.registered_at
         INTO registration_id, registered_at;
    IF registration_id IS NULL THEN
        -- a concurrent registration of the same member won
        SELECT x.registration_id, x.registered_at INTO registration_id, registered_at
          FROM loyalty.campaign_registration x
         WHERE x.campaign_id = c.campaign_id AND x.member_id = campaign_register.member_id;
        replayed := true;
        RETURN;
    END IF;
    replayed := false;
    PERFORM loyalty._audit_change(campaign_register.member_id, 'campaign_register', 'marketing',
        jsonb_build_object('campaign', campaign));
END
$$;
COMMENT ON FUNCTION loyalty.campaign_register(text, text, uuid) IS
    'Register (opt in) a member to a campaign that requires registration; idempotent';

-- loyalty._audience_channel_purpose(channel): the consent purpose a
-- channel needs, or an error.
CREATE FUNCTION loyalty._audience_channel_purpose(channel text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF channel IS NULL THEN
        RAISE EXCEPTION 'channel must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN CASE channel WHEN 'sms' THEN 'marketing_sms' WHEN 'email' THEN 'marketing_email' END;
END
$$;

-- loyalty.audience_export(idempotency_key, campaign, channel): the
-- campaign's audience (control group held out) for one channel, with
-- unmasked contact data, only for active members who consented to the
-- channel's marketing purpose and have not withdrawn profiling consent.
-- Each member given out is recorded in the audit trail (purpose
-- marketing).  A retry with the same key gives the same members again,
-- less any who withdrew meanwhile.
CREATE FUNCTION loyalty.audience_export(idempotency_key text, campaign text, channel text)
    RETURNS TABLE (member_id uuid, card_no text, full_name text, contact text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c loyalty.campaign;
    e loyalty.audience_export;
    purpose text;
    n bigint;
    o record;
BEGIN
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'marketing']);
    c := loyalty._campaign_by_code(campaign);
    purpose := loyalty._audience_channel_purpose(channel);
    IF purpose IS NULL THEN
        RAISE EXCEPTION 'unknown channel "%"', channel USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Channels are sms and email; app push needs a consent purpose of its own first.';
    END IF;
    SELECT * INTO e FROM loyalty.audience_export x WHERE x.idempotency_key = audience_export.idempotency_key;
    IF FOUND THEN
        IF e.campaign_id <> c.campaign_id OR e.channel <> audience_export.channel THEN
            RAISE EXCEPTION 'idempotency_key was already used with other arguments' USING ERRCODE = 'invalid_parameter_value';
        END IF;
    ELSE
        IF c.segment_code IS NULL THEN
            RAISE EXCEPTION 'campaign "%" has no audience', campaign USING ERRCODE = 'object_not_in_prerequisite_state',
                HINT = 'Target it at a segment with loyalty.campaign_target first.';
        END IF;
        INSERT INTO loyalty.audience_export (campaign_id, channel, members, idempotency_key)
        VALUES (c.campaign_id, audience_export.channel, 0, audience_export.idempotency_key)
        RETURNING * INTO e;
        INSERT INTO loyalty.audience_export_member (export_id, member_id)
        SELECT e.export_id, a.member_id
          FROM loyalty.campaign_audience a
          JOIN loyalty.member m ON m.member_id = a.member_id
         WHERE a.campaign_id = c.campaign_id AND NOT a.control AND m.status = 'active';
    END IF;
    -- consent is checked now, also on a retry
    n := 0;
    FOR o IN
        SELECT m.member_id, m.card_no, p.full_name,
               CASE audience_export.channel WHEN 'sms' THEN p.phone ELSE p.email END AS contact
          FROM loyalty.audience_export_member x
          JOIN loyalty.member m ON m.member_id = x.member_id AND m.status = 'active'
          JOIN loyalty.member_profile p ON p.member_id = m.member_id
         WHERE x.export_id = e.export_id
           AND CASE audience_export.channel WHEN 'sms' THEN p.phone ELSE p.email END IS NOT NULL
           AND loyalty._segment_consent(m.member_id, purpose)
           AND loyalty._segment_consent(m.member_id, 'profiling')
         ORDER BY m.member_id
    LOOP
        PERFORM loyalty._audit_change(o.member_id, 'audience_export', 'marketing',
            jsonb_build_object('campaign', campaign, 'channel', audience_export.channel,
                               'export', e.export_id));
        member_id := o.member_id;
        card_no := o.card_no;
        full_name := o.full_name;
        contact := o.contact;
        n := n + 1;
        RETURN NEXT;
    END LOOP;
    UPDATE loyalty.audience_export x SET members = n WHERE x.export_id = e.export_id;
END
$$;
COMMENT ON FUNCTION loyalty.audience_export(text, text, text) IS
    'A targeted campaign''s audience for a channel (sms, email) with unmasked contact, only for members who consented; each member given out is audited';

REVOKE ALL ON loyalty.campaign_targeting, loyalty.campaign_audience, loyalty.campaign_registration,
    loyalty.audience_export, loyalty.audience_export_member FROM PUBLIC;
GRANT SELECT ON loyalty.campaign_targeting, loyalty.campaign_registration, loyalty.audience_export
    TO loyalty_crm, loyalty_marketing;
GRANT SELECT ON loyalty.campaign_targeting, loyalty.campaign_audience, loyalty.campaign_registration,
    loyalty.earning_line TO loyalty_view_owner;
REVOKE ALL ON FUNCTION loyalty._audience_control(uuid, uuid, integer),
    loyalty._campaign_by_code(text), loyalty._audience_channel_purpose(text),
    loyalty.campaign_target(text, text, text, integer),
    loyalty.campaign_register(text, text, uuid),
    loyalty.audience_export(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.campaign_target(text, text, text, integer),
    loyalty.audience_export(text, text, text) TO loyalty_crm, loyalty_marketing;
GRANT EXECUTE ON FUNCTION loyalty.campaign_register(text, text, uuid)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_marketing;
