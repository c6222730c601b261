# Copyright (c) 2026, The pg_shield Developers

# The retry examples of examples/ against a live server: the
# retry loops the documentation shows must work with the drivers as they
# are, reading the SQLSTATE and the HINT the drivers expose.
#
# Each stack (psycopg2, psycopg 3, node-postgres) runs as its own role,
# limited to 2 statements per second (burst 2) and a plan cost of 1000.
# Its example runs five quick statements, so the third is turned away with
# 53S04 and retried after the hinted time, then a costly one, whose 54001
# must not be retried.  The summary line each prints is checked against
# the role's counters in shield.role_stats: every retry it reports is one
# rejected_rate, the costly statement one rejected_cost, and the five
# statements ran once each.  Then one query policy declared with $1
# governs the statement as psycopg2 sends it (inlined) and as node-postgres
# sends it (a parameter).  node-postgres also shows that a connection
# taken with pool.connect() survives the errors, and that pool.query()
# discards its connection on one.
#
# The runtimes come from Debian (python3-psycopg2, python3-psycopg) and
# node-postgres from the npm registry, pinned by examples/node's
# package-lock.json and installed by scripts/install-deps.sh into
# /usr/local/lib/pg_shield-node (PG_SHIELD_NODE_PREFIX); a stack whose
# runtime is missing is skipped with the reason.
use strict;
use warnings;

use Cwd;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $examples = getcwd() . '/examples';
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';
my $node_modules =
  ($ENV{PG_SHIELD_NODE_PREFIX} // '/usr/local/lib/pg_shield-node') . '/node_modules';

my $node = PostgreSQL::Test::Cluster->new('clients');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
});
$node->start;

my @stacks = (
	{
		name => 'psycopg2',
		role => 'regress_psycopg2',
		probe => [ $python, '-c', 'import psycopg2' ],
		run => [ $python, "$examples/python/retry_psycopg2.py" ],
	},
	{
		name => 'psycopg 3',
		role => 'regress_psycopg3',
		probe => [ $python, '-c', 'import psycopg' ],
		run => [ $python, "$examples/python/retry_psycopg3.py" ],
	},
	{
		name => 'node-postgres',
		role => 'regress_node',
		probe => [ 'node', '-e', 'require("pg")' ],
		run => [ 'node', "$examples/node/retry.js" ],
	});

$node->safe_psql('postgres', 'CREATE EXTENSION pg_shield');
for my $s (@stacks)
{
	$node->safe_psql(
		'postgres', qq{
CREATE ROLE $s->{role} LOGIN;
SELECT shield.set_role_policy('$s->{role}', max_rate => 2, max_cost => 1000);
});
}

# Run a command with the connection in the environment, as the examples
# expect it; returns (exit status, stdout, stderr).
sub run_as
{
	my ($role, $cmd) = @_;
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'postgres';
	local $ENV{PGUSER} = $role;
	local $ENV{NODE_PATH} = $node_modules;
	my ($stdout, $stderr) = ('', '');
	IPC::Run::run($cmd, '<', \undef, '>', \$stdout, '2>', \$stderr);
	return ($? >> 8, $stdout, $stderr);
}

