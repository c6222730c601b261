# Copyright (c) 2026, The pg_shield Developers

# Circuit breakers with the instance's defaults, across their whole cycle,
# as the server log and shield.events tell it.
#
#  - pg_shield.breaker_failures and pg_shield.breaker_cooldown, set with
#    ALTER SYSTEM and a reload, give every fingerprint without a query
#    policy of its own a breaker.
#  - After 2 consecutive failures (statement_timeout) the breaker opens;
#    statements are rejected at once with 53S05 and a HINT "Retry after N
#    ms." whose N is the time left of the cooldown.
#  - After the cooldown one probe runs; its success closes the breaker.
#    Every transition is an event and a log line.
#  - The breaker survives the eviction of its fingerprint's statistics
#    entries (a churn of distinct statements through a table of 100).
#  - A query policy's breaker_failures overrides the default.
#  - A probe whose backend is terminated gives no verdict, whether it was
#    running (a DO) or waiting in the admission queue (FATAL skips the
#    error handling that says so): the next statement probes, instead of
#    being turned away by a breaker half open for a probe that is gone.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('breakers');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
pg_shield.max_fingerprints = 100
});
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_shield;
CREATE ROLE regress_brk LOGIN;
CREATE TABLE brk_t (secs float8);
INSERT INTO brk_t VALUES (10);
GRANT SELECT, UPDATE ON brk_t TO regress_brk;
ALTER SYSTEM SET pg_shield.breaker_failures = 2;
ALTER SYSTEM SET pg_shield.breaker_cooldown = '1500ms';
SELECT pg_reload_conf();
});
ok( $node->poll_query_until(
		'postgres', q{SELECT current_setting('pg_shield.breaker_failures') = '2'}),
	'the defaults are reloaded');

my $brk = $node->connstr('postgres') . ' user=regress_brk';
my $query = 'SELECT pg_sleep(secs) FROM brk_t';
my $fp = $node->safe_psql('postgres', "SELECT shield.fingerprint('$query')");

sub run_as_brk
{
	my ($sql) = @_;
	my ($ret, $stdout, $stderr) =
	  $node->psql('postgres', $sql, connstr => $brk);
	return $stderr;
}

my $log_offset = -s $node->logfile;
like(run_as_brk("SET statement_timeout = '20ms'; $query"),
	qr/statement timeout/, 'first failure');
like(run_as_brk("SET statement_timeout = '20ms'; $query"),
	qr/statement timeout/, 'second failure');

my @hints;
for (1 .. 3)
{
	my $stderr = run_as_brk($query);
	like($stderr,
		qr/ERROR:  circuit breaker open\nDETAIL:  The circuit breaker of fingerprint $fp is open after 2 consecutive failures \(breaker_failures 2, pg_shield.breaker_failures\); it lets a probe through in \d+ ms\.\nHINT:  Retry after (\d+) ms\./,
		'open: rejected with the time left of the cooldown');
	push @hints, $1 if $stderr =~ /Retry after (\d+) ms/;
}
ok(@hints == 3 && $hints[0] <= 1500 && $hints[0] > 0,
	"the first hint is within the cooldown ($hints[0] ms)");
ok($hints[2] <= $hints[0], 'and the hints count down');
is( $node->safe_psql(
		'postgres', "SELECT state, failures, breaker_failures FROM shield.breakers WHERE queryid = $fp"),
	'open|2|2',
	'shield.breakers shows it open');
is(run_as_brk('SELECT count(*) FROM brk_t'), '',
	'another fingerprint runs');

# The statistics entries of the fingerprint are evicted by a churn of
# distinct statements; the breaker stays open.
$node->safe_psql(
	'postgres',
	join('',
		map { 'SELECT ' . join(', ', ('secs') x $_) . " FROM brk_t;\n" }
		  1 .. 300),
	connstr => $brk);
ok($node->safe_psql('postgres', 'SELECT evictions > 0 FROM shield.status') eq 't',
	'statistics entries were evicted');
like(run_as_brk($query), qr/circuit breaker open/,
	'the breaker outlived the eviction');

# After the cooldown, one probe; its success closes the breaker.
$node->safe_psql('postgres', 'UPDATE brk_t SET secs = 0');
usleep(1_600_000);
is(run_as_brk($query), '', 'after the cooldown the probe runs');
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM shield.breakers WHERE queryid = $fp"),
	'0', 'its success closed the breaker');
