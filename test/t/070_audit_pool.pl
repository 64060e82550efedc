# The audit writer pool (docs/audit.md): 200 concurrent auditing sessions
# with the default max_worker_processes = 8 all succeed (no worker per
# session); a rolled-back read is recorded; a reader killed while it waits
# for its record is never served, and its record is still written; with the
# library not preloaded (or loyalty.audit_mode = 'session'), audited reads
# are still answered and recorded, synchronously, by a writer per session,
# also when the reader rolls back; a change's record commits and rolls back
# with the change; the chain verifies across both kinds of writers.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('audit_pool');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'loyalty'
max_worker_processes = 8
max_connections = 230
loyalty.audit_writers = 2
});
$node->start;

$node->safe_psql('postgres', q{
    CREATE EXTENSION loyalty;
    SELECT loyalty.store_create('k1', 'apl', 'Pool', 'bay', 'south', 'Asia/Shanghai');
    SELECT loyalty.staff_create('k2', 'apl_desk', 'apl', 'frontdesk');
    SELECT loyalty.staff_create('k3', 'apl_crm', NULL, 'crm');
    SELECT loyalty.member_enroll('k4', 'apl', '李四', '13811112222');
    -- a known card to look up (lookups are by card, docs/privacy.md), and a
    -- lookup budget above the 600 + 30 lookups this test makes as one login
    UPDATE loyalty.member SET card_no = '800000000011';
    ALTER ROLE apl_desk SET loyalty.lookup_budget = 100000;
});
my $m = $node->safe_psql('postgres', 'SELECT member_id FROM loyalty.member');

# 200 concurrent sessions of one front desk login, 3 audited lookups each
$node->pgbench('-n -c 200 -j 4 -t 3 -U apl_desk', 0,
    [qr{number of transactions actually processed: 600/600}],
    [qr{\A(?!.*(?:ERROR|error))}s],
    '200 concurrent auditing sessions: 600 of 600 audited lookups answered',
    { 'lookup' => q{SELECT count(*) FROM loyalty.frontdesk_lookup('800000000011', 'pool test');} });
is($node->safe_psql('postgres',
        q{SELECT count(*) FROM loyalty.audit_log WHERE purpose = 'pool test' AND login = 'apl_desk'}),
    '600', 'every answered lookup is on record');
ok($node->safe_psql('postgres',
        q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'loyalty audit writer'}) <= 2,
    'no more writers than loyalty.audit_writers');

# a read in a transaction that rolls back stays on record
$node->safe_psql('postgres', q{
    BEGIN;
    SELECT * FROM loyalty.frontdesk_lookup('800000000011', 'pool rollback');
    ROLLBACK;
}, extra_params => ['-U', 'apl_desk']);
is($node->safe_psql('postgres',
        q{SELECT count(*) FROM loyalty.audit_log WHERE purpose = 'pool rollback'}),
    '1', 'a rolled-back read is recorded');

# a reader killed while it waits for its record: the writers are held up by
# a lock on the log, the reader waits, is terminated; it got no answer, and
# its record is written once the lock goes
my $blocker = $node->background_psql('postgres');
$blocker->query_safe('BEGIN');
$blocker->query_safe('LOCK TABLE loyalty.audit_log IN SHARE MODE');
my $reader = $node->background_psql('postgres', on_error_stop => 0,
    extra_params => ['-U', 'apl_desk']);
my $rpid = $reader->query_safe('SELECT pg_backend_pid()');
$reader->query_until(qr/sent/, qq{\\echo sent\nSELECT 'ANSWER:' || full_name FROM loyalty.frontdesk_lookup('800000000011', 'killed waiting');\n});
$node->poll_query_until('postgres',
    qq{SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $rpid})
  or die 'the reader never waited for its record';
$node->safe_psql('postgres', "SELECT pg_terminate_backend($rpid)");
$node->poll_query_until('postgres',
    qq{SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $rpid})
  or die 'the reader did not exit';
unlike($reader->{stdout}, qr/ANSWER:/, 'the killed reader was not served');
eval { $reader->quit };    # its psql has gone with the connection
$blocker->query_safe('COMMIT');
$blocker->quit;
$node->poll_query_until('postgres',
    q{SELECT count(*) = 1 FROM loyalty.audit_log WHERE purpose = 'killed waiting'})
  or die 'the killed reader\'s record never arrived';
pass('the killed reader\'s record is written');

