# Store replicas: HQ and two stores on one machine.  HQ publishes to each
# store; each store's outbox comes back to HQ and is applied exactly once.
# After each scenario every store holds what HQ holds for it, and every
# event recorded at a store is applied at HQ once (never lost, never twice).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my @conf = (
	"wal_retrieve_retry_interval = '200ms'",
	"max_logical_replication_workers = 6",
	"max_worker_processes = 12",
	"max_sync_workers_per_subscription = 2",
	"restart_after_crash = on");

sub make_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical');
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'loyalty'\n");   # the audit writer pool
	$node->append_conf('postgresql.conf', join("\n", @conf) . "\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION loyalty');
	return $node;
}

my $hq = make_node('hq');
my %store = (sa => make_node('sa'), sb => make_node('sb'));

$hq->safe_psql('postgres', q{
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sa', 'Store A', 'bay', 'east', 'Asia/Shanghai');
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sb', 'Store B', 'bay', 'west', 'Asia/Urumqi');
	CREATE TABLE m AS
	SELECT g, (loyalty.member_enroll(gen_random_uuid()::text, CASE WHEN g % 2 = 0 THEN 'sa' ELSE 'sb' END, 'Member ' || g,
	                          phone => '13800000' || lpad(g::text, 3, '0'))).member_id
	  FROM generate_series(1, 20) g;
	UPDATE loyalty.member_profile SET address = 'secret street' ;
	INSERT INTO loyalty.member_identity (member_id, id_type, id_number_last4)
	SELECT member_id, 'passport', '1234' FROM m;
	INSERT INTO loyalty.member_preference (member_id, category, value, scope, store_code)
	SELECT member_id, 'pillow', 'down', 'chain', 'sa' FROM m WHERE g <= 5
	UNION ALL
	SELECT member_id, 'room', 'sea view', 'store', 'sa' FROM m WHERE g <= 3
	UNION ALL
	SELECT member_id, 'room', 'quiet', 'store', 'sb' FROM m WHERE g <= 2;
});

# the member id of member number g
sub member
{
	my ($g) = @_;
	return $hq->safe_psql('postgres', "SELECT member_id FROM m WHERE g = $g");
}

# what a store should hold and what HQ holds for it, as one digest
sub digest
{
	my ($node, $code) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT md5(concat_ws('|',
		  (SELECT string_agg(member_id || tier || status, ',' ORDER BY member_id) FROM loyalty.member),
		  (SELECT string_agg(member || full_name || coalesce(phone_masked, ''), ',' ORDER BY member)
		     FROM loyalty.replica_member_contact),
		  (SELECT string_agg(member_id || full_name, ',' ORDER BY member_id) FROM loyalty.member_profile),
		  (SELECT string_agg(preference_id || category || value || scope || store_code, ','
		                     ORDER BY preference_id)
		     FROM loyalty.member_preference WHERE scope = 'chain' OR store_code = '$code'),
		  (SELECT string_agg(tag_id || code || coalesce(store_code, ''), ',' ORDER BY tag_id)
		     FROM loyalty.member_tag WHERE store_code = '$code'),
		  (SELECT string_agg(tag_id || risk_code || coalesce(store_code, '') || (resolved_at IS NULL), ','
		                     ORDER BY tag_id) FROM loyalty.risk_tag),
		  (SELECT string_agg(event_id || status || redeliveries, ',' ORDER BY event_id)
		     FROM loyalty.outbox_result WHERE store_code = '$code'),
		  (SELECT string_agg(member_id || ':' || balance, ',' ORDER BY member_id) FROM loyalty.point_balance),
		  (SELECT string_agg(use_id || benefit_code || store_code, ',' ORDER BY use_id) FROM loyalty.benefit_use),
		  (SELECT string_agg(grant_id || benefit_code, ',' ORDER BY grant_id)
		     FROM loyalty.benefit_grant WHERE source <> 'store' OR store_code = '$code'),
		  (SELECT count(*) FROM loyalty.policy)))});
}

