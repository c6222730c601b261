# Copyright (c) 2026, The pg_shield Developers

# Policies survive pg_dump and a restore into another cluster (they live
# in an extension configuration table, which pg_dump includes).
#
# Policies are declared through the shield.set_* functions in one cluster,
# the database is dumped (custom format) and restored into a new database
# of a second, freshly initialized cluster where the same roles exist with
# other OIDs (they are created in another order, after an extra role).  The
# restored shield.policies must list the same policies bound to the roles by
# name, shield.effective_policy() must merge the same limits for the same
# statements and roles, and the set_* functions must keep working (the
# identity sequence continues after the restored ids).
#
# A restore into a cluster that lacks one of the roles restores every
# policy: the missing role's by name, shown as such and inactive until a
# role of that name is created.
#
# Fingerprints are the core query identifier, which depends on the OIDs of
# the relations a statement names: a statement on a table gets another
# fingerprint in the restored cluster.  Query policies declared with sample
# text are rebound by the DDL at the end of the restore (the event trigger
# shield_rebind_query_policies), with nothing to run by hand; a statement that names
# no user relation keeps its fingerprint, so a policy declared by fingerprint
# for it applies at once.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $conf = q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
};

my $old = PostgreSQL::Test::Cluster->new('dump_source');
$old->init;
$old->append_conf('postgresql.conf', $conf);
$old->start;

$old->safe_psql('postgres', 'CREATE DATABASE shop');
$old->safe_psql(
	'shop', q{
CREATE EXTENSION pg_shield;
CREATE ROLE regress_app LOGIN;
CREATE ROLE regress_report LOGIN;
CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, total numeric);
});

# The statements the policies are about.
my $by_id       = 'SELECT total FROM orders WHERE id = $1';
my $by_customer = 'SELECT sum(total) FROM orders WHERE customer = $1';
my $counting    = 'SELECT count(*) FROM orders';
my $sleeping    = 'SELECT pg_catalog.pg_sleep($1)';

# A migration declaring them, as applications do.
$old->safe_psql(
	'shop', qq{
SELECT shield.set_role_policy('regress_app', max_concurrent => 8,
    queue_timeout => '250ms', max_cost => 5000, deadline => '3s',
    max_rate => 100, priority => 'critical');
SELECT shield.set_query_policy('$by_id', max_concurrent => 4,
    max_cost => 200, deadline => '1s', priority => 'low');
SELECT shield.set_query_policy('$by_customer', role => 'regress_report',
    max_concurrent => 2, max_rate => 2.5, breaker_failures => 3,
    breaker_cooldown => '45s', mode => 'monitor');
SELECT shield.set_query_policy(shield.fingerprint('$sleeping'),
    max_concurrent => 1, queue_timeout => '0', priority => 'low');
SELECT shield.set_query_policy(shield.fingerprint('$counting'),
    role => 'regress_report', max_cost => 1e6, deadline => '10 min');
});

my $policies_sql = q{
SELECT id, scope, rolname, queryid, query, max_concurrent, queue_timeout,
       max_cost, deadline, max_rate, priority, breaker_failures,
       breaker_cooldown, mode
FROM shield.policies ORDER BY id};

# The policies without their fingerprints, which the restore rebinds (see
# below).
(my $limits_sql = $policies_sql) =~ s/queryid, //;
my $old_limits = $old->safe_psql('shop', $limits_sql);
is( $old->safe_psql(
		'shop', q{
SELECT id, scope, rolname, query IS NOT NULL, max_concurrent, queue_timeout,
       max_cost, deadline, max_rate, priority, breaker_failures,
       breaker_cooldown, mode
FROM shield.policies ORDER BY id}),
	join("\n",
		'1|role|regress_app|f|8|00:00:00.25|5000|00:00:03|100|critical|||enforce',
		'2|query||t|4||200|00:00:01||low|||enforce',
		'3|query+role|regress_report|t|2||||2.5|normal|3|00:00:45|monitor',
		'4|query||f|1|00:00:00||||low|||enforce',
		'5|query+role|regress_report|f|||1000000|00:10:00||normal|||enforce'),
	'the five declared policies are stored');

# Merged limits for a statement and a role, without the fingerprint (which
# may differ between clusters); policy ids are restored with the rows.
sub effective
{
	my ($node, $dbname, $sql, $role) = @_;
	return $node->safe_psql(
		$dbname, qq{
SELECT limit_name, value, policy_id, scope, mode
FROM shield.effective_policy('$sql', '$role')});
}

my @cases = (
	[ $by_id,       'regress_app' ],
	[ $by_customer, 'regress_report' ],
	[ $sleeping,    'regress_app' ],
	[ $counting,    'regress_report' ]);
