# Copyright (c) 2026, The pg_shield Developers

# pg_upgrade from an older major version to the server under test.
#
# A cluster of the older version (PG_SHIELD_UPGRADE_FROM, the installation
# directory of Debian's PostgreSQL 15 when scripts/test.sh runs this) with
# pg_shield, role and query policies, a grant on a policy function and
# statistics is upgraded with pg_upgrade.  Afterwards the extension, its
# policies and its grants are there; statistics start again from zero (they
# live in shared memory).  Query identifiers change between major versions,
# so the query policies, whose fingerprints the old version computed, are
# stale: not enforced, and said so in the server log, in shield.policies and
# by the policy functions, never silently matching nothing.
# shield.rebind_query_policies() recomputes the ones declared by text, which
# are enforced again; the one declared by fingerprint alone cannot be.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# A test that cannot run says why, and is counted as one skipped test.
sub skip_test
{
	my ($why) = @_;
	plan tests => 1;
  SKIP:
	{
		skip $why, 1;
	}
	exit 0;
}

my $old_install = $ENV{PG_SHIELD_UPGRADE_FROM};
skip_test(
	'PG_SHIELD_UPGRADE_FROM names no PostgreSQL installation to upgrade from (scripts/test.sh sets it)'
) if !defined $old_install || !-x "$old_install/bin/pg_ctl";

my $old = PostgreSQL::Test::Cluster->new('old', install_path => $old_install);
my $new = PostgreSQL::Test::Cluster->new('new');
skip_test('the server under test is PostgreSQL '
	  . $new->pg_version->major
	  . ', not newer than PostgreSQL '
	  . $old->pg_version->major
	  . ': there is nothing to upgrade from')
  if $old->pg_version->major >= $new->pg_version->major;

my $old_major = $old->pg_version->major;
my $new_major = $new->pg_version->major;
my $conf = q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
};

# Both with data checksums: 18 enables them by default, earlier versions
# do not, and pg_upgrade needs the two clusters to agree.
$old->init(extra => ['--data-checksums']);
$old->append_conf('postgresql.conf', $conf);
$old->start;

$old->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_shield;
CREATE ROLE regress_app LOGIN;
CREATE ROLE regress_migrator LOGIN;
CREATE TABLE items (id int PRIMARY KEY, v text);
INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g;
GRANT SELECT ON items TO regress_app;
GRANT EXECUTE ON FUNCTION shield.set_query_policy(text, regrole, int4,
    interval, float8, interval, float8, text, int4, interval, text, int4)
  TO regress_migrator;
SELECT shield.set_role_policy('regress_app', max_concurrent => 4,
                              deadline => '5 s', priority => 'low');
SELECT shield.set_query_policy('SELECT v FROM items WHERE id = 1',
                               role => 'regress_app', max_cost => 1);
SELECT shield.set_query_policy(4242, max_rate => 10);
});

my $app = $old->connstr('postgres') . ' user=regress_app';
my ($ret, $stdout, $stderr) =
  $old->psql('postgres', 'SELECT v FROM items WHERE id = 7',
	connstr => $app);
like($stderr, qr/estimated statement cost exceeds the pg_shield limit/,
	"PostgreSQL $old_major: the query policy declared by text applies");
$old->safe_psql('postgres', 'SELECT count(*) FROM items', connstr => $app)
  for 1 .. 3;
is( $old->safe_psql(
		'postgres',
		q{SELECT calls FROM shield.query_stats
		  WHERE rolname = 'regress_app' AND query LIKE 'SELECT count(*)%'}),
	'3',
	"PostgreSQL $old_major: statistics were recorded");

my $policies_query = q{
SELECT scope, rolname, query, max_concurrent, deadline, max_cost, max_rate,
       priority, mode
FROM shield.policies ORDER BY id};
my $policies_before = $old->safe_psql('postgres', $policies_query);

# Debian 12's PostgreSQL 15.20 records an attribute option "pg_attver" on
# every column it creates, which no other PostgreSQL release knows: pg_dump
# writes it out and pg_upgrade fails restoring the schema ("unrecognized
# parameter").  ALTER TABLE ... RESET does not remove it, so the upgrade
# procedure (see the reference page) clears it in the catalog first.  The
# extension has nothing to do with it: a plain table has it too.
for my $db ('postgres', 'template1')
{
	$old->safe_psql(
		$db, q{
UPDATE pg_catalog.pg_attribute
SET attoptions = NULLIF(ARRAY(SELECT o FROM unnest(attoptions) o
                              WHERE o NOT LIKE 'pg_attver=%'), '{}')
WHERE attoptions::text LIKE '%pg_attver=%'});
}
$old->stop;

