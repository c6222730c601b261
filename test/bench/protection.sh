#!/usr/bin/env bash
# Protection benchmark (the "protection" target in test/bench/README.md): does a critical
# role keep its throughput and latency while a low role floods the server?
#
# The scenario is the demo's (test/bench/protection-lib.sh): app runs
# pgbench -S with 4 clients; report floods with a full-scan aggregate from
# 16 clients that retry after the hinted time.  Each round runs, one after
# the other on the same server:
#   solo       app alone
#   flood      app and the flood, no policies
#   protected  app and the flood under the demo's policies
#   alone      one flood client alone, no policies
# and the summary gives, as medians over the rounds of per-round ratios:
#   protected TPS / solo TPS          target >= 0.65
#   protected p99 / solo p99          target <= 3
#   protected flood completed / alone target >= 0.3
#   p99 of the client-measured time of a statement shed or rejected at
#   once (53Sxx but 53S02: a queue timeout answers after waiting, by
#   design)                           target < 1 ms
# The columns of each run: app's TPS and latency; the flood's statements
# completed, shed (53S03), rejected (other 53Sxx), retried, the p99 of the
# immediate rejections, the queue timeouts (53S02) among the rejected, and
# the CPUs the report role's backends used (parallel workers excluded).
# (and the same for the unprotected run, for comparison).
#
#   test/bench/protection.sh     (as root on Debian 12)
#
# Environment: ROUNDS (3), SECONDS_PER_RUN (15), PROT_SCALE (5),
# PROT_MAX_ACTIVE (0), PROT_QUEUE_TIMEOUT (the report role's queue_timeout,
# default: pg_shield.queue_timeout), KEEP_TMP (keep the logs), PG_CONFIG.
# About 1 minute per round of 15 s runs, plus 1 minute of setup.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
KEEP_TMP=${KEEP_TMP:-}
target_tps=0.65 target_p99=3 target_flood=0.3 target_reject_ms=1

"$src/scripts/install-deps.sh"
tmp=$(mktemp -d /tmp/pg_shield-bench-protection.XXXXXX)
# shellcheck source=lib.sh
. "$src/test/bench/lib.sh"
# shellcheck source=protection-lib.sh
. "$src/test/bench/protection-lib.sh"
bench_setup_common

