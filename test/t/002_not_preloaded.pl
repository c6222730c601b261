# Copyright (c) 2026, The pg_shield Developers

# pg_shield installed but not in shared_preload_libraries (the reference,
# "Installation"): CREATE EXTENSION may succeed or fail with SQLSTATE 55000; every view
# and function then fails with SQLSTATE 55000 and a hint naming
# shared_preload_libraries, as a plain ERROR that leaves the session usable;
# the rest of the server works and nothing crashes.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('not_preloaded');
$node->init;
$node->append_conf('postgresql.conf', "compute_query_id = on\n");
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'', 'pg_shield is not preloaded');

$node->safe_psql(
	'postgres', q{
CREATE ROLE regress_reader LOGIN;
CREATE TABLE pgsh_plain (id int PRIMARY KEY);
INSERT INTO pgsh_plain SELECT generate_series(1, 3);
GRANT SELECT ON pgsh_plain TO regress_reader;
});

# Run SQL with verbose errors, so that stderr shows the SQLSTATE.  Errors do
# not stop the script.
sub verbose_psql
{
	my ($sql, %params) = @_;
	return $node->psql(
		'postgres', "\\set VERBOSITY verbose\n$sql",
		on_error_stop => 0,
		%params);
}

my ($ret, $stdout, $stderr) = verbose_psql('CREATE EXTENSION pg_shield;');
my $created = $ret == 0 && $stderr !~ /ERROR/;
ok( $created
	  || $stderr =~
	  /ERROR:\s+55000:.*\n(?:.*\n)*HINT:.*shared_preload_libraries/,
	'CREATE EXTENSION without preloading succeeds or fails with 55000'
) or diag("CREATE EXTENSION: ret $ret, stderr: $stderr");
like(
	$stderr,
	qr/WARNING:\s+01000: pg_shield is not loaded via "shared_preload_libraries"\n(?:.*\n)*HINT:.*shared_preload_libraries/,
	'CREATE EXTENSION without preloading warns, with a hint');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM pg_extension WHERE extname = 'pg_shield'}),
	$created ? '1' : '0',
	'pg_extension agrees with the outcome of CREATE EXTENSION');

my @entry_points = (
	'SELECT * FROM shield.role_stats',
	'SELECT * FROM shield.query_stats',
	'SELECT * FROM shield.status',
	'SELECT * FROM shield.role_stats()',
	'SELECT * FROM shield.query_stats()',
	'SELECT * FROM shield.status()',
	'SELECT shield.reset()');

SKIP:
{
	skip 'CREATE EXTENSION failed, no SQL object to call',
	  4 * @entry_points + 2 * 3 + 6
	  unless $created;

	# As superuser: every entry point fails with 55000 and the hint, and
	# the session goes on (the following SELECT runs).
	foreach my $sql (@entry_points)
	{
		($ret, $stdout, $stderr) = verbose_psql("$sql;\nSELECT 'alive';");
		is($ret, 0, "$sql: psql completes the script");
		like(
			$stderr,
			qr/ERROR:\s+55000: pg_shield must be loaded via "shared_preload_libraries"/,
			"$sql: fails with SQLSTATE 55000");
		like(
			$stderr,
			qr/^HINT:.*shared_preload_libraries/m,
			"$sql: hint names shared_preload_libraries");
		is($stdout, 'alive', "$sql: is an ERROR, the session goes on");
	}

	# PUBLIC may read the views: a plain role gets the same 55000, not a
	# permission error.
	foreach my $view (qw(role_stats query_stats status))
	{
		($ret, $stdout, $stderr) = verbose_psql("SELECT * FROM shield.$view;",
			connstr => $node->connstr('postgres') . ' user=regress_reader');
		like($stderr, qr/ERROR:\s+55000:/,
			"shield.$view as a plain role: fails with SQLSTATE 55000");
		like($stderr, qr/^HINT:.*shared_preload_libraries/m,
			"shield.$view as a plain role: hint names shared_preload_libraries"
		);
	}

	# Loading the library into a backend is not preloading it.
	($ret, $stdout, $stderr) =
	  verbose_psql("LOAD 'pg_shield';\nSELECT * FROM shield.status;");
	my @errors = $stderr =~ /ERROR:/g;
	is(scalar @errors, 1, 'LOAD pg_shield works, only the SELECT fails');
	like($stderr, qr/ERROR:\s+55000:/,
		'after LOAD, shield.status still fails with SQLSTATE 55000');

	# The extension did not take over statements: nothing governs them.
	is($node->safe_psql('postgres', 'SELECT sum(id) FROM pgsh_plain'),
		'6', 'ordinary queries work with the extension installed');
	is( $node->safe_psql(
			'postgres',
			'SELECT count(*) FROM pgsh_plain',
			connstr => $node->connstr('postgres') . ' user=regress_reader'),
		'3',
		'ordinary queries of a plain role work');

	# A misconfigured installation can be removed.
	($ret, $stdout, $stderr) = verbose_psql('DROP EXTENSION pg_shield;');
	is($ret,    0,  'DROP EXTENSION without preloading works');
	is($stderr, '', 'DROP EXTENSION without preloading reports no error');
}

# Whatever happened above, the server never crashed.
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'server still answers');
ok( !$node->log_contains(
		qr/terminated by signal|server process .* exited with exit code [^0]|was terminated by exception/
	),
	'no backend crashed');
ok(!$node->log_contains(qr/all server processes terminated/),
	'the postmaster never reinitialized');

$node->stop;

done_testing();
