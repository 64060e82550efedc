-- offline (issue 18): card blocks and enrolment at a store replica, as in
-- a fresh install.
\ir 52_replica_offline.sql
-- A store's own rows got local blocks from its own sequence: forget them;
-- HQ's block arrives with the next change HQ makes to the store's row
-- (docs/replication.md, "Enrolment at a store").
UPDATE loyalty.replica_store SET card_block = NULL
 WHERE EXISTS (SELECT 1 FROM loyalty.replica_node n WHERE n.node_role = 'store');
