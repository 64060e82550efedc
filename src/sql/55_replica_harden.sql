-- Slot tampering by a store's replication login (issue 14, follow-up):
-- replication slots have no ACL, so any REPLICATION login can drop, re-make
-- or advance another store's slot through SQL.  loyalty.replica_harden(),
-- run by a superuser in HQ's database, revokes the SQL functions that do so
-- from PUBLIC and grants them to loyalty_dba (docs/replication.md,
-- "Hardening HQ's slots"; docs/threat-model.md, "Replicas").  The loyalty
-- functions that make or drop slots do not need these grants: they run as
-- the extension's owner (a superuser), drop slots in C
-- (ReplicationSlotDrop) or use the replication protocol.
--
-- Not done by CREATE EXTENSION: the extension does not know at install
-- whether this database will be HQ, a hub or a store; the privileges of
-- pg_catalog functions are the whole database's, not the extension's (DROP
-- EXTENSION would leave them changed, and other tools of the database may
-- rely on them); and they hold in this database only.  Hardening is a
-- deliberate step of HQ's set-up (docs/operations.md).

CREATE FUNCTION loyalty.replica_harden(
    OUT object text, OUT action text, OUT detail text)
    RETURNS SETOF record
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f regprocedure;
    d record;
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER) THEN
        RAISE EXCEPTION 'loyalty.replica_harden() must be run by a superuser'
            USING ERRCODE = '42501',
                  DETAIL = 'It changes the privileges of functions in schema pg_catalog.',
                  HINT = 'Connect to HQ''s database as a superuser and call it there.';
    END IF;
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'pg_catalog'::regnamespace
                AND p.proname IN ('pg_drop_replication_slot', 'pg_replication_slot_advance',
                                  'pg_create_logical_replication_slot', 'pg_create_physical_replication_slot',
                                  'pg_copy_logical_replication_slot', 'pg_copy_physical_replication_slot')
              ORDER BY p.oid::regprocedure::text LOOP
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO loyalty_dba', f);
        object := f::text;
        action := 'revoked from PUBLIC, granted to loyalty_dba';
        detail := NULL;
        RETURN NEXT;
    END LOOP;
    -- function privileges hold in this database only, but slots are the
    -- server's: a store's login that can connect to another database can
    -- drop this database's slots from there
    FOR d IN SELECT db.datname, pg_catalog.string_agg(m.rolname, ', ' ORDER BY m.rolname) AS logins
               FROM pg_catalog.pg_database db
               JOIN pg_catalog.pg_roles m
                 ON pg_catalog.pg_has_role(m.oid, 'loyalty_replication', 'MEMBER') AND m.rolcanlogin
                AND NOT m.rolsuper
              WHERE db.datname <> pg_catalog.current_database() AND db.datallowconn
                AND pg_catalog.has_database_privilege(m.oid, db.oid, 'CONNECT')
              GROUP BY db.datname ORDER BY db.datname LOOP
        object := 'database ' || pg_catalog.quote_ident(d.datname);
        action := 'still open';
        detail := pg_catalog.format('replication logins %s may connect to it and drop this server''s slots from there: '
                                    'REVOKE CONNECT ON DATABASE %I FROM PUBLIC, or reject them there in pg_hba.conf',
                                    d.logins, d.datname);
        RAISE WARNING 'replication logins % may connect to database "%", where dropping slots is not revoked',
            d.logins, d.datname
            USING HINT = pg_catalog.format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC, or reject those logins there in pg_hba.conf.', d.datname);
        RETURN NEXT;
    END LOOP;
    object := 'replication protocol';
    action := 'still open';
    detail := 'DROP_REPLICATION_SLOT over a replication connection has no privilege check; '
              'replica_link_check() and replica_status show such a slot as ''no slot''';
    RETURN NEXT;
    PERFORM loyalty._audit_change(NULL, 'replica_harden', 'operations', NULL);
END
$$;
COMMENT ON FUNCTION loyalty.replica_harden() IS
    'HQ, superuser: revoke dropping, making, copying and advancing replication slots through SQL from PUBLIC (granted to loyalty_dba) in this database; lists what stays open';
REVOKE ALL ON FUNCTION loyalty.replica_harden() FROM PUBLIC;
