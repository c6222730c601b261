# Copyright (c) 2026, The pg_shield Developers

# shield.events is a bounded ring (pg_shield.max_events), and the server log
# lines pg_shield writes are rate-limited: a flood of actions writes at most
# PGSH_LOG_LINES_PER_SECOND (10) lines a second, counts the others, and the
# next line written reports how many were suppressed.  PostgreSQL's own
# reports of pg_shield's rejections (ERROR, DETAIL, HINT, STATEMENT) are
# held to the same limit, and summarized exactly by SQLSTATE and role.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('events');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
pg_shield.max_events = 10
pg_shield.log_actions = 'all'
log_statement = none
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

# A storm of 10,000 rejections (a rate limit that never refills in time):
# each client gets its error in full, the server log at most 10 reports a
# second, and the first report logged after the storm is preceded by a
# summary whose count, with the reports written, is exactly 10,000.
$node->safe_psql(
	'postgres', q{
CREATE ROLE regress_storm LOGIN;
SELECT shield.set_role_policy('regress_storm', max_rate => 0.0001);
});
$node->safe_psql('postgres', 'SELECT 1', extra_params => [ '-U', 'regress_storm' ]);
my $rejections = 10000;
my $storm_sql = "SELECT 1;\n" x $rejections;
$log_offset = -s $node->logfile;
my $storm_offset = $log_offset;
my $started = time();
my ($storm_out, $storm_err) = ('', '');
$node->psql('postgres', $storm_sql, stdout => \$storm_out, stderr => \$storm_err, on_error_stop => 0,
	extra_params => [ '-U', 'regress_storm' ]);
my $storm_seconds = time() - $started + 1;
my $client_errors = () = $storm_err =~ /ERROR:  rate limit exceeded/g;
is($client_errors, $rejections, 'every client got its rejection');
$log = slurp_file($node->logfile, $log_offset);
my $reports = () = $log =~ /ERROR:  rate limit exceeded/g;
my $log_lines = () = $log =~ /\n/g;
note "storm: $rejections rejections in about $storm_seconds s, $reports reports "
  . "and $log_lines lines in the server log";
cmp_ok($reports, '>=', 1, 'rejections reach the server log');
cmp_ok($reports, '<=', 10 * $storm_seconds,
	'at most 10 rejection reports a second reach the server log');
cmp_ok($log_lines, '<=', 4 * 10 * $storm_seconds + 10,
	'the storm wrote a bounded number of log lines');

# after a second, the next rejection logged is preceded by the summary
$node->poll_query_until('postgres',
	q{SELECT clock_timestamp() > max(at) + interval '1.1 s' FROM shield.events})
  or die 'clock did not advance';
$log_offset = -s $node->logfile;
$node->psql('postgres', 'SELECT 1', extra_params => [ '-U', 'regress_storm' ]);
$log = slurp_file($node->logfile, $log_offset);
like(
	$log,
	qr/LOG:  pg_shield kept (\d+) reports of rejected statements out of the server log since [^\n]+\n[^\n]*DETAIL:  53S04: \1 of role "regress_storm" in database "postgres"\.\n(?:.*\n)*.*ERROR:  rate limit exceeded/,
	'the next report logged follows a summary of those kept out, by SQLSTATE and role');
# a storm longer than a second was summarized every second: over the whole
# storm and the rejection after it, every one was reported or kept out
$log = slurp_file($node->logfile, $storm_offset);
my $kept = 0;
$kept += $_ for $log =~ /pg_shield kept (\d+) reports/g;
my $all_reports = () = $log =~ /ERROR:  rate limit exceeded/g;
is($kept + $all_reports, $rejections + 1,
	'every rejection was either reported or counted in a summary');

# nothing is logged with log_actions = none, but events are still recorded
$node->safe_psql('postgres', q{ALTER SYSTEM SET pg_shield.log_actions = 'none'});
$node->reload;
$node->poll_query_until('postgres',
	q{SELECT current_setting('pg_shield.log_actions') = 'none'})
  or die 'reload not seen';
$log_offset = -s $node->logfile;
my $events_before =
  $node->safe_psql('postgres', 'SELECT events FROM shield.status');
$node->safe_psql('postgres',
	q{SELECT shield.set_role_policy('regress_flood', max_rate => 5)});
is($node->safe_psql('postgres', 'SELECT events FROM shield.status'),
	$events_before + 1, 'the action is recorded');
unlike(slurp_file($node->logfile, $log_offset),
	qr/pg_shield policy_set/, 'but not logged');

$node->stop;
done_testing();
