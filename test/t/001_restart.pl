# Copyright (c) 2026, The pg_shield Developers

# Statistics across a clean restart of the server.
#
# pg_shield keeps its statistics in shared memory only: they are not written
# to disk at shutdown, so after a restart every counter starts again from
# zero, stats_reset is the new start time, and statements are counted again
# as soon as the server accepts connections.  The fingerprint of a
# statement is the core query identifier, so it is the same before and
# after the restart.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('restart');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
});
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_shield;
CREATE ROLE regress_counted LOGIN;
CREATE TABLE pgsh_restart (id int PRIMARY KEY, val text);
INSERT INTO pgsh_restart SELECT g, 'value ' || g FROM generate_series(1, 10) g;
GRANT SELECT ON pgsh_restart TO regress_counted;
});

my $counted_connstr = $node->connstr('postgres') . ' user=regress_counted';

# Run "SELECT val FROM pgsh_restart WHERE id = N" for each id given, as
# regress_counted, one top-level statement each, in one session.
sub run_counted
{
	my @ids = @_;
	my $sql =
	  join('', map { "SELECT val FROM pgsh_restart WHERE id = $_;\n" } @ids);
	return $node->safe_psql('postgres', $sql, connstr => $counted_connstr);
}

# The fingerprint of that statement, from EXPLAIN VERBOSE.
sub explain_queryid
{
	my $plan = $node->safe_psql('postgres',
		'EXPLAIN (VERBOSE) SELECT val FROM pgsh_restart WHERE id = 1');
	$plan =~ /Query Identifier: (-?\d+)/
	  or die "no query identifier in EXPLAIN output: $plan";
	return $1;
}

my $queryid = explain_queryid();
isnt($queryid, '0', 'statement has a fingerprint');

is( run_counted(1 .. 5),
	join("\n", map { "value $_" } 1 .. 5),
	'statements run as regress_counted');

my $fp_query = qq{
SELECT queryid, query, calls, rows, errors, last_exec IS NOT NULL
FROM shield.query_stats
WHERE rolname = 'regress_counted' AND queryid = $queryid};
my $role_query = q{
SELECT calls, rows, errors
FROM shield.role_stats
WHERE rolname = 'regress_counted'
  AND datname = current_database()};

is( $node->safe_psql('postgres', $fp_query),
	"$queryid|SELECT val FROM pgsh_restart WHERE id = 1|5|5|0|t",
	'query_stats counts the five statements under one fingerprint');
is($node->safe_psql('postgres', $role_query),
	'5|5|0', 'role_stats counts the five statements');

my $reset_before =
  $node->safe_psql('postgres', 'SELECT stats_reset FROM shield.status');
ok( $node->safe_psql('postgres',
		'SELECT fingerprints >= 1 AND evictions = 0 FROM shield.status') eq
	  't',
	'status tracks the fingerprints');

$node->restart;

# The views answer right after the restart.
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM shield.status
WHERE stats_reset > '$reset_before'::timestamptz}),
	'1',
	'status has one row and stats_reset moved forward across the restart');
is($node->safe_psql('postgres', $fp_query),
	'', 'the fingerprint counted before the restart is gone');
is($node->safe_psql('postgres', $role_query),
	'', 'the role counted before the restart is gone');
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM shield.query_stats
WHERE rolname = 'regress_counted'}),
	'0',
	'no statistics of regress_counted survive the restart');

# Counting goes on, from zero, with the same fingerprint.
is(explain_queryid(), $queryid,
	'the fingerprint is the same after the restart');

run_counted(6 .. 8);
is( $node->safe_psql('postgres', $fp_query),
	"$queryid|SELECT val FROM pgsh_restart WHERE id = 6|3|3|0|t",
	'statements after the restart are counted from zero');
is($node->safe_psql('postgres', $role_query),
	'3|3|0', 'role_stats counts from zero after the restart');
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM shield.query_stats
WHERE rolname = 'regress_counted' AND last_exec < '$reset_before'::timestamptz}
	),
	'0',
	'no statement is dated before the restart');

$node->stop;

done_testing();
