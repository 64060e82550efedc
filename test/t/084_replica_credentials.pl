# Replication logins per store (issue 14.7): HQ, the replica of store sa
# (subscribed with its own least-privilege login) and the server of store
# sc, whose login tries to get store sa's data: by subscribing to sa's
# publication (the initial copy brings none of sa's store-scoped rows), by
# SQL over its connection (row level security and grants), with another
# output plugin (not trusted at HQ) and with a base backup (pg_hba).  Then
# HQ confines logins (output_plugin_libraries = 'loyalty'): store sa
# re-seeds with its own copy, and sc's login can neither make a pgoutput
# slot (by name, path or the replication protocol) nor stream sa's
# publication or sa's slot (SQL, replication protocol, subscription).
# Then slot tampering: before loyalty.replica_harden() sc's login drops a
# slot through SQL; after it, it cannot drop, advance, re-make or copy sa's
# slot through SQL, sa still streams, the DBA functions still make and drop
# slots; what stays open (another database, DROP_REPLICATION_SLOT over the
# protocol, detected as "no slot"; re-making the slot is refused) is in
# docs/threat-model.md.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

sub make_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical');
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'loyalty'\n");   # the audit writer pool
	$node->append_conf('postgresql.conf', "wal_retrieve_retry_interval = '200ms'\n");
	return $node;
}

my $hq = make_node('hq');
# HQ as docs/operations.md sets it up: only pgoutput may decode for a
# REPLICATION login, and store logins get no physical replication
$hq->append_conf('postgresql.conf', "output_plugin_libraries = 'pgoutput'\n");
my $hba = $hq->data_dir . '/pg_hba.conf';
my $rules = slurp_file($hba);
open(my $fh, '>', $hba) or die $!;
print $fh "local replication repl_sa,repl_sc reject\n" . $rules;
close $fh;
my $sa = make_node('sa');
my $sc = make_node('sc');
for my $node ($hq, $sa, $sc)
{
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION loyalty');
}

$hq->safe_psql('postgres', q{
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sa', 'Store A', 'bay', 'east', 'Asia/Shanghai');
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sc', 'Store C', 'bay', 'west', 'Asia/Shanghai');
	CREATE TABLE m AS
	SELECT 'a' AS who, (loyalty.member_enroll('e-a', 'sa', 'Alice Store', phone => '13911112222')).member_id
	UNION ALL
	SELECT 'c', (loyalty.member_enroll('e-c', 'sc', 'Carl Store', phone => '13933334444')).member_id;
	SELECT loyalty.stay_record('stay-a', 'sa', (SELECT member_id FROM m WHERE who = 'a'), '2026-10-01', '2026-10-03');
	SELECT loyalty.stay_record('stay-c', 'sc', (SELECT member_id FROM m WHERE who = 'c'), '2026-10-05', '2026-10-06');
	SELECT loyalty.risk_tag_raise('r-a', (SELECT member_id FROM m WHERE who = 'a'), 'sa',
	                              'unresolved_violation', 'sa secret risk note', 40);
	INSERT INTO loyalty.member_tag (member_id, code, store_code, note)
	SELECT member_id, 'quiet', 'sa', 'sa secret tag note' FROM m WHERE who = 'a';
	INSERT INTO loyalty.member_preference (member_id, category, value, scope, store_code)
	SELECT member_id, 'room', 'sa secret room', 'store', 'sa' FROM m WHERE who = 'a';
	CREATE ROLE repl_sa LOGIN REPLICATION;
	CREATE ROLE repl_sc LOGIN REPLICATION;
	SELECT loyalty.replica_store_add('add-sa', 'sa');
	SELECT loyalty.replica_store_add('add-sc', 'sc');
	SELECT loyalty.replica_login_grant('login-sa', 'sa', 'repl_sa');
	SELECT loyalty.replica_login_grant('login-sc', 'sc', 'repl_sc');
});
$hq->safe_psql('postgres', q{SELECT loyalty.replica_slot_create('sa')});

