# The audit log by month (docs/audit.md, "Retention"): records of several
# months (written with explicit old times, as change records staged by the
# superuser, chained by the writers like any other) land in their months'
# partitions or, for a month without one, in the default partition; the
# retention purge drops the months past the retention period whole, after
# anchoring the chain at their last record, and audit_verify() passes from
# the anchor; the scheduled job kind audit_retention creates the coming
# months and purges with a job_progress row; a dump restored into a new
# database keeps the months' partitions (not extension members) and the
# verification.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('audit_partitions');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'loyalty'
max_worker_processes = 8
});
$node->start;

# old months first, so that they are a prefix of the chain: 50 and 49
# months ago with partitions of their own, 48 and 37 months ago in the
# default partition, 30 months ago (kept) in the default partition
$node->safe_psql('postgres', q{
    CREATE EXTENSION loyalty;
    SELECT loyalty._audit_partition_ensure(now() - interval '50 months');
    SELECT loyalty._audit_partition_ensure(now() - interval '49 months');
    INSERT INTO loyalty.audit_change_staging (at, login, role, action, purpose)
    SELECT now() - m * interval '1 month' + k * interval '1 second', 'old', 'old', 'old_change', 'crm'
      FROM unnest(ARRAY[50, 49, 48, 37, 30]) m, generate_series(1, 2) k
     ORDER BY m DESC, k;
    SELECT loyalty.store_create('k1', 'apt', 'Partitions', 'bay', 'south', 'Asia/Shanghai');
    SELECT loyalty.staff_create('k2', 'apt_desk', 'apt', 'frontdesk');
    SELECT loyalty.staff_create('k3', 'apt_dba', NULL, 'dba');
    SELECT loyalty.member_enroll('k4', 'apt', '王五', '13833334444');
    UPDATE loyalty.member SET card_no = '800000000011';
});
# the first audited read starts the writers, which chain the staged records first
$node->safe_psql('postgres',
    q{SELECT count(*) FROM loyalty.frontdesk_lookup('800000000011', 'partitions')},
    extra_params => ['-U', 'apt_desk']);
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM loyalty.audit_change_staging})
  or die 'the staged records were never chained';

is($node->safe_psql('postgres', q{
    SELECT string_agg(tableoid::regclass::text || '=' || n, ' ' ORDER BY tableoid::regclass::text)
      FROM (SELECT tableoid, count(*) AS n FROM loyalty.audit_log WHERE login = 'old' GROUP BY 1) s}),
    join(' ', 'loyalty._audit_log_' . $node->safe_psql('postgres',
            q{SELECT to_char(date_trunc('month', (now() - interval '50 months') AT TIME ZONE 'UTC'), 'YYYY_MM')}) . '=2',
        'loyalty._audit_log_' . $node->safe_psql('postgres',
            q{SELECT to_char(date_trunc('month', (now() - interval '49 months') AT TIME ZONE 'UTC'), 'YYYY_MM')}) . '=2',
        'loyalty._audit_log_default=6'),
    'records go to their month\'s partition, or to the default partition');
is($node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.audit_verify()'), '0',
    'the chain verifies across partitions');
is($node->safe_psql('postgres', q{
    SELECT count(*) FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
     WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND c.relname LIKE '\_audit\_log\_%'}),
    '1', 'the months\' partitions are not extension members (only the default partition is)');

# bad input: nothing is written
my ($ret, $out, $err) = $node->psql('postgres',
    q{SELECT * FROM loyalty.audit_retention_purge(false, '1 year')}, extra_params => ['-U', 'apt_dba']);
like($err, qr/kept at least three years/, 'less than three years is refused');
($ret, $out, $err) = $node->psql('postgres',
    q{SELECT * FROM loyalty.audit_retention_purge(NULL)}, extra_params => ['-U', 'apt_dba']);
like($err, qr/must not be null/, 'a null dry_run is refused');
($ret, $out, $err) = $node->psql('postgres',
    q{SELECT * FROM loyalty.audit_retention_purge(true)}, extra_params => ['-U', 'apt_desk']);
isnt($ret, 0, 'a front desk login cannot purge');
is($node->safe_psql('postgres', q{SELECT count(*) FROM loyalty.audit_anchor}), '0', 'nothing was anchored');
is($node->safe_psql('postgres', q{SELECT count(*) FROM loyalty.audit_log WHERE login = 'old'}), '10',
    'nothing was removed');