# every event recorded at the store has exactly one verdict at HQ, and
# each applied preference event wrote exactly one row there
sub exactly_once
{
	my ($code, $what) = @_;
	my $node = $store{$code};
	my $ids = $node->safe_psql('postgres',
		"SELECT string_agg(event_id, ',' ORDER BY event_id) FROM loyalty.outbox");
	my $at_hq = $hq->safe_psql('postgres',
		"SELECT string_agg(event_id, ',' ORDER BY event_id) FROM loyalty.outbox_result WHERE store_code = '$code'");
	is($at_hq, $ids, "$what: every event of $code has one verdict at HQ");
	is($hq->safe_psql('postgres', qq{
		SELECT count(*) FROM loyalty.outbox o JOIN loyalty.outbox_result r USING (store_code, event_id)
		 WHERE o.store_code = '$code' AND o.kind = 'preference' AND r.status = 'applied'}),
	   $hq->safe_psql('postgres', qq{
		SELECT count(*) FROM loyalty.member_preference p
		 WHERE p.store_code = '$code'
		   AND EXISTS (SELECT 1 FROM loyalty.outbox o
		                WHERE o.kind = 'preference' AND o.store_code = '$code'
		                  AND o.member_id = p.member_id AND o.payload ->> 'value' = p.value
		                  AND o.payload ->> 'category' = p.category)}),
	   "$what: each applied preference of $code was written once");
}

# wait until HQ has decided every event of the store, and the store has
# everything HQ committed: a barrier row written at HQ after the rest
# arrives after it (a subscriber applies in commit order)
my $barrier = 0;
sub settle
{
	my ($code) = @_;
	my $node = $store{$code};
	my $n = $node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.outbox');
	$hq->poll_query_until('postgres',
		"SELECT count(*) >= $n FROM loyalty.outbox_result WHERE store_code = '$code'")
	  or die "HQ did not decide the events of $code";
	$node->wait_for_catchup("loyalty_outbox_$code");
	$barrier++;
	$hq->safe_psql('postgres',
		"UPDATE loyalty.store SET region = 'barrier $barrier' WHERE store_code = '$code'");
	$node->poll_query_until('postgres',
		"SELECT region = 'barrier $barrier' FROM loyalty.store WHERE store_code = '$code'")
	  or die "store $code did not catch up";
	is(digest($node, $code), digest($hq, $code), "store $code matches HQ");
}

sub subscribe
{
	my ($code) = @_;
	my $node = $store{$code};
	$node->safe_psql('postgres', "SELECT loyalty.store_subscribe(\$\$"
		  . $hq->connstr('postgres') . "\$\$, '$code')");
	$node->wait_for_subscription_sync($hq, "loyalty_store_$code");
}

# --- adding the stores -----------------------------------------------
for my $code ('sa', 'sb')
{
	$hq->safe_psql('postgres', "SELECT loyalty.replica_store_add(gen_random_uuid()::text, '$code')");
	$hq->safe_psql('postgres', "SELECT loyalty.replica_slot_create('$code')");
	subscribe($code);
	$hq->safe_psql('postgres', "SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, '$code', \$\$"
		  . $store{$code}->connstr('postgres') . "\$\$)");
}
$hq->wait_for_subscription_sync;

my ($ret, $out, $err) = $hq->psql('postgres', "SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'sa')");
like($err, qr/store "sa" already has a replica/, 'adding a store twice is refused');
($ret, $out, $err) = $store{sb}->psql('postgres', "SELECT loyalty.store_subscribe(\$\$"
	  . $hq->connstr('postgres') . "\$\$, 'sa')");
like($err, qr/this server is the replica of store "sb", not "sa"/,
	'a store cannot subscribe with another store\'s code');

is($store{sa}->safe_psql('postgres', 'SELECT count(*) FROM loyalty.member'), '20',
	'initial copy: every member at the store');
is($store{sa}->safe_psql('postgres',
	q{SELECT count(*) FILTER (WHERE scope = 'store' AND store_code = 'sa') || '/' ||
	         count(*) FILTER (WHERE store_code = 'sb') FROM loyalty.member_preference}),
	'3/0', 'the store holds its own store-only preferences and none of another store');
