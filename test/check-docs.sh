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
#  - every function of the install script, and each of its parameters and
#    result columns, is described, and each form (overload) has its
#    signature in Functions (but for a table's trigger function, which no
#    one calls);
#  - every view of the install script has its section, with a row for each
#    of its columns, of its type where the install script states it.
#
# From the reference to the code:
#  - every setting with an entry in Configuration Parameters, and every
#    pg_shield.* name anywhere in the page, is a setting of src/guc.c;
#  - every SQLSTATE of the Error Codes table is one the code raises: one of
#    src/errors.h, a core condition raised by src/ (its code read from the
#    server's utils/errcodes.h), or 42501 for the functions the install
#    script revokes from PUBLIC; every other SQLSTATE the page names is
#    pg_shield's or PostgreSQL's;
#  - every signature in Functions is one of the install script (names,
#    types, defaults, result columns and result type), every shield.* name
#    is an object of the install script (a view or table where the page
#    calls it a structure, a function where it calls it one), every named
#    argument and <parameter> is a parameter of a function, and a call has
#    the arguments of a form of its function;
#  - every "The shield.X View" section is a view, each row of its table of
#    columns a column of that view, and every <structfield> a column of the
#    view or table it follows, of some object of the install script, or of
#    the core catalog or view its paragraph names;
#  - every limit of the Policy Limits table is a parameter of a policy
#    function, of the same type;
#  - every signature in a GRANT has the arity of a function of the install
#    script;
#  - the retry loop the README and the reference show is the text of the
#    example that the TAP tests run (examples/python/retry_psycopg3.py).
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

# Split a list at the commas outside parentheses, CASE ... END and quotes.
sub split_list
{
	my ($list) = @_;
	my ($depth, $item, @items) = (0, "");
	for my $token ($list =~ /(\x27[^\x27]*\x27|\bCASE\b|\bEND\b|[(),]|[^(),\x27]+?(?=\x27|\bCASE\b|\bEND\b|[(),]|$))/gs)
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
	return @items;
}

# A type of the install script as the reference writes it.
my %type_name = (int2 => "smallint", int4 => "integer", int8 => "bigint",
				 float4 => "real", float8 => "double precision",
				 bool => "boolean", timestamptz => "timestamp with time zone");
