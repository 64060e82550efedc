# Stays, check-outs and charges recorded at a store while it is offline
# (issue 18).  HQ and two stores.  Member X's stays go through the stores
# (store B online, store A offline); twin member T, enrolled the same way,
# gets the same calls with the same times made at HQ directly.  When store
# A's link returns, HQ applies each event once through the same functions,
# and X's counters, points, tier and events equal T's.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my @conf = (
	"wal_retrieve_retry_interval = '200ms'",
	"max_logical_replication_workers = 6",
	"max_worker_processes = 12",
	"max_sync_workers_per_subscription = 2");

sub make_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical');
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'loyalty'\n");
	$node->append_conf('postgresql.conf', join("\n", @conf) . "\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION loyalty');
	return $node;
}

my $hq = make_node('hq');
my %store = (sa => make_node('sa'), sb => make_node('sb'));

# X and T: same home store, same birthday month (this month), enrolled
# together; Y for a stay recorded both at HQ and at the store
$hq->safe_psql('postgres', q{
	SELECT loyalty.store_create('sc-a', 'sa', 'Store A', 'bay', 'east', 'Asia/Shanghai');
	SELECT loyalty.store_create('sc-b', 'sb', 'Store B', 'bay', 'east', 'Asia/Shanghai');
	CREATE TABLE m AS
	SELECT g, (loyalty.member_enroll('enrol-' || g, 'sa', 'Member ' || g,
	               birth_date => make_date(1990, extract(month FROM now() AT TIME ZONE 'Asia/Shanghai')::int, 1)
	          )).member_id
	  FROM (VALUES ('x'), ('t'), ('y')) v(g);
	-- a birthday-month double-points campaign, open now
	INSERT INTO loyalty.campaign (code, name, kind, multiplier_percent, starts_at, ends_at, priority, birthday_month)
	VALUES ('birthday', 'Birthday double points', 'multiplier', 200, now() - interval '1 day',
	        now() + interval '1 day', 1, true);
	-- the time of every call below: a minute ago, plus one second per call
	CREATE TABLE t0 AS SELECT date_trunc('second', now()) - interval '1 minute' AS t0, current_date AS d;
});
my %m = map { $_ => $hq->safe_psql('postgres', "SELECT member_id FROM m WHERE g = '$_'") } qw(x t y);
my $t0 = $hq->safe_psql('postgres', 'SELECT t0 FROM t0');
my $d = $hq->safe_psql('postgres', 'SELECT d FROM t0');
sub at { my ($s) = @_; return "timestamptz '$t0' + interval '$s seconds'"; }
sub day { my ($n) = @_; return "date '$d' - $n"; }

sub subscribe
{
	my ($code) = @_;
	my $node = $store{$code};
	$node->safe_psql('postgres', "SELECT loyalty.store_subscribe(\$\$"
		  . $hq->connstr('postgres') . "\$\$, '$code')");
	$node->wait_for_subscription_sync($hq, "loyalty_store_$code");
}
for my $code ('sa', 'sb')
{
	$hq->safe_psql('postgres', "SELECT loyalty.replica_store_add('add-$code', '$code')");
	$hq->safe_psql('postgres', "SELECT loyalty.replica_slot_create('$code')");
	subscribe($code);
	$hq->safe_psql('postgres', "SELECT loyalty.replica_outbox_attach('attach-$code', '$code', \$\$"
		  . $store{$code}->connstr('postgres') . "\$\$)");
	$store{$code}->safe_psql('postgres',
		"SELECT loyalty.staff_create('staff-$code', 'desk_$code', '$code', 'frontdesk')");
}
$hq->wait_for_subscription_sync;

