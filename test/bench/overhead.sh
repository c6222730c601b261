#!/usr/bin/env bash
# Per-statement overhead benchmark (the first target in test/bench/README.md).
#
# Not a timed test: a script that measures pgbench -S -M prepared, 8 clients,
# as a non-superuser, against three throwaway instances that run side by side
# and differ only in shared_preload_libraries:
#
#   none                ''                    (compute_query_id = on everywhere,
#   pg_shield           'pg_shield'            so only the hooks differ)
#   pg_stat_statements  'pg_stat_statements'
#
# All three are started once, loaded with the same pgbench data, prewarmed and
# warmed up; then every round runs a short pgbench against each of them, in an
# order that rotates every round.  Nothing restarts during the measurement, so
# the runs of a round are seconds apart and the ratios paired within a round
# cancel most of the drift of a host whose speed changes over minutes.  The
# script prints every run, the per-round ratios pg_shield/none,
# pg_stat_statements/none and pg_shield/pg_stat_statements, their median and
# interquartile range, the median TPS per configuration and the machine, and
# judges the median pg_shield/none against the target and the 0.98 minimum.
#
# The same ratios are also computed from the CPU time the benchmark spent
# per transaction (the instance's backends and pgbench), which other load on
# the machine does not change.  Neither removes the variation of the host's
# own speed: on a virtual machine whose speed moves by tens of percent within
# seconds, per-round ratios spread by +-10% or more and the verdict says when
# its interquartile range straddles the threshold.  For a figure that does not
# depend on the host's speed at all, see test/bench/instructions.sh
# (instructions per statement under callgrind).
#
# Works as root on a fresh Debian 12 machine: installs what it needs
# (scripts/install-deps.sh) and runs the servers as the postgres user.  It
# builds pg_shield with strict flags into a private directory and loads it
# from there (extension_destdir and dynamic_library_path, see lib.sh): it
# installs nothing into the system PostgreSQL directories.  Unix sockets only,
# in a private temporary directory; everything is removed on exit.
#
#   test/bench/overhead.sh [--rounds N] [--duration SECONDS] [--scale S]
#                          [--warmup SECONDS] [--target RATIO] [--quick]
#
#   --rounds N        rounds; each runs every configuration once   (default 20)
#   --duration S      seconds per measured run                     (default 5)
#   --scale S         pgbench scale factor                         (default 10)
#   --warmup S        seconds of unmeasured run per instance, once (default 5)
#   --target R        pg_shield/none target for the verdict        (default 0.99,
#                     the per-statement target; 0.98 is also judged)
#   --quick           smoke test: 3 rounds, 2 s runs, 1 s warm-up, scale 1
#                     (also BENCH_QUICK=1); flags given after it still apply
#
# Environment: PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config),
# BENCH_QUICK=1 (same as --quick).
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
. "$src/test/bench/lib.sh"

rounds=20
duration=5
scale=10
warmup=5
target=0.99
minimum=0.98        # the least that is acceptable
clients=8
threads=2
shared_buffers=256MB

quick() { rounds=3; duration=2; warmup=1; scale=1; }
[ "${BENCH_QUICK:-0}" = 1 ] && quick

usage() { sed -n '/^#   test\/bench/,/^# BENCH_QUICK/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "overhead.sh: $1 needs a positive integer" >&2; exit 2; }; }

while [ $# -gt 0 ]; do
    case $1 in
        --rounds)   posint "$1" "${2:-}"; rounds=$2; shift 2 ;;
        --duration) posint "$1" "${2:-}"; duration=$2; shift 2 ;;
        --scale)    posint "$1" "${2:-}"; scale=$2; shift 2 ;;
        --warmup)   [[ ${2:-} =~ ^[0-9]+$ ]] || { echo "overhead.sh: --warmup needs an integer" >&2; exit 2; }
                    warmup=$2; shift 2 ;;
        --target)   [[ ${2:-} =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "overhead.sh: --target needs a number" >&2; exit 2; }
                    target=$2; shift 2 ;;
        --quick)    quick; shift ;;
        -h|--help)  usage ;;
        *)          echo "overhead.sh: unknown argument $1" >&2; usage ;;
    esac
