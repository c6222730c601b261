#!/usr/bin/env bash
# Run every pg_shield test suite: pg_regress, isolation, TAP, pgTAP and the
# documentation check.  Works as root on a fresh Debian 12 machine: installs
# what it needs, builds with -Wall -Wextra -Werror, installs, and runs the
# test servers as the postgres user.  The last line is "N passed, N failed";
# the exit status is non-zero if anything failed.
#
#   scripts/test.sh [regress|isolation|tap|pgtap|docs ...]    (default: all)
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(regress isolation tap pgtap docs)

"$src/scripts/install-deps.sh" || { echo "0 passed, 1 failed"; exit 1; }

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
bindir=$("$PG_CONFIG" --bindir)
logdir=$(mktemp -d /tmp/pg_shield-test-logs.XXXXXX)
chmod 755 "$logdir"

passed=0
failed=0

if ! work=$("$src/scripts/build-install.sh" 2>"$logdir/build.log"); then
    cat "$logdir/build.log"
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

# Run a command as the postgres user (servers refuse to run as root).
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- env PATH="$bindir:$PATH" "$@"
    else
        env PATH="$bindir:$PATH" "$@"
    fi
}

# pg_regress and pg_isolation_regress print "test NAME ... ok|FAILED".
count_regress() {
    local log=$1 rc=$2 ok bad
    ok=$(grep -cE '^(test | +)\S+ +\.\.\. +ok' "$log")
    bad=$(grep -cE '^(test | +)\S+ +\.\.\. +(FAILED|failed)' "$log")
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
    passed=$((passed + ok)); failed=$((failed + bad))
    echo "  $ok passed, $bad failed"
}

# prove and pg_prove end with TAP::Harness's summary.
count_tap() {
    local log=$1 rc=$2 total bad
    total=$(grep -oE 'Tests=[0-9]+' "$log" | tail -1 | cut -d= -f2)
    total=${total:-0}
    bad=$(grep -oE 'Failed: [0-9]+\)' "$log" | grep -oE '[0-9]+' | awk '{s += $1} END {print s + 0}')
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
    passed=$((passed + total - bad)); failed=$((failed + bad))
    echo "  $((total - bad)) passed, $bad failed"
}

show_failure() {
    local f
    for f in "$@"; do
        [ -f "$f" ] && { echo "---- $f"; head -c 20000 "$f"; }
    done
}

# pg_regress and the isolation tester, through PGXS installcheck with the
# other suites emptied out.
run_pg_regress_kind() {
    local name=$1 diffs=$2
    shift 2
    as_postgres make -C "$work" -s installcheck PG_CONFIG="$PG_CONFIG" \
        "$@" >"$logdir/$name.log" 2>&1
    local rc=$?
    grep -E '\.\.\. ' "$logdir/$name.log" || true
    [ $rc -ne 0 ] && show_failure "$diffs" "$logdir/$name.log"
    count_regress "$logdir/$name.log" $rc
}

run_regress() {
    echo "== pg_regress"
    run_pg_regress_kind regress "$work/regression.diffs" ISOLATION= TAP_TESTS=
}

run_isolation() {
    echo "== isolation"
    run_pg_regress_kind isolation "$work/output_iso/regression.diffs" REGRESS= TAP_TESTS=
}

run_tap() {
    echo "== TAP"
    as_postgres make -C "$work" -s installcheck PG_CONFIG="$PG_CONFIG" \
        REGRESS= ISOLATION= >"$logdir/tap.log" 2>&1
    local rc=$?
    grep -E '^t/|^test/t/|Result' "$logdir/tap.log" || true
    if [ $rc -ne 0 ]; then
        show_failure "$logdir/tap.log"
        for f in "$work"/tmp_check/log/regress_log_*; do show_failure "$f"; done
    fi
    count_tap "$logdir/tap.log" $rc
}

# pgTAP: the SQL contract, against a throwaway preloaded server.
run_pgtap() {
    echo "== pgTAP"
    local dir="$work/tmp_check_pgtap" port=$((20000 + $$ % 20000)) rc
    rm -rf "$dir"
    as_postgres mkdir -p "$dir"
    as_postgres initdb -D "$dir/data" -A trust -U postgres >"$logdir/pgtap.log" 2>&1
    cat "$src/test/pg_shield.conf" >>"$dir/data/postgresql.conf"
    printf "port = %d\nunix_socket_directories = '%s'\nlisten_addresses = ''\n" \
        "$port" "$dir" >>"$dir/data/postgresql.conf"
    as_postgres pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >>"$logdir/pgtap.log" 2>&1
    as_postgres psql -X -q -h "$dir" -p "$port" -U postgres -d postgres \
        -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION pg_shield" >>"$logdir/pgtap.log" 2>&1
    (cd "$work" && as_postgres pg_prove -h "$dir" -p "$port" -U postgres -d postgres \
        test/pgtap/*.sql) >>"$logdir/pgtap.log" 2>&1
    rc=$?
    as_postgres pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1
    grep -E '^test/pgtap|Result' "$logdir/pgtap.log" || true
    [ $rc -ne 0 ] && show_failure "$logdir/pgtap.log"
    count_tap "$logdir/pgtap.log" $rc
}

# The reference page must stay well-formed DocBook XML.
run_docs() {
    echo "== docs"
    if xmllint --noout "$src/contrib-docs/pg_shield.sgml" 2>"$logdir/docs.log"; then
        echo "  contrib-docs/pg_shield.sgml is well-formed"
        passed=$((passed + 1))
    else
        cat "$logdir/docs.log"
        failed=$((failed + 1))
    fi
}

for s in "${suites[@]}"; do
    case "$s" in
        regress) run_regress ;;
        isolation) run_isolation ;;
        tap) run_tap ;;
        pgtap) run_pgtap ;;
        docs) run_docs ;;
        *) echo "unknown suite: $s"; failed=$((failed + 1)) ;;
    esac
done

if [ "$failed" -eq 0 ] && [ -z "${KEEP_TEST_DIRS:-}" ]; then
    rm -rf "$logdir" "$work"
else
    echo "logs: $logdir, build: $work"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
