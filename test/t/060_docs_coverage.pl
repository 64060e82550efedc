# Every SQL object users can reach is documented: each function, view and
# table of schema loyalty (names starting with "_" are internal) and each
# loyalty.* setting must appear in docs/*.md: as a code span that starts with
# its name (`whoami()`), or schema-qualified (loyalty.whoami) anywhere.
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $docs = dirname(__FILE__) . '/../../docs';
my $text = '';
for my $f (glob("$docs/*.md"))
{
	$text .= slurp_file($f);
}
ok(length($text) > 0, 'docs/*.md found');

my $node = PostgreSQL::Test::Cluster->new('docs');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_cron,loyalty'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION loyalty');

my $objects = $node->safe_psql('postgres', q{
	SELECT DISTINCT kind || ' ' || name FROM (
		SELECT 'function' AS kind, p.proname AS name FROM pg_proc p
		 WHERE p.pronamespace = 'loyalty'::regnamespace
		UNION ALL
		SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'table' END, c.relname FROM pg_class c
		 WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
	) o
	WHERE name NOT LIKE '\_%'
	ORDER BY 1});
my $settings = $node->safe_psql('postgres',
	q{SELECT name FROM pg_settings WHERE name LIKE 'loyalty.%' ORDER BY 1});

my @missing;
for my $line (split /\n/, $objects)
{
	my ($kind, $name) = split / /, $line;
	push @missing, "$kind $name"
	  unless $text =~ /`(?:loyalty\.)?\Q$name\E[`( ]/
	  || $text =~ /\bloyalty\.\Q$name\E\b/;
}
for my $name (split /\n/, $settings)
{
	push @missing, "setting $name" unless $text =~ /`\Q$name\E[` =]/;
}
is(join(', ', @missing), '', 'every function, view, table and setting has a docs entry');
cmp_ok(scalar(split /\n/, $objects), '>', 10, 'the check saw the extension\'s objects');

$node->stop;
done_testing();