# wait until HQ decided every event of the store and the store has
# everything HQ committed (a barrier row written at HQ after the rest)
my $barrier = 0;
sub settle
{
	my ($code) = @_;
	my $node = $store{$code};
	my $n = $node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.outbox');
	$hq->poll_query_until('postgres',
		"SELECT count(*) >= $n FROM loyalty.outbox_result WHERE store_code = '$code'")
	  or die "HQ did not decide the events of $code";
	$barrier++;
	$hq->safe_psql('postgres',
		"UPDATE loyalty.store SET region = 'barrier $barrier' WHERE store_code = '$code'");
	$node->poll_query_until('postgres',
		"SELECT region = 'barrier $barrier' FROM loyalty.store WHERE store_code = '$code'")
	  or die "store $code did not catch up";
}

# a call at a store, as its front desk login
sub desk
{
	my ($code, $sql) = @_;
	return $store{$code}->safe_psql('postgres', $sql, extra_params => ['-U', "desk_$code"]);
}

my $cols = 'nights_credited, base_points, bonus_points, points_pending, tier, tier_changed, replayed';

# --- store B online: a stay recorded at the store, applied at HQ ---------
my $b1 = desk('sb', "SELECT $cols FROM loyalty.stay_record('b1', 'sb', '$m{x}', " . day(20) . ', ' . day(17)
	  . ", room_revenue => 900, occurred_at => " . at(0) . ')');
is($b1, '3|9000|0|t|member|f|f',
	'at a store, stay_record answers at once: nights, base points by the replicated policy, pending');
$hq->safe_psql('postgres', "SELECT loyalty.stay_record('tb1', 'sb', '$m{t}', " . day(20) . ', ' . day(17)
	  . ", room_revenue => 900, occurred_at => " . at(0) . ')');
settle('sb');

# a stay HQ recorded for store A, in house: store A holds it (replicated)
$hq->safe_psql('postgres', "SELECT loyalty.stay_record('h1', 'sa', '$m{y}', " . day(4) . ', ' . day(2)
	  . ', room_revenue => 400, checked_out => false, occurred_at => ' . at(0) . ')');
settle('sa');

# --- store A offline ---------------------------------------------------
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sa DISABLE');
$store{sa}->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_store_sa DISABLE');

# the same calls for X (at store A, offline) and T (at HQ, online)
my @calls = (
	# overlaps store B's last night: one new night, a stay of its own
	[ 'a1', "stay_record('%s', 'sa', '%s', " . day(18) . ', ' . day(16) . ', room_revenue => 800, occurred_at => ' . at(1) . ')' ],
	# consecutive at store A: merged with a1 (no new stay)
	[ 'a2', "stay_record('%s', 'sa', '%s', " . day(16) . ', ' . day(14) . ', room_revenue => 600, occurred_at => ' . at(2) . ')' ],
	# in house, then checked out: crosses silver's 10 nights (3 + 1 + 2 + 5)
	[ 'a3', "stay_record('%s', 'sa', '%s', " . day(10) . ', ' . day(5) . ', room_revenue => 2000, checked_out => false, occurred_at => ' . at(3) . ')' ],
	[ 'a3', "stay_checkout('%s', " . at(4) . ')', 'checkout' ],
	# a charge after the upgrade: silver's elite bonus at HQ
	[ 'c1', "charge_record('%s', 'sa', '%s', 300, " . at(5) . ')' ],
);
my %offline;
for my $c (@calls)
{
	my ($key, $fmt, $checkout) = @$c;
	my $sx = $checkout ? sprintf($fmt, $key) : sprintf($fmt, $key, $m{x});
	my $st = $checkout ? sprintf($fmt, "t$key") : sprintf($fmt, "t$key", $m{t});
	$offline{$key . ($checkout ? '/co' : '')} = desk('sa', "SELECT $cols FROM loyalty.$sx");
	$hq->safe_psql('postgres', "SELECT loyalty.$st");
}
is($offline{'a3/co'}, '5|20000|0|t|member|f|f',
	'offline check-out: provisional nights and points, no upgrade yet');
is($offline{c1}, '0|3000|0|t|member|f|f',
	'offline charge: base points by the replicated policy, pending');