is(run_as_brk($query), '', 'and the fingerprint runs again');

is( $node->safe_psql(
		'postgres', qq{
SELECT string_agg(action || ':' || enforced, ' ' ORDER BY at)
FROM shield.events WHERE queryid = $fp AND action LIKE 'breaker%'
  AND action <> 'breaker_open'}),
	'breaker_tripped:true breaker_half_open:true breaker_closed:true',
	'every transition is an event');
my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/pg_shield breaker_tripped: Fingerprint $fp failed 2 times in a row/,
	'the log says it opened');
like($log, qr/pg_shield breaker_half_open: The circuit breaker of fingerprint $fp is half open/,
	'that it let a probe through');
like($log, qr/pg_shield breaker_closed: The probe of fingerprint $fp succeeded/,
	'and that it closed');

# A query policy's setting overrides the default.
$node->safe_psql('postgres', 'UPDATE brk_t SET secs = 10');
$node->safe_psql('postgres',
	"SELECT shield.set_query_policy('$query', breaker_failures => 1)");
like(run_as_brk("SET statement_timeout = '20ms'; $query"),
	qr/statement timeout/, 'one failure');
like(run_as_brk($query), qr/circuit breaker open/,
	'opens the breaker of a query policy with breaker_failures 1');
is( $node->safe_psql(
		'postgres', "SELECT breaker_state FROM shield.query_stats WHERE queryid = $fp"),
	'open', 'shield.query_stats shows it open');

# A probe terminated while it runs: a DO, whose breaker opens after two
# failures.
my $do = q{DO $$BEGIN PERFORM pg_sleep(secs) FROM brk_t; END $$};
like(run_as_brk("SET statement_timeout = '20ms'; $do"),
	qr/statement timeout/, 'the DO fails once');
like(run_as_brk("SET statement_timeout = '20ms'; $do"),
	qr/statement timeout/, 'twice');
like(run_as_brk($do), qr/circuit breaker open/, 'its breaker is open');
my $do_fp = $node->safe_psql('postgres',
	"SELECT queryid FROM shield.breakers WHERE state = 'open' AND queryid <> $fp");
usleep(1_600_000);

sub terminate_probe
{
	my ($queryid, $what) = @_;
	ok( $node->poll_query_until(
			'postgres',
			"SELECT state = 'half_open' FROM shield.breakers WHERE queryid = $queryid"),
		"$what: the probe is let through");
	my $pid = $node->safe_psql('postgres',
		"SELECT probe_pid FROM shield.breakers WHERE queryid = $queryid");
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	ok( $node->poll_query_until(
			'postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
		"$what: the probe's backend is terminated");
	is( $node->safe_psql(
			'postgres', "SELECT state FROM shield.breakers WHERE queryid = $queryid"),
		'open', "$what: the breaker is open again, with no probe");
}

my $probe = $node->background_psql('postgres');
$probe->query_safe('SET ROLE regress_brk');
$probe->query_until(qr/started/, "\\echo started\n$do;\n");
terminate_probe($do_fp, 'a running DO');
eval { $probe->quit };
$node->safe_psql('postgres', 'UPDATE brk_t SET secs = 0');
is(run_as_brk($do), '', 'the next DO probes, and succeeds');
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM shield.breakers WHERE queryid = $do_fp"),
	'0', 'which closes the breaker');

# A probe terminated while it waits in the admission queue: the breaker
# of the query policy above is open, and the role's only slot is taken.
$node->safe_psql('postgres',
	"SELECT shield.set_role_policy('regress_brk', max_concurrent => 1, queue_timeout => '60 s')");
my $holder = $node->background_psql('postgres');
$holder->query_safe('SET ROLE regress_brk');
$holder->query_safe('BEGIN');
$holder->query_safe('DECLARE c CURSOR FOR SELECT 1');
usleep(1_600_000);
$probe = $node->background_psql('postgres');
$probe->query_safe('SET ROLE regress_brk');
$probe->query_until(qr/started/, "\\echo started\n$query;\n");
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 1 FROM shield.activity WHERE state = 'queued'}),
	'the probe waits in the queue');
terminate_probe($fp, 'a queued statement');
eval { $probe->quit };
$holder->query_safe('COMMIT');
$holder->quit;
is(run_as_brk($query), '', 'the next statement probes, and succeeds');
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM shield.breakers WHERE queryid = $fp"),
	'0', 'which closes the breaker');

$node->stop;
done_testing();
