#!/usr/bin/perl
# Run every ```sql example block of docs/*.md against the demo database
# and report one TAP line per block (docs/development.md, "Examples in the
# documentation").  Used by tools/test.sh's examples suite after it loads
# the demo:
#
#   tools/docs_examples.pl DATABASE [FILE.md ...]     (default: docs/*.md)
#
# Each block runs in its own psql session, inside BEGIN ... ROLLBACK (so
# no block changes the demo or depends on another), as postgres, with
# ON_ERROR_STOP.  An HTML comment on the line before the fence changes
# that (several clauses separated by ";"):
#
#   <!-- example: as szx_desk -->     SET ROLE szx_desk first
#   <!-- example: error 42501 -->     the block must fail with this SQLSTATE,
#                                     and the block must show it (a comment)
#   <!-- example: skip REASON -->     not run (needs a file, another server,
#                                     pg_cron ...); the reason is printed
#
# A block without a marker must run without any error.
use strict;
use warnings;
use File::Temp qw(tempfile);

my ($db, @files) = @ARGV;
die "usage: $0 DATABASE [FILE.md ...]\n" unless $db;
my $root = $0 =~ s{/?tools/[^/]*$}{}r;
$root = '.' if $root eq '';
@files = sort glob("$root/docs/*.md") unless @files;

my ($n, $failed) = (0, 0);
for my $file (@files)
{
	open my $fh, '<:encoding(UTF-8)', $file or die "$file: $!";
	my @lines = <$fh>;
	close $fh;
	(my $name = $file) =~ s{^\Q$root\E/}{};
	for (my $i = 0; $i < @lines; $i++)
	{
		next unless $lines[$i] =~ /^(\s*)```sql\s*$/;
		my $indent = $1;
		my $start = $i + 1;
		my $marker = $i > 0 && $lines[$i - 1] =~ /<!--\s*example:\s*(.*?)\s*-->/ ? $1 : '';
		my @block;
		for ($i++; $i < @lines && $lines[$i] !~ /^\s*```\s*$/; $i++)
		{
			push @block, $lines[$i] =~ s/^\Q$indent\E//r;
		}
		my $sql = join('', @block);
		my ($role, $error, $skip);
		for my $clause (split /\s*;\s*/, $marker)
		{
			if ($clause =~ /^as\s+(\w+)$/) { $role = $1 }
			elsif ($clause =~ /^error\s+([0-9A-Z]{5})$/) { $error = $1 }
			elsif ($clause =~ /^skip\b\s*(.*)$/) { $skip = $1 || 'no reason given' }
			elsif ($clause ne '') { $skip = undef; $error = 'BADMK'; }
		}
		$n++;
		my $what = "$name:$start" . ($role ? " as $role" : '') . ($error ? " (error $error)" : '');
		if (defined $skip)
		{
			print "ok $n - $what # skip $skip\n";
			next;
		}
		if (defined $error && $error eq 'BADMK')
		{
			print "not ok $n - $what: unknown marker \"$marker\"\n";
			$failed++;
			next;
		}
		if (defined $error && index($sql, $error) < 0)
		{
			print "not ok $n - $what: the page does not show the expected $error in the block\n";
			$failed++;
			next;
		}
		my ($tfh, $tmp) = tempfile(UNLINK => 1, SUFFIX => '.sql');
		binmode $tfh, ':encoding(UTF-8)';
		print $tfh "\\set ON_ERROR_STOP 1\n\\set VERBOSITY verbose\nBEGIN;\n";
		print $tfh "SET ROLE $role;\n" if $role;
		print $tfh $sql, "\nROLLBACK;\n";
		close $tfh;
		my $out = `psql -X -q -d '$db' -f '$tmp' 2>&1 </dev/null`;
		my $rc = $? >> 8;
		my @errors = $out =~ /ERROR:  ([0-9A-Z]{5}):/g;
		my $ok;
		if (defined $error)
		{
			$ok = $rc != 0 && @errors == 1 && $errors[0] eq $error;
		}
		else
		{
			$ok = $rc == 0 && !@errors && $out !~ /ERROR:/;
		}
		if ($ok)
		{
			print "ok $n - $what\n";
		}
		else
		{
			$failed++;
			print "not ok $n - $what\n";
			print map { "#   $_\n" } grep { /ERROR|DETAIL|HINT|LINE|psql:/ } split /\n/, $out;
		}
	}
}
print "1..$n\n";
exit($failed ? 1 : 0);
