# Copyright (c) 2026, The pg_shield Developers

# Statistics are recorded without stats_lock once a backend has cached its
# entries (src/stats.c, src/stats_table.c): an entry is written through a cached pointer only
# while the table's generation says no entry was removed since, removals
# wait for the entry's spinlock, and a recycled entry's spinlock is never
# initialized again.  Here four clients run more statement shapes than the
# fingerprint table holds, so that it evicts all the time, while a fifth
# resets the statistics in a loop.  Afterwards the server is up, no entry
# holds an impossible count, and counting is exact again.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('churn');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
pg_shield.max_fingerprints = 100
pg_shield.max_roles = 10
autovacuum = off
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_shield');

# 120 statement shapes (SELECT 1, SELECT 1 + 1, ...), one pgbench script
# each; pgbench takes at most 128 scripts
my $dir = PostgreSQL::Test::Utils::tempdir;
my @shapes;
for my $k (1 .. 120)
{
	my $file = "$dir/shape$k.sql";
	open my $fh, '>', $file or die "could not write $file: $!";
	print $fh 'SELECT ' . join(' + ', ('1') x $k) . ";\n";
	close $fh;
	push @shapes, '-f', $file;
}
open my $fh, '>', "$dir/reset.sql" or die "could not write reset.sql: $!";
print $fh "SELECT shield.reset();\n";
close $fh;

my @connect = ('-h', $node->host, '-p', $node->port, 'postgres');

# first alone: the table evicts
$node->pgbench(
	'-n -c 4 -j 2 -t 300 ' . join(' ', @shapes),
	0,
	[qr/processed: 1200\/1200/],
	[qr/^$/],
	'clients running 120 shapes alone');
is( $node->safe_psql(
		'postgres', q{
SELECT fingerprints <= max_fingerprints AND evictions > 0 FROM shield.status}),
	't',
	'the fingerprint table evicted and stayed bounded');

# then while the statistics are reset in a loop
my ($churn_out, $churn_err, $reset_out, $reset_err);
my $churn = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '4', '-j', '2', '-T', '6', @shapes, @connect ],
	'>', \$churn_out, '2>', \$churn_err);
my $resets = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '1', '-T', '6', '-f', "$dir/reset.sql", @connect ],
	'>', \$reset_out, '2>', \$reset_err);
ok($churn->finish, 'clients running 120 shapes finished cleanly')
  or diag($churn_err);
ok($resets->finish, 'the reset loop finished cleanly') or diag($reset_err);
my ($statements) = $churn_out =~ /number of transactions actually processed: (\d+)/;
my ($reset_count) = $reset_out =~ /number of transactions actually processed: (\d+)/;
cmp_ok($statements // 0, '>', 1000, 'the clients ran many statements');
cmp_ok($reset_count // 0, '>', 10, 'statistics were reset many times meanwhile');

# the table stayed bounded (its eviction count restarts at every reset);
# no entry holds an impossible count
is( $node->safe_psql(
		'postgres', q{
SELECT fingerprints <= max_fingerprints FROM shield.status}),
	't',
	'the fingerprint table stayed bounded');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM shield.query_stats
WHERE calls < 0 OR errors <> 0 OR rows <> calls OR query IS NULL}),
	'0',
	'every fingerprint entry is consistent');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM shield.role_stats WHERE calls < 0 OR errors <> 0}),
	'0',
	'every role entry is consistent');

# quiet again: counting is exact, through the entries cached during the churn
$node->safe_psql('postgres', 'SELECT shield.reset()');
$node->pgbench(
	'-n -c 1 -t 50 -f ' . "$dir/shape2.sql",
	0,
	[qr/processed: 50\/50/],
	[qr/^$/],
	'one shape, 50 times');
is( $node->safe_psql(
		'postgres', q{
SELECT calls FROM shield.query_stats WHERE query = 'SELECT 1 + 1'}),
	'50',
	'every statement after the churn is counted once');
is( $node->safe_psql(
		'postgres', q{
SELECT calls >= 50 FROM shield.role_stats
WHERE rolname = current_user AND datname = current_database()}),
	't',
	'and in its role');

$node->stop;
done_testing();
