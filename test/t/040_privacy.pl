# Privacy over real connections: store logins cannot become another store,
# COPY gives them nothing the views do not, the audit record of a read
# survives the reader's rollback and its backend's death, a lookup's reach
# ends with its transaction, the lookup budget survives rollbacks and
# REPEATABLE READ, EXPLAIN is refused from a session's first statement on,
# and the key file is private to the server and never logged.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('privacy');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'loyalty'\n");   # the audit writer pool
my $keyfile = PostgreSQL::Test::Utils::tempdir() . '/loyalty.key';   # outside the data directory
$node->append_conf('postgresql.conf', "loyalty.key_file = '$keyfile'\n");
$node->start;

$node->safe_psql('postgres', q{
    CREATE EXTENSION loyalty;
    SELECT loyalty.key_create();
    SELECT loyalty.store_create(gen_random_uuid()::text, 'pta', 'A', 'bay', 'south', 'Asia/Shanghai');
    SELECT loyalty.store_create(gen_random_uuid()::text, 'ptb', 'B', 'bay', 'east', 'Asia/Shanghai');
    SELECT loyalty.staff_create(gen_random_uuid()::text, 'pt_a_desk', 'pta', 'frontdesk');
    SELECT loyalty.staff_create(gen_random_uuid()::text, 'pt_b_desk', 'ptb', 'frontdesk');
    SELECT loyalty.staff_create(gen_random_uuid()::text, 'pt_b_brute', 'ptb', 'frontdesk');
    SELECT loyalty.member_enroll(gen_random_uuid()::text, 'pta', '张三丰', '13812345678');
});
my $m = $node->safe_psql('postgres', 'SELECT member_id FROM loyalty.member');
my $card = $node->safe_psql('postgres', 'SELECT card_no FROM loyalty.member');
# (the test cluster logs every statement: the caller's own SQL text is out
# of the extension's hands, so this one call is not logged)
$node->safe_psql('postgres', qq{SET log_statement = 'none';
    SELECT loyalty.identity_set('$m', 'passport', 'E99887766')});

my @a = (extra_params => ['-U', 'pt_a_desk']);
my ($ret, $out, $err);

($ret, $out, $err) = $node->psql('postgres', 'SET ROLE pt_b_desk', @a);
like($err, qr/permission denied to set role/, 'SET ROLE to another store login is refused');
($ret, $out, $err) = $node->psql('postgres', 'SET SESSION AUTHORIZATION pt_b_desk', @a);
like($err, qr/permission denied/, 'SET SESSION AUTHORIZATION is refused');
($ret, $out, $err) = $node->psql('postgres', 'COPY loyalty.member_profile TO STDOUT', @a);
like($err, qr/permission denied for table member_profile/, 'COPY of a base table is refused');
is($node->safe_psql('postgres', 'COPY (SELECT phone FROM loyalty.member_frontdesk) TO STDOUT', @a),
    '****678', 'COPY of the view gives the masked values only');

# a read in a transaction that rolls back
$node->safe_psql('postgres', qq{
    BEGIN;
    SELECT * FROM loyalty.frontdesk_lookup('$card', 'rollback test');
    ROLLBACK;
}, @a);
is($node->safe_psql('postgres',
        q{SELECT count(*) FROM loyalty.audit_log WHERE purpose = 'rollback test'}),
    '1', 'the audit record of a rolled back read is kept');

# a read whose backend is killed before it commits
my $session = $node->background_psql('postgres', on_error_stop => 0,
    extra_params => ['-U', 'pt_b_desk']);
$session->query_safe('BEGIN');
$session->query_safe(qq{SELECT full_name FROM loyalty.frontdesk_lookup('$card', 'killed reader')});
my $pid = $session->query_safe('SELECT pg_backend_pid()');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$session->quit;
is($node->safe_psql('postgres',
        q{SELECT login || '/' || store_code FROM loyalty.audit_log WHERE purpose = 'killed reader'}),
    'pt_b_desk/ptb', 'the audit record of a killed reader is kept');
is($node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.audit_verify()'), '0',
    'the hash chain is intact');

# store B reaches A's member only through a lookup, for one transaction
my @b = (extra_params => ['-U', 'pt_b_desk']);
is($node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.member_frontdesk', @b),
    '0', 'store B does not list store A\'s member');