my %old_effective =
  map { ("$_->[0] as $_->[1]" => effective($old, 'shop', @$_)) } @cases;

is( $old_effective{"$by_id as regress_app"},
	join("\n",
		'max_concurrent|4|2|query|enforce',
		'max_concurrent|8|1|role|enforce',
		'queue_timeout|250 ms|1|role|enforce',
		'max_rate|100 per second|1|role|enforce',
		'max_cost|200|2|query|enforce',
		'deadline|1000 ms|2|query|enforce',
		'priority|low|2|query|enforce'),
	'source: role and query policies merge for regress_app');
is( $old_effective{"$by_customer as regress_report"},
	join("\n",
		'max_concurrent|2|3|query+role|monitor',
		'max_rate|2.5 per second|3|query+role|monitor',
		'breaker_failures|3|3|query+role|monitor',
		'breaker_cooldown|45000 ms|3|query+role|monitor',
		'priority|normal|3|query+role|monitor'),
	'source: the query+role policy applies in monitor mode');
is( $old_effective{"$sleeping as regress_app"},
	join("\n",
		'max_concurrent|1|4|query|enforce',
		'queue_timeout|0 ms|4|query|enforce',
		'max_concurrent|8|1|role|enforce',
		'queue_timeout|250 ms|1|role|enforce',
		'max_rate|100 per second|1|role|enforce',
		'max_cost|5000|1|role|enforce',
		'deadline|3000 ms|1|role|enforce',
		'priority|low|4|query|enforce'),
	'source: the policy declared by fingerprint applies');
is( $old_effective{"$counting as regress_report"},
	join("\n",
		'max_cost|1e+06|5|query+role|enforce',
		'deadline|600000 ms|5|query+role|enforce',
		'priority|normal|5|query+role|enforce'),
	'source: the query+role policy declared by fingerprint applies');

my $old_search_paths = $old->safe_psql('shop',
	'SELECT id, search_path FROM shield.policy ORDER BY id');

# Dump.
my $dump = $old->basedir . '/shop.dump';
$old->command_ok(
	[ 'pg_dump', '--format=custom', '--file', $dump, '--dbname', 'shop' ],
	'pg_dump of the database');

# A fresh cluster where the roles exist with other OIDs.
my $new = PostgreSQL::Test::Cluster->new('dump_target');
$new->init;
$new->append_conf('postgresql.conf', $conf);
$new->start;
$new->safe_psql(
	'postgres', q{
CREATE ROLE regress_unused;
CREATE ROLE regress_report LOGIN;
CREATE ROLE regress_app LOGIN;
CREATE DATABASE shop_restored;
});

my $roles_sql = q{
SELECT rolname, oid FROM pg_roles
WHERE rolname IN ('regress_app', 'regress_report') ORDER BY rolname};
my %old_oid = split /[|\n]/, $old->safe_psql('postgres', $roles_sql);
my %new_oid = split /[|\n]/, $new->safe_psql('postgres', $roles_sql);
ok( $old_oid{regress_app} != $new_oid{regress_app}
	  && $old_oid{regress_report} != $new_oid{regress_report}
	  && ($old_oid{regress_app} < $old_oid{regress_report})
	  != ($new_oid{regress_app} < $new_oid{regress_report}),
	'the roles have other OIDs, in the other order, in the new cluster');

# Restore: no error, no warning.
$new->command_checks_all(
	[
		'pg_restore', '--exit-on-error', '--dbname', 'shop_restored', $dump
	],
	0,
	[qr/^$/],
	[qr/^$/],
	'pg_restore into a new database of the new cluster');

is($new->safe_psql('shop_restored', $limits_sql),
	$old_limits,
	'shield.policies has the same rows after the restore');
is( $new->safe_psql(
		'shop_restored',
		'SELECT id, search_path FROM shield.policy ORDER BY id'),
	$old_search_paths,
	'the search_path of each sample text is restored');
is( $new->safe_psql(
		'shop_restored', q{
SELECT count(*) FILTER (WHERE p.rolname IS NOT NULL
                          AND p.userid = r.oid AND r.rolname = p.rolname),
       count(*) FILTER (WHERE p.userid IS NULL)
FROM shield.policies p LEFT JOIN pg_roles r ON r.oid = p.userid}),
	'3|2',
	'the restored policies are bound to the roles by name');
is( $new->safe_psql(
		'shop_restored', q{
SELECT count(*) FROM shield.policies
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND datname = current_database()}),
	'5',
	'the restored policies belong to the new database');

# Up to PostgreSQL 17 the fingerprints of statements on the table change
# with its OID; from 18 on a table is jumbled by its name, and they do not.
my $by_name = $new->pg_version >= 18;
isnt(
	$new->safe_psql('shop_restored', "SELECT 'orders'::regclass::oid"),
	$old->safe_psql('shop',          "SELECT 'orders'::regclass::oid"),
	'the table has another OID in the new cluster');
