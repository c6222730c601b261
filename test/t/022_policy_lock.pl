# Copyright (c) 2026, The pg_shield Developers

# Reading the policies never waits for a lock on shield.policy.  A migration that holds a conflicting lock in an open
# transaction (here DROP EXTENSION, and a VACUUM FULL queued behind a
# reader of the table) must not stall the statements of every other
# session of the database, a superuser's included: they go on under the
# policies read last (or none, in a session that never read them) and read
# them again once the lock is gone.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('policy_lock');
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
CREATE ROLE regress_lock_app LOGIN;
SELECT shield.set_role_policy('regress_lock_app', max_rate => 0.001);
});
my $app = $node->connstr('postgres') . ' user=regress_lock_app';

# A statement of a new session, as regress_lock_app or as the superuser:
# its outcome ("ok" or the error), within 30 s at most.
sub new_session_runs
{
	my ($user) = @_;
	my ($ret, $out, $err) = $node->psql(
		'postgres', 'SELECT 1',
		extra_params => $user ? [ '-U', $user ] : [],
		timeout => 30);
	return $ret == 0 && $out eq '1' ? 'ok' : "ret $ret: $err";
}

# 1. DROP EXTENSION in an open transaction holds shield.policy exclusively.
my $migration = $node->background_psql('postgres', on_error_stop => 1);
$migration->query_safe('BEGIN');
$migration->query_safe('DROP EXTENSION pg_shield');
is(new_session_runs('regress_lock_app'), 'ok',
	'a new session of a limited role runs while DROP EXTENSION is open');
is(new_session_runs(undef), 'ok',
	'so does a superuser\'s new session');
$migration->query_safe('ROLLBACK');

# the policies apply again: the rate limit's only token, then a rejection
is(new_session_runs('regress_lock_app'), 'ok',
	'after the rollback, the first statement spends the only token');
like(new_session_runs('regress_lock_app'), qr/rate limit exceeded/,
	'and the policy is in force again');

# 2. A VACUUM FULL queued behind a long reader of the table: new sessions
# would queue behind the VACUUM's lock request.
my $reader = $node->background_psql('postgres', on_error_stop => 1);
$reader->query_safe('BEGIN');
$reader->query_safe('SELECT count(*) FROM shield.policy');
my $vacuum = $node->background_psql('postgres', on_error_stop => 0);
$vacuum->query_until(qr/vacuuming/, q{\echo vacuuming
VACUUM FULL shield.policy;
});
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM pg_locks
WHERE relation = 'shield.policy'::regclass AND NOT granted}),
	'VACUUM FULL waits for the reader');
like(new_session_runs('regress_lock_app'), qr/^(ok|ret \d+: .*rate limit exceeded.*)$/s,
	'a new session of the limited role is not stuck behind the queued VACUUM FULL (it runs, or its policy rejects it)');
is(new_session_runs(undef), 'ok',
	'nor is a superuser\'s');
$reader->query_safe('COMMIT');
$reader->quit;
$vacuum->quit;
$migration->quit;

$node->stop;
done_testing();
