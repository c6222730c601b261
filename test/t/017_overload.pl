# Copyright (c) 2026, The pg_shield Developers

# Overload detection and load shedding.  The
# instance runs one governed statement at a time (pg_shield.max_active 1),
# and an open cursor holds that slot while statements queue behind it, so
# the wait for an instance slot stands and grows.  The controller looks
# every 3 s (pg_shield.overload_interval), so each state lasts long enough
# to be tried.
#
#  - A standing queue starts shedding low: a low statement fails at once
#    with 53S03 and a retry hint, while a normal one still queues.
#  - A wait that stands one interval more, over twice the target, is
#    severe: normal is shed too.  Critical statements, statements whose
#    transaction holds a transaction id, and statements whose priority
#    comes from a policy in monitor mode (counted as would-be rejections)
#    are never shed: they queue.
#  - Once the queue drains, shedding stops.  Every transition is an event
#    and a log line; shed statements are counted in role_stats.shed.
#  - While the instance is overloaded, statements of a priority that can
#    be shed plan without parallel workers; critical ones keep theirs.
#  - A full queue (pg_shield.max_queue) makes room for a better rank by
#    shedding its last low waiter; a low newcomer is turned away (53S01).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('overload');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
pg_shield.max_active = 1
pg_shield.max_queue = 8
pg_shield.queue_timeout = '60s'
pg_shield.target_queue_delay = '50ms'
pg_shield.overload_interval = '3s'
pg_shield.log_actions = all
});
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_shield;
CREATE TABLE ovl_t (n int);
CREATE TABLE ovl_par AS SELECT i FROM generate_series(1, 20000) i;
ALTER TABLE ovl_par SET (parallel_workers = 2);
ANALYZE ovl_par;
GRANT SELECT ON ovl_par TO PUBLIC;
CREATE ROLE regress_ovl_hold LOGIN;
CREATE ROLE regress_ovl_normal LOGIN;
CREATE ROLE regress_ovl_low LOGIN;
CREATE ROLE regress_ovl_lowmon LOGIN;
CREATE ROLE regress_ovl_crit LOGIN;
GRANT SELECT, INSERT ON ovl_t TO PUBLIC;
SELECT shield.set_role_policy('regress_ovl_low', priority => 'low');
SELECT shield.set_role_policy('regress_ovl_lowmon', priority => 'low', mode => 'monitor');
SELECT shield.set_role_policy('regress_ovl_crit', priority => 'critical');
});

sub as_role
{
	my ($role, $sql) = @_;
	my ($ret, $stdout, $stderr) = $node->psql(
		'postgres', "\\set VERBOSITY verbose\n$sql",
		connstr => $node->connstr('postgres') . " user=$role");
	return ($ret, $stderr);
}

# A session of role that starts sql and does not wait for it.
sub start_as
{
	my ($role, $sql) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe("SET ROLE $role");
	$s->query_until(qr/started/, "\\echo started\n$sql\n");
	return $s;
}

sub queued
{
	return $node->safe_psql('postgres',
		q{SELECT count(*) FROM shield.activity WHERE state = 'queued'});
}

sub wait_queued
{
	my ($n, $what) = @_;
	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) = $n FROM shield.activity WHERE state = 'queued'"),
		$what);
}

# The plan of a scan of ovl_par as role: its Gather's workers, or none.
sub workers_planned
{
	my ($role) = @_;
	my $plan = $node->safe_psql(
		'postgres', qq{
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET ROLE $role;
EXPLAIN (COSTS OFF) SELECT count(*) FROM ovl_par;
});
	return $plan =~ /Workers Planned: (\d+)/ ? $1 : 'none';
}
is(workers_planned('regress_ovl_normal'), '2',
	'not overloaded: a normal statement plans with parallel workers');

# A low session takes a transaction id before the overload.
my $low_xid = $node->background_psql('postgres', on_error_stop => 1);
$low_xid->query_safe('SET ROLE regress_ovl_low');
$low_xid->query_safe('BEGIN');
$low_xid->query_safe('INSERT INTO ovl_t VALUES (0)');

# The instance slot is held; a normal statement queues behind it.
my $log_offset = -s $node->logfile;
my $holder = $node->background_psql('postgres', on_error_stop => 1);
$holder->query_safe('SET ROLE regress_ovl_hold');
$holder->query_safe('BEGIN');
$holder->query_safe('DECLARE c CURSOR FOR SELECT 1');
my @waiters;
push @waiters, start_as('regress_ovl_normal', 'SELECT 1;');
wait_queued(1, 'a normal statement waits for the instance slot');

# Shedding low.
ok( $node->poll_query_until(
		'postgres', q{SELECT shedding = 'low' FROM shield.status}),
	'a standing wait starts shedding low');
is( $node->safe_psql('postgres', q{SELECT overloaded FROM shield.status}),
	't', 'shield.status says overloaded');
my $t0 = time();
my ($ret, $stderr) = as_role('regress_ovl_low', 'SELECT 1');
my $elapsed = time() - $t0;
like(
	$stderr,
	qr/ERROR:  53S03: statement shed: the instance is overloaded\nDETAIL:  The instance is overloaded: statements waited at least \d+ ms for an instance slot \(pg_shield.target_queue_delay: 50 ms\), and priority low is being shed\.\nHINT:  Retry after (\d+) ms\./,
	'a low statement is shed at once with 53S03');
