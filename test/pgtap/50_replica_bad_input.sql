-- pgTAP: store replicas on one server.  HQ's DBA functions refuse bad
-- input with a clear SQLSTATE and write nothing; the publication holds only
-- what a store may hold; the outbox applier at HQ applies an event once,
-- records conflicts and rejects malformed events without raising; store
-- mode's application functions check their input and the offline limit.
BEGIN;
SELECT plan(72);

SELECT loyalty.store_create(gen_random_uuid()::text, 'rpa', 'Replica A', 'bay', 'r', 'Asia/Shanghai'),
       loyalty.store_create(gen_random_uuid()::text, 'rpb', 'Replica B', 'bay', 'r', 'Asia/Shanghai');
CREATE TEMP TABLE t AS
SELECT (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'rpa', 'Replica Member')) AS m;

-- adding a store
SELECT throws_ok($$SELECT loyalty.replica_store_add(gen_random_uuid()::text, NULL)$$, '22004', 'store code must not be null', 'null store code');
SELECT throws_ok($$SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'Bad-Code')$$, '22023', 'invalid store code "Bad-Code"', 'malformed store code');
SELECT throws_ok($$SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'nosuch')$$, 'P0002', 'store "nosuch" does not exist', 'unknown store');
SELECT throws_ok($$SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'rpb', -1)$$, '22023', 'offline redemption cap must be zero or more points', 'negative cap');
SELECT is((SELECT count(*) FROM loyalty.replica_store WHERE store_code = 'rpb'), 0::bigint, 'nothing registered by bad calls');
SELECT is((SELECT count(*) FROM pg_publication WHERE pubname LIKE 'loyalty_store_rp%'), 0::bigint, 'no publication made by bad calls');
SELECT is(loyalty.replica_store_add(gen_random_uuid()::text, 'rpa'), 'loyalty_store_rpa', 'add a store: its publication');
SELECT throws_ok($$SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'rpa')$$, '42710', 'store "rpa" already has a replica', 'adding a store twice');

-- what the publication holds
SELECT is((SELECT count(*) FROM pg_publication_tables WHERE pubname = 'loyalty_store_rpa'
            AND tablename IN ('member_identity', 'member_consent', 'staff_role', 'outbox', 'point_entry', 'point_lot')),
          0::bigint, 'identity data, consents, the role map, ledger lots and the outbox are never published');
SELECT ok((SELECT count(*) FROM pg_publication_tables WHERE pubname = 'loyalty_store_rpa' AND tablename = 'member_profile') = 0
          AND (SELECT 'phone_masked' = ANY (attnames) AND 'phone_hash' = ANY (attnames) FROM pg_publication_tables
                WHERE pubname = 'loyalty_store_rpa' AND tablename = 'replica_member_contact')
          AND (SELECT NOT ('note' = ANY (attnames)) AND NOT ('resolution_note' = ANY (attnames)) FROM pg_publication_tables
                WHERE pubname = 'loyalty_store_rpa' AND tablename = 'risk_tag')
          AND (SELECT rowfilter = '(store_code = ''rpa''::text)' FROM pg_publication_tables
                WHERE pubname = 'loyalty_store_rpa' AND tablename = 'member_tag')
          AND (SELECT rowfilter = '(store_code = ''rpa''::text)' FROM pg_publication_tables
                WHERE pubname = 'loyalty_store_rpa' AND tablename = 'replica_risk_note'),
          'no profile (masked contact rows instead), no risk-tag notes but the store''s own, only the store''s own behaviour tags');
SELECT is((SELECT rowfilter FROM pg_publication_tables WHERE pubname = 'loyalty_store_rpa' AND tablename = 'stay'),
          '(store_code = ''rpa''::text)', 'stays are filtered to the store');
SELECT is((SELECT rowfilter FROM pg_publication_tables WHERE pubname = 'loyalty_store_rpa' AND tablename = 'member_preference'),
          '((scope = ''chain''::text) OR (store_code = ''rpa''::text))', 'preferences: chain-wide and the store''s own');
SELECT is((SELECT pubtruncate FROM pg_publication WHERE pubname = 'loyalty_store_rpa'), false, 'TRUNCATE (which ignores row filters) is not published');
SELECT is((SELECT count(*) FROM pg_publication_tables WHERE pubname = 'loyalty_store_rpa' AND tablename = 'point_balance'),
          1::bigint, 'balances are published');
-- every filtered table keeps UPDATE and DELETE working at HQ
SELECT lives_ok($$UPDATE loyalty.member_preference SET value = value WHERE false$$, 'UPDATE of a filtered table works at HQ');

