-- Authority limits on points (docs/ledger.md, "Authority limits"): a store
-- login credits points only for a stay or a charge (src/ledger_authority.c);
-- a credit with nothing behind it is a manual adjustment, made by a store
-- manager or an HQ role with a reason code, within caps per call and per
-- login and day (settings loyalty.adjust_cap_per_call and
-- loyalty.adjust_cap_per_day), above which it waits for an HQ approval.

CREATE TABLE loyalty.adjust_reason (
    reason_code text PRIMARY KEY
        CONSTRAINT adjust_reason_code_format CHECK (reason_code ~ '^[a-z][a-z0-9_]{0,31}$'),
    description text NOT NULL
        CONSTRAINT adjust_reason_description_length CHECK (length(description) BETWEEN 1 AND 200),
    active      boolean NOT NULL DEFAULT true,
    seeded      boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE loyalty.adjust_reason IS 'Reason codes a manual points adjustment must carry (HQ DBAs add their own)';
-- the seeded rows are part of the extension; the chain's own are user data
SELECT pg_catalog.pg_extension_config_dump('loyalty.adjust_reason', 'WHERE NOT seeded');
INSERT INTO loyalty.adjust_reason (reason_code, description, seeded) VALUES
    ('service_recovery', 'service recovery: a complaint settled with points', true),
    ('missing_credit',   'a stay or charge the program did not credit (no record to earn from)', true),
    ('correction',       'correction of an earlier error in the member''s account', true),
    ('goodwill',         'goodwill gesture of the hotel or headquarters', true);

CREATE TABLE loyalty.adjust_request (
    request_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    idempotency_key text NOT NULL
        CONSTRAINT adjust_request_idempotency_key_key UNIQUE,
    member_id       uuid NOT NULL REFERENCES loyalty.member,
    store_code      text NOT NULL REFERENCES loyalty.store,
    points          bigint NOT NULL
        CONSTRAINT adjust_request_points_range CHECK (points BETWEEN 1 AND 100000000),
    reason_code     text NOT NULL REFERENCES loyalty.adjust_reason,
    note            text
        CONSTRAINT adjust_request_note_length CHECK (length(note) <= 1000),
    requested_by    name NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    status          text NOT NULL
        CONSTRAINT adjust_request_status_valid CHECK (status IN ('applied', 'pending', 'rejected')),
    decided_by      name,
    decided_at      timestamptz,
    decision_key    text
        CONSTRAINT adjust_request_decision_key_key UNIQUE,
    entry_id        uuid,
    CONSTRAINT adjust_request_decided CHECK ((decided_by IS NULL) = (decided_at IS NULL)),
    CONSTRAINT adjust_request_applied_entry CHECK ((status = 'applied') = (entry_id IS NOT NULL))
);
COMMENT ON TABLE loyalty.adjust_request IS
    'Manual points adjustments: applied within the caps, pending above them until an HQ role decides';
CREATE INDEX adjust_request_login_idx ON loyalty.adjust_request (requested_by, requested_at)
    WHERE status = 'applied' AND decided_by IS NULL;
CREATE INDEX adjust_request_pending_idx ON loyalty.adjust_request (requested_at) WHERE status = 'pending';
SELECT pg_catalog.pg_extension_config_dump('loyalty.adjust_request', '');

-- The caps in effect (C settings; loading the module defines them).
CREATE FUNCTION loyalty._adjust_caps(OUT per_call bigint, OUT per_day bigint) RETURNS record
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'loyalty_adjust_caps';

-- The ledger write of a decided adjustment (no rights check: called by
-- points_adjust and points_adjust_approve only).
CREATE FUNCTION loyalty._adjust_credit(
    idempotency_key text, member_id uuid, store_code text, points bigint, reason_code text,
    request_id uuid)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'loyalty_adjust_credit';

CREATE FUNCTION loyalty.points_adjust(
    idempotency_key text, member_id uuid, store_code text, points bigint, reason_code text,
    note text DEFAULT NULL)
    RETURNS loyalty.adjust_request
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    login name;
    caps record;
    used bigint;
    r loyalty.adjust_request;
    res loyalty.ledger_result;
BEGIN
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    IF member_id IS NULL THEN
        RAISE EXCEPTION 'member_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    ELSIF store_code IS NULL THEN
        RAISE EXCEPTION 'store_code must not be null' USING ERRCODE = 'null_value_not_allowed';
    ELSIF reason_code IS NULL THEN
        RAISE EXCEPTION 'reason_code must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'A manual adjustment carries a reason code of loyalty.adjust_reason.';
    END IF;
    PERFORM loyalty._points_check(points);
    PERFORM loyalty._check_access(store_code, ARRAY['store_manager', 'crm', 'dba']);
    IF NOT EXISTS (SELECT 1 FROM loyalty.adjust_reason a
                    WHERE a.reason_code = points_adjust.reason_code AND a.active) THEN
        RAISE EXCEPTION 'unknown adjustment reason "%"', reason_code
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The reason codes are listed in loyalty.adjust_reason.';
    ELSIF length(note) > 1000 THEN
        RAISE EXCEPTION 'note is longer than 1000 characters' USING ERRCODE = 'string_data_right_truncation';
    ELSIF NOT EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = points_adjust.member_id) THEN
        RAISE EXCEPTION 'member % does not exist', member_id USING ERRCODE = 'no_data_found';
    END IF;
    login := (SELECT w.role FROM loyalty.whoami() w);
    -- one login's adjustments one at a time: the daily total below is read
    -- and extended under this lock (test/isolation/specs/ledger_adjust_cap.spec)
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('loyalty.adjust_request'),
                                             pg_catalog.hashtext(login));
    SELECT * INTO r FROM loyalty.adjust_request a WHERE a.idempotency_key = points_adjust.idempotency_key;
    IF FOUND THEN
        IF (r.member_id, r.store_code, r.points, r.reason_code, r.note, r.requested_by)
           IS NOT DISTINCT FROM (points_adjust.member_id, points_adjust.store_code, points_adjust.points,
                                 points_adjust.reason_code, points_adjust.note, login) THEN
            RETURN r;
        END IF;
        RAISE EXCEPTION 'idempotency_key "%" was already used for another adjustment', idempotency_key
            USING ERRCODE = 'unique_violation',
                  HINT = 'Use a fresh key for a new adjustment, and the same key and arguments when retrying one.';
    END IF;
    caps := loyalty._adjust_caps();
    SELECT coalesce(sum(a.points), 0) INTO used FROM loyalty.adjust_request a
     WHERE a.requested_by = login AND a.status = 'applied' AND a.decided_by IS NULL
       AND a.requested_at > pg_catalog.now() - interval '24 hours';
    INSERT INTO loyalty.adjust_request AS a (idempotency_key, member_id, store_code, points, reason_code,
                                             note, requested_by, status, entry_id)
        VALUES (points_adjust.idempotency_key, points_adjust.member_id, points_adjust.store_code,
                points_adjust.points, points_adjust.reason_code, points_adjust.note, login, 'pending', NULL)
        RETURNING * INTO r;
    IF points <= caps.per_call AND used + points <= caps.per_day THEN
        res := loyalty._adjust_credit('adjust:' || r.request_id, r.member_id, r.store_code, r.points,
                                      r.reason_code, r.request_id);
        UPDATE loyalty.adjust_request a SET status = 'applied', entry_id = res.entry_id
         WHERE a.request_id = r.request_id RETURNING * INTO r;
    END IF;
    PERFORM loyalty._audit_change(r.member_id, 'points_adjust', 'loyalty',
        pg_catalog.jsonb_build_object('request_id', r.request_id, 'store_code', r.store_code,
            'points', r.points, 'reason_code', r.reason_code, 'status', r.status));
    RETURN r;
