# A store restored from an older backup (issue 14.2), on real servers: HQ
# and store A.  The store's data directory is copied (cold backup) after
# its first event; two more events reach HQ; the store is restored from the
# copy and records three new operations, numbered 2, 3 and 4 again.  After
# the restore procedure (HQ re-attaches the store's outbox, which copies it
# again), HQ applies the operation under the new id 4, keeps the two under
# reused ids in loyalty.outbox_reused with their content (never taken for
# redeliveries, never dropped silently), and counts event 1 as a
# redelivery.  Before it records anything, the restored store's
# replica_link_check() says it was restored (HQ holds events of its
# incarnation beyond its own numbering) and that it must be re-seeded.
use strict;
use warnings;
use File::Path ();
use PostgreSQL::Test::RecursiveCopy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

sub make_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical');
	$node->append_conf('postgresql.conf',
		"wal_retrieve_retry_interval = '200ms'\nmax_logical_replication_workers = 6\nmax_worker_processes = 12\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION loyalty');
	return $node;
}
sub conn { my ($n, $db) = @_; return '$$' . $n->connstr($db // 'postgres') . '$$'; }

my $hq = make_node('hq');
my $sa = make_node('sa');
$hq->safe_psql('postgres', q{
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sa', 'Store A', 'bay', 'east', 'Asia/Shanghai');
	CREATE TABLE m AS SELECT g, (loyalty.member_enroll('enrol-' || g, 'sa', 'Member ' || g)).member_id
	  FROM generate_series(1, 6) g;
});
$hq->safe_psql('postgres', q{SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'sa')});
$hq->safe_psql('postgres', q{SELECT loyalty.replica_slot_create('sa')});
$sa->safe_psql('postgres', 'SELECT loyalty.store_subscribe(' . conn($hq) . ", 'sa')");
$sa->wait_for_subscription_sync($hq, 'loyalty_store_sa');
$hq->safe_psql('postgres', q{SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'sa', } . conn($sa) . ')');
$hq->wait_for_subscription_sync;
my @m = split /\n/, $hq->safe_psql('postgres', 'SELECT member_id FROM m ORDER BY g');

sub accrue_at_store
{
	my ($key, $member, $points) = @_;
	return $sa->safe_psql('postgres', "SELECT loyalty.store_points_accrue('$key', '$member', $points, 'stay', '$key')");
}
sub applied
{
	my ($n) = @_;
	$hq->poll_query_until('postgres',
		"SELECT count(*) >= $n FROM loyalty.outbox_result WHERE store_code = 'sa' AND status = 'applied'")
	  or die "fewer than $n events applied";
}
sub balances
{
	return $hq->safe_psql('postgres',
		q{SELECT string_agg(coalesce(b.balance, 0)::text, ',' ORDER BY m.g) FROM m LEFT JOIN loyalty.point_balance b USING (member_id)});
}

my $e1 = accrue_at_store('k1', $m[0], 300);
applied(1);

# cold backup of the store after event 1
$sa->stop;
my $backup = $sa->basedir . '/cold_backup';
PostgreSQL::Test::RecursiveCopy::copypath($sa->data_dir, $backup);
$sa->start;

my $e2 = accrue_at_store('k2', $m[1], 400);
my $e3 = accrue_at_store('k3', $m[2], 500);
applied(3);
is(balances(), '300,400,500,0,0,0', 'three store events applied at HQ');

# the store is restored from the backup: its outbox ends at event 1
$sa->stop;
File::Path::rmtree($sa->data_dir);
PostgreSQL::Test::RecursiveCopy::copypath($backup, $sa->data_dir);
chmod 0700, $sa->data_dir;
$sa->start;
is($sa->safe_psql('postgres', q{SELECT count(*) FROM loyalty.outbox}), '1', 'the restored store holds event 1 only');
# the store notices its restore before it records anything: HQ holds
# events of its incarnation beyond the last number it issued
like($sa->safe_psql('postgres', q{SELECT status || ': ' || detail FROM loyalty.replica_link_check() WHERE direction = 'to HQ'}),
	qr/^restored: headquarters holds events of this store up to sa-\d+-3, this store's outbox ends at sa-\d+-1: .*re-seed it/,
	'the restored store notices it (replica_link_check) and says what to do');
my $n2 = accrue_at_store('k4', $m[3], 222);
my $n3 = accrue_at_store('k5', $m[4], 222);
my $n4 = accrue_at_store('k6', $m[5], 222);
is($n2, $e2, "the restored store numbers its next operation $n2 again (the id of another event)");
is($n3, $e3, "and the one after $n3");

# the restore procedure at HQ: the store's outbox is attached again, so
# that everything in it is copied and decided
$hq->safe_psql('postgres', q{
	ALTER SUBSCRIPTION loyalty_outbox_sa DISABLE;
	ALTER SUBSCRIPTION loyalty_outbox_sa SET (slot_name = NONE);
	DROP SUBSCRIPTION loyalty_outbox_sa;
});
$hq->safe_psql('postgres', q{SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'sa', } . conn($sa) . ')');
$hq->poll_query_until('postgres', q{SELECT count(*) = 2 FROM loyalty.outbox_reused WHERE store_code = 'sa'})
  or diag('reused: ' . $hq->safe_psql('postgres', 'SELECT count(*) FROM loyalty.outbox_reused'));
applied(4);

is($hq->safe_psql('postgres', q{SELECT string_agg(event_id || ':' || (event -> 'payload' ->> 'points'), ',' ORDER BY event_id)
	FROM loyalty.outbox_reused WHERE store_code = 'sa'}), "$n2:222,$n3:222",
	'the two operations under reused ids are kept in outbox_reused, with their content');
is(balances(), '300,400,500,0,0,222', 'HQ applied the operation under a new id; nothing under a reused id');
# the new stream may have applied the store's later events before the
# re-attached subscription's initial copy brings event 1 again: wait for it
ok($hq->poll_query_until('postgres', "SELECT redeliveries >= 1 FROM loyalty.outbox_result WHERE event_id = '$e1'"),
	'event 1 came again: a redelivery');
is($hq->safe_psql('postgres', "SELECT string_agg(redeliveries::text, ',' ORDER BY event_id) FROM loyalty.outbox_result WHERE event_id IN ('$e2', '$e3')"),
	'0,0', 'the reused ids were not counted as redeliveries');
my $log = slurp_file($hq->logfile);
like($log, qr/WARNING:  store event id "\Q$n2\E" was reused for another operation/, 'HQ logged a WARNING for each reused id');

# the rest of the procedure: the store is re-seeded, which starts a new
# incarnation, so its next operations take ids HQ has never seen
my $inc_before = $sa->safe_psql('postgres', 'SELECT incarnation FROM loyalty.replica_node');
$sa->safe_psql('postgres', 'SELECT loyalty.store_unsubscribe()');
$hq->safe_psql('postgres', q{SELECT loyalty.replica_slot_create('sa')});
$sa->safe_psql('postgres', 'SELECT loyalty.store_subscribe(' . conn($hq) . ", 'sa')");
$sa->wait_for_subscription_sync($hq, 'loyalty_store_sa');
my $inc_after = $sa->safe_psql('postgres', 'SELECT incarnation FROM loyalty.replica_node');
cmp_ok($inc_after, '>', $inc_before, 'the re-seed started a new incarnation');
my $n5 = accrue_at_store('k7', $m[3], 111);
like($n5, qr/^sa-\Q$inc_after\E-\d+$/, "the next operation's id carries it ($n5)");
applied(5);
is(balances(), '300,400,500,111,0,222', 'and HQ applies it once');
is($hq->safe_psql('postgres', q{SELECT count(*) FROM loyalty.outbox_reused}), '2', 'nothing new under a reused id');
is($hq->safe_psql('postgres', 'SELECT count(*) FROM loyalty.ledger_check()'), '0', 'ledger_check finds nothing');

$_->stop for ($hq, $sa);
done_testing();
