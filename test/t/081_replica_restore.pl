# Restore of an HQ database that has a store replica attached (issue 14.1),
# on real servers: HQ, store A, and a second server for the restore.
#  - pg_dump of HQ after store events were applied; pg_restore (plain,
#    --exit-on-error) into a new database of the same server, pg_restore
#    -j 2 into another, and a plain restore onto another server: each
#    succeeds, re-applies nothing (balances, ledger_check, verdicts as at
#    HQ) and keeps the outbox rows as data;
#  - a restored copy's applier stays inert and replica_retry refuses until
#    replica_adopt();
#  - the restored database on the other server becomes HQ: replica_adopt(),
#    the restored outbox subscription dropped, the store's outbox attached
#    again: the old events are redeliveries, a new store event is applied
#    once.
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
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sb', 'Store B', 'bay', 'west', 'Asia/Shanghai');
	CREATE TABLE m AS SELECT g, (loyalty.member_enroll('enrol-' || g, 'sa', 'Member ' || g)).member_id
	  FROM generate_series(1, 40) g;
	SELECT loyalty.points_accrue('seed-' || g, member_id, 'sa', 1000 + g, 'stay') FROM m;
});
$hq->safe_psql('postgres', q{SELECT loyalty.replica_store_add(gen_random_uuid()::text, 'sa')});
$hq->safe_psql('postgres', q{SELECT loyalty.replica_slot_create('sa')});
$sa->safe_psql('postgres', 'SELECT loyalty.store_subscribe(' . conn($hq) . ", 'sa')");
$sa->wait_for_subscription_sync($hq, 'loyalty_store_sa');
$hq->safe_psql('postgres', q{SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'sa', } . conn($sa) . ')');
$hq->wait_for_subscription_sync;

# store events: accruals and redemptions, applied at HQ
my @members = split /\n/, $hq->safe_psql('postgres', 'SELECT member_id FROM m ORDER BY g');
for my $i (0 .. 19)
{
	$sa->safe_psql('postgres', "SELECT loyalty.store_points_accrue('st-a-$i', '$members[$i]', " . (100 + $i) . ", 'stay', 'room $i')");
}
for my $i (20 .. 29)
{
	$sa->safe_psql('postgres', "SELECT loyalty.store_points_redeem('st-r-$i', '$members[$i]', 1000, 'voucher')");
}
$hq->poll_query_until('postgres', q{SELECT count(*) = 30 FROM loyalty.outbox_result WHERE store_code = 'sa' AND status = 'applied'})
	or die 'store events not applied';

my $state_sql = q{
	SELECT (SELECT sum(balance) FROM loyalty.point_balance) || '/' ||
	       (SELECT count(*) FROM loyalty.point_entry) || '/' ||
	       (SELECT count(*) FROM loyalty.outbox) || '/' ||
	       (SELECT string_agg(status || ':' || n, ',' ORDER BY status)
	          FROM (SELECT status, count(*) n FROM loyalty.outbox_result GROUP BY status) x) || '/' ||
	       (SELECT coalesce(sum(redeliveries), 0) FROM loyalty.outbox_result)};
my $hq_state = $hq->safe_psql('postgres', $state_sql);
like($hq_state, qr{/30/applied:30/0$}, "HQ applied the 30 store events once ($hq_state)");

# rows whose foreign key has no target, per constraint (empty: none)
my $orphans_sql = q{
	CREATE FUNCTION pg_temp.orphans() RETURNS text LANGUAGE plpgsql AS $f$
	DECLARE c record; n bigint; bad text := '';
	BEGIN
		FOR c IN
			SELECT k.conname, k.conrelid::regclass AS t, k.confrelid::regclass AS r,
			       (SELECT string_agg('x.' || quote_ident(a.attname), ',' ORDER BY u.i)
			          FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
			          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n) AS cols,
			       (SELECT string_agg('y.' || quote_ident(a.attname), ',' ORDER BY u.i)
			          FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
			          JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n) AS rcols
			  FROM pg_constraint k
			 WHERE k.contype = 'f' AND k.connamespace = 'loyalty'::regnamespace
			 ORDER BY 1
		LOOP
			EXECUTE format('SELECT count(*) FROM %s x WHERE ROW(%s) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %s y WHERE ROW(%s) = ROW(%s))',
				c.t, c.cols, c.r, c.cols, c.rcols) INTO n;
			IF n > 0 THEN bad := bad || c.conname || ':' || n || ' '; END IF;
		END LOOP;
		RETURN bad;
	END $f$;
	SELECT pg_temp.orphans();
};
is($hq->safe_psql('postgres', $orphans_sql), '', 'the check of foreign keys finds nothing at HQ');
is($hq->safe_psql('postgres', q{SELECT count(*) > 20 FROM pg_constraint WHERE contype = 'f' AND connamespace = 'loyalty'::regnamespace}),
	't', 'and it sees the foreign keys of the extension');

