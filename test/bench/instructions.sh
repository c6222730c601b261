#!/usr/bin/env bash
# Per-statement cost in CPU instructions (the first target in test/bench/README.md,
# measured so that the host's speed does not matter).
#
# The TPS benchmark (test/bench/overhead.sh) needs a host of steady speed to
# resolve an overhead of 1-2%.  This script counts instead the instructions a
# backend executes, with valgrind's callgrind, which does not depend on the
# host's speed or load: two runs give the same count to within a few
# instructions per statement.
#
# One instance, five configurations: three that differ only in
# shared_preload_libraries (none, pg_shield, pg_stat_statements;
# compute_query_id = on in all); pg_shield_deadline, pg_shield whose role
# policy also sets a deadline, with pg_shield.breaker_failures on; and
# pg_shield_shape, pg_shield with, besides its role policy, a query policy
# declared by text on a statement the benchmark never runs, so that every
# statement's shape is remembered after parse analysis and looked for at
# policy resolution, but never matches.  They are started one after the
# other with the whole postmaster under callgrind (every backend writes its
# own profile when it exits).  For each configuration, after a prewarm and a warm-up, a single
# pgbench client (-S -M prepared -c 1, as the non-superuser bench_user, fixed
# random seed) runs N1 and then N2 transactions; the profile of the client's
# backend is the largest one each run leaves (the other is pgbench's setup
# connection).  Collection is limited to PostgresMain and what it calls, so
# the postmaster's own work is not counted.  Then
#
#     instructions per statement = (I(N2) - I(N1)) / (N2 - N1)
#
# which cancels connection start-up and shutdown.  It prints that figure for
# each configuration, the overhead of pg_shield and of pg_stat_statements over
# none in instructions and as a ratio, and a differential profile: the
# functions whose instructions per statement differ most from the
# configuration without preloaded libraries.
#
# These are the backend's instructions only: pgbench, the kernel and the
# socket round trip are not counted, and neither are cache misses nor
# contention on shared cache lines.  To turn the instruction overhead into
# an estimate of the TPS ratio, the script also runs the target's workload
# natively (8 clients, 10 s, pg_shield preloaded) and measures which share of
# the CPU a transaction costs is the backends' user-space time (a ratio of
# CPU times, so little moved by the host's speed or other load):
#
#     estimated TPS ratio = 1 - (cost ratio - 1) x share
#
# and judges it against the target and the 0.98 minimum.
#
# Works as root on Debian 12 like overhead.sh: private build (see lib.sh),
# nothing installed into the system PostgreSQL directories, servers run as
# the postgres user, Unix socket only, all removed on exit.  Needs valgrind
# (apt-get install valgrind).
#
#   test/bench/instructions.sh [--n1 N] [--n2 N] [--scale S] [--top K] [--keep DIR]
#                              [--target RATIO] [--protocol P] [--quick]
#
#   --n1 N       transactions of the shorter run           (default 5000)
#   --n2 N       transactions of the longer run            (default 25000)
#   --scale S    pgbench scale factor                      (default 10)
#   --top K      functions shown in each differential profile (default 15)
#   --keep DIR   copy the callgrind profiles into DIR before cleaning up
#   --target R   pg_shield/none target for the estimate's verdict (default 0.99;
#                0.98 is also judged)
#   --protocol P pgbench's -M of every run: prepared (default, the target's
#                workload), or simple, where every statement is parsed and
#                analyzed again (what the parse analysis hook costs)
#   --quick      smoke test: N1 500, N2 1500, scale 1 (also BENCH_QUICK=1);
#                flags given after it still apply
#
# Environment: PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config),
# BENCH_QUICK=1 (same as --quick).
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
. "$src/test/bench/lib.sh"

n1=5000
n2=25000
scale=10
top=15
keep=""
warmup_tx=1000
share_secs=10
shared_buffers=256MB
target=0.99
bench_protocol=prepared
minimum=0.98        # the least that is acceptable
deadline_target=0.985   # with a deadline and breakers on

quick() { n1=500; n2=1500; scale=1; warmup_tx=200; share_secs=3; }
[ "${BENCH_QUICK:-0}" = 1 ] && quick

