# Store staff connect as their own login roles over a real connection: the
# server derives store and department from role membership, and a login
# cannot talk itself into another store.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('hq');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'loyalty'\n");   # the audit writer pool
$node->start;

$node->safe_psql('postgres', q{
    CREATE EXTENSION loyalty;
    SELECT loyalty.store_create(gen_random_uuid()::text, 'sha', 'Shanghai Bund', 'bay', 'east', 'Asia/Shanghai');
    SELECT loyalty.store_create(gen_random_uuid()::text, 'urc', 'Urumqi', 'bay', 'west', 'Asia/Urumqi');
    SELECT loyalty.staff_create(gen_random_uuid()::text, 'amy', 'sha', 'frontdesk');
    SELECT loyalty.staff_create(gen_random_uuid()::text, 'ben', NULL, 'bi');
});

is($node->safe_psql('postgres', 'SELECT store_code || \'/\' || department FROM loyalty.whoami()',
        extra_params => ['-U', 'amy']),
    'sha/frontdesk', 'a front desk login is seen as its store and department');

is($node->safe_psql('postgres', 'SELECT is_hq FROM loyalty.whoami()',
        extra_params => ['-U', 'ben']),
    't', 'a BI login is seen as HQ');

my ($ret, $out, $err) = $node->psql('postgres',
    'SET ROLE loyalty_urc_frontdesk', extra_params => ['-U', 'amy']);
isnt($ret, 0, 'a store login cannot SET ROLE to another store');
like($err, qr/permission denied/, '... with permission denied');

($ret, $out, $err) = $node->psql('postgres',
    q{SELECT * FROM loyalty.member_enroll(gen_random_uuid()::text, 'urc', 'Wrong Store')}, extra_params => ['-U', 'amy']);
like($err, qr/permission denied for store "urc"/, 'enrolling at another store is refused');

is($node->safe_psql('postgres', q{SELECT count(*) FROM loyalty.member_enroll(gen_random_uuid()::text, 'sha', 'Right Store')},
        extra_params => ['-U', 'amy']),
    '1', 'enrolling at the own store works');

# privileges survive a restart; identity is recomputed per backend
$node->restart;
is($node->safe_psql('postgres', 'SELECT store_code FROM loyalty.whoami()',
        extra_params => ['-U', 'amy']),
    'sha', 'identity after restart');

$node->stop;
done_testing();