is(desk('sa', "SELECT $cols FROM loyalty.stay_record('a2', 'sa', '$m{x}', " . day(16) . ', ' . day(14)
		  . ', room_revenue => 800)'),
	'2|6000|0|t|member|f|t', 'offline retry (another time, PMS-side): the first answer, replayed');
is(desk('sa', "SELECT stay_id FROM loyalty.stay_checkout('a3')"),
	desk('sa', "SELECT stay_id FROM loyalty.stay_record('a3', 'sa', '$m{x}', " . day(10) . ', ' . day(5) . ')'),
	'offline: a check-out and its stay answer with one stay id');
my ($ret, $out, $err) = $store{sa}->psql('postgres',
	"SELECT loyalty.stay_record('a1', 'sa', '$m{x}', " . day(30) . ', ' . day(28) . ')',
	extra_params => ['-U', 'desk_sa']);
like($err, qr/idempotency key "a1" was already used for another stay/,
	'offline: a key reused for another stay is refused as at HQ');
($ret, $out, $err) = $store{sa}->psql('postgres',
	"SELECT loyalty.stay_record('a9', 'sb', '$m{x}', " . day(30) . ', ' . day(28) . ')');
like($err, qr/records only its own stays/, 'a store records only its own stays');
($ret, $out, $err) = $store{sa}->psql('postgres', "SELECT loyalty.stay_checkout('nope')",
	extra_params => ['-U', 'desk_sa']);
like($err, qr/no stay was recorded with idempotency key "nope"/, 'offline: checking out an unknown stay is refused');

is(desk('sa', "SELECT $cols FROM loyalty.stay_checkout('h1', " . at(7) . ')'), '2|0|0|t|member|f|f',
	'offline check-out of a stay HQ recorded: its nights, points unknown here (pending)');

# the same stay recorded by the chain's PMS at HQ and at store A offline
$hq->safe_psql('postgres', "SELECT loyalty.stay_record('dup1', 'sa', '$m{y}', " . day(9) . ', ' . day(7)
	  . ', room_revenue => 500, occurred_at => ' . at(6) . ')');
desk('sa', "SELECT loyalty.stay_record('dup1', 'sa', '$m{y}', " . day(9) . ', ' . day(7)
	  . ', room_revenue => 500, occurred_at => ' . at(6) . ')');

# enrolment at store A offline, and the same person enrolled at HQ
my $e1 = desk('sa', q{SELECT member_id || ' ' || card_no FROM loyalty.member_enroll('e1', 'sa', 'Offline Guest', phone => '13900000001')});
my ($e1_id, $e1_card) = split / /, $e1;
my $block_sa = $store{sa}->safe_psql('postgres', q{SELECT lpad(card_block::text, 3, '0') FROM loyalty.replica_store WHERE store_code = 'sa'});
like($e1_card, qr/^9${block_sa}0000001\d$/, 'offline enrolment: a card number of the store\'s block');
is($store{sa}->safe_psql('postgres', "SELECT loyalty.card_number_valid('$e1_card')"), 't', '... with a valid check digit');
is(desk('sa', q{SELECT member_id || ' ' || card_no FROM loyalty.member_enroll('e1', 'sa', 'Offline Guest', phone => '13900000001')}),
	$e1, 'offline enrolment retried: the same member id and card');
my $e2 = desk('sa', q{SELECT card_no FROM loyalty.member_enroll('e2', 'sa', 'Second Guest')});
like($e2, qr/^9${block_sa}0000002\d$/, 'the next offline enrolment: the next number of the block');
$hq->safe_psql('postgres', q{SELECT loyalty.member_enroll('hq-e1', 'sa', 'Offline Guest', phone => '13900000001')});

# the birthday campaign ends while the store is offline
$hq->safe_psql('postgres', "UPDATE loyalty.campaign SET ends_at = " . at(30) . " WHERE code = 'birthday'");
is($hq->safe_psql('postgres', "SELECT count(*) FROM loyalty.stay WHERE member_id = '$m{x}'"), '1',
	'offline: HQ has only the stay of store B');

