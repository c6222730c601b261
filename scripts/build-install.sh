#!/usr/bin/env bash
# Build pg_shield in a scratch copy owned by the postgres user (test servers
# run as that user and write into the build tree), warnings as errors, and
# install it.  Prints the scratch directory.
#
#   scripts/build-install.sh [DIR]
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
work=${1:-$(mktemp -d /tmp/pg_shield-build.XXXXXX)}

mkdir -p "$work"
tar -C "$src" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
    --exclude='tmp_check*' --exclude=output_iso --exclude=results -cf - . |
    tar -C "$work" -xf -

sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo

make -s -C "$work" PG_CONFIG="$PG_CONFIG" \
    PG_CFLAGS="-Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers" >&2
$sudo make -s -C "$work" PG_CONFIG="$PG_CONFIG" install >&2
if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres:postgres "$work"
fi
echo "$work"