done

configs=(none pg_shield pg_stat_statements)
preload_of() { case $1 in none) echo "" ;; *) echo "$1" ;; esac; }

# ---------------------------------------------------------------- setup

"$src/scripts/install-deps.sh" >&2

tmp=$(mktemp -d /tmp/pg_shield-bench.XXXXXX)
t_start=$(date +%s)

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    bench_stop_all
    if [ "$rc" -ne 0 ]; then
        local cfg
        for cfg in "${configs[@]}"; do
            if [ -f "$tmp/server-$cfg.log" ]; then
                echo "overhead.sh: failed (exit $rc); last lines of the $cfg server log:" >&2
                tail -n 15 "$tmp/server-$cfg.log" >&2 || true
            fi
        done
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bench_setup_common
bench_private_install

declare -A port data
for cfg in "${configs[@]}"; do
    bench_free_port "port[$cfg]"
    data[$cfg]="$tmp/data-$cfg"
    bench_initdb "${data[$cfg]}" "${port[$cfg]}" "$(preload_of "$cfg")" "$shared_buffers"
    bench_start "${data[$cfg]}" "$tmp/server-$cfg.log"
done

psql_su() { bench_psql "${port[$1]}" "$2" "${@:3}"; }

for cfg in "${configs[@]}"; do
    got=$(psql_su "$cfg" postgres -c "SHOW shared_preload_libraries")
    [ "$got" = "$(preload_of "$cfg")" ] ||
        { echo "overhead.sh: $cfg: expected shared_preload_libraries '$(preload_of "$cfg")', got '$got'" >&2; exit 1; }
    [ "$(psql_su "$cfg" postgres -c "SHOW compute_query_id")" = on ] ||
        { echo "overhead.sh: $cfg: compute_query_id is not on" >&2; exit 1; }
    bench_load_db "${port[$cfg]}" "$scale" "$cfg"
done
psql_su pg_shield bench -c "CREATE EXTENSION pg_shield"

# The instance called pg_shield runs the private build, and only it.
bench_check_private_so "${data[pg_shield]}" "${port[pg_shield]}" bench
for cfg in none pg_stat_statements; do
    pm=$(head -n 1 "${data[$cfg]}/postmaster.pid")
    if grep -q 'pg_shield\.so' "/proc/$pm/maps"; then
        echo "overhead.sh: the $cfg instance has pg_shield.so loaded" >&2; exit 1
    fi
done
pm=$(head -n 1 "${data[pg_stat_statements]}/postmaster.pid")
grep -q 'pg_stat_statements\.so' "/proc/$pm/maps" ||
    { echo "overhead.sh: the pg_stat_statements instance has not loaded pg_stat_statements.so" >&2; exit 1; }

# The target wants a role policy that applies but never binds.  Set one when this
# build has policies (max_concurrent far above the 8 clients).
policy="none (shield.set_role_policy not available in this build)"
if [ "$(psql_su pg_shield bench -c "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                    WHERE n.nspname = 'shield' AND p.proname = 'set_role_policy'")" != 0 ]; then
    psql_su pg_shield bench -c "SELECT shield.set_role_policy('bench_user', max_concurrent => 1000)" >/dev/null
    policy="role policy on bench_user: max_concurrent 1000 (applies, never binds)"
fi

# All of the data set in shared buffers, so no run pays for reads the
# previous one did not.
for cfg in "${configs[@]}"; do
    psql_su "$cfg" bench -c "SELECT sum(pg_prewarm(c)) FROM unnest(ARRAY['pgbench_accounts', 'pgbench_accounts_pkey',
        'pgbench_branches', 'pgbench_branches_pkey', 'pgbench_tellers', 'pgbench_tellers_pkey']::regclass[]) c" >/dev/null
done

pgbench_run() {   # config seconds logfile
    as_pg timeout $(($2 + 120)) pgbench -h "$tmp" -p "${port[$1]}" -U bench_user \
        -S -M prepared -c "$clients" -j "$threads" -T "$2" -n bench >"$3" 2>&1
}