usage() { sed -n '/^#   test\/bench/,/^# BENCH_QUICK/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "instructions.sh: $1 needs a positive integer" >&2; exit 2; }; }

while [ $# -gt 0 ]; do
    case $1 in
        --n1)    posint "$1" "${2:-}"; n1=$2; shift 2 ;;
        --n2)    posint "$1" "${2:-}"; n2=$2; shift 2 ;;
        --scale) posint "$1" "${2:-}"; scale=$2; shift 2 ;;
        --top)   posint "$1" "${2:-}"; top=$2; shift 2 ;;
        --target) [[ ${2:-} =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "instructions.sh: --target needs a number" >&2; exit 2; }
                 target=$2; shift 2 ;;
        --keep)  [ -n "${2:-}" ] || { echo "instructions.sh: --keep needs a directory" >&2; exit 2; }
                 keep=$2; shift 2 ;;
        --protocol) case ${2:-} in prepared|simple) bench_protocol=$2 ;;
                    *) echo "instructions.sh: --protocol needs prepared or simple" >&2; exit 2 ;; esac
                    shift 2 ;;
        --quick) quick; shift ;;
        -h|--help) usage ;;
        *)       echo "instructions.sh: unknown argument $1" >&2; usage ;;
    esac
done
[ "$n2" -gt "$n1" ] || { echo "instructions.sh: --n2 must be larger than --n1" >&2; exit 2; }

for t in valgrind callgrind_annotate; do
    command -v "$t" >/dev/null || {
        echo "instructions.sh: $t not found; install valgrind first: apt-get install valgrind" >&2; exit 1; }
done

configs=(none pg_shield pg_stat_statements pg_shield_deadline pg_shield_shape)
preload_of() { case $1 in none) echo "" ;; pg_shield_deadline|pg_shield_shape) echo pg_shield ;; *) echo "$1" ;; esac; }

# ---------------------------------------------------------------- setup

"$src/scripts/install-deps.sh" >&2

tmp=$(mktemp -d /tmp/pg_shield-instr.XXXXXX)
t_start=$(date +%s)
data="$tmp/data"
cg="$tmp/callgrind"
log="$tmp/server.log"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    bench_stop_all
    if [ "$rc" -ne 0 ] && [ -f "$log" ]; then
        echo "instructions.sh: failed (exit $rc); last server log lines:" >&2
        tail -n 20 "$log" >&2 || true
    fi
    if [ -n "$keep" ] && [ -d "$cg" ]; then
        mkdir -p "$keep" && cp -r "$cg"/. "$keep"/ && echo "callgrind profiles kept in $keep" >&2
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bench_setup_common
bench_private_install
bench_free_port port

# autovacuum off: no worker comes and goes during the measurement.
bench_initdb "$data" "$port" "" "$shared_buffers" "autovacuum = off" "include 'preload.conf'"
# The include overrides the empty shared_preload_libraries written above.
set_preload() {
    {
        echo "shared_preload_libraries = '$(preload_of "$1")'"
        # breakers on by default for every fingerprint (they never open here)
        if [ "$1" = pg_shield_deadline ]; then echo "pg_shield.breaker_failures = 5"; fi
    } | as_pg tee "$data/preload.conf" >/dev/null
}
psql_su() { bench_psql "$port" "$@"; }

# Load the data with an ordinary server, pg_shield preloaded (CREATE
# EXTENSION may need it).
set_preload pg_shield
bench_start "$data" "$log"
bench_load_db "$port" "$scale" instructions
psql_su bench -c "CREATE EXTENSION pg_shield"
bench_check_private_so "$data" "$port" bench

policy="none (shield.set_role_policy not available in this build)"
if [ "$(psql_su bench -c "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                          WHERE n.nspname = 'shield' AND p.proname = 'set_role_policy'")" != 0 ]; then
    psql_su bench -c "SELECT shield.set_role_policy('bench_user', max_concurrent => 1000)" >/dev/null
    policy="role policy on bench_user: max_concurrent 1000 (applies, never binds)"
fi

