# make installcheck leaves the server it tests as it found it: every
# database and role the run made is dropped (tools/installcheck-cleanup.sh,
# docs/installation.md).  The suites are cut to one regress test and one
# isolation spec (the Makefile's REGRESS and ISOLATION) to keep this fast;
# the regress test 00_install makes a store, so roles and a database are
# made and must go.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('installcheck');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'loyalty'\n");   # the audit writer pool
$node->start;
$ENV{PGHOST} = $node->host;
$ENV{PGPORT} = $node->port;
$ENV{PGDATABASE} = 'postgres';

my $state = q{SELECT string_agg(x, ',' ORDER BY x) FROM (
    SELECT 'database ' || datname AS x FROM pg_database
    UNION ALL SELECT 'role ' || rolname FROM pg_roles) s};
my $before = $node->safe_psql('postgres', $state);

my $make = $ENV{MAKE} // 'make';
my @suite = ('REGRESS=00_install', 'ISOLATION=policy_cache', 'INSTALLCHECK_TAP=no');

# without the cleanup (the suite targets alone) the run leaves things behind:
# the check below can fail
my ($out, $err);
my $ok = IPC::Run::run([ $make, '-s', 'installcheck-regress', @suite ], '>', \$out, '2>', \$err);
ok($ok, 'installcheck-regress alone runs') or diag("$out\n$err");
isnt($node->safe_psql('postgres', $state), $before, 'installcheck-regress alone leaves roles and a database');

# back to the start by hand
$node->safe_psql('postgres', 'DROP DATABASE contrib_regression WITH (FORCE)');
my $leftover_roles = $node->safe_psql('postgres',
	qq{SELECT string_agg(quote_ident(rolname), ', ') FROM pg_roles WHERE NOT ('role ' || rolname) = ANY (string_to_array('$before', ','))});
$node->safe_psql('postgres', "DROP ROLE $leftover_roles") if $leftover_roles ne '';
is($node->safe_psql('postgres', $state), $before, 'back to the start');

# make installcheck cleans up after itself

$ok = IPC::Run::run([ $make, '-s', 'installcheck', @suite ], '>', \$out, '2>', \$err);
ok($ok, 'make installcheck passes') or diag("$out\n$err");
like($out . $err, qr/00_install\s+\.\.\. ok/, 'the regress test ran');
like($out . $err, qr/policy_cache\s+\.\.\. ok/, 'the isolation spec ran');
is($node->safe_psql('postgres', $state), $before,
	'after make installcheck the roles and databases are those of before');

$node->stop;
done_testing();