# Disturbance check.  CPU jiffies the whole machine spent busy, minus those
# spent by this benchmark: the three postmasters and their exited children
# (backends are reaped by them) and this shell's exited children (pgbench).
# What remains is other load (plus the few jiffies of live auxiliary
# processes and interrupts), shown as a percentage of all CPUs over the run.
hz=$(getconf CLK_TCK)
ncpu=$(nproc)
machine_steal() { awk '/^cpu / {print $9; exit}' /proc/stat; }
proc_cpu() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13 + $14 + $15}'; }
own_cpu() {
    local c t=0
    for c in "${configs[@]}"; do t=$((t + $(proc_cpu "${pm[$c]}"))); done
    echo $((t + $(proc_cpu $$)))
}

# A backend's CPU time reaches its postmaster's counters only when the
# postmaster reaps it: bench_wait_reaped needs each postmaster's pid and
# its number of children when idle.
declare -A pm idle_children

tps_of() {
    sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$1"
}
tx_of() {
    sed -n 's/^number of transactions actually processed: \([0-9]*\).*$/\1/p' "$1"
}

# ---------------------------------------------------------------- header

pgver=$(psql_su none postgres -c "SELECT version()")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

echo "pg_shield overhead benchmark (per-statement overhead)"
echo
echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:     $(bench_machine_info)"
echo "postgres:    $pgver"
echo "pg_shield:   $(bench_pg_shield_version), private build loaded from $privlib"
echo "workload:    pgbench -S -M prepared -c $clients -j $threads -T $duration -n, as bench_user (not superuser),"
echo "             scale $scale (prewarmed), unix sockets, shared_buffers $shared_buffers, compute_query_id on"
echo "instances:   ${configs[*]}: running side by side, never restarted; one ${warmup}s warm-up each"
echo "policy:      $policy"
echo "runs:        $rounds rounds x ${#configs[@]} configs, order rotated per round"
echo "load avg:    $load_before (before)"
echo

# ---------------------------------------------------------------- runs

for cfg in "${configs[@]}"; do
    pm[$cfg]=$(head -n 1 "${data[$cfg]}/postmaster.pid")
    if [ "$warmup" -gt 0 ]; then
        pgbench_run "$cfg" "$warmup" "$tmp/warmup-$cfg.log" || { cat "$tmp/warmup-$cfg.log" >&2; exit 1; }
    fi
done
sleep 1
for cfg in "${configs[@]}"; do
    idle_children[$cfg]=$(pgrep -c -P "${pm[$cfg]}" || true)
done