# Native share of the backend's user-space CPU in the CPU of a transaction
# of the target's workload (8 clients; pgbench and the kernel take the rest).  Only
# that share grows with the backend's instructions, so it turns the
# instruction overhead into an estimate of the TPS ratio.  A ratio of CPU
# times, so little moved by the host's speed or by other load.
psql_su bench -c "SELECT sum(pg_prewarm(c)) FROM unnest(ARRAY['pgbench_accounts', 'pgbench_accounts_pkey',
    'pgbench_branches', 'pgbench_branches_pkey', 'pgbench_tellers', 'pgbench_tellers_pkey']::regclass[]) c" >/dev/null
pm_pid=$(head -n 1 "$data/postmaster.pid")
share_run() {   # seconds
    as_pg pgbench -h "$tmp" -p "$port" -U bench_user -S -M "$bench_protocol" -c 8 -j 2 -T "$1" -n bench \
        >"$tmp/pgbench-share.log" 2>&1 || { cat "$tmp/pgbench-share.log" >&2; exit 1; }
}
share_run 2
sleep 1
idle=$(pgrep -c -P "$pm_pid" || true)
read -r bu0 bs0 < <(bench_children_cpu "$pm_pid")
read -r pu0 ps0 < <(bench_children_cpu $$)
share_run "$share_secs"
bench_wait_reaped "$pm_pid" "$idle"
read -r bu1 bs1 < <(bench_children_cpu "$pm_pid")
read -r pu1 ps1 < <(bench_children_cpu $$)
share=$(awk -v bu=$((bu1 - bu0)) -v bs=$((bs1 - bs0)) -v pu=$((pu1 - pu0)) -v ps=$((ps1 - ps0)) \
    'BEGIN {t = bu + bs + pu + ps; printf "%.3f", (t > 0 ? bu / t : 0)}')
share_detail="backends user $((bu1 - bu0)), backends system $((bs1 - bs0)), pgbench user $((pu1 - pu0)), system $((ps1 - ps0)) jiffies"

psql_su bench -c "CHECKPOINT"
as_pg pg_ctl -D "$data" -m fast -w -t 120 stop >/dev/null

# ---------------------------------------------------------------- helpers

# The callgrind runs use lib.sh's bench_cg_* functions (also used by
# admission.sh): profiles of configuration CFG go to $cg/CFG/cg.<pid>.

