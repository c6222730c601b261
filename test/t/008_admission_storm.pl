# Copyright (c) 2026, The pg_shield Developers

# No path leaks an admission slot (a slot is
# released on every path: success, ERROR, cancel, terminate, FATAL,
# subtransaction abort, portal close, backend exit).
#
# First, each way of leaving the admission queue abnormally is taken once,
# deterministically: terminate, cancel, statement_timeout, queue timeout,
# queue_timeout 0, pg_shield deadline and a lost client (FATAL) while
# queued; a slot holder terminated while a statement waits for its slot; a
# session quitting while it holds a slot.
#
# Then a storm under four concurrency scopes (the instance, two roles, a
# fingerprint): several psql sessions of the two roles run, over and over
# and concurrently, every kind of statement that can end abnormally
# (errors, errors caught in PL/pgSQL, subtransaction rollbacks, cursors
# rolled back, committed, held or never closed, failing EXPLAIN ANALYZE,
# COPY and CREATE TABLE AS, statement_timeout, deferred constraint failures
# at commit, sessions quitting with an open cursor), pgbench drives the
# extended protocol (prepared, unnamed, pipelined, failing), and a killer
# cancels and terminates their statements, running and queued, at random.
#
# Afterwards nothing may be running or queued, and the proof that no slot
# leaked: with every limit lowered to 1 and queue_timeout 0 (a leaked slot
# would reject at once with 53S01), statements of fresh sessions of each
# role, one after the other, are all admitted.
use strict;
use warnings;

use POSIX qw(WNOHANG);
use Time::HiRes qw(time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $storm_seconds = 10;    # how long the workers start new rounds
my $psql_workers  = 6;     # sessions of role storm
my $psql_workers2 = 2;     # sessions of role storm2

# The instance allows 2 statements (fewer than the two roles together) and
# a short queue, so that statements queue and are rejected in every scope.
my $node = PostgreSQL::Test::Cluster->new('storm');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
pg_shield.max_active = 2
pg_shield.max_queue = 6
log_statement = none
max_connections = 60
});
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_shield;
CREATE ROLE storm_users NOLOGIN;
CREATE ROLE storm LOGIN IN ROLE storm_users;
CREATE ROLE storm2 LOGIN IN ROLE storm_users;
CREATE TABLE storm_t (x int);
INSERT INTO storm_t SELECT g FROM generate_series(1, 10) g;
GRANT SELECT ON storm_t TO storm_users;
CREATE TABLE storm_u (k int PRIMARY KEY);
GRANT SELECT, INSERT ON storm_u TO storm_users;
CREATE TABLE storm_parent (k int PRIMARY KEY);
INSERT INTO storm_parent VALUES (1);
CREATE TABLE storm_child (k int REFERENCES storm_parent
                          DEFERRABLE INITIALLY DEFERRED);
GRANT SELECT ON storm_parent TO storm_users;
GRANT SELECT, INSERT ON storm_child TO storm_users;
-- a statement that a rule rewrites into two queries, and a deferred
-- trigger that runs CALL at commit
CREATE TABLE storm_r (x int);
CREATE TABLE storm_r_log (x int);
CREATE RULE storm_r_also AS ON INSERT TO storm_r
  DO ALSO INSERT INTO storm_r_log SELECT NEW.x FROM pg_sleep(0.01);
CREATE TABLE storm_audit (x int);
CREATE TABLE storm_d (x int);
GRANT INSERT ON storm_r, storm_r_log, storm_audit, storm_d TO storm_users;
CREATE PROCEDURE storm_audit_proc() LANGUAGE sql AS
  $$ INSERT INTO storm_audit VALUES (1) $$;
CREATE FUNCTION storm_audit_fn() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN CALL storm_audit_proc(); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER storm_d_audit AFTER INSERT ON storm_d
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION storm_audit_fn();
CREATE MATERIALIZED VIEW storm_mv AS SELECT sum(x) AS s FROM storm_t;
ALTER MATERIALIZED VIEW storm_mv OWNER TO storm_users;

