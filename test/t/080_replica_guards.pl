# Store replica guards on real servers (issue 14): HQ and two stores.
#  - subscribing refuses a database that holds HQ data, an empty connection
#    string and a connection string that points back at the same server
#    (14.3), and leaves everything as it was;
#  - batches refuse an as_of in the future, no job recorded (14.4);
#  - DROP EXTENSION refuses while stores are attached and removes the
#    publications it made otherwise (14.5).
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
	$node->append_conf('postgresql.conf',
		"wal_retrieve_retry_interval = '200ms'\nmax_logical_replication_workers = 6\nmax_worker_processes = 12\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION loyalty');
	return $node;
}
sub conn { my ($n, $db) = @_; return '$$' . $n->connstr($db // 'postgres') . '$$'; }

my $hq = make_node('hq');
my %store = (sa => make_node('sa'), sb => make_node('sb'));
$hq->safe_psql('postgres', q{
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sa', 'Store A', 'bay', 'east', 'Asia/Shanghai');
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sb', 'Store B', 'bay', 'west', 'Asia/Shanghai');
	CREATE TABLE m AS SELECT g, (loyalty.member_enroll(gen_random_uuid()::text, 'sa', 'Member ' || g)).member_id FROM generate_series(1, 6) g;
	SELECT loyalty.points_accrue('seed-' || g, member_id, 'sa', 1000 * g, 'stay') FROM m;
});
for my $code ('sa', 'sb')
{
	$hq->safe_psql('postgres', "SELECT loyalty.replica_store_add(gen_random_uuid()::text, '$code')");
	$hq->safe_psql('postgres', "SELECT loyalty.replica_slot_create('$code')");
	$store{$code}->safe_psql('postgres', 'SELECT loyalty.store_subscribe(' . conn($hq) . ", '$code')");
	$store{$code}->wait_for_subscription_sync($hq, "loyalty_store_$code");
	$hq->safe_psql('postgres', "SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, '$code', " . conn($store{$code}) . ')');
}
$hq->wait_for_subscription_sync;
is($store{sb}->safe_psql('postgres', 'SELECT count(*) FROM loyalty.member'), '6', 'store B subscribed');

# --- 14.3: subscribing a populated HQ, an empty conninfo, a loop ----------
my ($ret, $out, $err);
# an HQ database with members but no store yet (the old guard only looked
# at loyalty.replica_store)
$hq->safe_psql('postgres', 'CREATE DATABASE hq2');
$hq->safe_psql('hq2', q{
	CREATE EXTENSION loyalty;
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sc', 'Store C', 'bay', 'east', 'Asia/Shanghai');
	SELECT loyalty.member_enroll(gen_random_uuid()::text, 'sc', 'Kept ' || g) FROM generate_series(1, 3) g;
});
my $hq2_before = $hq->safe_psql('hq2',
	'SELECT (SELECT count(*) FROM loyalty.member) || ' . "'/'" . ' || (SELECT count(*) FROM loyalty.store) || ' . "'/'" . ' || (SELECT count(*) FROM loyalty.policy)');
for my $fn ('store_subscribe', 'hub_subscribe')
{
	($ret, $out, $err) = $hq->psql('hq2', "SELECT loyalty.$fn(" . conn($hq) . ", 'sa')");
	like($err, qr/ERROR:  this database holds headquarters data/, "$fn refuses a database with members");
	is($hq->safe_psql('hq2',
		'SELECT (SELECT count(*) FROM loyalty.member) || ' . "'/'" . ' || (SELECT count(*) FROM loyalty.store) || ' . "'/'" . ' || (SELECT count(*) FROM loyalty.policy)'),
		$hq2_before, "$fn: nothing was emptied");
}
is($hq->safe_psql('hq2', q{SELECT count(*) FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = 'hq2'}), '0',
	'no subscription was made');
# HQ itself (it serves stores)
($ret, $out, $err) = $hq->psql('postgres', "SELECT loyalty.store_subscribe(" . conn($store{sa}) . ", 'sa')");
like($err, qr/this server replicates stores of its own|holds headquarters data/, 'HQ cannot subscribe as a store');

# a fresh database at the store server: an empty connection string, and
# one that reaches this very server
$store{sa}->safe_psql('postgres', 'CREATE DATABASE fresh');
$store{sa}->safe_psql('fresh', 'CREATE EXTENSION loyalty');
for my $empty ("''", "'   '")
{
	($ret, $out, $err) = $store{sa}->psql('fresh', "SELECT loyalty.store_subscribe($empty, 'sa')");
	like($err, qr/ERROR:  connection string must not be empty/, "store_subscribe($empty) is refused");
}
($ret, $out, $err) = $store{sa}->psql('fresh', "SELECT loyalty.hub_subscribe('', 'h1')");
like($err, qr/connection string must not be empty/, 'hub_subscribe with an empty connection string is refused');
($ret, $out, $err) = $store{sa}->psql('fresh', 'SELECT loyalty.store_subscribe(' . conn($store{sa}) . ", 'sa')");
like($err, qr/ERROR:  the connection string points back at this server/,
	'a connection string that reaches the same server (another database) is refused');
($ret, $out, $err) = $store{sa}->psql('fresh', 'SELECT loyalty.store_subscribe(' . conn($store{sa}, 'fresh') . ", 'sa')");
like($err, qr/points back at this server/, 'a connection string that reaches the same database is refused');
is($store{sa}->safe_psql('fresh',
	q{SELECT (SELECT count(*) FROM loyalty.policy) || '/' || (SELECT count(*) FROM loyalty.replica_node)
	      || '/' || (SELECT count(*) FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = 'fresh')
	      || '/' || (SELECT count(*) FROM pg_publication)}),
	'1/0/0/0', 'the refused calls emptied nothing and made nothing');
($ret, $out, $err) = $hq->psql('postgres', "SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'sa', '')");
like($err, qr/connection string must not be empty/, 'attaching an outbox with an empty connection string is refused');

# --- 14.4: batches refuse a future as_of -----------------------------------
my $jobs = $hq->safe_psql('postgres', 'SELECT count(*) FROM loyalty.job');
my $balances = $hq->safe_psql('postgres', 'SELECT sum(balance) FROM loyalty.point_balance');
for my $call (q{CALL loyalty.points_expire_batch('2100-01-01')},
	q{CALL loyalty.points_activate_due_batch(now() + interval '1 hour')},
	q{CALL loyalty.tier_downgrade_apply('2100-01-01')},
	q{CALL loyalty.tier_requalify(now() + interval '1 day')},
	q{SELECT loyalty.points_expire('future-1', '2100-01-01')},
	q{SELECT loyalty.points_activate_due('future-2', now() + interval '1 day')})
{
	($ret, $out, $err) = $hq->psql('postgres', $call, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/ERROR:  22023: as_of must not be in the future/, "$call: 22023");
}
is($hq->safe_psql('postgres', 'SELECT count(*) FROM loyalty.job'), $jobs, 'no job was recorded');
is($hq->safe_psql('postgres', 'SELECT sum(balance) FROM loyalty.point_balance'), $balances,
	'no balance changed');
$hq->safe_psql('postgres', 'CALL loyalty.points_expire_batch()');
is($hq->safe_psql('postgres', 'SELECT sum(balance) FROM loyalty.point_balance'), $balances,
	'as of now, members active today keep their points');
ok($hq->safe_psql('postgres', q{SELECT count(*) >= 0 FROM loyalty.tier_downgrade_preview('2100-01-01')}) eq 't',
	'the downgrade preview may look ahead');

# --- slot names are per server: another database's slot is left alone ------
# hq2 (another HQ database of the same server) registers a store with the
# code sa, whose slot loyalty_store_sa belongs to database postgres and
# streams to store A.  Neither re-seeding nor removing it in hq2 may touch
# that slot (it used to be dropped, or its walsender ended with force).
$hq->safe_psql('hq2', q{SELECT loyalty.store_create(gen_random_uuid()::text, 'sa', 'Store A (hq2)', 'bay', 'east', 'Asia/Shanghai')});
$hq->safe_psql('hq2', q{SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'sa')});
my $slot_sa = q{SELECT database || '/' || active FROM pg_replication_slots WHERE slot_name = 'loyalty_store_sa'};
is($hq->safe_psql('hq2', $slot_sa), 'postgres/true', 'the slot loyalty_store_sa is database postgres\'s, streaming');
($ret, $out, $err) = $hq->psql('hq2', q{SELECT loyalty.replica_slot_create('sa')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  42710: replication slot "loyalty_store_sa" belongs to database "postgres"/,
	'replica_slot_create refuses a same-named slot of another database (42710)');
like($err, qr/HINT:  Serve this store code from one database per server/, 'and says what to do');
is($hq->safe_psql('hq2', q{SELECT slot_status FROM loyalty.replica_status WHERE store_code = 'sa'}), 'no slot',
	'replica_status in hq2 does not show the other database\'s slot');
$hq->safe_psql('hq2', q{SELECT loyalty.replica_store_remove(gen_random_uuid()::text, 'sa', force => true)});
is($hq->safe_psql('hq2', $slot_sa), 'postgres/true', 'removing the store in hq2 (force) left the other slot alone');
# the slot still carries HQ's changes to store A
$hq->safe_psql('postgres', q{SELECT loyalty.member_enroll('slot-check', 'sa', 'After hq2')});
$hq->wait_for_catchup('loyalty_store_sa');
is($store{sa}->safe_psql('postgres', q{SELECT count(*) FROM loyalty.member_profile WHERE full_name = 'After hq2'}), '1',
	'store A still receives HQ\'s changes');

# --- 14.11: the status views say disconnected, and what waits -------------
my $hq_view = q{SELECT slot_status || '/' || outbox_attached || '/' || outbox_status FROM loyalty.replica_status WHERE store_code = 'sb'};
$hq->poll_query_until('postgres', $hq_view, 'streaming/true/streaming')
	or diag('HQ view of sb: ' . $hq->safe_psql('postgres', $hq_view));
is($hq->safe_psql('postgres', $hq_view), 'streaming/true/streaming', 'HQ: store B streams both ways');
$store{sb}->stop;
ok($hq->poll_query_until('postgres', $hq_view, 'disconnected/true/disconnected'),
	'HQ: store B\'s server down shows as disconnected (slot and outbox), the outbox still attached');
$store{sb}->start;
ok($hq->poll_query_until('postgres', $hq_view, 'streaming/true/streaming'), 'HQ: store B back: streaming');
my $st_view = q{SELECT status || '/' || events_pending FROM loyalty.store_replica_state};
ok($store{sa}->poll_query_until('postgres', $st_view, 'streaming/0'), 'store A: streaming, nothing waiting');
$hq->stop;
$store{sa}->safe_psql('postgres', q{SELECT loyalty.store_points_accrue('offline-1', member_id, 50, 'stay', 'room 1') FROM loyalty.member LIMIT 1});
ok($store{sa}->poll_query_until('postgres', $st_view, 'disconnected/1'),
	'store A with HQ down: disconnected, one event waiting');
$hq->start;
ok($store{sa}->poll_query_until('postgres', $st_view, 'streaming/0'), 'store A: HQ back, streaming, the event decided');

# --- 14.5: DROP EXTENSION and what replication made -------------------------
($ret, $out, $err) = $hq->psql('postgres', 'DROP EXTENSION loyalty CASCADE');
like($err, qr/ERROR:  cannot drop extension loyalty while store replicas are attached/,
	'HQ: DROP EXTENSION is refused while stores are attached');
like($err, qr/slot loyalty_store_sa/, 'the refusal names the slots');
like($err, qr/HINT:  Remove each store first/, 'the refusal says what to do');
is($hq->safe_psql('postgres', q{SELECT count(*) FROM pg_extension WHERE extname = 'loyalty'}), '1',
	'the extension is still there');
($ret, $out, $err) = $store{sb}->psql('postgres', 'DROP EXTENSION loyalty CASCADE');
like($err, qr/cannot drop extension loyalty while store replicas are attached.*subscription loyalty_store_sb/s,
	'a store: DROP EXTENSION is refused while it subscribes');
# a database whose store left: the publications go with the extension
# (slot names are per server: this database's store is sc)
$hq->safe_psql('hq2', q{SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'sc')});
$hq->safe_psql('hq2', q{SELECT loyalty.replica_slot_create('sc')});
($ret, $out, $err) = $hq->psql('hq2', 'DROP EXTENSION loyalty CASCADE');
like($err, qr/slot loyalty_store_sc/, 'a slot alone is enough to refuse');
$hq->safe_psql('hq2', q{SELECT loyalty.replica_store_remove(gen_random_uuid()::text, 'sc')});
$hq->safe_psql('hq2', q{SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'sc')});   # a publication, no slot
is($hq->safe_psql('hq2', q{SELECT count(*) FROM pg_publication WHERE pubname LIKE 'loyalty%'}), '1',
	'a publication without a slot');
$hq->safe_psql('hq2', 'DROP EXTENSION loyalty CASCADE');
is($hq->safe_psql('hq2',
	q{SELECT (SELECT count(*) FROM pg_publication) || '/' || (SELECT count(*) FROM pg_replication_slots WHERE database = 'hq2')
	      || '/' || (SELECT count(*) FROM pg_namespace WHERE nspname = 'loyalty')}),
	'0/0/1', 'DROP EXTENSION removed the publications; no slot; the schema stays, empty (docs/installation.md)');
# a store that left the chain
$store{sb}->safe_psql('postgres', 'SELECT loyalty.store_unsubscribe(drop_outbox_slot => true)');
$hq->safe_psql('postgres', q{SELECT loyalty.replica_store_remove(gen_random_uuid()::text, 'sb', force => true)});
$store{sb}->safe_psql('postgres', 'DROP EXTENSION loyalty CASCADE');
is($store{sb}->safe_psql('postgres',
	q{SELECT (SELECT count(*) FROM pg_publication) || '/' || (SELECT count(*) FROM pg_replication_slots)}),
	'0/0', 'a store that left: its outbox publication went with the extension');

$_->stop for ($hq, values %store);
done_testing();
