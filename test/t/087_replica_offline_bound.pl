# The offline bound (issue 14.8, docs/replication.md "Offline limits"), on
# real servers: HQ and stores A (cap 3,000) and B (cap 2,000).  While HQ
# counts a store as offline, HQ's own spending (redemptions, transfers
# out) leaves every member the offline caps of those stores; the stores
# spend offline; when the links return, what HQ cannot cover is within
# the documented bound, and ledger_check() finds nothing.
#   member 1: only store A offline (k = 1), HQ spends the balance online:
#             HQ gets balance - 3,000, store A its 3,000, nothing uncovered;
#   member 2: both offline, balance 9,000 >= 5,000 (the sum of the caps):
#             nothing uncovered;
#   member 3: both offline, balance 4,000 < 5,000: HQ spends nothing, the
#             stores hand out 5,000; uncovered < T - B0 + p (4,000 here).
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
sub conn { my ($n) = @_; return '$$' . $n->connstr('postgres') . '$$'; }

my $hq = make_node('hq');
my %store = (sa => make_node('sa'), sb => make_node('sb'));
$hq->safe_psql('postgres', q{
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sa', 'Store A', 'bay', 'east', 'Asia/Shanghai');
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sb', 'Store B', 'bay', 'east', 'Asia/Shanghai');
	CREATE TABLE m AS SELECT g, (loyalty.member_enroll('enrol-' || g, 'sa', 'Member ' || g)).member_id
	  FROM generate_series(1, 4) g;
	SELECT loyalty.points_accrue('seed-' || g, member_id, 'sa', b, 'stay')
	  FROM m JOIN (VALUES (1, 10000), (2, 9000), (3, 4000), (4, 2000)) v(g, b) USING (g);
});
$hq->safe_psql('postgres', q{SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'sa', 3000)});
$hq->safe_psql('postgres', q{SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'sb', 2000)});
for my $c ('sa', 'sb')
{
	$hq->safe_psql('postgres', "SELECT loyalty.replica_slot_create('$c')");
	$store{$c}->safe_psql('postgres', 'SELECT loyalty.store_subscribe(' . conn($hq) . ", '$c')");
	$store{$c}->wait_for_subscription_sync($hq, "loyalty_store_$c");
	$hq->safe_psql('postgres', "SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, '$c', " . conn($store{$c}) . ')');
}
$hq->wait_for_subscription_sync;
my @m = split /\n/, $hq->safe_psql('postgres', 'SELECT member_id FROM m ORDER BY g');

