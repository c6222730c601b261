# Copyright (c) 2026, The pg_shield Developers

# A statement whose client disconnected while it waited in the admission
# queue leaves the queue within about a second (the waiting backend checks
# its connection at least once a second, as client_connection_check_interval
# would), instead of keeping its place and running later for nobody.
#
# Its queue timeout is the longest a policy may set (2147483647 ms, about
# 24.8 days): the wait is made of sleeps of at most a second, which an
# assertion-enabled server checks against WaitLatch's limit.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $node = PostgreSQL::Test::Cluster->new('client_gone');
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
CREATE ROLE regress_gone LOGIN;
SELECT shield.set_role_policy('regress_gone', max_concurrent => 1,
                              queue_timeout => '2147483647 ms');
});

# the role's only slot is held by an open cursor
my $holder = $node->background_psql('postgres', on_error_stop => 1);
$holder->query_safe(q{SET ROLE regress_gone});
$holder->query_safe(q{BEGIN});
$holder->query_safe(q{DECLARE c CURSOR FOR SELECT 1});

# a client queues a statement, then vanishes
my ($stdin, $stdout, $stderr) = ('', '', '');
my $client = IPC::Run::start(
	[
		'psql', '-X', '-q', '-d',
		$node->connstr('postgres') . ' user=regress_gone application_name=gone'
	],
	'<', \$stdin, '>', \$stdout, '2>', \$stderr);
$stdin .= "SELECT 'ran for nobody';\n";
$client->pump_nb;
ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(*) = 1 FROM shield.activity WHERE state = 'queued'}),
	'the statement waits in the admission queue');
my $pid = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE application_name = 'gone'});
my $log_offset = -s $node->logfile;
$client->kill_kill;
my $killed_at = time();

my $left;
for (1 .. 300)
{
	if ($node->safe_psql('postgres',
			q{SELECT count(*) FROM shield.activity WHERE state = 'queued'}) eq '0')
	{
		$left = time() - $killed_at;
		last;
	}
	usleep(50_000);
}
ok(defined $left, 'the statement left the queue');
ok(defined $left && $left < 2.5,
	sprintf('within about a second of its client vanishing (%.2f s)', $left // -1));
ok( $node->wait_for_log(qr/connection to client lost/, $log_offset),
	'the backend ended as core ends one whose client is gone');
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'the backend is gone');

# the slot still works, and the statement never ran
$holder->query_safe(q{COMMIT});
is( $node->safe_psql(
		'postgres', q{SELECT coalesce(sum(calls), 0) FROM shield.query_stats
	WHERE query = 'SELECT ''ran for nobody'''}),
	'0',
	'the statement of the vanished client never ran');
is( $node->safe_psql(
		'postgres', 'SELECT count(*) FROM pg_class',
		connstr => $node->connstr('postgres') . ' user=regress_gone'),
	$node->safe_psql('postgres', 'SELECT count(*) FROM pg_class'),
	'the role runs again: its slot was not lost');
is( $node->safe_psql(
		'postgres', q{SELECT failed FROM (SELECT errors + rejected AS failed
		  FROM shield.role_stats WHERE rolname = 'regress_gone') s}),
	'1', 'the vanished statement is counted as failed');

$holder->quit;
$node->stop;
done_testing();