-- slots and removal
SELECT throws_ok($$SELECT loyalty.replica_slot_create('rpa')$$, '25001', NULL, 'a slot cannot be made after the transaction wrote');
SELECT throws_ok($$SELECT loyalty.replica_slot_create('rpb')$$, 'P0002', 'store "rpb" has no replica', 'slot for a store without replica');
SELECT throws_ok($$SELECT loyalty.replica_store_remove(gen_random_uuid()::text, 'nosuch')$$, 'P0002', 'store "nosuch" has no replica', 'removing an unknown store');
SELECT throws_ok($$SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'rpa', NULL)$$, '22004', NULL, 'attach without a connection string');
SELECT throws_ok($$SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'rpb', 'dbname=x')$$, 'P0002', 'store "rpb" has no replica', 'attach an unknown store');

-- modes
SELECT throws_ok($$SELECT loyalty.replica_mode_set(gen_random_uuid()::text, 'rpa', 'weekly')$$, '22023', 'invalid replication mode "weekly"', 'unknown mode');
SELECT throws_ok($$SELECT loyalty.replica_mode_set(gen_random_uuid()::text, 'rpa', 'batch')$$, '22023', 'batch mode needs a window, streaming mode takes none', 'batch without window');
SELECT throws_ok($$SELECT loyalty.replica_mode_set(gen_random_uuid()::text, 'rpb', 'streaming')$$, 'P0002', 'store "rpb" has no replica', 'mode of an unknown store');
SELECT throws_ok($$SELECT loyalty.replica_offline_cap_set(gen_random_uuid()::text, 'rpa', -1)$$, '22023', NULL, 'negative offline cap');
SELECT lives_ok($$SELECT loyalty.replica_mode_set(gen_random_uuid()::text, 'rpa', 'batch', '01:00', '04:00')$$, 'nightly batch window');
SELECT is((SELECT mode || ' ' || window_start || '-' || window_end FROM loyalty.replica_store WHERE store_code = 'rpa'),
          'batch 01:00:00-04:00:00', 'the window is recorded');
SELECT is((SELECT slot_status || ' ' || mode FROM loyalty.replica_status WHERE store_code = 'rpa'), 'no slot batch',
          'the DBA view shows a store without slot');

-- store functions at HQ
SELECT throws_ok(format($$SELECT loyalty.store_preference_record(gen_random_uuid()::text, %L, 'pillow', 'down')$$, (SELECT m FROM t)),
                 '55000', 'this server is not a store replica', 'store functions refuse to run at HQ');
SELECT throws_ok($$SELECT loyalty.store_unsubscribe()$$, '55000', 'this server is not a store replica', 'HQ does not unsubscribe');
SELECT throws_ok($$SELECT loyalty.store_subscribe('dbname=x', 'rpa')$$, '55000', 'this server replicates stores of its own', 'HQ does not subscribe as a store');

