-- The audit trail's chain and queries (docs/audit.md): the hash of a record,
-- purpose codes, change records waiting to be chained, the chain's anchor
-- after retention purges, verification, and the traces by member and by
-- login.  New in 1.2 (src/sql/40_audit.sql holds the log itself).

-- The canonical text of a record, hashed with the previous record's hash.
-- %L quotes every value and spells NULL, so no two records share a text.  A
-- change's detail is appended (records without one keep the 1.1 text).  The
-- writers compute the same hash in C (src/audit_writer.c); audit_verify()
-- recomputes it here.
CREATE FUNCTION loyalty._audit_hash(prev bytea, audit_id bigint, at timestamptz,
    login text, role text, store_code text, department text, member_id uuid,
    action text, fields text[], purpose text, detail jsonb) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN pg_catalog.sha256(coalesce(prev, '\x'::bytea) || pg_catalog.convert_to(
        pg_catalog.format('%s %s %L %L %L %L %L %L %L %L', audit_id,
            (extract(epoch FROM at) * 1000000)::bigint, login, role, store_code,
            department, member_id, action, fields, purpose)
        || CASE WHEN detail IS NULL THEN '' ELSE ' ' || pg_catalog.quote_literal(detail::text) END,
        'UTF8'));

-- Purpose codes of change records (loyalty._audit_change checks them).
CREATE TABLE loyalty.audit_purpose (
    code        text PRIMARY KEY
        CONSTRAINT audit_purpose_code_format CHECK (code ~ '^[a-z][a-z_]{0,31}$'),
    description text NOT NULL,
    seeded      boolean NOT NULL DEFAULT false   -- installed by the extension
);
COMMENT ON TABLE loyalty.audit_purpose IS
    'Purpose codes a change record may carry';
INSERT INTO loyalty.audit_purpose (code, description, seeded) VALUES
    ('service',    'serving the member at a store (check-in, stay, charge)', true),
    ('account',    'maintaining the member''s account and profile', true),
    ('loyalty',    'running the points and tier program', true),
    ('crm',        'customer relationship management at headquarters', true),
    ('marketing',  'campaigns and offers', true),
    ('finance',    'points liability, reconciliation, refunds', true),
    ('security',   'fraud and risk handling', true),
    ('privacy',    'data subject requests, consent, erasure', true),
    ('operations', 'administration of stores, staff, policies and replicas', true),
    ('member',     'requested by the member', true);
SELECT pg_catalog.pg_extension_config_dump('loyalty.audit_purpose', 'WHERE NOT seeded');
REVOKE ALL ON loyalty.audit_purpose FROM PUBLIC;

-- Change records written by the changing transaction, waiting for a writer
-- to chain them into loyalty.audit_log (src/audit.c says why not directly).
-- A queue: every mutating call inserts a row, the writers delete them all a
-- few times a second (docs/performance.md).  So it has no index (the
-- identity orders the rows; the writers and the traces read the few rows
-- waiting by a scan) and no foreign key: the purpose is checked against
-- loyalty.audit_purpose by the insert itself (src/audit.c), without the
-- key-share row lock a foreign key takes on the code (a multixact per
-- concurrent change), no check of the action's format (loyalty_audit_change
-- checks it, as the log's constraint does, before it inserts).  Vacuumed by
-- the writers as they sweep (src/audit_writer.c), and by autovacuum as soon
-- as a thousand rows are dead.
CREATE TABLE loyalty.audit_change_staging (
    staged_id   bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
    at          timestamptz NOT NULL,
    login       text NOT NULL,
    role        text NOT NULL,
    store_code  text,
    department  text,
    member_id   uuid,
    action      text NOT NULL,
    purpose     text NOT NULL,
    detail      jsonb
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_cost_delay = 0);
COMMENT ON TABLE loyalty.audit_change_staging IS
    'Change records committed with their change, not yet on the audit hash chain';
SELECT pg_catalog.pg_extension_config_dump('loyalty.audit_change_staging', '');
-- its identity's sequence too: a restore goes on from the last id dumped
SELECT pg_catalog.pg_extension_config_dump('loyalty.audit_change_staging_staged_id_seq', '');
ALTER TABLE loyalty.audit_change_staging ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
REVOKE ALL ON loyalty.audit_change_staging FROM PUBLIC;