# --- the link returns --------------------------------------------------
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sa ENABLE');
$store{sa}->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_store_sa ENABLE');
settle('sa');

for my $code ('sa', 'sb')
{
	is($hq->safe_psql('postgres', qq{
		SELECT string_agg(o.event_id || ':' || coalesce(r.status, 'none') || ':' || coalesce(r.detail, ''), ',' ORDER BY o.event_id)
		  FROM loyalty.outbox o LEFT JOIN loyalty.outbox_result r USING (store_code, event_id)
		 WHERE o.store_code = '$code' AND r.status IS DISTINCT FROM 'applied'}), '',
		"every event of $code applied");
	is($store{$code}->safe_psql('postgres', 'SELECT count(*) FROM loyalty.outbox'),
	   $hq->safe_psql('postgres', "SELECT count(*) FROM loyalty.outbox_result WHERE store_code = '$code' AND redeliveries = 0"),
	   "each event of $code has one verdict");
}

# X (through the stores) and T (at HQ) end the same
sub figures
{
	my ($member) = @_;
	return $hq->safe_psql('postgres', qq{
		SELECT concat_ws(E'\\n',
		  (SELECT tier FROM loyalty.member WHERE member_id = '$member'),
		  (SELECT string_agg(month || ' ' || nights || '/' || stays || '/' || base_points || '/' || qualifying_spend,
		                     ', ' ORDER BY month)
		     FROM loyalty.tier_counter WHERE member_id = '$member'),
		  (SELECT loyalty.points_balance('$member')),
		  (SELECT string_agg(l.kind || ' ' || l.points || ' ' || l.pending, ', '
		                     ORDER BY l.occurred_at, l.kind, l.points)
		     FROM loyalty.earning_line l WHERE l.member_id = '$member'),
		  (SELECT string_agg(h.old_tier || '>' || h.new_tier || ' ' || h.reason || ' ' || coalesce(h.valid_until::text, ''),
		                     ', ' ORDER BY h.changed_at)
		     FROM loyalty.tier_history h WHERE h.member_id = '$member'),
		  (SELECT string_agg(e.kind, ', ' ORDER BY e.event_id) FROM loyalty.event_outbox e
		    WHERE e.member_id = '$member'),
		  (SELECT string_agg(s.store_code || ' ' || s.check_in || ' ' || s.status || ' ' || s.nights_credited,
		                     ', ' ORDER BY s.check_in)
		     FROM loyalty.stay s WHERE s.member_id = '$member'))});
}
my $fx = figures($m{x});
is($fx, figures($m{t}), 'counters, points, lines, tier history and events equal those of the same calls made online');
note($fx);
is($hq->safe_psql('postgres', "SELECT sum(nights) || '/' || sum(stays) FROM loyalty.tier_counter WHERE member_id = '$m{x}'"),
	'11/3', 'an overlapping night counted once, consecutive stays at store A merged');
is($hq->safe_psql('postgres', "SELECT tier FROM loyalty.member WHERE member_id = '$m{x}'"), 'silver',
	'the offline check-out crossed the silver threshold at HQ');
ok($hq->safe_psql('postgres',
		"SELECT count(*) FROM loyalty.earning_line WHERE member_id = '$m{x}' AND kind = 'campaign'") > 0,
	'the birthday campaign, ended while the store was offline, applied to the stays made in it');

# HQ's verdict replaces the provisional figures at the store
is(desk('sa', "SELECT $cols FROM loyalty.stay_checkout('a3')"),
	$hq->safe_psql('postgres', "SELECT $cols FROM loyalty.stay_checkout('a3')"),
	'a check-out retried at the store after the link returns: HQ\'s answer');
is($hq->safe_psql('postgres', qq{
	SELECT r.result ->> 'tier' || ' ' || (r.result ->> 'tier_changed') FROM loyalty.outbox_result r
	  JOIN loyalty.outbox o USING (store_code, event_id) WHERE o.idem_key = 'checkout:a3'}),
	'silver true', '... HQ\'s verdict on the check-out records the upgrade it caused');
