# Copyright (c) 2026, The pg_shield Developers

# A statement waiting in the admission queue exits when the postmaster dies
# (its wait is a latch wait with WL_EXIT_ON_PM_DEATH), instead of waiting
# out its queue timeout as an orphan.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('pmdeath');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
restart_after_crash = off
});
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_shield;
CREATE ROLE regress_pmd LOGIN;
SELECT shield.set_role_policy('regress_pmd', max_concurrent => 1,
							  queue_timeout => '10min');
});

# the role's only slot is held by an open cursor
my $holder = $node->background_psql('postgres', on_error_stop => 1);
$holder->query_safe(q{SET ROLE regress_pmd});
$holder->query_safe(q{BEGIN});
$holder->query_safe(q{DECLARE c CURSOR FOR SELECT 1});

# another statement of the role waits in the queue
my $waiter = $node->background_psql('postgres', on_error_stop => 0);
$waiter->query_safe(q{SET application_name = 'pmd_waiter'});
$waiter->query_safe(q{SET ROLE regress_pmd});
$waiter->query_until(qr/start_queued/, "\\echo start_queued\nSELECT 1;\n");
ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(*) = 1 FROM shield.activity WHERE state = 'queued'}),
	'the statement waits in the admission queue');
my $pid = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE application_name = 'pmd_waiter'});
like($pid, qr/^\d+$/, 'the waiting backend is found');

# the postmaster dies: the waiting backend must exit on its own, long before
# its 10 minute queue timeout
$node->kill9;
my $gone = 0;
for (1 .. 600)
{
	if (!kill(0, $pid))
	{
		$gone = 1;
		last;
	}
	usleep(100_000);
}
ok($gone, 'the queued backend exits when the postmaster dies');

$waiter->{run}->kill_kill;
$holder->{run}->kill_kill;
done_testing();