# Flat profile of a callgrind file: "function<TAB>self<TAB>inclusive" per
# line, function as "file:name [object]" with directories stripped.
flat_profile() {
    callgrind_annotate --auto=no --threshold=100 --inclusive=no "$1" >"$1.self"
    callgrind_annotate --auto=no --threshold=100 --inclusive=yes "$1" >"$1.incl"
    awk -v selffile="$1.self" '
        function key(s,   f, o) {
            # "  1,234 (12.34%)  path/file.c:func [/path/obj.so]"
            sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "", s)
            o = ""
            if (match(s, / \[[^]]*\]$/)) { o = substr(s, RSTART + 2, RLENGTH - 3); s = substr(s, 1, RSTART - 1); sub(/.*\//, "", o) }
            f = s; sub(/^.*\//, "", f)
            return o == "" ? f : f " [" o "]"
        }
        function num(s) { sub(/^ */, "", s); sub(/ .*/, "", s); gsub(/,/, "", s); return s + 0 }
        /^ *[0-9,]+ +\( *[0-9.]+%\) +/ && !/PROGRAM TOTALS/ {
            k = key($0)
            if (FILENAME == selffile) { if (!(k in s)) s[k] = num($0) }
            else { if (!(k in c)) c[k] = num($0) }
            seen[k] = 1
        }
        END { for (k in seen) printf "%s\t%d\t%d\n", k, s[k], c[k] }
    ' "$1.self" "$1.incl"
}

# per_statement A B: joins two flat profiles (N1, N2) into per-statement
# costs "function<TAB>self/stmt<TAB>incl/stmt".
per_statement() {
    awk -F'\t' -v d=$((n2 - n1)) '
        FNR == NR { s1[$1] = $2; c1[$1] = $3; next }
        { printf "%s\t%.1f\t%.1f\n", $1, ($2 - s1[$1]) / d, ($3 - c1[$1]) / d }
    ' "$1" "$2"
}

# ---------------------------------------------------------------- runs

pgver=$(as_pg postgres --version)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "pg_shield per-statement instructions (host-speed independent)"
echo
echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:     $(bench_machine_info)"
echo "postgres:    $pgver"
echo "valgrind:    $(valgrind --version), callgrind, collecting inside PostgresMain only"
echo "pg_shield:   $(bench_pg_shield_version), private build loaded from $privlib"
echo "workload:    pgbench -S -M $bench_protocol -c 1 -n --random-seed=1 as bench_user (not superuser),"
echo "             -t $n1 and -t $n2 after $warmup_tx warm-up transactions; scale $scale (prewarmed),"
echo "             shared_buffers $shared_buffers, compute_query_id on, autovacuum off"
echo "policy:      $policy"
echo "             pg_shield_deadline: the same policy with deadline 1 hour, and pg_shield.breaker_failures 5"
echo "             pg_shield_shape: the role policy, and a query policy (by text, so matched by shape"
echo "             too) on a statement the benchmark never runs: shapes are remembered and looked up"
echo "load avg:    $load_before (before; does not affect instruction counts)"
echo

declare -A ips i1 i2 secs wait_ps all_ps
for cfg in "${configs[@]}"; do
    t0=$(date +%s)
    set_preload "$cfg"
    bench_cg_start "$data" "$port" "$cg/$cfg" "$log"
    got=$(psql_su postgres -c "SHOW shared_preload_libraries")
    [ "$got" = "$(preload_of "$cfg")" ] ||
        { echo "instructions.sh: $cfg: expected shared_preload_libraries '$(preload_of "$cfg")', got '$got'" >&2; exit 1; }
    [ "$(psql_su postgres -c "SHOW compute_query_id")" = on ] ||
        { echo "instructions.sh: $cfg: compute_query_id is not on" >&2; exit 1; }
    if [ "$cfg" = pg_shield ]; then
        bench_check_private_so "$data" "$port" bench
    fi
    # the fourth configuration: the role policy also has a deadline (armed at
    # every statement, never reached), and every fingerprint has a breaker
    if [ "$cfg" = pg_shield_deadline ]; then
        psql_su bench -c "SELECT shield.set_role_policy('bench_user', max_concurrent => 1000,
                                                        deadline => '1 hour')" >/dev/null
        [ "$(psql_su postgres -c "SHOW pg_shield.breaker_failures")" = 5 ] ||
            { echo "instructions.sh: pg_shield.breaker_failures is not 5" >&2; exit 1; }
    fi
    # the fifth: the role policy as in pg_shield, and a query policy whose
    # shape no statement of the benchmark has
    if [ "$cfg" = pg_shield_shape ]; then
        psql_su bench -c "SELECT shield.set_role_policy('bench_user', max_concurrent => 1000)" >/dev/null
        psql_su bench -c "SELECT shield.set_query_policy(
                              'SELECT abalance FROM pgbench_accounts WHERE aid = \$1 AND bid = \$2',
                              max_concurrent => 1000)" >/dev/null
        [ "$(psql_su bench -c "SELECT count(*) FROM shield.policies WHERE shape IS NOT NULL")" = 1 ] ||
            { echo "instructions.sh: the query policy has no shape" >&2; exit 1; }
    fi
    psql_su bench -c "SELECT sum(pg_prewarm(c)) FROM unnest(ARRAY['pgbench_accounts', 'pgbench_accounts_pkey',
        'pgbench_branches', 'pgbench_branches_pkey', 'pgbench_tellers', 'pgbench_tellers_pkey']::regclass[]) c" >/dev/null
    bench_cg_pgbench "$port" bench bench_user "$warmup_tx" "$tmp/pgbench-$cfg-warmup.log"
    f1=$(bench_cg_measure "$cg/$cfg" "$port" bench bench_user "$n1")
    f2=$(bench_cg_measure "$cg/$cfg" "$port" bench bench_user "$n2")
    if [ "$cfg" = pg_shield ]; then
        shield_calls=$(psql_su bench -c "SELECT coalesce(sum(calls), 0) FROM shield.role_stats
                                         WHERE rolname = 'bench_user' AND datname = 'bench'")
    fi
    bench_cg_stop "$data"
    i1[$cfg]=$(sed -n 's/^totals: //p' "$f1")
    i2[$cfg]=$(sed -n 's/^totals: //p' "$f2")
    ips[$cfg]=$(awk -v a="${i1[$cfg]}" -v b="${i2[$cfg]}" -v d=$((n2 - n1)) 'BEGIN {printf "%.1f", (b - a) / d}')
    flat_profile "$f1" >"$tmp/flat-$cfg-1.tsv"
    flat_profile "$f2" >"$tmp/flat-$cfg-2.tsv"
    per_statement "$tmp/flat-$cfg-1.tsv" "$tmp/flat-$cfg-2.tsv" >"$tmp/ps-$cfg.tsv"
    # Waiting for the client's next message (WaitEventSetWait, when the
    # socket was empty) depends on timing, not on the statement: the one part
    # of the count that moves between runs (by up to ~100 per statement).
    # Left out of the figures compared below.
    wait_ps[$cfg]=$(awk -F'\t' '$1 == "???:WaitEventSetWait [postgres]" {w = $3} END {printf "%.1f", w + 0}' "$tmp/ps-$cfg.tsv")
    all_ps[$cfg]=${ips[$cfg]}
    ips[$cfg]=$(awk -v a="${ips[$cfg]}" -v w="${wait_ps[$cfg]}" 'BEGIN {printf "%.1f", a - w}')
    secs[$cfg]=$(($(date +%s) - t0))
    echo "measured $cfg in ${secs[$cfg]} s" >&2
done

# ---------------------------------------------------------------- summary

printf '%-20s %16s %16s %12s %12s %12s %7s\n' config "I(-t $n1)" "I(-t $n2)" "all/stmt" "waits/stmt" "instr/stmt" "time s"
for cfg in "${configs[@]}"; do
    printf '%-20s %16s %16s %12s %12s %12s %7s\n' "$cfg" "${i1[$cfg]}" "${i2[$cfg]}" "${all_ps[$cfg]}" \
        "${wait_ps[$cfg]}" "${ips[$cfg]}" "${secs[$cfg]}"
done
echo "(all = (I(N2) - I(N1)) / (N2 - N1); waits = in WaitEventSetWait, waiting for the client's next"
echo " message, which depends on timing; instr/stmt = all - waits, the figure compared below)"

echo
printf '%-30s %14s %12s %16s\n' "overhead" "instr/stmt" "cost ratio" "TPS ratio bound"
over() {   # label a b
    awk -v l="$1" -v a="${ips[$2]}" -v b="${ips[$3]}" 'BEGIN {
        printf "%-30s %+14.1f %12.4f %16.4f\n", l, a - b, a / b, b / a }'
}
over "pg_shield - none" pg_shield none
over "pg_shield_deadline - none" pg_shield_deadline none
over "pg_shield_deadline - pg_shield" pg_shield_deadline pg_shield
over "pg_shield_shape - none" pg_shield_shape none
over "pg_shield_shape - pg_shield" pg_shield_shape pg_shield
over "pg_stat_statements - none" pg_stat_statements none
over "pg_shield - pg_stat_statements" pg_shield pg_stat_statements
echo "(cost ratio: of the backend's instructions per statement.  TPS ratio bound: its inverse, what"
echo " the TPS ratio would be if those instructions were all a statement costs; pgbench, the kernel"
echo " and the socket round trip cost the same in every configuration, so the real ratio is nearer 1)"

