# Copyright (c) 2026, The pg_shield Developers

# Deadlines of running statements, timed.
#
#  - A deadline fires within 100 ms of its limit: the server's own measure,
#    the elapsed time in the DETAIL of pg_shield's error, is checked, not the
#    client's.
#  - Time in the admission queue counts: a statement that waited 300 ms
#    for a slot is canceled 600 ms after it arrived, not after 900 ms.
#  - The extended protocol, as node-postgres speaks it: a parameterized
#    statement is canceled; a portal fetched over several Execute messages
#    (pg-cursor) keeps the deadline of its Bind, which passes while the
#    client is between fetches: the next fetch fails at once, and the
#    statements after it run undisturbed.  EXECUTE of a prepared statement
#    is governed as its query, even when a function computing its parameter
#    runs the very text of that statement first.  node-postgres is installed from
#    the npm registry into the test's directory; without node or npm the
#    test says so and counts as skipped.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('deadlines');
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
CREATE ROLE regress_late LOGIN;
CREATE ROLE regress_queued LOGIN;
SELECT shield.set_role_policy('regress_late', deadline => '300 ms');
SELECT shield.set_role_policy('regress_queued', deadline => '600 ms',
                              max_concurrent => 1, queue_timeout => '10 s');
});

my $late = $node->connstr('postgres') . ' user=regress_late';

# The elapsed time pg_shield's DETAIL gives, or undef.
sub canceled_after
{
	my ($stderr) = @_;
	return undef
	  unless $stderr =~
	  /canceling statement due to pg_shield deadline\nDETAIL:  .* the statement was canceled (\d+) ms after it arrived(?:, (\d+) ms of them in the admission queue)?\./;
	return wantarray ? ($1, $2) : $1;
}

for my $round (1 .. 3)
{
	my ($ret, $stdout, $stderr) =
	  $node->psql('postgres', 'SELECT pg_sleep(10)', connstr => $late);
	my $elapsed = canceled_after($stderr);
	ok(defined $elapsed, "round $round: canceled by the deadline")
	  or diag($stderr);
	$elapsed //= -1;
	ok( $elapsed >= 300 && $elapsed < 400,
		"round $round: canceled $elapsed ms after arrival, within 100 ms of the 300 ms deadline"
	);
}

# Time in the queue counts.  The role's one slot is held by an open cursor
# for about 300 ms while the statement waits.
my $holder = $node->background_psql('postgres', on_error_stop => 1);
$holder->query_safe(q{SET ROLE regress_queued});
$holder->query_safe(q{BEGIN});
$holder->query_safe(q{DECLARE c CURSOR FOR SELECT 1});
my $waiter = $node->background_psql('postgres', on_error_stop => 0);
$waiter->query_safe(q{SET ROLE regress_queued});
$waiter->query_until(qr/start_waiting/,
	"\\echo start_waiting\nSELECT pg_sleep(10);\n");
ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(*) = 1 FROM shield.activity WHERE state = 'queued'}),
	'the statement waits in the admission queue');
usleep(300_000);
$holder->query_safe(q{COMMIT});
$waiter->query_until(qr/done_waiting/, "\\echo done_waiting\n");
my ($elapsed, $queued) = canceled_after($waiter->{stderr});
ok(defined $elapsed, 'the statement that waited is canceled by its deadline')
  or diag($waiter->{stderr});
$elapsed //= -1;
$queued  //= -1;
ok($queued >= 250, "it waited $queued ms in the queue");
ok( $elapsed >= 600 && $elapsed < 700,
	"it is canceled $elapsed ms after it arrived: the queue wait counted");
$waiter->quit;
$holder->quit;

# The extended protocol, with node-postgres.
my $dir = PostgreSQL::Test::Utils::tempdir();
my $npm_log = "$dir/npm.log";
my $have_node =
  system("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1") == 0
  && system("cd '$dir' && npm install --no-audit --no-fund --silent pg pg-cursor >'$npm_log' 2>&1") == 0;
SKIP:
{
	skip 'node and npm, or node-postgres from the npm registry, are not available', 6
	  unless $have_node;

	# a function whose query repeats, word for word, the text of the
	# prepared statement whose parameter it computes
	$node->safe_psql(
		'postgres', q{
SELECT shield.set_role_policy('regress_late', deadline => '300 ms');
CREATE FUNCTION shield_same_text(float8) RETURNS float8 LANGUAGE sql
  AS 'SELECT $1::float8 FROM pg_sleep($1)';
});
	my $script = "$dir/extended.js";
	my $port = $node->port;
	my $host = $node->host;
	open(my $fh, '>', $script) or die "cannot write $script: $!";
	print $fh <<"EOF";
const { Client } = require('pg');
const Cursor = require('pg-cursor');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  const client = new Client({ host: '$host', port: $port, user: 'regress_late', database: 'postgres' });
  await client.connect();
  const out = [];
  try {
    await client.query('SELECT pg_sleep(\$1)', [10]);
    out.push('parameterized: ran');
  } catch (e) { out.push('parameterized: ' + e.code + ' ' + e.message); }
  await client.query('BEGIN');
  const cursor = client.query(new Cursor('SELECT g FROM generate_series(1, 1000) g'));
  const first = await cursor.read(10);
  out.push('first fetch: ' + first.length + ' rows');
  await sleep(500);
  try {
    const second = await cursor.read(10);
    out.push('second fetch: ' + second.length + ' rows');
  } catch (e) { out.push('second fetch: ' + e.code + ' ' + e.message); }
  await client.query('ROLLBACK');
  await client.query({ name: 'shield_p', text: 'SELECT \$1::float8 FROM pg_sleep(\$1)', values: [0] });
  try {
    await client.query('EXECUTE shield_p(shield_same_text(0) + 10)');
    out.push('execute: ran');
  } catch (e) { out.push('execute: ' + e.code + ' ' + e.message); }
  const after = await client.query('SELECT count(*) AS n FROM generate_series(1, 5)');
  out.push('after: ' + after.rows[0].n);
  const again = await client.query('SELECT \$1::int AS v', [7]);
  out.push('again: ' + again.rows[0].v);
  await client.end();
  console.log(out.join('\\n'));
})().catch((e) => { console.log('failed: ' + e.stack); process.exit(1); });
EOF
	close($fh);
	my ($stdout, $stderr);
	IPC::Run::run([ 'node', $script ], '>', \$stdout, '2>', \$stderr,
		init => sub { chdir $dir });
	like(
		$stdout,
		qr/^parameterized: 57014 canceling statement due to pg_shield deadline$/m,
		'extended protocol: a parameterized statement is canceled by its deadline'
	) or diag("stdout: $stdout\nstderr: $stderr");
	like($stdout, qr/^first fetch: 10 rows$/m,
		'a portal fetched in parts: the first Execute runs within the deadline');
	like(
		$stdout,
		qr/^second fetch: 57014 canceling statement due to pg_shield deadline$/m,
		'the deadline passed while the portal was suspended: the next Execute fails at once'
	);
	like(
		$stdout,
		qr/^execute: 57014 canceling statement due to pg_shield deadline$/m,
		'EXECUTE of a prepared statement is canceled, though a function computing its parameter runs the same text first'
	);
	like($stdout, qr/^after: 5$/m,
		'the next statement runs undisturbed: the timer did not cancel it');
	like($stdout, qr/^again: 7$/m,
		'and so does a parameterized one');
}

$node->stop;
done_testing();
