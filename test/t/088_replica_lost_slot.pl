# Replication links as they are (issue 14.11, docs/replication.md "The DBA
# view"), on real servers: HQ and store A.  A store server that is down, a
# slot lost to WAL removal (max_slot_wal_keep_size) on each side, and the
# events waiting, as loyalty.replica_link_check() (which asks the other
# end) reports them on both sides, and HQ's replica_status its own slot;
# then the re-seed and the outbox re-attached bring every event to HQ
# once.  The subscriber's own statistics cannot tell a lost slot at the
# other end (its worker still shows as streaming in PG15 here), which is
# why replica_link_check asks.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

sub make_node
{
	my ($name, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical');
	$node->append_conf('postgresql.conf',
		"wal_retrieve_retry_interval = '200ms'\nmax_logical_replication_workers = 6\nmax_worker_processes = 12\n"
		. ($conf // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION loyalty');
	return $node;
}
sub conn { my ($n) = @_; return '$$' . $n->connstr('postgres') . '$$'; }

# HQ runs the scheduled link check from pg_cron (docs/operations.md)
my $hq = make_node('hq', "shared_preload_libraries = 'pg_cron'\ncron.database_name = 'postgres'\n"
	. "cron.use_background_workers = on\nloyalty.replica_link_wait_warn = 0\n");
$hq->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
my $sa = make_node('sa');
$hq->safe_psql('postgres', q{
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sa', 'Store A', 'bay', 'east', 'Asia/Shanghai');
	CREATE TABLE m AS SELECT g, (loyalty.member_enroll('enrol-' || g, 'sa', 'Member ' || g)).member_id
	  FROM generate_series(1, 3) g;
});
$hq->safe_psql('postgres', q{SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'sa')});
$hq->safe_psql('postgres', q{SELECT loyalty.replica_slot_create('sa')});
$sa->safe_psql('postgres', 'SELECT loyalty.store_subscribe(' . conn($hq) . ", 'sa')");
$sa->wait_for_subscription_sync($hq, 'loyalty_store_sa');
$hq->safe_psql('postgres', q{SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'sa', } . conn($sa) . ')');
$hq->wait_for_subscription_sync;
my @m = split /\n/, $hq->safe_psql('postgres', 'SELECT member_id FROM m ORDER BY g');

# "direction status waiting" for each link, as replica_link_check() says
my $links_sql = q{SELECT string_agg(direction || ' ' || status || ' ' || coalesce(events_waiting::text, '-'), ', ' ORDER BY direction)
	FROM loyalty.replica_link_check()};
sub links { my ($node) = @_; return $node->safe_psql('postgres', $links_sql); }
sub wait_links
{
	my ($node, $want) = @_;
	$node->poll_query_until('postgres', "SELECT ($links_sql) = '$want'");
	return links($node);
}
sub hq_status
{
	return $hq->safe_psql('postgres', q{SELECT slot_status || '/' || outbox_status FROM loyalty.replica_status WHERE store_code = 'sa'});
}
# fill and switch WAL segments and checkpoint until the slot's WAL is removed
sub lose_slot
{
	my ($node, $slot) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
	$node->reload;
	$node->safe_psql('postgres', 'CREATE TABLE IF NOT EXISTS wal_filler (x int)');
	my $state = '';
	for (1 .. 20)
	{
		$node->safe_psql('postgres', 'INSERT INTO wal_filler SELECT generate_series(1, 1000)');
		$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
		$node->safe_psql('postgres', 'CHECKPOINT');
		$state = $node->safe_psql('postgres', "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '$slot'");
		last if $state eq 'lost';
	}
	$node->safe_psql('postgres', 'ALTER SYSTEM RESET max_slot_wal_keep_size');
	$node->reload;
	return $state;
}
sub accrue
{
	my ($i, $p) = @_;
	return $sa->safe_psql('postgres', "SELECT loyalty.store_points_accrue(gen_random_uuid()::text, '$m[$i]', $p, 'stay', 'folio-' || gen_random_uuid())");
}

is(wait_links($hq, 'from store streaming 0, to store streaming -'), 'from store streaming 0, to store streaming -',
	'HQ: both links to store A stream, nothing waits');
is(wait_links($sa, 'from HQ streaming -, to HQ streaming 0'), 'from HQ streaming -, to HQ streaming 0',
	'store A: both links stream');

# --- the store's server is down -----------------------------------------
$sa->stop;
$hq->poll_query_until('postgres', q{SELECT slot_status = 'disconnected' AND outbox_status = 'disconnected'
	FROM loyalty.replica_status WHERE store_code = 'sa'});
is(hq_status(), 'disconnected/disconnected', 'store A down: replica_status says disconnected both ways');
is(links($hq), 'from store unreachable -, to store disconnected -', 'HQ: the store cannot be reached');
like($hq->safe_psql('postgres', q{SELECT detail FROM loyalty.replica_link_check() WHERE direction = 'from store'}),
	qr/connect/, 'with the connection error');
# the scheduled check (job loyalty-replica-links, every minute here:
# pg_cron 1.4 has no shorter schedule) records it and warns in the log
my $log_offset = -s $hq->logfile;
$hq->safe_psql('postgres', q{SELECT cron.schedule(job_name, '* * * * *', command)
	FROM loyalty.job_schedule_defaults() WHERE job_name = 'loyalty-replica-links'});
$hq->poll_query_until('postgres', q{SELECT EXISTS (SELECT 1 FROM loyalty.replica_link_log WHERE store_code = 'sa' AND direction = 'from store' AND status = 'unreachable')})
  or die 'the scheduled check recorded nothing';
is($hq->safe_psql('postgres', q{SELECT status || '/' || alert || '/' || (detail ~ 'connect') FROM loyalty.replica_link_log
	WHERE store_code = 'sa' AND direction = 'from store' ORDER BY checked_at DESC LIMIT 1}),
	'unreachable/link unreachable/true', 'scheduled check: replica_link_log records store A unreachable, with the error');
is($hq->safe_psql('postgres', q{SELECT status || '/' || alert FROM loyalty.replica_link_log
	WHERE store_code = 'sa' AND direction = 'to store' ORDER BY checked_at DESC LIMIT 1}),
	'disconnected/link disconnected', 'scheduled check: and HQ\'s slot for it without a reader');
ok($hq->wait_for_log(qr/WARNING:  replication link of store "sa" \(from store\): link unreachable/, $log_offset),
	'scheduled check: a WARNING in HQ\'s server log');
$hq->safe_psql('postgres', q{SELECT cron.unschedule('loyalty-replica-links')});

# --- HQ's slot for the store is lost to WAL removal while it is down ----
is(lose_slot($hq, 'loyalty_store_sa'), 'lost', "HQ's slot for store A lost its WAL (max_slot_wal_keep_size)");
is(hq_status(), 'lost/disconnected', 'HQ: replica_status says lost');
is($hq->safe_psql('postgres', q{SELECT wal_status FROM loyalty.replica_status WHERE store_code = 'sa'}), 'lost', 'wal_status lost');
$sa->start;
is(wait_links($hq, 'from store streaming 0, to store slot lost -'), 'from store streaming 0, to store slot lost -',
	'HQ: the store is back, its outbox streams, HQ\'s slot for it is lost');
my $e1 = accrue(0, 100);
is(wait_links($sa, 'from HQ slot lost -, to HQ streaming 1'), 'from HQ slot lost -, to HQ streaming 1',
	'store A: replica_link_check says HQ\'s slot is lost, and one event waits for its verdict');
is($sa->safe_psql('postgres', q{SELECT events_pending FROM loyalty.store_replica_state}), '1',
	'store A: store_replica_state counts the event pending (its status reads only the local worker)');
$hq->poll_query_until('postgres', "SELECT status = 'applied' FROM loyalty.outbox_result WHERE event_id = '$e1'");
is($hq->safe_psql('postgres', "SELECT status FROM loyalty.outbox_result WHERE event_id = '$e1'"), 'applied',
	'HQ applied the event (its verdict cannot reach the store: the store keeps it waiting)');

# --- the store's outbox slot is lost while HQ does not read it ----------
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sa DISABLE');
my @later = (accrue(1, 200), accrue(2, 300));
is(wait_links($hq, 'from store disabled 2, to store slot lost -'), 'from store disabled 2, to store slot lost -',
	'HQ: its outbox subscription is disabled, two events wait at the store');
is(lose_slot($sa, 'loyalty_outbox'), 'lost', "the store's outbox slot lost its WAL");
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sa ENABLE');
is(wait_links($hq, 'from store slot lost 2, to store slot lost -'), 'from store slot lost 2, to store slot lost -',
	'HQ: the store\'s outbox slot is lost, two events wait there');
is($hq->safe_psql('postgres', q{SELECT slot_status FROM loyalty.replica_status WHERE store_code = 'sa'}), 'lost',
	'HQ: replica_status still says its own slot is lost');
is(links($sa), 'from HQ slot lost -, to HQ slot lost 3', 'store A: both slots lost, three events wait for a verdict');

# --- the way back: re-seed the store, re-attach its outbox --------------
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sa DISABLE');
$sa->safe_psql('postgres', q{SELECT pg_drop_replication_slot('loyalty_outbox')});
$sa->safe_psql('postgres', 'SELECT loyalty.store_unsubscribe()');
$hq->safe_psql('postgres', q{SELECT loyalty.replica_slot_create('sa')});
$sa->safe_psql('postgres', 'SELECT loyalty.store_subscribe(' . conn($hq) . ", 'sa')");
$sa->wait_for_subscription_sync($hq, 'loyalty_store_sa');
$hq->safe_psql('postgres', q{
	ALTER SUBSCRIPTION loyalty_outbox_sa SET (slot_name = NONE);
	DROP SUBSCRIPTION loyalty_outbox_sa;
});
$hq->safe_psql('postgres', q{SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'sa', } . conn($sa) . ')');
is(wait_links($sa, 'from HQ streaming -, to HQ streaming 0'), 'from HQ streaming -, to HQ streaming 0',
	'store A: both links stream again, no event waits');
is(wait_links($hq, 'from store streaming 0, to store streaming -'), 'from store streaming 0, to store streaming -',
	'HQ: both links stream again');
is(hq_status(), 'streaming/streaming', 'replica_status says streaming');
$hq->poll_query_until('postgres', "SELECT redeliveries >= 1 FROM loyalty.outbox_result WHERE event_id = '$e1'");
is($hq->safe_psql('postgres', q{SELECT string_agg(coalesce(b.balance, 0)::text, ',' ORDER BY m.g) FROM m LEFT JOIN loyalty.point_balance b USING (member_id)}),
	'100,200,300', 'every event reached HQ once');
is($hq->safe_psql('postgres', "SELECT redeliveries FROM loyalty.outbox_result WHERE event_id = '$e1'"), '1',
	'the event HQ had applied came again with the re-attached outbox: a redelivery');
is($hq->safe_psql('postgres', 'SELECT count(*) FROM loyalty.ledger_check()'), '0', 'ledger_check finds nothing');

$_->stop for ($hq, $sa);
done_testing();