-- errors inside the statement, caught by exception blocks
CREATE FUNCTION storm_caught(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  caught int := 0;
BEGIN
  FOR i IN 1 .. n LOOP
    BEGIN
      PERFORM 1 / (x - 5) FROM storm_t;
    EXCEPTION WHEN division_by_zero THEN
      caught := caught + 1;
    END;
  END LOOP;
  PERFORM pg_sleep(0.02);
  RETURN caught;
END $$;

-- an error inside a function, not caught
CREATE FUNCTION storm_uncaught() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(0.02);
  RETURN (SELECT sum(1 / (x - 5)) FROM storm_t);
END $$;

-- transaction control inside a procedure, then an error
CREATE PROCEDURE storm_proc() LANGUAGE plpgsql AS $$
BEGIN
  PERFORM count(*) FROM storm_t;
  COMMIT;
  PERFORM count(*) FROM storm_t;
  ROLLBACK;
  PERFORM 1 / (x - 5) FROM storm_t;
END $$;

-- The killer: for `seconds', cancel or (one time in four) terminate a
-- random statement of the storm roles every 20 ms, alternately a queued
-- one (watching for one every 5 ms, for up to 150 ms) and any one.
-- Returns what it hit.
CREATE FUNCTION storm_kill(seconds float8,
    OUT cancel_running int, OUT cancel_queued int,
    OUT term_running int, OUT term_queued int)
LANGUAGE plpgsql AS $$
DECLARE
  stop_at timestamptz := clock_timestamp() + make_interval(secs => seconds);
  n int := 0;
  misses int := 0;
  want_queued bool := true;
  r record;
BEGIN
  cancel_running := 0; cancel_queued := 0;
  term_running := 0; term_queued := 0;
  WHILE clock_timestamp() < stop_at LOOP
    SELECT a.pid, a.state INTO r FROM shield.activity a
     WHERE a.rolname IN ('storm', 'storm2')
       AND (NOT want_queued OR a.state = 'queued')
     ORDER BY random()
     LIMIT 1;
    IF NOT FOUND THEN
      misses := misses + 1;
      IF misses >= 30 THEN
        want_queued := NOT want_queued;
        misses := 0;
      END IF;
      PERFORM pg_sleep(0.005);
      CONTINUE;
    END IF;
    n := n + 1;
    misses := 0;
    want_queued := NOT want_queued;
    IF n % 8 IN (0, 1) THEN
      IF pg_terminate_backend(r.pid) THEN
        IF r.state = 'queued' THEN term_queued := term_queued + 1;
        ELSE term_running := term_running + 1;
        END IF;
      END IF;
    ELSIF pg_cancel_backend(r.pid) THEN
      IF r.state = 'queued' THEN cancel_queued := cancel_queued + 1;
      ELSE cancel_running := cancel_running + 1;
      END IF;
    END IF;
    PERFORM pg_sleep(0.02);
  END LOOP;
END $$;
});

is( $node->safe_psql(
		'postgres', q{
SELECT string_agg(rolname || '=' || rolsuper, ',' ORDER BY rolname)
FROM pg_roles WHERE rolname IN ('storm', 'storm2')}),
	'storm=false,storm2=false',
	'the storm roles are not superusers');

my $storm_connstr  = $node->connstr('postgres') . ' user=storm';
my $storm2_connstr = $node->connstr('postgres') . ' user=storm2';

# Nothing runs or waits, and every role's counts are zero.
sub assert_idle
{
	my ($what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	ok( $node->poll_query_until(
			'postgres', q{SELECT count(*) = 0 FROM shield.activity}),
		"$what: shield.activity is empty");
	is( $node->safe_psql('postgres',
			'SELECT active, queued FROM shield.status'),
		'0|0', "$what: shield.status shows nothing active or queued");
	is( $node->safe_psql(
			'postgres', q{
SELECT count(*) FROM shield.role_stats WHERE active <> 0 OR waiting <> 0}),
		'0', "$what: no role has a statement active or waiting");
}

# Start `sql' in a background session and wait until it is queued.
sub start_queued
{
	my ($session, $pid, $sql, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	$session->query_until(qr/start_queued/, "\\echo start_queued\n$sql\n");
	ok( $node->poll_query_until(
			'postgres', qq{
SELECT count(*) = 1 FROM shield.activity WHERE pid = $pid AND state = 'queued'}
		),
		"$what: the statement is queued");
}

# A background session of a storm role, and its backend's pid.  Its pid is
# looked up by application name: SELECT pg_backend_pid() would need a slot.
my $sessions = 0;
sub storm_session
{
	my ($role) = @_;
	my $s = $node->background_psql(
		'postgres',
		on_error_stop => 0,
		extra_params => [ '-U', $role ]);
	my $app = 'storm_session_' . ++$sessions;
	$s->query_safe("SET application_name = '$app'");
	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE application_name = '$app'");
	return ($s, $pid);
}

#----------------------------------------------------------------------
# Part 1: leaving the queue abnormally, one path at a time.
#----------------------------------------------------------------------
$node->safe_psql('postgres',
	q{SELECT shield.set_role_policy('storm', max_concurrent => 1, queue_timeout => '60s')}
);

# The holder keeps the only slot of the role with an open cursor.
my ($holder, $holder_pid) = storm_session('storm');
$holder->query_safe(
	q{BEGIN; DECLARE hc CURSOR FOR SELECT x FROM storm_t; FETCH 1 FROM hc;});
is( $node->safe_psql(
		'postgres',
		"SELECT state FROM shield.activity WHERE pid = $holder_pid"),
	'running',
	'a session with an open cursor holds a slot');

my $holder_running = qq{
SELECT string_agg(pid || ':' || state, ',') = '$holder_pid:running'
FROM shield.activity};

# 1a. terminated while queued
my $log_offset = -s $node->logfile;
my ($w, $wpid) = storm_session('storm');
start_queued($w, $wpid, 'SELECT count(*) FROM storm_t;', 'terminate');
is( $node->safe_psql(
		'postgres',
		"SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = $wpid"
	),
	'Extension|Extension',
	'the queued backend waits on the Extension wait event');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($wpid)");
ok($node->poll_query_until('postgres', $holder_running),
	'terminated while queued: it left the queue, the holder runs alone');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $wpid"),
	'terminated while queued: the backend is gone');
$w->{run}->kill_kill;
ok( $node->log_contains(
		qr/FATAL:  terminating connection due to administrator command/,
		$log_offset),
	'terminated while queued: FATAL in the server log');

# 1b. cancelled while queued; the session lives on
($w, $wpid) = storm_session('storm');
start_queued($w, $wpid, 'SELECT count(*) FROM storm_t;', 'cancel');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($wpid)");
ok($node->poll_query_until('postgres', $holder_running),
	'cancelled while queued: it left the queue');
is($w->query('SHOW application_name'),
	'storm_session_3', 'the cancelled session lives on');
like(
	$w->{stderr},
	qr/ERROR:  canceling statement due to user request/,
	'the queued statement was cancelled');
$w->{stderr} = '';

# 1c. statement_timeout fires while queued
$w->query_safe(q{SET statement_timeout = '200ms'});
$w->query('SELECT count(*) FROM storm_t');
like(
	$w->{stderr},
	qr/ERROR:  canceling statement due to statement timeout/,
	'statement_timeout fired while queued');
$w->{stderr} = '';
$w->query_safe('RESET statement_timeout');
ok($node->poll_query_until('postgres', $holder_running),
	'statement_timeout while queued: it left the queue');

# 1d. rejections while the slot is held: queue timeout, queue_timeout 0,
# deadline while queued
for my $case (
	[   q{queue_timeout => '100ms'},
		qr/ERROR:  timed out waiting in the pg_shield admission queue/,
		'timed out in the queue'
	],
	[   q{queue_timeout => '0'},
		qr/ERROR:  concurrency limit reached and the statement cannot queue/,
		'rejected at once'
	],
	[   q{queue_timeout => '60s', deadline => '100ms'},
		qr/ERROR:  canceling statement due to pg_shield deadline/,
		'deadline expired in the queue'
	])
{
	my ($limits, $error, $what) = @$case;
	$node->safe_psql('postgres',
		"SELECT shield.set_role_policy('storm', max_concurrent => 1, $limits)");
	$w->query('SELECT count(*) FROM storm_t');
	like($w->{stderr}, $error, "$what: the statement fails");
	$w->{stderr} = '';
	ok($node->poll_query_until('postgres', $holder_running),
		"$what: nothing is left in the queue");
}
$node->safe_psql('postgres',
	q{SELECT shield.set_role_policy('storm', max_concurrent => 1, queue_timeout => '60s')}
);

# 1e. the client goes away while its statement is queued: the backend
# notices (client_connection_check_interval) and exits with FATAL
$log_offset = -s $node->logfile;
my ($lost, $lost_pid) = storm_session('storm');
$lost->query_safe(q{SET client_connection_check_interval = '10ms'});
start_queued($lost, $lost_pid, 'SELECT count(*) FROM storm_t;',
	'client lost');
$lost->{run}->kill_kill;
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $lost_pid"),
	'client lost while queued: the backend exited');