-- the applier at HQ (a direct insert plays the apply worker's part)
CREATE TEMP TABLE ev (id text, kind text, member uuid, payload jsonb);
INSERT INTO ev VALUES
    ('rpa-1-1', 'preference', (SELECT m FROM t), '{"category": "pillow", "value": "buckwheat-free", "scope": "chain"}'),
    ('rpa-1-2', 'preference', '00000000-0000-0000-0000-000000000000', '{"category": "pillow", "value": "x"}'),
    ('rpa-1-3', 'accrual', (SELECT m FROM t), '{"points": 1500, "source": "stay", "reference": "room 101"}'),
    ('rpa-1-4', 'redemption', (SELECT m FROM t), '{"points": 2000, "reward": "spa"}'),
    ('rpa-1-5', 'benefit_use', (SELECT m FROM t), '{"benefit": "late_checkout"}'),
    ('rpa-1-6', 'risk_tag', (SELECT m FROM t), '{"risk_code": "unresolved_violation", "note": "TV damaged", "amount_owed": "800.00"}');
CREATE FUNCTION pg_temp.send(e ev) RETURNS void LANGUAGE sql AS $$
    INSERT INTO loyalty.outbox (event_id, store_code, incarnation, seq, kind, member_id, payload)
    VALUES (e.id, split_part(e.id, '-', 1), split_part(e.id, '-', 2)::bigint, split_part(e.id, '-', 3)::bigint,
            e.kind, e.member, e.payload)
$$;
SELECT pg_temp.send(e) FROM ev e ORDER BY id;
SELECT results_eq($$SELECT event_id, status, coalesce(sqlstate, '') FROM loyalty.outbox_result WHERE store_code = 'rpa' ORDER BY event_id$$,
    $$VALUES ('rpa-1-1', 'applied', ''), ('rpa-1-2', 'conflict', 'P0002'), ('rpa-1-3', 'applied', ''),
             ('rpa-1-4', 'conflict', '23514'), ('rpa-1-5', 'conflict', 'P0002'), ('rpa-1-6', 'applied', '')$$,
    'each event has a verdict: applied or conflict (unknown member, uncovered redemption, unknown benefit)');
SELECT is((SELECT count(*) FROM loyalty.member_preference WHERE value = 'buckwheat-free' AND store_code = 'rpa'), 1::bigint,
          'the preference was written, attributed to the store');
SELECT is(loyalty.points_balance((SELECT m FROM t)), 1500::bigint, 'the accrual counted; the uncovered redemption did not');
SELECT is((SELECT result ->> 'balance' FROM loyalty.outbox_result WHERE event_id = 'rpa-1-3'), '1500', 'the verdict carries the balance');
SELECT is((SELECT count(*) FROM loyalty.risk_tag WHERE risk_code = 'unresolved_violation' AND store_code = 'rpa' AND amount_owed = 800), 1::bigint,
          'the risk tag was raised for the store');
SELECT is((SELECT count(*) FROM loyalty.outbox WHERE store_code = 'rpa'), 6::bigint, 'every well-formed event is kept');

-- redelivery
SELECT pg_temp.send(e) FROM ev e WHERE id IN ('rpa-1-1', 'rpa-1-3');
SELECT is((SELECT count(*) FROM loyalty.member_preference WHERE value = 'buckwheat-free'), 1::bigint, 'a redelivered preference is not applied twice');
SELECT is(loyalty.points_balance((SELECT m FROM t)), 1500::bigint, 'a redelivered accrual is not counted twice');
SELECT is((SELECT string_agg(redeliveries::text, ',' ORDER BY event_id) FROM loyalty.outbox_result WHERE event_id IN ('rpa-1-1', 'rpa-1-3')),
          '1,1', 'redeliveries are counted');

-- malformed events: rejected, not stored, no error for the stream (the
-- server log gets a WARNING)
SET LOCAL client_min_messages = error;
SELECT lives_ok($$INSERT INTO loyalty.outbox (event_id, store_code, incarnation, seq, kind, member_id, payload)
                  VALUES ('rpa-1-99', 'rpa', 1, 7, 'preference', (SELECT m FROM t), '{}')$$, 'a malformed event raises no error');
SELECT lives_ok($$INSERT INTO loyalty.outbox (event_id, store_code, incarnation, seq, kind, member_id, payload)
                  VALUES ('rpa-1-8', 'rpa', 1, 8, 'teleport', (SELECT m FROM t), '{}')$$, 'an unknown kind raises no error');
SELECT results_eq($$SELECT event_id, status FROM loyalty.outbox_result WHERE event_id IN ('rpa-1-99', 'rpa-1-8') ORDER BY event_id$$,
    $$VALUES ('rpa-1-8', 'rejected'), ('rpa-1-99', 'rejected')$$, 'malformed events are rejected');
SELECT is((SELECT count(*) FROM loyalty.outbox WHERE event_id IN ('rpa-1-99', 'rpa-1-8')), 0::bigint, 'rejected events are not stored');

-- retry: while the member's violation (rpa-1-6) is unresolved, HQ's ledger
-- refuses the redemption (LY001); once it is settled and HQ credits the
-- member, the conflicting redemption applies
SELECT lives_ok(format($$SELECT loyalty.points_accrue('rp-topup', %L, 'rpb', 1000, 'stay')$$, (SELECT m FROM t)), 'HQ credits the member');
SELECT is(loyalty.replica_retry(), 0, 'a retry while the member is frozen applies nothing');
SELECT is((SELECT sqlstate FROM loyalty.outbox_result WHERE event_id = 'rpa-1-4'), 'LY001', 'the conflict now says why: frozen');
SELECT lives_ok($$SELECT loyalty.risk_tag_resolve(gen_random_uuid()::text, tag_id, 'settled', 'paid at HQ') FROM loyalty.risk_tag
                   WHERE store_code = 'rpa' AND resolved_at IS NULL$$, 'HQ settles the violation');
SELECT is(loyalty.replica_retry(), 1, 'retry applies the redemption now covered (the unknown benefit stays a conflict)');
SELECT is(loyalty.points_balance((SELECT m FROM t)), 500::bigint, 'the retried redemption was applied once');
SELECT is(loyalty.replica_retry(), 0, 'a second retry applies nothing');
SELECT lives_ok(format($$SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, %L, 'rpa', 'unresolved_violation', 'minibar not paid', 60)$$, (SELECT m FROM t)),
    'a new violation is flagged (for the store checks below)');