my $dump = $hq->basedir . '/hq.dump';
$hq->command_ok([ 'pg_dump', '-Fc', '-d', $hq->connstr('postgres'), '-f', $dump ], 'pg_dump of HQ with a store attached');

# --- restores: plain and -j 2 on the same server, plain on another -------
# another server (its own system identifier), with the roles of HQ first
# (pg_dumpall --roles-only, as docs/operations.md says)
my $hq2 = make_node('hq2');
$hq2->safe_psql('postgres', 'DROP EXTENSION loyalty');
my $roles = $hq->basedir . '/roles.sql';
$hq->command_ok([ 'pg_dumpall', '--roles-only', '-d', $hq->connstr('postgres'), '-f', $roles ], 'pg_dumpall --roles-only');
$hq2->psql('postgres', slurp_file($roles), on_error_stop => 0);    # existing roles give errors, the rest is made
# pg_restore -j loads the extension's tables in parallel while their
# foreign keys exist (they are made by CREATE EXTENSION): a member row may
# come before its store.  session_replication_role = replica (PGOPTIONS)
# defers nothing but skips the foreign-key triggers of the load, as
# --disable-triggers does for a data-only restore; the dump is one
# consistent snapshot.
for my $case ([ $hq, 'r_plain', [], '' ],
	[ $hq, 'r_par', [ '-j', '2' ], '-c session_replication_role=replica' ],
	[ $hq2, 'restored', [], '' ])
{
	my ($node, $db, $opts, $pgoptions) = @$case;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	{
		local $ENV{PGOPTIONS} = $pgoptions;
		$node->command_ok([ 'pg_restore', '--exit-on-error', @$opts, '-d', $node->connstr($db), $dump ],
			"pg_restore @$opts into $db (" . $node->name . ($pgoptions ? ", PGOPTIONS='$pgoptions'" : '') . ')');
	}
	is($node->safe_psql($db, $state_sql), $hq_state, "$db: balances, entries, outbox and verdicts as at HQ");
	is($node->safe_psql($db, 'SELECT count(*) FROM loyalty.ledger_check()'), '0', "$db: ledger_check finds nothing");
	is($node->safe_psql($db, $orphans_sql), '', "$db: every foreign key of the extension's tables holds");
	is($node->safe_psql($db, q{SELECT count(*) FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid
		WHERE d.datname = current_database() AND s.subname = 'loyalty_outbox_sa' AND NOT s.subenabled}), '1',
		"$db: the outbox subscription came back disabled");
	my ($ret, $out, $err) = $node->psql($db, q{SELECT loyalty.replica_retry()});
	like($err, qr/restored copy of another loyalty database/, "$db: replica_retry refuses in a restored copy");
}

# --- the copy on the other server becomes HQ ------------------------------
$hq->stop;
$hq2->safe_psql('restored', q{
	ALTER SUBSCRIPTION loyalty_outbox_sa SET (slot_name = NONE);
	DROP SUBSCRIPTION loyalty_outbox_sa;
});
like($hq2->safe_psql('restored', 'SELECT loyalty.replica_adopt()'), qr{^\d+/\d+$}, 'replica_adopt names this server and database');
$hq2->safe_psql('restored', q{SELECT loyalty.replica_outbox_attach(gen_random_uuid()::text, 'sa', } . conn($sa) . ')');
$hq2->poll_query_until('restored', q{SELECT coalesce(sum(redeliveries), 0) >= 30 FROM loyalty.outbox_result WHERE store_code = 'sa'})
	or die 'no redeliveries';
is($hq2->safe_psql('restored', $state_sql) =~ s{/\d+$}{}r, $hq_state =~ s{/\d+$}{}r,
	'the re-attached outbox re-applied nothing (old events are redeliveries)');
$sa->safe_psql('postgres', "SELECT loyalty.store_points_accrue('st-new', '$members[39]', 777, 'stay', 'room new')");
$hq2->poll_query_until('restored', q{SELECT count(*) = 31 FROM loyalty.outbox_result WHERE store_code = 'sa' AND status = 'applied'})
	or die 'new event not applied';
is($hq2->safe_psql('restored', "SELECT loyalty.points_balance('$members[39]')"), 1000 + 40 + 777,
	'a new store event reaches the adopted HQ and is applied once');
is($hq2->safe_psql('restored', 'SELECT count(*) FROM loyalty.ledger_check()'), '0', 'ledger_check finds nothing');

$_->stop for ($hq2, $sa);
done_testing();