ok($node->poll_query_until('postgres', $holder_running),
	'client lost while queued: it left the queue');
ok( $node->log_contains(qr/FATAL:  connection to client lost/, $log_offset),
	'client lost while queued: FATAL in the server log');

# 1f. the holder is terminated while a statement waits: the waiter gets
# the slot
start_queued($w, $wpid, q{SELECT 'got the slot';}, 'holder terminated');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($holder_pid)");
is($w->query(q{SELECT 'done'}),
	"got the slot\ndone", 'the waiter ran once the holder was terminated');
is($w->{stderr}, '', 'without an error');
$holder->{run}->kill_kill;

# 1g. a session quits while holding a slot (open transaction and cursor)
$w->query_safe(
	q{BEGIN; DECLARE qc CURSOR FOR SELECT x FROM storm_t; FETCH 1 FROM qc;});
is( $node->safe_psql(
		'postgres', "SELECT state FROM shield.activity WHERE pid = $wpid"),
	'running',
	'the quitting session holds a slot');
$w->quit;
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $wpid"),
	'the session that held a slot is gone');

assert_idle('after the single paths');

#----------------------------------------------------------------------
# Part 2: the storm.
#----------------------------------------------------------------------
my $qpol_fp = $node->safe_psql(
	'postgres', q{
SELECT shield.set_role_policy('storm', max_concurrent => 2, queue_timeout => '5s');
SELECT shield.set_role_policy('storm2', max_concurrent => 1, queue_timeout => '15ms');
SELECT shield.set_query_policy('SELECT sum(x), pg_sleep(0.0) FROM storm_t WHERE x > 0',
                               max_concurrent => 1, queue_timeout => '5s',
                               deadline => '40ms');});