-- The chain's anchor: the last record dropped by a retention purge (id and
-- hash); the chain continues from it and audit_verify() starts there.
CREATE TABLE loyalty.audit_anchor (
    audit_id    bigint PRIMARY KEY,
    hash        bytea NOT NULL,
    purged_at   timestamptz NOT NULL DEFAULT now(),
    purged_before timestamptz NOT NULL,
    records     bigint NOT NULL
);
COMMENT ON TABLE loyalty.audit_anchor IS
    'Where the audit hash chain starts after retention purges';
SELECT pg_catalog.pg_extension_config_dump('loyalty.audit_anchor', '');
REVOKE ALL ON loyalty.audit_anchor FROM PUBLIC;

-- loyalty.audit_verify(): every break of the chain (edited, deleted or
-- inserted records); no rows means the log is intact.  After a retention
-- purge the chain is verified from its anchor (loyalty.audit_anchor): the
-- first record left must follow the last one purged.
CREATE FUNCTION loyalty.audit_verify()
    RETURNS TABLE (audit_id bigint, problem text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT c.audit_id, c.problem FROM (
        SELECT a.audit_id,
               CASE
                 WHEN a.audit_id <> coalesce(lag(a.audit_id) OVER w,
                          (SELECT max(n.audit_id) FROM loyalty.audit_anchor n), 0) + 1
                   THEN 'gap before this record'
                 WHEN a.prev_hash IS DISTINCT FROM coalesce(lag(a.hash) OVER w,
                          (SELECT n.hash FROM loyalty.audit_anchor n ORDER BY n.audit_id DESC LIMIT 1))
                   THEN 'previous hash does not match'
                 WHEN a.hash <> loyalty._audit_hash(a.prev_hash, a.audit_id, a.at, a.login, a.role,
                          a.store_code, a.department, a.member_id, a.action, a.fields, a.purpose, a.detail)
                   THEN 'record does not match its hash'
               END AS problem
          FROM loyalty.audit_log a
        WINDOW w AS (ORDER BY a.audit_id)) c
     WHERE c.problem IS NOT NULL
     ORDER BY c.audit_id;
END;
COMMENT ON FUNCTION loyalty.audit_verify() IS
    'Check the audit hash chain from its anchor; returns each broken record (none: intact)';

-- "Who touched member X": every read and change of one member, chained
-- records in chain order, then the changes not yet chained.
CREATE FUNCTION loyalty.audit_member(member_id uuid, since timestamptz DEFAULT '-infinity')
    RETURNS TABLE (at timestamptz, login text, role text, store_code text,
                   department text, action text, fields text[], purpose text,
                   detail jsonb)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT r.at, r.login, r.role, r.store_code, r.department, r.action, r.fields,
           r.purpose, r.detail
      FROM (SELECT 0 AS k, a.audit_id AS n, a.at, a.login, a.role, a.store_code,
                   a.department, a.action, a.fields, a.purpose, a.detail
              FROM loyalty.audit_log a
             WHERE a.member_id = audit_member.member_id AND a.at >= audit_member.since
            UNION ALL
            SELECT 1, s.staged_id, s.at, s.login, s.role, s.store_code, s.department,
                   s.action, NULL::text[], s.purpose, s.detail
              FROM loyalty.audit_change_staging s
             WHERE s.member_id = audit_member.member_id AND s.at >= audit_member.since) r
     WHERE (SELECT loyalty.caller_is_hq())
     ORDER BY r.k, r.n;
END;
COMMENT ON FUNCTION loyalty.audit_member(uuid, timestamptz) IS
    'Who read or changed a member, when, from which store, what and why';

-- "What did login Y do": every read and change by one login (or role).
CREATE FUNCTION loyalty.audit_role(role text, since timestamptz DEFAULT '-infinity')
    RETURNS TABLE (at timestamptz, login text, store_code text, department text,
                   member_id uuid, action text, fields text[], purpose text,
                   detail jsonb)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT r.at, r.login, r.store_code, r.department, r.member_id, r.action, r.fields,
           r.purpose, r.detail
      FROM (SELECT 0 AS k, a.audit_id AS n, a.at, a.login, a.store_code, a.department,
                   a.member_id, a.action, a.fields, a.purpose, a.detail
              FROM loyalty.audit_log a
             WHERE a.login = audit_role.role AND a.at >= audit_role.since
            UNION ALL
            SELECT 0, a.audit_id, a.at, a.login, a.store_code, a.department,
                   a.member_id, a.action, a.fields, a.purpose, a.detail
              FROM loyalty.audit_log a
             WHERE a.role = audit_role.role AND a.login <> audit_role.role
               AND a.login <> a.role   -- the role index's predicate (40_audit.sql)
               AND a.at >= audit_role.since
            UNION ALL
            SELECT 1, s.staged_id, s.at, s.login, s.store_code, s.department,
                   s.member_id, s.action, NULL::text[], s.purpose, s.detail
              FROM loyalty.audit_change_staging s
             WHERE (s.login = audit_role.role OR s.role = audit_role.role)
               AND s.at >= audit_role.since) r
     WHERE (SELECT loyalty.caller_is_hq())
     ORDER BY r.k, r.n;
END;
COMMENT ON FUNCTION loyalty.audit_role(text, timestamptz) IS
    'What a login or role read or changed, when, where and why';

-- loyalty._audit_partition_ensure(at): the partition of loyalty.audit_log
-- for the month (UTC) of at, loyalty._audit_log_YYYY_MM, created if missing
-- (by the retention job, ahead); returns its name, or NULL when it is not
-- there: the default partition holds records of that month already, or
-- the log's exclusive lock could not be had within lock_timeout (readers
-- waiting for their records hold a share of it; the job tries again next
-- time).  Not an extension member (see 40_audit.sql); with its own
-- TRUNCATE trigger, since statement triggers are not inherited.
CREATE FUNCTION loyalty._audit_partition_ensure(at timestamptz) RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET lock_timeout = '2s'
AS $$
DECLARE
    month timestamp;
    name text;
