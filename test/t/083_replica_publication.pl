# What a store's replica receives (issues 12.3 and 14.9): HQ and the
# replica of store sa, subscribed with the documented least-privilege
# login (issue 14.7).  A second slot at HQ is decoded with pgoutput for
# store sa's publication: no note or tag of store sc, no full phone, email
# or birth date arrive, while sa's own notes and the masked contact data
# do.  The store's initial copy holds the same, and a front desk at the
# store finds a member by exact phone through the keyed hash.
use strict;
use warnings;
use File::Copy;
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
	# the key file outside the data directory (docs/privacy.md, "The key file")
	$node->append_conf('postgresql.conf',
		"loyalty.key_file = '" . PostgreSQL::Test::Utils::tempdir() . "/loyalty.key'\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION loyalty');
	return $node;
}

sub key_file
{
	my ($node) = @_;
	return $node->safe_psql('postgres', 'SHOW loyalty.key_file');
}

my $hq = make_node('hq');
my $sa = make_node('sa');
# HQ's key, made before the first member: the keyed phone hash of the rows
# stores receive
$hq->safe_psql('postgres', 'SELECT loyalty.key_create()');

$hq->safe_psql('postgres', q{
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sa', 'Store A', 'bay', 'east', 'Asia/Shanghai');
	SELECT loyalty.store_create(gen_random_uuid()::text, 'sc', 'Store C', 'bay', 'west', 'Asia/Shanghai');
	CREATE TABLE m AS
	SELECT 'a' AS who, (loyalty.member_enroll('e-a', 'sa', 'Alice Store', phone => '13911112222',
	        email => 'alice@example.com', birth_date => '1990-05-17')).member_id
	UNION ALL
	SELECT 'c', (loyalty.member_enroll('e-c', 'sc', 'Carl Store', phone => '13933334444',
	        email => 'carl@example.com', birth_date => '1985-11-02')).member_id;
	SELECT loyalty.risk_tag_raise('r-c', (SELECT member_id FROM m WHERE who = 'c'), 'sc',
	                              'unresolved_violation', 'sc secret risk note', 50);
	SELECT loyalty.risk_tag_raise('r-a', (SELECT member_id FROM m WHERE who = 'a'), 'sa',
	                              'unresolved_violation', 'sa own risk note', 40);
	INSERT INTO loyalty.member_tag (member_id, code, store_code, note)
	SELECT member_id, 'noisy', 'sc', 'sc secret tag note' FROM m WHERE who = 'c'
	UNION ALL
	SELECT member_id, 'quiet', 'sa', 'sa own tag note' FROM m WHERE who = 'a'
	UNION ALL
	SELECT member_id, 'vip', NULL, 'hq tag note' FROM m WHERE who = 'a';
});

# --- the least-privilege login, as docs/operations.md sets it up -----
$hq->safe_psql('postgres', q{
	CREATE ROLE repl_sa LOGIN REPLICATION PASSWORD 'repl-sa-secret';
	SELECT loyalty.replica_store_add('add-sa', 'sa');
	SELECT loyalty.replica_store_add('add-sc', 'sc');
	SELECT loyalty.replica_login_grant('login-sa', 'sa', 'repl_sa');
});
$hq->safe_psql('postgres', q{SELECT loyalty.replica_slot_create('sa')});
is($hq->safe_psql('postgres', q{SELECT pg_has_role('repl_sa', 'loyalty_replication', 'MEMBER') || '/' ||
	(SELECT store_code FROM loyalty.replica_login WHERE login = 'repl_sa')}),
	'true/sa', 'replica_login_grant: the login is a member of loyalty_replication, mapped to its store');
my ($ret, $out, $err) = $hq->psql('postgres', q{SELECT loyalty.replica_login_grant('login-sa-2', 'sc', 'repl_sa')});
like($err, qr/login "repl_sa" already replicates another store/, 'one login serves one store');
($ret, $out, $err) = $hq->psql('postgres', q{SELECT loyalty.replica_login_grant('login-x', 'sa', 'postgres')});
like($err, qr/must have LOGIN and REPLICATION, and neither SUPERUSER nor BYPASSRLS/, 'a superuser cannot be a store\'s login');
($ret, $out, $err) = $hq->psql('postgres', q{SELECT loyalty.replica_login_grant('login-y', 'nosuch', 'repl_sa')});
like($err, qr/store "nosuch" has no replica/, 'an unknown store is refused');
is($hq->safe_psql('postgres', q{SELECT count(*) FROM loyalty.replica_login}), '1', 'bad calls wrote nothing');