is(desk('sa', "SELECT stay_id || ' ' || $cols FROM loyalty.stay_record('a2', 'sa', '$m{x}', " . day(16) . ', ' . day(14) . ')'),
	$hq->safe_psql('postgres', "SELECT stay_id || ' ' || $cols FROM loyalty.stay_record('a2', 'sa', '$m{x}', " . day(16) . ', ' . day(14) . ')'),
	'a stay retried at the store: HQ\'s stay id and figures');
is(desk('sa', "SELECT base_points || '/' || bonus_points FROM loyalty.charge_record('c1', 'sa', '$m{x}', 300)"),
	'3000/3600', 'the charge after the upgrade: HQ\'s silver elite bonus and birthday points replace the provisional figure');
is($store{sa}->safe_psql('postgres', "SELECT tier || ' ' || (SELECT count(*) FROM loyalty.stay s WHERE s.member_id = m.member_id) FROM loyalty.member m WHERE member_id = '$m{x}'"),
	'silver 3', 'the store holds the new tier and its stays from HQ');

# the stay recorded at HQ and at the store counts once
is($hq->safe_psql('postgres', "SELECT count(*) || ' ' || sum(nights_credited) FROM loyalty.stay WHERE member_id = '$m{y}' AND check_in = " . day(9)),
	'1 2', 'a stay recorded at HQ and at the store offline (one PMS key) is one stay');
is($hq->safe_psql('postgres', qq{
	SELECT r.result ->> 'replayed' FROM loyalty.outbox o JOIN loyalty.outbox_result r USING (store_code, event_id)
	 WHERE o.idem_key = 'stay:dup1'}), 'true', '... HQ\'s verdict says it replayed the stay');
is($hq->safe_psql('postgres', "SELECT status || ' ' || nights_credited FROM loyalty.stay WHERE idempotency_key = 'h1'"),
	'checked_out 2', 'the stay HQ recorded was checked out at HQ by the store\'s offline check-out');
is($hq->safe_psql('postgres', "SELECT sum(nights) FROM loyalty.tier_counter WHERE member_id = '$m{y}'"), '4',
	'... and the nights of both stays counted once');

# enrolments: applied once with the store's card; store B's block differs
my $eb = desk('sb', q{SELECT card_no FROM loyalty.member_enroll('eb1', 'sb', 'Guest At B')});
settle('sb');
isnt(substr($eb, 0, 4), substr($e1_card, 0, 4), 'store B issues cards of another block');
is($hq->safe_psql('postgres', qq{
	SELECT string_agg(m.card_no || ' ' || p.full_name, ', ' ORDER BY m.card_no)
	  FROM loyalty.member m JOIN loyalty.member_profile p USING (member_id) WHERE m.card_no LIKE '9%'}),
	join(', ', sort ("$e1_card Offline Guest", "$e2 Second Guest", "$eb Guest At B")),
	'HQ enrolled each offline member once, with the card the store issued');
is($store{sa}->safe_psql('postgres', "SELECT count(*) FROM loyalty.member WHERE card_no = '$e1_card'"), '1',
	'the member enrolled offline reaches the store from HQ');
is($hq->safe_psql('postgres', qq{
	SELECT r.result ->> 'card_no' FROM loyalty.outbox o JOIN loyalty.outbox_result r USING (store_code, event_id)
	 WHERE o.idem_key = 'enrol:e1'}), $e1_card, 'HQ\'s verdict gives the member id and card');
is($hq->safe_psql('postgres', qq{
	SELECT count(*) FROM loyalty.member_duplicates() d
	  JOIN loyalty.member a ON a.member_id = d.member_a JOIN loyalty.member b ON b.member_id = d.member_b
	 WHERE '$e1_card' IN (a.card_no, b.card_no)}), '1',
	'the offline enrolment and HQ\'s of the same person surface in the duplicates report');

$_->stop for ($hq, values %store);
done_testing();
