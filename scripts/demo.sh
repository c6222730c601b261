#!/usr/bin/env bash
# pg_shield demo: what pg_shield does for a critical workload when a flood
# of heavy reports hits the same server.
#
# It starts a throwaway server with pg_shield preloaded and plays one
# scenario three times, DEMO_SECONDS each (default 20):
#   (a) the critical role, app, alone: pgbench -S, 4 clients;
#   (b) the same while the report role floods the server with a full-scan
#       aggregate from 16 clients that retry on errors, no policies;
#   (c) the same flood under the policies a DBA would write (printed as
#       the migration SQL).
# Then it prints the three side by side (app's TPS and latency; the
# reports completed, shed, rejected and retried), one error a report
# client got, and writes a chart of app's throughput and latency over
# time (DEMO_CHART, default ./pg_shield-demo.png).
#
#   scripts/demo.sh            (as root on Debian 12)
#
# The scenario is shared with test/bench/protection.sh
# (test/bench/protection-lib.sh).  Everything runs on a Unix socket in a
# temporary directory, removed at the end.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
seconds=${DEMO_SECONDS:-20}
chart=${DEMO_CHART:-$PWD/pg_shield-demo.png}
case $chart in /*) ;; *) chart=$PWD/$chart ;; esac
t_start=$(date +%s)

"$src/scripts/install-deps.sh"
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
bindir=$("$PG_CONFIG" --bindir)
echo "== building and installing pg_shield"
work=$("$src/scripts/build-install.sh")

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- env PATH="$bindir:$PATH" "$@"
    else
        env PATH="$bindir:$PATH" "$@"
    fi
}

# shellcheck source=../test/bench/protection-lib.sh
. "$src/test/bench/protection-lib.sh"

dir=$(mktemp -d /tmp/pg_shield-demo.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
PROT_HOST=$dir
PROT_PORT=$((20000 + $$ % 20000))
PROT_DB=demo
PROT_OUT=$dir/out
mkdir -p "$PROT_OUT"
cleanup() {
    prot_kill_clients
    as_pg pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir" "$work"
}
trap cleanup EXIT

echo "== starting a throwaway server (PostgreSQL $("$PG_CONFIG" --version | sed 's/^PostgreSQL //'), socket in $dir)"
as_pg initdb -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
shared_preload_libraries = 'pg_shield'
port = $PROT_PORT
unix_socket_directories = '$dir'
listen_addresses = ''
max_connections = 50
shared_buffers = 512MB
jit = off
CONF
as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null

echo "== loading pgbench's tables (scale $PROT_SCALE), roles app and report"
prot_build_flood
prot_load_db
scan_ms() {   # one scan as report, timed by the server
    as_pg psql -X -q -h "$PROT_HOST" -p "$PROT_PORT" -U report -d "$PROT_DB" -At \
        -c "SET max_parallel_workers_per_gather = $1" \
        -c "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) $PROT_QUERY" -c "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) $PROT_QUERY" |
        sed -n 's/.*"Execution Time": \([0-9.]*\).*/\1/p' | tail -n 1 | awk '{printf "%.0f", $1}'
}
echo "   the report: $PROT_QUERY"
echo "   one report alone takes $(scan_ms 0) ms in one process, $(scan_ms 2) ms with PostgreSQL's default 2 parallel workers"
echo "   $(nproc) CPUs; app runs pgbench -S with $PROT_CRIT_CLIENTS clients, report $PROT_FLOOD_CLIENTS clients that retry after the hinted time"

echo "== warming up: app alone, 3s (not measured)"
prot_run warmup 3 "$PROT_CRIT_CLIENTS" 0

echo "== (a) app alone, ${seconds}s"
prot_run solo "$seconds" "$PROT_CRIT_CLIENTS" 0 5
echo "== (b) app under the report flood, no policies, ${seconds}s"
prot_run flood "$seconds" "$PROT_CRIT_CLIENTS" "$PROT_FLOOD_CLIENTS" 5
echo
echo "== declaring the policies a DBA would write, as a migration:"
prot_policy_sql >"$PROT_OUT/policies.sql"
sed 's/^/   /' "$PROT_OUT/policies.sql"
prot_apply_policies "$PROT_OUT/policies.sql"
echo "== (c) app under the report flood, with the policies, ${seconds}s"
prot_run protected "$seconds" "$PROT_CRIT_CLIENTS" "$PROT_FLOOD_CLIENTS" 5

