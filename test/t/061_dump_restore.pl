# pg_dump / pg_restore of an HQ database gives the same program: stores,
# members, policy versions, staff role map and grants survive; the restored
# database answers the same questions.  (Roles are cluster objects: a
# restore into the same cluster finds them; a new cluster needs
# pg_dumpall --roles-only first, see docs/operations.md.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_cron'");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE hq');
$node->safe_psql('hq', q{
	CREATE EXTENSION loyalty;
	SELECT loyalty.create_store('szx', 'Shenzhen', 'bay', 'south', 'Asia/Shanghai');
	SELECT loyalty.create_store('urc', 'Urumqi', 'bay', 'west', 'Asia/Urumqi');
	SELECT loyalty.create_staff('dump_desk', 'szx', 'frontdesk');
	SELECT loyalty.enroll('szx', '张' || i, '1380000' || lpad(i::text, 4, '0')) FROM generate_series(1, 50) i;
	SELECT loyalty.policy_set('{"version": 1, "tiers": [{"code": "member"}], "earning": {"base_points_per_unit": 12}}',
	                          '2020-01-01', 'restored version');
});

# what we compare: a digest of every user-data table and the answers of the API
my $fingerprint = q{
	SELECT md5(string_agg(t, '|' ORDER BY t)) FROM (
		SELECT 'store ' || s::text AS t FROM loyalty.store s
		UNION ALL SELECT 'member ' || m.card_no || m.home_store || m.tier FROM loyalty.member m
		UNION ALL SELECT 'profile ' || p.full_name || coalesce(p.phone, '') FROM loyalty.member_profile p
		UNION ALL SELECT 'role ' || r.role::text || coalesce(r.store_code, 'HQ') || r.department FROM loyalty.staff_role r
		UNION ALL SELECT 'policy ' || p.effective_from::text || md5(p.document) FROM loyalty.policy p
		UNION ALL SELECT 'rate ' || (loyalty.policy_at() -> 'earning' ->> 'base_points_per_unit')
		UNION ALL SELECT 'grant ' || has_function_privilege('loyalty_frontdesk', 'loyalty.enroll(text,text,text,text,date,text,text,text)', 'EXECUTE')::text
	) x};
my $before = $node->safe_psql('hq', $fingerprint);

my $dump = $node->basedir . '/hq.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('hq'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE hq_restored');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('hq_restored'), $dump ],
	'pg_restore');

is($node->safe_psql('hq_restored', $fingerprint), $before, 'restored database has the same fingerprint');
is($node->safe_psql('hq_restored', 'SELECT count(*) FROM loyalty.policy'), '2',
	'default and user policy versions, each once');
is($node->safe_psql('hq_restored', 'SELECT count(*) FROM loyalty.staff_role'), '12',
	'HQ rows from the extension plus eight store rows, each once');
is($node->safe_psql('hq_restored', 'SELECT store_code FROM loyalty.whoami()',
		extra_params => [ '-U', 'dump_desk' ]),
	'szx', 'staff identity works in the restored database');
is($node->safe_psql('hq_restored',
		q{SELECT count(*) FROM loyalty.enroll('szx', 'After Restore')},
		extra_params => [ '-U', 'dump_desk' ]),
	'1', 'the restored database takes new members');

$node->stop;
done_testing();