# Statement groups a psql worker picks from.
my @scenarios = (
	# running, to be cancelled or terminated
	q{SELECT pg_sleep(0.2);},
	# the query policy's fingerprint (a scope of its own, with a deadline)
	q{SELECT sum(x), pg_sleep(0.05) FROM storm_t WHERE x > 3;},
	q{SELECT sum(x), pg_sleep(0.01) FROM storm_t WHERE x > 7;},
	# errors
	q{SELECT 1 / (x - 5) FROM storm_t;},
	q{SELECT storm_uncaught();},
	q{INSERT INTO storm_u VALUES (1) ON CONFLICT DO NOTHING;
INSERT INTO storm_u VALUES (1);},
	# errors caught by PL/pgSQL exception blocks
	q{SELECT storm_caught(3);},
	q{DO $$ BEGIN
  PERFORM 1 / (x - 5) FROM storm_t;
EXCEPTION WHEN division_by_zero THEN
  PERFORM pg_sleep(0.01);
END $$;},
	q{CALL storm_proc();},
	# subtransactions
	q{BEGIN;
SELECT count(*) FROM storm_t;
SAVEPOINT a;
SELECT 1 / (x - 5) FROM storm_t;
ROLLBACK TO a;
SELECT pg_sleep(0.05);
SAVEPOINT b;
SELECT x FROM storm_t WHERE x = 1;
RELEASE b;
COMMIT;},
	q{BEGIN;
SAVEPOINT s;
DECLARE c_sp CURSOR FOR SELECT x FROM storm_t;
FETCH 2 FROM c_sp;
ROLLBACK TO s;
SELECT count(*) FROM storm_t;
COMMIT;},
	q{BEGIN;
DECLARE c_out CURSOR FOR SELECT x FROM storm_t;
FETCH 1 FROM c_out;
SAVEPOINT s;
SELECT 1 / (x - 5) FROM storm_t;
ROLLBACK TO s;
FETCH 1 FROM c_out;
SELECT pg_sleep(0.05);
COMMIT;},
	# cursors
	q{BEGIN;
DECLARE c1 CURSOR FOR SELECT x FROM storm_t;
FETCH 2 FROM c1;
ROLLBACK;},
	q{BEGIN;
DECLARE c2 CURSOR FOR SELECT x, pg_sleep(0.01) FROM storm_t;
FETCH 3 FROM c2;
COMMIT;},
	q{BEGIN;
DECLARE c3 CURSOR FOR SELECT 1 / (x - 5) FROM storm_t;
FETCH ALL FROM c3;
ROLLBACK;},
	q{BEGIN;
DECLARE c4 CURSOR FOR SELECT x FROM storm_t;
DECLARE c5 CURSOR FOR SELECT x FROM storm_t;
FETCH 1 FROM c4;
CLOSE c4;
FETCH 1 FROM c5;
SELECT 1;
CLOSE c5;
SELECT 2;
COMMIT;},
	q{BEGIN;
DECLARE h1 CURSOR WITH HOLD FOR SELECT x FROM storm_t;
FETCH 1 FROM h1;
COMMIT;
FETCH ALL FROM h1;
CLOSE h1;},
	# a held cursor failing when it is persisted at commit
	q{BEGIN;
DECLARE h2 CURSOR WITH HOLD FOR SELECT 1 / (x - 5) FROM storm_t;
COMMIT;},
	# a held cursor never closed
	q{DECLARE h3 CURSOR WITH HOLD FOR SELECT x FROM storm_t;
FETCH 1 FROM h3;},
	# utilities running a query
	q{EXPLAIN ANALYZE SELECT count(*) FROM storm_t;
EXPLAIN ANALYZE SELECT 1 / (x - 5) FROM storm_t;
EXPLAIN SELECT 1 / (x - 5) FROM storm_t;},
	q{COPY (SELECT x FROM storm_t) TO STDOUT;
COPY (SELECT 1 / (x - 5) FROM storm_t) TO STDOUT;},
	q{DROP TABLE IF EXISTS storm_ctas, storm_ctas2, storm_into;
CREATE TEMP TABLE storm_ctas AS SELECT x FROM storm_t;
CREATE TEMP TABLE storm_ctas2 AS SELECT 1 / (x - 5) AS y FROM storm_t;
SELECT x INTO TEMP storm_into FROM storm_t;},
	q{REFRESH MATERIALIZED VIEW storm_mv;},
	q{PREPARE p_div(int) AS SELECT 1 / (x - $1) FROM storm_t;
EXECUTE p_div(100);
EXECUTE p_div(5);
DEALLOCATE p_div;},
	# timeouts
	q{SET statement_timeout = '50ms';
SELECT pg_sleep(0.5);
RESET statement_timeout;},
	# a deferred constraint failing at commit
	q{BEGIN;
INSERT INTO storm_child VALUES (999);
SELECT count(*) FROM storm_t;
COMMIT;},
	# a cursor a DO block opened, fetched by the client
	q{BEGIN;
DO $$DECLARE c refcursor := 'c_do';
BEGIN OPEN c FOR SELECT x, pg_sleep(0.01) AS do_cursor FROM storm_t; END $$;
FETCH 2 FROM c_do;
FETCH ALL FROM c_do;
COMMIT;},
	# rules, and a deferred trigger running CALL at commit
	q{INSERT INTO storm_r VALUES (1);},
	q{BEGIN;
INSERT INTO storm_d VALUES (1);
SELECT count(*) FROM storm_t;
COMMIT;},
	# the query policy's statement with a parameter, then inline again
	q{PREPARE p_q(int) AS SELECT sum(x), pg_sleep(0.01) FROM storm_t WHERE x > $1;
EXECUTE p_q(2);
DEALLOCATE p_q;
SELECT sum(x), pg_sleep(0.01) FROM storm_t WHERE x > 2;});