# ---------------------------------------------------------------- the table
g() { local v; v=$(prot_get "$1" "$2"); echo "${v:-0}"; }
ratio() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN {if (b > 0) printf f, a / b; else printf "-"}'; }
row() { printf '%-34s %14s %24s %24s\n' "$@"; }
solo_tps=$(g solo tps); solo_p50=$(g solo p50_ms); solo_p99=$(g solo p99_ms)
echo
echo "== results, ${seconds}s each (app: pgbench -S, $PROT_CRIT_CLIENTS clients; report: $PROT_FLOOD_CLIENTS clients)"
row "" "(a) app alone" "(b) flood, no policies" "(c) flood, policies"
row "app transactions/s" "$(printf %.0f "$solo_tps")" \
    "$(printf %.0f "$(g flood tps)") ($(ratio "$(g flood tps)" "$solo_tps" %.2f))" \
    "$(printf %.0f "$(g protected tps)") ($(ratio "$(g protected tps)" "$solo_tps" %.2f))"
row "app latency p50, ms" "$solo_p50" \
    "$(g flood p50_ms) ($(ratio "$(g flood p50_ms)" "$solo_p50" %.1fx))" \
    "$(g protected p50_ms) ($(ratio "$(g protected p50_ms)" "$solo_p50" %.1fx))"
row "app latency p99, ms" "$solo_p99" \
    "$(g flood p99_ms) ($(ratio "$(g flood p99_ms)" "$solo_p99" %.1fx))" \
    "$(g protected p99_ms) ($(ratio "$(g protected p99_ms)" "$solo_p99" %.1fx))"
row "reports completed" "-" "$(g flood completed)" "$(g protected completed)"
row "reports shed (53S03)" "-" "$(g flood shed)" "$(g protected shed)"
row "reports rejected (other 53Sxx)" "-" "$(g flood rejected)" "$(g protected rejected)"
row "reports retried" "-" "$(g flood retried)" "$(g protected retried)"
row "  of which queue timeouts (53S02)" "-" "$(g flood timeout_n)" "$(g protected timeout_n)"
row "turned away at once, p99 ms" "-" \
    "$( [ "$(g flood reject_n)" -gt 0 ] && g flood reject_p99_ms || echo -)" \
    "$( [ "$(g protected reject_n)" -gt 0 ] && g protected reject_p99_ms || echo -)"
row "CPUs used by report's backends" "-" "$(g flood flood_cores) of $(nproc)" "$(g protected flood_cores) of $(nproc)"
echo "(ratios to (a) in parentheses; the reports' own parallel workers are not in the CPU row)"

for run in protected flood; do
    if [ -s "$PROT_OUT/$run.error" ]; then
        echo
        echo "== one error a report client got in ($([ $run = protected ] && echo c || echo b))"
        sed 's/^/   /' "$PROT_OUT/$run.error"
        break
    fi
done

# ---------------------------------------------------------------- the chart
term="pngcairo size 900,600 font 'sans,10'"
gnuplot -e 'set terminal pngcairo' -e 'exit' >/dev/null 2>&1 || term="png size 900,600"
gnuplot <<GP
set terminal $term
set output '$chart'
set termoption noenhanced
set multiplot layout 2,1 title "pg_shield demo: app (pgbench -S, $PROT_CRIT_CLIENTS clients) beside a flood of reports ($PROT_FLOOD_CLIENTS clients)"
set key outside right
set grid
set xrange [0:$seconds]
set ylabel "transactions/s"
set yrange [0:*]
plot '$PROT_OUT/solo.series' using 1:2 with lines lw 2 title "(a) alone", \
     '$PROT_OUT/flood.series' using 1:2 with lines lw 2 title "(b) flood, no policies", \
     '$PROT_OUT/protected.series' using 1:2 with lines lw 2 title "(c) flood, policies"
set xlabel "seconds"
unset key
set ylabel "p99 latency, ms (per second)"
set logscale y
set yrange [*:*]
plot '$PROT_OUT/solo.series' using 1:4 with lines lw 2 title "(a) alone", \
     '$PROT_OUT/flood.series' using 1:4 with lines lw 2 title "(b) flood, no policies", \
     '$PROT_OUT/protected.series' using 1:4 with lines lw 2 title "(c) flood, policies"
unset multiplot
GP
[ "$(id -u)" -eq 0 ] && [ -n "${SUDO_UID:-}" ] && chown "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$chart"
echo
echo "== chart of app's throughput and p99 latency per second: $chart"
echo "== done in $(( $(date +%s) - t_start )) s"
