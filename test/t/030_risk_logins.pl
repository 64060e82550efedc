# Benefits and the violation freeze over real logins of two stores: store
# urc raises, store sha's front desk sees the freeze (but not urc's note) and
# is refused the upgrade; the freeze survives a restart (per-backend caches
# are rebuilt from the tables); urc's manager resolves it.
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
    SELECT loyalty.staff_create(gen_random_uuid()::text, 'uli', 'urc', 'frontdesk');
    SELECT loyalty.staff_create(gen_random_uuid()::text, 'uma', 'urc', 'store_manager');
    SELECT loyalty.staff_create(gen_random_uuid()::text, 'cara', NULL, 'crm');
});
$node->safe_psql('postgres', q{
    SELECT loyalty.benefit_define(gen_random_uuid()::text, 'upgrade', 'Free upgrade', 'room_upgrade');
    SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'upgrade', 'tier', '{}', min_tier => 'member');
    SELECT loyalty.benefit_define(gen_random_uuid()::text, 'gift', 'Local gift', 'gift');
    SELECT loyalty.benefit_grant(gen_random_uuid()::text, 'gift', 'store', '{"item": "tea"}', stores => ARRAY['sha']);
}, extra_params => ['-U', 'cara']);
my $member = $node->safe_psql('postgres',
    q{SELECT member_id FROM loyalty.member_enroll(gen_random_uuid()::text, 'urc', 'Guest')}, extra_params => ['-U', 'uli']);

my $sha_view = qq{SELECT string_agg(benefit_code || ':' || frozen, ',' ORDER BY benefit_code)
                    FROM loyalty.benefits('$member', 'sha')};
is($node->safe_psql('postgres', $sha_view, extra_params => ['-U', 'amy']),
    'gift:false,upgrade:false', 'sha sees the chain upgrade and its own gift');
is($node->safe_psql('postgres',
        qq{SELECT string_agg(benefit_code, ',') FROM loyalty.benefits('$member', 'urc')},
        extra_params => ['-U', 'uli']),
    'upgrade', 'urc does not see sha\'s gift');

my $tag = $node->safe_psql('postgres',
    qq{SELECT loyalty.risk_tag_raise(gen_random_uuid()::text, '$member', 'urc', 'unresolved_violation', 'broke the TV', 2800)},
    extra_params => ['-U', 'uli']);
is($node->safe_psql('postgres', $sha_view, extra_params => ['-U', 'amy']),
    'gift:false,upgrade:true', 'the upgrade is frozen at sha at once');
is($node->safe_psql('postgres',
        qq{SELECT coalesce(note, '(hidden)') || ' ' || store_code FROM loyalty.risk_tags('$member')},
        extra_params => ['-U', 'amy']),
    '(hidden) urc', 'sha sees the flag, not urc\'s note');
my ($ret, $out, $err) = $node->psql('postgres',
    qq{SELECT * FROM loyalty.benefit_use('k1', '$member', 'sha', 'upgrade')},
    extra_params => ['-U', 'amy']);
like($err, qr/room_upgrade is frozen for this member by unresolved risk tag "unresolved_violation"/,
    'the upgrade is refused at sha');

$node->restart;
is($node->safe_psql('postgres', $sha_view, extra_params => ['-U', 'amy']),
    'gift:false,upgrade:true', 'still frozen after a restart');
($ret, $out, $err) = $node->psql('postgres',
    qq{SELECT loyalty.risk_tag_resolve(gen_random_uuid()::text, '$tag', 'settled', 'paid')}, extra_params => ['-U', 'amy']);
like($err, qr/permission denied for risk tag/, 'sha cannot resolve urc\'s tag');
$node->safe_psql('postgres', qq{SELECT loyalty.risk_tag_resolve(gen_random_uuid()::text, '$tag', 'settled', 'paid 2800 by card')},
    extra_params => ['-U', 'uma']);
is($node->safe_psql('postgres', $sha_view, extra_params => ['-U', 'amy']),
    'gift:false,upgrade:false', 'resolved: unfrozen at sha');
is($node->safe_psql('postgres',
        qq{SELECT string_agg(action || '\@' || store_code || '/' || department, ',' ORDER BY at, action DESC)
             FROM loyalty.risk_tag_history('$tag')}, extra_params => ['-U', 'uma']),
    'raised@urc/frontdesk,resolved@urc/store_manager', 'the audit trail names each step');

$node->stop;
done_testing();
