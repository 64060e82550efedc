-- audit (issue 13): the log gains the change detail and an index by role;
-- the writer pool (src/audit_writer.c) replaces the per-session writer and
-- its SQL append function; the hash, verification and traces are recreated
-- by 42_audit_trail.sql; _audit_change records in the changing transaction.
ALTER TABLE loyalty.audit_log ADD COLUMN detail jsonb;
CREATE INDEX audit_log_role_idx ON loyalty.audit_log (role, at);
DROP FUNCTION loyalty.audit_verify();
DROP FUNCTION loyalty.audit_member(uuid, timestamptz);
DROP FUNCTION loyalty.audit_role(text, timestamptz);
DROP FUNCTION loyalty._audit_hash(bytea, bigint, timestamptz, text, text, text, text, uuid, text, text[], text);
DROP FUNCTION loyalty._audit_append(text, text, text, text, uuid, text, text[], text, timestamptz);

-- loyalty._audit_change(member_id, action, purpose, detail): the record of
-- one change made by an API function, written in the changing transaction
-- (src/audit.c); purpose is a code of loyalty.audit_purpose (22023
-- otherwise).  C code calls loyalty_audit_change() (src/audit.h) instead.
CREATE FUNCTION loyalty._audit_change(member_id uuid, action text, purpose text,
    detail jsonb DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'loyalty_audit_change_sql';
REVOKE ALL ON FUNCTION loyalty._audit_change(uuid, text, text, jsonb) FROM PUBLIC;