declare -A results round_tps round_probe round_cpu
disturbed=""
probes=""
t_runs=$(date +%s)
printf '%-6s %-4s %-20s %12s %11s %7s %9s %7s %9s\n' round pos config tps "cpu us/tx" "busy%" "other%" "steal%" "probe ms"
n=${#configs[@]}
for ((r = 0; r < rounds; r++)); do
    for ((i = 0; i < n; i++)); do
        cfg=${configs[$(((r + i) % n))]}
        log="$tmp/run-$r-$cfg.log"
        b0=$(bench_machine_busy); s0=$(machine_steal); o0=$(own_cpu); t0=$(date +%s.%N)
        pgbench_run "$cfg" "$duration" "$log" || { cat "$log" >&2; exit 1; }
        b1=$(bench_machine_busy); s1=$(machine_steal); t1=$(date +%s.%N)
        bench_wait_reaped "${pm[$cfg]}" "${idle_children[$cfg]}"
        o1=$(own_cpu)
        cap=$(awk -v a="$t0" -v b="$t1" -v h="$hz" -v n="$ncpu" 'BEGIN {print (b - a) * h * n}')
        other=$(awk -v x=$(( (b1 - b0) - (o1 - o0) )) -v c="$cap" 'BEGIN {v = 100 * x / c; printf "%.1f", v < 0 ? 0 : v}')
        steal=$(awk -v x=$((s1 - s0)) -v c="$cap" 'BEGIN {printf "%.1f", 100 * x / c}')
        busy=$(awk -v x=$((b1 - b0)) -v c="$cap" 'BEGIN {printf "%.0f", 100 * x / c}')
        if awk -v o="$other" 'BEGIN {exit !(o > 15)}'; then disturbed+=" $((r + 1))/$cfg"; fi
        tps=$(tps_of "$log")
        [ -n "$tps" ] || { echo "overhead.sh: no TPS in pgbench output:" >&2; cat "$log" >&2; exit 1; }
        if grep -q 'number of failed transactions: [1-9]' "$log"; then
            echo "overhead.sh: pgbench reported failed transactions:" >&2; cat "$log" >&2; exit 1
        fi
        results[$cfg]+="$tps "
        round_tps[$r,$cfg]=$tps
        # CPU time the benchmark spent (this instance's backends, pgbench)
        # per transaction: what TPS is the inverse of on a saturated
        # machine, without the share that other load took.
        cpu_us=$(awk -v j=$((o1 - o0)) -v h="$hz" -v n="$(tx_of "$log")" 'BEGIN {printf "%.2f", j / h * 1e6 / n}')
        round_cpu[$r,$cfg]=$cpu_us
        probe=$(bench_cpu_probe)
        probes+="$probe "
        round_probe[$r]+="$probe "
        printf '%-6s %-4s %-20s %12.1f %11s %7s %9s %7s %9s\n' $((r + 1)) $((i + 1)) "$cfg" "$tps" "$cpu_us" "$busy" "$other" "$steal" "$probe"
    done
done
t_end=$(date +%s)

# Sanity: pg_shield really governed bench_user's statements.
shield_calls=$(psql_su pg_shield bench -c "SELECT coalesce(sum(calls), 0) FROM shield.role_stats
                                           WHERE rolname = 'bench_user' AND datname = 'bench'")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- summary

echo
echo "per-round paired ratios (the runs of a round are seconds apart):"
printf '%-6s %15s %25s %30s %14s\n' round "pg_shield/none" "pg_stat_statements/none" "pg_shield/pg_stat_statements" "probe ms"
declare -A paired
for ((r = 0; r < rounds; r++)); do
    a=$(bench_ratio "${round_tps[$r,pg_shield]}" "${round_tps[$r,none]}")
    b=$(bench_ratio "${round_tps[$r,pg_stat_statements]}" "${round_tps[$r,none]}")
    c=$(bench_ratio "${round_tps[$r,pg_shield]}" "${round_tps[$r,pg_stat_statements]}")
    paired[shield_none]+="$a "; paired[pgss_none]+="$b "; paired[shield_pgss]+="$c "
    pr=$(tr ' ' '\n' <<<"${round_probe[$r]}" | grep . | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%d-%d", lo, hi}')
    printf '%-6s %15s %25s %30s %14s\n' $((r + 1)) "$a" "$b" "$c" "$pr"
done

# The same from CPU time per transaction, as a throughput ratio (cost of the
# denominator's configuration / cost of the numerator's): insensitive to
# other load taking CPU, still sensitive to the host's speed.
for ((r = 0; r < rounds; r++)); do
    paired[cpu_shield_none]+="$(bench_ratio "${round_cpu[$r,none]}" "${round_cpu[$r,pg_shield]}") "
    paired[cpu_pgss_none]+="$(bench_ratio "${round_cpu[$r,none]}" "${round_cpu[$r,pg_stat_statements]}") "
    paired[cpu_shield_pgss]+="$(bench_ratio "${round_cpu[$r,pg_stat_statements]}" "${round_cpu[$r,pg_shield]}") "
done

echo
printf '%-30s %8s   %-22s %14s   %s\n' "ratio (paired per round)" "tps" "interquartile range" "1/(cpu per tx)" "interquartile range"
declare -A rmed rq1 rq3
for k in shield_none pgss_none shield_pgss cpu_shield_none cpu_pgss_none cpu_shield_pgss; do
    read -r rq1[$k] rmed[$k] rq3[$k] < <(bench_quartiles %.3f <<<"${paired[$k]}")
done
for k in shield_none pgss_none shield_pgss; do
    case $k in
        shield_none) label=pg_shield/none ;;
        pgss_none)   label=pg_stat_statements/none ;;
        shield_pgss) label=pg_shield/pg_stat_statements ;;
    esac
    printf '%-30s %8s   %-22s %14s   %s\n' "$label" "${rmed[$k]}" "${rq1[$k]}-${rq3[$k]}" \
        "${rmed[cpu_$k]}" "${rq1[cpu_$k]}-${rq3[cpu_$k]}"