BEGIN
    IF at IS NULL OR NOT pg_catalog.isfinite(at) THEN
        RAISE EXCEPTION 'at must be a finite time' USING ERRCODE = 'datetime_field_overflow';
    END IF;
    month := pg_catalog.date_trunc('month', at AT TIME ZONE 'UTC');
    name := '_audit_log_' || pg_catalog.to_char(month, 'YYYY_MM');
    IF pg_catalog.to_regclass('loyalty.' || name) IS NOT NULL THEN
        RETURN name;
    END IF;
    IF EXISTS (SELECT 1 FROM loyalty._audit_log_default d
                WHERE d.at >= month AT TIME ZONE 'UTC'
                  AND d.at < (month + interval '1 month') AT TIME ZONE 'UTC') THEN
        RETURN NULL;
    END IF;
    BEGIN
        EXECUTE pg_catalog.format(
            'CREATE TABLE loyalty.%I PARTITION OF loyalty.audit_log FOR VALUES FROM (%L) TO (%L)',
            name, month AT TIME ZONE 'UTC', (month + interval '1 month') AT TIME ZONE 'UTC');
    EXCEPTION WHEN lock_not_available OR duplicate_table THEN
        RETURN CASE WHEN pg_catalog.to_regclass('loyalty.' || name) IS NULL THEN NULL ELSE name END;
    END;
    EXECUTE pg_catalog.format('REVOKE ALL ON loyalty.%I FROM PUBLIC', name);
    -- its own key and indexes (see 40_audit.sql)
    EXECUTE pg_catalog.format('ALTER TABLE loyalty.%I ADD CONSTRAINT %I PRIMARY KEY (audit_id)',
                              name, name || '_pkey');
    EXECUTE pg_catalog.format('CREATE INDEX %I ON loyalty.%I (member_id, at)', name || '_member_idx', name);
    EXECUTE pg_catalog.format('CREATE INDEX %I ON loyalty.%I (login, at)', name || '_login_idx', name);
    EXECUTE pg_catalog.format('CREATE INDEX %I ON loyalty.%I (role, at) '
                              'WHERE login <> role OR action IN (''lookup'', ''lookup_miss'', '
                              '''verify_id'', ''verify_id_miss'', ''lookup_refused'')',
                              name || '_role_idx', name);
    EXECUTE pg_catalog.format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON loyalty.%I '
                              'FOR EACH STATEMENT EXECUTE FUNCTION loyalty._audit_append_only()', name);
    EXECUTE pg_catalog.format('ALTER TABLE loyalty.%I ENABLE ALWAYS TRIGGER audit_log_no_truncate', name);
    RETURN name;
END
$$;

-- loyalty._audit_purge_month(cutoff, after, dry_run): the oldest month of
-- the log from after on that ends by cutoff (its partition, or its rows in
-- the default partition), if the chain before every later record ends in
-- it (a prefix of the chain: a record chained late, after its month's
-- end, holds its month back); unless dry_run, its last record becomes the
-- chain's anchor and the month goes: its partition dropped, its rows in the
-- default partition deleted.  name NULL when there is no such month.
-- lock_timeout: the drop needs the log's exclusive lock (see
-- _audit_partition_ensure); 55P03 when it could not be had.
CREATE FUNCTION loyalty._audit_purge_month(cutoff timestamptz, after timestamptz, dry_run boolean,
    OUT name text, OUT records bigint, OUT first_id bigint, OUT last_id bigint,
    OUT upper_bound timestamptz)
    RETURNS record
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET lock_timeout = '2s'
AS $$
DECLARE
    lower_bound timestamptz;
    last_hash bytea;
BEGIN
    IF NOT dry_run THEN
        -- the writers wait; the chain's head cannot move meanwhile
        LOCK TABLE loyalty.audit_log IN SHARE ROW EXCLUSIVE MODE;
    END IF;
    SELECT min(m.lo) INTO lower_bound FROM (
        SELECT pg_catalog.to_timestamp(pg_catalog.substr(c.relname, 12), 'YYYY_MM')::timestamp
                   AT TIME ZONE 'UTC' AS lo
          FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'loyalty.audit_log'::regclass
           AND c.relname ~ '^_audit_log_[0-9]{4}_[0-9]{2}$'
        UNION ALL
        SELECT pg_catalog.date_trunc('month', min(d.at) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
          FROM loyalty._audit_log_default d WHERE d.at >= after) m
     WHERE m.lo >= after;
    upper_bound := ((lower_bound AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    IF lower_bound IS NULL OR upper_bound > cutoff THEN
        RETURN;
    END IF;
    name := '_audit_log_' || pg_catalog.to_char(lower_bound AT TIME ZONE 'UTC', 'YYYY_MM');
    SELECT count(*), min(a.audit_id), max(a.audit_id) INTO records, first_id, last_id
      FROM loyalty.audit_log a WHERE a.at >= lower_bound AND a.at < upper_bound;
    IF EXISTS (SELECT 1 FROM loyalty.audit_log a
                WHERE a.at >= upper_bound AND a.audit_id < last_id) THEN
        name := NULL;           -- not a prefix of the chain (yet)
        RETURN;
    END IF;
    IF dry_run THEN
        RETURN;
    END IF;
    IF last_id IS NOT NULL THEN
        SELECT a.hash INTO last_hash FROM loyalty.audit_log a
         WHERE a.audit_id = last_id AND a.at >= lower_bound AND a.at < upper_bound;
        INSERT INTO loyalty.audit_anchor (audit_id, hash, purged_before, records)
            VALUES (last_id, last_hash, upper_bound, records);
    END IF;
    IF pg_catalog.to_regclass('loyalty.' || name) IS NOT NULL THEN
        EXECUTE pg_catalog.format('DROP TABLE loyalty.%I', name);
    END IF;
    IF EXISTS (SELECT 1 FROM loyalty._audit_log_default d
                WHERE d.at >= lower_bound AND d.at < upper_bound) THEN
        -- the append-only trigger refuses this to everyone else
        ALTER TABLE loyalty._audit_log_default DISABLE TRIGGER audit_log_append_only;
        DELETE FROM loyalty._audit_log_default d WHERE d.at >= lower_bound AND d.at < upper_bound;
        ALTER TABLE loyalty._audit_log_default ENABLE ALWAYS TRIGGER audit_log_append_only;
    END IF;
END
$$;

-- loyalty.audit_retention_purge(dry_run, keep): drop the months of the log
-- that ended more than keep (at least three years) ago, oldest first, each
-- after recording its last record as the chain's anchor
-- (loyalty.audit_anchor), from which audit_verify() checks the rest and the
-- writers go on.  A month is dropped whole, and only as a prefix of the
-- chain.  Change records not yet chained are never removed.  The log is
-- locked against the writers meanwhile (audited reads wait).  Returns the
-- records (of the months) dropped, or that a dry run would drop.
CREATE FUNCTION loyalty.audit_retention_purge(dry_run boolean DEFAULT true,
    keep interval DEFAULT '3 years')
    RETURNS TABLE (records bigint, first_id bigint, last_id bigint, purged_before timestamptz)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cutoff timestamptz;
    m record;
    after timestamptz := '-infinity';
BEGIN
    PERFORM loyalty._check_access(NULL, ARRAY['dba']);
    PERFORM loyalty._audit_keep_check(dry_run, keep);
    cutoff := now() - keep;
    IF NOT dry_run THEN
        -- the writers wait; the chain's head cannot move meanwhile
        LOCK TABLE loyalty.audit_log IN SHARE ROW EXCLUSIVE MODE;
    END IF;
    records := 0;
    LOOP
        m := loyalty._audit_purge_month(cutoff, after, dry_run);
        EXIT WHEN m.name IS NULL;
        records := records + m.records;
        first_id := coalesce(first_id, m.first_id);
        last_id := coalesce(m.last_id, last_id);
        purged_before := m.upper_bound;
        after := m.upper_bound;
    END LOOP;
    IF NOT dry_run THEN
        PERFORM loyalty._audit_change(NULL, 'audit_retention_purge', 'privacy',
            pg_catalog.jsonb_build_object('first_id', first_id, 'last_id', last_id,
                                          'records', records, 'purged_before', purged_before));
    END IF;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION loyalty.audit_retention_purge(boolean, interval) IS
    'Drop the audit log''s months that ended more than keep (at least 3 years) ago and anchor the chain after them';

-- loyalty._audit_keep_check(dry_run, keep): the retention arguments.
CREATE FUNCTION loyalty._audit_keep_check(dry_run boolean, keep interval) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF dry_run IS NULL OR keep IS NULL THEN
        RAISE EXCEPTION 'dry_run and keep must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF keep < interval '3 years' THEN
        RAISE EXCEPTION 'the audit trail is kept at least three years'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('keep was %s.', keep);
    END IF;
END
$$;

-- loyalty.audit_retention_purge_batch(keep): the scheduled form (job kind
-- audit_retention, docs/operations.md): the partitions of this month and
-- the next two are created ahead, then one month is dropped per committed
-- batch, with its progress in loyalty.job_progress.
CREATE PROCEDURE loyalty.audit_retention_purge_batch(keep interval DEFAULT '3 years')
    LANGUAGE plpgsql
AS $$
BEGIN
    CALL loyalty._job_run('audit_retention',
        pg_catalog.jsonb_build_object('as_of', pg_catalog.now(), 'keep', keep), 1);
END
$$;
COMMENT ON PROCEDURE loyalty.audit_retention_purge_batch(interval) IS
    'Create the audit log''s coming months and drop those past retention (as audit_retention_purge(false)), one committed month at a time';

REVOKE ALL ON FUNCTION loyalty.audit_retention_purge(boolean, interval),
    loyalty._audit_partition_ensure(timestamptz),
    loyalty._audit_purge_month(timestamptz, timestamptz, boolean),
    loyalty._audit_keep_check(boolean, interval) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.audit_retention_purge_batch(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.audit_retention_purge(boolean, interval),
    loyalty._audit_partition_ensure(timestamptz),
    loyalty._audit_purge_month(timestamptz, timestamptz, boolean),
    loyalty._audit_keep_check(boolean, interval) TO loyalty_dba;
GRANT EXECUTE ON PROCEDURE loyalty.audit_retention_purge_batch(interval) TO loyalty_dba;

REVOKE ALL ON FUNCTION loyalty._audit_hash(bytea, bigint, timestamptz, text, text, text, text, uuid, text, text[], text, jsonb),
    loyalty.audit_verify(), loyalty.audit_member(uuid, timestamptz),
    loyalty.audit_role(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.audit_verify(),
    loyalty.audit_member(uuid, timestamptz), loyalty.audit_role(text, timestamptz)
    TO loyalty_crm, loyalty_dba;
