# Forged store events (issue 14.10), on real servers: HQ and store A.  A
# store superuser writes events straight into the store's outbox, outside
# the store API: back-dated 400 days, claiming an HQ login, in the future,
# 100,000,000 points without a reference, 50,000 points for a folio HQ
# cannot resolve, another member's stay, an adjustment.  HQ records each
# as a conflict (42501) and applies none; balances do not move; a retry
# applies none.  The store's legitimate offline operations (a stay, and an
# accrual for that stay, by a front desk login of the store) still apply.
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
my $sa = make_node('sa');
$hq->safe_psql('postgres', q{
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sa', 'Store A', 'bay', 'east', 'Asia/Shanghai');
	SELECT loyalty.staff_create(gen_random_uuid()::text, 'hq_crm', NULL, 'crm');
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

# a front desk login of the store, made at the store
$sa->poll_query_until('postgres', q{SELECT count(*) > 0 FROM loyalty.staff_role WHERE store_code = 'sa'})
  or die 'store roles not made';
$sa->safe_psql('postgres', q{SELECT loyalty.staff_create(gen_random_uuid()::text, 'amy', 'sa', 'frontdesk')});
sub as_amy { my ($sql) = @_; return $sa->safe_psql('postgres', $sql, extra_params => [ '-U', 'amy' ]); }

# the legitimate offline path: a stay, then an accrual for that stay
as_amy("SELECT stay_id FROM loyalty.stay_record('pms-1', 'sa', '$m[0]', current_date - 2, current_date, room_revenue => 500)");
my $legit = as_amy("SELECT loyalty.store_points_accrue('bonus-pms-1', '$m[0]', 2000, 'stay', 'pms-1')");

# forged events: a store superuser inserts into the outbox directly
sub forge
{
	my ($member, $payload, $at, $by) = @_;
	return $sa->safe_psql('postgres', qq{
		INSERT INTO loyalty.outbox (event_id, store_code, incarnation, seq, kind, member_id, payload, recorded_at, recorded_by)
		SELECT n.store_code || '-' || n.incarnation || '-' || s, n.store_code, n.incarnation, s, 'accrual',
		       '$member', '$payload', $at, '$by'
		  FROM loyalty.replica_node n, nextval('loyalty.outbox_seq') s
		RETURNING event_id});
}
my %forged = (
	backdated_hq => forge($m[1], '{"points": 500, "source": "stay", "reference": "pms-1"}', "now() - interval '400 days'", 'hq_crm'),
	hq_login     => forge($m[1], '{"points": 500, "source": "stay", "reference": "folio-1"}', 'now()', 'hq_crm'),
	backdated    => forge($m[1], '{"points": 500, "source": "stay", "reference": "folio-2"}', "now() - interval '400 days'", 'amy'),
	future       => forge($m[1], '{"points": 500, "source": "stay", "reference": "folio-3"}', "now() + interval '1 day'", 'amy'),
	no_reference => forge($m[1], '{"points": 100000000, "source": "stay"}', 'now()', 'amy'),
	above_cap    => forge($m[1], '{"points": 50000, "source": "spend", "reference": "folio-4"}', 'now()', 'amy'),
	other_stay   => forge($m[1], '{"points": 500, "source": "stay", "reference": "pms-1"}', 'now()', 'amy'),
	adjustment   => forge($m[2], '{"points": 500, "source": "adjustment", "reference": "folio-5"}', 'now()', 'postgres'),
);

# a legitimate operation after the forgeries still applies
my $after = as_amy("SELECT loyalty.store_points_accrue('folio-6', '$m[2]', 300, 'spend', 'folio-6')");

$hq->poll_query_until('postgres', q{SELECT count(*) = 11 FROM loyalty.outbox_result WHERE store_code = 'sa'})
  or diag($hq->safe_psql('postgres', 'SELECT event_id, status, detail FROM loyalty.outbox_result'));

foreach my $case (sort keys %forged)
{
	is($hq->safe_psql('postgres', "SELECT status || ' ' || sqlstate FROM loyalty.outbox_result WHERE event_id = '$forged{$case}'"),
		'conflict 42501', "forged ($case): a conflict, 42501");
}
like($hq->safe_psql('postgres', "SELECT detail FROM loyalty.outbox_result WHERE event_id = '$forged{backdated_hq}'"),
	qr/recorded_by "hq_crm" is an HQ login/, 'the claimed HQ actor is named');
like($hq->safe_psql('postgres', "SELECT detail FROM loyalty.outbox_result WHERE event_id = '$forged{backdated}'"),
	qr/older than loyalty.replica_event_max_age/, 'the back-dated time is named');
like($hq->safe_psql('postgres', "SELECT detail FROM loyalty.outbox_result WHERE event_id = '$forged{no_reference}'"),
	qr/an accrual without a reference/, 'the missing reference is named');
like($hq->safe_psql('postgres', "SELECT detail FROM loyalty.outbox_result WHERE event_id = '$forged{above_cap}'"),
	qr/names no stay or charge HQ knows/, 'the unbacked 50,000 points are named');
is($hq->safe_psql('postgres', "SELECT string_agg(status, ',' ORDER BY event_id) FROM loyalty.outbox_result
	WHERE store_code = 'sa' AND status <> 'conflict'"), 'applied,applied,applied',
	'the stay, the accrual for it and the later accrual are applied');
is($hq->safe_psql('postgres', "SELECT status FROM loyalty.outbox_result WHERE event_id = '$legit'"), 'applied',
	'the front desk accrual for its stay is applied');
is($hq->safe_psql('postgres', "SELECT status FROM loyalty.outbox_result WHERE event_id = '$after'"), 'applied',
	'a legitimate operation after the forgeries is applied');
is($hq->safe_psql('postgres', "SELECT coalesce(sum(points), 0) FROM loyalty.point_lot WHERE member_id = '$m[1]'"), '0',
	'the forged events credited nothing');
is($hq->safe_psql('postgres', "SELECT string_agg(coalesce(b.balance, 0)::text, ',' ORDER BY m.g)
	FROM m LEFT JOIN loyalty.point_balance b USING (member_id)"), '7000,0,300',
	'balances: the stay (5000) and its accrual (2000); nothing forged; the later 300');
is($hq->safe_psql('postgres', 'SELECT loyalty.replica_retry()'), '0', 'a retry applies none of the forged events');
is($hq->safe_psql('postgres', 'SELECT count(*) FROM loyalty.ledger_check()'), '0', 'the ledger invariant holds');
is($sa->safe_psql('postgres', "SELECT count(*) FROM loyalty.store_outbox_status WHERE status = 'conflict'"), '8',
	'the store sees the eight conflicts');

done_testing();
