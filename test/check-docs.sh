#!/usr/bin/env bash
# Reference checks, run by scripts/test.sh with the docs: the SGML page
# (contrib-docs/pg_shield.sgml) is the one reference, so everything a user
# can name must be described there:
#
#  - every setting src/guc.c defines, in Configuration Parameters;
#  - every SQLSTATE src/errors.h defines, in Error Codes;
#  - every function of the install script, and each of its parameters;
#  - every view of the install script, and each of its columns, in the
#    section of that view;
#  - the README's retry loop, which must be the text of the example that
#    the TAP tests run (examples/python/retry_psycopg3.py).
#
# The names are read from the code and the install script, not listed here,
# so that a new one without documentation fails the check.  Prints "ok - ..."
# or "not ok - ..." per check; exits non-zero if any check failed.
set -uo pipefail
cd "$(dirname "$0")/.."

exec perl -I test -MCheckLib -e '
use strict;
use warnings;

my $sgml = slurp("contrib-docs/pg_shield.sgml") // die "could not read contrib-docs/pg_shield.sgml\n";
my $guc = slurp("src/guc.c") // die "could not read src/guc.c\n";
my $errors = slurp("src/errors.h") // die "could not read src/errors.h\n";
my $control = slurp("pg_shield.control") // die "could not read pg_shield.control\n";
my ($version) = $control =~ /^default_version\s*=\s*\x27([^\x27]+)\x27/m;
my $script = slurp("pg_shield--$version.sql") // die "could not read the install script\n";
$script =~ s/--[^\n]*//g;

# The sect2 blocks of the page, by id and by title.
my %section;
while ($sgml =~ /<sect2 id="([^"]+)">\s*<title>(.*?)<\/title>(.*?)<\/sect2>/gs)
{
	$section{$1} = { title => $2, body => $3 };
}
sub section_titled
{
	my ($re) = @_;
	my @ids = grep { $section{$_}{title} =~ $re } sort keys %section;
	return @ids == 1 ? $section{ $ids[0] }{body} : undef;
}

