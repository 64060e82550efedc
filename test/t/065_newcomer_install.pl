# Installation side effects (docs/installation.md): \dx shows schema
# loyalty; CREATE EXTENSION leaves the database's TEMPORARY privilege alone
# and refuses temporary objects only to store, BI and marketing roles (over
# real logins); DROP EXTENSION gives back the database as it was (only the
# empty schema and the roles stay); an update from 1.0 does the same.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('install');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'loyalty'\n");   # the audit writer pool
$node->start;

my $db_state = q{SELECT coalesce(datacl::text, 'default') FROM pg_database WHERE datname = current_database()};

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
my $acl_before = $node->safe_psql('fresh', $db_state);
$node->safe_psql('fresh', q{
    CREATE ROLE app LOGIN;
    CREATE EXTENSION loyalty;
    SELECT loyalty.store_create('store-szx', 'szx', 'Shenzhen', 'bay', 'south', 'Asia/Shanghai');
    SELECT loyalty.staff_create('staff-desk', 'desk', 'szx', 'frontdesk');
    SELECT loyalty.staff_create('staff-house', 'house', 'szx', 'housekeeping');
    SELECT loyalty.staff_create('staff-mgr', 'mgr', 'szx', 'store_manager');
    SELECT loyalty.staff_create('staff-bi', 'bi', NULL, 'bi');
    SELECT loyalty.staff_create('staff-mkt', 'mkt', NULL, 'marketing');
    SELECT loyalty.staff_create('staff-crm', 'crm', NULL, 'crm');
});

is($node->safe_psql('fresh', q{SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'loyalty'}),
    'loyalty', '\dx shows schema loyalty (pg_extension.extnamespace)');
is($node->safe_psql('fresh', $db_state), $acl_before, 'CREATE EXTENSION leaves the database ACL alone');

for my $login (qw(desk house mgr bi mkt))
{
    my ($rc, $out, $err) = $node->psql('fresh',
        q{\set VERBOSITY verbose
CREATE TEMP TABLE loot (x text)}, extra_params => ['-U', $login]);
    like($err, qr/ERROR:  42501: permission denied to create temporary object pg_temp\.loot/,
        "$login: a temporary table is refused with 42501");
    ($rc, $out, $err) = $node->psql('fresh',
        q{CREATE FUNCTION pg_temp.leak(text) RETURNS boolean LANGUAGE sql AS 'SELECT true'},
        extra_params => ['-U', $login]);
    like($err, qr/permission denied to create temporary object/, "$login: a function in pg_temp is refused");
}
for my $login (qw(crm app))
{
    is($node->safe_psql('fresh', q{CREATE TEMP TABLE t AS SELECT 1 AS x; SELECT count(*) FROM t},
            extra_params => ['-U', $login]), '1', "$login: temporary tables work");
}

$node->safe_psql('fresh', 'DROP EXTENSION loyalty');
is($node->safe_psql('fresh', $db_state), $acl_before, 'DROP EXTENSION: database ACL as before');
is($node->safe_psql('fresh', q{SELECT count(*) FROM pg_event_trigger}), '0', 'DROP EXTENSION: no event trigger left');
is($node->safe_psql('fresh', q{SELECT count(*) FROM pg_class WHERE relnamespace = 'loyalty'::regnamespace}),
    '0', 'DROP EXTENSION: schema loyalty left empty');
is($node->safe_psql('fresh', q{CREATE TEMP TABLE t AS SELECT 1 AS x; SELECT count(*) FROM t},
        extra_params => ['-U', 'desk']), '1', 'after DROP EXTENSION a former store login is a plain role again');
$node->safe_psql('fresh', 'DROP SCHEMA loyalty; CREATE EXTENSION loyalty');
ok(1, 'CREATE EXTENSION again after DROP SCHEMA loyalty');

# a schema loyalty owned by an ordinary role is refused
$node->safe_psql('postgres', 'CREATE DATABASE squat');
$node->safe_psql('squat', 'CREATE SCHEMA loyalty AUTHORIZATION app');
my ($rc, $out, $err) = $node->psql('squat', q{\set VERBOSITY verbose
CREATE EXTENSION loyalty});
like($err, qr/42501: schema "loyalty" is owned by a role that is not a superuser/,
    'a schema loyalty owned by a non-superuser is refused (42501)');
is($node->safe_psql('squat', q{SELECT count(*) FROM pg_extension WHERE extname = 'loyalty'}), '0',
    'nothing installed');

# 1.0 revoked TEMPORARY from PUBLIC and named pg_catalog; the update to
# the default version undoes both
$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('old', q{CREATE EXTENSION loyalty VERSION '1.0'});
is($node->safe_psql('old', q{SELECT has_database_privilege('public', current_database(), 'TEMPORARY')}),
    'f', '1.0 revoked TEMPORARY from PUBLIC');
$node->safe_psql('old', 'ALTER EXTENSION loyalty UPDATE');
is($node->safe_psql('old', q{SELECT has_database_privilege('public', current_database(), 'TEMPORARY')}),
    't', 'the update gives TEMPORARY back to PUBLIC');
is($node->safe_psql('old', q{SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'loyalty'}),
    'loyalty', 'the update moves the extension to schema loyalty');
is($node->safe_psql('old', q{SELECT count(*) FROM pg_event_trigger WHERE evtname = 'loyalty_temp_guard'}),
    '1', 'the update installs the temporary-object guard');
$node->safe_psql('old', 'DROP EXTENSION loyalty');
is($node->safe_psql('old', q{SELECT count(*) FROM pg_namespace WHERE nspname = 'loyalty'}), '1',
    'an updated install drops like a fresh one (the schema stays)');

# a batch procedure CALLed from a function (an atomic context, outside a
# transaction block) says how it must be called (2D000), and a plain CALL works
$node->safe_psql('postgres', q{CREATE EXTENSION loyalty;
    CREATE FUNCTION public.run_job() RETURNS void LANGUAGE plpgsql
        AS $$ BEGIN CALL loyalty.points_expire_batch(); END $$;});
($rc, $out, $err) = $node->psql('postgres', q{\set VERBOSITY verbose
SELECT public.run_job()});
like($err, qr/ERROR:  2D000: loyalty\.points_expire_batch cannot run inside a function or an atomic CALL/,
    'a batch procedure called from a function: 2D000 with what to do');
like($err, qr/HINT:  CALL it as a top-level statement/, 'with the hint');
($rc, $out, $err) = $node->psql('postgres', q{BEGIN; CALL loyalty.points_activate_due_batch(); ROLLBACK;});
like($err, qr/loyalty\.points_activate_due_batch cannot run inside a transaction block/,
    'inside BEGIN: the transaction block message');
is($node->psql('postgres', 'CALL loyalty.points_activate_due_batch()'), 0, 'a plain CALL runs');

$node->stop;
done_testing();
