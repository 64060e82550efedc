-- The audit trail (docs/privacy.md): who (login and role), where (store,
-- department), what (member, fields, action, purpose) and when.  Records are
-- written by each session's audit writer (src/audit.c) in transactions of
-- their own, so a read stays on record when the reader rolls back.
-- Append-only for everyone, and a hash chain makes any edit detectable.

CREATE TABLE loyalty.audit_log (
    audit_id    bigint PRIMARY KEY,         -- gapless, in chain order
    at          timestamptz NOT NULL,
    login       text NOT NULL,
    role        text NOT NULL,
    store_code  text,
    department  text,
    member_id   uuid,
    action      text NOT NULL
        CONSTRAINT audit_action_format CHECK (action ~ '^[a-z][a-z_]{0,31}$'),
    fields      text[],
    purpose     text
        CONSTRAINT audit_purpose_length CHECK (length(purpose) <= 200),
    prev_hash   bytea,
    hash        bytea NOT NULL
);
COMMENT ON TABLE loyalty.audit_log IS
    'Append-only, hash-chained record of sensitive reads and of every change to member data';
CREATE INDEX audit_log_member_idx ON loyalty.audit_log (member_id, at);
CREATE INDEX audit_log_login_idx ON loyalty.audit_log (login, at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.audit_log', '');
ALTER TABLE loyalty.audit_log ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
REVOKE ALL ON loyalty.audit_log FROM PUBLIC;

-- The canonical text of a record, hashed with the previous record's hash.
-- %L quotes every value and spells NULL, so no two records share a text.
CREATE FUNCTION loyalty._audit_hash(prev bytea, audit_id bigint, at timestamptz,
    login text, role text, store_code text, department text, member_id uuid,
    action text, fields text[], purpose text) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN pg_catalog.sha256(coalesce(prev, '\x'::bytea) || pg_catalog.convert_to(
        pg_catalog.format('%s %s %L %L %L %L %L %L %L %L', audit_id,
            (extract(epoch FROM at) * 1000000)::bigint, login, role, store_code,
            department, member_id, action, fields, purpose), 'UTF8'));

-- Called by the audit writer only (as the bootstrap superuser).
CREATE FUNCTION loyalty._audit_append(login text, role text, store_code text,
    department text, member_id uuid, action text, fields text[], purpose text,
    at timestamptz) RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    last_id bigint;
    last_hash bytea;
BEGIN
    -- one writer at a time extends the chain; readers are not blocked
    LOCK TABLE loyalty.audit_log IN SHARE ROW EXCLUSIVE MODE;
    SELECT a.audit_id, a.hash INTO last_id, last_hash
      FROM loyalty.audit_log a ORDER BY a.audit_id DESC LIMIT 1;
    last_id := coalesce(last_id, 0) + 1;
    INSERT INTO loyalty.audit_log (audit_id, at, login, role, store_code, department,
                                   member_id, action, fields, purpose, prev_hash, hash)
    VALUES (last_id, at, login, role, store_code, department, member_id, action,
            fields, purpose, last_hash,
            loyalty._audit_hash(last_hash, last_id, at, login, role, store_code,
                                department, member_id, action, fields, purpose));
    RETURN last_id;
END
$$;

CREATE FUNCTION loyalty._audit(member_id uuid, action text, fields text[], purpose text)
    RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'loyalty_audit';

-- Append-only, also for the owner of the API functions: no UPDATE, DELETE
-- or TRUNCATE (superusers can drop the triggers; the hash chain then shows
-- any change, see loyalty.audit_verify()).
CREATE FUNCTION loyalty._audit_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = pg_catalog.format('%s on loyalty.audit_log is not allowed.', TG_OP);
END
$$;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON loyalty.audit_log
    FOR EACH ROW EXECUTE FUNCTION loyalty._audit_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON loyalty.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._audit_append_only();
-- the triggers fire in replica mode too (session_replication_role)
ALTER TABLE loyalty.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE loyalty.audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;

-- loyalty.audit_verify(): every break of the chain (edited, deleted or
-- inserted records); no rows means the log is intact.
CREATE FUNCTION loyalty.audit_verify()
    RETURNS TABLE (audit_id bigint, problem text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT c.audit_id, c.problem FROM (
        SELECT a.audit_id,
               CASE
                 WHEN a.audit_id <> coalesce(lag(a.audit_id) OVER w, 0) + 1 THEN 'gap before this record'
                 WHEN a.prev_hash IS DISTINCT FROM lag(a.hash) OVER w THEN 'previous hash does not match'
                 WHEN a.hash <> loyalty._audit_hash(a.prev_hash, a.audit_id, a.at, a.login, a.role,
                          a.store_code, a.department, a.member_id, a.action, a.fields, a.purpose)
                   THEN 'record does not match its hash'
               END AS problem
          FROM loyalty.audit_log a
        WINDOW w AS (ORDER BY a.audit_id)) c
     WHERE c.problem IS NOT NULL
     ORDER BY c.audit_id;
END;
COMMENT ON FUNCTION loyalty.audit_verify() IS
    'Check the audit hash chain; returns each broken record (none: intact)';

-- loyalty.audit_head(): the latest record's id and hash, to be kept outside
-- the database (anchoring the chain against a rewrite of the whole log).
CREATE FUNCTION loyalty.audit_head(OUT audit_id bigint, OUT hash text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT a.audit_id, pg_catalog.encode(a.hash, 'hex') FROM loyalty.audit_log a
     ORDER BY a.audit_id DESC LIMIT 1;
END;
COMMENT ON FUNCTION loyalty.audit_head() IS
    'The latest audit record''s id and hash, to keep outside the database as the chain''s anchor';;

-- "Who saw member X": every access to one member.
CREATE FUNCTION loyalty.audit_member(member_id uuid, since timestamptz DEFAULT '-infinity')
    RETURNS TABLE (at timestamptz, login text, role text, store_code text,
                   department text, action text, fields text[], purpose text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT a.at, a.login, a.role, a.store_code, a.department, a.action, a.fields, a.purpose
      FROM loyalty.audit_log a
     WHERE a.member_id = audit_member.member_id AND a.at >= audit_member.since
       AND (SELECT loyalty.caller_is_hq())
     ORDER BY a.audit_id;
END;
COMMENT ON FUNCTION loyalty.audit_member(uuid, timestamptz) IS 'Who accessed a member, when, what and why';

-- "What did role Y see": every access by one login (or department role).
CREATE FUNCTION loyalty.audit_role(role text, since timestamptz DEFAULT '-infinity')
    RETURNS TABLE (at timestamptz, login text, store_code text, department text,
                   member_id uuid, action text, fields text[], purpose text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT a.at, a.login, a.store_code, a.department, a.member_id, a.action, a.fields, a.purpose
      FROM loyalty.audit_log a
     WHERE (a.login = audit_role.role OR a.role = audit_role.role) AND a.at >= audit_role.since
       AND (SELECT loyalty.caller_is_hq())
     ORDER BY a.audit_id;
END;
COMMENT ON FUNCTION loyalty.audit_role(text, timestamptz) IS 'What a login or role accessed, when and why';

REVOKE ALL ON FUNCTION loyalty._audit_hash(bytea, bigint, timestamptz, text, text, text, text, uuid, text, text[], text),
    loyalty._audit_append(text, text, text, text, uuid, text, text[], text, timestamptz),
    loyalty._audit(uuid, text, text[], text), loyalty._audit_append_only(),
    loyalty.audit_verify(), loyalty.audit_head(),
    loyalty.audit_member(uuid, timestamptz), loyalty.audit_role(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.audit_verify(), loyalty.audit_head(),
    loyalty.audit_member(uuid, timestamptz), loyalty.audit_role(text, timestamptz)
    TO loyalty_crm, loyalty_dba;

-- loyalty._audit_change(member_id, action, purpose, detail): the record of
-- one change made by an API function, called by every mutating function
-- (issue 13).  Interface first: the engineers of other areas call it now;
-- its implementation (same transaction as the change, detail kept) is the
-- audit area's.  Until then it records through loyalty._audit(), with the
-- detail's keys as the fields.
CREATE FUNCTION loyalty._audit_change(member_id uuid, action text, purpose text,
    detail jsonb DEFAULT NULL)
    RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty._audit(member_id, action,
                          (SELECT pg_catalog.array_agg(k ORDER BY k)
                             FROM pg_catalog.jsonb_object_keys(
                                      CASE WHEN pg_catalog.jsonb_typeof(detail) = 'object'
                                           THEN detail ELSE '{}' END) k),
                          purpose)
$$;
REVOKE ALL ON FUNCTION loyalty._audit_change(uuid, text, text, jsonb) FROM PUBLIC;