sub sql_type
{
	my ($type) = @_;
	my $setof = $type =~ s/^SETOF\s+//i ? "setof " : "";
	$type =~ s/^pg_catalog\.//;
	my $array = $type =~ s/\[\]$// ? "[]" : "";
	return $setof . ($type_name{$type} // $type) . $array;
}

# A default value as the reference may write it: without casts, any case.
sub default_text
{
	my ($default) = @_;
	return "" unless defined $default;
	$default =~ s/::[\w.]+(?:\[\])?//g;
	$default =~ s/\s+/ /g;
	$default =~ s/^ | $//g;
	return lc($default);
}

# The install script: every object of the schema, the functions (each form
# with its parameters, result columns and result type), the views (with
# their columns, and their types where stated) and the tables.
my %objects = map { $_ => 1 } $script =~ /\@extschema\@\.(\w+)/g;
my (%functions, @function_order);
while ($script =~ /CREATE FUNCTION \@extschema\@\.(\w+)\((.*?)\)\s*RETURNS\s+((?:SETOF\s+)?[\w.]+)/gs)
{
	my ($name, $args, $returns) = ($1, $2, $3);
	my %form = (name => $name, in => [], out => [], returns => sql_type($returns));
	for my $arg (grep { /\S/ } split_list($args))
	{
		if ($arg =~ /^\s*(?:(IN|OUT)\s+)?(\w+)\s+(pg_catalog\.\w+(?:\[\])?)(?:\s+DEFAULT\s+(.*?))?\s*$/s)
		{
			push @{ $form{ ($1 // "IN") eq "OUT" ? "out" : "in" } },
			  { name => $2, type => sql_type($3), default => default_text($4) };
		}
		else
		{
			check(0, "the argument \"$arg\" of shield.$name in the install script is understood");
		}
	}
	push @function_order, $name unless $functions{$name};
	push @{ $functions{$name} }, \%form;
}
my %parameters;		# every parameter and result column of a function
for my $form (map { @$_ } values %functions)
{
	$parameters{ $_->{name} } = 1 for @{ $form->{in} }, @{ $form->{out} };
}

my (%views, @view_order);
while ($script =~ /CREATE VIEW \@extschema\@\.(\w+) AS\s+SELECT (.*?)\s+FROM (\S+)/gs)
{
	my ($name, $list, $from) = ($1, $2, $3);
	my @columns;	# [name, type or undef]
	if ($list eq "*")
	{
		$from =~ s/^\@extschema\@\.//;
		$from =~ s/\(\);?$//;
		my ($form) = @{ $functions{$from} // [] };
		@columns = map { [ $_->{name}, $_->{type} ] } @{ $form ? $form->{out} : [] };
	}
	else
	{
		for (split_list($list))
		{
			push @columns, [ $1, undef ] if /\bAS\s+(\w+)\s*$/ || /(\w+)\s*$/;
		}
	}
	push @view_order, $name;
	$views{$name} = \@columns;
}

my %tables;
while ($script =~ /CREATE TABLE \@extschema\@\.(\w+) \((.*?)\n\);/gs)
{
	my ($name, $body) = ($1, $2);
	$tables{$name} = [ map { /^\s*(\w+)\s+pg_catalog\./ ? [ $1, undef ] : () } split_list($body) ];
}

# The columns of each structure, and of them all.
my %columns_of;
for my $name (keys %views, keys %tables)
{
	$columns_of{$name}{ $_->[0] } = 1 for @{ $views{$name} // $tables{$name} };
}
for my $name (keys %functions)
{
	$columns_of{$name}{ $_->{name} } = 1 for map { @{ $_->{out} } } @{ $functions{$name} };
}
my %any_column = map { %$_ } values %columns_of;

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
for my $name (@function_order)
{
	check(index($sgml, "<function>shield.$name") >= 0,
		  "function shield.$name is described");
	next if $views{$name};
	for my $form (@{ $functions{$name} })
	{
		for my $param (@{ $form->{in} })
		{
			check(index($funcs, "<parameter>$param->{name}</parameter>") >= 0,
				  "parameter $param->{name} of shield.$name is described in Functions");
		}
		for my $column (@{ $form->{out} })
		{
			check(index($funcs, "<parameter>$column->{name}</parameter>") >= 0,
				  "result column $column->{name} of shield.$name is described in Functions");
		}
	}
}

# The signatures of Functions, each matched with a form of the install
# script: the parameters in order (name, type, default; "..." ends a list
# that leaves the rest out), the result columns if it lists them, and the
# result type.
sub form_text
{
	my ($form) = @_;
	return "shield.$form->{name}("
	  . join(", ", map { "$_->{name} $_->{type}" . ($_->{default} ne "" ? " DEFAULT $_->{default}" : "") } @{ $form->{in} })
	  . ") returns $form->{returns}";
}
sub signature_matches
{
	my ($sig, $form) = @_;
	return 0 unless $sig->{returns} eq $form->{returns};
	my @in = @{ $form->{in} };
	return 0 if @{ $sig->{in} } > @in || (!$sig->{rest} && @{ $sig->{in} } != @in);
	for my $i (0 .. $#{ $sig->{in} })
	{
		my ($shown, $defined) = ($sig->{in}[$i], $in[$i]);
		return 0 unless $shown->{name} eq $defined->{name} && $shown->{type} eq $defined->{type}
		  && $shown->{default} eq $defined->{default};
	}
	if (@{ $sig->{out} })
	{
		my @out = @{ $form->{out} };
		return 0 unless @{ $sig->{out} } == @out;
		for my $i (0 .. $#out)
		{
			return 0 unless $sig->{out}[$i]{name} eq $out[$i]{name}
			  && $sig->{out}[$i]{type} eq $out[$i]{type};
		}
	}
	return 1;
}
my %form_documented;
my $signature_re = qr/<function>shield\.(\w+)\(([^()]*)\)\s+returns\s+([^<]+?)\s*<\/function>/s;
while ($funcs =~ /<term>\s*$signature_re/g)
{
	my ($name, $args, $returns) = ($1, $2, $3);
	$args =~ s/<[^>]+>//g;
	(my $shown = "shield.$name($args) returns $returns") =~ s/\s+/ /g;
	my %sig = (in => [], out => [], rest => 0, returns => lc($returns =~ s/\s+/ /gr));
	for my $arg (grep { /\S/ } split_list($args))
	{
		if ($arg =~ /^\s*\.\.\.\s*$/)
		{
			$sig{rest} = 1;
		}
		elsif ($arg =~ /^\s*(?:(OUT)\s+)?(\w+)\s+(.+?)(?:\s+DEFAULT\s+(.+?))?\s*$/s)
		{
			my ($mode, $param, $type, $default) = ($1, $2, $3, $4);
			push @{ $sig{ $mode ? "out" : "in" } },
			  { name => $param, type => lc($type =~ s/\s+/ /gr), default => default_text($default) };
		}
		else
		{
			$sig{unread} = 1;
		}
	}
	check(defined $functions{$name},
		  "function shield.$name of Functions is a function of the install script")
	  or next;
	my @matched = $sig{unread} ? () : grep { signature_matches(\%sig, $_) } @{ $functions{$name} };
	my $what = "the signature $shown in Functions is one of the install script";
	$what .= ": " . join(" or ", map { form_text($_) } @{ $functions{$name} }) unless @matched;
	check(@matched > 0, $what);
	$form_documented{$_} = 1 for @matched;
}
for my $form (map { @{ $functions{$_} } } @function_order)
{
	next if $form->{returns} eq "trigger";
	check($form_documented{$form}, "the signature of " . form_text($form) . " is shown in Functions");
}

# Every shield.* name of the page is an object of the install script, of
# the kind the markup says.
my %object_named = map { $_ => 1 } $names_text =~ /(?<![\w.\/])shield\.(\w+)/g;
for my $name (sort keys %object_named)
{
	check($objects{$name}, "shield.$name named in the reference is an object of the install script");
}
my %structure_named = map { $_ => 1 } $text =~ /<structname>shield\.(\w+)<\/structname>/g;
for my $name (sort keys %structure_named)
{
	check($views{$name} || $tables{$name},
		  "<structname>shield.$name</structname> is a view or table of the install script");
}
my %function_named = map { $_ => 1 } $text =~ /<function>shield\.(\w+)/g;
for my $name (sort keys %function_named)
{
	check($functions{$name},
		  "<function>shield.$name</function> is a function of the install script");
}
my %parameter_named = map { $_ => 1 } $text =~ /<parameter>(\w+)<\/parameter>/g;
for my $name (sort keys %parameter_named)
{
	check($parameters{$name},
		  "<parameter>$name</parameter> is a parameter or result column of a function of the install script");
}

# Calls of the page (examples, messages, the GRANT and REVOKE lists): the
# named arguments are parameters of the function, the positional ones no
# more than it takes, and the ones without default given.  "f()" in prose
# names the function rather than calling it.  A named argument outside a
# call is a parameter of some function.
sub call_fits
{
	my ($form, $positional, @named) = @_;
	my @in = @{ $form->{in} };
	my %param = map { $_->{name} => 1 } @in;
	my %given = map { $_ => 1 } @named;
	return 0 if $positional > @in || grep { !$param{$_} } @named;
	return !grep { $in[$_]{default} eq "" && !$given{ $in[$_]{name} } } $positional .. $#in;
}
(my $calls = $text) =~ s/$signature_re//g;
my $call_re = qr/(?<![\w.\/])shield\.(\w+)(\((?:\x27[^\x27]*\x27|[^()\x27]++|(?2))*\))/;
my $arrow = qr/\s*(?:=>|=&gt;)/;
while ($calls =~ /$call_re/g)
{
	my ($name, $list) = ($1, $2);
	next unless $functions{$name};
	$list =~ s/^\(|\)$//g;
	$list =~ s/<[^>]+>//g;
	my @args = grep { /\S/ } split_list($list);
	next unless @args;
	my @named = map { /^\s*(\w+)$arrow/ ? $1 : () } @args;
	my $positional = grep { !/^\s*\w+$arrow/ } @args;
	my $fits = grep { call_fits($_, $positional, @named) } @{ $functions{$name} };
	(my $shown = "shield.$name($list)") =~ s/\s+/ /g;
	check($fits, "the call $shown has the arguments of a form of shield.$name");
}
(my $outside = $calls) =~ s/$call_re//g;
my %named_argument = map { $_ => 1 } $outside =~ /(\w+)\s+=&gt;/g;
for my $name (sort keys %named_argument)
{
	check($parameters{$name}, "the named argument $name is a parameter of a function of the install script");
}

# Views and their columns: a section per view, whose table of columns has
# a row for each column of the view, in its type where the install script
# states it (the result columns of the function a view selects from), and
# no other row.
for my $name (@view_order)
{
	my @columns = @{ $views{$name} };
	check(@columns > 0, "view shield.$name has columns");
	my $body = section_titled(qr/<structname>shield\.$name<\/structname> View/);
	check(defined $body, "view shield.$name has its section") or next;
	my %row;
	while ($body =~ /<para role="column_definition">\s*<structfield>(\w+)<\/structfield>\s*<type>([^<]+)<\/type>/g)
	{
		$row{$1} = $2;
	}
	for my $column (@columns)
	{
		my ($cname, $type) = @$column;
		check(defined $row{$cname},
			  "column $cname of shield.$name is described in its section")
		  or next;
		check($row{$cname} eq $type, "column $cname of shield.$name is described as $type")
		  if defined $type;
	}
	for my $cname (sort keys %row)
	{
		check($columns_of{$name}{$cname},
			  "column $cname described in the section of shield.$name is a column of the view");
	}
}
for my $id (sort keys %section)
{
	next unless $section{$id}{title} =~ /<structname>shield\.(\w+)<\/structname> View/;
	check($views{$1}, "the section \"The shield.$1 View\" is of a view of the install script");
}

# Every <structfield> of the page: a column of the view or table it follows
# (<structname>X</structname>.<structfield>), of some object of the
# install script ("rejected_*": some), or of the core catalog or view its
# paragraph names.
my %field_checked;
while ($text =~ /(?:<structname>([\w.]+)<\/structname>(?:<\/link>)?\.)?<structfield>([^<]+)<\/structfield>/g)
{
	my ($owner, $field, $at) = ($1, $2, $-[0]);
	(my $re = quotemeta($field)) =~ s/\\\*/\\w*/g;
	if (defined $owner && $owner =~ /^shield\.(\w+)$/)
	{
		my $of = $1;
		next if $field_checked{"$owner.$field"}++;
		check(scalar(grep({ /^$re$/ } keys %{ $columns_of{$of} // {} })),
			  "column $field of $owner named in the reference is a column of it");
		next;
	}
	next if defined $owner;		# a column of a core catalog or view
	if (grep { /^$re$/ } keys %any_column)
	{
		check(1, "column $field named in the reference is a column of the install script")
		  unless $field_checked{$field}++;
		next;
	}
	my $start = rindex($text, "<para", $at);
	my $end = index($text, "</para>", $at);
	my $para = substr($text, $start, $end - $start);
	my $core = $para =~ /<structname>(?!shield\.)\w+<\/structname>/;
	check($core, "column $field named in the reference is a column of the install script, or of a core object its paragraph names")
	  unless $core && $field_checked{$field}++;
}

# Every limit of the Policy Limits table is a parameter of a policy
# function, of that type.
my ($limits) = $sgml =~ /<table id="pgshield-policies-limits">(.*?)<\/table>/s;
my @limits = ($limits // "") =~ /<row>\s*<entry><literal>(\w+)<\/literal>\s*<type>([^<]+)<\/type><\/entry>/g;
check(@limits > 0, "the Policy Limits table has rows");
while (my ($limit, $type) = splice(@limits, 0, 2))
{
	my @as = grep { $_->{name} eq $limit } map { @{ $_->{in} } } map { @$_ } values %functions;
	check(@as && !grep({ $_->{type} ne $type } @as),
		  "limit $limit ($type) of Policy Limits is a parameter of the policy functions, of that type");
}

# Every function signature the README and the reference show in a GRANT
# (which a DBA pastes) has the arity of a function of the install script.
my %arities;
for my $form (map { @$_ } values %functions)
{
	$arities{ $form->{name} . "/" . scalar(@{ $form->{in} }) } = 1;
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
my ($listed) = $sgml =~ /<programlisting>\n(RETRYABLE = .*?)<\/programlisting>/s;
if (defined $listed)
{
	$listed =~ s/&lt;/</g;
	$listed =~ s/&gt;/>/g;
	$listed =~ s/&amp;/&/g;
}
check(defined $listed && index($example, $listed) >= 0,
	  "the retry loop of the reference is the text of examples/python/retry_psycopg3.py");

exit checks_failed();
'