# How a round may end: the session quits with a slot held by an open
# cursor, with a held cursor, in an open transaction, or normally.
my @endings = (
	q{BEGIN;
DECLARE c_end CURSOR FOR SELECT x FROM storm_t;
FETCH 1 FROM c_end;},
	q{BEGIN;
DECLARE c_end CURSOR FOR SELECT x FROM storm_t;
FETCH 1 FROM c_end;
\q},
	q{DECLARE h_end CURSOR WITH HOLD FOR SELECT x FROM storm_t;},
	q{BEGIN;
SELECT pg_sleep(0.05);},
	'');

my %pgbench_scripts = (
	extended => q{\set x random(1, 10)
SELECT sum(x) FROM storm_t WHERE x > :x;
SELECT pg_sleep(0.02);
},
	prepared => q{BEGIN;
DECLARE pc CURSOR FOR SELECT x FROM storm_t;
FETCH 2 FROM pc;
SELECT pg_sleep(0.02);
END;
},
	pipeline => q{\set x random(1, 10)
\startpipeline
SELECT count(*) FROM storm_t WHERE x > :x;
SELECT pg_sleep(0.01);
\endpipeline
},
	failing => q{\set x random(1, 10)
SELECT 1 / (x - :x) FROM storm_t WHERE x = 5;
},
	failing_pipeline => q{\set x random(1, 10)
\startpipeline
SELECT 1 / (x - :x) FROM storm_t WHERE x = 5;
SELECT pg_sleep(0.01);
\endpipeline
});
my @pgbench_runs = (
	[ 'extended', 'extended' ],
	[ 'prepared', 'prepared' ],
	[ 'pipeline', 'extended' ],
	[ 'failing', 'prepared' ],
	[ 'failing', 'extended' ],
	[ 'failing_pipeline', 'prepared' ]);

