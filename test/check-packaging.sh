#!/usr/bin/env bash
# Packaging checks, run by scripts/test.sh with the docs: META.json is a
# valid PGXN distribution file (PGXN Meta Spec 1.0.0), every version number
# agrees with pg_shield.control (the one place the version is stated), the
# install and upgrade scripts form a path from 1.0 to the current version,
# and the Makefile installs every script.
#
# Prints "ok - ..." or "not ok - ..." per check; exits non-zero if any
# check failed.
set -uo pipefail
cd "$(dirname "$0")/.."

exec perl -I test -MCheckLib -MJSON::PP -e '
use strict;
use warnings;

# The control file: the version, stated once.
my $control = slurp("pg_shield.control") // "";
my ($version) = $control =~ /^default_version\s*=\s*\x27([^\x27]+)\x27/m;
check(defined $version, "pg_shield.control states default_version")
  or exit 1;
my $semver = $version =~ /^\d+\.\d+$/ ? "$version.0" : $version;

# META.json against the PGXN Meta Spec 1.0.0 (https://pgxn.org/spec/):
# required keys and their types, SemVer versions, a known license.
my $meta = eval { JSON::PP->new->relaxed(0)->decode(slurp("META.json") // "") };
check(ref $meta eq "HASH", "META.json is a JSON object") or exit 1;

my $semver_re = qr/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)([a-zA-Z][a-zA-Z0-9-]*)?$/;
my @licenses = qw(agpl_3 apache_1_1 apache_2_0 artistic_1 artistic_2 bsd
  freebsd gfdl_1_2 gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1 lgpl_3_0 mit mozilla_1_0
  mozilla_1_1 openssl perl_5 postgresql qpl_1_0 ssleay sun zlib open_source
  restricted unrestricted unknown);

for my $key (qw(name abstract version maintainer license provides meta-spec))
{
	check(exists $meta->{$key}, "META.json has the required key \"$key\"");
}
check(scalar(($meta->{name} // "") =~ /^[^\/\\\s:]{2,}$/), "META.json name is a valid distribution name");
check(($meta->{name} // "") eq "pg_shield", "META.json name is pg_shield");
check(!ref($meta->{abstract}) && length($meta->{abstract} // "") > 0, "META.json abstract is a string");
check(scalar(($meta->{version} // "") =~ $semver_re), "META.json version is SemVer");
check(($meta->{version} // "") eq $semver,
	"META.json version $meta->{version} is the control file\x27s $version");
my $maint = $meta->{maintainer};
check((!ref($maint) && length($maint // "")) ||
	  (ref $maint eq "ARRAY" && @$maint && !grep { ref $_ || !length } @$maint),
	"META.json maintainer is a string or a list of strings");
my $lic = $meta->{license};
my @lic = ref $lic eq "HASH" ? () : ref $lic eq "ARRAY" ? @$lic : ($lic // ());
check((ref $lic eq "HASH" && %$lic) ||
	  (@lic && !grep { my $l = $_; !grep { $_ eq $l } @licenses } @lic),
	"META.json license is one the spec knows");
check(ref $meta->{"meta-spec"} eq "HASH" &&
	  ($meta->{"meta-spec"}{version} // "") eq "1.0.0",
	"META.json meta-spec version is 1.0.0");
check(!exists $meta->{release_status} ||
	  $meta->{release_status} =~ /^(stable|testing|unstable)$/,
	"META.json release_status is stable, testing or unstable");
check(!exists $meta->{tags} ||
	  (ref $meta->{tags} eq "ARRAY" && !grep { ref $_ || !length || length > 255 } @{$meta->{tags}}),
	"META.json tags are strings of 1 to 255 characters");

my $prereqs_ok = 1;
if (exists $meta->{prereqs})
{
	$prereqs_ok = ref $meta->{prereqs} eq "HASH";
	for my $phase (keys %{$meta->{prereqs} || {}})
	{
		$prereqs_ok = 0 unless $phase =~ /^(configure|build|test|runtime|develop)$/;
		for my $rel (keys %{$meta->{prereqs}{$phase} || {}})
		{
			$prereqs_ok = 0 unless $rel =~ /^(requires|recommends|suggests|conflicts)$/;
			for my $v (values %{$meta->{prereqs}{$phase}{$rel}})
			{
				$prereqs_ok = 0 unless $v eq "0" || $v =~ $semver_re ||
				  $v =~ /^\s*(?:[<>]=?|==|!=)?\s*\d+\.\d+\.\d+/;
			}
		}
	}
}
check($prereqs_ok, "META.json prereqs are phases, relationships and versions");

my $provides = ref $meta->{provides} eq "HASH" ? $meta->{provides} : {};
check(exists $provides->{pg_shield}, "META.json provides the extension pg_shield");
for my $ext (sort keys %$provides)
{
	my $p = $provides->{$ext};
	check(ref $p eq "HASH" && defined $p->{file} && -f $p->{file},
		"META.json provides $ext from an existing file");
	check(($p->{version} // "") eq $semver,
		"META.json provides $ext at version $semver");
	check(!defined $p->{docfile} || -f $p->{docfile},
		"META.json docfile of $ext exists");
}

# Install and upgrade scripts: the current version installs, and every
# version that ever had an install script upgrades to it step by step.
my @scripts = map { s/^\.\///r } glob("pg_shield--*.sql");
my (%install, %upgrade);
for my $s (@scripts)
{
	if ($s =~ /^pg_shield--([^-]+)\.sql$/) { $install{$1} = 1; }
	elsif ($s =~ /^pg_shield--([^-]+)--([^-]+)\.sql$/) { push @{$upgrade{$1}}, $2; }
	else { check(0, "$s is named pg_shield--V.sql or pg_shield--A--B.sql"); }
}
check($install{$version}, "pg_shield--$version.sql installs the current version");
for my $from (sort keys %install)
{
	my %seen = ($from => 1);
	my @todo = ($from);
	while (my $v = shift @todo)
	{
		for my $next (@{$upgrade{$v} || []})
		{
			push @todo, $next unless $seen{$next}++;
		}
	}
	check($seen{$version}, "version $from upgrades to $version");
}

# The Makefile installs every script (DATA is a wildcard).
my $makefile = slurp("Makefile") // "";
my ($data) = $makefile =~ /^DATA\s*=\s*(.*)$/m;
check(defined $data && scalar($data =~ /wildcard\s+\S*pg_shield--\*\.sql/),
	"the Makefile installs every pg_shield--*.sql (DATA is a wildcard)");

exit checks_failed();
'