done

echo
printf '%-20s %12s   %-22s %12s\n' config "median tps" "interquartile range" "cpu us/tx"
for cfg in "${configs[@]}"; do
    read -r q1 md q3 < <(bench_quartiles %.1f <<<"${results[$cfg]}")
    cpus=""
    for ((r = 0; r < rounds; r++)); do cpus+="${round_cpu[$r,$cfg]} "; done
    read -r _ cmd _ < <(bench_quartiles %.2f <<<"$cpus")
    printf '%-20s %12s   %-22s %12s\n' "$cfg" "$md" "$q1-$q3" "$cmd"
done

echo
echo "pg_shield accounted $shield_calls statements of bench_user (warm-up included)"
[ "${shield_calls:-0}" -gt 0 ] || echo "WARNING: pg_shield did not account bench_user's statements: it was not measured"
echo "load avg:    $load_after (after)"
echo "time:        $((t_end - t_start)) s in all, $((t_end - t_runs)) s of measured rounds"
echo "cpu us/tx: CPU time of the instance's backends and of pgbench per transaction"
echo "busy%:  all CPUs busy during the run"
echo "other%: busy CPU not spent by this benchmark's servers or pgbench (other processes, kernel threads)"
echo "steal%: taken by the hypervisor, where the VM reports it"
echo "probe:  ms of a fixed CPU loop after the run; it moves with the host's speed"
if [ -n "$disturbed" ]; then
    echo "WARNING: other load above 15% of the CPUs during run(s):$disturbed; figures may be disturbed"
fi
probe_spread=$(tr ' ' '\n' <<<"$probes" | grep . | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f", hi / lo}')
if awk -v s="$probe_spread" 'BEGIN {exit !(s > 1.15)}'; then
    echo "NOTE: host CPU speed varied over the benchmark (slowest probe / fastest = $probe_spread);"
    echo "      the paired per-round ratios are meant to cancel that, the medians of TPS are not"
fi
if awk -v l="${load_before%% *}" 'BEGIN {exit !(l > 0.5)}'; then
    echo "WARNING: 1-minute load average was ${load_before%% *} before the benchmark started"
fi

verdict() {   # key threshold label
    local v note=""
    v=$(awk -v r="${rmed[$1]}" -v t="$2" 'BEGIN {print (r + 0 >= t + 0) ? "MET" : "NOT MET"}')
    if awk -v a="${rq1[$1]}" -v b="${rq3[$1]}" -v t="$2" 'BEGIN {exit !(a + 0 < t + 0 && t + 0 < b + 0)}'; then
        note="  (interquartile range straddles $2: not resolved at this noise)"
    fi
    printf '  %-34s %s%s\n' "$3 >= $2:" "$v" "$note"
}
echo
echo "pg_shield/none by TPS = ${rmed[shield_none]} (median of $rounds paired rounds, interquartile range ${rq1[shield_none]}-${rq3[shield_none]})"
verdict shield_none "$target" "target (targets: test/bench/README.md)"
verdict shield_none "$minimum" "minimum"
echo "pg_shield/none by CPU per transaction = ${rmed[cpu_shield_none]} (interquartile range ${rq1[cpu_shield_none]}-${rq3[cpu_shield_none]})"
verdict cpu_shield_none "$target" "target (targets: test/bench/README.md)"
verdict cpu_shield_none "$minimum" "minimum"