# a second slot of the same publication, to decode
$hq->safe_psql('postgres', q{SELECT pg_create_logical_replication_slot('t083', 'pgoutput')});

# the store subscribes as repl_sa; HQ's key file is installed at the store
# (the keyed phone hash), before the store first uses a key
copy(key_file($hq), key_file($sa)) or die "copy key: $!";
chmod 0600, key_file($sa);
$sa->safe_psql('postgres', 'SELECT loyalty.key_create()');    # adopts HQ's key, records its fingerprint
my $conn = $hq->connstr('postgres') . ' user=repl_sa';
$sa->safe_psql('postgres', "SELECT loyalty.store_subscribe(\$\$$conn\$\$, 'sa')");
$sa->wait_for_subscription_sync($hq, 'loyalty_store_sa');

# --- changes at HQ, decoded from the slot ----------------------------
$hq->safe_psql('postgres', q{
	SELECT loyalty.member_enroll('e-c2', 'sc', 'Cora Store', phone => '13955556666',
	       email => 'cora@example.com', birth_date => '1979-03-04');
	SELECT loyalty.risk_tag_raise('r-c2', (SELECT member_id FROM m WHERE who = 'c'), 'sc',
	                              'unresolved_violation', 'sc later risk note', 30);
	SELECT loyalty.risk_tag_raise('r-a2', (SELECT member_id FROM m WHERE who = 'a'), 'sa',
	                              'unresolved_violation', 'sa later risk note', 20);
	INSERT INTO loyalty.member_tag (member_id, code, store_code, note)
	SELECT member_id, 'late', 'sc', 'sc later tag note' FROM m WHERE who = 'a';
	UPDATE loyalty.member_profile SET phone = '13977778888', email = 'alice2@example.com'
	 WHERE member_id = (SELECT member_id FROM m WHERE who = 'a');
});

# whether the text appears in the changes decoded for a publication
sub in_stream
{
	my ($pub, $text) = @_;
	return $hq->safe_psql('postgres', qq{
		SELECT coalesce(bool_or(position(convert_to('$text', 'UTF8') IN data) > 0), false)
		  FROM pg_logical_slot_peek_binary_changes('t083', NULL, NULL,
		       'proto_version', '1', 'publication_names', '$pub')});
}

is($hq->safe_psql('postgres', q{SELECT count(*) > 5 FROM pg_logical_slot_peek_binary_changes('t083', NULL, NULL,
	'proto_version', '1', 'publication_names', 'loyalty_store_sa')}), 't', 'the slot of store sa decodes changes');
my $masked = $hq->safe_psql('postgres', q{SELECT loyalty.mask_phone('13977778888')});
is(in_stream('loyalty_store_sa', 'sa later risk note'), 't', 'decoded for sa: its own risk-tag note');
is(in_stream('loyalty_store_sa', $masked), 't', 'decoded for sa: the masked phone');
is(in_stream('loyalty_store_sa', 'Cora Store'), 't', 'decoded for sa: a new member of another store, by name');
for my $secret ('sc later risk note', 'sc later tag note', '13955556666', '13977778888',
	'cora@example.com', 'alice2@example.com', '1979-03-04')
{
	is(in_stream('loyalty_store_sa', $secret), 'f', "decoded for sa: no \"$secret\"");
}
# the same slot decoded for store sc carries sc's note (the check above
# would see it if it were there)
is(in_stream('loyalty_store_sc', 'sc later risk note'), 't', 'decoded for sc: its own risk-tag note');
is(in_stream('loyalty_store_sc', 'sa later risk note'), 'f', 'decoded for sc: not sa\'s note');

# --- what the store holds --------------------------------------------
$hq->safe_psql('postgres', q{UPDATE loyalty.store SET region = 'barrier' WHERE store_code = 'sa'});
$sa->poll_query_until('postgres', q{SELECT region = 'barrier' FROM loyalty.store WHERE store_code = 'sa'})
  or die 'store sa did not catch up';