# store sa's own replica, with its login: the initial copy completes
my $conn_sa = $hq->connstr('postgres') . ' user=repl_sa';
$sa->safe_psql('postgres', "SELECT loyalty.store_subscribe(\$\$$conn_sa\$\$, 'sa')");
$sa->wait_for_subscription_sync($hq, 'loyalty_store_sa');
is($sa->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM loyalty.stay) || '/' || (SELECT count(*) FROM loyalty.member_tag) || '/' ||
	       (SELECT count(*) FROM loyalty.replica_risk_note) || '/' ||
	       (SELECT count(*) FROM loyalty.member_preference WHERE scope = 'store')}),
	'1/1/1/1', 'store sa, with its own login: its stay, tag, risk note and store-only preference');

# --- store sc's login takes store sa's publication ---------------------
my $conn_sc = $hq->connstr('postgres') . ' user=repl_sc';
# sc's server as a thief would prepare it: the published tables empty
$sc->safe_psql('postgres', q{
	TRUNCATE loyalty.store, loyalty.member, loyalty.member_profile, loyalty.replica_member_contact,
	         loyalty.replica_risk_note, loyalty.member_preference, loyalty.member_tag, loyalty.stay,
	         loyalty.policy, loyalty.replica_store, loyalty.outbox_result, loyalty.risk_type,
	         loyalty.risk_tag, loyalty.benefit, loyalty.benefit_grant, loyalty.benefit_use CASCADE});
$sc->safe_psql('postgres', "CREATE SUBSCRIPTION steal CONNECTION \$\$$conn_sc\$\$ PUBLICATION loyalty_store_sa");
$sc->wait_for_subscription_sync($hq, 'steal');
is($sc->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM loyalty.stay) || '/' || (SELECT count(*) FROM loyalty.member_tag) || '/' ||
	       (SELECT count(*) FROM loyalty.replica_risk_note) || '/' ||
	       (SELECT count(*) FROM loyalty.member_preference WHERE scope = 'store') || '/' ||
	       (SELECT count(*) FROM loyalty.outbox_result)}),
	'0/0/0/0/0', 'sc\'s login copying sa\'s publication gets none of sa\'s stays, tags, notes, preferences, verdicts');
is($sc->safe_psql('postgres', q{
	SELECT count(*) FROM loyalty.risk_tag WHERE note LIKE '%secret%' OR resolution_note LIKE '%secret%'}),
	'0', 'and no risk-tag note');
is($sc->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE phone IS NOT NULL) || '/' || count(*) FROM loyalty.member_profile}),
	'0/2', 'and no phone number (members are chain-wide, with masked contact data)');
$sc->safe_psql('postgres', 'ALTER SUBSCRIPTION steal DISABLE');
$sc->safe_psql('postgres', 'ALTER SUBSCRIPTION steal SET (slot_name = NONE)');
$sc->safe_psql('postgres', 'DROP SUBSCRIPTION steal');

# --- sc's login over SQL ----------------------------------------------
my ($ret, $out, $err);
is($hq->safe_psql('postgres', q{SELECT count(*) FROM loyalty.stay}, extra_params => ['-U', 'repl_sc']),
	'1', 'SQL as sc\'s login: its own store\'s stay only');
is($hq->safe_psql('postgres', q{SELECT count(*) FROM loyalty.member_tag}, extra_params => ['-U', 'repl_sc']),
	'0', 'SQL as sc\'s login: no tag of another store');
