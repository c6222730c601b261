# Copyright (c) 2026, The pg_shield Developers

# The postgres_exporter queries shipped in monitoring/: Debian's prometheus-postgres-exporter, run with that file
# against a server with pg_shield, publishes the execution time histograms
# of a role and of a fingerprint, rejections by reason and policy, and the
# instance's gauges, with the values of a known workload:
#
#  - 20 statements sleeping 3 ms and 5 sleeping 30 ms, one fingerprint:
#    none at or below 2.5 ms, 20 at or below 25 ms, 25 in all, with a sum
#    of at least 0.21 s; the bucket bounds are in seconds;
#  - 2 statements of another role rejected for their cost, counted under
#    reason "cost" and under the role's policy;
#  - the exporter scrapes without error, as a member of pg_monitor.
#
# Skipped if the exporter is not installed (scripts/install-deps.sh
# installs it); PG_SHIELD_EXPORTER names another binary.
use strict;
use warnings;

use Cwd qw(abs_path);
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $exporter = $ENV{PG_SHIELD_EXPORTER}
  // '/usr/bin/prometheus-postgres-exporter';
plan skip_all => "$exporter is not installed (scripts/install-deps.sh)"
  unless -x $exporter;
my $queries = abs_path('monitoring/postgres_exporter-queries.yaml');
die "monitoring/postgres_exporter-queries.yaml not found from " . abs_path('.')
  unless defined $queries && -f $queries;

my $node = PostgreSQL::Test::Cluster->new('exporter');
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
CREATE ROLE regress_dash LOGIN;
CREATE ROLE regress_costly LOGIN;
CREATE ROLE regress_exporter LOGIN IN ROLE pg_monitor;
SELECT shield.set_role_policy('regress_costly', max_cost => 0.001);
SELECT shield.reset();
});

# The workload: one psql session per role, a top-level statement each.
$node->safe_psql('postgres',
	    "SELECT pg_sleep(0.003);\n" x 20
	  . "SELECT pg_sleep(0.03);\n" x 5,
	connstr => $node->connstr('postgres') . ' user=regress_dash');
for (1 .. 2)
{
	my ($ret, $stdout, $stderr) = $node->psql(
		'postgres',
		'SELECT count(*) FROM generate_series(1, 10)',
		connstr => $node->connstr('postgres') . ' user=regress_costly');
	like($stderr, qr/cost/, "statement $_ of regress_costly is rejected");
}
my $queryid = $node->safe_psql('postgres',
	q{SELECT queryid FROM shield.query_stats
	  WHERE rolname = 'regress_dash' AND query LIKE 'SELECT pg_sleep%'});
like($queryid, qr/^-?\d+$/, 'the workload has one fingerprint');

# The exporter, as a member of pg_monitor, with pg_shield's queries only.
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $log = "$PostgreSQL::Test::Utils::log_path/021_exporter_prometheus.log";
my $dsn = sprintf('host=%s port=%d dbname=postgres user=regress_exporter '
	  . 'sslmode=disable',
	$node->host, $node->port);
my $h = IPC::Run::start(
	[
		$exporter, "--extend.query-path=$queries",
		"--web.listen-address=127.0.0.1:$port",
		'--disable-default-metrics', '--disable-settings-metrics',
		'--no-collector.database', '--no-collector.bgwriter',
		'--log.level=warn'
	],
	'<', \undef, '>', $log, '2>', $log,
	init => sub { $ENV{DATA_SOURCE_NAME} = $dsn; });
END { $h->kill_kill if defined $h && $h->pumpable; }

# A plain HTTP/1.0 GET, without a client beyond Perl's core.
sub http_get
{
	my ($path) = @_;
	my $sock = IO::Socket::INET->new(
		PeerAddr => '127.0.0.1',
		PeerPort => $port,
		Proto => 'tcp',
		Timeout => 10) or return undef;
	print $sock "GET $path HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	local $/;
	my $response = <$sock>;
	close $sock;
	return undef unless defined $response && $response =~ /^HTTP\/\S+ 200/;
	$response =~ s/^.*?\r\n\r\n//s;
	return $response;
}