# a change's record commits and rolls back with the change
$node->safe_psql('postgres', qq{
    BEGIN;
    SELECT loyalty._audit_change('$m', 'pool_change', 'crm', '{"n": 1}');
    ROLLBACK;
    SELECT loyalty._audit_change('$m', 'pool_change', 'crm', '{"n": 2}');
});
is($node->safe_psql('postgres', qq{SELECT string_agg(detail->>'n', ',')
        FROM loyalty.audit_member('$m') WHERE action = 'pool_change'}),
    '2', 'only the committed change is recorded');
$node->poll_query_until('postgres',
    q{SELECT count(*) = 0 FROM loyalty.audit_change_staging})
  or die 'the staged change was never chained';
is($node->safe_psql('postgres',
        q{SELECT count(*) FROM loyalty.audit_log WHERE action = 'pool_change'}),
    '1', 'the writers chain the staged change');
is($node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.audit_verify()'), '0',
    'the hash chain verifies');

# DROP DATABASE is not kept busy by the writers of that database
$node->safe_psql('postgres', 'CREATE DATABASE audit_drop');
$node->safe_psql('audit_drop', q{
    CREATE EXTENSION loyalty;
    -- three records of four years ago, chained as a writer chains them
    DO $$
    DECLARE h bytea; t timestamptz := now() - interval '4 years';
    BEGIN
        FOR i IN 1..3 LOOP
            INSERT INTO loyalty.audit_log (audit_id, at, login, role, action, purpose, prev_hash, hash)
            VALUES (i, t, 'old', 'old', 'lookup', 'old', h,
                    loyalty._audit_hash(h, i, t, 'old', 'old', NULL, NULL, NULL, 'lookup', NULL, 'old', NULL))
            RETURNING hash INTO h;
        END LOOP;
    END $$;
    SELECT loyalty.store_create('k1', 'apd', 'Drop', 'bay', 'south', 'Asia/Shanghai');
    SELECT loyalty.staff_create('k2', 'apd_desk', 'apd', 'frontdesk');
    SELECT loyalty.member_enroll('k4', 'apd', '王五', '13833334444');
    UPDATE loyalty.member SET card_no = '800000000029';
});
$node->safe_psql('audit_drop',
    q{SELECT count(*) FROM loyalty.frontdesk_lookup('800000000029', 'drop test')},
    extra_params => ['-U', 'apd_desk']);

# retention: the records older than the period go, the chain verifies from
# its anchor, and the writers go on from it
is($node->safe_psql('audit_drop', 'SELECT count(*) FROM loyalty.audit_verify()'), '0',
    'retention: the chain with old records verifies');
is($node->safe_psql('audit_drop', 'SELECT records, first_id, last_id FROM loyalty.audit_retention_purge(true)'),
    '3|1|3', 'retention: a dry run counts the three old records');
is($node->safe_psql('audit_drop', 'SELECT count(*) FROM loyalty.audit_log'),
    $node->safe_psql('audit_drop', 'SELECT max(audit_id) FROM loyalty.audit_log'), 'retention: a dry run removes nothing');
my ($rret, $rout, $rerr) = $node->psql('audit_drop', q{SELECT * FROM loyalty.audit_retention_purge(false, '1 year')});
like($rerr, qr/kept at least three years/, 'retention: less than three years is refused');
is($node->safe_psql('audit_drop', 'SELECT records FROM loyalty.audit_retention_purge(false)'),
    '3', 'retention: the purge removes the three old records');
is($node->safe_psql('audit_drop', q{SELECT audit_id, records FROM loyalty.audit_anchor}),
    '3|3', 'retention: the chain is anchored at the last record removed');
is($node->safe_psql('audit_drop', q{SELECT min(audit_id), count(*) FILTER (WHERE login = 'old') FROM loyalty.audit_log}),
    '4|0', 'retention: only the old records are gone');
is($node->safe_psql('audit_drop', 'SELECT count(*) FROM loyalty.audit_verify()'), '0',
    'retention: the chain verifies from its anchor after the purge');
$node->safe_psql('audit_drop',
    q{SELECT count(*) FROM loyalty.frontdesk_lookup('800000000029', 'after purge')},
    extra_params => ['-U', 'apd_desk']);
is($node->safe_psql('audit_drop', q{SELECT count(*) FROM loyalty.audit_log WHERE purpose = 'after purge'}), '1',
    'retention: the writers go on after a purge');
is($node->safe_psql('audit_drop', 'SELECT count(*) FROM loyalty.audit_verify()'), '0',
    'retention: and the chain still verifies');
