-- audit (issue 13): the log gains the change detail and an index by role
-- and is partitioned by month (a new table; the rows move in 42);
-- the writer pool (src/audit_writer.c) replaces the per-session writer and
-- its SQL append function; the hash, verification and traces are recreated
-- by 42_audit_trail.sql; _audit_change records in the changing transaction.
DROP FUNCTION loyalty.audit_verify();
DROP FUNCTION loyalty.audit_member(uuid, timestamptz);
DROP FUNCTION loyalty.audit_role(text, timestamptz);
DROP FUNCTION loyalty._audit_hash(bytea, bigint, timestamptz, text, text, text, text, uuid, text, text[], text);
DROP FUNCTION loyalty._audit_append(text, text, text, text, uuid, text, text[], text, timestamptz);
DROP FUNCTION loyalty.audit_head();

-- The 1.1 log is set aside (no longer a member, so no longer in the dump)
-- and replaced by the partitioned log; 42_audit_trail.sql moves its rows
-- (into the default partition) and drops it.
ALTER EXTENSION loyalty DROP TABLE loyalty.audit_log;
ALTER TABLE loyalty.audit_log RENAME TO _audit_log_11;
ALTER INDEX loyalty.audit_log_pkey RENAME TO _audit_log_11_pkey;
ALTER INDEX loyalty.audit_log_member_idx RENAME TO _audit_log_11_member_idx;
ALTER INDEX loyalty.audit_log_login_idx RENAME TO _audit_log_11_login_idx;

-- Partitioned by month of "at" (UTC), so that the months past the
-- retention period are dropped whole (loyalty.audit_retention_purge, in
-- 42_audit_trail.sql).  The months' partitions, loyalty._audit_log_YYYY_MM,
-- are created ahead by the audit retention job
-- (loyalty._audit_partition_ensure): they are not members of the
-- extension, so pg_dump dumps them (definition and rows) like any table of
-- the database, and a restore attaches them to the extension's log.  A
-- record of a month without a partition (the job not scheduled, the 1.1
-- log after an update) goes to the default partition, a member registered
-- for the dump; the purge deletes its old rows month by month.  The
-- writers never create a partition: that needs an exclusive lock on the
-- log, which readers waiting for their records hold a share of.
CREATE TABLE loyalty.audit_log (
    audit_id    bigint NOT NULL,            -- gapless, in chain order
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
    hash        bytea NOT NULL,
    detail      jsonb                       -- changes: what changed (masked)
) PARTITION BY RANGE (at);
COMMENT ON TABLE loyalty.audit_log IS
    'Append-only, hash-chained record of sensitive reads and of every change to member data';
SELECT pg_catalog.pg_extension_config_dump('loyalty.audit_log', '');
ALTER TABLE loyalty.audit_log ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
REVOKE ALL ON loyalty.audit_log FROM PUBLIC;
-- Each partition has its own key and indexes (by id, by member, by login,
-- and by role: partial, the records of a role taken by another login and
-- every lookup, the only records read by role; a change record made by a
-- login as itself, most of them, costs one index entry less), none on the
-- log itself: a partition that is not a member is
-- dumped with its indexes, and attaching it on restore must not create
-- them a second time from the log's.
CREATE TABLE loyalty._audit_log_default PARTITION OF loyalty.audit_log DEFAULT;
ALTER TABLE loyalty._audit_log_default ADD CONSTRAINT _audit_log_default_pkey PRIMARY KEY (audit_id);
CREATE INDEX _audit_log_default_member_idx ON loyalty._audit_log_default (member_id, at);
CREATE INDEX _audit_log_default_login_idx ON loyalty._audit_log_default (login, at);
CREATE INDEX _audit_log_default_role_idx ON loyalty._audit_log_default (role, at)
    WHERE login <> role OR action IN ('lookup', 'lookup_miss', 'verify_id', 'verify_id_miss', 'lookup_refused');
SELECT pg_catalog.pg_extension_config_dump('loyalty._audit_log_default', '');
REVOKE ALL ON loyalty._audit_log_default FROM PUBLIC;

-- Append-only, also for the owner of the API functions: no UPDATE, DELETE
-- or TRUNCATE (superusers can drop the triggers; the hash chain then shows
-- any change, see loyalty.audit_verify()).
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON loyalty.audit_log
    FOR EACH ROW EXECUTE FUNCTION loyalty._audit_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON loyalty.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._audit_append_only();
-- the triggers fire in replica mode too (session_replication_role)
ALTER TABLE loyalty.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE loyalty.audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;
-- statement triggers are not inherited
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON loyalty._audit_log_default
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._audit_append_only();
ALTER TABLE loyalty._audit_log_default ENABLE ALWAYS TRIGGER audit_log_no_truncate;

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

REVOKE ALL ON FUNCTION loyalty.audit_head() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.audit_head() TO loyalty_crm, loyalty_dba;

-- loyalty._audit_change(member_id, action, purpose, detail): the record of
-- one change made by an API function, written in the changing transaction
-- (src/audit.c); purpose is a code of loyalty.audit_purpose (22023
-- otherwise).  C code calls loyalty_audit_change() (src/audit.h) instead.
CREATE FUNCTION loyalty._audit_change(member_id uuid, action text, purpose text,
    detail jsonb DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'loyalty_audit_change_sql';
REVOKE ALL ON FUNCTION loyalty._audit_change(uuid, text, text, jsonb) FROM PUBLIC;