# Settings
my $params = $section{"pgshield-config-params"}{body} // "";
my @gucs = $guc =~ /DefineCustom\w+Variable\(\s*"(pg_shield\.\w+)"/g;
check(@gucs > 0, "src/guc.c defines settings");
for my $name (@gucs)
{
	check(index($params, "<varname>$name</varname>") >= 0,
		  "setting $name is described in Configuration Parameters");
}

# SQLSTATEs: the five-character codes pg_shield defines, and the codes of
# core conditions it uses, written in the comment beside each.
my $codes = $section{"pgshield-errors"}{body} // "";
my @states;
while ($errors =~ /^#define\s+PGSH_ERRCODE_\w+\s+(.*)$/mg)
{
	my $def = $1;
	if ($def =~ /MAKE_SQLSTATE\(\x27(.)\x27,\x27(.)\x27,\x27(.)\x27,\x27(.)\x27,\x27(.)\x27\)/)
	{
		push @states, "$1$2$3$4$5";
	}
	elsif ($def =~ /\/\*\s*([0-9A-Z]{5})\s*\*\//)
	{
		push @states, $1;
	}
	else
	{
		check(0, "src/errors.h states the SQLSTATE of: $def");
	}
}
check(@states > 0, "src/errors.h defines SQLSTATEs");
for my $state (@states)
{
	check(index($codes, "<literal>$state</literal>") >= 0,
		  "SQLSTATE $state is described in Error Codes");
}

# Functions and their parameters.  A function behind a view is described
# with the view; the trigger function is named where policies are stored.
my $funcs = $section{"pgshield-funcs"}{body} // "";
my %view_names = map { $_ => 1 } $script =~ /CREATE VIEW \@extschema\@\.(\w+)/g;
while ($script =~ /CREATE FUNCTION \@extschema\@\.(\w+)\((.*?)\)\s*RETURNS/gs)
{
	my ($name, $args) = ($1, $2);
	check(index($sgml, "<function>shield.$name") >= 0,
		  "function shield.$name is described");
	next if $view_names{$name};
	for my $arg (split /,/, $args)
	{
		next unless $arg =~ /^\s*(?:IN\s+)?(\w+)\s+pg_catalog\./;
		my $param = $1;
		next if $param eq "OUT";
		check(index($funcs, "<parameter>$param</parameter>") >= 0,
			  "parameter $param of shield.$name is described in Functions");
	}
	while ($args =~ /\bOUT\s+(\w+)\s/g)
	{
		my $column = $1;
		check(index($funcs, "<parameter>$column</parameter>") >= 0,
			  "result column $column of shield.$name is described in Functions");
	}
}

# Views and their columns: those of the function a view selects from, or
# the output names of its select list.
while ($script =~ /CREATE VIEW \@extschema\@\.(\w+) AS\s+SELECT (.*?)\s+FROM (\S+)/gs)
{
	my ($name, $list, $from) = ($1, $2, $3);
	my @columns;
	if ($list eq "*")
	{
		$from =~ s/\(\);?$//;
		my ($args) = $script =~ /CREATE FUNCTION \Q$from\E\((.*?)\)\s*RETURNS/s;
		@columns = ($args // "") =~ /\bOUT\s+(\w+)\s/g;
	}
	else
	{
		# split the select list at the commas outside parentheses and CASE
		my ($depth, $item, @items) = (0, "");
		for my $token ($list =~ /(\bCASE\b|\bEND\b|[(),]|[^(),]+?(?=\bCASE\b|\bEND\b|[(),]|$))/gs)
		{
			$depth++ if $token eq "(" || $token eq "CASE";
			$depth-- if $token eq ")" || $token eq "END";
			if ($token eq "," && $depth == 0)
			{
				push @items, $item;
				$item = "";
			}
			else
			{
				$item .= $token;
			}
		}
		push @items, $item;
		for (@items)
		{
			push @columns, /\bAS\s+(\w+)\s*$/ ? $1 : /(\w+)\s*$/ ? $1 : ();
		}
	}
	check(@columns > 0, "view shield.$name has columns");
	my $body = section_titled(qr/<structname>shield\.$name<\/structname> View/);
	check(defined $body, "view shield.$name has its section") or next;
	for my $column (@columns)
	{
		check(index($body, "<structfield>$column</structfield>") >= 0,
			  "column $column of shield.$name is described in its section");
	}
}

# Every function signature the README and the reference show in a GRANT
# (which a DBA pastes) has the arity of a function of the install script.
my %arities;
while ($script =~ /CREATE FUNCTION \@extschema\@\.(\w+)\((.*?)\)\s*RETURNS/gs)
{
	my ($name, $args) = ($1, $2);
	my $n = grep { !/^\s*OUT\s/ && /\S/ } split /,/, $args;
	$arities{"$name/$n"} = 1;
}
for my $doc ([ "README.md", slurp("README.md") // "" ], [ "the reference", $sgml ])
{
	while ($doc->[1] =~ /GRANT EXECUTE ON FUNCTION(.*?);/gs)
	{
		my $list = $1;
		while ($list =~ /shield\.(\w+)\(([^)]*)\)/g)
		{
			my ($name, $args) = ($1, $2);
			my $n = grep { /\S/ } split /,/, $args;
			check($arities{"$name/$n"},
				  "the GRANT in $doc->[0] names shield.$name with the install script\x27s $n arguments");
		}
	}
}

# The retry loop the README shows is the text of the example the TAP tests
# run, not a copy that could drift from it.
my $readme = slurp("README.md") // die "could not read README.md\n";
my $example = slurp("examples/python/retry_psycopg3.py")
  // die "could not read examples/python/retry_psycopg3.py\n";
my ($shown) = $readme =~ /```python\n(.*?)```/s;
check(defined $shown && index($example, $shown) >= 0,
	  "the retry loop of the README is the text of examples/python/retry_psycopg3.py");

exit checks_failed();
'