($ret, $out, $err) = $hq->psql('postgres', q{SELECT phone FROM loyalty.member_profile}, extra_params => ['-U', 'repl_sc']);
like($err, qr/permission denied for table member_profile/, 'SQL as sc\'s login: profiles refused');
($ret, $out, $err) = $hq->psql('postgres', q{SELECT note FROM loyalty.risk_tag}, extra_params => ['-U', 'repl_sc']);
like($err, qr/permission denied for table risk_tag/, 'SQL as sc\'s login: risk-tag notes refused');
($ret, $out, $err) = $hq->psql('postgres', q{SELECT * FROM loyalty.member_identity}, extra_params => ['-U', 'repl_sc']);
like($err, qr/permission denied for table member_identity/, 'SQL as sc\'s login: identities refused');

# --- other ways around -------------------------------------------------
($ret, $out, $err) = $hq->psql('postgres', q{SELECT pg_create_logical_replication_slot('steal_td', 'test_decoding')},
	extra_params => ['-U', 'repl_sc']);
like($err, qr/library "test_decoding" may not be used as an output plugin/,
	'a slot with test_decoding (which decodes every table) is refused');
my ($stdout, $stderr);
IPC::Run::run(['pg_basebackup', '-D', PostgreSQL::Test::Utils::tempdir() . '/bb', '-h', $hq->host,
	'-p', $hq->port, '-U', 'repl_sc', '-X', 'none'], '>', \$stdout, '2>', \$stderr);
like($stderr, qr/pg_hba\.conf rejects replication connection/, 'a base backup with sc\'s login is refused (pg_hba)');

# --- revoking -----------------------------------------------------------
$hq->safe_psql('postgres', q{SELECT loyalty.replica_login_revoke('revoke-sc', 'repl_sc')});
is($hq->safe_psql('postgres', q{SELECT pg_has_role('repl_sc', 'loyalty_replication', 'MEMBER')
	|| '/' || (SELECT count(*) FROM loyalty.replica_login WHERE login = 'repl_sc')}),
	'false/0', 'revoked: no membership, no row');
($ret, $out, $err) = $hq->psql('postgres', q{SELECT count(*) FROM loyalty.stay}, extra_params => ['-U', 'repl_sc']);
like($err, qr/permission denied for (schema loyalty|table stay)/, 'revoked: nothing to copy');
($ret, $out, $err) = $hq->psql('postgres', q{SELECT loyalty.replica_login_revoke('revoke-sc-2', 'repl_nosuch')});
like($err, qr/"repl_nosuch" is not a replication login/, 'revoking an unknown login is refused');

# --- HQ confines each login to its own publication ----------------------
# output_plugin_libraries = 'loyalty': slots decode only through the
# loyalty plugin (pgoutput that checks the login), and the store makes
# its initial copy itself (PG15's own makes pgoutput slots)
$hq->safe_psql('postgres', q{SELECT loyalty.replica_login_grant('login-sc-2', 'sc', 'repl_sc')});
$hq->safe_psql('postgres', q{ALTER SYSTEM SET output_plugin_libraries = 'loyalty'});
$hq->reload;
$sa->safe_psql('postgres', q{SELECT loyalty.store_unsubscribe()});
$hq->poll_query_until('postgres', q{SELECT NOT active FROM pg_replication_slots WHERE slot_name = 'loyalty_store_sa'})
  or die 'the slot of store sa stays active';
$hq->safe_psql('postgres', q{SELECT loyalty.replica_slot_create('sa')});
is($hq->safe_psql('postgres', q{SELECT plugin FROM pg_replication_slots WHERE slot_name = 'loyalty_store_sa'}),
	'loyalty', 'confined HQ: the store\'s slot decodes with the loyalty plugin');
$hq->safe_psql('postgres', q{
	SELECT loyalty.stay_record('stay-a2', 'sa', (SELECT member_id FROM m WHERE who = 'a'), '2026-10-10', '2026-10-11');});
$sa->safe_psql('postgres', "SELECT loyalty.store_subscribe(\$\$$conn_sa\$\$, 'sa')");
$sa->poll_query_until('postgres', q{SELECT status = 'streaming' FROM loyalty.store_replica_state})
  or die 'store sa does not stream';