is($store{sa}->safe_psql('postgres',
	q{SELECT (SELECT count(*) FROM loyalty.member_identity) || '/' ||
	         (SELECT count(*) FROM loyalty.member_profile WHERE address IS NOT NULL)}),
	'0/0', 'no identity data and no address reach a store');
is($store{sa}->safe_psql('postgres', 'SELECT count(*) FROM loyalty.policy'), '1',
	'the policy reached the store');
# the store's department roles came with its store row: staff logins
# are made at the store and act as that store's department
$store{sa}->safe_psql('postgres', q{SELECT loyalty.staff_create(gen_random_uuid()::text, 'amy_sa', 'sa', 'frontdesk')});
is($store{sa}->safe_psql('postgres', q{SELECT store_code || '/' || department FROM loyalty.whoami()},
		extra_params => ['-U', 'amy_sa']),
	'sa/frontdesk', 'a front desk login at the store is seen as its store and department');
my $m5 = $hq->safe_psql('postgres', 'SELECT member_id FROM m WHERE g = 5');
like($store{sa}->safe_psql('postgres',
		"SELECT loyalty.store_preference_record(gen_random_uuid()::text, '$m5', 'crib', 'crib in room')",
		extra_params => ['-U', 'amy_sa']),
	qr/^sa-/, 'the front desk records at the store through the application function');
is($store{sb}->safe_psql('postgres',
		q{SELECT count(*) FROM loyalty.staff_role WHERE store_code IS NOT NULL}),
	'4', 'a store server maps only its own store\'s department roles');
settle('sa');
settle('sb');

# --- story 1: a preference recorded at store A is known at store B -----
my $m1 = member(1);
my $e1 = $store{sa}->safe_psql('postgres',
	"SELECT loyalty.store_preference_record('p1', '$m1', 'allergy', 'buckwheat pillow')");
like($e1, qr/^sa-\d+-2$/, 'the event id is store code, incarnation and sequence');
is($store{sa}->safe_psql('postgres',
	"SELECT loyalty.store_preference_record('p1', '$m1', 'allergy', 'buckwheat pillow')"),
	$e1, 'a retried call returns the first event');
settle('sa');
is($store{sa}->safe_psql('postgres',
	"SELECT status FROM loyalty.store_outbox_status WHERE event_id = '$e1'"),
	'applied', 'HQ\'s verdict reached the store');
is($store{sa}->safe_psql('postgres',
	"SELECT string_agg(provisional::text, ',') FROM loyalty.store_member_preferences WHERE value = 'buckwheat pillow'"),
	'false', 'once confirmed the preference shows once, from HQ');
settle('sb');
is($store{sb}->safe_psql('postgres',
	"SELECT store_code FROM loyalty.member_preference WHERE value = 'buckwheat pillow'"),
	'sa', 'store B sees the preference recorded at store A');

# --- story 4: a store-only benefit, used at the store, applied once ------
$hq->safe_psql('postgres', q{
	SELECT loyalty.benefit_define(gen_random_uuid()::text, 'local_gift', 'Local specialty gift', 'gift');
	SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'local_gift', 'store', params => '{"item": "tea"}', stores => ARRAY['sa']);
});
settle('sa');
settle('sb');
is($store{sa}->safe_psql('postgres',
		"SELECT count(*) FROM loyalty.benefits('$m1', 'sa') WHERE benefit_code = 'local_gift'") . '/'
	  . $store{sb}->safe_psql('postgres', q{SELECT count(*) FROM loyalty.benefit_grant WHERE store_code = 'sa'}),
	'1/0', 'store A resolves its own benefit offline; store B does not even hold its grant');
my $e_gift = $store{sa}->safe_psql('postgres',
	"SELECT loyalty.store_benefit_use('gift-1', '$m1', 'local_gift')");
settle('sa');
is($hq->safe_psql('postgres',
	"SELECT count(*) || ' ' || min(store_code) FROM loyalty.benefit_use WHERE member_id = '$m1' AND benefit_code = 'local_gift'"),
	'1 sa', 'the benefit used at store A was recorded at HQ once, through use_benefit');
