# Randomised concurrent ledger operations from several sessions, an
# immediate shutdown (crash) in the middle, recovery, and a full retry of
# every operation with the same idempotency keys:
#  - every operation a client saw commit is in the ledger after recovery;
#  - a retried operation that had committed is replayed, not applied again;
#  - the ledger invariant holds for every member, and there is exactly
#    one ledger entry per recorded idempotency key.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $sessions = 4;
my $ops = 250;
my $members = 8;

my $node = PostgreSQL::Test::Cluster->new('ledger');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'loyalty'\n");   # the audit writer pool
$node->append_conf('postgresql.conf', "fsync = on\n");
$node->start;

$node->safe_psql('postgres', qq{
    CREATE EXTENSION loyalty;
    SELECT loyalty.store_create(gen_random_uuid()::text, 'cra', 'Crash A', 'bay', 'east', 'Asia/Shanghai');
    SELECT loyalty.store_create(gen_random_uuid()::text, 'crb', 'Crash B', 'bay', 'west', 'Asia/Urumqi');
    CREATE TABLE crash_member AS
      SELECT i, (loyalty.member_enroll(gen_random_uuid()::text, CASE WHEN i % 2 = 0 THEN 'cra' ELSE 'crb' END, 'Crash ' || i)).member_id
        FROM generate_series(1, $members) i;
    SELECT count(loyalty.points_accrue('seed-' || i, member_id, 'cra', 20000, 'adjustment')) FROM crash_member;
});
my %member = map { split /\|/ } split /\n/,
    $node->safe_psql('postgres', 'SELECT i, member_id FROM crash_member');

# one script per session: a deterministic pseudo-random mix of operations;
# each statement prints "done <key>" only once it has committed
srand(20261122);
my @scripts;
for my $s (1 .. $sessions)
{
    my $sql = "\\set ON_ERROR_STOP 0\n";
    for my $n (1 .. $ops)
    {
        my $key = "crash-$s-$n";
        my $m = $member{1 + int(rand($members))};
        my $o = $member{1 + int(rand($members))};
        my $store = rand() < 0.5 ? 'cra' : 'crb';
        my $r = rand();
        my $call;
        if ($r < 0.4) {
            $call = "loyalty.points_accrue('$key', '$m', '$store', " . (100 + int(rand(900))) . ", 'stay')";
        } elsif ($r < 0.7) {
            $call = "loyalty.points_redeem('$key', '$m', '$store', " . (1000 + 100 * int(rand(20))) . ", 'night')";
        } elsif ($r < 0.85) {
            $call = "loyalty.points_redeem_cash('$key', '$m', '$store', " . (100 + 10 * int(rand(20))) . ")";
        } else {
            next if $m eq $o;
            $call = "loyalty.points_transfer('$key', '$m', '$o', '$store', " . (100 + int(rand(400))) . ")";
        }
        $sql .= "SELECT 'done $key' FROM $call;\n";
    }
    push @scripts, $sql;
}

# run the scripts concurrently; crash the server once enough have committed
sub start_sessions
{
    my @h;
    for my $s (0 .. $#scripts)
    {
        my ($in, $out, $err) = ($scripts[$s], '', '');
        my $h = IPC::Run::start(
            [ 'psql', '-X', '-At', '-d', $node->connstr('postgres') ],
            '<', \$in, '>', \$out, '2>', \$err);
        push @h, { h => $h, out => \$out };
    }
    return @h;
}

my @h = start_sessions();
my $acked = 0;
while ($acked < $sessions * $ops / 3)
{
    $_->{h}->pump_nb for @h;
    $acked = 0;
    $acked += () = ${ $_->{out} } =~ /^done /mg for @h;
    last unless grep { $_->{h}->pumpable } @h;
}
$node->stop('immediate');
$_->{h}->finish for @h;
my %committed;
for my $x (@h)
{
    $committed{$1} = 1 while ${ $x->{out} } =~ /^done (\S+)$/mg;
}
cmp_ok(scalar(keys %committed), '>', 0, 'some operations committed before the crash');

$node->start;
my $missing = $node->safe_psql('postgres', 'SELECT count(*) FROM (VALUES '
    . join(', ', map { "('$_')" } sort keys %committed)
    . ') k(key) WHERE NOT EXISTS (SELECT 1 FROM loyalty.ledger_request r WHERE r.idem_key = k.key)');
is($missing, '0', 'every operation acknowledged before the crash survived it');
is($node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.ledger_check()'), '0',
    'the invariant holds after crash recovery');

# retry everything: committed operations replay, the rest run now
my $before = $node->safe_psql('postgres',
    "SELECT count(*) FROM loyalty.ledger_request WHERE idem_key LIKE 'crash-%'");
my $replayed_sql = "SELECT count(*) FROM loyalty.ledger_request WHERE idem_key LIKE 'crash-%'";
@h = start_sessions();
$_->{h}->finish for @h;
my %retried;
for my $x (@h)
{
    $retried{$1} = 1 while ${ $x->{out} } =~ /^done (\S+)$/mg;
}
ok((grep { !$retried{$_} } keys %committed) == 0,
    'every committed operation returns its result again when retried');
cmp_ok($node->safe_psql('postgres', $replayed_sql), '>=', $before, 'retries add only operations that had not committed');

is($node->safe_psql('postgres', q{
    SELECT count(*) FROM loyalty.ledger_request r
     WHERE r.idem_key LIKE 'crash-%' AND r.operation IN ('accrue', 'redeem')
       AND (SELECT count(*) FROM loyalty.point_entry e WHERE e.entry_id = r.entry_id) <> 1}),
    '0', 'each accrual and redemption key has exactly one entry');
is($node->safe_psql('postgres', q{
    SELECT (SELECT count(*) FROM loyalty.point_entry WHERE kind IN ('accrue', 'redeem', 'transfer_out'))
         - (SELECT count(*) FROM loyalty.ledger_request)}),
    '0', 'no entry exists without its idempotency record (nothing applied twice)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.ledger_check()'), '0',
    'the invariant holds after the retries');

$node->stop;
done_testing();
