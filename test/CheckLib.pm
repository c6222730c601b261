# Copyright (c) 2026, The pg_shield Developers

# What the checks of test/check-*.sh share: one line "ok - ..." or
# "not ok - ..." per check, and the exit status they end with.
package CheckLib;

use strict;
use warnings;

use Exporter 'import';
our @EXPORT = qw(check slurp checks_failed);

my $failed = 0;

# Report one check; returns whether it passed.  Exactly two arguments: a
# list in the first place (check(grep ..., "...") or check($x =~ /re/,
# "...") when nothing matches) would shift the description into the
# result and report "ok".
sub check
{
	die "check() takes a result and a description, got " . scalar(@_) . " arguments\n"
	  unless @_ == 2;
	my ($ok, $what) = @_;
	print(($ok ? "ok" : "not ok") . " - $what\n");
	$failed = 1 unless $ok;
	return $ok;
}

# A file's whole text, or undef if it cannot be read.
sub slurp
{
	my ($file) = @_;
	open(my $fh, "<", $file) or return undef;
	local $/;
	my $text = <$fh>;
	close($fh);
	return $text;
}

# The exit status: 1 if any check failed.
sub checks_failed
{
	return $failed;
}

1;
