# PGXN and catalogue hygiene (docs/development.md, "Comments" and
# "Releasing"): META.json is valid JSON with every key the PGXN meta spec
# 1.0.0 requires and the version of loyalty.control; every function, view,
# table and type of schema loyalty has a COMMENT, except internal objects
# whose name starts with "_"; every function's full signature is in docs/.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $0 =~ s{/?test/t/[^/]*$}{}r;
$root = '.' if $root eq '';

my $meta = eval { decode_json(slurp_file("$root/META.json")) };
ok($meta, 'META.json parses as JSON') or diag($@);
$meta //= {};
for my $key (qw(name abstract version maintainer license provides meta-spec))
{
	ok(defined $meta->{$key} && $meta->{$key} ne '', "META.json has $key");
}
is($meta->{name}, 'loyalty', 'name');
like($meta->{version} // '', qr/^\d+\.\d+\.\d+$/, 'version is a semantic version (PGXN)');
my ($control) = slurp_file("$root/loyalty.control") =~ /^default_version\s*=\s*'([^']+)'/m;
is($meta->{version}, "$control.0", "version matches loyalty.control ($control, as $control.0)");
is(ref $meta->{maintainer} eq 'ARRAY' ? scalar @{ $meta->{maintainer} } > 0 : $meta->{maintainer} ne '',
	1, 'at least one maintainer');
my %licenses = map { $_ => 1 } qw(agpl_3 apache_1_1 apache_2_0 artistic_1 artistic_2 bsd freebsd gfdl_1_2
  gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1 lgpl_3_0 mit mozilla_1_0 mozilla_1_1 openssl perl_5 postgresql qpl_1_0
  ssleay sun zlib open_source restricted unrestricted unknown);
ok($licenses{ ref $meta->{license} ? '' : ($meta->{license} // '') } || ref $meta->{license} eq 'HASH',
	'license is a PGXN license name');
my $p = $meta->{provides}{loyalty} // {};
ok($p->{file} && -f "$root/$p->{file}", 'provides.loyalty.file names a file of the tree');
is($p->{version}, $meta->{version}, 'provides.loyalty.version is the release version');
is($meta->{'meta-spec'}{version}, '1.0.0', 'meta-spec 1.0.0');

my $node = PostgreSQL::Test::Cluster->new('meta');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'loyalty'\n");   # the audit writer pool
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION loyalty');
my $missing = $node->safe_psql('postgres', q{
	SELECT string_agg(kind || ' ' || name, ', ' ORDER BY kind, name) FROM (
		SELECT 'function' AS kind, p.oid::regprocedure::text AS name, p.proname AS short,
		       obj_description(p.oid, 'pg_proc') AS d
		  FROM pg_proc p WHERE p.pronamespace = 'loyalty'::regnamespace
		UNION ALL
		SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'view' ELSE 'table' END, c.relname, c.relname,
		       obj_description(c.oid, 'pg_class')
		  FROM pg_class c WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
		UNION ALL
		SELECT 'type', t.typname, t.typname, obj_description(t.oid, 'pg_type')
		  FROM pg_type t WHERE t.typnamespace = 'loyalty'::regnamespace
		   AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c'
		        AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
	) o WHERE d IS NULL AND short NOT LIKE '\_%'});
is($missing, '', 'every function, view, table and type of schema loyalty has a comment');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM pg_description d JOIN pg_proc p ON p.oid = d.objoid
	WHERE p.pronamespace = 'loyalty'::regnamespace}), '>', 50, 'the check saw the commented functions');
# every function's full signature is in docs/: its name followed by a
# parenthesis that holds every argument name, in order (not only examples)
my $docs = '';
$docs .= slurp_file($_) for glob("$root/docs/*.md");
my @unsigned;
for my $line (split /\n/, $node->safe_psql('postgres', q{
	SELECT p.proname || '|' || array_to_string(coalesce(p.proargnames[1:p.pronargs], '{}'), ',')
	  FROM pg_proc p WHERE p.pronamespace = 'loyalty'::regnamespace AND p.proname NOT LIKE '\_%'
	 ORDER BY 1}))
{
	my ($name, $args) = split /\|/, $line, 2;
	my @args = grep { $_ ne '' } split /,/, ($args // '');
	my $found = 0;
	pos($docs) = 0;
	while ($docs =~ /\b\Q$name\E\(/g)
	{
		my $rest = substr($docs, pos($docs), 600);
		my ($depth, $i) = (1, 0);
		while ($i < length($rest) && $depth > 0)
		{
			my $c = substr($rest, $i++, 1);
			$depth++ if $c eq '(';
			$depth-- if $c eq ')';
		}
		my $inner = substr($rest, 0, $i);
		my $pos = 0;
		my $all = 1;
		for my $a (@args)
		{
			if (substr($inner, $pos) =~ /\b\Q$a\E\b/) { $pos += $+[0]; }
			else { $all = 0; last; }
		}
		if ($all) { $found = 1; last; }
	}
	push @unsigned, "$name(" . join(', ', @args) . ")" unless $found;
}
is(join(', ', @unsigned), '', 'every function has its full signature (every argument, in order) in docs/');

$node->stop;
done_testing();
