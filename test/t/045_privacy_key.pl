# The key file (issue 12.8, issue 14.6; docs/privacy.md "The key file"):
# it lives outside the data directory (loyalty.key_file; a key inside the
# data directory or a relative name is refused unless
# loyalty.key_file_in_datadir), a key is made only by loyalty.key_create(),
# the database records its fingerprint, and a missing, different, damaged
# or world-readable key file is an error with a hint, never a new key.  A
# pg_basebackup of the data directory does not carry the key; a server
# restored from it opens nothing until the right key file is put back.
use strict;
use warnings;
use Digest::SHA qw(sha256_hex);
use File::Copy qw(copy move);
use File::Find;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('key');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'loyalty'\n");   # the audit writer pool
$node->start;
my $keydir = PostgreSQL::Test::Utils::tempdir();
my $keyfile = "$keydir/loyalty.key";
my $datadir = $node->data_dir;

# fails(db, sql, sqlstate, message re, name): the statement fails so
sub fails
{
	my ($n, $db, $sql, $state, $re, $name) = @_;
	my ($ret, $out, $err) = $n->psql($db, $sql, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	isnt($ret, 0, "$name: fails");
	like($err, qr/ERROR:\s+$state: $re/, "$name: $state");
	return $err;
}

# reconfigure(settings): ALTER SYSTEM and reload
sub reconfigure
{
	my (%set) = @_;
	$node->safe_psql('postgres', join '', map {
		defined $set{$_} ? "ALTER SYSTEM SET $_ = '$set{$_}';\n" : "ALTER SYSTEM RESET $_;\n"
	} sort keys %set);
	$node->reload;
}

$node->safe_psql('postgres', 'CREATE EXTENSION loyalty');
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN');

# no setting: no key, and nothing is made
my $err = fails($node, 'postgres', q{SELECT loyalty.pseudonym(gen_random_uuid())}, '55000',
	'loyalty.key_file is not set', 'a keyed function without loyalty.key_file');
like($err, qr/HINT:.*loyalty\.key_create/, 'the hint says how to make the key');

# inside the data directory: refused, whether named absolutely or relatively
reconfigure('loyalty.key_file' => "$datadir/loyalty.key");
fails($node, 'postgres', q{SELECT loyalty.key_create()}, '55000',
	'the loyalty key file ".*" is inside the data directory', 'a key file in the data directory');
reconfigure('loyalty.key_file' => "$datadir/global/loyalty.key");
fails($node, 'postgres', q{SELECT loyalty.key_create()}, '55000',
	'the loyalty key file ".*" is inside the data directory', 'a key file in a subdirectory of the data directory');
reconfigure('loyalty.key_file' => 'loyalty.key');
fails($node, 'postgres', q{SELECT loyalty.key_create()}, '55000',
	'loyalty.key_file must be an absolute path outside the data directory', 'a relative key file name');
ok(!-e "$datadir/loyalty.key" && !-e "$datadir/global/loyalty.key", 'no key file was made in the data directory');

# ... unless told otherwise (tests, demos): another database takes such a key
reconfigure('loyalty.key_file' => "$datadir/loyalty.key", 'loyalty.key_file_in_datadir' => 'on');
$node->safe_psql('postgres', 'CREATE DATABASE indata');
$node->safe_psql('indata', 'CREATE EXTENSION loyalty');
is($node->safe_psql('indata', q{SELECT loyalty.key_create()}), 'created',
	'loyalty.key_file_in_datadir = on allows a key file in the data directory');
is($node->safe_psql('indata', q{SELECT length(loyalty.pseudonym(gen_random_uuid()))}), '32', 'and it is used');
$node->safe_psql('postgres', 'DROP DATABASE indata');
unlink "$datadir/loyalty.key";

# outside the data directory: still no key until key_create
reconfigure('loyalty.key_file' => undef, 'loyalty.key_file_in_datadir' => undef);
$node->append_conf('postgresql.conf', "loyalty.key_file = '$keyfile'\n");
$node->reload;
$err = fails($node, 'postgres', q{SELECT loyalty.pseudonym(gen_random_uuid())}, '55000',
	'no loyalty key is recorded in this database', 'a keyed function before key_create');
ok(!-e $keyfile, 'first use makes no key file');
fails($node, 'postgres', q{SET ROLE plain; SELECT loyalty.key_create()}, '42501',
	'permission denied for (schema loyalty|function key_create)', 'key_create by a login that is not superuser');
is($node->safe_psql('postgres', q{SELECT count(*) FROM loyalty.key_fingerprint}), '0', 'nothing recorded');
fails($node, 'postgres', q{SET ROLE plain; SHOW loyalty.key_file}, '42501',
	'.*', 'the key file setting is hidden from a login that is not superuser');

is($node->safe_psql('postgres', q{SELECT loyalty.key_create()}), 'created', 'key_create makes the key');
ok(-f $keyfile, 'the key file is where loyalty.key_file says');
is(-s $keyfile, 64, 'it holds 64 bytes');
is((stat($keyfile))[2] & 07777, 0600, 'readable by the server only');
is($node->safe_psql('postgres', q{SELECT length(fingerprint) FROM loyalty.key_fingerprint}), '32',
	'the database records the fingerprint');
fails($node, 'postgres', q{SELECT loyalty.key_create()}, '55000',
	'a loyalty key is recorded in this database already', 'a second key_create');

# data sealed with the key
$node->safe_psql('postgres', q{
    CREATE TABLE sealed AS
    SELECT id, loyalty._identity_seal(id, 'id_number', 'E12345678') AS s, loyalty.pseudonym(id) AS p
      FROM (SELECT gen_random_uuid() AS id) x});
my $check = q{SELECT loyalty._identity_open(id, 'id_number', s) = 'E12345678' AND loyalty.pseudonym(id) = p FROM sealed};
is($node->safe_psql('postgres', $check), 't', 'sealed data opens, the pseudonym is stable');
# a parallel worker reads and checks the key too (BI views run parallel plans)
is($node->safe_psql('postgres', qq{SET force_parallel_mode = on; SET parallel_setup_cost = 0; $check}), 't',
	'and so in a parallel worker');

# the fingerprint is not a plain hash of the key
open(my $fh, '<:raw', $keyfile) or die;
my $key = do { local $/; <$fh> };
close $fh;
my $hexkey = unpack('H*', $key);
my $fp = $node->safe_psql('postgres', q{SELECT encode(fingerprint, 'hex') FROM loyalty.key_fingerprint});
isnt($fp, sha256_hex($key), 'the fingerprint is not the hash of the key');
isnt($fp, sha256_hex(substr($key, 32)), 'nor the hash of its HMAC half');

# a base backup of the data directory does not carry the key
$node->backup('base');
my $backup = $node->backup_dir . '/base';
my @carrying;
find(sub {
		return unless -f $_ && -s $_ >= 64;
		open(my $f, '<:raw', $_) or return;
		my $c = do { local $/; <$f> };
		close $f;
		push @carrying, $File::Find::name if index($c, $key) >= 0;
	}, $backup);
is(scalar(@carrying), 0, 'no file of the pg_basebackup holds the key') or diag(join "\n", @carrying);

# a missing key file: an error with a hint, and no new key
move($keyfile, "$keyfile.away") or die;
$err = fails($node, 'postgres', $check, '58P01', 'could not open the loyalty key file', 'the key file missing');
like($err, qr/HINT:.*Restore the key file/, 'the hint says to restore it');
fails($node, 'postgres', q{SELECT loyalty.pseudonym(gen_random_uuid())}, '58P01',
	'could not open the loyalty key file', 'no pseudonym without the key');
ok(!-e $keyfile, 'no new key file was made');
fails($node, 'postgres', q{SELECT loyalty.key_create()}, '55000',
	'a loyalty key is recorded in this database already', 'key_create does not replace a missing key');
ok(!-e $keyfile, 'still no key file');

# a different key: an error, whatever its bytes
open($fh, '>:raw', $keyfile) or die;
print $fh pack('C*', map { int(rand(256)) } 1 .. 64);
close $fh;
chmod 0600, $keyfile;
$err = fails($node, 'postgres', $check, '55000', 'the loyalty key file ".*" is not the key of this database',
	'another key file');
like($err, qr/HINT:.*Restore the key file/, 'the hint says to restore the right one');

# a damaged or world-readable key file
open($fh, '>:raw', $keyfile) or die;
print $fh substr($key, 0, 40);
close $fh;
chmod 0600, $keyfile;
fails($node, 'postgres', $check, 'XX001', 'the loyalty key file ".*" is damaged', 'a short key file');
copy("$keyfile.away", $keyfile) or die;
chmod 0644, $keyfile;
fails($node, 'postgres', $check, '55000', 'the loyalty key file ".*" is readable by others',
	'a key file others may read');

# the right key back: everything opens as before
chmod 0600, $keyfile;
is($node->safe_psql('postgres', $check), 't', 'the right key file back: sealed data opens, pseudonyms unchanged');

# a server made from the base backup: nothing opens until its key file is
# put back (where its own loyalty.key_file says), and nothing is made
my $restored = PostgreSQL::Test::Cluster->new('restored');
$restored->init_from_backup($node, 'base');
my $keydir2 = PostgreSQL::Test::Utils::tempdir();
$restored->append_conf('postgresql.conf', "loyalty.key_file = '$keydir2/loyalty.key'\n");
$restored->start;
fails($restored, 'postgres', $check, '58P01', 'could not open the loyalty key file',
	'the restored server without the key file');
ok(!-e "$keydir2/loyalty.key", 'the restored server made no key');
copy($keyfile, "$keydir2/loyalty.key") or die;
chmod 0600, "$keydir2/loyalty.key";
is($restored->safe_psql('postgres', $check), 't', 'with the key file back it opens everything');
$restored->stop;

# the key is in no log
my $log = slurp_file($node->logfile) . slurp_file($restored->logfile);
unlike($log, qr/\Q$hexkey\E/i, 'the key is not in the server logs');
like(slurp_file($node->logfile), qr/loyalty key of database "postgres" created/, 'the key creation is logged');

$node->stop;
done_testing();