$node->safe_psql('audit_drop', q{SELECT loyalty.staff_create('k5', 'apd_dba', NULL, 'dba')});
($rret, $rout, $rerr) = $node->psql('audit_drop', q{SELECT * FROM loyalty.audit_retention_purge(true)},
    extra_params => ['-U', 'apd_desk']);
like($rerr, qr/permission denied|42501|not allowed|department/i, 'retention: a front desk login cannot purge');
is($node->safe_psql('audit_drop', q{SELECT records FROM loyalty.audit_retention_purge(true)},
    extra_params => ['-U', 'apd_dba']), '0', 'retention: a DBA login can, nothing is due');

$node->safe_psql('postgres', 'DROP DATABASE audit_drop');
pass('a database with running writers can be dropped');

# loyalty.audit_mode = 'session': a writer of the session's own, even
# with the pool there
$node->safe_psql('postgres', q{ALTER ROLE apl_desk SET loyalty.audit_mode = 'session'});
my $sess = $node->background_psql('postgres', extra_params => ['-U', 'apl_desk']);
is($sess->query_safe(q{SELECT count(*) FROM loyalty.frontdesk_lookup('800000000011', 'session mode')}),
    '1', 'audit_mode session: the read is answered');
is($node->safe_psql('postgres',
        q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'loyalty audit session writer'}),
    '1', 'audit_mode session: by a writer of the session');
$sess->quit;
is($node->safe_psql('postgres',
        q{SELECT count(*) FROM loyalty.audit_log WHERE purpose = 'session mode'}),
    '1', 'audit_mode session: the read is recorded');
$node->safe_psql('postgres', q{ALTER ROLE apl_desk RESET loyalty.audit_mode});

# without the library preloaded: no pool, a writer per auditing session,
# each read committed on its own before it is answered
$node->stop;
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
$node->start;
is($node->safe_psql('postgres', q{SHOW shared_preload_libraries}), '', 'not preloaded');
is($node->safe_psql('postgres',
        q{SELECT full_name FROM loyalty.frontdesk_lookup('800000000011', 'no pool')},
        extra_params => ['-U', 'apl_desk']),
    '****', 'without the pool an audited read is answered (the name masked)');
is($node->safe_psql('postgres', q{SELECT count(*) FROM loyalty.audit_log WHERE purpose = 'no pool'}),
    '1', 'and recorded, before it was answered');
$node->safe_psql('postgres', q{
    BEGIN;
    SELECT * FROM loyalty.frontdesk_lookup('800000000011', 'no pool rollback');
    ROLLBACK;
}, extra_params => ['-U', 'apl_desk']);
is($node->safe_psql('postgres',
        q{SELECT count(*) FROM loyalty.audit_log WHERE purpose = 'no pool rollback'}),
    '1', 'without the pool a rolled-back read is still recorded');
# 6 sessions at once, 3 lookups each: each has a writer of its own
$node->pgbench('-n -c 6 -j 2 -t 3 -U apl_desk', 0,
    [qr{number of transactions actually processed: 18/18}],
    [qr{\A(?!.*(?:ERROR|error))}s],
    'without the pool: 6 concurrent auditing sessions answered',
    { 'lookup_session' => q{SELECT count(*) FROM loyalty.frontdesk_lookup('800000000011', 'no pool bench');} });
is($node->safe_psql('postgres',
        q{SELECT count(*) FROM loyalty.audit_log WHERE purpose = 'no pool bench'}),
    '18', 'without the pool: every answered lookup is on record');
# a committed change is chained by the next audited read's writer
$node->safe_psql('postgres', qq{SELECT loyalty._audit_change('$m', 'pool_change', 'crm', '{"n": 3}')});
$node->safe_psql('postgres',
    q{SELECT count(*) FROM loyalty.frontdesk_lookup('800000000011', 'no pool sweep')},
    extra_params => ['-U', 'apl_desk']);
is($node->safe_psql('postgres', q{SELECT count(*) FROM loyalty.audit_change_staging}), '0',
    'without the pool a session writer chains the staged changes');
is($node->safe_psql('postgres',
        q{SELECT string_agg(detail->>'n', ',' ORDER BY audit_id) FROM loyalty.audit_log WHERE action = 'pool_change'}),
    '2,3', 'both committed changes are on the chain');
is($node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.audit_verify()'), '0',
    'the hash chain verifies across pool and session writers');

done_testing();