settle('sb');
is($store{sb}->safe_psql('postgres',
	"SELECT count(*) FROM loyalty.benefit_use WHERE member_id = '$m1'"), '1',
	'the use is known at store B (limits count every store\'s uses)');

# --- a store offline while both sides keep working ---------------------
my $m2 = member(2);
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sa DISABLE');
$store{sa}->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_store_sa DISABLE');
$store{sa}->safe_psql('postgres', qq{
	SELECT loyalty.store_preference_record(gen_random_uuid()::text, '$m2', 'floor', 'high floor');
	SELECT loyalty.store_risk_tag_raise(gen_random_uuid()::text, '$m2', 'unresolved_violation', 'TV damaged', 800.00);
	SELECT loyalty.store_preference_record(gen_random_uuid()::text, '$m2', 'lighting', 'warm light', 'store');
});
is($store{sa}->safe_psql('postgres',
	q{SELECT count(*) FROM loyalty.store_member_preferences WHERE provisional}),
	'2', 'offline: the store shows its own records provisionally');
$hq->safe_psql('postgres', qq{
	UPDATE loyalty.member SET tier = 'gold' WHERE member_id = '$m2';
	INSERT INTO loyalty.member_preference (member_id, category, value, scope, store_code)
	VALUES ('$m2', 'crib', 'crib', 'chain', 'sb');
});
isnt(digest($store{sa}, 'sa'), digest($hq, 'sa'), 'offline: the store is behind');
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sa ENABLE');
$store{sa}->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_store_sa ENABLE');
settle('sa');
exactly_once('sa', 'after an outage');
is($store{sa}->safe_psql('postgres',
	"SELECT tier FROM loyalty.member WHERE member_id = '$m2'"), 'gold',
	'HQ\'s tier change reached the store');
settle('sb');
is($store{sb}->safe_psql('postgres',
	"SELECT count(*) FROM loyalty.risk_tag WHERE member_id = '$m2' AND risk_code = 'unresolved_violation' AND store_code = 'sa' AND resolved_at IS NULL"),
	'1', 'store B sees the risk tag raised at store A while it was offline');

# --- HQ restarted mid-apply --------------------------------------------
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sb DISABLE');
$store{sb}->safe_psql('postgres', qq{
	SELECT loyalty.store_preference_record(gen_random_uuid()::text, member_id, 'dining', 'vegetarian ' || g)
	  FROM (VALUES } . join(',', map { "($_, '" . member($_) . "'::uuid)" } 1 .. 10) . qq{) v(g, member_id);
});
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sb ENABLE');
$hq->restart;
settle('sb');
exactly_once('sb', 'after an HQ restart');

# --- HQ crashing in the middle of applying a store transaction ----------
# The store records three events in one transaction.  At HQ a session
# holds the lock on one member's balance, so the replica applier stops
# inside the batch of that transaction's events, after applying the first
# event (the apply worker without a preloaded library); HQ then crashes
# (immediate stop) and restarts.  Every event is applied once.
my $m4 = member(4);
$hq->safe_psql('postgres', "SELECT loyalty.points_accrue('seed-m4', '$m4', 'sa', 100, 'stay')");
my $blocker = $hq->background_psql('postgres', on_error_stop => 0);
$blocker->query_safe(
	"BEGIN; SELECT 1 FROM loyalty.point_balance WHERE member_id = '$m4' FOR UPDATE;");
$store{sa}->safe_psql('postgres', qq{
	BEGIN;
	SELECT loyalty.store_preference_record(gen_random_uuid()::text, '$m4', 'floor', 'low floor');
	SELECT loyalty.store_points_accrue(gen_random_uuid()::text, '$m4', 900, 'stay', 'room 404');
	SELECT loyalty.store_preference_record(gen_random_uuid()::text, '$m4', 'dining', 'no peanuts');
	COMMIT;
});
$hq->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	 WHERE NOT l.granted AND a.backend_type IN ('logical replication worker', 'loyalty replica applier')})
  or die 'the applier never waited';
