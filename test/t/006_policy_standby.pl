# Copyright (c) 2026, The pg_shield Developers

# Policies on a physical standby (they replicate
# to physical standbys and are enforced there; after commit, new statements
# in every backend see the change, with no reconnect and no reload).
#
# A policy declared, re-declared or dropped on the primary reaches the
# standby through WAL; its commit record carries the relcache invalidation
# of shield.policy, so one standby session that stays connected the whole
# time sees each change at its next statement after replay.  The standby
# itself is read-only: the set_* and drop_* functions fail there with
# SQLSTATE 25006.  Fingerprints are the same on both sides.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('policy_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
});
$primary->start;

$primary->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_shield;
CREATE ROLE regress_app LOGIN;
CREATE ROLE regress_migrator LOGIN;
CREATE TABLE pgsh_items (id int PRIMARY KEY, val text);
INSERT INTO pgsh_items SELECT g, 'item ' || g FROM generate_series(1, 10) g;
GRANT SELECT ON pgsh_items TO regress_app;
GRANT EXECUTE ON FUNCTION
    shield.set_role_policy(regrole, int, interval, float8, interval, float8, text, text, int),
    shield.drop_role_policy(regrole)
  TO regress_migrator;
});

$primary->backup('policy_backup');
my $standby = PostgreSQL::Test::Cluster->new('policy_standby');
$standby->init_from_backup($primary, 'policy_backup', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'),
	't', 'the standby is in recovery');

my $stmt = 'SELECT val FROM pgsh_items WHERE id = $1';

# The fingerprint is the core query identifier: the standby has the same
# catalogs, so the same fingerprint as the primary.
my $primary_fp = $primary->safe_psql('postgres',
	"SELECT shield.fingerprint('$stmt')");
isnt($primary_fp, '0', 'the statement has a fingerprint on the primary');
is($standby->safe_psql('postgres', "SELECT shield.fingerprint('$stmt')"),
	$primary_fp, 'fingerprint() on the standby equals the primary\'s');

# One standby session for the whole test: it must never need a reconnect.
my $session = $standby->background_psql('postgres');
my $session_pid = $session->query_safe('SELECT pg_backend_pid()');

my $effective_sql = qq{
SELECT limit_name, value, scope, mode
FROM shield.effective_policy('$stmt', 'regress_app')};

is($session->query_safe($effective_sql),
	'priority|normal|default|enforce',
	'standby session: no policy applies at first');

# Declare.
$primary->safe_psql(
	'postgres', q{
SELECT shield.set_role_policy('regress_app', max_concurrent => 5,
    queue_timeout => '100ms', deadline => '2s', priority => 'low');
});
$primary->wait_for_catchup($standby);
is( $session->query_safe($effective_sql),
	join("\n",
		'max_concurrent|5|role|enforce',
		'queue_timeout|100 ms|role|enforce',
		'deadline|2000 ms|role|enforce',
		'priority|low|role|enforce'),
	'standby session: the declared role policy applies at the next statement');

# Re-declare with other values, and add a query policy by text.
$primary->safe_psql(
	'postgres', qq{
SELECT shield.set_role_policy('regress_app', max_concurrent => 7,
    max_rate => 30, mode => 'monitor');
SELECT shield.set_query_policy('$stmt', max_cost => 50,
    breaker_failures => 2, breaker_cooldown => '5s', priority => 'critical');
});
$primary->wait_for_catchup($standby);
is( $session->query_safe($effective_sql),
	join("\n",
		'max_concurrent|7|role|monitor',
		'max_rate|30 per second|role|monitor',
		'max_cost|50|query|enforce',
		'breaker_failures|2|query|enforce',
		'breaker_cooldown|5000 ms|query|enforce',
		'priority|critical|query|enforce'),
	'standby session: the re-declared and the new policy apply');
is( $session->query_safe(
		"SELECT queryid FROM shield.policies WHERE scope = 'query'"),
	$primary_fp,
	'standby session: the replicated query policy has the primary\'s fingerprint');
is( $session->query_safe(
		"SELECT count(*) FROM shield.effective_policy('$stmt', 'regress_app') "
		  . "WHERE queryid = $primary_fp"),
	'6',
	'standby session: effective_policy() reports that fingerprint');

# A change the primary rolls back reaches nobody.
$primary->safe_psql(
	'postgres', q{
BEGIN;
SELECT shield.drop_role_policy('regress_app');
ROLLBACK;
});
$primary->wait_for_catchup($standby);
is($session->query_safe("SELECT count(*) FROM ($effective_sql) e WHERE scope = 'role'"),
	'2', 'standby session: a rolled-back drop changes nothing');