my $dir = $node->basedir;
for my $name (keys %pgbench_scripts)
{
	append_to_file("$dir/storm_$name.sql", $pgbench_scripts{$name});
}

my $psql    = $node->installed_command('psql');
my $pgbench = $node->installed_command('pgbench');
my $stop_workers = "$dir/storm_stop_workers";
my $stop_killer  = "$dir/storm_stop_killer";

# Run $body in a child process (its own process group, output to a log);
# the child never returns into the test.
sub spawn
{
	my ($name, $body) = @_;
	my $pid = fork();
	die "fork failed: $!" unless defined $pid;
	return $pid if $pid;

	setpgrp(0, 0);
	open(STDOUT, '>>', "$dir/storm_$name.log") or POSIX::_exit(1);
	open(STDERR, '>&', \*STDOUT) or POSIX::_exit(1);
	eval { $body->(); };
	print STDERR "worker failed: $@" if $@;
	POSIX::_exit($@ ? 1 : 0);
}

# A psql worker: rounds of a few random statement groups and an ending,
# each round a new session (killed sessions come back next round).
sub psql_worker
{
	my ($name, $connstr, $seed) = @_;
	srand($seed);
	my $round = 0;
	while (!-e $stop_workers)
	{
		my $script = "$dir/storm_${name}_round.sql";
		my @parts = map { $scenarios[ int(rand(@scenarios)) ] } 1 .. 4;
		push @parts, $endings[ int(rand(@endings)) ];
		open(my $fh, '>', $script) or die "cannot write $script: $!";
		print $fh join("\n", @parts), "\n";
		close($fh);
		$round++;
		print "== round $round\n";
		system($psql, '-X', '-q', '-d', $connstr, '-f', $script);
	}
}

# A pgbench worker: extended-protocol runs, in turn.
sub pgbench_worker
{
	my $i = 0;
	while (!-e $stop_workers)
	{
		my ($script, $mode) = @{ $pgbench_runs[ $i++ % @pgbench_runs ] };
		print "== $script -M $mode\n";
		system(
			$pgbench, '-n', '-M', $mode,
			'-c', '2', '-t', '15',
			'-f', "$dir/storm_$script.sql",
			'-h', $node->host, '-p', $node->port,
			'-U', 'storm', 'postgres');
	}
}

# The killer runs until the workers are done.
sub killer
{
	while (!-e $stop_killer)
	{
		system($psql, '-X', '-q', '-A', '-t', '-d', $node->connstr('postgres'),
			'-c', 'SELECT * FROM storm_kill(1.0)');
	}
}

# What the killer hit so far: cancelled running, cancelled queued,
# terminated running, terminated queued.
sub killer_hits
{
	my @hits = (0, 0, 0, 0);
	return @hits unless -e "$dir/storm_killer.log";
	for my $line (split /\n/, slurp_file("$dir/storm_killer.log"))
	{
		next unless $line =~ /^(\d+)\|(\d+)\|(\d+)\|(\d+)$/;
		$hits[0] += $1;
		$hits[1] += $2;
		$hits[2] += $3;
		$hits[3] += $4;
	}
	return @hits;
}

