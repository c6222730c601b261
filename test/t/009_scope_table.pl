# Copyright (c) 2026, The pg_shield Developers

# The admission scope table is bounded (shared
# memory is fixed; the hot path inserts nothing once warm).
#
# Every role that runs a governed statement gets a role scope, counted for
# shield.role_stats.active.  With a small instance (the table holds
# 3 * 4 * MaxBackends + pg_shield.max_roles scopes), many more roles than
# that run one statement each: the table must evict idle scopes instead of
# growing into the spare shared memory that the lock table and others need.
# Eviction must never take a scope somebody holds a slot in: a limit-1 role
# that holds its slot through an open cursor during the churn still refuses
# a second statement, and admits one at once after the cursor closes.
# Sessions that end unpin their scopes: many short sessions of distinct
# roles still find room.  Eviction forgets a rate bucket only once it has
# refilled: a role limited to one statement per 100 s gets no fresh token
# from the churn.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $roles = 400;

my $node = PostgreSQL::Test::Cluster->new('scopes');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
max_connections = 5
superuser_reserved_connections = 1
max_worker_processes = 0
max_wal_senders = 0
autovacuum = off
pg_shield.max_roles = 10
});
$node->start;

$node->safe_psql(
	'postgres', qq{
CREATE EXTENSION pg_shield;
CREATE TABLE pgsh_s (id int);
INSERT INTO pgsh_s VALUES (1), (2);
DO \$\$
BEGIN
	FOR i IN 1..$roles LOOP
		EXECUTE format('CREATE ROLE regress_scope_%s', i);
		EXECUTE format('GRANT SELECT ON pgsh_s TO regress_scope_%s', i);
	END LOOP;
END \$\$;
SELECT shield.set_role_policy('regress_scope_1', max_concurrent => 1,
							  queue_timeout => '0');
});

# shared memory that no named structure took: what a growing shared hash
# would eat into
my $free_sql =
  q{SELECT sum(allocated_size) FROM pg_shmem_allocations WHERE name IS NULL};
my $free_before = $node->safe_psql('postgres', $free_sql);

# regress_scope_1 holds its only slot through an open cursor
my $holder = $node->background_psql('postgres', on_error_stop => 1);
$holder->query_safe(q{SET ROLE regress_scope_1});
$holder->query_safe(q{BEGIN});
$holder->query_safe(q{DECLARE c CURSOR FOR SELECT id FROM pgsh_s});
is( $node->safe_psql(
		'postgres',
		q{SELECT state FROM shield.activity WHERE rolname = 'regress_scope_1'}),
	'running',
	'the cursor holds regress_scope_1\'s slot');

# a slow rate limit: one statement per 100 s, whose only token is spent now
$node->safe_psql(
	'postgres', q{
CREATE ROLE regress_scope_rate;
GRANT SELECT ON pgsh_s TO regress_scope_rate;
SELECT shield.set_role_policy('regress_scope_rate', max_rate => 0.01);
});
is( $node->safe_psql(
		'postgres', q{SET ROLE regress_scope_rate; SELECT count(*) FROM pgsh_s}),
	'2',
	'the rate-limited role spends its only token');

# every role runs one governed statement, far more roles than the table holds
my $script = '';
for my $i (2 .. $roles)
{
	$script .= "SET ROLE regress_scope_$i; SELECT count(*) FROM pgsh_s; RESET ROLE;\n";
}
my ($stdout, $stderr);
$node->psql('postgres', $script, stdout => \$stdout, stderr => \$stderr,
	on_error_stop => 1);
is($stderr, '', 'statements of ' . ($roles - 1) . ' roles all ran');

is($node->safe_psql('postgres', $free_sql),
	$free_before,
	'the scope table did not grow into the spare shared memory');

# the evictions kept the rate-limited role's empty bucket: no fresh token
my ($rate_ret, $rate_out, $rate_err) = $node->psql('postgres',
	q{SET ROLE regress_scope_rate; SELECT count(*) FROM pgsh_s});
like($rate_err, qr/rate limit exceeded/,
	'evicting idle scopes did not refill a slow rate limit');

# the held slot survived the evictions
my ($ret, $out, $err) = $node->psql(
	'postgres',
	q{SET ROLE regress_scope_1; SELECT count(*) FROM pgsh_s});
like($err, qr/concurrency limit reached/,
	'the limit-1 role still refuses a second statement while its slot is held');

$holder->query_safe(q{COMMIT});
$holder->quit;

is( $node->safe_psql(
		'postgres', q{SET ROLE regress_scope_1; SELECT count(*) FROM pgsh_s}),
	'2',
	'once the cursor is closed, the role is admitted at once');
is($node->safe_psql('postgres', q{SELECT active || '/' || queued FROM shield.status}),
	'0/0', 'nothing is held or queued');

# sessions give their pins back when they end: far more short sessions,
# each as a role of its own, than the table holds scopes (each pins its
# role's scope while it lives); without the unpin at exit, the pins of the
# ended sessions would keep the table full and a later session would fail
my $sessions = 150;
my $failed = 0;
for my $i (2 .. $sessions + 1)
{
	my ($r, $o, $e) = $node->psql('postgres',
		"SET ROLE regress_scope_$i; SELECT count(*) FROM pgsh_s");
	$failed++ if $r != 0 || $o ne '2';
}
is($failed, 0, "$sessions short sessions of distinct roles all ran");

# a transaction that needs many locks still finds room in shared memory
my $tables = 200;
$node->safe_psql('postgres',
	"DO \$\$ BEGIN FOR i IN 1..$tables LOOP EXECUTE format('CREATE TABLE pgsh_l%s (a int)', i); END LOOP; END \$\$"
);
is( $node->safe_psql(
		'postgres',
		"BEGIN; DO \$\$ BEGIN FOR i IN 1..$tables LOOP EXECUTE format('LOCK TABLE pgsh_l%s', i); END LOOP; END \$\$; "
		  . "SELECT count(*) >= $tables FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation'; COMMIT;"),
	't',
	'the lock table still has its spare shared memory');

$node->stop;
done_testing();