is($hq->safe_psql('postgres', "SELECT count(*) FROM loyalty.member_preference WHERE value = 'low floor'"),
	'0', 'mid-apply: nothing of the store transaction is visible at HQ yet');
$hq->stop('immediate');
eval { $blocker->quit; };
$hq->start;
settle('sa');
is($hq->safe_psql('postgres', "SELECT loyalty.points_balance('$m4')"), '1000',
	'after an HQ crash mid-apply the accrual counted once');
is($hq->safe_psql('postgres',
	q{SELECT count(*) FROM loyalty.member_preference WHERE value IN ('low floor', 'no peanuts')}),
	'2', 'after an HQ crash mid-apply each preference was written once');
exactly_once('sa', 'after an HQ crash mid-apply');

# --- a store crashing mid-transaction ----------------------------------
# A backend killed with SIGKILL makes the store's postmaster end every
# session and run crash recovery, as after a power loss.
my $bg = $store{sa}->background_psql('postgres', on_error_stop => 0);
my $bg_pid = $bg->query_safe('SELECT pg_backend_pid()');
$bg->query_safe(qq{BEGIN; SELECT loyalty.store_preference_record(gen_random_uuid()::text, '$m1', 'bed', 'twin uncommitted');});
$store{sa}->safe_psql('postgres',
	"SELECT loyalty.store_preference_record(gen_random_uuid()::text, '$m1', 'bed', 'king committed')");
kill 'KILL', $bg_pid;
eval { $bg->quit; };
$store{sa}->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'store did not recover';
settle('sa');
exactly_once('sa', 'after a store crash');
is($hq->safe_psql('postgres',
	q{SELECT string_agg(value, ',' ORDER BY value) FROM loyalty.member_preference WHERE category = 'bed'}),
	'king committed', 'the committed event arrived, the uncommitted one never existed');

# --- redelivered and forged events --------------------------------------
# Re-attaching the outbox copies every event again: each counts as a
# redelivery and none is applied twice.
my $before = $hq->safe_psql('postgres', 'SELECT count(*) FROM loyalty.member_preference');
$hq->safe_psql('postgres', q{
	ALTER SUBSCRIPTION loyalty_outbox_sa DISABLE;
	ALTER SUBSCRIPTION loyalty_outbox_sa SET (slot_name = NONE);
	DROP SUBSCRIPTION loyalty_outbox_sa;
});
$store{sa}->safe_psql('postgres', q{SELECT pg_drop_replication_slot('loyalty_outbox')});
$hq->safe_psql('postgres', "SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'sa', \$\$"
	  . $store{sa}->connstr('postgres') . "\$\$)");
$hq->wait_for_subscription_sync;
settle('sa');
is($hq->safe_psql('postgres', 'SELECT count(*) FROM loyalty.member_preference'), $before,
	'redelivered events are not applied again');
cmp_ok($hq->safe_psql('postgres',
	q{SELECT min(redeliveries) FROM loyalty.outbox_result WHERE store_code = 'sa'}), '>=', 1,
	'each redelivery is counted');
exactly_once('sa', 'after redelivery');

# store B forges an event in store A's name: rejected, never applied, the
# stream goes on
my $incarnation = $store{sb}->safe_psql('postgres', 'SELECT incarnation FROM loyalty.replica_node');
$store{sb}->safe_psql('postgres', qq{
	INSERT INTO loyalty.outbox (event_id, store_code, incarnation, seq, kind, member_id, payload)
	VALUES ('sa-1-999', 'sa', 1, 999, 'preference', '$m1', '{"category": "pillow", "value": "forged"}');
	INSERT INTO loyalty.outbox (event_id, store_code, incarnation, seq, kind, member_id, payload)
	VALUES ('sb-$incarnation-9999', 'sb', $incarnation, 9999, 'mystery', '$m1', '{}');
});
my $e_after = $store{sb}->safe_psql('postgres',
	"SELECT loyalty.store_preference_record(gen_random_uuid()::text, '$m1', 'pillow', 'feather')");