# role_stats of the storm roles: name => [name, admitted, queued, rejected,
# deadline_cancels, peak_active]
sub storm_stats
{
	my $stats = $node->safe_psql(
		'postgres', q{
SELECT rolname, admitted, queued, rejected, deadline_cancels, peak_active
FROM shield.role_stats WHERE rolname IN ('storm', 'storm2')});
	return map { my @f = split /\|/; $f[0] => \@f } split /\n/, $stats;
}
my %rs_before = storm_stats();
$rs_before{storm2} = [ 'storm2', 0, 0, 0, 0, 0 ] unless $rs_before{storm2};
my $storm_log_offset = -s $node->logfile;

note "storm: seeds 1000 + worker number";
my %workers;
for my $i (1 .. $psql_workers)
{
	my $name = "storm$i";
	$workers{ spawn($name, sub { psql_worker($name, $storm_connstr, 1000 + $i) }) } =
	  $name;
}
for my $i (1 .. $psql_workers2)
{
	my $name = "stormtwo$i";
	$workers{
		spawn($name, sub { psql_worker($name, $storm2_connstr, 2000 + $i) })
	} = $name;
}
$workers{ spawn('pgbench', \&pgbench_worker) } = 'pgbench';
my $killer_pid = spawn('killer', \&killer);

# The storm lasts $storm_seconds, and longer (up to 30 s more, on a slow or
# busy machine) until the killer has hit each kind of target a few times.
# Then the workers finish their rounds; whatever still runs a minute later
# has hung.
my $storm_start = time();
my $stopped_at;
my $hung = 0;
while (%workers)
{
	for my $pid (keys %workers)
	{
		delete $workers{$pid} if waitpid($pid, WNOHANG) == $pid;
	}
	last unless %workers;
	if (!defined $stopped_at)
	{
		my $elapsed = time() - $storm_start;
		if ($elapsed >= $storm_seconds + 30
			|| ($elapsed >= $storm_seconds && !grep { $_ < 3 } killer_hits()))
		{
			append_to_file($stop_workers, '');
			$stopped_at = time();
		}
	}
	elsif (time() > $stopped_at + 60)
	{
		$hung = join(', ', sort values %workers);
		kill 'KILL', -$_ for keys %workers;
		waitpid($_, 0) for keys %workers;
		last;
	}
	select(undef, undef, undef, 0.2);
}
append_to_file($stop_killer, '');
waitpid($killer_pid, 0);
is($hung, 0, 'every storm worker finished');
note sprintf('the storm lasted %.1f s', time() - $storm_start);

# What the killer hit.
my @hits = killer_hits();
note "killer: cancelled $hits[0] running and $hits[1] queued, "
  . "terminated $hits[2] running and $hits[3] queued";
cmp_ok($hits[0], '>', 0, 'the killer cancelled running statements');
cmp_ok($hits[1], '>', 0, 'the killer cancelled queued statements');
cmp_ok($hits[2], '>', 0, 'the killer terminated running statements');
cmp_ok($hits[3], '>', 0, 'the killer terminated queued statements');

# Every storm backend is gone (a killed client's backend may still be on
# its way out).
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 0 FROM pg_stat_activity
WHERE usename IN ('storm', 'storm2')}),
	'every storm session has ended');

assert_idle('after the storm');

my $log = slurp_file($node->logfile, $storm_log_offset);
for my $msg (
	'ERROR:  canceling statement due to user request',
	'ERROR:  canceling statement due to statement timeout',
	'FATAL:  terminating connection due to administrator command',
	'ERROR:  division by zero')
{
	my $n = () = $log =~ /\Q$msg\E/g;
	note "server log: $n x $msg";
	cmp_ok($n, '>', 0, "the storm hit: $msg");
}
# how often admission itself said no (counted in role_stats.rejected)
for my $msg (
	'ERROR:  timed out waiting in the pg_shield admission queue',
	'ERROR:  concurrency limit reached and the statement cannot queue',
	'ERROR:  canceling statement due to pg_shield deadline')
{
	my $n = () = $log =~ /\Q$msg\E/g;
	note "server log: $n x $msg";
}

my %rs = storm_stats();
note "role_stats during the storm (admitted|queued|rejected|deadline_cancels|peak_active): "
  . join('; ', map { "$_: " . join('|', @{ $rs{$_} }[ 1 .. 5 ]) } sort keys %rs);
