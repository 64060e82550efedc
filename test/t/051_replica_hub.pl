# A regional hub between HQ and two stores: HQ publishes once to the hub,
# the hub republishes each store's share (PG15 publishes applied changes),
# the stores' outboxes reach HQ through the hub, each event applied once.
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
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'loyalty'\n");   # the audit writer pool
	$node->append_conf('postgresql.conf',
		"wal_retrieve_retry_interval = '200ms'\nmax_logical_replication_workers = 6\nmax_worker_processes = 12\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION loyalty');
	return $node;
}

my $hq = make_node('hq');
my $hub = make_node('hub');
my %store = (sc => make_node('sc'), sd => make_node('sd'));
sub conn { my ($n) = @_; return '$$' . $n->connstr('postgres') . '$$'; }

$hq->safe_psql('postgres', q{
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sc', 'Store C', 'bay', 'east', 'Asia/Shanghai');
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sd', 'Store D', 'bay', 'east', 'Asia/Shanghai');
	CREATE TABLE m AS
	SELECT g, (loyalty.member_enroll(gen_random_uuid()::text, 'sc', 'Member ' || g)).member_id FROM generate_series(1, 6) g;
	INSERT INTO loyalty.member_preference (member_id, category, value, scope, store_code)
	SELECT member_id, 'room', 'corner room', 'store', 'sc' FROM m WHERE g = 1;
	SELECT loyalty.points_accrue('seed-' || g, member_id, 'sc', 2000, 'stay') FROM m;
});
my $m1 = $hq->safe_psql('postgres', 'SELECT member_id FROM m WHERE g = 1');

# HQ: the hub and its stores
$hq->safe_psql('postgres', q{SELECT loyalty.replica_hub_add(gen_random_uuid()::text, 'h1')});
$hq->safe_psql('postgres', q{SELECT loyalty.replica_slot_create('h1')});
$hq->safe_psql('postgres', q{
	SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'sc', via_hub => 'h1');
	SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'sd', via_hub => 'h1');
});
my ($ret, $out, $err) = $hq->psql('postgres', q{SELECT loyalty.replica_slot_create('sc')});
like($err, qr/store "sc" is replicated through hub "h1"/, 'a hub store\'s slot is made at the hub, not at HQ');

# the hub
$hub->safe_psql('postgres', 'SELECT loyalty.hub_subscribe(' . conn($hq) . q{, 'h1')});
$hub->wait_for_subscription_sync($hq, 'loyalty_hub_h1');
for my $code ('sc', 'sd')
{
	$hub->safe_psql('postgres', "SELECT loyalty.replica_store_add(gen_random_uuid()::text, '$code')");
	$hub->safe_psql('postgres', "SELECT loyalty.replica_slot_create('$code')");
}
($ret, $out, $err) = $hub->psql('postgres', q{SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'zz')});
like($err, qr/store "zz" has no replica/, 'a hub serves only stores HQ registered under it');

# the stores subscribe at the hub; the hub attaches their outboxes; HQ the hub's
for my $code ('sc', 'sd')
{
	$store{$code}->safe_psql('postgres', 'SELECT loyalty.store_subscribe(' . conn($hub) . ", '$code')");
	$store{$code}->wait_for_subscription_sync($hub, "loyalty_store_$code");
	$hub->safe_psql('postgres', "SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, '$code', " . conn($store{$code}) . ')');
}
$hq->safe_psql('postgres', q{SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'h1', } . conn($hub) . ')');
$hq->wait_for_subscription_sync;
$hub->wait_for_subscription_sync;

is($store{sd}->safe_psql('postgres',
	q{SELECT count(*) || '/' || (SELECT count(*) FROM loyalty.member_preference) FROM loyalty.member}),
	'6/0', 'store D holds the members and not store C\'s store-only preference');
is($store{sc}->safe_psql('postgres', "SELECT balance FROM loyalty.point_balance WHERE member_id = '$m1'"),
	'2000', 'store C holds the balances');

