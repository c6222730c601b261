# Copyright (c) 2026, The pg_shield Developers

# shield.events is a bounded ring (pg_shield.max_events), and the server log
# lines pg_shield writes are rate-limited: a flood of actions writes at most
# PGSH_LOG_LINES_PER_SECOND (10) lines a second, counts the others, and the
# next line written reports how many were suppressed.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('events');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
pg_shield.max_events = 10
pg_shield.log_actions = 'all'
});
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_shield;
CREATE ROLE regress_flood;
});

# 200 policy changes committed at once: 200 actions in well under a second
my $log_offset = -s $node->logfile;
$node->safe_psql(
	'postgres', q{
DO $$
BEGIN
  FOR i IN 1..200 LOOP
    PERFORM shield.set_role_policy('regress_flood', max_concurrent => i);
  END LOOP;
END $$;
});

is( $node->safe_psql('postgres', 'SELECT events FROM shield.status'),
	'200', 'every action was recorded');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*), min(detail), max(detail) FROM shield.events}),
	'10|role policy for "regress_flood": max_concurrent=191 priority=normal mode=enforce|'
	  . 'role policy for "regress_flood": max_concurrent=200 priority=normal mode=enforce',
	'the ring keeps only the newest pg_shield.max_events actions');

my $log = slurp_file($node->logfile, $log_offset);
my $lines = () = $log =~ /LOG:  pg_shield policy_set:/g;
cmp_ok($lines, '>=', 1, 'the flood was logged');
cmp_ok($lines, '<=', 20,
	"at most 10 lines a second were written ($lines for 200 actions)");

my $suppressed =
  $node->safe_psql('postgres', 'SELECT log_suppressed FROM shield.status');
is($suppressed + $lines, 200,
	'every action was either logged or counted as suppressed');

# once the second is over, the next line reports the suppressed ones
$node->poll_query_until('postgres',
	q{SELECT clock_timestamp() > max(at) + interval '1.1 s' FROM shield.events})
  or die 'clock did not advance';
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{SELECT shield.drop_role_policy('regress_flood')});
$log = slurp_file($node->logfile, $log_offset);
like(
	$log,
	qr/LOG:  pg_shield policy_dropped: role policy for "regress_flood".*\n.*DETAIL:  \d+ earlier pg_shield log lines were suppressed by the rate limit\./,
	'the next line says how many were suppressed');

# nothing is logged with log_actions = none, but events are still recorded
$node->safe_psql('postgres', q{ALTER SYSTEM SET pg_shield.log_actions = 'none'});
$node->reload;
$node->poll_query_until('postgres',
	q{SELECT current_setting('pg_shield.log_actions') = 'none'})
  or die 'reload not seen';
$log_offset = -s $node->logfile;
$node->safe_psql('postgres',
	q{SELECT shield.set_role_policy('regress_flood', max_rate => 5)});
is($node->safe_psql('postgres', 'SELECT events FROM shield.status'),
	'202', 'the action is recorded');
unlike(slurp_file($node->logfile, $log_offset),
	qr/pg_shield policy_set/, 'but not logged');

$node->stop;
done_testing();
