# Copyright (c) 2026, The pg_shield Developers

# ALTER EXTENSION pg_shield UPDATE along every path the scripts allow.
#
# For every version that has an install script (pg_shield--V.sql) older
# than the current one (pg_shield.control's default_version), the
# extension is created at that version, with a policy, and updated step by
# step, through every pg_shield--A--B.sql script, to the current version.
# The result must be the same SQL objects, with the same definitions, as a
# fresh CREATE EXTENSION, and the policy must survive.  PostgreSQL's own
# list of update paths must agree with the scripts.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $control = slurp_file('pg_shield.control');
$control =~ /^default_version\s*=\s*'([^']+)'/m
  or die "no default_version in pg_shield.control";
my $current = $1;

my (%install, %updates);
for my $script (glob('pg_shield--*.sql'))
{
	if ($script =~ /^pg_shield--([^-]+)\.sql$/)
	{
		$install{$1} = 1;
	}
	elsif ($script =~ /^pg_shield--([^-]+)--([^-]+)\.sql$/)
	{
		push @{ $updates{$1} }, $2;
	}
}
ok($install{$current}, "version $current has an install script");

my $node = PostgreSQL::Test::Cluster->new('update');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_shield'
compute_query_id = on
});
$node->start;

# Every object of the extension, with its full definition.
my $describe = q{
SELECT string_agg(d, E'\n' ORDER BY d COLLATE "C") FROM (
  SELECT pg_describe_object(classid, objid, 0) || ': ' ||
         CASE classid
           WHEN 'pg_proc'::regclass THEN pg_get_functiondef(objid)
             || coalesce(array_to_string(
                  (SELECT proacl FROM pg_proc WHERE oid = objid), ','), '')
           WHEN 'pg_class'::regclass THEN
             coalesce(pg_get_viewdef(objid), '') ||
             (SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod)
                                || coalesce(' default ' || pg_get_expr(adbin, adrelid), ''),
                                ', ' ORDER BY attnum)
              FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
              WHERE attrelid = objid AND attnum > 0 AND NOT attisdropped) ||
             coalesce((SELECT string_agg(pg_get_constraintdef(c.oid), ', ' ORDER BY conname)
                       FROM pg_constraint c WHERE conrelid = objid), '') ||
             coalesce(array_to_string((SELECT relacl FROM pg_class WHERE oid = objid), ','), '')
           ELSE ''
         END AS d
  FROM pg_depend
  WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
    AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shield')
    AND classid <> 'pg_type'::regclass) objects};

$node->safe_psql('postgres', 'CREATE EXTENSION pg_shield');
my $fresh = $node->safe_psql('postgres', $describe);
isnt($fresh, '', "a fresh install of $current has objects");

# PostgreSQL's update paths follow the scripts.
my %paths = map { split /\|/, $_, 2 } split /\n/,
  $node->safe_psql(
	'postgres', q{
SELECT source || '|' || path FROM pg_extension_update_paths('pg_shield')
WHERE target = (SELECT default_version FROM pg_available_extensions
                WHERE name = 'pg_shield') AND path IS NOT NULL});
$node->safe_psql('postgres', 'DROP EXTENSION pg_shield; DROP SCHEMA shield');

my @older = grep { $_ ne $current } sort keys %install;
if (!@older)
{
	note("only version $current exists: there is no update script to run");
}
is_deeply([ sort grep { $_ ne $current } keys %paths ],
	\@older, 'every older version has an update path to the current one');

for my $from (@older)
{
	(my $role = "regress_update_$from") =~ tr/./_/;
	$node->safe_psql(
		'postgres', qq{
CREATE ROLE $role;
CREATE EXTENSION pg_shield VERSION '$from';
SELECT shield.set_role_policy('$role', max_concurrent => 3);
});
	my @steps = split /--/, $paths{$from};
	shift @steps;
	for my $to (@steps)
	{
		$node->safe_psql('postgres',
			"ALTER EXTENSION pg_shield UPDATE TO '$to'");
	}
	is($node->safe_psql('postgres', $describe),
		$fresh, "updated from $from along $paths{$from}: as a fresh install");
	is( $node->safe_psql(
			'postgres', 'SELECT count(*) FROM shield.policies WHERE max_concurrent = 3'),
		'1',
		"updated from $from: the policy survives");
	$node->safe_psql('postgres',
		'DROP EXTENSION pg_shield; DROP SCHEMA shield');
}

$node->stop;
done_testing();
