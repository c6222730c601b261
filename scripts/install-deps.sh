#!/usr/bin/env bash
# Install the Debian 12 packages pg_shield needs to build, test, benchmark
# and run its demo.  Safe to run repeatedly: installs only what is missing.
# (libkrb5-dev: Debian's PostgreSQL 15 is built with GSSAPI, so its
# libpq/libpq-be.h, which admission.c includes to check that a waiting
# statement's client is still there, includes gssapi.h.  libpq-dev: the
# flood client of the demo and of test/bench/protection.sh is a small libpq
# program.  gnuplot-nox: the demo's chart.  python3-psycopg2,
# python3-psycopg, pgbouncer, and Node.js with npm unless the machine has
# them: the client examples of examples/ and the TAP tests that run them.
# prometheus-postgres-exporter: test/t/021_exporter.pl runs the queries
# file in monitoring/ with it, on a port of its own: the service the
# package installs is not used.)
#
# node-postgres for examples/node is installed from the npm registry, at
# the versions of examples/node/package-lock.json, into
# /usr/local/lib/pg_shield-node (PG_SHIELD_NODE_PREFIX changes it), where
# the tests find it (NODE_PATH); again only when missing or changed.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)

packages=(
    build-essential
    postgresql-15
    postgresql-server-dev-15
    libkrb5-dev
    postgresql-contrib
    postgresql-15-pgtap
    libtap-parser-sourcehandler-pgtap-perl
    libipc-run-perl
    libxml2-utils
    libpq-dev
    gnuplot-nox
    python3-psycopg2
    python3-psycopg
    pgbouncer
    prometheus-postgres-exporter
)
# Node.js: a machine may have its own build (with npm), which Debian's
# npm package would conflict with.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$p")
done

node_prefix=${PG_SHIELD_NODE_PREFIX:-/usr/local/lib/pg_shield-node}
node_stale=0
cmp -s "$src/examples/node/package-lock.json" "$node_prefix/package-lock.json" &&
    [ -f "$node_prefix/node_modules/pg/package.json" ] || node_stale=1
[ ${#missing[@]} -eq 0 ] && [ $node_stale -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: run as root to install: ${missing[*]} $node_prefix" >&2; exit 1; }
    sudo=sudo
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    # The packaged cluster is not needed: tests and the demo start their own.
    $sudo mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.d/pg_shield-no-main.conf >/dev/null
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Without the registry, only the node-postgres example is skipped (the
# lock file is kept only after a complete install, so the next run tries
# again).
if [ $node_stale -eq 1 ]; then
    echo "install-deps: installing node-postgres into $node_prefix"
    $sudo mkdir -p "$node_prefix"
    $sudo cp "$src/examples/node/package.json" "$src/examples/node/package-lock.json" "$node_prefix/"
    if ! (cd "$node_prefix" && $sudo npm ci --no-audit --no-fund --silent); then
        $sudo rm -f "$node_prefix/package-lock.json"
        echo "install-deps: npm ci failed: the node-postgres example will be skipped" >&2
    fi
fi