# Drop, through a migration role holding EXECUTE only.
$primary->safe_psql(
	'postgres', q{
SELECT shield.drop_role_policy('regress_app');
},
	connstr => $primary->connstr('postgres') . ' user=regress_migrator');
$primary->wait_for_catchup($standby);
is( $session->query_safe($effective_sql),
	join("\n",
		'max_cost|50|query|enforce',
		'breaker_failures|2|query|enforce',
		'breaker_cooldown|5000 ms|query|enforce',
		'priority|critical|query|enforce'),
	'standby session: the dropped role policy no longer applies');

$primary->safe_psql('postgres',
	"SELECT shield.drop_query_policy($primary_fp)");
$primary->wait_for_catchup($standby);
is($session->query_safe($effective_sql),
	'priority|normal|default|enforce',
	'standby session: no policy applies after both are dropped');

# Inside an open transaction block the next statement still sees a change
# (the cache reads committed policies with a fresh snapshot), whether or not
# the statement names a relation.
my $plain_sql = q{
SELECT limit_name, value, scope, mode
FROM shield.effective_policy('SELECT 1', 'regress_app')};
$session->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
is($session->query_safe($effective_sql),
	'priority|normal|default|enforce',
	'standby session: a transaction starts with no policy');
is($session->query_safe($plain_sql),
	'priority|normal|default|enforce',
	'standby session: no policy for a statement naming no relation either');
$primary->safe_psql('postgres',
	"SELECT shield.set_role_policy('regress_app', max_concurrent => 3)");
$primary->wait_for_catchup($standby);
is( $session->query_safe($plain_sql),
	"max_concurrent|3|role|enforce\npriority|normal|role|enforce",
	'standby session, same transaction: the new policy applies to the '
	  . 'next statement naming no relation');
is( $session->query_safe($effective_sql),
	"max_concurrent|3|role|enforce\npriority|normal|role|enforce",
	'standby session, same transaction: the new policy applies to the next '
	  . 'statement naming a table');
$session->query_safe('COMMIT');

is($session->query_safe('SELECT pg_backend_pid()'),
	$session_pid, 'the standby session was never reconnected');
$session->quit;

# Every other session of the standby sees the same.
is( $standby->safe_psql(
		'postgres', q{
SELECT rolname, scope, max_concurrent FROM shield.policies}),
	'regress_app|role|3',
	'a new standby session sees the replicated policy');

# The standby is read-only: declaring or dropping there fails with 25006
# and changes nothing.
my @writes = (
	"SELECT shield.set_role_policy('regress_app', max_concurrent => 1)",
	"SELECT shield.set_query_policy('$stmt', max_cost => 1)",
	"SELECT shield.set_query_policy(${primary_fp}::bigint, max_cost => 1)",
	"SELECT shield.drop_role_policy('regress_app')",
	"SELECT shield.drop_query_policy(${primary_fp})");
for my $sql (@writes)
{
	my ($ret, $stdout, $stderr) = $standby->psql('postgres',
		"\\set VERBOSITY verbose\n$sql");
	isnt($ret, 0, "standby rejects: $sql");
	like(
		$stderr,
		qr/ERROR:  25006: cannot change policies during recovery/s,
		"standby: SQLSTATE 25006 for $sql");
}
# Also as a role that holds EXECUTE and nothing else.
my ($ret, $stdout, $stderr) = $standby->psql(
	'postgres',
	"\\set VERBOSITY verbose\n"
	  . "SELECT shield.set_role_policy('regress_app', max_concurrent => 1)",
	connstr => $standby->connstr('postgres') . ' user=regress_migrator');
like(
	$stderr,
	qr/ERROR:  25006: cannot change policies during recovery/,
	'standby: SQLSTATE 25006 for a migration role too');
is( $standby->safe_psql(
		'postgres', q{
SELECT rolname, scope, max_concurrent FROM shield.policies}),
	'regress_app|role|3',
	'the failed writes on the standby changed nothing');

# Direct writes to the table are read-only errors too.
($ret, $stdout, $stderr) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nDELETE FROM shield.policy");
like(
	$stderr,
	qr/ERROR:  25006: cannot execute DELETE in a read-only transaction/,
	'standby: a direct DELETE from shield.policy fails with 25006');

# And the primary is unaffected.
is( $primary->safe_psql(
		'postgres', q{
SELECT rolname, scope, max_concurrent FROM shield.policies}),
	'regress_app|role|3',
	'the primary still has the policy');

$standby->stop;
$primary->stop;

done_testing();