is($sa->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM loyalty.stay) || '/' || (SELECT count(*) FROM loyalty.member_tag) || '/' ||
	       (SELECT count(*) FROM loyalty.replica_risk_note) || '/' ||
	       (SELECT count(*) FROM loyalty.member_preference WHERE scope = 'store') || '/' ||
	       (SELECT count(*) FROM loyalty.member_profile) || '/' ||
	       (SELECT count(*) FROM loyalty.risk_tag WHERE note = 'sa secret risk note') || '/' ||
	       (SELECT count(*) FROM loyalty.policy)}),
	'2/1/1/1/2/1/1', 'confined HQ: the store\'s own copy holds its rows, profiles and notes');
is($sa->safe_psql('postgres', q{SELECT count(*) FROM pg_roles WHERE rolname = 'loyalty_sa_frontdesk'}),
	'1', 'confined HQ: the store\'s roles came with its copied store row');
$hq->safe_psql('postgres', q{
	SELECT loyalty.stay_record('stay-a3', 'sa', (SELECT member_id FROM m WHERE who = 'a'), '2026-10-12', '2026-10-13');});
$sa->poll_query_until('postgres', q{SELECT count(*) = 3 FROM loyalty.stay})
  or die 'the new stay did not reach store sa';
pass('confined HQ: changes stream to the store after its own copy');

($ret, $out, $err) = $sc->psql('postgres',
	"CREATE SUBSCRIPTION steal2 CONNECTION \$\$$conn_sc\$\$ PUBLICATION loyalty_store_sa WITH (copy_data = false)");
like($err, qr/library "pgoutput" may not be used as an output plugin/,
	'confined HQ: sc\'s login cannot make a pgoutput slot');
$hq->safe_psql('postgres', q{SELECT pg_create_logical_replication_slot('steal3', 'loyalty')},
	extra_params => ['-U', 'repl_sc']);
($ret, $out, $err) = $hq->psql('postgres',
	q{SELECT count(*) FROM pg_logical_slot_peek_binary_changes('steal3', NULL, NULL, 'proto_version', '1', 'publication_names', 'loyalty_store_sa')},
	extra_params => ['-U', 'repl_sc']);
like($err, qr/login "repl_sc" may not stream publication "loyalty_store_sa"/,
	'confined HQ: sc\'s login cannot decode sa\'s publication from a slot of its own');
is($hq->safe_psql('postgres',
	q{SELECT count(*) >= 0 FROM pg_logical_slot_peek_binary_changes('steal3', NULL, NULL, 'proto_version', '1', 'publication_names', 'loyalty_store_sc')},
	extra_params => ['-U', 'repl_sc']),
	't', 'confined HQ: sc\'s login decodes its own publication');
# a hostile login: other spellings of pgoutput, the replication protocol,
# and store sa's own slot (decoding it would consume it)
($ret, $out, $err) = $hq->psql('postgres', q{SELECT pg_create_logical_replication_slot('steal5', '$libdir/pgoutput')},
	extra_params => ['-U', 'repl_sc']);
like($err, qr/library "\$libdir\/pgoutput" may not be used as an output plugin/,
	'confined HQ: sc\'s login cannot make a slot with pgoutput by its path');
# a replication command as sc's login (a walsender of HQ's database); its stderr
sub as_repl_sc
{
	my ($cmd) = @_;
	my ($o, $e) = ('', '');
	IPC::Run::run(['psql', '-X', '-d', $hq->connstr('postgres') . ' replication=database user=repl_sc', '-c', $cmd],
		'>', \$o, '2>', \$e, IPC::Run::timeout(120));
	return $e;
}
$err = as_repl_sc('CREATE_REPLICATION_SLOT steal6 LOGICAL pgoutput');
like($err, qr/library "pgoutput" may not be used as an output plugin/,
	'confined HQ: sc\'s login cannot make a pgoutput slot over the replication protocol');
