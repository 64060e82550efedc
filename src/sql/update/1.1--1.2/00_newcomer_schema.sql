-- newcomer: the extension's schema is "loyalty" (\dx shows it), as in a
-- fresh 1.2 install, where CREATE EXTENSION creates the schema named by
-- the control file outside the extension.  1.0 created the schema inside
-- its script (a member of the extension) and named pg_catalog as the
-- extension's schema.  An update script cannot ALTER EXTENSION itself, so
-- the catalog rows are changed directly: the schema stops being a member
-- (pg_dump then dumps it, and a restore's CREATE EXTENSION ... WITH SCHEMA
-- loyalty finds it) and becomes the extension's namespace.
DELETE FROM pg_catalog.pg_depend
 WHERE classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
   AND objid = 'loyalty'::pg_catalog.regnamespace
   AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
   AND refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'loyalty')
   AND deptype = 'e';
UPDATE pg_catalog.pg_extension
   SET extnamespace = 'loyalty'::pg_catalog.regnamespace
 WHERE extname = 'loyalty';
INSERT INTO pg_catalog.pg_depend (classid, objid, objsubid, refclassid, refobjid, refobjsubid, deptype)
SELECT 'pg_catalog.pg_extension'::pg_catalog.regclass, e.oid, 0,
       'pg_catalog.pg_namespace'::pg_catalog.regclass, e.extnamespace, 0, 'n'
  FROM pg_catalog.pg_extension e
 WHERE e.extname = 'loyalty';