for my $role (keys %rs)
{
	$rs{$role}[$_] -= $rs_before{$role}[$_] for 1 .. 4;
}
cmp_ok($rs{storm}[2], '>', 0, 'statements of storm were queued');
cmp_ok($rs{storm}[3] + $rs{storm2}[3] + $rs{storm}[4] + $rs{storm2}[4],
	'>', 0, 'statements of the storm roles were rejected or cancelled by their deadline');
my ($fp_admitted, $fp_waits) = split /\|/, $node->safe_psql(
	'postgres', qq{
SELECT sum(admitted), sum(queued + rejected + deadline_cancels)
FROM shield.query_stats WHERE queryid = $qpol_fp});
note "the query policy's fingerprint: $fp_admitted admitted, "
  . "$fp_waits queued, rejected or cancelled by the deadline";
cmp_ok($fp_admitted, '>', 0, "the query policy's fingerprint was admitted");
my ($rule_rows, $audit_rows, $do_cursor_calls) = split /\|/, $node->safe_psql(
	'postgres', q{
SELECT (SELECT count(*) FROM storm_r_log), (SELECT count(*) FROM storm_audit),
       (SELECT coalesce(sum(admitted), 0) FROM shield.query_stats
        WHERE query LIKE '%AS do_cursor FROM storm_t%')});
cmp_ok($rule_rows, '>', 0, "the rule's second query ran");
cmp_ok($audit_rows, '>', 0, 'deferred triggers ran CALL at commit');
cmp_ok($do_cursor_calls, '>', 0, 'fetches from a cursor a DO block opened were admitted');
cmp_ok($rs{storm}[5], '<=', 2, 'storm never ran more than 2 at once');
cmp_ok($rs{storm2}[5], '<=', 1, 'storm2 never ran more than 1 at once');

#----------------------------------------------------------------------
# Part 3: every limit at 1, queue_timeout 0: a leaked slot anywhere would
# reject at once.
#----------------------------------------------------------------------
$node->safe_psql('postgres', 'ALTER SYSTEM SET pg_shield.max_active = 1');
$node->reload;
ok( $node->poll_query_until(
		'postgres', q{SELECT current_setting('pg_shield.max_active') = '1'}),
	'pg_shield.max_active is 1');
$node->safe_psql(
	'postgres', qq{
SELECT shield.set_role_policy('storm', max_concurrent => 1, queue_timeout => '0');
SELECT shield.set_role_policy('storm2', max_concurrent => 1, queue_timeout => '0');
SELECT shield.set_query_policy($qpol_fp, max_concurrent => 1, queue_timeout => '0');});

# The check is sensitive: a slot held elsewhere rejects at once.
($holder, $holder_pid) = storm_session('storm');
$holder->query_safe(
	q{BEGIN; DECLARE hc CURSOR FOR SELECT x FROM storm_t; FETCH 1 FROM hc;});
for my $c ([ 'storm', $storm_connstr ], [ 'storm2', $storm2_connstr ])
{
	my ($ret, $stdout, $stderr) = $node->psql(
		'postgres', 'SELECT count(*) FROM storm_t',
		connstr => $c->[1]);
	like(
		$stderr,
		qr/ERROR:  concurrency limit reached and the statement cannot queue/,
		"control: $c->[0] is rejected at once while a slot is held");
}
$holder->query_safe('COMMIT');
$holder->quit;
assert_idle('after the control');

for my $c ([ 'storm', $storm_connstr ], [ 'storm2', $storm2_connstr ])
{
	for my $n (1, 2)
	{
		my ($ret, $stdout, $stderr) = $node->psql(
			'postgres', q{
SELECT count(*) FROM storm_t;
SELECT sum(x), pg_sleep(0.0) FROM storm_t WHERE x > 5;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT 1 FROM storm_t LIMIT 1;
BEGIN; DECLARE fc CURSOR FOR SELECT x FROM storm_t; FETCH 1 FROM fc; COMMIT;},
			connstr => $c->[1]);
		is($stderr, '', "$c->[0], fresh session $n: every statement admitted");
		like($stdout, qr/^10\n40\|\n/, "$c->[0], fresh session $n: results");
	}
}
assert_idle('at the end');

$node->stop;
done_testing();
