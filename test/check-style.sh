#!/usr/bin/env bash
# Source layout checks, run by scripts/test.sh with the docs:
#
#  - typedefs.list names exactly the typedefs that src/ defines, and every
#    one of them carries the one type prefix, Shield;
#  - src/ is as PostgreSQL's pgindent leaves it, run with PostgreSQL's own
#    typedefs list plus ours (pgindent and pg_bsd_indent come from the
#    PostgreSQL 18 source tree that scripts/build-servers.sh unpacks, and
#    pg_bsd_indent is built once against that server's libraries);
#  - no file refers to documents outside the repository.
#
# Prints "ok - ..." or "not ok - ..." per check; exits non-zero if any
# check failed.  To reindent after a change:
#
#   test/check-style.sh --fix
set -uo pipefail
cd "$(dirname "$0")/.."

fix=0
[ "${1:-}" = --fix ] && fix=1

cache=${PG_SHIELD_SERVER_CACHE:-/var/cache/pg_shield}
failed=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; failed=1; }

# The typedefs src/ defines: the name a typedef statement ends with, or the
# name of a typedef'd function pointer.  Braces are followed, so that the
# members of a typedef'd struct are not taken for its name.
defined_typedefs() {
    perl -e '
        my %names;
        for my $file (@ARGV) {
            open my $fh, "<", $file or die "$file: $!\n";
            local $/;
            my $src = <$fh>;
            $src =~ s{/\*.*?\*/}{ }gs;
            $src =~ s{//[^\n]*}{}g;
            while ($src =~ /\btypedef\b/g) {
                my ($depth, $start, $text) = (0, pos($src), "");
                while ($src =~ /\G(.)/gs) {
                    my $c = $1;
                    $depth++ if $c eq "{";
                    $depth-- if $c eq "}";
                    last if $c eq ";" && $depth == 0;
                    $text .= $depth == 0 ? $c : "";
                }
                if ($text =~ /\(\s*\*\s*(\w+)\s*\)/) { $names{$1} = 1; }
                elsif ($text =~ /(\w+)\s*(\[[^\]]*\]\s*)*$/) { $names{$1} = 1; }
            }
        }
        print "$_\n" for sort keys %names;
    ' src/*.c src/*.h
}

listed=$(grep -v '^\s*$' typedefs.list | sort)
defined=$(defined_typedefs)
missing=$(comm -13 <(echo "$listed") <(echo "$defined"))
stale=$(comm -23 <(echo "$listed") <(echo "$defined"))
if [ -z "$missing" ] && [ -z "$stale" ]; then
    ok "typedefs.list names every typedef of src/ and nothing else"
else
    [ -n "$missing" ] && echo "# defined in src/ but not in typedefs.list:" $missing
    [ -n "$stale" ] && echo "# in typedefs.list but not defined in src/:" $stale
    not_ok "typedefs.list names every typedef of src/ and nothing else"
fi

unprefixed=$(echo "$defined" | grep -v '^Shield' || true)
if [ -z "$unprefixed" ]; then
    ok "every type is named Shield..."
else
    echo "# without the Shield prefix:" $unprefixed
    not_ok "every type is named Shield..."
fi

# pgindent, from the newest PostgreSQL 18 source tree in the cache.
pg18_source() {
    ls -d "$cache"/src/postgresql-18.*/src/tools/pgindent 2>/dev/null |
        sort -V | tail -1 | sed 's|/src/tools/pgindent$||'
}
source_tree=$(pg18_source)
prefix=""
if [ -z "$source_tree" ] || [ ! -x "$cache/pg18/bin/pg_config" ]; then
    # Unpacks the source and builds the server, or finds both cached.
    prefix=$(scripts/build-servers.sh 18 2>/dev/null | awk '$1 == "18" {print $2}')
    source_tree=$(pg18_source)
else
    prefix=$cache/pg18
fi
indent=""
if [ -n "$source_tree" ] && [ -n "$prefix" ]; then
    indent_dir="$cache/tools/pg_bsd_indent-$(basename "$source_tree")"
    indent="$indent_dir/pg_bsd_indent"
    if [ ! -x "$indent" ]; then
        mkdir -p "$indent_dir"
        includedir=$("$prefix/bin/pg_config" --includedir)
        libdir=$("$prefix/bin/pg_config" --libdir)
        cc -O2 -w -I"$source_tree/src/tools/pg_bsd_indent" \
            -I"$includedir/postgresql/internal" -I"$includedir/postgresql/server" \
            -I"$includedir/internal" -I"$includedir/server" \
            "$source_tree"/src/tools/pg_bsd_indent/*.c \
            -L"$libdir" -L"$libdir/postgresql" -lpgcommon -lpgport -lm \
            -o "$indent.tmp" && mv "$indent.tmp" "$indent"
    fi
fi
if [ -z "$indent" ] || [ ! -x "$indent" ]; then
    not_ok "src/ is as pgindent leaves it (no pgindent: the PostgreSQL 18 source tree or pg_bsd_indent is missing)"
else
    typedefs=$(mktemp)
    trap 'rm -f "$typedefs"' EXIT
    cat "$source_tree/src/tools/pgindent/typedefs.list" typedefs.list >"$typedefs"
    if [ $fix -eq 1 ]; then
        PGINDENT="$indent" perl "$source_tree/src/tools/pgindent/pgindent" \
            --typedefs="$typedefs" src/*.c src/*.h
    fi
    if diffs=$(PGINDENT="$indent" perl "$source_tree/src/tools/pgindent/pgindent" \
                   --typedefs="$typedefs" --check --diff src/*.c src/*.h 2>&1); then
        ok "src/ is as pgindent leaves it"
    else
        echo "$diffs" | head -60 | sed 's/^/# /'
        echo "# (test/check-style.sh --fix reindents)"
        not_ok "src/ is as pgindent leaves it"
    fi
fi

# Documents outside the repository cannot be followed by a reader of it.
outside=$(grep -rInE 'product contract|product\.md|\.\./shared/|§[0-9]' \
              --exclude-dir=.git --exclude-dir=node_modules --exclude-dir='tmp_check*' \
              --exclude=check-style.sh . 2>/dev/null || true)
if [ -z "$outside" ]; then
    ok "no file refers to documents outside the repository"
else
    echo "$outside" | sed 's/^/# /'
    not_ok "no file refers to documents outside the repository"
fi

exit $failed
