#!/usr/bin/env bash
# Run every pg_shield test suite (pg_regress, isolation, TAP, pgTAP and the
# documentation and packaging checks) on every PostgreSQL server pg_shield
# is tested on: 15 (Debian 12's packages), 17 and 18 (built from Debian's
# source packages by scripts/build-servers.sh, cached between runs) and 18
# built with assertions.  Works as root on a fresh Debian 12 machine:
# installs what it needs, builds with -Wall -Wextra -Werror against each
# server, installs, and runs the test servers as the postgres user.
#
# A server log line "TRAP:" (a failed assertion) or a process terminated by
# a signal other than the SIGKILL a test sends on purpose counts as a
# failure of the suite whose server wrote it.
#
# Prints one line per server, then "N passed, N failed" as the last line;
# the exit status is non-zero if anything failed.
#
#   scripts/test.sh [--pg LIST] [SUITE ...]
#
#   LIST    comma-separated servers among 15, 17, 18, 18-assert
#           (default: all; or the environment variable PG_SHIELD_TEST_SERVERS)
#   SUITE   regress, isolation, tap, pgtap, docs (default: all)
#
# PROVE_TESTS="test/t/012_pg_upgrade.pl ..." runs only those TAP tests.
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
servers=${PG_SHIELD_TEST_SERVERS:-15,17,18,18-assert}
suites=()
while [ $# -gt 0 ]; do
    case "$1" in
        --pg) servers=$2; shift 2 ;;
        --pg=*) servers=${1#--pg=}; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) suites+=("$1"); shift ;;
    esac
done
[ ${#suites[@]} -eq 0 ] && suites=(regress isolation tap pgtap docs)
IFS=, read -r -a servers <<<"$servers"

passed=0
failed=0
summary=()

"$src/scripts/install-deps.sh" || { echo "0 passed, 1 failed"; exit 1; }

logdir=$(mktemp -d /tmp/pg_shield-test-logs.XXXXXX)
chmod 755 "$logdir"
keep_logs=0

# The private servers, built once and cached (see build-servers.sh).
private=()
for s in "${servers[@]}"; do
    [ "$s" = 15 ] || private+=("$s")
done
declare -A prefix_of=()
if [ ${#private[@]} -gt 0 ]; then
    "$src/scripts/build-servers.sh" "${private[@]}" >"$logdir/servers.list" 2>"$logdir/servers.log"
    cat "$logdir/servers.log"
    while read -r name prefix; do
        prefix_of[$name]=$prefix
    done <"$logdir/servers.list"
fi

# pg_config of a server name; empty if it could not be built.
pg_config_of() {
    case "$1" in
        15) echo /usr/lib/postgresql/15/bin/pg_config ;;
        *) [ -n "${prefix_of[$1]:-}" ] && echo "${prefix_of[$1]}/bin/pg_config" ;;
    esac
}

# Run a command as the postgres user (servers refuse to run as root).
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- env PATH="$bindir:$PATH" "$@"
    else
        env PATH="$bindir:$PATH" "$@"
    fi
}

# pg_regress and pg_isolation_regress print "test NAME ... ok|FAILED"
# (PostgreSQL 15) or "ok N - NAME" / "not ok N - NAME" (TAP style, 16 on).
count_regress() {
    local log=$1 rc=$2 ok bad
    ok=$(grep -cE '^(test | +)\S+ +\.\.\. +ok|^ok [0-9]+ +[-+] ' "$log")
    bad=$(grep -cE '^(test | +)\S+ +\.\.\. +(FAILED|failed)|^not ok [0-9]+ +[-+] ' "$log")
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
    count "$ok" "$bad"
}

# prove and pg_prove end with TAP::Harness's summary.
count_tap() {
    local log=$1 rc=$2 total bad
    total=$(grep -oE 'Tests=[0-9]+' "$log" | tail -1 | cut -d= -f2)
    total=${total:-0}
    bad=$(grep -oE 'Failed: [0-9]+\)' "$log" | grep -oE '[0-9]+' | awk '{s += $1} END {print s + 0}')
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
    count $((total - bad)) "$bad"
}

count() {
    s_passed=$((s_passed + $1)); s_failed=$((s_failed + $2))
    echo "  $1 passed, $2 failed"
}

show_failure() {
    local f
    keep_logs=1
    for f in "$@"; do
        [ -f "$f" ] && { echo "---- $f"; head -c 20000 "$f"; }
    done
}

# Server logs of a suite: a failed assertion or a crash is a failure even
# when every test passed.  SIGKILL is what 003_crash and
# 010_queue_postmaster_death send on purpose; only the logs of tests that
# call kill9 or send KILL may show it.
check_server_logs() {
    local suite=$1 f bad=0 lines allow_kill
    shift
    for f in "$@"; do
        [ -f "$f" ] || continue
        allow_kill=0
        case "$f" in
            */tmp_check/log/*)
                local t
                t=$(basename "$f" | sed -E 's/^([0-9]+_[a-z_]+[a-z])_.*$/\1/')
                grep -qE 'kill9|KILL' "$work/test/t/$t.pl" 2>/dev/null && allow_kill=1
                ;;
        esac
        lines=$(grep -E 'TRAP:|terminated by signal [0-9]+' "$f" |
                { if [ $allow_kill -eq 1 ]; then grep -vE 'terminated by signal 9:'; else cat; fi } || true)
        if [ -n "$lines" ]; then
            echo "  server log $f:"
            echo "$lines" | head -5 | sed 's/^/    /'
            bad=1
        fi
    done
    if [ $bad -ne 0 ]; then
        echo "  $suite: a server failed an assertion or a process was killed by a signal"
        count 0 1
        keep_logs=1
    fi
}

# pg_regress and the isolation tester, through PGXS installcheck with the
# other suites emptied out.
run_pg_regress_kind() {
    local name=$1 diffs=$2 instance=$3
    shift 3
    as_postgres make -C "$work" -s installcheck PG_CONFIG="$PG_CONFIG" \
        "$@" >"$slog/$name.log" 2>&1
    local rc=$?
    grep -E '\.\.\. |^(not )?ok [0-9]+ ' "$slog/$name.log" || true
    [ $rc -ne 0 ] && show_failure "$diffs" "$slog/$name.log"
    count_regress "$slog/$name.log" $rc
    check_server_logs "$name" "$work/$instance"/log/*.log
}

run_regress() {
    echo "== pg_regress"
    run_pg_regress_kind regress "$work/regression.diffs" tmp_check_regress \
        ISOLATION= TAP_TESTS=
}

run_isolation() {
    echo "== isolation"
    run_pg_regress_kind isolation "$work/output_iso/regression.diffs" tmp_check_iso \
        REGRESS= TAP_TESTS=
}

run_tap() {
    echo "== TAP"
    # 012_pg_upgrade upgrades a cluster of Debian's PostgreSQL 15, which
    # has pg_shield installed (see install_for_upgrade).
    as_postgres env PG_SHIELD_UPGRADE_FROM=/usr/lib/postgresql/15 \
        make -C "$work" -s installcheck PG_CONFIG="$PG_CONFIG" \
        REGRESS= ISOLATION= ${PROVE_TESTS:+PROVE_TESTS="$PROVE_TESTS"} >"$slog/tap.log" 2>&1
    local rc=$?
    grep -E '^t/|^test/t/|Result' "$slog/tap.log" || true
    if [ $rc -ne 0 ]; then
        show_failure "$slog/tap.log"
        for f in "$work"/tmp_check/log/regress_log_*; do
            grep -qE '^not ok' "$f" 2>/dev/null && show_failure "$f"
        done
    fi
    count_tap "$slog/tap.log" $rc
    check_server_logs tap "$work"/tmp_check/log/*.log
}

# pgTAP: the SQL contract, against a throwaway preloaded server.
run_pgtap() {
    echo "== pgTAP"
    local dir="$work/tmp_check_pgtap" port=$((20000 + ($$ + RANDOM) % 20000)) rc
    rm -rf "$dir"
    as_postgres mkdir -p "$dir"
    as_postgres "$bindir/initdb" -D "$dir/data" -A trust -U postgres >"$slog/pgtap.log" 2>&1
    cat "$src/test/pg_shield.conf" >>"$dir/data/postgresql.conf"
    printf "port = %d\nunix_socket_directories = '%s'\nlisten_addresses = ''\n" \
        "$port" "$dir" >>"$dir/data/postgresql.conf"
    as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >>"$slog/pgtap.log" 2>&1
    as_postgres "$bindir/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres \
        -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION pg_shield" >>"$slog/pgtap.log" 2>&1
    (cd "$work" && as_postgres pg_prove --psql-bin "$bindir/psql" -h "$dir" -p "$port" \
        -U postgres -d postgres test/pgtap/*.sql) >>"$slog/pgtap.log" 2>&1
    rc=$?
    as_postgres "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
    grep -E '^test/pgtap|Result' "$slog/pgtap.log" || true
    [ $rc -ne 0 ] && show_failure "$slog/pgtap.log"
    count_tap "$slog/pgtap.log" $rc
    check_server_logs pgtap "$dir/server.log"
}

# The reference page must stay well-formed DocBook XML and describe every
# setting, SQLSTATE, function and view column, and name nothing the code
# lacks; the packaging (control file, META.json, Makefile, scripts) must
# agree; and src/ must be as pgindent leaves it.  Independent of the
# server: run once, with the first one.
run_docs() {
    echo "== docs and packaging"
    if xmllint --noout "$src/contrib-docs/pg_shield.sgml" 2>"$slog/xmllint.log"; then
        echo "  contrib-docs/pg_shield.sgml is well-formed"
        count 1 0
    else
        cat "$slog/xmllint.log"
        count 0 1
    fi
    run_check docs
    run_check packaging
    run_check style
}

# One of the checks of test/: each prints "ok - ..." or "not ok - ..." per
# check and exits non-zero if any failed (counted as one failure at least).
# The failures are shown, the rest counted.
run_check() {
    local name=$1 log="$slog/$1.log" ok bad
    "$src/test/check-$name.sh" >"$log" 2>&1
    local rc=$?
    ok=$(grep -c '^ok' "$log")
    bad=$(grep -c '^not ok' "$log")
    [ $rc -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
    echo "  test/check-$name.sh"
    grep -v '^ok' "$log" | sed 's/^/  /'
    count "$ok" "$bad"
    [ "$bad" -eq 0 ] || keep_logs=1
}

# The TAP upgrade test needs pg_shield in Debian's PostgreSQL 15 too, whose
# clusters it upgrades from.
install_for_upgrade() {
    [ -x /usr/lib/postgresql/15/bin/pg_config ] || return 0
    [ "$PG_CONFIG" = /usr/lib/postgresql/15/bin/pg_config ] && return 0
    [ -n "${upgrade_source_installed:-}" ] && return 0
    PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config \
        "$src/scripts/build-install.sh" "$logdir/build-15-for-upgrade" \
        >/dev/null 2>"$logdir/build-15-for-upgrade.log" &&
        upgrade_source_installed=1
}

docs_done=0
for server in "${servers[@]}"; do
    s_passed=0
    s_failed=0
    echo "==== PostgreSQL $server"
    PG_CONFIG=$(pg_config_of "$server")
    if [ -z "$PG_CONFIG" ] || [ ! -x "$PG_CONFIG" ]; then
        echo "  PostgreSQL $server is not available: its build failed (see above)"
        count 0 1
    else
        export PG_CONFIG
        bindir=$("$PG_CONFIG" --bindir)
        slog="$logdir/$server"
        mkdir -p "$slog"
        chmod 755 "$slog"
        if ! work=$("$src/scripts/build-install.sh" 2>"$slog/build.log"); then
            cat "$slog/build.log"
            echo "  build failed"
            count 0 1
            keep_logs=1
        else
            [[ " ${suites[*]} " == *" tap "* ]] && install_for_upgrade
            for s in "${suites[@]}"; do
                case "$s" in
                    regress) run_regress ;;
                    isolation) run_isolation ;;
                    tap) run_tap ;;
                    pgtap) run_pgtap ;;
                    docs) [ $docs_done -eq 0 ] && { run_docs; docs_done=1; } ;;
                    *) echo "unknown suite: $s"; count 0 1 ;;
                esac
            done
            if [ $keep_logs -eq 0 ] && [ -z "${KEEP_TEST_DIRS:-}" ]; then
                rm -rf "$work"
            else
                echo "  build and test servers' logs: $work"
            fi
        fi
    fi
    summary+=("PostgreSQL $server: $s_passed passed, $s_failed failed")
    passed=$((passed + s_passed))
    failed=$((failed + s_failed))
done

echo
for line in "${summary[@]}"; do echo "$line"; done
if [ $keep_logs -eq 0 ] && [ -z "${KEEP_TEST_DIRS:-}" ]; then
    rm -rf "$logdir"
else
    echo "logs: $logdir"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