$new->init(extra => ['--data-checksums']);
$new->append_conf('postgresql.conf', $conf);

# pg_upgrade writes its logs in the new data directory and its working
# files in the current directory.
chdir ${PostgreSQL::Test::Utils::tmp_check};
command_ok(
	[
		'pg_upgrade', '--no-sync',
		'--old-datadir' => $old->data_dir,
		'--new-datadir' => $new->data_dir,
		'--old-bindir' => $old->config_data('--bindir'),
		'--new-bindir' => $new->config_data('--bindir'),
		'--socketdir' => $new->host,
		'--old-port' => $old->port,
		'--new-port' => $new->port,
	],
	"pg_upgrade from PostgreSQL $old_major to $new_major");

$new->start;
$app = $new->connstr('postgres') . ' user=regress_app';

is( $new->safe_psql(
		'postgres',
		q{SELECT extversion || ' ' || extnamespace::regnamespace
		  FROM pg_extension WHERE extname = 'pg_shield'}),
	'1.0 shield',
	'the extension is there, at the same version, in schema shield');
is($new->safe_psql('postgres', $policies_query),
	$policies_before, 'the policies are there, unchanged');
is( $new->safe_psql(
		'postgres', q{
SELECT has_function_privilege('regress_migrator',
           'shield.set_query_policy(text, regrole, int4, interval, float8, interval, float8, text, int4, interval, text, int4)',
           'EXECUTE'),
       has_function_privilege('regress_app',
           'shield.set_query_policy(text, regrole, int4, interval, float8, interval, float8, text, int4, interval, text, int4)',
           'EXECUTE')}),
	't|f',
	'the grant on a policy function survives, and PUBLIC still has none');
is( $new->safe_psql(
		'postgres',
		q{SELECT count(*) FROM shield.query_stats WHERE rolname = 'regress_app'}),
	'0',
	'statistics start again from zero');

# The query policies' fingerprints are the old version's.
is( $new->safe_psql(
		'postgres', q{
SELECT string_agg(scope || ':' || coalesce(fingerprint_version::text, '-') || ':' || stale, ' ' ORDER BY id)
FROM shield.policies}),
	"role:-:false query+role:$old_major:true query:$old_major:true",
	'the query policies are stale: fingerprinted by the old version');
($ret, $stdout, $stderr) =
  $new->psql('postgres', 'SELECT v FROM items WHERE id = 7',
	connstr => $app);
is($ret, 0, 'a stale query policy is not enforced');
ok( $new->wait_for_log(
		qr/2 pg_shield query policies of database "postgres" are not enforced: their fingerprints were computed by PostgreSQL $old_major/
	),
	'the server log says that the stale query policies are not enforced');
($ret, $stdout, $stderr) = $new->psql(
	'postgres',
	q{SELECT shield.set_role_policy('regress_app', max_concurrent => 4,
	      deadline => '5 s', priority => 'low')});
like(
	$stderr,
	qr/WARNING:  2 query policies are not enforced: their fingerprints were computed by PostgreSQL $old_major/,
	'the policy functions warn their caller');
like(
	$new->safe_psql(
		'postgres', q{
SELECT string_agg(limit_name || '=' || value || ':' || scope, ' ')
FROM shield.effective_policy('SELECT v FROM items WHERE id = 7', 'regress_app')}),
	qr/deadline=5000 ms:role/,
	'the role policy applies');

# Rebinding recomputes the policy declared by text.
($ret, $stdout, $stderr) =
  $new->psql('postgres', 'SELECT shield.rebind_query_policies()');
is($stdout, '1', 'rebinding recomputes the policy declared by text');
like(
	$stderr,
	qr/could not rebind query policy 3: it was declared by fingerprint on PostgreSQL $old_major/,
	'and says why the one declared by fingerprint cannot be');
is( $new->safe_psql(
		'postgres', q{
SELECT string_agg(scope || ':' || stale, ' ' ORDER BY id) FROM shield.policies}),
	'role:false query+role:false query:true',
	'the text policy is current again');
($ret, $stdout, $stderr) =
  $new->psql('postgres', 'SELECT v FROM items WHERE id = 7',
	connstr => $app);
like($stderr, qr/estimated statement cost exceeds the pg_shield limit/,
	"PostgreSQL $new_major: the rebound query policy applies again");

# The grantee declares policies on the new version.
is( $new->safe_psql(
		'postgres',
		q{SELECT shield.set_query_policy('SELECT count(*) FROM items', max_rate => 100)
		  = shield.fingerprint('SELECT count(*) FROM items')},
		connstr => $new->connstr('postgres') . ' user=regress_migrator'),
	't',
	'the role granted EXECUTE declares a query policy');

$new->stop;
done_testing();