my $same_fp = $new->safe_psql('shop_restored', "SELECT shield.fingerprint('$by_id')")
  eq $old->safe_psql('shop', "SELECT shield.fingerprint('$by_id')");
ok($by_name ? $same_fp : !$same_fp,
	$by_name
	? 'a statement on it keeps its fingerprint (PostgreSQL 18 jumbles tables by name)'
	: 'so a statement on it has another fingerprint');
is( $new->safe_psql('shop_restored', "SELECT shield.fingerprint('$sleeping')"),
	$old->safe_psql('shop',          "SELECT shield.fingerprint('$sleeping')"),
	'a statement naming no user relation keeps its fingerprint');

is( effective($new, 'shop_restored', $sleeping, 'regress_app'),
	$old_effective{"$sleeping as regress_app"},
	'restored: the same limits for a statement naming no user relation');

# Fingerprints depend on the OIDs of the objects a statement names, which a
# restore changes up to PostgreSQL 17; the DDL at the end of the restore
# (the table's primary key) rebinds the policies declared with sample text,
# so they apply at once, with nothing to do by hand.
for my $case ([ $by_id, 'regress_app' ], [ $by_customer, 'regress_report' ])
{
	my $name = "$case->[0] as $case->[1]";
	is(effective($new, 'shop_restored', @$case), $old_effective{$name},
		"restored: $name applies at once");
}
is($new->safe_psql('shop_restored', 'SELECT shield.rebind_query_policies()'),
	'0',
	'rebind_query_policies() finds nothing left to rebind');
is( $new->safe_psql(
		'shop_restored', q{
SELECT id, queryid = shield.fingerprint(query) FROM shield.policy
WHERE query IS NOT NULL ORDER BY id}),
	"2|t\n3|t",
	'their fingerprints are those of the new cluster');
is( $new->safe_psql(
		'shop_restored',
		'SELECT string_agg(id::text, \',\' ORDER BY id) FROM shield.policy'),
	'1,2,3,4,5',
	'rebinding neither adds nor removes policies');

for my $case ([ $by_id, 'regress_app' ], [ $by_customer, 'regress_report' ],
	[ $sleeping, 'regress_app' ])
{
	my $name = "$case->[0] as $case->[1]";
	is(effective($new, 'shop_restored', @$case),
		$old_effective{$name}, "restored and rebound: the same limits for $name");
}

# A policy declared by fingerprint alone has no sample text to rebind from
# (documented: declare policies by text so that they survive a restore).
my $same_counting = effective($new, 'shop_restored', $counting, 'regress_report')
  eq $old_effective{"$counting as regress_report"};
ok($by_name ? $same_counting : !$same_counting,
	$by_name
	? "restored: $counting as regress_report, declared by fingerprint, still applies (PostgreSQL 18)"
	: "restored and rebound: $counting as regress_report, declared by fingerprint, cannot be rebound");

# The same limits through the other session: a new backend loads them too.
is( $new->safe_psql(
		'shop_restored', qq{
SELECT value FROM shield.effective_policy('$by_id', 'regress_app')
WHERE limit_name = 'max_cost'}),
	'200',
	'a new session resolves the restored, rebound policy');

# Declaring goes on: the identity sequence continues after the restored ids.
$new->safe_psql(
	'shop_restored', q{
SELECT shield.set_role_policy('regress_report', max_concurrent => 3,
    priority => 'low');
});
is( $new->safe_psql(
		'shop_restored', q{
SELECT id, scope, rolname, max_concurrent, priority FROM shield.policies
WHERE rolname = 'regress_report' AND scope = 'role'}),
	'6|role|regress_report|3|low',
	'a new role policy gets the next id (6) after the restored ones');
is( $new->safe_psql(
		'shop_restored',
		"SELECT shield.set_query_policy('SELECT id FROM orders WHERE customer = \$1', "
		  . "max_rate => 10) = shield.fingerprint('SELECT id FROM orders WHERE customer = \$1')"
	),
	't',
	'a new query policy by text can be declared');
is( $new->safe_psql(
		'shop_restored',
		"SELECT id, scope FROM shield.policies WHERE id > 5 ORDER BY id"),
	"6|role\n7|query",
	'and gets the id after that (7)');

# Re-running the source migration is a no-op on the restored, rebound rows.
my $versions_sql =
  q{SELECT string_agg(xmin::text || ctid::text, ',' ORDER BY id) FROM shield.policy};
