-- newcomer: temporary objects are refused to store, BI and marketing roles
-- by an event trigger (src/sql/61_install.sql) instead of revoking TEMPORARY
-- from PUBLIC on the whole database, which CREATE EXTENSION did in 1.0 and
-- 1.1.  The update gives PUBLIC its TEMPORARY privilege back (PostgreSQL's
-- default), so applications of the database can create temporary tables
-- again; a DBA who wants TEMP revoked from everyone revokes it again after
-- the update (docs/installation.md).
\ir 61_install.sql
DO $$
BEGIN
    IF NOT pg_catalog.has_database_privilege('public', pg_catalog.current_database(), 'TEMPORARY') THEN
        EXECUTE pg_catalog.format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC',
                                  pg_catalog.current_database());
        RAISE NOTICE 'TEMPORARY on database % granted back to PUBLIC (loyalty 1.2 no longer revokes it)',
            pg_catalog.current_database();
    END IF;
END
$$;
