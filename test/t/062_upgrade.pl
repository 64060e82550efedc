# Upgrades: for every released version with an update path to the default
# version, install it, put data in, ALTER EXTENSION loyalty UPDATE, and
# compare the result with a fresh install of the default version, whose
# script is generated from the per-concept sources (src/sql/*.sql) while the
# update runs the released scripts and the hand-written update fragments
# (src/sql/update/): two different paths that must end in the same
# catalog (functions, tables, columns, constraints, indexes, triggers, views,
# policies, privileges, dump configuration) and the same behaviour.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_cron,loyalty'");
$node->start;

# The catalog of the extension, one line per fact, independent of OIDs and of
# column order (an upgrade appends columns a fresh install may place earlier).
my $catalog = q{
	WITH ns AS (SELECT 'loyalty'::regnamespace AS oid)
	SELECT string_agg(x, E'\n' ORDER BY x) FROM (
		SELECT 'function ' || p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid))
		       || ' acl=' || coalesce(p.proacl::text, 'default') AS x
		  FROM pg_proc p, ns WHERE p.pronamespace = ns.oid AND p.prokind IN ('f', 'p')
		UNION ALL
		SELECT 'relation ' || c.relname || ' kind=' || c.relkind::text || ' acl=' || coalesce(c.relacl::text, 'default')
		       || ' rls=' || c.relrowsecurity || '/' || c.relforcerowsecurity
		       || ' options=' || coalesce(c.reloptions::text, '')
		  FROM pg_class c, ns WHERE c.relnamespace = ns.oid AND c.relkind IN ('r', 'v', 'm', 'S', 'p')
		UNION ALL
		SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
		       || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
		       || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text
		  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		  JOIN ns ON c.relnamespace = ns.oid
		  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'p')
		UNION ALL
		SELECT 'constraint ' || cl.relname || '.' || co.conname || ' ' || pg_get_constraintdef(co.oid)
		  FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid, ns
		 WHERE co.connamespace = ns.oid
		UNION ALL
		SELECT 'index ' || pg_get_indexdef(i.indexrelid)
		  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid, ns WHERE c.relnamespace = ns.oid
		UNION ALL
		SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
		  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid, ns
		 WHERE c.relnamespace = ns.oid AND NOT t.tgisinternal
		UNION ALL
		SELECT 'view ' || c.relname || ' ' || md5(pg_get_viewdef(c.oid))
		  FROM pg_class c, ns WHERE c.relnamespace = ns.oid AND c.relkind IN ('v', 'm')
		UNION ALL
		SELECT 'policy ' || tablename || '.' || policyname || ' ' || cmd || ' ' || roles::text || ' '
		       || coalesce(qual, '') || ' ' || coalesce(with_check, '')
		  FROM pg_policies WHERE schemaname = 'loyalty'
		UNION ALL
		SELECT 'comment function ' || p.oid::regprocedure || ' ' || md5(d.description)
		  FROM pg_proc p JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_proc'::regclass, ns
		 WHERE p.pronamespace = ns.oid
		UNION ALL
		SELECT 'comment relation ' || c.relname || '.' || d.objsubid || ' ' || md5(d.description)
		  FROM pg_class c JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass, ns
		 WHERE c.relnamespace = ns.oid
		UNION ALL
		SELECT 'dump ' || cfg::regclass::text
		  FROM pg_extension e, unnest(e.extconfig) cfg WHERE e.extname = 'loyalty'
		UNION ALL
		SELECT 'dump-filter ' || f FROM pg_extension e, unnest(e.extcondition) f WHERE e.extname = 'loyalty'
		UNION ALL
		SELECT 'type ' || t.typname || ' ' || t.typtype::text FROM pg_type t, ns
		 WHERE t.typnamespace = ns.oid AND (t.typtype IN ('e', 'd')
		       OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
	) facts};

# Behaviour: the same calls give the same answers.
my $behaviour = q{
	SELECT loyalty.store_create(gen_random_uuid()::text, 'upg', 'Upgrade Hotel', 'bay', 'south', 'Asia/Shanghai');
	SELECT count(*) FROM loyalty.member_enroll(gen_random_uuid()::text, 'upg', '升级测试', '13800000000');
	SELECT department FROM loyalty.whoami();
	SELECT loyalty.policy_at() -> 'redemption';
	SELECT loyalty.policy_validate('{"version": 1, "tiers": [{"code": "member"}]}') -> 'expiry';
};

my $default = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'loyalty'});
my @starts = split /\n/, $node->safe_psql('postgres', qq{
	SELECT source FROM pg_extension_update_paths('loyalty')
	 WHERE target = '$default' AND path IS NOT NULL ORDER BY source});

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION loyalty');
my $want_catalog = $node->safe_psql('fresh', $catalog);
my $want_behaviour = $node->safe_psql('fresh', $behaviour);
ok(length($want_catalog) > 1000, "catalog of a fresh $default install");

note('update paths to ' . $default . ': ' . (@starts ? join(', ', @starts) : 'none yet'));
for my $from (@starts)
{
	my $db = "from_" . ($from =~ s/\W/_/gr);
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE EXTENSION loyalty VERSION '$from'");
	# data in place before the update
	$node->safe_psql($db, q{
		SELECT loyalty.create_store('old', 'Old Hotel', 'bay', 'south', 'Asia/Shanghai');
		SELECT loyalty.enroll('old', '老会员', '13900000000');
	});
	$node->safe_psql($db, 'ALTER EXTENSION loyalty UPDATE');
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'loyalty'}),
		$default, "$from updates to $default");
	my $got_catalog = $node->safe_psql($db, $catalog);
	ok($got_catalog eq $want_catalog, "$from -> $default: same catalog as a fresh install")
		or diag(catalog_diff($want_catalog, $got_catalog));
	is($node->safe_psql($db, q{SELECT count(*) FROM loyalty.member m JOIN loyalty.store s ON s.store_code = m.home_store WHERE s.store_code = 'old'}),
		'1', "$from -> $default: data kept");
	$node->safe_psql($db, q{
		DELETE FROM loyalty.member_profile; DELETE FROM loyalty.member; DELETE FROM loyalty.staff_role WHERE store_code = 'old';
		DELETE FROM loyalty.store;});
	is($node->safe_psql($db, $behaviour), $want_behaviour, "$from -> $default: same behaviour");
}

# Released install scripts are frozen: each is listed with its checksum in
# test/released-scripts.sha256 and may never change.
my $sums = slurp_file(dirname_of(__FILE__) . '/../released-scripts.sha256');
my $share = $node->safe_psql('postgres', q{SELECT setting FROM pg_config WHERE name = 'SHAREDIR'});
for my $line (split /\n/, $sums)
{
	next if $line =~ /^\s*(#|$)/;
	my ($sum, $file) = split /\s+/, $line;
	my $path = "$share/extension/$file";
	ok(-f $path, "released script $file is installed");
	my $got = (split /\s+/, `sha256sum '$path'`)[0] // '';
	is($got, $sum, "released script $file is unchanged");
}

# catalog_diff(WANT, GOT): the facts only one side has, one per line.
sub catalog_diff
{
	my ($want, $got) = @_;
	my %w = map { $_ => 1 } split /\n/, $want;
	my %g = map { $_ => 1 } split /\n/, $got;
	return join("\n",
		(map { "only in the fresh install: $_" } sort grep { !$g{$_} } keys %w),
		(map { "only after the update:     $_" } sort grep { !$w{$_} } keys %g));
}

sub dirname_of { my ($f) = @_; $f =~ s{/[^/]*$}{}; return $f; }

$node->stop;
done_testing();