END
$$;
COMMENT ON FUNCTION loyalty.points_adjust(text, uuid, text, bigint, text, text) IS
    'Manual points credit with a reason code (store manager or HQ): applied within the caps, else pending an HQ approval';

-- An HQ role decides a pending adjustment; never the login that asked.
CREATE FUNCTION loyalty._adjust_decide(idempotency_key text, request_id uuid, approve boolean)
    RETURNS loyalty.adjust_request
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    login name;
    r loyalty.adjust_request;
    res loyalty.ledger_result;
    verdict text := CASE WHEN approve THEN 'applied' ELSE 'rejected' END;
BEGIN
    PERFORM loyalty._idempotency_key_check(idempotency_key);
    IF request_id IS NULL THEN
        RAISE EXCEPTION 'request_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty._check_access(NULL, ARRAY['crm', 'dba']);
    login := (SELECT w.role FROM loyalty.whoami() w);
    SELECT * INTO r FROM loyalty.adjust_request a WHERE a.request_id = _adjust_decide.request_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'adjustment request % does not exist', request_id USING ERRCODE = 'no_data_found';
    ELSIF r.decision_key = idempotency_key AND r.status = verdict AND r.decided_by = login THEN
        RETURN r;               -- a retry of this decision
    ELSIF r.status <> 'pending' THEN
        RAISE EXCEPTION 'adjustment request % is %, not pending', request_id, r.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    ELSIF r.requested_by = login THEN
        RAISE EXCEPTION 'an adjustment cannot be decided by the login that requested it'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Another HQ login (crm or dba) approves or rejects it.';
    END IF;
    IF approve THEN
        res := loyalty._adjust_credit('adjust:' || r.request_id, r.member_id, r.store_code, r.points,
                                      r.reason_code, r.request_id);
    END IF;
    UPDATE loyalty.adjust_request a
       SET status = verdict, decided_by = login, decided_at = pg_catalog.now(),
           decision_key = _adjust_decide.idempotency_key, entry_id = res.entry_id
     WHERE a.request_id = r.request_id RETURNING * INTO r;
    PERFORM loyalty._audit_change(r.member_id,
        CASE WHEN approve THEN 'points_adjust_approve' ELSE 'points_adjust_reject' END, 'loyalty',
        pg_catalog.jsonb_build_object('request_id', r.request_id, 'points', r.points,
            'reason_code', r.reason_code, 'requested_by', r.requested_by));
    RETURN r;