# settle: every store event decided at HQ, then a barrier row from HQ
# through the hub to each store (applied in commit order)
my $barrier = 0;
sub settle
{
	my $n = 0;
	$n += $store{$_}->safe_psql('postgres', 'SELECT count(*) FROM loyalty.outbox') for ('sc', 'sd');
	$hq->poll_query_until('postgres', "SELECT count(*) >= $n FROM loyalty.outbox_result")
	  or die 'HQ did not decide every event';
	$barrier++;
	$hq->safe_psql('postgres', "UPDATE loyalty.store SET region = 'barrier $barrier'");
	$store{$_}->poll_query_until('postgres',
		"SELECT bool_and(region = 'barrier $barrier') FROM loyalty.store")
	  or die "store $_ did not catch up" for ('sc', 'sd');
}

my $e_acc = $store{sc}->safe_psql('postgres',
	"SELECT loyalty.store_points_accrue(gen_random_uuid()::text, '$m1', 700, 'stay', 'room 12')");
my $e_pref = $store{sc}->safe_psql('postgres',
	"SELECT loyalty.store_preference_record(gen_random_uuid()::text, '$m1', 'pillow', 'down')");
# store D forges an event of a store outside its hub: rejected at HQ
my $inc = $store{sd}->safe_psql('postgres', 'SELECT incarnation FROM loyalty.replica_node');
$store{sd}->safe_psql('postgres', qq{
	INSERT INTO loyalty.outbox (event_id, store_code, incarnation, seq, kind, member_id, payload)
	VALUES ('zz-1-1', 'zz', 1, 1, 'accrual', '$m1', '{"points": 100000}')});
$hq->safe_psql('postgres', "UPDATE loyalty.member SET tier = 'silver' WHERE member_id = '$m1'");
settle();

is($hq->safe_psql('postgres', "SELECT loyalty.points_balance('$m1')"), '2700',
	'the accrual recorded at store C reached HQ through the hub, once');
is($hq->safe_psql('postgres', q{SELECT status FROM loyalty.outbox_result WHERE event_id = 'zz-1-1'}),
	'rejected', 'an event of a store outside the hub is rejected');
is($store{sc}->safe_psql('postgres',
	"SELECT string_agg(status, ',' ORDER BY event_id) FROM loyalty.store_outbox_status"),
	'applied,applied', 'HQ\'s verdicts reached store C through the hub');
for my $code ('sc', 'sd')
{
	is($store{$code}->safe_psql('postgres',
		"SELECT tier || ' ' || (SELECT balance FROM loyalty.point_balance b WHERE b.member_id = m.member_id)
		   || ' ' || (SELECT count(*) FROM loyalty.member_preference p WHERE p.member_id = m.member_id AND p.value = 'down')
		   FROM loyalty.member m WHERE member_id = '$m1'"),
		'silver 2700 1', "store $code: HQ's tier, the balance and store C's preference, through the hub");
}
is($hq->safe_psql('postgres', q{
	SELECT string_agg(store_code || ':' || kind || ':' || slot_status, ',' ORDER BY store_code)
	  FROM loyalty.replica_status}),
	'h1:hub:streaming,sc:store:via hub,sd:store:via hub', 'the DBA view at HQ shows the hub and its stores');
is($hq->safe_psql('postgres', q{SELECT events_applied FROM loyalty.replica_status WHERE store_code = 'h1'}),
	'2', 'the hub\'s row counts its stores\' events');
($ret, $out, $err) = $hq->psql('postgres', q{SELECT loyalty.replica_store_remove(gen_random_uuid()::text, 'h1')});
like($err, qr/hub "h1" still serves 2 stores/, 'a hub with stores cannot be removed');

# the replica administration calls above left their change records (issue
# 13, docs/audit.md), each on the server where it ran
my %did = (
	hq => [ $hq, qw(replica_hub_add replica_slot_create replica_outbox_attach) ],
	hub => [ $hub, qw(hub_subscribe replica_slot_create replica_outbox_attach) ],
	sc => [ $store{sc}, qw(store_subscribe) ]);
for my $where (sort keys %did)
{
	my ($n, @calls) = @{ $did{$where} };
	my $actions = ' ' . $n->safe_psql('postgres', q{
		SELECT string_agg(DISTINCT a.action, ' ' ORDER BY a.action)
		  FROM (SELECT action FROM loyalty.audit_change_staging
		        UNION ALL SELECT action FROM loyalty.audit_log) a}) . ' ';
	like($actions, qr/ \Q$_\E /, "$where: $_ is in the audit trail") for @calls;
}

$_->stop for ($hq, $hub, values %store);
done_testing();