echo
echo "backend user-space share of the CPU per transaction, pgbench -S -M $bench_protocol -c 8 -j 2 -T $share_secs"
echo "run natively with pg_shield preloaded: $share ($share_detail)"
est() {   # label a b
    awk -v l="$1" -v a="${ips[$2]}" -v b="${ips[$3]}" -v f="$share" 'BEGIN {
        printf "%-30s %8.4f\n", l, 1 - (a / b - 1) * f }'
}
echo "estimated TPS ratio:"
est "pg_shield/none" pg_shield none
est "pg_shield_deadline/none" pg_shield_deadline none
est "pg_shield_shape/none" pg_shield_shape none
est "pg_stat_statements/none" pg_stat_statements none
est "pg_shield/pg_stat_statements" pg_shield pg_stat_statements
echo "(1 - (cost ratio - 1) x share: assumes the extra instructions run at the backend's average speed"
echo " per instruction; contention on shared cache lines between backends is not counted by callgrind)"
r_est=$(awk -v a="${ips[pg_shield]}" -v b="${ips[none]}" -v f="$share" 'BEGIN {printf "%.4f", 1 - (a / b - 1) * f}')
echo
echo "pg_shield/none estimated from instructions = $r_est"
for th in "$target" "$minimum"; do
    case $th in "$target") label="target (targets: test/bench/README.md)" ;; *) label="minimum" ;; esac
    printf '  %-34s %s\n' "$label >= $th:" \
        "$(awk -v r="$r_est" -v t="$th" 'BEGIN {print (r + 0 >= t + 0) ? "MET" : "NOT MET"}')"
