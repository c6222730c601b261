#!/usr/bin/env bash
# Admission control benchmark (targets in test/bench/README.md: per-statement overhead,
# queueing, fast rejection).
#
# Not a timed test and not part of the test suite: a script that measures,
# against two throwaway instances running side by side (private build, see
# lib.sh; Unix sockets in a private directory; everything removed on exit):
#
#   none     shared_preload_libraries = ''
#   shield   shared_preload_libraries = 'pg_shield', CREATE EXTENSION pg_shield
#
# 1. Per-statement overhead: pgbench -S -M prepared, 8 clients, as the
#    non-superuser bench_user, which has a role policy that applies but never
#    binds (max_concurrent 1000, max_cost 1e12, max_rate 1e9: the admission
#    fast path, the rate bucket and the cost check all run), shield vs none.
#    Target: TPS ratio >= 0.99.  With valgrind installed, also the backend's
#    instructions per statement of both (callgrind, one client; see the
#    bench_cg_* functions of lib.sh), which do not depend on the host's speed,
#    and the TPS ratio they imply (as instructions.sh estimates it, with the
#    backends' user-space share of the CPU measured in the TPS runs).
#    instructions.sh itself always declares a max_concurrent-only policy.
# 2. Queueing: the shield instance with pg_shield.max_active = 4 vs 0
#    (switched by ALTER SYSTEM + reload between runs), 32 clients of
#    pgbench -S -M prepared as bench_user.  Target: TPS ratio >= 0.95.
#    Diagnostics: CPU per transaction, context switches per transaction,
#    share of statements queued and their mean wait (shield.role_stats), and
#    one extra run at each setting sampling pg_stat_activity, shield.activity
#    and shield.status (optionally profiled with perf, PERF=1).
# 3. Fast rejection: client-side latency (psql \timing, simple protocol, one
#    session, LAT_STATEMENTS statements after LAT_WARMUP unmeasured ones) of
#      - an admitted statement (bench_user, the policy of 1.),
#      - a rate-limited one (rate_user, max_rate 0.001: every statement after
#        the first is rejected with 53S04),
#      - a queue-full one (full_user, max_concurrent 1, queue_timeout 0, while
#        another full_user session holds the slot in pg_sleep: 53S01),
#      - one an open circuit breaker rejects (breaker_user: a policy on the
#        statement's fingerprint for that role with breaker_failures 1, a
#        cooldown of an hour and a deadline of a microsecond, so that the
#        first statement fails by its deadline and opens the breaker, and
#        every later one is rejected: 53S05),
#      - a shed one (shed_user, priority low, while the instance is
#        overloaded: pg_shield.max_active 1 held by a full_user session in
#        pg_sleep, a wait_user statement waiting behind it, a target queue
#        delay of 10 ms over intervals of 100 ms: 53S03).
#    Target: p99 of every rejection < 1 ms.  The rejected statements are
#    counted (psql's errors by SQLSTATE and shield.role_stats).
#
# Every ratio is paired: each round runs both sides seconds apart, in an
# order that alternates every round, and the summary gives the median of the
# per-round ratios with its interquartile range (this host's speed drifts
# by up to 2x within minutes; pairing cancels most of it).
#
# PASS/FAIL compares the median with the target; "IQR straddles" means the
# interquartile range of the paired ratios contains the target, so the
# verdict is not resolved at this noise.
#
# Runs as root (servers as the postgres user).  Environment (defaults finish
# in about 7.5 minutes on 2 vCPUs):
#
#   ROUNDS=8            paired rounds of 1. and of 2.
#   SECONDS_PER_RUN=8   seconds of each measured pgbench run
#   WARMUP_SECONDS=3    unmeasured pgbench run per side, once
#   SCALE=10            pgbench scale factor (data prewarmed into shared_buffers)
#   LAT_STATEMENTS=5000 measured statements per latency series of 3.
#   LAT_WARMUP=200      unmeasured statements before them
#   INSTRUCTIONS=1      0 skips the callgrind count of 1.
#   CG_N1=1000 CG_N2=4000 CG_WARMUP=500   transactions of the callgrind runs
#   PG_CONFIG           default /usr/lib/postgresql/15/bin/pg_config
#   PARTS="1 2 3"       which parts to run (the summary shows those)
#   PERF=1              also profile the backends with perf during the sampled
#                       runs of 2. (needs perf; prints the top symbols of each)
#   KEEP_TMP=1          keep the temporary directory (logs, pgbench outputs)
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
. "$src/test/bench/lib.sh"

ROUNDS=${ROUNDS:-8}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
WARMUP_SECONDS=${WARMUP_SECONDS:-3}
SCALE=${SCALE:-10}
LAT_STATEMENTS=${LAT_STATEMENTS:-5000}
LAT_WARMUP=${LAT_WARMUP:-200}
INSTRUCTIONS=${INSTRUCTIONS:-1}
PARTS=${PARTS:-1 2 3}
PERF=${PERF:-0}
CG_N1=${CG_N1:-1000}
CG_N2=${CG_N2:-4000}
CG_WARMUP=${CG_WARMUP:-500}