ok($elapsed < 2.5, "and answered without waiting (psql round trip ${elapsed}s)");
push @waiters, start_as('regress_ovl_normal', 'SELECT 2;');
wait_queued(2, 'a normal statement still queues while low is shed');
is(workers_planned('regress_ovl_normal'), 'none',
	'overloaded: a normal statement plans without parallel workers');
is(workers_planned('regress_ovl_crit'), '2',
	'a critical statement keeps its parallel workers');

# Severe: normal too.
ok( $node->poll_query_until(
		'postgres', q{SELECT shedding = 'normal' FROM shield.status}),
	'a wait that stands one interval more sheds normal too');
($ret, $stderr) = as_role('regress_ovl_normal', 'SELECT 3');
like(
	$stderr,
	qr/ERROR:  53S03: statement shed: the instance is overloaded\n.*priority normal is being shed\.\nHINT:  Retry after \d+ ms\./s,
	'a normal statement is shed');
push @waiters, start_as('regress_ovl_crit', 'SELECT 4;');
wait_queued(3, 'a critical statement is never shed: it queues');
$low_xid->query_until(qr/started/, "\\echo started\nSELECT 5;\n");
wait_queued(4, 'a low statement whose transaction holds an xid queues');
push @waiters, start_as('regress_ovl_lowmon', 'SELECT 6;');
wait_queued(5, 'a low statement under a monitor-mode policy queues');

# The queue drains; shedding stops.
$holder->query_safe('COMMIT');
wait_queued(0, 'the queue drains once the slot is free');
$low_xid->query_safe('COMMIT');
ok( $node->poll_query_until(
		'postgres', q{SELECT NOT overloaded AND shedding = 'none' FROM shield.status}),
	'shedding stops once the queue has drained');
for my $w (@waiters)
{
	$w->quit;
}

is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(rolname || ':' || shed || '/' || would_reject, ' ' ORDER BY rolname)
		  FROM shield.role_stats WHERE rolname LIKE 'regress_ovl_%' AND (shed > 0 OR would_reject > 0)}),
	'regress_ovl_low:1/0 regress_ovl_lowmon:0/1 regress_ovl_normal:1/0',
	'shed statements are counted, would-be sheds of monitor mode too');
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(action || ':' || enforced || ':' || coalesce(rolname, '-'), ' ' ORDER BY at)
		  FROM shield.events WHERE action IN ('shed', 'overloaded', 'overload_cleared')}),
	'overloaded:true:- shed:true:regress_ovl_low overloaded:true:- shed:true:regress_ovl_normal shed:false:regress_ovl_lowmon overload_cleared:true:-',
	'transitions and sheds are events');
like(
	$node->safe_psql(
		'postgres',
		q{SELECT string_agg(detail, E'\n' ORDER BY at) FROM shield.events WHERE action = 'overloaded'}),
	qr/shedding priority low\.\n.*shedding priority low and normal \(severe\)\./,
	'first low, then low and normal');
ok( $node->wait_for_log(qr/shedding priority low and normal/, $log_offset),
	'transitions are logged');

# A full queue sheds its last low waiter for a better rank.
$node->safe_psql(
	'postgres', q{
ALTER SYSTEM SET pg_shield.max_queue = 2;
ALTER SYSTEM SET pg_shield.target_queue_delay = '1h';
SELECT pg_reload_conf();
});
ok( $node->poll_query_until(
		'postgres', q{SELECT current_setting('pg_shield.max_queue') = '2'}),
	'a queue of 2, no shedding');
$holder->query_safe('BEGIN');
$holder->query_safe('DECLARE c CURSOR FOR SELECT 1');
my $low1 = start_as('regress_ovl_low', 'SELECT 7;');
wait_queued(1, 'a first low statement queues');
my $low2 = start_as('regress_ovl_low', 'SELECT 8;');
wait_queued(2, 'a second one fills the queue');
my $normal = start_as('regress_ovl_normal', 'SELECT 9;');
$low2->query_until(qr/done/, "\\echo done\n");
like(
	$low2->{stderr},
	qr/ERROR:  statement shed: the admission queue is full/,
	'the last low waiter is shed for a normal newcomer');
wait_queued(2, 'the normal statement took its place');
($ret, $stderr) = as_role('regress_ovl_low', 'SELECT 10');
like(
	$stderr,
	qr/ERROR:  53S01: concurrency limit reached and the statement cannot queue\nDETAIL:  The instance \(pg_shield.max_active\) limits concurrent statements to 1 \(running: 1\); the admission queue is full \(waiting: 2\)\./,
	'a low newcomer finds the queue full');
$holder->query_safe('COMMIT');
wait_queued(0, 'the rest run once the slot is free');
$low1->query_until(qr/done/, "\\echo done\n");
$normal->query_until(qr/done/, "\\echo done\n");
is($low1->{stderr} . $normal->{stderr}, '', 'the waiters that kept their place ran');
$_->quit for ($low1, $low2, $normal, $holder, $low_xid);

# Shed, displaced and monitored statements gave back everything.
is( $node->safe_psql(
		'postgres',
		q{SELECT s.active || '/' || s.queued || '/' || coalesce(sum(r.active + r.waiting), 0)
		  FROM shield.status s, shield.role_stats r
		  WHERE r.rolname LIKE 'regress_ovl_%' GROUP BY s.active, s.queued}),
	'0/0/0', 'no slot and no place in the queue is left behind');

done_testing();
