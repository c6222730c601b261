# Copyright (c) 2026, The pg_shield Developers

# pg_shield behind PgBouncer in transaction mode, with Debian's
# pgbouncer: the pooled role is the role pg_shield governs, since the
# server connections log in as it.
#
#  - Statements are accounted per role through the pooler.
#  - Limits hold per role: a role that may run one statement at a time and
#    may not queue gets 53S01 through PgBouncer while its slot is held,
#    with SQLSTATE, DETAIL and HINT intact, and another pooled role is not
#    affected; a rate-limited role gets 53S04 with its hint.
#  - PgBouncer's server_check_query (default "select 1"), which it runs on a
#    server connection idle longer than server_check_delay before handing
#    it to a client, is a statement of the pooled role: it is counted and
#    takes a rate token, so that a client of a role limited to 1 statement
#    per second is turned away after an idle pause.  With
#    server_check_query empty, PgBouncer sends no check and the client's
#    statement gets the token.
#  - Named prepared statements: PgBouncer before 1.21 (Debian 12 has 1.18)
#    does not follow them from one server connection to another: a
#    statement prepared in one transaction is missing in the next when
#    that runs on another server connection (26000).  Checked only where
#    PgBouncer lacks max_prepared_statements.
#
# Without a pgbouncer binary the test is skipped (scripts/install-deps.sh
# installs Debian's).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my ($pgbouncer) = grep { -x $_ } ('/usr/sbin/pgbouncer',
	map { "$_/pgbouncer" } split /:/, $ENV{PATH});
plan skip_all => 'pgbouncer is not installed (scripts/install-deps.sh installs it)'
  unless $pgbouncer;

my $node = PostgreSQL::Test::Cluster->new('pgbouncer');
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
CREATE ROLE regress_app1 LOGIN;
CREATE ROLE regress_app2 LOGIN;
CREATE ROLE regress_app3 LOGIN;
SELECT shield.set_role_policy('regress_app1', max_concurrent => 1,
                              queue_timeout => '0');
SELECT shield.set_role_policy('regress_app2', max_rate => 1);
});

# PgBouncer on a Unix socket of its own, in front of the node.
my $dir = PostgreSQL::Test::Utils::tempdir_short();
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $ini = "$dir/pgbouncer.ini";
my $host = $node->host;
my $node_port = $node->port;

sub write_ini
{
	my ($extra) = @_;
	open(my $fh, '>', $ini) or die "cannot write $ini: $!";
	print $fh <<"EOF";
[databases]
postgres = host=$host port=$node_port dbname=postgres
[pgbouncer]
listen_addr =
listen_port = $port
unix_socket_dir = $dir
auth_type = trust
auth_file = $dir/users.txt
admin_users = regress_admin
pool_mode = transaction
default_pool_size = 4
server_check_delay = 1
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
$extra
EOF
	close($fh);
}
write_ini('');
open(my $users, '>', "$dir/users.txt") or die $!;
print $users qq{"$_" ""\n}
  for qw(regress_app1 regress_app2 regress_app3 regress_admin);
close($users);

my $bouncer = IPC::Run::start([ $pgbouncer, $ini ],
	'>', "$dir/pgbouncer.stdout", '2>&1');
END { $bouncer->kill_kill if $bouncer && $bouncer->pumpable; }