settle('sb');
is($hq->safe_psql('postgres',
	q{SELECT string_agg(event_id || ':' || status, ',' ORDER BY event_id) FROM loyalty.outbox_result
	   WHERE store_code = 'sb' AND status = 'rejected'}),
	"sa-1-999:rejected,sb-$incarnation-9999:rejected", 'forged and malformed events are rejected');
is($hq->safe_psql('postgres', q{SELECT count(*) FROM loyalty.member_preference WHERE value = 'forged'}),
	'0', 'a forged event is not applied');
is($hq->safe_psql('postgres', "SELECT status FROM loyalty.outbox_result WHERE event_id = '$e_after'"),
	'applied', 'the stream goes on after a rejected event');

# --- a conflict: the member was erased at HQ while the store was offline ---
my $m20 = member(20);
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sa DISABLE');
$store{sa}->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_store_sa DISABLE');
my $e_conf = $store{sa}->safe_psql('postgres',
	"SELECT loyalty.store_preference_record(gen_random_uuid()::text, '$m20', 'pillow', 'foam')");
my $e_next = $store{sa}->safe_psql('postgres',
	"SELECT loyalty.store_preference_record(gen_random_uuid()::text, '$m1', 'pillow', 'foam')");
$hq->safe_psql('postgres', "DELETE FROM loyalty.member WHERE member_id = '$m20'");
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sa ENABLE');
$store{sa}->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_store_sa ENABLE');
settle('sa');
is($store{sa}->safe_psql('postgres',
	"SELECT status || ' ' || sqlstate FROM loyalty.store_outbox_status WHERE event_id = '$e_conf'"),
	'conflict P0002', 'an event HQ cannot apply is a conflict, flagged back to the store');
is($store{sa}->safe_psql('postgres',
	"SELECT status FROM loyalty.store_outbox_status WHERE event_id = '$e_next'"),
	'applied', 'the stream does not stall on a conflict');
is($store{sa}->safe_psql('postgres', 'SELECT conflicts FROM loyalty.store_replica_state'),
	'1', 'the store\'s state shows the conflict');
exactly_once('sa', 'after a conflict');

# --- points: offline accruals arrive once; a conflicting offline redemption
my $m3 = member(3);
$hq->safe_psql('postgres',
	"SELECT loyalty.points_accrue('hq-accrual-m3', '$m3', 'sa', 3000, 'stay')");
settle('sa');
settle('sb');
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sa DISABLE; ALTER SUBSCRIPTION loyalty_outbox_sb DISABLE');
$store{$_}->safe_psql('postgres', "ALTER SUBSCRIPTION loyalty_store_$_ DISABLE") for ('sa', 'sb');
my $acc = $store{sa}->safe_psql('postgres',
	"SELECT loyalty.store_points_accrue('stay-1201', '$m1', 1500, 'stay', 'room 1201')");
is($store{sa}->safe_psql('postgres', "SELECT loyalty.store_offline_redeemable('$m3')"), '3000',
	'offline: the member may redeem up to the replicated balance within the cap');
my $r_a = $store{sa}->safe_psql('postgres', "SELECT loyalty.store_points_redeem(gen_random_uuid()::text, '$m3', 2000, 'spa voucher')");
is($store{sa}->safe_psql('postgres', "SELECT loyalty.store_offline_redeemable('$m3')"), '1000',
	'offline: what this store redeemed is no longer redeemable here');
($ret, $out, $err) = $store{sa}->psql('postgres',
	"SELECT loyalty.store_points_redeem(gen_random_uuid()::text, '$m3', 2000, 'second voucher')");
like($err, qr/exceeds the offline limit/, 'a redemption beyond the offline limit is refused');
my $r_b = $store{sb}->safe_psql('postgres', "SELECT loyalty.store_points_redeem(gen_random_uuid()::text, '$m3', 2000, 'dinner')");
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sa ENABLE');
$store{sa}->wait_for_catchup('loyalty_outbox_sa');
$hq->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_outbox_sb ENABLE');
$store{$_}->safe_psql('postgres', "ALTER SUBSCRIPTION loyalty_store_$_ ENABLE") for ('sa', 'sb');
settle('sa');
settle('sb');
is($hq->safe_psql('postgres', "SELECT loyalty.points_balance('$m1') || '/' || loyalty.points_balance('$m3')"),
	'1500/1000', 'HQ: the offline accrual counted once, the first redemption was applied');
