#!/usr/bin/env bash
# Build the PostgreSQL servers pg_shield is tested on besides Debian 12's own
# PostgreSQL 15: 17 (Debian's trixie source package), 18 (sid) and 18 again
# with assertions (--enable-cassert --enable-debug, -O1).  Each goes into a
# private prefix under the cache directory, with pg_stat_statements, the
# isolation tester, the TAP test modules, the contrib modules and pgTAP.
#
# Idempotent: a server whose prefix holds a stamp matching its source version
# and configure options is not rebuilt, so a second run costs nothing.  The
# cache survives between runs on the same machine.
#
#   scripts/build-servers.sh [17 18 18-assert ...]     (default: all three)
#
# Prints one line per server: "<name> <prefix>".  Environment:
#   PG_SHIELD_SERVER_CACHE   cache directory (default /var/cache/pg_shield)
#   PG_SHIELD_BUILD_JOBS     make -j (default: number of CPUs + 1)
set -euo pipefail

cache=${PG_SHIELD_SERVER_CACHE:-/var/cache/pg_shield}
jobs=${PG_SHIELD_BUILD_JOBS:-$(($(nproc) + 1))}
servers=("$@")
[ ${#servers[@]} -eq 0 ] && servers=(17 18 18-assert)

log() { echo "build-servers: $*" >&2; }

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { log "run as root"; exit 1; }
    sudo=sudo
fi

# Which Debian suite carries the source package of each major version.
suite_of() {
    case "$1" in
        17) echo trixie ;;
        18) echo sid ;;
        *) log "no source package known for PostgreSQL $1"; return 1 ;;
    esac
}

# What a build is: configure options of each server, and the number of the
# recipe below (bump it when the recipe changes).  The stamp records both,
# so that changing either rebuilds the server.
build_recipe=2
stamp_line() {
    echo "recipe $build_recipe: $(configure_opts "$1")"
}

configure_opts() {
    local common="--enable-tap-tests --with-icu --without-llvm --with-openssl --with-libxml"
    case "$1" in
        *-assert) echo "$common --enable-cassert --enable-debug CFLAGS=-O1" ;;
        *) echo "$common CFLAGS=-O2" ;;
    esac
}

