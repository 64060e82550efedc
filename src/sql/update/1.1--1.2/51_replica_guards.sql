-- replica (issue 14.1, 14.3, 14.5): the node identity, replica_adopt() and
-- the DROP EXTENSION guard, as in a fresh install.
\ir 51_replica_guards.sql
-- An HQ that already serves stores records its identity now, so that its
-- applier goes on applying their events after the update.
INSERT INTO loyalty.replica_identity (system_identifier, database_oid)
SELECT c.system_identifier::text, d.oid
  FROM pg_catalog.pg_control_system() c, pg_catalog.pg_database d
 WHERE d.datname = pg_catalog.current_database()
   AND (EXISTS (SELECT 1 FROM loyalty.replica_store) OR EXISTS (SELECT 1 FROM loyalty.replica_node));