# sa's slot idle (its subscription paused), with a change sa has not received yet
$sa->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_store_sa DISABLE');
$hq->poll_query_until('postgres', q{SELECT NOT active FROM pg_replication_slots WHERE slot_name = 'loyalty_store_sa'})
  or die 'the slot of store sa stays active';
$hq->safe_psql('postgres', q{
	SELECT loyalty.stay_record('stay-a5', 'sa', (SELECT member_id FROM m WHERE who = 'a'), '2026-10-16', '2026-10-17');});
$err = as_repl_sc(
	q{START_REPLICATION SLOT "loyalty_store_sa" LOGICAL 0/0 ("proto_version" '1', "publication_names" 'loyalty_store_sa')});
like($err, qr/login "repl_sc" may not (decode replication slot|stream publication) "loyalty_store_sa"/,
	'confined HQ: sc\'s login cannot stream sa\'s slot over the replication protocol');
($ret, $out, $err) = $hq->psql('postgres',
	q{SELECT count(*) FROM pg_logical_slot_get_binary_changes('loyalty_store_sa', NULL, NULL, 'proto_version', '1', 'publication_names', 'loyalty_store_sc')},
	extra_params => ['-U', 'repl_sc']);
like($err, qr/login "repl_sc" may not decode replication slot "loyalty_store_sa"/,
	'confined HQ: sc\'s login cannot consume sa\'s slot through its own publication');
is($hq->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots WHERE slot_name IN ('steal5', 'steal6')}),
	'0', 'confined HQ: none of those slots exists');
$sa->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_store_sa ENABLE');
$sa->poll_query_until('postgres', q{SELECT count(*) = 4 FROM loyalty.stay})
  or die 'the stay made while sc\'s login tried sa\'s slot did not reach store sa';
pass('confined HQ: sa\'s slot was not consumed: sa receives the stay made meanwhile');
# over the walsender, as a subscription would
my $log_offset = -s $hq->logfile;
$sc->safe_psql('postgres',
	"CREATE SUBSCRIPTION steal4 CONNECTION \$\$$conn_sc\$\$ PUBLICATION loyalty_store_sa WITH (create_slot = false, slot_name = 'steal3', copy_data = false)");
$hq->wait_for_log(qr/login "repl_sc" may not stream publication "loyalty_store_sa"/, $log_offset);
$hq->safe_psql('postgres', q{
	SELECT loyalty.stay_record('stay-a4', 'sa', (SELECT member_id FROM m WHERE who = 'a'), '2026-10-14', '2026-10-15');});
$sa->poll_query_until('postgres', q{SELECT count(*) = 5 FROM loyalty.stay})
  or die 'the new stay did not reach store sa';
is($sc->safe_psql('postgres', q{SELECT count(*) FROM loyalty.stay}), '0',
	'confined HQ: sc\'s subscription to sa\'s publication gets none of sa\'s new stays');
$sc->safe_psql('postgres', 'ALTER SUBSCRIPTION steal4 DISABLE');
$sc->safe_psql('postgres', 'ALTER SUBSCRIPTION steal4 SET (slot_name = NONE)');
$sc->safe_psql('postgres', 'DROP SUBSCRIPTION steal4');

# --- slot tampering through SQL: loyalty.replica_harden() ----------------
# a slot nobody uses: before hardening, sc's login drops it through SQL
$hq->safe_psql('postgres', q{SELECT pg_create_logical_replication_slot('victim1', 'loyalty')});
$hq->safe_psql('postgres', q{SELECT pg_drop_replication_slot('victim1')}, extra_params => ['-U', 'repl_sc']);
is($hq->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'victim1'}),
	'0', 'not hardened: sc\'s login drops a slot that is not its own through SQL');
$hq->safe_psql('postgres', q{
	CREATE ROLE dba_x LOGIN IN ROLE loyalty_dba;
	CREATE ROLE dba_r LOGIN REPLICATION IN ROLE loyalty_dba;});