# the dry run counts, the purge drops the four months past three years
is($node->safe_psql('postgres', q{SELECT records, first_id, last_id FROM loyalty.audit_retention_purge(true)},
        extra_params => ['-U', 'apt_dba']),
    '8|1|8', 'a dry run counts the records of the four months past retention');
is($node->safe_psql('postgres', q{SELECT count(*) FROM loyalty.audit_log WHERE login = 'old'}), '10',
    'a dry run removes nothing');
is($node->safe_psql('postgres', q{SELECT records, first_id, last_id FROM loyalty.audit_retention_purge(false)},
        extra_params => ['-U', 'apt_dba']),
    '8|1|8', 'the purge removes them');
is($node->safe_psql('postgres', q{
    SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'loyalty.audit_log'::regclass AND c.relname <> '_audit_log_default'}),
    '0', 'the old months\' partitions are dropped');
is($node->safe_psql('postgres', q{SELECT min(audit_id), count(*) FILTER (WHERE login = 'old') FROM loyalty.audit_log}),
    '9|2', 'only the months past retention are gone');
is($node->safe_psql('postgres', q{SELECT max(audit_id), sum(records) FROM loyalty.audit_anchor}),
    '8|8', 'the chain is anchored at the last record removed');
is($node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.audit_verify()'), '0',
    'the chain verifies from its anchor after the purge');
$node->safe_psql('postgres',
    q{SELECT count(*) FROM loyalty.frontdesk_lookup('800000000011', 'after purge')},
    extra_params => ['-U', 'apt_desk']);
is($node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.audit_verify()'), '0',
    'the writers go on from the chain\'s head, and it verifies');

# the job: scheduled with the others, the coming months created ahead, a
# job_progress row
like($node->safe_psql('postgres', q{SELECT command FROM loyalty.job_schedule_defaults()
        WHERE job_name = 'loyalty-audit-retention'}),
    qr/audit_retention_purge_batch/, 'the purge is one of the scheduled jobs');
$node->safe_psql('postgres', 'CALL loyalty.audit_retention_purge_batch()', extra_params => ['-U', 'apt_dba']);
is($node->safe_psql('postgres', q{SELECT kind, state, done FROM loyalty.job_progress WHERE kind = 'audit_retention'}),
    'audit_retention|done|0', 'the job ran, with a job_progress row (nothing due)');
is($node->safe_psql('postgres', q{
    SELECT count(*) FROM generate_series(1, 2) m
     WHERE to_regclass('loyalty._audit_log_'
               || to_char(date_trunc('month', (now() + m * interval '1 month') AT TIME ZONE 'UTC'), 'YYYY_MM')) IS NOT NULL}),
    '2', 'the job created the next two months\' partitions');
($ret, $out, $err) = $node->psql('postgres', q{CALL loyalty.audit_retention_purge_batch('1 day')},
    extra_params => ['-U', 'apt_dba']);
like($err, qr/kept at least three years/, 'the job refuses less than three years');

# dump and restore: the partitions come back attached, the chain verifies,
# the writers go on in the restored database
my $records = $node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.audit_log');
my $dump = $node->basedir . '/audit.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump ], 'pg_restore');
is($node->safe_psql('restored', 'SELECT count(*) FROM loyalty.audit_log'), $records,
    'restored: every record');
is($node->safe_psql('restored', q{
    SELECT count(*) FROM pg_inherits i WHERE i.inhparent = 'loyalty.audit_log'::regclass}),
    $node->safe_psql('postgres', q{
    SELECT count(*) FROM pg_inherits i WHERE i.inhparent = 'loyalty.audit_log'::regclass}),
    'restored: the same partitions');
is($node->safe_psql('restored', 'SELECT count(*) FROM loyalty.audit_verify()'), '0',
    'restored: the chain verifies from its anchor');
$node->safe_psql('restored',
    q{SELECT count(*) FROM loyalty.frontdesk_lookup('800000000011', 'restored')},
    extra_params => ['-U', 'apt_desk']);
is($node->safe_psql('restored', q{SELECT count(*) FROM loyalty.audit_log WHERE purpose = 'restored'}), '1',
    'restored: the writers go on');
is($node->safe_psql('restored', 'SELECT count(*) FROM loyalty.audit_verify()'), '0',
    'restored: and the chain verifies');

done_testing();