my $versions = $new->safe_psql('shop_restored', $versions_sql);
$new->safe_psql(
	'shop_restored', qq{
SELECT shield.set_role_policy('regress_app', max_concurrent => 8,
    queue_timeout => '250ms', max_cost => 5000, deadline => '3s',
    max_rate => 100, priority => 'critical');
SELECT shield.set_query_policy('$by_id', max_concurrent => 4,
    max_cost => 200, deadline => '1s', priority => 'low');
SELECT shield.set_query_policy('$by_customer', role => 'regress_report',
    max_concurrent => 2, max_rate => 2.5, breaker_failures => 3,
    breaker_cooldown => '45s', mode => 'monitor');
});
is($new->safe_psql('shop_restored', $versions_sql),
	$versions, 're-running the migration after the restore changes no row');

# Re-declaring and dropping restored policies.
$new->safe_psql(
	'shop_restored', q{
SELECT shield.set_role_policy('regress_app', max_concurrent => 16);
});
is( $new->safe_psql(
		'shop_restored', q{
SELECT id, max_concurrent, queue_timeout, priority FROM shield.policies
WHERE rolname = 'regress_app' AND scope = 'role'}),
	'1|16||normal',
	'a restored policy can be re-declared (keeping its id)');
is( $new->safe_psql(
		'shop_restored', qq{
SELECT shield.drop_query_policy(shield.fingerprint('$by_customer'),
                                'regress_report'),
       shield.drop_role_policy('regress_report')}),
	't|t',
	'restored and new policies can be dropped');
is( $new->safe_psql(
		'shop_restored',
		'SELECT string_agg(id::text, \',\' ORDER BY id) FROM shield.policy'),
	'1,2,4,5,7',
	'the remaining policies');

# A dump of the restored database restores again into the source cluster.
my $dump2 = $new->basedir . '/shop_restored.dump';
$new->command_ok(
	[
		'pg_dump', '--format=custom', '--file', $dump2,
		'--dbname', 'shop_restored'
	],
	'pg_dump of the restored database');
$old->safe_psql('postgres', 'CREATE DATABASE shop_back');
$old->command_checks_all(
	[ 'pg_restore', '--exit-on-error', '--dbname', 'shop_back', $dump2 ],
	0, [qr/^$/], [qr/^$/], 'pg_restore back into the source cluster');
is( $old->safe_psql('shop_back', $limits_sql),
	$new->safe_psql('shop_restored', $limits_sql),
	'the round trip keeps the policies');
# (Each set_* call draws an id, even when it updates or changes nothing, so
# ids have gaps; the dump carries the sequence's position.)
$old->safe_psql('shop_back',
	"SELECT shield.set_role_policy('regress_report', max_rate => 1)");
is( $old->safe_psql(
		'shop_back', q{
SELECT id > 7 AND id = (SELECT max(id) FROM shield.policy)
FROM shield.policies WHERE rolname = 'regress_report' AND scope = 'role'}),
	't',
	'and the identity sequence continues there too');

# A restore into a cluster that lacks one of the roles keeps every policy:
# those of the missing role by name, inactive and shown as such, until a
# role of that name exists.
my $lacking = PostgreSQL::Test::Cluster->new('dump_lacking');
$lacking->init;
$lacking->append_conf('postgresql.conf', $conf);
$lacking->start;
$lacking->safe_psql(
	'postgres', q{
CREATE ROLE regress_app LOGIN;
CREATE DATABASE shop_lacking;
});
$lacking->command_checks_all(
	[ 'pg_restore', '--exit-on-error', '--dbname', 'shop_lacking', $dump ],
	0, [qr/^$/], [qr/^$/],
	'pg_restore into a cluster that lacks regress_report: no error');
is( $lacking->safe_psql(
		'shop_lacking', q{
SELECT id, scope, rolname, userid IS NULL, role_missing
FROM shield.policies ORDER BY id}),
	join("\n",
		'1|role|regress_app|f|f',
		'2|query||t|f',
		'3|query+role|regress_report|t|t',
		'4|query||t|f',
		'5|query+role|regress_report|t|t'),
	'every policy is restored; those of the missing role are shown as such');
$lacking->safe_psql('postgres', 'CREATE ROLE regress_report LOGIN');
$lacking->safe_psql('shop_lacking', 'SELECT shield.rebind_query_policies()');
is( $lacking->safe_psql(
		'shop_lacking', qq{
SELECT value, policy_id FROM shield.effective_policy('$by_customer', 'regress_report')
WHERE limit_name = 'max_rate'}),
	'2.5 per second|3',
	'once the role exists, its policies apply');
is($lacking->safe_psql('shop_lacking',
		'SELECT count(*) FROM shield.policies WHERE role_missing'),
	'0', 'and none is shown as missing any more');
$lacking->stop;

$old->stop;
$new->stop;

done_testing();