for v in ROUNDS SECONDS_PER_RUN SCALE LAT_STATEMENTS CG_N1 CG_N2 CG_WARMUP; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "admission.sh: $v must be a positive integer (got '${!v}')" >&2; exit 2; }
done
for v in WARMUP_SECONDS LAT_WARMUP INSTRUCTIONS PERF; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "admission.sh: $v must be a non-negative integer (got '${!v}')" >&2; exit 2; }
done
for p in $PARTS; do
    [[ $p =~ ^[123]$ ]] || { echo "admission.sh: PARTS lists parts among 1 2 3 (got '$PARTS')" >&2; exit 2; }
done
want() { [[ " $PARTS " == *" $1 "* ]]; }
want 1 || INSTRUCTIONS=0
[ "$CG_N2" -gt "$CG_N1" ] || { echo "admission.sh: CG_N2 must be larger than CG_N1" >&2; exit 2; }

target_overhead=0.99
target_queue=0.95
target_p99_ms=1
threads=2
shared_buffers=256MB
policy_args="max_concurrent => 1000, max_cost => 1e12, max_rate => 1e9"
lat_sql="SELECT abalance FROM pgbench_accounts WHERE aid = 1;"

if [ "$PERF" != 0 ] && ! command -v perf >/dev/null; then
    echo "admission.sh: perf not found: PERF=1 ignored (apt-get install linux-perf)" >&2
    PERF=0
fi
if [ "$INSTRUCTIONS" != 0 ] && ! command -v valgrind >/dev/null; then
    echo "admission.sh: valgrind not found: skipping the instruction count (apt-get install valgrind)" >&2
    INSTRUCTIONS=0
fi

# ---------------------------------------------------------------- setup

"$src/scripts/install-deps.sh" >&2

tmp=$(mktemp -d /tmp/pg_shield-admission.XXXXXX)
t_start=$(date +%s)
holder_pid=""
waiter_pid=""
t_p1=-; t_p2=-; probes=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    bench_stop_all
    [ -n "$holder_pid" ] && wait "$holder_pid" 2>/dev/null
    [ -n "$waiter_pid" ] && wait "$waiter_pid" 2>/dev/null
    if [ "$rc" -ne 0 ]; then
        local c
        for c in none shield; do
            if [ -f "$tmp/server-$c.log" ]; then
                echo "admission.sh: failed (exit $rc); last lines of the $c server log:" >&2
                tail -n 15 "$tmp/server-$c.log" >&2 || true
            fi
        done
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "admission.sh: kept $tmp" >&2; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bench_setup_common
bench_private_install

configs=(none shield)
declare -A port data pm idle_children
for c in "${configs[@]}"; do
    bench_free_port "port[$c]"
    data[$c]="$tmp/data-$c"
    preload=""; [ "$c" = shield ] && preload=pg_shield
    bench_initdb "${data[$c]}" "${port[$c]}" "$preload" "$shared_buffers"
    bench_start "${data[$c]}" "$tmp/server-$c.log"
done

psql_su() { bench_psql "${port[$1]}" "$2" "${@:3}"; }
die() { echo "admission.sh: $*" >&2; exit 1; }

for c in "${configs[@]}"; do
    bench_load_db "${port[$c]}" "$SCALE" "$c"
done

psql_su shield bench >/dev/null <<SQL
CREATE EXTENSION pg_shield;
CREATE ROLE rate_user LOGIN NOSUPERUSER NOINHERIT;
CREATE ROLE full_user LOGIN NOSUPERUSER NOINHERIT;
CREATE ROLE breaker_user LOGIN NOSUPERUSER NOINHERIT;
CREATE ROLE shed_user LOGIN NOSUPERUSER NOINHERIT;
CREATE ROLE wait_user LOGIN NOSUPERUSER NOINHERIT;
GRANT SELECT ON pgbench_accounts TO rate_user, full_user, breaker_user, shed_user;
SELECT shield.set_role_policy('bench_user', $policy_args);
SELECT shield.set_role_policy('rate_user', max_rate => 0.001);
SELECT shield.set_role_policy('full_user', max_concurrent => 1, queue_timeout => '0');
SELECT shield.set_role_policy('shed_user', priority => 'low');
SELECT shield.set_role_policy('wait_user', queue_timeout => '1 hour');
SELECT shield.set_query_policy('${lat_sql%;}', role => 'breaker_user', breaker_failures => 1,
                               breaker_cooldown => '1 hour', deadline => '1 microsecond');
SQL
[ "$(psql_su shield bench -c "SHOW pg_shield.max_active")" = 0 ] || die "pg_shield.max_active is not 0 by default"

# The shield instance runs the private build; the none instance has no pg_shield.
bench_check_private_so "${data[shield]}" "${port[shield]}" bench
pm[none]=$(head -n 1 "${data[none]}/postmaster.pid")
pm[shield]=$(head -n 1 "${data[shield]}/postmaster.pid")
! grep -q 'pg_shield\.so' "/proc/${pm[none]}/maps" || die "the none instance has pg_shield.so loaded"
[ "$(psql_su none bench -c "SHOW shared_preload_libraries")" = "" ] || die "none: shared_preload_libraries is not empty"

prewarm() {
    psql_su "$1" bench -c "SELECT sum(pg_prewarm(c)) FROM unnest(ARRAY['pgbench_accounts', 'pgbench_accounts_pkey',
        'pgbench_branches', 'pgbench_branches_pkey', 'pgbench_tellers', 'pgbench_tellers_pkey']::regclass[]) c" >/dev/null
}
for c in "${configs[@]}"; do prewarm "$c"; done

# ---------------------------------------------------------------- helpers

