#!/usr/bin/env bash
# Install the Debian 12 packages pg_shield needs to build, test, benchmark
# and run its demo.  Safe to run repeatedly: installs only what is missing.
# (libkrb5-dev: Debian's PostgreSQL 15 is built with GSSAPI, so its
# libpq/libpq-be.h, which admission.c includes to check that a waiting
# statement's client is still there, includes gssapi.h.  libpq-dev: the
# flood client of the demo and of test/bench/protection.sh is a small libpq
# program.  gnuplot-nox: the demo's chart.  prometheus-postgres-exporter:
# test/t/021_exporter.pl runs the queries file in monitoring/ with it, on a
# port of its own: the service the package installs is not used.)
set -euo pipefail

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
    prometheus-postgres-exporter
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: run as root to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
fi

echo "install-deps: installing ${missing[*]}"
# The packaged cluster is not needed: tests and the demo start their own.
$sudo mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.d/pg_shield-no-main.conf >/dev/null
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
