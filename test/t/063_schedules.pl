# Schedules: loyalty.job_schedule(gen_random_uuid()::text) installs the batch jobs in pg_cron as
# the calling DBA, lists them, replaces them when called again, and removes
# them; every scheduled command is valid and runs as that DBA.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_cron,loyalty'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 32
});
$node->start;

my ($ret, $out, $err) = $node->psql('postgres', q{CREATE EXTENSION loyalty; SELECT loyalty.job_scheduled()});
like($err, qr/pg_cron is not installed in this database/, 'a clear error without pg_cron');

$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_cron;
	GRANT USAGE ON SCHEMA cron TO loyalty_dba;
	SELECT loyalty.staff_create(gen_random_uuid()::text, 'ops_dba', NULL, 'dba');
	SELECT loyalty.store_create(gen_random_uuid()::text, 'cro', 'Cron Hotel', 'bay', 'south', 'Asia/Shanghai');
	SELECT loyalty.staff_create(gen_random_uuid()::text, 'cron_desk', 'cro', 'frontdesk');
});

my @dba = (extra_params => [ '-U', 'ops_dba' ]);
# the expected jobs come from job_schedule_defaults(), so a branch that adds a
# job does not have to edit the counts here; the names each branch relies on
# are checked one by one below
my $njobs = $node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.job_schedule_defaults()', @dba);
is($node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.job_schedule(gen_random_uuid()::text)', @dba),
	$njobs, "every default job scheduled ($njobs)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM loyalty.job_schedule(gen_random_uuid()::text)', @dba),
	$njobs, 'scheduling again replaces them');
is($node->safe_psql('postgres',
		q{SELECT string_agg(job_name || '@' || run_as, ' ' ORDER BY job_name) FROM loyalty.job_scheduled()}, @dba),
	$node->safe_psql('postgres',
		q{SELECT string_agg(job_name || '@ops_dba', ' ' ORDER BY job_name) FROM loyalty.job_schedule_defaults()}, @dba),
	'listed, each running as the DBA who scheduled it');
my $listed = ' ' . $node->safe_psql('postgres',
	q{SELECT string_agg(job_name, ' ' ORDER BY job_name) FROM loyalty.job_scheduled()}, @dba) . ' ';
for my $j (qw(loyalty-activate-due loyalty-case-escalate loyalty-expire loyalty-requalify loyalty-retention
	loyalty-scores loyalty-segments loyalty-voucher-expire))
{
	like($listed, qr/ \Q$j\E /, "$j is scheduled");
}

($ret, $out, $err) = $node->psql('postgres', 'SELECT loyalty.job_schedule(gen_random_uuid()::text)',
	extra_params => [ '-U', 'cron_desk' ]);
like($err, qr/permission denied/, 'a front desk cannot schedule jobs');

# every command the jobs run is valid and allowed for the DBA
my @commands = split /\n/, $node->safe_psql('postgres',
	q{SELECT command FROM loyalty.job_scheduled() ORDER BY job_name}, @dba);
for my $c (@commands)
{
	my ($r, $o, $e) = $node->psql('postgres', $c, @dba);
	is($r, 0, "job command runs as the DBA: $c") or diag($e);
}

is($node->safe_psql('postgres', 'SELECT loyalty.job_unschedule(gen_random_uuid()::text)', @dba), $njobs, 'removed');
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job WHERE jobname LIKE 'loyalty-%'}),
	'0', 'no job left');

# every call above that changes something left its change record (issue 13,
# docs/audit.md): scheduling, unscheduling, and each batch procedure
my $actions = ' ' . $node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT a.action, ' ' ORDER BY a.action)
	  FROM (SELECT action FROM loyalty.audit_change_staging
	        UNION ALL SELECT action FROM loyalty.audit_log) a}) . ' ';
for my $call ('job_schedule', 'job_unschedule', map { /^CALL loyalty\.(\w+)\(/ ? $1 : () } @commands)
{
	like($actions, qr/ \Q$call\E /, "$call is in the audit trail");
}

$node->stop;
done_testing();