END
$$;

CREATE FUNCTION loyalty.points_adjust_approve(idempotency_key text, request_id uuid)
    RETURNS loyalty.adjust_request
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty._adjust_decide($1, $2, true)
$$;
COMMENT ON FUNCTION loyalty.points_adjust_approve(text, uuid) IS
    'HQ: apply a pending points adjustment (never by the login that requested it)';

CREATE FUNCTION loyalty.points_adjust_reject(idempotency_key text, request_id uuid)
    RETURNS loyalty.adjust_request
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty._adjust_decide($1, $2, false)
$$;
COMMENT ON FUNCTION loyalty.points_adjust_reject(text, uuid) IS
    'HQ: refuse a pending points adjustment (never by the login that requested it)';

REVOKE ALL ON TABLE loyalty.adjust_reason, loyalty.adjust_request FROM PUBLIC;
REVOKE ALL ON FUNCTION loyalty._adjust_caps(),
    loyalty._adjust_credit(text, uuid, text, bigint, text, uuid),
    loyalty._adjust_decide(text, uuid, boolean),
    loyalty.points_adjust(text, uuid, text, bigint, text, text),
    loyalty.points_adjust_approve(text, uuid), loyalty.points_adjust_reject(text, uuid) FROM PUBLIC;
GRANT SELECT ON loyalty.adjust_reason, loyalty.adjust_request TO loyalty_crm, loyalty_dba;
GRANT INSERT (reason_code, description, active), UPDATE (description, active)
    ON loyalty.adjust_reason TO loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.points_adjust(text, uuid, text, bigint, text, text)
    TO loyalty_store_manager, loyalty_crm, loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.points_adjust_approve(text, uuid), loyalty.points_adjust_reject(text, uuid)
    TO loyalty_crm, loyalty_dba;