-- the outbox is append-only
SELECT throws_ok($$UPDATE loyalty.outbox SET payload = '{}'$$, '42501', 'loyalty.outbox is append-only', 'no update');
SELECT throws_ok($$DELETE FROM loyalty.outbox$$, '42501', 'loyalty.outbox is append-only', 'no delete');
SELECT throws_ok($$TRUNCATE loyalty.outbox$$, '42501', 'loyalty.outbox is append-only', 'no truncate');

-- store mode (this database plays store rpa from here on)
INSERT INTO loyalty.replica_node (node_role, store_code, incarnation) VALUES ('store', 'rpa', 7);
CREATE TEMP TABLE n AS SELECT count(*) AS events FROM loyalty.outbox;
SELECT throws_ok($$SELECT loyalty.store_preference_record(gen_random_uuid()::text, '00000000-0000-0000-0000-000000000000', 'pillow', 'down')$$,
                 'P0002', NULL, 'unknown member at the store');
SELECT throws_ok(format($$SELECT loyalty.store_preference_record(gen_random_uuid()::text, %L, 'mood', 'happy')$$, (SELECT m FROM t)),
                 '22023', 'invalid preference category "mood"', 'unknown preference category');
SELECT throws_ok(format($$SELECT loyalty.store_points_accrue(gen_random_uuid()::text, %L, 0)$$, (SELECT m FROM t)), '22023', NULL, 'zero points');
SELECT throws_ok(format($$SELECT loyalty.store_points_accrue(gen_random_uuid()::text, %L, 500)$$, (SELECT m FROM t)),
                 '22023', 'a store accrual needs a reference', 'a store accrual without a reference (issue 14.10)');
SELECT throws_ok(format($$SELECT loyalty.store_points_accrue(gen_random_uuid()::text, %L, 500, 'stay', '  ')$$, (SELECT m FROM t)),
                 '22023', 'a store accrual needs a reference', 'a blank reference');
SELECT throws_ok(format($$SELECT loyalty.store_points_redeem(gen_random_uuid()::text, %L, 150, 'x')$$, (SELECT m FROM t)), '22023', NULL, 'below the redemption minimum');
SELECT throws_ok(format($$SELECT loyalty.store_points_redeem(gen_random_uuid()::text, %L, 1000, 'x')$$, (SELECT m FROM t)), 'LY001',
                 'redemption is frozen for this member by unresolved risk tag "unresolved_violation"',
                 'the replicated risk tag freezes redemption at the store');
SELECT throws_ok(format($$SELECT loyalty.store_risk_tag_raise(gen_random_uuid()::text, %L, 'rumour', 'x')$$, (SELECT m FROM t)),
                 '22023', 'unknown risk type "rumour"', 'unknown risk type at the store');
SELECT throws_ok(format($$SELECT loyalty.store_benefit_use(gen_random_uuid()::text, %L, 'late_checkout')$$, (SELECT m FROM t)),
                 'P0002', NULL, 'a benefit the member does not have at this store');
SELECT is((SELECT count(*) FROM loyalty.outbox), (SELECT events FROM n), 'bad store calls write nothing');
SELECT matches(loyalty.store_preference_record('k1', (SELECT m FROM t), 'floor', 'high'), '^rpa-7-[0-9]+$',
               'a store event id is store, incarnation, sequence');
SELECT throws_ok(format($$SELECT loyalty.store_preference_record('k1', %L, 'floor', 'low')$$, (SELECT m FROM t)),
                 '23505', 'idempotency_key "k1" was already used for another store event', 'a key reused for another operation');

-- the batch window, in the store's local time (a window around now, and
-- one that begins later; both may wrap midnight)
SELECT lives_ok($$SELECT loyalty.replica_mode_set(gen_random_uuid()::text, 'rpa', 'batch',
    ((now() AT TIME ZONE 'Asia/Shanghai') - interval '1 hour')::time,
    ((now() AT TIME ZONE 'Asia/Shanghai') + interval '1 hour')::time)$$, 'a window around now');
SELECT is(loyalty.store_window_tick(), 'enabled', 'inside the window the subscription is enabled');
SELECT lives_ok($$SELECT loyalty.replica_mode_set(gen_random_uuid()::text, 'rpa', 'batch',
    ((now() AT TIME ZONE 'Asia/Shanghai') + interval '1 hour')::time,
    ((now() AT TIME ZONE 'Asia/Shanghai') + interval '2 hours')::time)$$, 'a window later today');
SELECT is(loyalty.store_window_tick(), 'disabled', 'outside the window it is disabled');
SELECT lives_ok($$SELECT loyalty.replica_mode_set(gen_random_uuid()::text, 'rpa', 'streaming')$$, 'back to streaming');
SELECT is(loyalty.store_window_tick(), 'enabled', 'streaming: always enabled');

SELECT * FROM finish();
ROLLBACK;
