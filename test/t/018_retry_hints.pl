# Copyright (c) 2026, The pg_shield Developers

# Retry hints that spread retries.  A role may run
# one statement at a time and may not queue (queue_timeout 0); a client
# whose statement is turned away with 53S01 follows the HINT "Retry after
# N ms." until it gets in.
#
#  - The hint is when the slot is expected to free: the holder's shape
#    usually runs 800 ms, so a client turned away just after it started
#    is told to come back in about 800 ms, not in 10 ms.
#  - A client following the hints gets in after a few attempts, whether
#    the holder's shape is known or never seen to complete (the hint then
#    grows with the holder's age).
#  - Hints carry jitter: clients turned away together are not told to
#    come back together.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('hints');
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
CREATE ROLE regress_hint LOGIN;
SELECT shield.set_role_policy('regress_hint', max_concurrent => 1,
                              queue_timeout => '0');
});
my $connstr = $node->connstr('postgres') . ' user=regress_hint';

sub as_hint
{
	my ($sql) = @_;
	my ($ret, $stdout, $stderr) =
	  $node->psql('postgres', $sql, connstr => $connstr);
	return ($ret, $stderr);
}

# Hold the slot with sql, and return the session once it runs.
sub hold
{
	my ($sql) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 1);
	$s->query_safe('SET ROLE regress_hint');
	$s->query_until(qr/started/, "\\echo started\n$sql\n");
	$node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM shield.activity WHERE state = 'running'})
	  or die 'the holder does not run';
	return $s;
}

# Follow the hints until the statement gets in; the hints given.
sub follow_hints
{
	my @hints;
	my $deadline = time() + 30;
	while (time() < $deadline)
	{
		my ($ret, $stderr) = as_hint('SELECT 1');
		return @hints if $ret == 0;
		$stderr =~ /Retry after (\d+) ms\./
		  or die "no hint in: $stderr";
		push @hints, $1;
		usleep($1 * 1000);
	}
	return (@hints, 'gave up');
}

# The holder's shape usually takes 800 ms.
as_hint('SELECT pg_sleep(0.8)') for 1 .. 2;
my $holder = hold('SELECT pg_sleep(2.5);');
my @hints = follow_hints();
ok(@hints >= 1 && $hints[0] >= 300,
	"the first hint is about the time the holder's shape usually has left ($hints[0] ms)");
ok(@hints <= 5 && $hints[-1] ne 'gave up',
	'a client following the hints gets in after ' . scalar(@hints) . ' rejections: ' . join(' ', @hints));
$holder->query_until(qr/done/, "\\echo done\n");

# A shape never seen to complete: the hints grow with the holder's age.
$holder->query_until(qr/started/, "\\echo started\nSELECT pg_sleep(6), 'unknown';\n");
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM shield.activity WHERE state = 'running'})
  or die 'the holder does not run';
@hints = follow_hints();
ok(@hints <= 10 && $hints[-1] ne 'gave up',
	'a holder of an unknown shape: ' . scalar(@hints) . ' rejections: ' . join(' ', @hints));
ok(@hints >= 2 && $hints[-1] > $hints[0],
	'the hints grow with the age of the holder');
$holder->query_until(qr/done/, "\\echo done\n");

# Statements turned away together are told different times.
$holder->query_until(qr/started/, "\\echo started\nSELECT pg_sleep(5);\n");
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM shield.activity WHERE state = 'running'})
  or die 'the holder does not run';
my $client = $node->background_psql('postgres', on_error_stop => 0);
$client->query_safe('SET ROLE regress_hint');
$client->query_until(qr/sent/, "SELECT 1;\n" x 6 . "\\echo sent\n");
my %distinct = map { $_ => 1 } ($client->{stderr} =~ /Retry after (\d+) ms\./g);
ok(keys(%distinct) >= 3,
	'six statements turned away together got ' . keys(%distinct) . ' different hints');
$client->quit;
$holder->query_until(qr/done/, "\\echo done\n");
$holder->quit;

done_testing();