sub via_bouncer
{
	my ($role, $db) = @_;
	return "host=$dir port=$port dbname=" . ($db // 'postgres') . " user=$role";
}

# psql through PgBouncer, errors in verbose form (with the SQLSTATE).
sub bpsql
{
	my ($role, $sql) = @_;
	my ($ret, $stdout, $stderr) = $node->psql(
		'postgres', $sql,
		connstr => via_bouncer($role),
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($ret, $stdout, $stderr);
}

my $up = 0;
for (1 .. 100)
{
	my ($ret) = bpsql('regress_app3', 'SELECT 1');
	if ($ret == 0) { $up = 1; last; }
	usleep(100_000);
}
ok($up, 'PgBouncer accepts connections') or do
{
	diag(slurp_file("$dir/pgbouncer.log")) if -f "$dir/pgbouncer.log";
	done_testing();
	exit;
};
my ($version) = `$pgbouncer --version` =~ /PgBouncer (\S+)/;
note("PgBouncer $version");

sub calls_of
{
	my ($role, $query) = @_;
	$query =~ s/'/''/g;
	return $node->safe_psql(
		'postgres', qq{SELECT coalesce(sum(calls), 0)
		  FROM shield.query_stats WHERE rolname = '$role' AND query = '$query'});
}

# Accounting per pooled role.
bpsql('regress_app1', "SELECT 'app1 pooled'") for 1 .. 3;
bpsql('regress_app2', "SELECT 'app2 pooled'");
is(calls_of('regress_app1', q{SELECT 'app1 pooled'}), 3,
	'the statements of one pooled role are accounted to it');
is(calls_of('regress_app2', q{SELECT 'app2 pooled'}), 1,
	'and those of another pooled role to that one');

# Concurrency limit through PgBouncer: app1's slot is held by an open
# cursor in a transaction, which keeps its server connection.
my $holder = $node->background_psql(
	'postgres',
	on_error_stop => 1,
	extra_params => [ '-d', via_bouncer('regress_app1') ]);
$holder->query_safe('BEGIN');
$holder->query_safe('DECLARE c CURSOR FOR SELECT 1');
my ($ret, $stdout, $stderr) = bpsql('regress_app1', 'SELECT 1');
like(
	$stderr,
	qr/ERROR:  53S01: concurrency limit reached and the statement cannot queue\nDETAIL:  Role "regress_app1" \(policy \d+\) limits concurrent statements to 1 \(running: 1\); its queue_timeout is 0\.\nHINT:  Retry after \d+ ms\./,
	'through PgBouncer, a full role gets 53S01 with its DETAIL and HINT intact');
($ret) = bpsql('regress_app3', 'SELECT 1');
is($ret, 0, 'another pooled role is not affected');
$holder->query_safe('COMMIT');
$holder->quit;
($ret) = bpsql('regress_app1', 'SELECT 1');
is($ret, 0, 'the slot is free again once the holder commits');
is( $node->safe_psql(
		'postgres',
		q{SELECT rejected_queue_full FROM shield.role_stats WHERE rolname = 'regress_app1'}),
	'1',
	'the rejection is counted for the pooled role');

# Rate limit through PgBouncer: app2 may run one statement a second, in
# bursts of one.
($ret, $stdout, $stderr) =
  bpsql('regress_app2', "SELECT 'app2 pooled';\nSELECT 'app2 pooled';");
like(
	$stderr,
	qr/ERROR:  53S04: rate limit exceeded\nDETAIL:  Role "regress_app2" .*\nHINT:  Retry after \d+ ms\./,
	'through PgBouncer, a rate-limited role gets 53S04 with its hint');

# server_check_query: after an idle pause longer than server_check_delay
# (1 s here, 30 s by default) and than the bucket's refill, PgBouncer checks
# the server connection with "select 1" before the client's statement.
# Returns the client's exit status and errors, and the number of checks
# accounted to the role; 1.18 sends none during the pause itself.
sub after_idle_pause
{
	my $before = calls_of('regress_app2', 'select 1');
	sleep(2);
	my $paused = calls_of('regress_app2', 'select 1') - $before;
	my ($ret, undef, $stderr) = bpsql('regress_app2', "SELECT 'app2 pooled'");
	my $checks = calls_of('regress_app2', 'select 1') - $before;
	note("checks during the pause: $paused, with the statement: " . ($checks - $paused));
	return ($ret, $stderr, $checks);
}
my ($checked_ret, $checked_err, $checks) = after_idle_pause();
ok($checks >= 1,
	"PgBouncer's server_check_query ran as the pooled role and was accounted to it ($checks)");
like($checked_err, qr/ERROR:  53S04: rate limit exceeded/m,
	'it took the rate token: the client statement after the pause is turned away');

write_ini('server_check_query =');
($ret, $stdout, $stderr) = $node->psql(
	'pgbouncer', 'RELOAD',
	connstr => via_bouncer('regress_admin', 'pgbouncer'));
is($ret, 0, 'PgBouncer reloads its configuration') or diag($stderr);
($checked_ret, $checked_err, $checks) = after_idle_pause();
is($checks, 0, 'with server_check_query empty, PgBouncer sends no check');
is($checked_ret, 0, 'and the client statement after the pause gets the token')
  or diag($checked_err);

# Named prepared statements, where PgBouncer does not track them.
(undef, $stdout) = $node->psql(
	'pgbouncer', 'SHOW CONFIG',
	connstr => via_bouncer('regress_admin', 'pgbouncer'));
SKIP:
{
	skip "PgBouncer $version tracks prepared statements (max_prepared_statements)", 1
	  if $stdout =~ /max_prepared_statements/;

	# a prepares on the one idle server connection, b holds it in a
	# transaction, so a's next transaction runs on another one
	my $a = $node->background_psql(
		'postgres',
		on_error_stop => 0,
		extra_params => [ '-d', via_bouncer('regress_app3') ]);
	my $b = $node->background_psql(
		'postgres',
		on_error_stop => 1,
		extra_params => [ '-d', via_bouncer('regress_app3') ]);
	$a->query_safe('PREPARE shield_p AS SELECT 1');
	$b->query_safe('BEGIN');
	$b->query_safe('SELECT 1');
	$a->query('\set VERBOSITY verbose');
	$a->query('EXECUTE shield_p');
	like(
		$a->{stderr},
		qr/26000: prepared statement "shield_p" does not exist/,
		"PgBouncer $version: a statement prepared on one server connection is missing on another"
	);
	$b->query_safe('COMMIT');
	$a->quit;
	$b->quit;
}

$bouncer->signal('INT');
$bouncer->finish;
$node->stop;
done_testing();