hz=$(getconf CLK_TCK)
ncpu=$(nproc)
machine_ctxt() { awk '/^ctxt / {print $2; exit}' /proc/stat; }

pgbench_run() {   # instance clients seconds logfile
    as_pg timeout $(($3 + 120)) pgbench -h "$tmp" -p "${port[$1]}" -U bench_user \
        -S -M prepared -c "$2" -j "$threads" -T "$3" -n bench >"$4" 2>&1
}

# measured_run INSTANCE CLIENTS LOGFILE: one measured pgbench run; sets
# r_tps, r_cpu (us of CPU per transaction: the instance's backends and
# pgbench), r_busy (% of all CPUs busy), r_ctxt (context switches per
# transaction, whole machine), r_bu / r_all (backend user / all jiffies).
measured_run() {
    local c=$1 log=$3 b0 b1 x0 x1 t0 t1 bu0 bs0 bu1 bs1 pu0 ps0 pu1 ps1 tx
    bench_wait_reaped "${pm[$c]}" "${idle_children[$c]}"
    read -r bu0 bs0 < <(bench_children_cpu "${pm[$c]}")
    read -r pu0 ps0 < <(bench_children_cpu $$)
    b0=$(bench_machine_busy); x0=$(machine_ctxt); t0=$(date +%s.%N)
    pgbench_run "$c" "$2" "$SECONDS_PER_RUN" "$log" || { cat "$log" >&2; die "pgbench failed"; }
    b1=$(bench_machine_busy); x1=$(machine_ctxt); t1=$(date +%s.%N)
    bench_wait_reaped "${pm[$c]}" "${idle_children[$c]}"
    read -r bu1 bs1 < <(bench_children_cpu "${pm[$c]}")
    read -r pu1 ps1 < <(bench_children_cpu $$)
    if grep -Eq 'aborted|number of failed transactions: [1-9]' "$log"; then
        cat "$log" >&2; die "pgbench reported aborted clients or failed transactions"
    fi
    r_tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$log")
    tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*$/\1/p' "$log")
    [ -n "$r_tps" ] && [ -n "$tx" ] && [ "$tx" -gt 0 ] || { cat "$log" >&2; die "no TPS in pgbench output"; }
    r_bu=$((bu1 - bu0))
    r_all=$(((bu1 - bu0) + (bs1 - bs0) + (pu1 - pu0) + (ps1 - ps0)))
    r_cpu=$(awk -v j="$r_all" -v h="$hz" -v n="$tx" 'BEGIN {printf "%.2f", j / h * 1e6 / n}')
    r_busy=$(awk -v x=$((b1 - b0)) -v a="$t0" -v b="$t1" -v h="$hz" -v n="$ncpu" 'BEGIN {printf "%.0f", 100 * x / ((b - a) * h * n)}')
    r_ctxt=$(awk -v x=$((x1 - x0)) -v n="$tx" 'BEGIN {printf "%.2f", x / n}')
}

ge() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a + 0 >= b + 0)}'; }

# verdict MEDIAN Q1 Q3 TARGET: PASS/FAIL, noting an IQR that straddles it.
verdict() {
    local v=FAIL
    ge "$1" "$4" && v=PASS
    if awk -v a="$2" -v b="$3" -v t="$4" 'BEGIN {exit !(a + 0 < t + 0 && t + 0 < b + 0)}'; then
        v+=" (IQR straddles $4: not resolved at this noise)"
    fi
    echo "$v"
}

set_max_active() {
    local k
    psql_su shield postgres -c "ALTER SYSTEM SET pg_shield.max_active = $1" -c "SELECT pg_reload_conf()" >/dev/null
    for ((k = 0; k < 200; k++)); do
        [ "$(psql_su shield bench -c "SHOW pg_shield.max_active")" = "$1" ] && return 0
        sleep 0.05
    done
    die "pg_shield.max_active did not become $1 after a reload"
}

role_counters() {   # role: "admitted queued queue_ms rejected"
    psql_su shield bench -F ' ' -c "SELECT coalesce(sum(admitted), 0), coalesce(sum(queued), 0),
        coalesce(sum(queue_ms), 0), coalesce(sum(rejected), 0)
        FROM shield.role_stats WHERE rolname = '$1' AND datname = 'bench'"
}

# ---------------------------------------------------------------- header

pgver=$(psql_su none postgres -c "SELECT version()")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "pg_shield admission control benchmark (targets: test/bench/README.md)"
echo
echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:     $(bench_machine_info)"
echo "postgres:    $pgver"
echo "pg_shield:   $(bench_pg_shield_version), private build loaded from $privlib"
echo "parameters:  PARTS=\"$PARTS\" ROUNDS=$ROUNDS SECONDS_PER_RUN=$SECONDS_PER_RUN WARMUP_SECONDS=$WARMUP_SECONDS SCALE=$SCALE"
echo "             LAT_STATEMENTS=$LAT_STATEMENTS LAT_WARMUP=$LAT_WARMUP INSTRUCTIONS=$INSTRUCTIONS CG_N1=$CG_N1 CG_N2=$CG_N2"
echo "workload:    pgbench -S -M prepared -j $threads -T $SECONDS_PER_RUN -n as bench_user (not superuser), prewarmed,"
echo "             unix sockets, shared_buffers $shared_buffers, compute_query_id on (both instances)"
echo "policy:      bench_user: $policy_args (applies, never binds)"
echo "load avg:    $load_before (before)"