is($sa->safe_psql('postgres', q{
	SELECT count(*) || '/' || count(*) FILTER (WHERE phone IS NOT NULL OR email IS NOT NULL
	                                          OR birth_date IS NOT NULL OR address IS NOT NULL)
	  FROM loyalty.member_profile}),
	'3/0', 'store: every member\'s profile row, without phone, email, birth date or address');
is($sa->safe_psql('postgres', q{
	SELECT string_agg(full_name || ':' || phone_masked || ':' || birth_month_day, ',' ORDER BY full_name)
	  FROM loyalty.replica_member_contact}),
	join(',', 'Alice Store:' . $masked . ':05-17',
		'Carl Store:' . $hq->safe_psql('postgres', q{SELECT loyalty.mask_phone('13933334444')}) . ':11-02',
		'Cora Store:' . $hq->safe_psql('postgres', q{SELECT loyalty.mask_phone('13955556666')}) . ':03-04'),
	'store: masked phones and birth month-day only');
is($sa->safe_psql('postgres', q{
	SELECT count(*) FROM loyalty.replica_member_contact
	 WHERE email_masked LIKE '%example.com' AND (email_masked LIKE 'alice%' OR email_masked LIKE 'carl%' OR email_masked LIKE 'cora%')}),
	'0', 'store: no full email');
is($sa->safe_psql('postgres', q{
	SELECT string_agg(note, ',' ORDER BY note) FROM loyalty.risk_tag WHERE store_code = 'sa'}),
	'sa later risk note,sa own risk note', 'store: its own risk tags with their notes');
is($sa->safe_psql('postgres', q{
	SELECT count(*) || '/' || count(*) FILTER (WHERE note LIKE 'sc %') FROM loyalty.risk_tag WHERE store_code = 'sc'}),
	'2/0', 'store: other stores\' risk tags (they freeze chain-wide), without their notes');
is($sa->safe_psql('postgres', q{SELECT count(*) FROM loyalty.replica_risk_note WHERE store_code <> 'sa'}),
	'0', 'store: no note row of another store');
is($sa->safe_psql('postgres', q{SELECT string_agg(code || ':' || note, ',' ORDER BY code) FROM loyalty.member_tag}),
	'quiet:sa own tag note', 'store: only its own behaviour tags (none of sc, none of HQ)');

# a resolved tag of another store: the store's copy stays consistent
$hq->safe_psql('postgres', q{
	SELECT loyalty.risk_tag_resolve('res-c', tag_id, 'settled', 'sc paid the minibar') FROM loyalty.risk_tag
	 WHERE note = 'sc secret risk note';
	UPDATE loyalty.store SET region = 'barrier 2' WHERE store_code = 'sa';});
$sa->poll_query_until('postgres', q{SELECT region = 'barrier 2' FROM loyalty.store WHERE store_code = 'sa'})
  or die 'store sa did not catch up';
is($sa->safe_psql('postgres', q{
	SELECT count(*) FROM loyalty.risk_tag WHERE store_code = 'sc' AND resolved_at IS NOT NULL
	   AND resolution_note NOT LIKE 'sc %'}),
	'1', 'store: another store\'s resolution arrives without its note');

# --- lookup by exact phone at the store --------------------------------
$sa->safe_psql('postgres', q{SELECT loyalty.staff_create('staff-amy', 'amy_sa', 'sa', 'frontdesk')});
is($sa->safe_psql('postgres', q{SELECT full_name || ':' || phone_masked FROM loyalty.store_member_find('13933334444')},
		extra_params => ['-U', 'amy_sa']),
	'Carl Store:' . $hq->safe_psql('postgres', q{SELECT loyalty.mask_phone('13933334444')}),
	'a front desk at the store finds a member by exact phone (keyed hash)');
is($sa->safe_psql('postgres', q{SELECT count(*) FROM loyalty.store_member_find('13933334445')},
		extra_params => ['-U', 'amy_sa']),
	'0', 'another phone finds nobody');
($ret, $out, $err) = $sa->psql('postgres', q{SELECT * FROM loyalty.store_member_find('138****4444')},
	extra_params => ['-U', 'amy_sa']);
like($err, qr/invalid phone number/, 'a masked phone is refused (22023)');
unlike($err, qr/4444/, 'the rejected value is not echoed');

$sa->stop;
$hq->stop;
done_testing();
