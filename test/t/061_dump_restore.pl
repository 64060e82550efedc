# pg_dump / pg_restore of an HQ database gives the same program: the demo
# chain (stores, staff, members, policies, stays, ledger, tiers, benefits,
# risk tags, encrypted identities, preferences, audit trail) is dumped and
# restored into a new database of the same cluster, and the restored
# database answers every question the same way: balances, tiers, benefits
# at each store, the ledger invariant, the audit hash chain, ID
# verification, grants, staff identity.  (Roles are cluster objects: a
# restore into another cluster needs pg_dumpall --roles-only first, and the
# key file of docs/privacy.md; see docs/operations.md.  The restored
# database has the recorded key fingerprint of the dump and the same key
# file, so verification works.)
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = dirname(__FILE__) . '/../..';
my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_cron,loyalty'
max_worker_processes = 32
});
# the key file, outside the data directory; demo/00_chain.sql makes it
$node->append_conf('postgresql.conf',
	"loyalty.key_file = '" . PostgreSQL::Test::Utils::tempdir() . "/loyalty.key'\n");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE hq');
$node->safe_psql('hq', 'CREATE EXTENSION loyalty');
for my $f (sort glob("$root/demo/*.sql"))
{
	$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('hq'), '-f', $f ],
		'demo ' . (split m{/}, $f)[-1]);
}
$node->safe_psql('hq', q{
	SELECT loyalty.policy_set('{"version": 1, "tiers": [{"code": "member"}], "earning": {"base_points_per_unit": 12}}',
	                          '2999-01-01', 'a future version');
});

# what we compare: the answers of the API and a digest of the program's state
my $fingerprint = q{
	SELECT string_agg(t, E'\n' ORDER BY t) FROM (
		SELECT 'stores ' || count(*) AS t FROM loyalty.store
		UNION ALL SELECT 'members ' || count(*) || ' ' || md5(string_agg(m.card_no || m.tier || m.status, ',' ORDER BY m.card_no))
		  FROM loyalty.member m
		UNION ALL SELECT 'balances ' || md5(string_agg(b.member_id::text || ':' || b.balance, ',' ORDER BY b.member_id))
		  FROM loyalty.point_balance b
		UNION ALL SELECT 'ledger rows ' || (SELECT count(*) FROM loyalty.point_entry) || '/' || (SELECT count(*) FROM loyalty.point_lot)
		UNION ALL SELECT 'ledger invariant violations ' || count(*) FROM loyalty.ledger_check()
		UNION ALL SELECT 'tier history ' || count(*) FROM loyalty.tier_history
		UNION ALL SELECT 'counters ' || md5(string_agg(c::text, ',' ORDER BY c::text)) FROM loyalty.tier_counter c
		UNION ALL SELECT 'benefits ' || md5(string_agg(m.card_no || s.store_code || b.benefit_code || b.frozen::text, ',' ORDER BY m.card_no, s.store_code, b.benefit_code))
		  FROM (SELECT * FROM loyalty.member ORDER BY card_no LIMIT 200) m
		  CROSS JOIN loyalty.store s, LATERAL loyalty.benefits(m.member_id, s.store_code) b
		UNION ALL SELECT 'risk tags ' || count(*) || ' open ' || count(*) FILTER (WHERE resolved_at IS NULL) FROM loyalty.risk_tag
		UNION ALL SELECT 'preferences ' || count(*) FROM loyalty.member_preference
		UNION ALL SELECT 'identities ' || count(*) FROM loyalty.member_identity
		-- on the chain or staged: the writers chain a staged record within
		-- about 0.1 s, so only the sum stays put between this and the dump
		UNION ALL SELECT 'audit records ' || ((SELECT count(*) FROM loyalty.audit_log)
		                                     + (SELECT count(*) FROM loyalty.audit_change_staging))
		UNION ALL SELECT 'audit chain problems ' || count(*) FROM loyalty.audit_verify()
		UNION ALL SELECT 'policy versions ' || count(*) FROM loyalty.policy
		UNION ALL SELECT 'rate ' || (loyalty.policy_at() -> 'earning' ->> 'base_points_per_unit')
		UNION ALL SELECT 'events ' || count(*) FROM loyalty.event_outbox
		UNION ALL SELECT 'staff roles ' || count(*) FROM loyalty.staff_role
		UNION ALL SELECT 'grant ' || has_function_privilege('loyalty_frontdesk',
		       'loyalty.member_enroll(text,text,text,text,text,date,text,text,text)', 'EXECUTE')::text
	) x};
my $before = $node->safe_psql('hq', $fingerprint);
like($before, qr/ledger invariant violations 0/, 'the demo ledger is consistent');
like($before, qr/audit chain problems 0/, 'the demo audit chain verifies');

my $dump = $node->basedir . '/hq.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('hq'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE hq_restored');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('hq_restored'), $dump ],
	'pg_restore');

is($node->safe_psql('hq_restored', $fingerprint), $before, 'the restored database answers the same');

# a member with an encrypted ID number in the demo: verification still works
my ($member, $id) = ('', '440301199003071234');
$member = $node->safe_psql('hq_restored',
	q{SELECT member_id FROM loyalty.member_identity WHERE id_number_cipher IS NOT NULL ORDER BY member_id LIMIT 1});
is($node->safe_psql('hq_restored', qq{SELECT loyalty.identity_matches('$member', '$id')},
		extra_params => [ '-U', 'szx_desk' ]),
	't', 'an encrypted ID number verifies after the restore');

is($node->safe_psql('hq_restored', 'SELECT store_code FROM loyalty.whoami()',
		extra_params => [ '-U', 'szx_desk' ]),
	'szx', 'staff identity works in the restored database');
is($node->safe_psql('hq_restored',
		q{SELECT count(*) FROM loyalty.member_enroll(gen_random_uuid()::text, 'szx', 'After Restore')},
		extra_params => [ '-U', 'szx_desk' ]),
	'1', 'the restored database takes new members');
is($node->safe_psql('hq_restored',
		q{SELECT count(*) FROM loyalty.frontdesk_lookup((SELECT card_no FROM loyalty.member_frontdesk ORDER BY card_no LIMIT 1))},
		extra_params => [ '-U', 'szx_desk' ]),
	'1', 'the masked views and the audited lookup work after the restore');
is($node->safe_psql('hq_restored', 'SELECT count(*) FROM loyalty.audit_verify()'),
	'0', 'the audit chain goes on verifying with new records');

$node->stop;
done_testing();
