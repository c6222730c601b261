# Copyright (c) 2026, The pg_shield Developers

# Accounting of extended-protocol statements.
#
# pgbench runs a fixed number of transactions per client, as a plain role,
# with named prepared statements (-M prepared) and unnamed ones
# (-M extended).  Every execution is one statement of its fingerprint for
# that role: calls and rows must be exact.  A statement failing at
# execution counts once into errors and never into calls.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $clients = 3;
my $xacts   = 20;

my $node = PostgreSQL::Test::Cluster->new('protocols');
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
CREATE ROLE regress_bench LOGIN;
CREATE TABLE pgsh_bench (id int PRIMARY KEY, val int NOT NULL);
INSERT INTO pgsh_bench SELECT g, g FROM generate_series(1, 10) g;
GRANT SELECT, UPDATE ON pgsh_bench TO regress_bench;
});

is( $node->safe_psql(
		'postgres', q{SELECT rolsuper FROM pg_roles
WHERE rolname = 'regress_bench'}),
	'f',
	'regress_bench is not a superuser');

# Fingerprint of a statement with one int parameter, as the server computes
# it for pgbench's unspecified-type parameters.
sub param_queryid
{
	my ($sql) = @_;
	my $plan = $node->safe_psql(
		'postgres', qq{
PREPARE pgsh_probe(int) AS $sql;
EXPLAIN (VERBOSE) EXECUTE pgsh_probe(1);
DEALLOCATE pgsh_probe;});
	$plan =~ /Query Identifier: (-?\d+)/
	  or die "no query identifier in EXPLAIN output: $plan";
	return $1;
}

# calls|rows|errors of one fingerprint of regress_bench, with its text.
sub fp_stats
{
	my ($queryid) = @_;
	return $node->safe_psql(
		'postgres', qq{
SELECT query, calls, rows, errors FROM shield.query_stats
WHERE rolname = 'regress_bench' AND datname = 'postgres'
  AND queryid = $queryid});
}

my $select_sql = 'SELECT val FROM pgsh_bench WHERE id = $1';
my $update_sql = 'UPDATE pgsh_bench SET val = val + 1 WHERE id = $1';
my $good_sql   = 'SELECT val + 1 FROM pgsh_bench WHERE id = $1';
my $bad_sql    = 'SELECT val / (val - val) FROM pgsh_bench WHERE id = $1';

my %queryid = map { $_ => param_queryid($_) }
  ($select_sql, $update_sql, $good_sql, $bad_sql);
is(scalar(keys %{ { reverse %queryid } }),
	4, 'the four statements have four distinct fingerprints');

my $total = $clients * $xacts;

# Named prepared statements.
$node->pgbench(
	"--no-vacuum --protocol=prepared --client=$clients --transactions=$xacts"
	  . ' --username=regress_bench',
	0,
	[qr{number of transactions actually processed: $total/$total}],
	[qr{^$}],
	'pgbench -M prepared',
	{   '004_prepared' => q{
\set id random(1, 10)
SELECT val FROM pgsh_bench WHERE id = :id;
}
	});

is(fp_stats($queryid{$select_sql}),
	"$select_sql|$total|$total|0",
	"-M prepared: calls and rows are clients * transactions ($total)");

# Unnamed statements (Parse/Bind/Execute each time), a DML statement.
$node->pgbench(
	"--no-vacuum --protocol=extended --client=$clients --transactions=$xacts"
	  . ' --username=regress_bench',
	0,
	[qr{number of transactions actually processed: $total/$total}],
	[qr{^$}],
	'pgbench -M extended',
	{   '004_extended' => q{
\set id random(1, 10)
UPDATE pgsh_bench SET val = val + 1 WHERE id = :id;
}
	});

is(fp_stats($queryid{$update_sql}),
	"$update_sql|$total|$total|0",
	"-M extended: calls and rows are clients * transactions ($total)");
is( $node->safe_psql('postgres', 'SELECT sum(val) FROM pgsh_bench'),
	55 + $total,
	'every UPDATE really ran once');

# Client 0 fails at execution (division by zero on a column value, which
# the planner cannot fold) and pgbench aborts it after that first error;
# the other clients run every transaction.
my $good = ($clients - 1) * $xacts;
$node->pgbench(
	"--no-vacuum --protocol=extended --client=$clients --transactions=$xacts"
	  . ' --username=regress_bench',
	2,
	[qr{number of transactions actually processed: $good/$total}],
	[   qr{client 0 script 0 aborted in command \d+ query 0: ERROR:  division by zero}
	],
	'pgbench with a failing client',
	{   '004_errors' => q{
\set id random(1, 10)
\if :client_id = 0
SELECT val / (val - val) FROM pgsh_bench WHERE id = :id;
\else
SELECT val + 1 FROM pgsh_bench WHERE id = :id;
\endif
}
	});

is(fp_stats($queryid{$bad_sql}),
	"$bad_sql|0|0|1", 'the failing statement counts one error and no call');
is(fp_stats($queryid{$good_sql}),
	"$good_sql|$good|$good|0", 'the other clients are counted exactly');

# The role adds up every statement pgbench ran, and nothing else.
my $role_calls = 2 * $total + $good;
is( $node->safe_psql(
		'postgres', q{
SELECT calls, rows, errors FROM shield.role_stats
WHERE rolname = 'regress_bench' AND datname = 'postgres'}),
	"$role_calls|$role_calls|1",
	'role_stats sums the statements of regress_bench');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM shield.query_stats WHERE rolname = 'regress_bench'}),
	'4',
	'regress_bench has exactly the four fingerprints');

# Derived columns of the successful statements are consistent (the mean
# cost is a float sum divided by calls: allow for rounding).
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM shield.query_stats
WHERE rolname = 'regress_bench' AND calls > 0
  AND mean_exec_ms = total_exec_ms / calls
  AND 0 <= p50_exec_ms AND p50_exec_ms <= p95_exec_ms
  AND p95_exec_ms <= p99_exec_ms AND p99_exec_ms <= max_exec_ms
  AND mean_cost > 0 AND mean_cost <= max_cost * (1 + 1e-9)
  AND last_exec IS NOT NULL AND breaker_state = 'closed'}),
	'3',
	'times, percentiles, costs and last_exec are consistent');

$node->stop;

done_testing();
