# Copyright (c) 2026, The pg_shield Developers

# A backend crash resets pg_shield's shared state.
#
# When a backend dies by SIGKILL the postmaster kills every process and
# reinitializes shared memory.  pg_shield's statistics live there, so they
# start again: stats_reset moves forward, the fingerprints counted before
# the crash are gone, and statements are counted again once the server is
# back.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
restart_after_crash = on
});
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_shield;
CREATE ROLE regress_crash LOGIN;
CREATE TABLE pgsh_crash (id int PRIMARY KEY, val int);
INSERT INTO pgsh_crash SELECT g, g * 10 FROM generate_series(1, 10) g;
GRANT SELECT ON pgsh_crash TO regress_crash;
});

my $crash_connstr = $node->connstr('postgres') . ' user=regress_crash';

my $plan = $node->safe_psql('postgres',
	'EXPLAIN (VERBOSE) SELECT val FROM pgsh_crash WHERE id = 1');
$plan =~ /Query Identifier: (-?\d+)/
  or die "no query identifier in EXPLAIN output: $plan";
my $queryid = $1;

my $fp_query = qq{
SELECT calls, rows, errors FROM shield.query_stats
WHERE rolname = 'regress_crash' AND queryid = $queryid};
my $role_query = q{
SELECT calls, rows, errors FROM shield.role_stats
WHERE rolname = 'regress_crash'};

$node->safe_psql(
	'postgres',
	join('', map { "SELECT val FROM pgsh_crash WHERE id = $_;\n" } 1 .. 4),
	connstr => $crash_connstr);

is($node->safe_psql('postgres', $fp_query),
	'4|4|0', 'statements are counted before the crash');
is($node->safe_psql('postgres', $role_query),
	'4|4|0', 'the role is counted before the crash');

my $reset_before =
  $node->safe_psql('postgres', 'SELECT stats_reset FROM shield.status');

# A session of the counted role, busy with statements of its own, is the
# one that dies.
my $victim = $node->background_psql('postgres', on_error_stop => 0);
$victim->query_safe('SET ROLE regress_crash');
$victim->query_safe('SELECT val FROM pgsh_crash WHERE id = 5');
my $pid = $victim->query_safe('SELECT pg_backend_pid()');
like($pid, qr/^\d+$/, 'victim backend pid');
is($node->safe_psql('postgres', $fp_query),
	'5|5|0', "the victim's statement is counted");

my $log_offset = -s $node->logfile;
is(kill('KILL', $pid), 1, "sent SIGKILL to backend $pid");

$node->wait_for_log(qr/all server processes terminated; reinitializing/,
	$log_offset);
ok( $node->log_contains(
		qr/(?:server process|client backend) \(PID $pid\) was terminated by signal 9/,
		$log_offset),
	'the postmaster saw the backend die');

# The victim's psql is still waiting for input; let it go.
$victim->quit;

# Once the server accepts connections again, shared memory is new.
ok( $node->poll_query_until(
		'postgres', qq{
SELECT stats_reset > '$reset_before'::timestamptz FROM shield.status}),
	'stats_reset moved forward after the crash');

is($node->safe_psql('postgres', $fp_query),
	'', 'the fingerprint counted before the crash is gone');
is($node->safe_psql('postgres', $role_query),
	'', 'the role counted before the crash is gone');
is($node->safe_psql('postgres', 'SELECT evictions FROM shield.status'),
	'0', 'eviction counter restarted');

# Counting starts again.
$node->safe_psql(
	'postgres',
	join('', map { "SELECT val FROM pgsh_crash WHERE id = $_;\n" } 6 .. 7),
	connstr => $crash_connstr);
is($node->safe_psql('postgres', $fp_query),
	'2|2|0', 'statements after the crash are counted from zero');
is($node->safe_psql('postgres', $role_query),
	'2|2|0', 'the role is counted from zero after the crash');
is( $node->safe_psql(
		'postgres', qq{
SELECT query FROM shield.query_stats
WHERE rolname = 'regress_crash' AND queryid = $queryid}),
	'SELECT val FROM pgsh_crash WHERE id = 6',
	'the query text is the first one seen after the crash');

$node->stop;

done_testing();
