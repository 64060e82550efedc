-- replica (issue 19): HQ applies store events in batches.  The receive
-- trigger queues each event; the replica applier (a background worker of
-- src/replica_apply.c) applies the queue a batch per transaction.

CREATE SEQUENCE loyalty.outbox_queue_seq;
CREATE TABLE loyalty.outbox_queue (
    position     bigint PRIMARY KEY DEFAULT nextval('loyalty.outbox_queue_seq'),
    event_id     text NOT NULL UNIQUE,
    queued_at    timestamptz NOT NULL DEFAULT now(),
    redeliveries integer NOT NULL DEFAULT 0
);
COMMENT ON TABLE loyalty.outbox_queue IS 'HQ: store events received and waiting for the replica applier, in apply order';
SELECT pg_catalog.pg_extension_config_dump('loyalty.outbox_queue', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.outbox_queue_seq', '');
GRANT SELECT ON loyalty.outbox_queue TO loyalty_dba;
