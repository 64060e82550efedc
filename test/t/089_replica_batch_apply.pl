# Store catch-up at HQ in batches (issue 19): HQ's receive trigger queues
# each store event (loyalty.outbox_queue) and the replica applier applies
# the queue a batch per transaction (src/replica_apply.c).  A backlog of
# 600 accruals and one conflicting event, queued by one store
# transaction, is applied in 13 transactions (12 of 50 events, 1 of 1); each
# event is applied exactly once, the conflict touches no other event, and
# a redelivered batch (the outbox subscription re-attached: every event
# copied again) only counts a redelivery per event.  No timing is asserted.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

sub make_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical');
	# the replica applier finds its database's worker in shared memory
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'loyalty'\n"
		  . "wal_retrieve_retry_interval = '200ms'\nmax_worker_processes = 12\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION loyalty');
	return $node;
}

my $hq = make_node('hq');
my $sa = make_node('sa');

$hq->safe_psql('postgres', q{
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sa', 'Store A', 'bay', 'east', 'Asia/Shanghai');
	CREATE TABLE m AS
	SELECT g, (loyalty.member_enroll(gen_random_uuid()::text, 'sa', 'Member ' || g)).member_id
	  FROM generate_series(1, 6) g;
});
$hq->safe_psql('postgres', "SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'sa')");
$hq->safe_psql('postgres', "SELECT loyalty.replica_slot_create('sa')");
$sa->safe_psql('postgres', "SELECT loyalty.store_subscribe(\$\$" . $hq->connstr('postgres') . "\$\$, 'sa')");
$sa->wait_for_subscription_sync($hq, 'loyalty_store_sa');
$hq->safe_psql('postgres', "SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'sa', \$\$"
	  . $sa->connstr('postgres') . "\$\$)");
$hq->wait_for_subscription_sync;

# the backlog: HQ's outbox subscription is off while the store records
# 600 accruals (100 per member, 1 to 100 points, each for a folio: HQ
# verifies that a store's accrual names what it is for) and one accrual for a
# member HQ does not know (written into the outbox directly: the store's
# function refuses it), in one store transaction
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sa DISABLE');
$hq->poll_query_until('postgres',
	q{SELECT pid IS NULL FROM pg_stat_subscription WHERE subname = 'loyalty_outbox_sa'})
  or die 'the outbox subscription did not stop';
$sa->safe_psql('postgres', q{
	BEGIN;
	SELECT count(loyalty.store_points_accrue('acc-' || m.member_id || '-' || i, m.member_id, i, 'stay',
	                                         'folio-' || m.member_id || '-' || i))
	  FROM loyalty.member m, generate_series(1, 100) i;
	INSERT INTO loyalty.outbox (event_id, store_code, incarnation, seq, kind, member_id, payload, idem_key)
	SELECT 'sa-' || n.incarnation || '-' || s.v, 'sa', n.incarnation, s.v, 'accrual',
	       '00000000-0000-4000-8000-000000000001', '{"points": 5, "source": "stay", "reference": "folio-unknown"}', 'acc-unknown'
	  FROM loyalty.replica_node n, (SELECT nextval('loyalty.outbox_seq') AS v) s;
	COMMIT;
});
my $events = $sa->safe_psql('postgres', 'SELECT count(*) FROM loyalty.outbox');
is($events, '601', 'the store queued 601 events');

$hq->safe_psql('postgres', q{
	CREATE TABLE b0 AS SELECT m.member_id, coalesce(b.balance, 0) AS balance,
	       (SELECT count(*) FROM loyalty.point_entry e WHERE e.member_id = m.member_id) AS entries
	  FROM m LEFT JOIN loyalty.point_balance b USING (member_id)});
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sa ENABLE');
$hq->poll_query_until('postgres',
	"SELECT count(*) = $events FROM loyalty.outbox_result WHERE store_code = 'sa'")
  or die 'HQ did not decide the backlog';

is($hq->safe_psql('postgres', q{
	SELECT string_agg(status || ':' || n, ',' ORDER BY status)
	  FROM (SELECT status, count(*) AS n FROM loyalty.outbox_result WHERE store_code = 'sa' GROUP BY status) s}),
	'applied:600,conflict:1', 'every accrual applied, the unknown member a conflict');
is($hq->safe_psql('postgres', q{
	SELECT detail FROM loyalty.outbox_result r JOIN loyalty.outbox o USING (store_code, event_id)
	 WHERE o.idem_key = 'acc-unknown'}),
	'member 00000000-0000-4000-8000-000000000001 does not exist at HQ',
	'the conflict says why');
# the verdicts were written by one transaction per batch of 50
is($hq->safe_psql('postgres', q{
	SELECT count(*) || ' of ' || max(n) || ', ' || min(n)
	  FROM (SELECT count(*) AS n FROM loyalty.outbox_result WHERE store_code = 'sa' GROUP BY xmin::text) b}),
	'13 of 50, 1', 'the backlog was applied in 13 transactions: 12 batches of 50 events and 1 of 1');
is($hq->safe_psql('postgres', 'SELECT count(*) FROM loyalty.outbox_queue'), '0', 'nothing is left queued');