for my $s (@stacks)
{
  SKIP:
	{
		my ($probe_rc, undef, $probe_err) = run_as($s->{role}, $s->{probe});
		my ($why) = $probe_err =~ /(Cannot find module '[^']*'|No module named \S+|No such file or directory)/;
		skip "$s->{name} is not available ("
		  . ($why // "@{$s->{probe}} failed")
		  . '; scripts/install-deps.sh installs it)',
		  ($s->{name} eq 'node-postgres' ? 8 : 6)
		  if $probe_rc != 0;

		my ($rc, $out, $err) = run_as($s->{role}, $s->{run});
		is($rc, 0, "$s->{name}: the example ran") or diag("stdout: $out\nstderr: $err");
		my ($retries) = $out =~
		  /^ok: 5 statements, (\d+) retries after (?:53S04|-), 54001 not retried\b/m;
		ok(defined $retries, "$s->{name}: five statements ran, 54001 was not retried")
		  or diag("stdout: $out");
		$retries //= -1;
		ok($retries >= 1,
			"$s->{name}: the third quick statement was turned away by the rate limit and retried ($retries retries)"
		);

		# pool.query's own rejections count too
		my ($pool_rejected) = $out =~ /^pool\.query: (\d+) rejected with 53S04/m;
		my ($admitted, $rate, $cost) = split /\|/,
		  $node->safe_psql(
			'postgres', qq{SELECT admitted, rejected_rate, rejected_cost
			  FROM shield.role_stats WHERE rolname = '$s->{role}'});
		is($rate, $retries + ($pool_rejected // 0),
			"$s->{name}: each retry reported is a rejected_rate in shield.role_stats");
		is($cost, 1, "$s->{name}: the costly statement was rejected once (rejected_cost)");
		is($admitted, 5, "$s->{name}: the five statements were admitted once each");

		if ($s->{name} eq 'node-postgres')
		{
			like($out, qr/^ok: .*, 1 connection\(s\)$/m,
				'node-postgres: pool.connect() and release() kept one connection through the errors');
			like(
				$out,
				qr/^pool\.query: 1 rejected with 53S04, connections in the pool 1 -> 0$/m,
				'node-postgres: pool.query() discarded its connection on a 53S04');
		}
	}
}

# One declaration for every driver: a query policy declared with $1 governs
# the statement as psycopg2 sends it (the constant inlined, simple protocol)
# and as node-postgres sends it (a parameter, extended protocol), in one
# shared scope: one rate token, which the first takes and the second finds
# spent.
$node->safe_psql(
	'postgres', q{
CREATE ROLE regress_shape LOGIN;
CREATE TABLE clients_t (id int);
INSERT INTO clients_t SELECT generate_series(1, 10);
GRANT SELECT ON clients_t TO regress_shape;
SELECT shield.set_query_policy('SELECT count(*) FROM clients_t WHERE id > $1',
                               max_rate => 0.001);
});
SKIP:
{
	my ($py_rc) = run_as('regress_shape', [ $python, '-c', 'import psycopg2' ]);
	my ($node_rc) = run_as('regress_shape', [ 'node', '-e', 'require("pg")' ]);
	skip 'psycopg2 or node-postgres is not available', 4
	  if $py_rc != 0 || $node_rc != 0;

	my (undef, $py_out, $py_err) = run_as(
		'regress_shape',
		[
			$python, '-c', q{
import psycopg2
conn = psycopg2.connect("")
cur = conn.cursor()
try:
    cur.execute("SELECT count(*) FROM clients_t WHERE id > %s", (3,))
    print("psycopg2: ok", cur.fetchone()[0])
except psycopg2.Error as e:
    print("psycopg2: error", e.pgcode)
}
		]);
	my (undef, $node_out, $node_err) = run_as(
		'regress_shape',
		[
			'node', '-e', q{
const { Client } = require("pg");
const c = new Client();
c.connect()
  .then(() => c.query("SELECT count(*) FROM clients_t WHERE id > $1", [3]))
  .then((r) => console.log("node-postgres: ok", r.rows[0].count))
  .catch((e) => console.log("node-postgres: error", e.code))
  .finally(() => c.end());
}
		]);
	is($py_out, "psycopg2: ok 7
",
		'psycopg2, constant inlined: admitted by the policy declared with $1')
	  or diag($py_err);
	is($node_out, "node-postgres: error 53S04
",
		"node-postgres, with a parameter: the same policy's bucket is empty")
	  or diag($node_err);
	is( $node->safe_psql(
			'postgres', q{
SELECT count(DISTINCT queryid) FROM shield.query_stats
WHERE rolname = 'regress_shape' AND query LIKE '%clients_t%'}),
		'2',
		'the two forms keep their own fingerprints in shield.query_stats');
	is( $node->safe_psql(
			'postgres', q{
SELECT matched_by FROM shield.effective_policy(
    'SELECT count(*) FROM clients_t WHERE id > 3', 'regress_shape')
WHERE limit_name = 'max_rate'}),
		'shape',
		'effective_policy says the inline form matches by shape');
}

$node->stop;
done_testing();
