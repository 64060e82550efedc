# Long jobs (docs/operations.md, "Long jobs and their progress"): a job
# waiting inside a batch shows its committed progress to other sessions;
# a cancelled job is recorded as failed with its error; a job whose backend
# is killed shows as abandoned at once and is recorded so by the next job
# of its kind; a store re-sync (initial table copy) shows as a resync row.
# No sleeps: row and table locks hold the jobs, poll_query_until watches.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('jobs');
$node->init(allows_streaming => 'logical');
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'loyalty'\n");   # the audit writer pool
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION loyalty;
	SELECT loyalty.store_create(gen_random_uuid()::text, 'job', 'Job Hotel', 'bay', 'south', 'Asia/Shanghai');
	SELECT loyalty.staff_create(gen_random_uuid()::text, 'job_dba', NULL, 'dba');
	SELECT count(*) FROM (
	  SELECT loyalty.points_accrue('tap-job-' || i, (loyalty.enroll('job', 'J' || i)).member_id, 'job', 100, 'stay', pending => true, activate_at => now() - interval '1 minute')
	    FROM generate_series(1, 3) i) x;
});
my @dba = (extra_params => [ '-U', 'job_dba' ]);
my $last = $node->safe_psql('postgres', 'SELECT member_id FROM loyalty.point_lot ORDER BY member_id DESC LIMIT 1');
my $progress = q{SELECT state || ' ' || done || '/' || total FROM loyalty.job_progress
                  WHERE kind = 'activate' ORDER BY started_at DESC LIMIT 1};

# the last member's balance row is held: the job waits in its third batch
my $blocker = $node->background_psql('postgres', on_error_stop => 0);
$blocker->query_safe(
	"BEGIN; SELECT 1 FROM loyalty.point_balance WHERE member_id = '$last' FOR UPDATE;");

sub start_job
{
	my $job = $node->background_psql('postgres', on_error_stop => 0, @dba);
	$job->query_until(qr/started/, "\\echo started\nCALL loyalty.points_activate_due_batch(batch_size => 1);\n");
	$node->poll_query_until('postgres', "SELECT ($progress) = 'running 2/3'")
	  or die 'the job never reached its third batch';
	return $job;
}

my $job = start_job();
is($node->safe_psql('postgres', "SELECT count(*) FROM loyalty.point_lot WHERE state = 'active'"),
	'2', 'part-way: the two committed batches are visible to others');
is($node->safe_psql('postgres',
		q{SELECT percent || ' ' || (eta IS NOT NULL) FROM loyalty.job_progress
		   WHERE kind = 'activate' AND state = 'running'}),
	'66.7 true', 'part-way: percent and an estimate of the time left');
my ($rc, $out, $err) = $node->psql('postgres', 'CALL loyalty.points_activate_due_batch()', @dba);
like($err, qr/a job of kind "activate" is already running/, 'one job of a kind at a time');

# a cancel while it waits: failed, with the error, the third batch undone
$node->safe_psql('postgres',
	q{SELECT pg_cancel_backend(backend_pid) FROM loyalty.job_progress WHERE kind = 'activate' AND state = 'running'});
$node->poll_query_until('postgres', "SELECT ($progress) = 'failed 2/3'")
  or die 'the cancelled job was not recorded as failed';
like($node->safe_psql('postgres', q{SELECT error FROM loyalty.job WHERE kind = 'activate'}),
	qr/^57014: canceling statement/, 'the failure is recorded with its SQLSTATE');
$job->quit;

# a killed backend: abandoned at once in the view
$node->safe_psql('postgres', qq{
	SELECT count(*) FROM (
	  SELECT loyalty.points_accrue('tap-again-' || member_id, member_id, 'job', 50, 'stay', pending => true,
	                        activate_at => now() - interval '1 minute')
	    FROM loyalty.member WHERE member_id <> '$last') x});
$job = start_job();
my $pid = $node->safe_psql('postgres',
	q{SELECT backend_pid FROM loyalty.job_progress WHERE kind = 'activate' AND state = 'running'});
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$node->poll_query_until('postgres', "SELECT ($progress) = 'abandoned 2/3'")
  or die 'the killed job did not show as abandoned';
eval { $job->quit; };
is($node->safe_psql('postgres', qq{SELECT state FROM loyalty.job WHERE kind = 'activate' AND backend_pid = $pid
	    ORDER BY started_at DESC LIMIT 1}),
	'running', 'its row still says running until the next job of its kind');

$blocker->query_safe('COMMIT');
$node->safe_psql('postgres', 'CALL loyalty.points_activate_due_batch()', @dba);
is($node->safe_psql('postgres', qq{SELECT state FROM loyalty.job WHERE kind = 'activate' AND backend_pid = $pid
	    ORDER BY started_at DESC LIMIT 1}),
	'abandoned', 'the next job records the killed one as abandoned');
is($node->safe_psql('postgres', $progress), 'done 1/1', 'the next job did the rest');
is($node->safe_psql('postgres', "SELECT count(*) FROM loyalty.point_lot WHERE state = 'active'"),
	'5', 'every pending lot activated once');
is($node->safe_psql('postgres', 'SELECT sum(balance) FROM loyalty.point_balance'), '400',
	'the balances count every lot once');

# a re-sync: a subscription's initial copy of a loyalty table, held by a SHARE
# lock (CREATE SUBSCRIPTION itself only needs ACCESS SHARE; the copy needs
# ROW EXCLUSIVE)
$node->safe_psql('postgres', q{
	CREATE DATABASE store;
	CREATE PUBLICATION job_pub FOR TABLE loyalty.event_consumer;
	SELECT pg_create_logical_replication_slot('job_sub', 'pgoutput');
	INSERT INTO loyalty.event_consumer (consumer) VALUES ('pms');
});
$node->safe_psql('store', 'CREATE EXTENSION loyalty');
my $holder = $node->background_psql('store', on_error_stop => 0);
$holder->query_safe('BEGIN; LOCK TABLE loyalty.event_consumer IN SHARE MODE;');
my $connstr = $node->connstr('postgres');
$connstr =~ s/'/''/g;
$node->safe_psql('store', qq{
	CREATE SUBSCRIPTION job_sub CONNECTION '$connstr' PUBLICATION job_pub
	  WITH (create_slot = false, slot_name = 'job_sub');
});
my $resync = q{SELECT state || ' ' || done || '/' || total || ' ' || (params->'copying')::text
                 FROM loyalty.job_progress WHERE kind = 'resync'};
is($node->safe_psql('store', $resync), 'running 0/1 ["event_consumer"]',
	're-sync: the table being copied shows');
$holder->query_safe('COMMIT');
$node->poll_query_until('store', "SELECT ($resync) = 'done 1/1 []'")
  or die 'the re-sync never finished';
pass('re-sync: done once the table is copied');
is($node->safe_psql('store', 'SELECT consumer FROM loyalty.event_consumer'), 'pms', 'the row was copied');
$node->safe_psql('store', 'DROP SUBSCRIPTION job_sub');

$holder->quit;
$blocker->quit;
$node->stop;
done_testing();