is($node->safe_psql('postgres', qq{BEGIN;
    SELECT count(*) FROM loyalty.frontdesk_lookup('$card', 'reach');
    SELECT count(*) FROM loyalty.member_frontdesk;
    COMMIT;}, @b),
    "1\n1", 'within the lookup\'s transaction the view shows the guest');
is($node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.member_frontdesk', @b),
    '0', 'the next transaction no longer does');

# EXPLAIN: refused for a store login, also as the first statement of a
# session (the statement that loads the library)
($ret, $out, $err) = $node->psql('postgres',
    q{EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM loyalty.stays WHERE check_in > '2000-01-01'}, @b);
like($err, qr/permission denied to explain queries/, 'EXPLAIN ANALYZE as a session\'s first statement is refused');
unlike($out, qr/Rows Removed/, 'and prints no plan');
($ret, $out, $err) = $node->psql('postgres',
    q{SELECT count(*) FROM loyalty.member_frontdesk; EXPLAIN SELECT * FROM loyalty.member_frontdesk}, @b);
like($err, qr/permission denied to explain queries/, 'EXPLAIN later in the session is refused');
is($node->safe_psql('postgres', q{EXPLAIN (COSTS OFF) SELECT 1}) ne '', 1,
    'a superuser keeps EXPLAIN');

# the lookup budget (3 here) is counted from the audit trail: neither a
# rollback nor a REPEATABLE READ snapshot gives the budget back
$node->safe_psql('postgres', "LOAD 'loyalty';\nALTER SYSTEM SET loyalty.lookup_budget = 3;");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
my @x = (extra_params => ['-U', 'pt_b_brute']);
for my $i (1 .. 2)
{
    $node->safe_psql('postgres', qq{BEGIN;
        SELECT count(*) FROM loyalty.frontdesk_lookup('$card', 'budget $i');
        ROLLBACK;}, @x);
}
($ret, $out, $err) = $node->psql('postgres', qq{BEGIN ISOLATION LEVEL REPEATABLE READ;
    SELECT 1;
    SELECT count(*) FROM loyalty.frontdesk_lookup('$card', 'budget 3');
    SELECT count(*) FROM loyalty.frontdesk_lookup('$card', 'budget 4');
    ROLLBACK;}, @x);
like($err, qr/lookup budget exceeded/,
    'the fourth lookup is refused, in a REPEATABLE READ transaction after two rolled back ones');
($ret, $out, $err) = $node->psql('postgres', qq{SELECT count(*) FROM loyalty.frontdesk_lookup('$card', 'budget 5')}, @x);
like($err, qr/lookup budget exceeded/, 'and in the next session');
is($node->safe_psql('postgres', q{SELECT string_agg(action, ',' ORDER BY audit_id) FROM loyalty.audit_log WHERE role = 'pt_b_brute'}),
    'lookup,lookup,lookup,lookup_refused,lookup_refused', 'hits and refusals are on record despite the rollbacks');
is($node->safe_psql('postgres',
        q{SELECT count(*) FROM loyalty.event_outbox WHERE kind = 'lookup_budget_exceeded' AND payload ->> 'role' = 'pt_b_brute'}),
    '1', 'one alert event, committed although the refused caller rolled back');
$node->safe_psql('postgres', "LOAD 'loyalty';\nALTER SYSTEM RESET loyalty.lookup_budget;");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');

# the key file: private to the server, its content nowhere in SQL or logs
# (test/t/045_privacy_key.pl: outside the data directory, never replaced)
ok(-f $keyfile, 'the key file exists');
is((stat($keyfile))[2] & 07777, 0600, 'the key file is readable by the server only');
open(my $fh, '<:raw', $keyfile) or die;
my $key = do { local $/; <$fh> };
close $fh;
my $hexkey = unpack('H*', $key);
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$hexkey\E/i, 'the key is not in the server log');
unlike($log, qr/E99887766/, 'the ID number is not in the server log');

# encrypted data survives a restart (the key is read back from the file)
$node->restart;
is($node->safe_psql('postgres', qq{SELECT loyalty.identity_matches('$m', 'E99887766')}, @a),
    't', 'verification works after a restart');

$node->stop;
done_testing();