# exactly once: each member earned 1 + 2 + ... + 100 points once, in one
# ledger entry per event
my $balances = q{
	SELECT string_agg((b.balance - b0.balance)::text, ',' ORDER BY m.g)
	  FROM m JOIN loyalty.point_balance b USING (member_id) JOIN b0 USING (member_id)};
is($hq->safe_psql('postgres', $balances), join(',', (5050) x 6), 'each accrual is in each balance once');
my $entries = q{SELECT count(*) - (SELECT sum(entries) FROM b0) FROM loyalty.point_entry e JOIN m USING (member_id)};
is($hq->safe_psql('postgres', $entries), '600', 'one ledger entry per applied event');

# the rows ledger_accrue writes, written for a run of accruals by one
# statement (src/replica_apply_batch.c): per event an idempotency record
# keyed by its id, an active lot of its points, an entry whose balance is
# the one before it plus its points; the verdict's balance is the entry's
is($hq->safe_psql('postgres', q{
	SELECT count(*) || ' ' || count(*) FILTER (WHERE r.operation = 'accrue' AND r.points = (o.payload ->> 'points')::bigint
	                                         AND l.state = 'active' AND l.remaining = r.points AND l.points = r.points
	                                         AND l.entry_id = e.entry_id AND l.reference = o.payload ->> 'reference'
	                                         AND e.kind = 'accrue' AND e.points = r.points AND e.balance_after = r.balance
	                                         AND (x.result ->> 'balance')::bigint = r.balance
	                                         AND r.lots = jsonb_build_array(jsonb_build_object('lot_id', l.lot_id, 'points', r.points, 'state', 'active'))
	                                         AND r.args LIKE 'member=' || o.member_id || ' store=sa points=' || r.points || ' source=stay rule= reference=folio-%')
	  FROM loyalty.outbox o
	  JOIN loyalty.outbox_result x USING (store_code, event_id)
	  JOIN loyalty.ledger_request r ON r.idem_key = o.event_id
	  JOIN loyalty.point_entry e ON e.entry_id = r.entry_id
	  JOIN loyalty.point_lot l ON l.lot_id = r.lot_id
	 WHERE o.store_code = 'sa'}),
	'600 600', 'each applied accrual has its idempotency record, lot, entry and verdict, as ledger_accrue writes them');
is($hq->safe_psql('postgres', q{
	SELECT count(*) FROM (
	  SELECT e.member_id, e.balance_after, e.points,
	         lag(e.balance_after) OVER (PARTITION BY e.member_id ORDER BY e.balance_after) AS before
	    FROM loyalty.point_entry e JOIN m USING (member_id)) s
	 WHERE s.before IS NOT NULL AND s.balance_after <> s.before + s.points}),
	'0', "each entry's balance is the one before it plus its points");

# the batch redelivered: re-attaching the outbox copies every event again
$hq->safe_psql('postgres', q{
	ALTER SUBSCRIPTION loyalty_outbox_sa DISABLE;
	ALTER SUBSCRIPTION loyalty_outbox_sa SET (slot_name = NONE);
	DROP SUBSCRIPTION loyalty_outbox_sa;
});
$sa->safe_psql('postgres', q{SELECT pg_drop_replication_slot('loyalty_outbox')});
$hq->safe_psql('postgres', "SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'sa', \$\$"
	  . $sa->connstr('postgres') . "\$\$)");
$hq->wait_for_subscription_sync;
$hq->poll_query_until('postgres',
	"SELECT min(redeliveries) = 1 FROM loyalty.outbox_result WHERE store_code = 'sa'")
  or die 'the redelivery was not counted';
is($hq->safe_psql('postgres', q{
	SELECT count(*) || '/' || max(redeliveries) FROM loyalty.outbox_result WHERE store_code = 'sa'}),
	'601/1', 'each redelivered event counts one redelivery');
# a later event is applied after the redelivered ones: they are all decided
my $after = $sa->safe_psql('postgres', q{
	SELECT loyalty.store_points_accrue('acc-after', (SELECT member_id FROM loyalty.member ORDER BY member_id LIMIT 1), 7, 'stay',
	                                  'folio-after')});
$hq->poll_query_until('postgres', "SELECT status = 'applied' FROM loyalty.outbox_result WHERE event_id = '$after'")
  or die 'the event after the redelivery was not applied';
is($hq->safe_psql('postgres', $entries), '601', 'no redelivered event was applied again');
is($hq->safe_psql('postgres', q{
	SELECT sum(b.balance) - (SELECT sum(balance) FROM b0) FROM loyalty.point_balance b JOIN m USING (member_id)}),
	6 * 5050 + 7, 'the balances hold each event once');
is($hq->safe_psql('postgres', q{
	SELECT string_agg(status || ':' || n, ',' ORDER BY status)
	  FROM (SELECT status, count(*) AS n FROM loyalty.outbox_result WHERE store_code = 'sa' GROUP BY status) s}),
	'applied:601,conflict:1', 'the verdicts are unchanged by the redelivery');
is($hq->safe_psql('postgres', 'SELECT count(*) FROM loyalty.outbox_queue'), '0', 'nothing is left queued');

# the verdicts reach the store
$sa->poll_query_until('postgres', "SELECT status = 'applied' FROM loyalty.store_outbox_status WHERE event_id = '$after'")
  or die 'the verdict did not reach the store';
pass('the verdict of the last event reached the store');

done_testing();