# deb-src entries for the suites, with the URIs and keyring of the
# machine's own Debian sources (deb822 or one-line format).  Source entries
# only: nothing from trixie or sid is ever installed as a binary package.
mirror_uri() {
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    elif [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
              /etc/apt/sources.list)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

mirror_keyring() {
    local keyring=""
    [ -f /etc/apt/sources.list.d/debian.sources ] &&
        keyring=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    echo "${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}"
}

ensure_sources() {
    local list=/etc/apt/sources.list.d/pg_shield-src.sources want
    want=$(printf 'Types: deb-src\nURIs: %s\nSuites: trixie sid\nComponents: main\nSigned-By: %s\n' \
           "$(mirror_uri)" "$(mirror_keyring)")
    if [ ! -f "$list" ] || [ "$(cat "$list")" != "$want" ]; then
        echo "$want" | $sudo tee "$list" >/dev/null
        $sudo apt-get update -qq
    fi
}

ensure_build_deps() {
    local p missing=()
    for p in build-essential bison flex pkg-config libreadline-dev zlib1g-dev \
             libicu-dev libssl-dev libxml2-dev libipc-run-perl dpkg-dev; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# Unpack the upstream tarball of Debian's source package for a major version
# into $cache/src and print the tree's path.  The pristine upstream sources
# are used (Debian's patches adapt paths to its packaging).
#
# apt-get source fetches the version the suite's index names, checked
# against the signed index.  Mirrors have been seen to lack the pool files of
# that version while keeping earlier ones (a point release whose files were
# not mirrored yet): then the newest earlier minor release's tarball in the
# same pool directory is taken, and a warning says so.
fetch_source() {
    local major=$1 suite version minor dir tarball pooldir n existing
    suite=$(suite_of "$major")
    version=$(apt-cache showsrc "postgresql-$major" 2>/dev/null |
              awk '/^Version:/ {print $2}' | sort -V | tail -1)
    [ -n "$version" ] || { log "apt has no source of postgresql-$major ($suite)"; return 1; }
    version=${version%%-*}
    existing=$(ls -d "$cache/src/postgresql-$major".*/configure 2>/dev/null | sort -V | tail -1)
    if [ -n "$existing" ]; then
        dirname "$existing"
        return 0
    fi
    mkdir -p "$cache/src/dl"
    if (cd "$cache/src/dl" && apt-get source --download-only -qq "postgresql-$major=$(
            apt-cache showsrc "postgresql-$major" | awk '/^Version:/ {print $2}' | sort -V | tail -1)") \
            >"$cache/src/dl/apt-$major.log" 2>&1; then
        tarball=$(ls "$cache/src/dl/postgresql-${major}_${version}".orig.tar.* | head -1)
    else
        pooldir=$(apt-cache showsrc "postgresql-$major" | awk '/^Directory:/ {print $2; exit}')
        minor=${version#*.}
        tarball=""
        for ((n = minor - 1; n >= 0; n--)); do
            if /usr/lib/apt/apt-helper download-file \
                    "$(mirror_uri)/$pooldir/postgresql-${major}_${major}.$n.orig.tar.bz2" \
                    "$cache/src/dl/postgresql-${major}_${major}.$n.orig.tar.bz2" >/dev/null 2>&1; then
                tarball="$cache/src/dl/postgresql-${major}_${major}.$n.orig.tar.bz2"
                log "WARNING: the mirror lacks postgresql-$major $version; using $major.$n from $pooldir"
                version=$major.$n
                break
            fi
        done
        [ -n "$tarball" ] || { cat "$cache/src/dl/apt-$major.log" >&2; return 1; }
    fi
    dir="$cache/src/postgresql-$version"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    tar -C "$dir.tmp" --strip-components=1 -xf "$tarball"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    echo "$dir"
}

# pgTAP from Debian's source package (trixie's release supports 17 and 18).
fetch_pgtap() {
    local dir tarball
    dir=$(ls -d "$cache"/src/pgtap-*/ 2>/dev/null | head -1)
    if [ -z "$dir" ]; then
        mkdir -p "$cache/src/dl"
        # Only the upstream tarball is used: a missing .dsc on the mirror
        # does not matter.
        (cd "$cache/src/dl" && apt-get source --download-only -qq pgtap/trixie >/dev/null 2>&1) || true
        tarball=$(ls "$cache"/src/dl/pgtap_*.orig.tar.* 2>/dev/null | head -1)
        [ -n "$tarball" ] || { log "cannot download pgtap's source from trixie"; return 1; }
        dir="$cache/src/pgtap-$(basename "$tarball" | sed -E 's/^pgtap_(.*)\.orig\.tar\..*$/\1/')"
        rm -rf "$dir" && mkdir -p "$dir"
        tar -C "$dir" --strip-components=1 -xf "$tarball"
    fi
    echo "${dir%/}"
}

build_server() {
    local name=$1 major=${1%%-*} srcdir pgtap opts prefix stamp want build
    opts=$(configure_opts "$name")
    prefix="$cache/pg$name"
    stamp="$prefix/.pg_shield-build-stamp"
    # The stamp's first line is the recipe and the configure options; a
    # cached server built the same way is kept even when Debian has a newer
    # minor release (delete the prefix to take it).
    if [ -f "$stamp" ] && [ "$(head -1 "$stamp")" = "$(stamp_line "$name")" ]; then
        echo "$name $prefix"
        return 0
    fi
    srcdir=$(fetch_source "$major") || return 1
    pgtap=$(fetch_pgtap) || return 1
    want=$(printf '%s\n%s %s\n' "$(stamp_line "$name")" "$(basename "$srcdir")" "$(basename "$pgtap")")
    log "building PostgreSQL $name from $(basename "$srcdir") into $prefix"
    build="$cache/build/$name"
    rm -rf "$build" "$prefix"
    mkdir -p "$build"
    # shellcheck disable=SC2086
    (cd "$build" && eval "$srcdir/configure" --prefix="$prefix" $opts) >"$cache/build-$name.log" 2>&1 ||
        { tail -30 "$cache/build-$name.log" >&2; return 1; }
    {
        make -C "$build" -j"$jobs" -s &&
        make -C "$build" -s install &&
        make -C "$build/contrib" -j"$jobs" -s install &&
        make -C "$build/src/test/isolation" -j"$jobs" -s install &&
        make -C "$build/src/test/perl" -s install &&
        make -C "$pgtap" -s PG_CONFIG="$prefix/bin/pg_config" install &&
        make -C "$pgtap" -s PG_CONFIG="$prefix/bin/pg_config" clean
    } >>"$cache/build-$name.log" 2>&1 || { tail -30 "$cache/build-$name.log" >&2; return 1; }
    rm -rf "$build"
    echo "$want" >"$stamp"
    log "PostgreSQL $name built"
    echo "$name $prefix"
}

$sudo mkdir -p "$cache"
[ -w "$cache" ] || { log "cannot write $cache"; exit 1; }
need_build=0
for s in "${servers[@]}"; do
    [ "$(head -1 "$cache/pg$s/.pg_shield-build-stamp" 2>/dev/null)" = "$(stamp_line "$s")" ] ||
        need_build=1
done
if [ $need_build -eq 1 ]; then
    ensure_build_deps
    ensure_sources
fi
status=0
for s in "${servers[@]}"; do
    build_server "$s" || { log "PostgreSQL $s: build failed (log: $cache/build-$s.log)"; status=1; }
done
exit $status