done
r_dl=$(awk -v a="${ips[pg_shield_deadline]}" -v b="${ips[none]}" -v f="$share" 'BEGIN {printf "%.4f", 1 - (a / b - 1) * f}')
echo "pg_shield_deadline/none estimated from instructions = $r_dl"
printf '  %-34s %s\n' "deadline target >= $deadline_target:" \
    "$(awk -v r="$r_dl" -v t="$deadline_target" 'BEGIN {print (r + 0 >= t + 0) ? "MET" : "NOT MET"}')"

# diff_profile CFG: functions whose per-statement cost differs most from none.
diff_profile() {
    echo
    echo "differential profile, $1 - none: instructions per statement (top $top by |self|)"
    printf '%12s %12s %12s %12s   %s\n' "self" "inclusive" "self $1" "self none" function
    awk -F'\t' '
        FNR == NR { s0[$1] = $2; c0[$1] = $3; k0[$1] = 1; next }
        { s1[$1] = $2; c1[$1] = $3; k1[$1] = 1 }
        END {
            for (k in k0) k1[k] = 1
            for (k in k1) printf "%.1f\t%.1f\t%.1f\t%.1f\t%s\n", s1[k] - s0[k], c1[k] - c0[k], s1[k], s0[k], k
        }
    ' "$tmp/ps-none.tsv" "$tmp/ps-$1.tsv" |
        awk -F'\t' '{a = $1 < 0 ? -$1 : $1; print a "\t" $0}' | sort -t$'\t' -k1,1gr | awk -v n="$top" 'NR <= n' | cut -f2- |
        awk -F'\t' '{printf "%+12.1f %+12.1f %12.1f %12.1f   %s\n", $1, $2, $3, $4, $5}'
    awk -F'\t' '{t += $2} END {printf "%+12.1f   sum of all self differences (= the overhead above, up to rounding)\n", t}' \
        <(join -t$'\t' -a1 -a2 -e0 -o 0,1.2,2.2 <(sort -t$'\t' -k1,1 "$tmp/ps-$1.tsv") <(sort -t$'\t' -k1,1 "$tmp/ps-none.tsv") |
          awk -F'\t' '{printf "%s\t%.1f\n", $1, $2 - $3}')
}
diff_profile pg_shield
diff_profile pg_stat_statements
diff_profile pg_shield_deadline
diff_profile pg_shield_shape

echo
echo "pg_shield.so functions, instructions per statement"
echo "(inclusive counts what a function calls, for a hook the standard function it wraps too;"
echo " own = inclusive less that standard function: the hook's whole cost)"
printf '%12s %12s %12s   %s\n' self inclusive own function
awk -F'\t' '
    FNR == NR { c[$1] = $3; next }
    index($1, "[pg_shield.so]") {
        own = ""
        if (match($1, /:pgsh_[A-Za-z]+ /)) {
            std = "???:standard_" substr($1, RSTART + 6, RLENGTH - 7) " [postgres]"
            if (std in c) own = sprintf("%12.1f", $3 - c[std])
        }
        if ($2 != 0 || $3 != 0) printf "%s\t%12.1f %12.1f %12s   %s\n", $3, $2, $3, own, $1
    }
' "$tmp/ps-pg_shield.tsv" "$tmp/ps-pg_shield.tsv" | sort -t$'\t' -k1,1gr | cut -f2-

echo
echo "pg_shield accounted ${shield_calls:-0} statements of bench_user (warm-up included)"
[ "${shield_calls:-0}" -gt 0 ] || echo "WARNING: pg_shield did not account bench_user's statements: it was not measured"
echo "time:        $(($(date +%s) - t_start)) s in all"