cleanup() {
    prot_kill_clients
    bench_stop_all
    if [ -n "$KEEP_TMP" ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

t_start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== building pg_shield into $tmp"
bench_private_install
bench_free_port port
bench_initdb "$tmp/data" "$port" pg_shield 512MB
bench_start "$tmp/data" "$tmp/server.log"

PROT_HOST=$tmp PROT_PORT=$port PROT_DB=protection PROT_OUT=$tmp/out
mkdir -p "$PROT_OUT"
echo "== loading pgbench's tables (scale $PROT_SCALE), roles app and report"
prot_build_flood
prot_load_db
bench_check_private_so "$tmp/data" "$port" "$PROT_DB"
prot_policy_sql >"$PROT_OUT/policies.sql"
echo "== the policies of the protected runs:"
sed 's/^/   /' "$PROT_OUT/policies.sql"
prot_run warmup 3 "$PROT_CRIT_CLIENTS" 0

g() { local v; v=$(prot_get "$1" "$2"); echo "${v:-0}"; }
r_tps="" r_p99="" r_flood="" r_rej="" u_tps="" u_p99="" u_flood=""
printf '%-6s %-10s %9s %8s %8s %9s %6s %8s %8s %10s %8s %6s\n' round run "app tps" "p50 ms" "p99 ms" completed shed rejected retried "rej p99 ms" "53S02" "cpu"
for ((r = 1; r <= ROUNDS; r++)); do
    prot_run solo "$SECONDS_PER_RUN" "$PROT_CRIT_CLIENTS" 0
    prot_run flood "$SECONDS_PER_RUN" "$PROT_CRIT_CLIENTS" "$PROT_FLOOD_CLIENTS"
    prot_apply_policies "$PROT_OUT/policies.sql"
    prot_run protected "$SECONDS_PER_RUN" "$PROT_CRIT_CLIENTS" "$PROT_FLOOD_CLIENTS"
    prot_clear_policies
    prot_run alone "$SECONDS_PER_RUN" 0 1
    for run in solo flood protected alone; do
        printf '%-6s %-10s %9.0f %8s %8s %9s %6s %8s %8s %10s %8s %6s\n' "$r" "$run" "$(g $run tps)" "$(g $run p50_ms)" \
            "$(g $run p99_ms)" "$(g $run completed)" "$(g $run shed)" "$(g $run rejected)" "$(g $run retried)" \
            "$( [ "$(g $run reject_n)" -gt 0 ] && g $run reject_p99_ms || echo -)" "$(g $run timeout_n)" "$(g $run flood_cores)"
        cp "$PROT_OUT/$run.sum" "$PROT_OUT/$run.sum.$r"
    done
    r_tps+=" $(bench_ratio "$(g protected tps)" "$(g solo tps)")"
    r_p99+=" $(bench_ratio "$(g protected p99_ms)" "$(g solo p99_ms)")"
    r_flood+=" $(bench_ratio "$(g protected completed)" "$(g alone completed)")"
    [ "$(g protected reject_n)" -gt 0 ] && r_rej+=" $(g protected reject_p99_ms)"
    u_tps+=" $(bench_ratio "$(g flood tps)" "$(g solo tps)")"
    u_p99+=" $(bench_ratio "$(g flood p99_ms)" "$(g solo p99_ms)")"
    u_flood+=" $(bench_ratio "$(g flood completed)" "$(g alone completed)")"
done

verdict() {   # median q1 q3 target ge|le|lt
    awk -v m="$1" -v a="$2" -v b="$3" -v t="$4" -v op="$5" 'BEGIN {
        ok = (op == "ge") ? m >= t : (op == "le") ? m <= t : m < t
        okq = (op == "ge") ? (a >= t) == (b >= t) : (op == "le") ? (a <= t) == (b <= t) : (a < t) == (b < t)
        printf "%s%s", ok ? "met" : "NOT met", okq ? "" : " (IQR straddles)" }'
}
summary() {   # label values target op
    local q1 m q3
    read -r q1 m q3 < <(bench_quartiles %.3f <<<"$2")
    printf '   %-44s %7s (IQR %s-%s)  target %s: %s\n' "$1" "$m" "$q1" "$q3" "$3" "$(verdict "$m" "$q1" "$q3" "$(tr -dc '0-9.' <<<"$3")" "$4")"
}
echo
echo "================================================================ summary"
echo "parameters: ROUNDS=$ROUNDS SECONDS_PER_RUN=$SECONDS_PER_RUN PROT_SCALE=$PROT_SCALE PROT_MAX_ACTIVE=$PROT_MAX_ACTIVE PROT_QUEUE_TIMEOUT=${PROT_QUEUE_TIMEOUT:-default}"
echo "machine: $(bench_machine_info)"
echo "pg_shield: $(bench_pg_shield_version)"
echo "load avg: $load_before (before), $(cut -d' ' -f1-3 /proc/loadavg) (after); $(( $(date +%s) - t_start )) s in all"
echo "with the policies (medians of $ROUNDS per-round ratios):"
summary "app TPS / app alone" "$r_tps" ">= $target_tps" ge
summary "app p99 / app alone" "$r_p99" "<= $target_p99" le
summary "reports completed / one report client alone" "$r_flood" ">= $target_flood" ge
if [ -n "$r_rej" ]; then
    summary "p99 of a statement shed or rejected at once, ms" "$r_rej" "< $target_reject_ms" lt
else
    echo "   no statement was shed or rejected at once (queue timeouts, 53S02, wait by design and are not counted here)"
fi
echo "without policies, for comparison:"
summary "app TPS / app alone" "$u_tps" ">= $target_tps" ge
summary "app p99 / app alone" "$u_p99" "<= $target_p99" le
summary "reports completed / one report client alone" "$u_flood" ">= $target_flood" ge
