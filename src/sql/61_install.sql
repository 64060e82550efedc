-- Installation-wide rules (docs/installation.md).
--
-- Temporary objects.  Store department, BI and marketing roles must not
-- create temporary objects: a table, view or function planted in pg_temp
-- could shadow a name some code resolves through the caller's search_path.
-- PostgreSQL has no per-role denial of a privilege PUBLIC holds, and
-- revoking TEMPORARY from PUBLIC (what 1.0 and 1.1 did) takes it from every
-- application of the database too.  So the database ACL is left alone and
-- this event trigger refuses, at the end of the command (which then rolls
-- back), any object created in a temporary schema while the current user is
-- a member of one of those group roles.  Superusers and other roles (HQ CRM
-- and DBA, the applications' own roles) are not affected.  The trigger is
-- part of the extension: DROP EXTENSION removes it, restoring the database
-- as it was.

-- _temp_guard runs as the user whose command it checks (any user of the
-- database), so it calls no function of schema loyalty, which other users
-- cannot reach.
CREATE FUNCTION loyalty._temp_guard() RETURNS event_trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    obj text;
    grp text;
BEGIN
    SELECT c.object_identity INTO obj
      FROM pg_catalog.pg_event_trigger_ddl_commands() c
     WHERE c.schema_name = 'pg_temp' OR c.schema_name LIKE 'pg\_temp\_%'
     LIMIT 1;
    IF obj IS NULL THEN
        RETURN;
    END IF;
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        RETURN;
    END IF;
    SELECT r.rolname INTO grp
      FROM pg_catalog.pg_roles r
     WHERE r.rolname IN ('loyalty_frontdesk', 'loyalty_housekeeping', 'loyalty_fnb',
                         'loyalty_store_manager', 'loyalty_bi', 'loyalty_marketing')
       AND pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')
     ORDER BY r.rolname
     LIMIT 1;
    IF grp IS NOT NULL THEN
        RAISE EXCEPTION 'permission denied to create temporary object %', obj
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('Role %I is a member of %I; loyalty store, BI and marketing roles may not create temporary objects.',
                                             current_user, grp),
                  HINT = 'Use a regular table in a schema of your own application, or ask an HQ DBA; see docs/installation.md.';
    END IF;
END
$$;
COMMENT ON FUNCTION loyalty._temp_guard() IS
    'Event trigger: refuses temporary objects to store, BI and marketing roles (docs/installation.md)';
REVOKE ALL ON FUNCTION loyalty._temp_guard() FROM PUBLIC;

CREATE EVENT TRIGGER loyalty_temp_guard ON ddl_command_end
    EXECUTE FUNCTION loyalty._temp_guard();
COMMENT ON EVENT TRIGGER loyalty_temp_guard IS
    'Refuses temporary objects to loyalty store, BI and marketing roles (docs/installation.md)';