my $metrics;
for (1 .. 100)
{
	$metrics = http_get('/metrics');
	last if defined $metrics;
	usleep(100_000);
}
ok(defined $metrics, 'the exporter serves /metrics')
  or diag(slurp_file($log));
$metrics //= '';
# kept for a look after the test, with the logs (tmp_check/log)
open(my $fh, ">", "$PostgreSQL::Test::Utils::log_path/021_exporter_metrics.txt")
  or die $!;
print $fh $metrics;
close $fh;

# name => [ [ {labels}, value ], ... ]
my %series;
for my $line (split /\n/, $metrics)
{
	next if $line =~ /^#/ || $line !~ /\S/;
	my ($name, $labels, $value) = $line =~ /^(\w+)(?:\{(.*)\})?\s+(\S+)$/
	  or next;
	my %l = ($labels // '') =~ /(\w+)="((?:[^"\\]|\\.)*)"/g;
	push @{ $series{$name} }, [ \%l, $value ];
}

# The values of a metric whose labels include these.
sub values_of
{
	my ($name, %want) = @_;
	my @found;
	for my $s (@{ $series{$name} // [] })
	{
		my ($l, $v) = @$s;
		next if grep { !defined $l->{$_} || $l->{$_} ne $want{$_} } keys %want;
		push @found, $v;
	}
	return @found;
}

sub value_of
{
	my ($name, %want) = @_;
	my @v = values_of($name, %want);
	return @v == 1 ? $v[0] : undef;
}

is(value_of('pg_exporter_last_scrape_error'), 0, 'the scrape had no error')
  or diag(slurp_file($log));

for my $level ([ 'role', () ], [ 'query', queryid => $queryid ])
{
	my ($what, @key) = @$level;
	my %key = (datname => 'postgres', rolname => 'regress_dash', @key);
	my $m = "pg_shield_${what}_exec_seconds";

	is(scalar(values_of("${m}_bucket", %key)),
		19, "$what: 19 buckets, one of them +Inf");
	is(value_of("${m}_bucket", %key, le => '0.0001'),
		0, "$what: the lowest bound is 0.1 ms, in seconds");
	is(value_of("${m}_bucket", %key, le => '0.0025'),
		0, "$what: nothing at or below 2.5 ms");
	is(value_of("${m}_bucket", %key, le => '0.025'),
		20, "$what: the 3 ms statements at or below 25 ms");
	is(value_of("${m}_bucket", %key, le => '+Inf'), 25, "$what: +Inf is 25");
	is(value_of("${m}_count", %key), 25, "$what: count is 25");
	my $sum = value_of("${m}_sum", %key);
	ok(defined $sum && $sum >= 0.21 && $sum < 10,
		"$what: sum is in seconds") or diag("sum " . ($sum // 'missing'));
	is(value_of("pg_shield_${what}_calls_total", %key),
		25, "$what: calls_total is 25");
}

is( value_of(
		'pg_shield_role_rejections_total',
		rolname => 'regress_costly',
		reason => 'cost'),
	2,
	'rejections by reason');
is( value_of(
		'pg_shield_role_rejections_total',
		rolname => 'regress_costly',
		reason => 'rate'),
	0,
	'other reasons are zero');
is(value_of('pg_shield_role_rejected_total', rolname => 'regress_costly'),
	2, 'rejected_total of the role');
is( value_of(
		'pg_shield_policy_rejected_total',
		scope => 'role',
		rolname => 'regress_costly'),
	2,
	'rejections of the policy');

# the exporter's own statement, a governed one, is the one running
is( value_of(
		'pg_shield_policy_breaker_open',
		scope => 'role',
		rolname => 'regress_costly'),
	0,
	'a role policy has no open breaker');

is(value_of('pg_shield_active', mode => 'enforce'),
	1, 'status: active is the scrape itself');
is(value_of('pg_shield_queued', mode => 'enforce'), 0, 'status: queued');
is(value_of('pg_shield_overloaded'), 0, 'status: not overloaded');
is(value_of('pg_shield_shedding_level'), 0, 'status: shedding nothing');
is(value_of('pg_shield_queue_delay_seconds'), 0, 'status: queue delay');
ok(value_of('pg_shield_fingerprints') >= 2, 'status: fingerprints');

$h->signal('TERM');
$h->finish;
undef $h;
$node->stop;
done_testing();
