#!/usr/bin/env bash
# Reference checks, run by scripts/test.sh with the docs: the SGML page
# (contrib-docs/pg_shield.sgml) is the one reference, so everything a user
# can name must be described there, and everything it describes must exist.
#
# From the code to the reference:
#  - every setting src/guc.c defines has its entry in Configuration
#    Parameters, of its type;
#  - every SQLSTATE src/errors.h defines is in Error Codes, the code written
#    beside a core condition is that condition's, and every error code the
#    C code raises with a core condition is named in Error Codes;
#  - every function of the install script, and each of its parameters;
#  - every view of the install script, and each of its columns, in the
#    section of that view.
#
# From the reference to the code:
#  - every setting with an entry in Configuration Parameters, and every
#    pg_shield.* name anywhere in the page, is a setting of src/guc.c;
#  - every SQLSTATE of the Error Codes table is one the code raises: one of
#    src/errors.h, a core condition raised by src/ (its code read from the
#    server's utils/errcodes.h), or 42501 for the functions the install
#    script revokes from PUBLIC; every other SQLSTATE the page names is
#    pg_shield's or PostgreSQL's;
#  - every signature in a GRANT has the arity of a function of the install
#    script;
#  - the README's retry loop is the text of the example that the TAP tests
#    run (examples/python/retry_psycopg3.py).
#
# The names are read from the code, the install script and the page, not
# listed here, so that a new one without documentation, or documentation of
# one that does not exist, fails the check.  The core SQLSTATEs come from
# the utils/errcodes.h of $PG_CONFIG (or pg_config), which building needs
# anyway.  Prints "ok - ..." or "not ok - ..." per check; exits non-zero if
# any check failed.
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
my $src = join("", map { slurp($_) // "" } glob("src/*.c src/*.h"));

# The page without its comments, for the scans of every mention; and
# without file names too (pg_shield.control is a file, not a setting).
(my $text = $sgml) =~ s/<!--.*?-->//gs;
(my $names_text = $text) =~ s/<filename>.*?<\/filename>//gs;

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

# Settings: an entry per setting in Configuration Parameters, with the type
# of its definition; and no pg_shield.* name the code does not define.
my $params = $section{"pgshield-config-params"}{body} // "";
my %kind = (Bool => "boolean", Int => "integer", Real => "floating point",
			String => "string", Enum => "enum");
my (@gucs, %guc_type);
while ($guc =~ /DefineCustom(\w+)Variable\(\s*"(pg_shield\.\w+)"/g)
{
	push @gucs, $2;
	$guc_type{$2} = $kind{$1} // $1;
}
check(@gucs > 0, "src/guc.c defines settings");
my (%entry, @entries);
while ($params =~ /<term>\s*<varname>([^<]+)<\/varname>\s*\(<type>([^<]+)<\/type>\)/g)
{
	push @entries, $1;
	$entry{$1} = $2;
}
for my $name (@gucs)
{
	check(defined $entry{$name},
		  "setting $name is described in Configuration Parameters")
	  and check($entry{$name} eq $guc_type{$name},
				"setting $name is described as $guc_type{$name}, its type in src/guc.c");
}
for my $name (@entries)
{
	check(defined $guc_type{$name},
		  "setting $name described in Configuration Parameters is defined in src/guc.c");
}
my %setting_named = map { $_ => 1 } $names_text =~ /(?<![\w.\/])(pg_shield\.[a-z_]\w*)/g;
for my $name (sort keys %setting_named)
{
	check(defined $guc_type{$name},
		  "$name named in the reference is a setting of src/guc.c");
}

# SQLSTATEs.  The core codes come from the server headers: the
# ERRCODE_ constants of utils/errcodes.h.
my $pg_config = $ENV{PG_CONFIG} || "pg_config";
my $includedir = `$pg_config --includedir-server 2>/dev/null` // "";
chomp $includedir;
my $core_h = slurp("$includedir/utils/errcodes.h");
check(defined $core_h, "the server\x27s utils/errcodes.h is found ($pg_config --includedir-server)");
my %core;			# ERRCODE_ constant => SQLSTATE
while (($core_h // "") =~ /^#define\s+(ERRCODE_\w+)\s+MAKE_SQLSTATE\(\x27(.)\x27,\s*\x27(.)\x27,\s*\x27(.)\x27,\s*\x27(.)\x27,\s*\x27(.)\x27\)/mg)
{
	$core{$1} = "$2$3$4$5$6";
}
my %core_code = map { $_ => 1 } values %core;
my %core_class = map { substr($_, 0, 2) => 1 } values %core;

# The five-character codes pg_shield defines, and the codes of core
# conditions it uses, written in the comment beside each.
my $codes = $section{"pgshield-errors"}{body} // "";
my @states;
while ($errors =~ /^#define\s+(PGSH_ERRCODE_\w+)\s+(.*)$/mg)
{
	my ($macro, $def) = ($1, $2);
	if ($def =~ /MAKE_SQLSTATE\(\x27(.)\x27,\x27(.)\x27,\x27(.)\x27,\x27(.)\x27,\x27(.)\x27\)/)
	{
		push @states, "$1$2$3$4$5";
	}
	elsif ($def =~ /^(ERRCODE_\w+)\s*\/\*\s*([0-9A-Z]{5})\s*\*\//)
	{
		push @states, $2;
		check(($core{$1} // "") eq $2,
			  "the SQLSTATE written beside $macro, $2, is that of $1");
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
my %own = map { $_ => 1 } @states;

# What the code raises: the codes of src/errors.h, the core conditions of
# errcode() in src/, and 42501, which the server raises when a role calls
# a function the install script revokes from PUBLIC.
my %raised = map { $_ => "src/errors.h" } @states;
my %raised_condition;
while ($src =~ /\berrcode\(\s*(ERRCODE_\w+)\s*\)/g)
{
	my $condition = $1;
	next if $raised_condition{$condition}++;
	check(defined $core{$condition}, "src/ raises $condition, a condition of utils/errcodes.h")
	  or next;
	$raised{ $core{$condition} } //= $condition;
}
$raised{ $core{ERRCODE_INSUFFICIENT_PRIVILEGE} // "42501" } //= "REVOKE of the install script"
  if $script =~ /\bREVOKE\s+ALL\s+ON\s+FUNCTION\b/;

# Every error the code raises with a core condition is named in Error
# Codes (warnings, classes 01 and 02, are not errors a client handles).
for my $state (sort keys %raised)
{
	next if $own{$state} || $state =~ /^0[012]/;
	check(index($codes, "<literal>$state</literal>") >= 0,
		  "SQLSTATE $state ($raised{$state}) is named in Error Codes");
}

# Every row of the Error Codes table is a code the code raises.
my ($table) = $codes =~ /<table id="pgshield-errors-table">(.*?)<\/table>/s;
my @rows = ($table // "") =~ /<row>\s*<entry><literal>([0-9A-Z]{5})<\/literal><\/entry>/g;
check(@rows > 0, "the Error Codes table has rows");
for my $state (@rows)
{
	check(defined $raised{$state},
		  "SQLSTATE $state of the Error Codes table is one the code raises");
}

# Every other SQLSTATE the page names (a five-character literal of a class
# of utils/errcodes.h, or one written after "SQLSTATE") is one of
# pg_shield or of PostgreSQL.
my %sqlstate_named;
$sqlstate_named{$1} = 1 while $text =~ /<literal>([0-9A-Z]{5})<\/literal>/g;
$sqlstate_named{$1} = 1 while $text =~ /SQLSTATE\s+([0-9A-Z]{5})\b/g;
for my $state (sort keys %sqlstate_named)
{
	next unless $core_class{ substr($state, 0, 2) };
	check($own{$state} || $core_code{$state},
		  "SQLSTATE $state named in the reference is pg_shield\x27s or PostgreSQL\x27s");
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