# ---------------------------------------------------------------- 1. overhead

if want 1; then
    for c in "${configs[@]}"; do
        [ "$WARMUP_SECONDS" -gt 0 ] && { pgbench_run "$c" 8 "$WARMUP_SECONDS" "$tmp/warmup-$c.log" || { cat "$tmp/warmup-$c.log" >&2; exit 1; }; }
    done
    sleep 1
    for c in "${configs[@]}"; do idle_children[$c]=$(pgrep -c -P "${pm[$c]}" || true); done

    echo
    echo "== 1. per-statement overhead: 8 clients, shield (policy) vs none"
    printf '%-6s %-8s %10s %10s %6s %9s %9s\n' round config tps "cpu us/tx" busy% "ctxt/tx" "probe ms"
    o_ratios=""; o_cpu_ratios=""; o_shield_tps=""; o_none_tps=""; o_bu=0; o_all=0
    c0=$(role_counters bench_user)
    t_p1=$(date +%s)
    for ((r = 0; r < ROUNDS; r++)); do
        if ((r % 2 == 0)); then order=(none shield); else order=(shield none); fi
        declare -A tps cpu
        for c in "${order[@]}"; do
            measured_run "$c" 8 "$tmp/o-$r-$c.log"
            tps[$c]=$r_tps; cpu[$c]=$r_cpu
            [ "$c" = shield ] && { o_bu=$((o_bu + r_bu)); o_all=$((o_all + r_all)); }
            printf '%-6s %-8s %10.1f %10s %6s %9s\n' $((r + 1)) "$c" "$r_tps" "$r_cpu" "$r_busy" "$r_ctxt"
        done
        p=$(bench_cpu_probe); probes+="$p "
        printf '%-6s %-8s %10s %10s %6s %9s %9s\n' "" "" "" "" "" "" "$p"
        o_ratios+="$(bench_ratio "${tps[shield]}" "${tps[none]}") "
        o_cpu_ratios+="$(bench_ratio "${cpu[none]}" "${cpu[shield]}") "
        o_shield_tps+="${tps[shield]} "; o_none_tps+="${tps[none]} "
    done
    t_p1=$(($(date +%s) - t_p1))
    c1=$(role_counters bench_user)
    read -r oa0 oq0 _ orj0 <<<"$c0"; read -r oa1 oq1 _ orj1 <<<"$c1"
    echo "per-round shield/none TPS: $o_ratios"
    read -r oq1r omed oq3r < <(bench_quartiles %.3f <<<"$o_ratios")
    read -r ocq1 ocmed ocq3 < <(bench_quartiles %.3f <<<"$o_cpu_ratios")
    read -r _ o_none_med _ < <(bench_quartiles %.1f <<<"$o_none_tps")
    read -r _ o_shield_med _ < <(bench_quartiles %.1f <<<"$o_shield_tps")
    o_share=$(awk -v a="$o_bu" -v b="$o_all" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')
    echo "bench_user statements admitted by pg_shield during the rounds: $((oa1 - oa0)), queued $((oq1 - oq0)), rejected $((orj1 - orj0))"
    [ $((oa1 - oa0)) -gt 0 ] || die "pg_shield admitted none of bench_user's statements: nothing was measured"
    [ $((oq1 - oq0)) -eq 0 ] && [ $((orj1 - orj0)) -eq 0 ] || die "the non-binding policy queued or rejected statements"
fi

# ---------------------------------------------------------------- 2. queueing

if want 2; then
    echo
    echo "== 2. queueing: 32 clients, shield instance, pg_shield.max_active 4 vs 0"
    for ma in 0 4; do
        set_max_active "$ma"
        [ "$WARMUP_SECONDS" -gt 0 ] && { pgbench_run shield 32 "$WARMUP_SECONDS" "$tmp/warmup-ma$ma.log" || { cat "$tmp/warmup-ma$ma.log" >&2; exit 1; }; }
    done
    sleep 1
    idle_children[shield]=$(pgrep -c -P "${pm[shield]}" || true)
    printf '%-6s %-12s %10s %10s %6s %9s %9s %9s %9s\n' round config tps "cpu us/tx" busy% "ctxt/tx" "queued%" "q ms" "probe ms"
    q_ratios=""; q_cpu_ratios=""; q_tps0=""; q_tps4=""; q_ctxt0=""; q_ctxt4=""; q_busy0=""; q_busy4=""
    q_adm=0; q_que=0; q_qms=0; q_rej=0; q_que0=0
    t_p2=$(date +%s)
    for ((r = 0; r < ROUNDS; r++)); do
        if ((r % 2 == 0)); then order=(0 4); else order=(4 0); fi
        declare -A tps cpu
        for ma in "${order[@]}"; do
            set_max_active "$ma"
            read -r a0 q0 m0 j0 <<<"$(role_counters bench_user)"
            measured_run shield 32 "$tmp/q-$r-$ma.log"
            read -r a1 q1 m1 j1 <<<"$(role_counters bench_user)"
            tps[$ma]=$r_tps; cpu[$ma]=$r_cpu
            qpct=$(awk -v q=$((q1 - q0)) -v a=$((a1 - a0)) 'BEGIN {printf "%.1f", (a > 0 ? 100 * q / a : 0)}')
            qms=$(awk -v m1="$m1" -v m0="$m0" -v q=$((q1 - q0)) 'BEGIN {printf "%.3f", (q > 0 ? (m1 - m0) / q : 0)}')
            if [ "$ma" = 4 ]; then
                q_adm=$((q_adm + a1 - a0)); q_que=$((q_que + q1 - q0)); q_rej=$((q_rej + j1 - j0))
                q_qms=$(awk -v t="$q_qms" -v m1="$m1" -v m0="$m0" 'BEGIN {printf "%.3f", t + m1 - m0}')
                q_ctxt4+="$r_ctxt "; q_busy4+="$r_busy "; q_tps4+="$r_tps "
            else
                q_que0=$((q_que0 + q1 - q0)); q_rej=$((q_rej + j1 - j0))
                q_ctxt0+="$r_ctxt "; q_busy0+="$r_busy "; q_tps0+="$r_tps "
            fi
            printf '%-6s %-12s %10.1f %10s %6s %9s %9s %9s\n' $((r + 1)) "max_active $ma" "$r_tps" "$r_cpu" "$r_busy" "$r_ctxt" "$qpct" "$qms"
        done
        p=$(bench_cpu_probe); probes+="$p "
        printf '%-6s %-12s %10s %10s %6s %9s %9s %9s %9s\n' "" "" "" "" "" "" "" "" "$p"
        q_ratios+="$(bench_ratio "${tps[4]}" "${tps[0]}") "
        q_cpu_ratios+="$(bench_ratio "${cpu[0]}" "${cpu[4]}") "
    done
    t_p2=$(($(date +%s) - t_p2))
    echo "per-round max_active 4/0 TPS: $q_ratios"
    read -r qq1 qmed qq3 < <(bench_quartiles %.3f <<<"$q_ratios")
    read -r qcq1 qcmed qcq3 < <(bench_quartiles %.3f <<<"$q_cpu_ratios")
    [ "$q_que" -gt 0 ] || die "max_active 4 with 32 clients queued no statement: the limit was not in force"
    [ "$q_que0" -eq 0 ] || die "max_active 0 queued statements"
    [ "$q_rej" -eq 0 ] || die "statements were rejected during the queueing runs"

    # One more run at each setting (not counted), sampling what the clients
    # wait on: pg_stat_activity, shield.activity and shield.status, about four
    # times a second, from one superuser session (exempt).
    samples=$((SECONDS_PER_RUN * 4))
    {
        for ((k = 1; k <= samples; k++)); do
            echo "SELECT '$k pg_stat_activity ' || coalesce(wait_event_type, '-') || ':' || coalesce(wait_event, '-') || ' ' || state
                  FROM pg_stat_activity WHERE usename = 'bench_user';"
            echo "SELECT '$k shield.activity ' || state FROM shield.activity WHERE rolname = 'bench_user';"
            echo "SELECT '$k shield.status active ' || active || ' queued ' || queued FROM shield.status;"
            echo "SELECT pg_sleep(0.1);"
        done
    } >"$tmp/sampler.sql"
    for ma in 4 0; do
        set_max_active "$ma"
        sleep 0.5
        pgbench_run shield 32 "$SECONDS_PER_RUN" "$tmp/q-sampled-$ma.log" &
        bench_job=$!
        sleep 1
        perf_job=""
        if [ "$PERF" = 1 ]; then
            # the client backends only (their process title starts with the user name)
            pids=$(pgrep -d, -P "${pm[shield]}" -f '^postgres: bench_user ' || true)
            [ -n "$pids" ] || die "no bench_user backend to profile"
            perf record -F 999 -g -o "$tmp/perf-$ma.data" -p "$pids" -- sleep $((SECONDS_PER_RUN > 4 ? SECONDS_PER_RUN - 3 : 1)) \
                >"$tmp/perf-$ma.log" 2>&1 &
            perf_job=$!
        fi
        psql_su shield bench -f "$tmp/sampler.sql" >"$tmp/sampler-$ma.out"
        [ -z "$perf_job" ] || wait "$perf_job" || { cat "$tmp/perf-$ma.log" >&2; die "perf record failed"; }
        wait "$bench_job" || { cat "$tmp/q-sampled-$ma.log" >&2; die "pgbench failed (sampled run)"; }
    done
fi

# ---------------------------------------------------------------- 3. rejection latency

if want 3; then
    echo
    echo "== 3. rejection latency (client side, psql \\timing, simple protocol, one session)"

    # latency_series ROLE NAME: LAT_WARMUP + LAT_STATEMENTS statements; the
    # times of the last LAT_STATEMENTS go to $tmp/lat-NAME.ms, psql's errors
    # to $tmp/lat-NAME.err.
    latency_series() {
        local role=$1 name=$2 n=$((LAT_WARMUP + LAT_STATEMENTS)) k
        {
            echo '\timing on'
            echo '\set VERBOSITY sqlstate'
            for ((k = 0; k < n; k++)); do echo "$lat_sql"; done
        } >"$tmp/lat-$name.sql"
        as_pg psql -X -q -h "$tmp" -p "${port[shield]}" -U "$role" -d bench -At -f "$tmp/lat-$name.sql" \
            >"$tmp/lat-$name.out" 2>"$tmp/lat-$name.err" || true
        awk '/^Time: / {print $2}' "$tmp/lat-$name.out" | tail -n "$LAT_STATEMENTS" >"$tmp/lat-$name.ms"
        [ "$(wc -l <"$tmp/lat-$name.ms")" -eq "$LAT_STATEMENTS" ] ||
            { head "$tmp/lat-$name.err" >&2; die "$name: expected $LAT_STATEMENTS timings, got $(wc -l <"$tmp/lat-$name.ms")"; }
    }
    errors_of() { grep -c "^psql:.*ERROR:  $2\$" "$tmp/lat-$1.err" || true; }
    other_errors() { grep -v "ERROR:  $2\$" "$tmp/lat-$1.err" | grep -c . || true; }
    pct() {   # name: "p50 p90 p99 max" in ms (nearest rank)
        sort -g "$tmp/lat-$1.ms" | awk '{v[NR] = $1}
            function q(p,   i) { i = int(p * NR); if (i < p * NR) i++; if (i < 1) i = 1; return v[i] }
            END { printf "%.3f %.3f %.3f %.3f\n", q(0.50), q(0.90), q(0.99), v[NR] }'
    }

    n_all=$((LAT_WARMUP + LAT_STATEMENTS))

    # hold_full_user_slot: a full_user session in pg_sleep holds its slot
    # (and one of the instance's) until cancelled; returns once it runs.
    hold_full_user_slot() {
        local k
        as_pg psql -X -q -h "$tmp" -p "${port[shield]}" -U full_user -d bench -c "SELECT pg_sleep(3600)" \
            >"$tmp/holder.out" 2>&1 &
        holder_pid=$!
        for ((k = 0; k < 200; k++)); do
            [ "$(psql_su shield bench -c "SELECT count(*) FROM shield.activity WHERE rolname = 'full_user' AND state = 'running'")" = 1 ] && return 0
            sleep 0.05
        done
        die "the full_user holder session never showed as running in shield.activity"
    }

    # admitted, for comparison
    latency_series bench_user admitted
    [ ! -s "$tmp/lat-admitted.err" ] || { head "$tmp/lat-admitted.err" >&2; die "admitted series had errors"; }

    # rate limit: the first statement takes the bucket's only token
    read -r _ _ _ rj0 <<<"$(role_counters rate_user)"
    latency_series rate_user rate
    read -r _ _ _ rj1 <<<"$(role_counters rate_user)"
    rate_rej=$(errors_of rate 53S04)
    [ "$rate_rej" -eq $((n_all - 1)) ] && [ "$(other_errors rate 53S04)" -eq 0 ] ||
        { head "$tmp/lat-rate.err" >&2; die "rate series: expected $((n_all - 1)) errors 53S04, got $rate_rej"; }

    # queue full: another full_user session holds the only slot
    hold_full_user_slot
    read -r _ _ _ fj0 <<<"$(role_counters full_user)"
    latency_series full_user full
    read -r _ _ _ fj1 <<<"$(role_counters full_user)"
    psql_su shield bench -c "SELECT pg_cancel_backend(pid) FROM shield.activity WHERE rolname = 'full_user'" >/dev/null
    wait "$holder_pid" || true
    holder_pid=""
    full_rej=$(errors_of full 53S01)
    [ "$full_rej" -eq "$n_all" ] && [ "$(other_errors full 53S01)" -eq 0 ] ||
        { head "$tmp/lat-full.err" >&2; die "queue-full series: expected $n_all errors 53S01, got $full_rej"; }

    # breaker open: the first statement fails by its deadline (57014) and
    # opens the breaker; every later one is rejected (53S05)
    read -r _ _ _ bj0 <<<"$(role_counters breaker_user)"
    latency_series breaker_user breaker
    read -r _ _ _ bj1 <<<"$(role_counters breaker_user)"
    psql_su shield bench -c "SELECT shield.reset_breaker(shield.fingerprint('${lat_sql%;}'))" >/dev/null
    brk_rej=$(errors_of breaker 53S05)
    [ "$brk_rej" -eq $((n_all - 1)) ] && [ "$(errors_of breaker 57014)" -eq 1 ] ||
        { head "$tmp/lat-breaker.err" >&2; die "breaker series: expected 1 error 57014 and $((n_all - 1)) errors 53S05, got $brk_rej"; }

    # shed: the instance's one slot is held and a statement waits behind
    # it, so the wait for an instance slot stands and low is shed
    psql_su shield postgres -c "ALTER SYSTEM SET pg_shield.target_queue_delay = 10" \
        -c "ALTER SYSTEM SET pg_shield.overload_interval = 100" >/dev/null
    set_max_active 1
    hold_full_user_slot
    as_pg psql -X -q -h "$tmp" -p "${port[shield]}" -U wait_user -d bench -c "SELECT 1" \
        >"$tmp/waiter.out" 2>&1 &
    waiter_pid=$!
    for ((k = 0; k < 200; k++)); do
        [ "$(psql_su shield bench -c "SELECT shedding <> 'none' FROM shield.status")" = t ] && break
        sleep 0.05
    done
    [ "$k" -lt 200 ] || die "the instance never became overloaded"
    sj0=$(psql_su shield bench -c "SELECT coalesce(sum(shed), 0) FROM shield.role_stats WHERE rolname = 'shed_user'")
    latency_series shed_user shed
    sj1=$(psql_su shield bench -c "SELECT coalesce(sum(shed), 0) FROM shield.role_stats WHERE rolname = 'shed_user'")
    psql_su shield bench -c "SELECT pg_cancel_backend(pid) FROM shield.activity WHERE rolname IN ('full_user', 'wait_user')" >/dev/null
    wait "$holder_pid" "$waiter_pid" || true
    holder_pid=""
    waiter_pid=""
    psql_su shield postgres -c "ALTER SYSTEM RESET pg_shield.target_queue_delay" \
        -c "ALTER SYSTEM RESET pg_shield.overload_interval" >/dev/null
    set_max_active 0
    shed_rej=$(errors_of shed 53S03)
    [ "$shed_rej" -eq "$n_all" ] && [ "$(other_errors shed 53S03)" -eq 0 ] ||
        { head "$tmp/lat-shed.err" >&2; die "shed series: expected $n_all errors 53S03, got $shed_rej"; }

    printf '%-44s %9s %9s %9s %9s %22s\n' "series ($LAT_STATEMENTS statements each)" "p50 ms" "p90 ms" "p99 ms" "max ms" "rejected (psql/shield)"
    read -r a50 a90 a99 amax < <(pct admitted)
    read -r r50 r90 r99 rmax < <(pct rate)
    read -r f50 f90 f99 fmax < <(pct full)
    printf '%-44s %9s %9s %9s %9s %22s\n' "admitted (bench_user, non-binding policy)" "$a50" "$a90" "$a99" "$amax" "0/-"
    printf '%-44s %9s %9s %9s %9s %22s\n' "rate limit 53S04 (max_rate 0.001)" "$r50" "$r90" "$r99" "$rmax" "$rate_rej/$((rj1 - rj0))"
    printf '%-44s %9s %9s %9s %9s %22s\n' "queue full 53S01 (max_concurrent 1, qt 0)" "$f50" "$f90" "$f99" "$fmax" "$full_rej/$((fj1 - fj0))"
    read -r b50 b90 b99 bmax < <(pct breaker)
    printf '%-44s %9s %9s %9s %9s %22s\n' "breaker open 53S05 (breaker_failures 1)" "$b50" "$b90" "$b99" "$bmax" "$brk_rej/$((bj1 - bj0))"
    read -r s50 s90 s99 smax < <(pct shed)
    printf '%-44s %9s %9s %9s %9s %22s\n' "shed 53S03 (low, instance overloaded)" "$s50" "$s90" "$s99" "$smax" "$shed_rej/$((sj1 - sj0))"
    echo "statement: $lat_sql (parsed and planned before the rejection: the cost check needs the plan)"
fi

# ---------------------------------------------------------------- 4. instructions (part of 1.)

cg_note="skipped (INSTRUCTIONS=0 or no valgrind)"
if [ "$INSTRUCTIONS" != 0 ]; then
    echo
    echo "== 1b. instructions per statement under callgrind (pgbench -S -M prepared -c 1 --random-seed=1 as bench_user)"
    t_cg=$(date +%s)
    for c in "${configs[@]}"; do
        as_pg pg_ctl -D "${data[$c]}" -m fast -w -t 120 stop >/dev/null
        bench_cg_per_statement "${data[$c]}" "${port[$c]}" bench bench_user "$CG_N1" "$CG_N2" "$CG_WARMUP" \
            "$tmp/cg-$c" "$tmp/server-$c.log" >"$tmp/cg-$c.txt"
        read -r cg_all cg_wait cg_net <"$tmp/cg-$c.txt"
        declare "cg_$c=$cg_net"
        printf '%-8s all %10s  waits %8s  instr/stmt %10s\n' "$c" "$cg_all" "$cg_wait" "$cg_net"
    done
    t_cg=$(($(date +%s) - t_cg))
    cg_delta=$(awk -v a="$cg_shield" -v b="$cg_none" 'BEGIN {printf "%+.1f", a - b}')
    cg_ratio=$(awk -v a="$cg_shield" -v b="$cg_none" 'BEGIN {printf "%.4f", a / b}')
    cg_est=$(awk -v a="$cg_shield" -v b="$cg_none" -v f="$o_share" 'BEGIN {printf "%.4f", 1 - (a / b - 1) * f}')
    echo "(instr/stmt = (I(-t $CG_N2) - I(-t $CG_N1)) / $((CG_N2 - CG_N1)) less WaitEventSetWait; ${t_cg} s)"
    cg_note="none $cg_none, shield $cg_shield instructions/statement ($cg_delta, cost ratio $cg_ratio); estimated TPS ratio $cg_est
   (1 - (cost ratio - 1) x $o_share, the backends' user-space share of the CPU per transaction measured in 1.)"
fi

# ---------------------------------------------------------------- summary

t_end=$(date +%s)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
probe_spread=$(tr ' ' '\n' <<<"$probes" | { grep . || true; } | sort -n |
    awk 'NR == 1 {lo = $1} {hi = $1} END {if (NR && lo > 0) printf "%.2f", hi / lo; else printf "n/a"}')

if want 2; then
    echo
    echo "== diagnostics of 2. (32 clients)"
    read -r _ b0m _ < <(bench_quartiles %.0f <<<"$q_busy0"); read -r _ b4m _ < <(bench_quartiles %.0f <<<"$q_busy4")
    read -r _ x0m _ < <(bench_quartiles %.2f <<<"$q_ctxt0"); read -r _ x4m _ < <(bench_quartiles %.2f <<<"$q_ctxt4")
    read -r _ t0m _ < <(bench_quartiles %.1f <<<"$q_tps0"); read -r _ t4m _ < <(bench_quartiles %.1f <<<"$q_tps4")
    echo "median TPS: max_active 0 $t0m, max_active 4 $t4m; CPUs busy: ${b0m}% vs ${b4m}%; context switches/tx: $x0m vs $x4m"
    echo "max_active 4 runs: $q_que of $q_adm statements queued ($(awk -v q="$q_que" -v a="$q_adm" 'BEGIN {printf "%.1f", a ? 100 * q / a : 0}')%),"
    echo "  mean wait of a queued statement $(awk -v m="$q_qms" -v q="$q_que" 'BEGIN {printf "%.3f", q ? m / q : 0}') ms (shield.role_stats queue_ms / queued)"
    for ma in 4 0; do
        # Only the samples taken while pgbench's clients were connected count.
        awk -v ma="$ma" -v tps="$(sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p' "$tmp/q-sampled-$ma.log")" '
            $2 == "pg_stat_activity" && !($1 in live) { live[$1] = 1; n++ }
            { line[NR] = $0 }
            END {
                if (!n) { print "sampled run: no sample was taken while its clients were connected"; exit }
                for (i = 1; i <= NR; i++) {
                    split(line[i], f, " ")
                    if (!(f[1] in live)) continue
                    if (f[2] == "shield.status") { a += f[4]; q += f[6]; ns++; continue }
                    k = line[i]; sub(/^[0-9]+ /, "", k); cnt[k]++
                }
                printf "sampled run at max_active " ma " (%.1f tps), %d samples while its clients were connected; mean number of bench_user\n", tps, n
                printf "backends per state (pg_stat_activity: wait_event_type:wait_event state):\n"
                for (k in cnt) printf "  %6.2f  %s\n", cnt[k] / n, k | "sort -rn"
                close("sort -rn")
                if (ns) printf "  shield.status: mean active %.2f, mean queued %.2f\n", a / ns, q / ns
            }' "$tmp/sampler-$ma.out"
    done
    if [ "$PERF" = 1 ]; then
        for ma in 4 0; do
            echo "perf, client backends of the sampled run at max_active $ma: top symbols by self samples"
            perf report -i "$tmp/perf-$ma.data" --stdio --no-children --sort dso,symbol -g none --percent-limit 1 2>/dev/null |
                grep -v '^#' | grep . | head -n 25 | sed 's/^/  /; s/[ -]*$//'
        done
    fi
fi
echo
echo "================================================================ summary"
echo "parameters: PARTS=\"$PARTS\" ROUNDS=$ROUNDS SECONDS_PER_RUN=$SECONDS_PER_RUN WARMUP_SECONDS=$WARMUP_SECONDS SCALE=$SCALE LAT_STATEMENTS=$LAT_STATEMENTS LAT_WARMUP=$LAT_WARMUP"
echo "machine: $(bench_machine_info)"
echo "load avg: $load_before (before), $load_after (after); host speed probe slowest/fastest = $probe_spread"
echo "time: $((t_end - t_start)) s in all (1: ${t_p1} s, 2: ${t_p2} s)"
echo
if want 1; then
    echo "1. per-statement overhead (8 clients, bench_user under a non-binding role policy)"
    echo "   shield/none TPS = $omed (median of $ROUNDS paired rounds, IQR $oq1r-$oq3r; median TPS none $o_none_med, shield $o_shield_med)"
    echo "   by CPU per transaction = $ocmed (IQR $ocq1-$ocq3)"
    echo "   instructions: $cg_note"
    echo "   target >= $target_overhead: $(verdict "$omed" "$oq1r" "$oq3r" "$target_overhead")"
fi
if want 2; then
    echo "2. queueing (32 clients, pg_shield.max_active 4 vs 0)"
    echo "   max_active 4/0 TPS = $qmed (median of $ROUNDS paired rounds, IQR $qq1-$qq3)"
    echo "   by CPU per transaction = $qcmed (IQR $qcq1-$qcq3)"
    echo "   target >= $target_queue: $(verdict "$qmed" "$qq1" "$qq3" "$target_queue")"
fi
if want 3; then
    echo "3. fast rejection (client-side latency, $LAT_STATEMENTS statements each)"
    echo "   rate limit 53S04: p50 $r50 ms, p99 $r99 ms, max $rmax ms"
    echo "   queue full 53S01: p50 $f50 ms, p99 $f99 ms, max $fmax ms"
    echo "   breaker open 53S05: p50 $b50 ms, p99 $b99 ms, max $bmax ms"
    echo "   shed 53S03: p50 $s50 ms, p99 $s99 ms, max $smax ms"
    echo "   admitted (for comparison): p50 $a50 ms, p99 $a99 ms, max $amax ms"
    v=PASS
    awk -v a="$r99" -v b="$f99" -v c="$b99" -v d="$s99" -v t="$target_p99_ms" 'BEGIN {exit !(a < t && b < t && c < t && d < t)}' || v=FAIL
    echo "   target p99 < $target_p99_ms ms: $v"
fi
if [ "$probe_spread" != n/a ] && awk -v s="$probe_spread" 'BEGIN {exit !(s > 1.15)}'; then
    echo "NOTE: the host's speed varied during the benchmark (probe spread $probe_spread); paired ratios are meant to cancel it"
fi
if awk -v l="${load_before%% *}" 'BEGIN {exit !(l > 0.5)}'; then
    echo "WARNING: 1-minute load average was ${load_before%% *} before the benchmark started (other work on the machine)"
fi
