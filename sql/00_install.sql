-- The extension installs into schema loyalty, grants nothing to PUBLIC, and
-- DROP EXTENSION leaves nothing behind.
SELECT extname, extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'loyalty') AS at_default_version
  FROM pg_extension WHERE extname = 'loyalty';
SELECT count(*) AS objects_outside_schema_loyalty
  FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'loyalty')
   AND p.pronamespace <> 'loyalty'::regnamespace;

-- no privilege for PUBLIC on the schema, any table, sequence or function
SELECT count(*) AS public_grants
  FROM (
    SELECT (aclexplode(c.relacl)).grantee FROM pg_class c
     WHERE c.relnamespace = 'loyalty'::regnamespace
    UNION ALL
    SELECT (aclexplode(coalesce(p.proacl, acldefault('f', p.proowner)))).grantee FROM pg_proc p
     WHERE p.pronamespace = 'loyalty'::regnamespace
    UNION ALL
    SELECT (aclexplode(n.nspacl)).grantee FROM pg_namespace n WHERE n.nspname = 'loyalty'
  ) g
 WHERE grantee = 0;

-- every SECURITY DEFINER function pins its search_path
SELECT p.oid::regprocedure AS definer_without_search_path
  FROM pg_proc p
 WHERE p.pronamespace = 'loyalty'::regnamespace AND p.prosecdef
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false);

-- every table is registered for pg_dump (user data survives a dump)
SELECT c.relname AS table_not_dumped
  FROM pg_class c
 WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relkind = 'r'
   AND c.oid <> ALL (SELECT unnest(extconfig) FROM pg_extension WHERE extname = 'loyalty');

-- member ids are random UUIDs: no table exposes a serial key to stores
SELECT c.relname, a.attname
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relname LIKE 'member%'
   AND a.attidentity <> '' ;

-- drop and recreate: nothing is left in between
\set regdb :DBNAME
CREATE DATABASE loyalty_dropcheck;
\c loyalty_dropcheck
CREATE EXTENSION loyalty;
SELECT loyalty.store_create(gen_random_uuid()::text, 'dropchk', 'Drop Check', 'test', 'north', 'Asia/Shanghai');
DROP EXTENSION loyalty;
SELECT count(*) AS leftover_objects FROM pg_class WHERE relnamespace IN
    (SELECT oid FROM pg_namespace WHERE nspname = 'loyalty');
-- the schema stays, empty: CREATE EXTENSION made it outside the extension
-- (docs/installation.md); no event trigger stays
SELECT count(*) AS leftover_schemas FROM pg_namespace WHERE nspname = 'loyalty';
SELECT count(*) AS leftover_event_triggers FROM pg_event_trigger WHERE evtname LIKE 'loyalty%';
DROP SCHEMA loyalty;
SELECT count(*) AS leftover_functions FROM pg_proc WHERE proname IN ('whoami', 'policy_at', 'create_store');
SELECT count(*) AS leftover_triggers FROM pg_trigger WHERE tgname LIKE 'policy%';
CREATE EXTENSION loyalty;
-- the store roles of the dropped database are cluster objects and are adopted
SELECT loyalty.store_create(gen_random_uuid()::text, 'dropchk', 'Drop Check', 'test', 'north', 'Asia/Shanghai');
\c :regdb
DROP DATABASE loyalty_dropcheck;
