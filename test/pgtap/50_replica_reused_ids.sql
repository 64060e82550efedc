-- pgTAP: an event id HQ has already seen (issue 14.2).  The same id with
-- the same content is a redelivery (counted, not applied); the same id
-- with other content (a store restored from an older backup numbers its
-- new operations again) is another operation: kept in
-- loyalty.outbox_reused with a WARNING, never applied, never taken for a
-- redelivery.  A direct insert plays the apply worker's part.
BEGIN;
SELECT plan(8);

SELECT loyalty.store_create(gen_random_uuid()::text, 'rru', 'Reused A', 'bay', 'r', 'Asia/Shanghai');
SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'rru');
CREATE TEMP TABLE t AS
SELECT (SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'rru', 'Reused Member')) AS m;
CREATE FUNCTION pg_temp.send(id text, points int, at timestamptz) RETURNS void LANGUAGE sql AS $$
    INSERT INTO loyalty.outbox (event_id, store_code, incarnation, seq, kind, member_id, payload, recorded_at)
    VALUES (id, 'rru', split_part(id, '-', 2)::bigint, split_part(id, '-', 3)::bigint,
            'accrual', (SELECT m FROM t), jsonb_build_object('points', points, 'source', 'stay', 'reference', 'folio ' || id), at)
$$;

SELECT pg_temp.send('rru-7-1', 300, now() - interval '2 days');
SELECT pg_temp.send('rru-7-2', 400, now() - interval '1 day');
SELECT is(loyalty.points_balance((SELECT m FROM t)), 700::bigint, 'two store accruals applied');

-- the same events again (a re-copied outbox): redeliveries
SELECT pg_temp.send('rru-7-1', 300, now() - interval '2 days');
SELECT is((SELECT redeliveries FROM loyalty.outbox_result WHERE event_id = 'rru-7-1'), 1, 'the same id and content is a redelivery');
SELECT is((SELECT count(*) FROM loyalty.outbox_reused), 0::bigint, 'and not a reused id');

-- a store restored from a backup taken after event 1: its next operation is numbered 2 again
SET LOCAL client_min_messages = error;
SELECT lives_ok($$SELECT pg_temp.send('rru-7-2', 950, now() - interval '1 hour')$$, 'a reused id does not stop the stream');
RESET client_min_messages;
SELECT is(loyalty.points_balance((SELECT m FROM t)), 700::bigint, 'the operation under a reused id is not applied');
SELECT is((SELECT redeliveries FROM loyalty.outbox_result WHERE event_id = 'rru-7-2'), 0, 'nor counted as a redelivery');
SELECT results_eq($$SELECT store_code, event_id, (event -> 'payload' ->> 'points')::int FROM loyalty.outbox_reused$$,
    $$VALUES ('rru', 'rru-7-2', 950)$$, 'it is kept in loyalty.outbox_reused, with its content');
SELECT is((SELECT payload ->> 'points' FROM loyalty.outbox WHERE event_id = 'rru-7-2'), '400', 'the first event of that id is unchanged');

SELECT * FROM finish();
ROLLBACK;
