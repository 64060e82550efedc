-- pgTAP: the scheduled link check, loyalty.replica_link_watch(), on one
-- server (no second server: the links it finds are a registered store
-- without slot or outbox subscription, then this database as that store):
-- what it records in loyalty.replica_link_log, the alert of each link that
-- is down, how long events have waited, and the checks it keeps per link.
-- test/t/088_replica_lost_slot.pl runs it from pg_cron with a store down.
BEGIN;
SELECT plan(10);

SELECT loyalty.store_create('lw-s1', 'lwa', 'Watched A', 'bay', 'r', 'Asia/Shanghai');
CREATE TEMP TABLE t AS
SELECT (SELECT member_id FROM loyalty.member_enroll('lw-e0', 'lwa', 'Watched Member')) AS m;
SELECT loyalty.replica_store_add('lw-add-1', 'lwa');

-- HQ: the store's slot is not made, its outbox not attached
SET LOCAL client_min_messages = error;   -- the WARNINGs (their text is the alert column)
SELECT is(ARRAY(SELECT direction || ' ' || status || ' ' || alert FROM loyalty.replica_link_watch() ORDER BY direction),
          ARRAY['from store not attached link not attached', 'to store no slot link no slot'],
          'HQ: each link down, with its alert');
SELECT is((SELECT count(*)::int FROM loyalty.replica_link_log WHERE store_code = 'lwa'), 2, 'recorded in replica_link_log');
SELECT ok(has_table_privilege('loyalty_dba', 'loyalty.replica_link_log', 'SELECT')
          AND NOT has_table_privilege('loyalty_frontdesk', 'loyalty.replica_link_log', 'SELECT'),
          'the log is for the DBA');
SELECT ok(has_function_privilege('loyalty_dba', 'loyalty.replica_link_watch()', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_frontdesk', 'loyalty.replica_link_watch()', 'EXECUTE'),
          'so is the check');

-- the checks kept per link
SET LOCAL loyalty.replica_link_log_keep = 2;
SELECT count(*) FROM loyalty.replica_link_watch();
CREATE TEMP TABLE second AS SELECT max(checked_at) AS at FROM loyalty.replica_link_log WHERE direction = 'to store';
SELECT count(*) FROM loyalty.replica_link_watch();
SELECT is((SELECT count(*)::int FROM loyalty.replica_link_log WHERE store_code = 'lwa' AND direction = 'to store'), 2,
          'replica_link_log_keep checks kept per link');
SELECT is((SELECT min(checked_at) FROM loyalty.replica_link_log WHERE direction = 'to store'), (SELECT at FROM second),
          'the latest ones');

-- this database as the store: its outbox events wait for HQ's verdict
DELETE FROM loyalty.replica_link_log;
INSERT INTO loyalty.replica_node (node_role, store_code, incarnation) VALUES ('store', 'lwa', 1);
SELECT loyalty.store_points_accrue('lw-a1', (SELECT m FROM t), 100, 'stay', 'lw-folio-1');
SELECT is(ARRAY(SELECT direction || ' ' || status || ' ' || coalesce(events_waiting::text, '-') || ' ' || (waiting_since IS NOT NULL)
                  FROM loyalty.replica_link_watch() ORDER BY direction),
          ARRAY['from HQ not subscribed - false', 'to HQ no slot 1 true'],
          'store: not subscribed, and one event waiting since this check');
CREATE TEMP TABLE first AS SELECT waiting_since FROM loyalty.replica_link_log WHERE direction = 'to HQ';
SELECT is((SELECT waiting_since FROM loyalty.replica_link_watch() WHERE direction = 'to HQ'),
          (SELECT waiting_since FROM first), 'the next check: waiting since the first check that found it waiting');
SELECT ok((SELECT checked_at > waiting_since FROM loyalty.replica_link_log WHERE direction = 'to HQ'
            ORDER BY checked_at DESC LIMIT 1), 'which is older than the check');
SELECT throws_ok($$SET loyalty.replica_link_log_keep = 0$$, '22023', NULL, 'keeping no check is refused');

SELECT * FROM finish();
ROLLBACK;