($ret, $out, $err) = $hq->psql('postgres', q{SELECT * FROM loyalty.replica_harden()}, extra_params => ['-U', 'dba_x']);
like($err, qr/permission denied for function replica_harden/, 'replica_harden: not for a DBA login');
($ret, $out, $err) = $hq->psql('postgres', q{SELECT object || '|' || action FROM loyalty.replica_harden() ORDER BY 1});
like($out, qr/^pg_drop_replication_slot\(name\)\|revoked from PUBLIC, granted to loyalty_dba$/m,
	'replica_harden: dropping slots revoked');
like($out, qr/^pg_replication_slot_advance\(name,pg_lsn\)\|revoked/m, 'replica_harden: advancing slots revoked');
like($out, qr/^pg_create_logical_replication_slot\(name,name,boolean,boolean\)\|revoked/m,
	'replica_harden: making logical slots revoked');
like($out, qr/^database template1\|still open$/m, 'replica_harden: names the other database the store logins may connect to');
like($err, qr/WARNING:  replication logins repl_sa, repl_sc may connect to database "template1"/,
	'replica_harden: and warns about it');
like($out, qr/^replication protocol\|still open$/m, 'replica_harden: says the protocol stays open');
is($hq->safe_psql('postgres', q{SELECT count(*) > 0 FROM (SELECT action FROM loyalty.audit_change_staging
	UNION ALL SELECT action FROM loyalty.audit_log) a WHERE action = 'replica_harden'}),
	't', 'replica_harden: recorded in the audit trail');
# store sc's login, through SQL, with sa's slot name
for my $try (
	[ q{SELECT pg_drop_replication_slot('loyalty_store_sa')}, 'pg_drop_replication_slot', 'drop sa\'s slot' ],
	[ q{SELECT pg_replication_slot_advance('loyalty_store_sa', pg_current_wal_lsn())}, 'pg_replication_slot_advance', 'advance sa\'s slot' ],
	[ q{SELECT pg_create_logical_replication_slot('loyalty_store_sa', 'loyalty')}, 'pg_create_logical_replication_slot', 're-make sa\'s slot' ],
	[ q{SELECT pg_copy_logical_replication_slot('loyalty_store_sa', 'steal7')}, 'pg_copy_logical_replication_slot', 'copy sa\'s slot' ],
	[ q{SELECT pg_create_physical_replication_slot('steal8')}, 'pg_create_physical_replication_slot', 'make a physical slot' ])
{
	($ret, $out, $err) = $hq->psql('postgres', $try->[0], extra_params => ['-U', 'repl_sc']);
	like($err, qr/permission denied for function $try->[1]/, "hardened: sc's login cannot $try->[2] through SQL");
}
is($hq->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots WHERE slot_name IN ('steal7', 'steal8')}),
	'0', 'hardened: no slot made');
$hq->safe_psql('postgres', q{
	SELECT loyalty.stay_record('stay-a6', 'sa', (SELECT member_id FROM m WHERE who = 'a'), '2026-10-18', '2026-10-19');});
$sa->poll_query_until('postgres', q{SELECT count(*) = 6 FROM loyalty.stay})
  or die 'store sa stopped receiving after sc\'s login tried its slot';
pass('hardened: sa still streams after sc\'s login tried to drop, advance, re-make and copy its slot');
# the DBA functions that make and drop slots still work for a DBA login
# that is not a superuser, and a REPLICATION DBA login keeps the SQL functions
$hq->safe_psql('postgres', q{SELECT loyalty.replica_slot_create('sc')}, extra_params => ['-U', 'dba_x']);
is($hq->safe_psql('postgres', q{SELECT plugin FROM pg_replication_slots WHERE slot_name = 'loyalty_store_sc'}),
	'loyalty', 'hardened: replica_slot_create still makes a store\'s slot (as a DBA login)');