is($store{sb}->safe_psql('postgres',
	"SELECT status || ' ' || sqlstate FROM loyalty.store_outbox_status WHERE event_id = '$r_b'"),
	'conflict 23514', 'the redemption HQ can no longer cover is a conflict, flagged to its store')
  or diag($store{sb}->safe_psql('postgres', "SELECT * FROM loyalty.store_outbox_status WHERE event_id = '$r_b'"));
is($store{sa}->safe_psql('postgres',
	"SELECT balance FROM loyalty.point_balance WHERE member_id = '$m3'"), '1000',
	'the store sees HQ\'s balance after the conflict');
exactly_once($_, 'after offline points') for ('sa', 'sb');

# --- a store re-seeded after its slot is lost ----------------------------
$store{sb}->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_store_sb DISABLE');
$hq->poll_query_until('postgres',
	q{SELECT NOT active FROM pg_replication_slots WHERE slot_name = 'loyalty_store_sb'})
  or die 'slot stayed active';
$hq->safe_psql('postgres', q{SELECT pg_drop_replication_slot('loyalty_store_sb')});
is($hq->safe_psql('postgres', q{SELECT slot_status FROM loyalty.replica_status WHERE store_code = 'sb'}),
	'no slot', 'the DBA view shows the lost slot');
$hq->safe_psql('postgres', qq{
	INSERT INTO loyalty.member_preference (member_id, category, value, scope, store_code)
	VALUES ('$m2', 'smoking', 'non-smoking', 'chain', 'sa')});
my $e_lost = $store{sb}->safe_psql('postgres',
	"SELECT loyalty.store_preference_record(gen_random_uuid()::text, '$m2', 'pillow', 'hypoallergenic')");
# the store's own view while HQ has no slot for it (issue 14.11)
$store{sb}->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_store_sb ENABLE');
ok($store{sb}->poll_query_until('postgres', q{SELECT status || '/' || events_pending FROM loyalty.store_replica_state},
	'disconnected/1'), 'the store shows its subscription disconnected and the event waiting');
ok($store{sb}->poll_query_until('postgres', q{SELECT errors > 0 FROM loyalty.store_replica_state}),
	'and counts the refused connections as errors');
$store{sb}->safe_psql('postgres', 'SELECT loyalty.store_unsubscribe()');
$hq->safe_psql('postgres', "SELECT loyalty.replica_slot_create('sb')");
subscribe('sb');
settle('sb');
exactly_once('sb', 'after a re-seed');
is($store{sb}->safe_psql('postgres', "SELECT status FROM loyalty.store_outbox_status WHERE event_id = '$e_lost'"),
	'applied', 'an event recorded while re-seeding is applied once');

# --- the DBA view and removing a store -----------------------------------
is($hq->safe_psql('postgres', q{
	SELECT string_agg(store_code || ':' || slot_status || ':' || outbox_attached, ',' ORDER BY store_code)
	  FROM loyalty.replica_status}),
	'sa:streaming:true,sb:streaming:true', 'the DBA view shows both stores streaming');
$store{sb}->safe_psql('postgres', 'SELECT loyalty.store_unsubscribe()');
$hq->safe_psql('postgres', "SELECT loyalty.replica_store_remove(gen_random_uuid()::text, 'sb', force => true)");
is($hq->safe_psql('postgres',
	q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'loyalty_store_sb'}),
	'0', 'removing a store drops its slot');
($ret, $out, $err) = $hq->psql('postgres', "SELECT loyalty.replica_store_remove(gen_random_uuid()::text, 'sb')");
like($err, qr/store "sb" has no replica/, 'removing an unknown store is an error');

$_->stop for ($hq, values %store);
done_testing();