sub reserve { return $hq->safe_psql('postgres', q{SELECT points || coalesce(' ' || stores, '') FROM loyalty._offline_reserve()}); }
sub wait_reserve
{
	my ($want) = @_;
	$hq->poll_query_until('postgres', "SELECT points || coalesce(' ' || stores, '') = '$want' FROM loyalty._offline_reserve()")
	  or diag('reserve: ' . reserve());
	return reserve();
}
sub cut
{
	my ($c) = @_;
	$store{$c}->safe_psql('postgres', "ALTER SUBSCRIPTION loyalty_store_$c DISABLE");
	$hq->safe_psql('postgres', "ALTER SUBSCRIPTION loyalty_outbox_$c DISABLE");
}
sub mend
{
	my ($c) = @_;
	$hq->safe_psql('postgres', "ALTER SUBSCRIPTION loyalty_outbox_$c ENABLE");
	$store{$c}->safe_psql('postgres', "ALTER SUBSCRIPTION loyalty_store_$c ENABLE");
}
sub settle
{
	my ($c) = @_;
	$hq->poll_query_until('postgres', "SELECT count(*) = 0 FROM loyalty.outbox o WHERE o.store_code = '$c'
		AND NOT EXISTS (SELECT 1 FROM loyalty.outbox_result x WHERE x.event_id = o.event_id)")
	  or die 'events not decided';
	$store{$c}->poll_query_until('postgres', q{SELECT count(*) = 0 FROM loyalty.store_outbox_status WHERE status = 'pending'})
	  or die 'verdicts not back at the store';
}
sub hq_spend
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $hq->psql('postgres', "SELECT ($sql).balance", on_error_stop => 1,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return $ret == 0 ? "ok $out" : ($err =~ /ERROR:  (\w{5}): (.*)/ ? "$1 $2" : $err);
}
sub redeem_hq { my ($i, $p) = @_; return hq_spend("loyalty.points_redeem(gen_random_uuid()::text, '$m[$i]', 'sa', $p, 'online')"); }
sub redeem_store
{
	my ($c, $i, $p) = @_;
	return $store{$c}->safe_psql('postgres', "SELECT loyalty.store_points_redeem(gen_random_uuid()::text, '$m[$i]', $p, 'offline')");
}
sub balance { return $hq->safe_psql('postgres', "SELECT loyalty.points_balance('$_[0]')"); }

is(wait_reserve('0'), '0', 'both stores streaming: HQ holds nothing back');
is(redeem_hq(3, 1000), 'ok 1000', 'HQ spends freely while every store streams');

# --- member 1: store A offline (k = 1), the member spends online at HQ
cut('sa');
is(wait_reserve('3000 sa'), '3000 sa', 'store A offline: HQ holds its cap (3,000) back');
is(redeem_hq(0, 10000), '23514 points are held for stores that are offline',
	'HQ refuses to spend the whole balance online (23514)');
is(redeem_hq(0, 7100), '23514 points are held for stores that are offline', 'or 100 points more than what is above the reserve');
is(redeem_hq(0, 7000), 'ok 3000', 'HQ spends what is above the reserve');
is(hq_spend("loyalty.points_transfer(gen_random_uuid()::text, '$m[0]', '$m[3]', 'sa', 100)"),
	'23514 points are held for stores that are offline', 'a transfer out is held to the reserve too');
is($hq->safe_psql('postgres', "SELECT (loyalty.points_accrue('earn-1', '$m[0]', 'sa', 1000, 'stay')).balance"), '4000',
	'earning at HQ is not limited');
is(redeem_hq(0, 1000), 'ok 3000', 'and what it adds above the reserve can be spent');
is($store{sa}->safe_psql('postgres', "SELECT loyalty.store_offline_redeemable('$m[0]')"), '3000',
	'store A, offline, still sees 10,000 points and may hand out its cap');
my @ev1 = (redeem_store('sa', 0, 1000), redeem_store('sa', 0, 2000));
mend('sa');
is(wait_reserve('0'), '0', 'store A streams again: nothing held back');
settle('sa');
is($hq->safe_psql('postgres', "SELECT string_agg(status, ',' ORDER BY event_id) FROM loyalty.outbox_result WHERE event_id IN ('$ev1[0]', '$ev1[1]')"),
	'applied,applied', 'member 1: both offline redemptions were covered (nothing uncovered: the bound for k = 1 is 0)');
is(balance($m[0]), '0', 'member 1: 11,000 points earned, 8,000 spent at HQ, 3,000 at store A');

# --- members 2 and 3: both stores offline
cut('sa');
cut('sb');
is(wait_reserve('5000 sa, sb'), '5000 sa, sb', 'both stores offline: HQ holds 3,000 + 2,000 back');
is(redeem_hq(1, 5000), '23514 points are held for stores that are offline', 'member 2: HQ refuses to go below 5,000');
is(redeem_hq(1, 4000), 'ok 5000', 'member 2: HQ spends 4,000 of 9,000');
is(redeem_hq(2, 1000), '23514 points are held for stores that are offline', 'member 3 (4,000 < 5,000): HQ spends nothing');
my @ev2 = (redeem_store('sa', 1, 1000), redeem_store('sa', 1, 2000), redeem_store('sb', 1, 2000));
my @ev3 = (redeem_store('sa', 2, 3000), redeem_store('sb', 2, 2000));
mend('sa');
mend('sb');
is(wait_reserve('0'), '0', 'both stores stream again');
settle('sa');
settle('sb');
is($hq->safe_psql('postgres', 'SELECT string_agg(status, \',\' ORDER BY event_id) FROM loyalty.outbox_result WHERE event_id IN (' . join(',', map {"'$_'"} @ev2) . ')'),
	'applied,applied,applied', 'member 2: every offline redemption covered (balance >= sum of caps: nothing uncovered)');
is(balance($m[1]), '0', 'member 2: 4,000 at HQ and 5,000 at the stores');

# member 3: B0 = 4,000, T = 5,000, the largest redemption p = 3,000
my $uncovered = $hq->safe_psql('postgres', q{SELECT coalesce(sum((o.payload ->> 'points')::bigint), 0)
	FROM loyalty.outbox o JOIN loyalty.outbox_result x USING (store_code, event_id)
	WHERE x.status = 'conflict' AND o.kind = 'redemption' AND o.member_id = '} . $m[2] . q{'});
my $applied = $hq->safe_psql('postgres', q{SELECT coalesce(sum((o.payload ->> 'points')::bigint), 0)
	FROM loyalty.outbox o JOIN loyalty.outbox_result x USING (store_code, event_id)
	WHERE x.status = 'applied' AND o.kind = 'redemption' AND o.member_id = '} . $m[2] . q{'});
cmp_ok($uncovered, '>', 0, "member 3: the stores handed out more than the balance; $uncovered uncovered");
cmp_ok($uncovered, '<', 5000 - 4000 + 3000, 'member 3: uncovered < T - B0 + p = 4,000 (the documented bound)');
is($uncovered + $applied, 5000, 'member 3: every offline redemption is applied or a conflict');
is(balance($m[2]), 4000 - $applied, 'member 3: HQ covered what it could');
is($store{sa}->safe_psql('postgres', "SELECT count(*) FROM loyalty.store_outbox_status WHERE status = 'conflict'")
	+ $store{sb}->safe_psql('postgres', "SELECT count(*) FROM loyalty.store_outbox_status WHERE status = 'conflict'"),
	'1', 'the uncovered redemption is a conflict, flagged at its store');

is(redeem_hq(3, 1000), 'ok 0', 'after the outage HQ spends freely again');
is($hq->safe_psql('postgres', 'SELECT count(*) FROM loyalty.ledger_check()'), '0', 'ledger_check finds nothing');

$_->stop for ($hq, values %store);
done_testing();