$hq->safe_psql('postgres', q{SELECT loyalty.replica_store_remove('remove-sc', 'sc')}, extra_params => ['-U', 'dba_x']);
is($hq->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'loyalty_store_sc'}),
	'0', 'hardened: replica_store_remove still drops a store\'s slot (as a DBA login)');
$hq->safe_psql('postgres', q{SELECT pg_drop_replication_slot('steal3')}, extra_params => ['-U', 'dba_r']);
is($hq->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'steal3'}),
	'0', 'hardened: a REPLICATION login of loyalty_dba still drops a slot through SQL');
# function privileges are this database's: from template1, sc's login
# still drops a slot, until it may no longer connect there
$hq->safe_psql('postgres', q{SELECT pg_create_logical_replication_slot('victim2', 'loyalty')});
$hq->safe_psql('template1', q{SELECT pg_drop_replication_slot('victim2')}, extra_params => ['-U', 'repl_sc']);
is($hq->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'victim2'}),
	'0', 'hardened HQ database only: from another database sc\'s login still drops a slot (what replica_harden warns about)');
$hq->safe_psql('postgres', q{REVOKE CONNECT ON DATABASE template1 FROM PUBLIC});
($ret, $out, $err) = $hq->psql('template1', q{SELECT 1}, extra_params => ['-U', 'repl_sc']);
like($err, qr/permission denied for database "template1"/, 'with CONNECT revoked, sc\'s login cannot go there');
is($hq->safe_psql('postgres', q{SELECT count(*) FROM loyalty.replica_harden() WHERE object LIKE 'database %'}),
	'0', 'replica_harden run again: no other database left open');
# what stays open: DROP_REPLICATION_SLOT over the replication protocol,
# once sa's subscription lets go of the slot; replica_link_check and
# replica_status show it
$sa->safe_psql('postgres', 'ALTER SUBSCRIPTION loyalty_store_sa DISABLE');
$hq->poll_query_until('postgres', q{SELECT NOT active FROM pg_replication_slots WHERE slot_name = 'loyalty_store_sa'})
  or die 'the slot of store sa stays active';
$err = as_repl_sc('DROP_REPLICATION_SLOT loyalty_store_sa');
is($hq->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'loyalty_store_sa'}),
	'0', 'still open: sc\'s login drops sa\'s idle slot over the replication protocol');
is($hq->safe_psql('postgres', q{SELECT status FROM loyalty.replica_link_check() WHERE store_code = 'sa' AND direction = 'to store'}),
	'no slot', 'detected: replica_link_check shows sa\'s slot as "no slot"');
# but it cannot make sa's slot again (the loyalty plugin checks the name
# when a slot is made); HQ's DBA can
$err = as_repl_sc('CREATE_REPLICATION_SLOT loyalty_store_sa LOGICAL loyalty');
like($err, qr/login "repl_sc" may not make replication slot "loyalty_store_sa"/,
	'sc\'s login cannot re-make sa\'s slot over the replication protocol');
($ret, $out, $err) = $hq->psql('postgres', q{SELECT pg_create_logical_replication_slot('loyalty_store_sa', 'loyalty')},
	extra_params => ['-U', 'repl_sc']);
like($err, qr/permission denied for function pg_create_logical_replication_slot/, 'nor through SQL');
is($hq->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'loyalty_store_sa'}),
	'0', 'no slot of that name');
$hq->safe_psql('postgres', q{SELECT loyalty.replica_slot_create('sa')}, extra_params => ['-U', 'dba_x']);
is($hq->safe_psql('postgres', q{SELECT status FROM loyalty.replica_link_check() WHERE store_code = 'sa' AND direction = 'to store'}),
	'disconnected', 'HQ\'s DBA re-makes it (store sa then re-seeds: docs/replication.md)');

$sc->stop;
$sa->stop;
$hq->stop;
done_testing();
