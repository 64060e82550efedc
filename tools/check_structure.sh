#!/bin/sh
# The structure rules of the C sources (docs/development.md, "Where a new
# concept goes"), one TAP line per check:
#
#   1. every src/*.c is named concept_*.c (or concept.c) with a concept of
#      the list below (add a new concept here and in docs/development.md);
#   2. every src/*.c opens with a header comment naming the file;
#   3. no import cycle between C files: file A imports file B when A calls a
#      function that B defines (through B's header); the import graph must
#      be acyclic, so that every subsystem can be read, tested and
#      initialised (by _PG_init, src/loyalty.c) after what it uses;
#   4. loyalty.so (if built) exports nothing in the json_* namespace, which
#      jansson and the server share.
#
#   tools/check_structure.sh [SRCDIR]      (default: the tree's src/)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$here/src}
so=$(dirname "$src")/loyalty.so

CONCEPTS="args audit benefit cache crm earning event finance job ledger
liability loyalty member policy privacy replica request reward risk roles
score segment spi tier"

exec perl -e '
use strict; use warnings;
my ($src, $so, $concepts) = @ARGV;
my %concept = map { $_ => 1 } split /\s+/, $concepts;
my @files = sort glob("$src/*.c");
my ($n, $failed) = (0, 0);
sub check { my ($ok, $what, @diag) = @_; $n++;
    print(($ok ? "ok" : "not ok"), " $n - $what\n"); print "# $_\n" for @diag; $failed++ unless $ok; }

# 1 and 2
my (@badname, @nohdr, %text, %defs);
for my $f (@files) {
    my ($name) = $f =~ m{([^/]+)\.c$};
    my ($c) = $name =~ /^([a-z]+)/;
    push @badname, "$name.c" unless $c && $concept{$c};
    open my $fh, "<", $f or die "$f: $!"; local $/; my $t = <$fh>;
    push @nohdr, "$name.c" unless $t =~ m{\A/\*-+\n(?: \*[ \t]*\n)* \*\s+\Q$name\E\.c[ \t]*\n};
    (my $code = $t) =~ s{/\*.*?\*/}{}gs;
    $code =~ s{"(?:\\.|[^"\\])*"}{""}g;
    $text{$name} = $code;
    while ($code =~ /^([A-Za-z_][\w \t*]*)\n([A-Za-z_]\w*)\(/mg) {
        my ($rt, $fn) = ($1, $2);
        next if $rt =~ /^static\b/;
        $defs{$fn} = $name;
    }
}
check(@files > 0 && !@badname, "every C file carries a concept prefix",
      map { "no known concept prefix: $_" } @badname);
check(!@nohdr, "every C file opens with a header comment naming it",
      map { "no header comment: $_" } @nohdr);

# 3: imports and their cycles (Tarjan)
my %edge;
for my $a (keys %text) {
    for my $fn (keys %defs) {
        my $b = $defs{$fn};
        next if $b eq $a || exists $edge{$a}{$b};
        $edge{$a}{$b} = $fn if $text{$a} =~ /\b\Q$fn\E\s*\(/;
    }
}
my ($idx, @st, %on, %ix, %low, @cycles) = (0);
my $visit; $visit = sub { my $v = shift; $ix{$v} = $low{$v} = $idx++; push @st, $v; $on{$v} = 1;
    for my $w (sort keys %{$edge{$v} // {}}) {
        if (!exists $ix{$w}) { $visit->($w); $low{$v} = $low{$w} if $low{$w} < $low{$v} }
        elsif ($on{$w}) { $low{$v} = $ix{$w} if $ix{$w} < $low{$v} } }
    if ($low{$v} == $ix{$v}) { my @c; my $w; do { $w = pop @st; $on{$w} = 0; push @c, $w } while ($w ne $v);
        push @cycles, [sort @c] if @c > 1 } };
$visit->($_) for grep { !exists $ix{$_} } sort keys %text;
my @diag;
for my $c (@cycles) {
    push @diag, "import cycle: @$c";
    for my $a (@$c) { for my $b (@$c) { push @diag, "  $a.c -> $b.c (calls $edge{$a}{$b})" if $edge{$a}{$b} } }
}
my $nedges = 0; $nedges += keys %{$edge{$_}} for keys %edge;
check($nedges > 10 && !@cycles, "no import cycle between C files ($nedges imports)", @diag);

# 4
if (-f $so) {
    my @json = grep { /\s[TDBR]\s+json_/ } `nm -D --defined-only "$so"`;
    chomp @json;
    check(!@json, "loyalty.so exports nothing in the json_* namespace", @json);
} else {
    print "ok ", ++$n, " # skip loyalty.so not built\n";
}
print "1..$n\n";
exit($failed ? 1 : 0);
' "$src" "$so" "$CONCEPTS"
