#!/usr/bin/env bash
# Per-statement overhead benchmark (product contract §8, first row).
#
# Not a timed test: a script that measures pgbench -S -M prepared, 8 clients,
# as a non-superuser, on one throwaway instance whose only difference between
# runs is shared_preload_libraries:
#
#   none                ''                    (compute_query_id = on everywhere,
#   pg_shield           'pg_shield'            so only the hooks differ)
#   pg_stat_statements  'pg_stat_statements'
#
# Runs are alternated (the order rotates every round to spread drift), each
# after a restart and an unmeasured warm-up.  Prints every run, the median TPS
# per configuration, the ratios and the machine the figures came from.
#
# Works as root on a fresh Debian 12 machine: installs what it needs
# (scripts/install-deps.sh), builds with strict flags and installs pg_shield
# (scripts/build-install.sh), and runs the server as the postgres user.
# Unix socket only, in a private temporary directory; removed on exit.
#
#   test/bench/overhead.sh [--rounds N] [--duration SECONDS] [--scale S]
#                          [--warmup SECONDS] [--target RATIO] [--quick]
#
#   --rounds N        rounds; each runs every configuration once   (default 5)
#   --duration S      seconds per measured run                     (default 20)
#   --scale S         pgbench scale factor                         (default 10)
#   --warmup S        seconds of unmeasured run after each restart (default 5)
#   --target R        pg_shield/none target for the verdict line   (default 0.99,
#                     product contract §8)
#   --quick           smoke test: 1 round, 3 s runs, 1 s warm-up, scale 1
#                     (also BENCH_QUICK=1); flags given after it still apply
#
# Environment: PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config),
# BENCH_QUICK=1 (same as --quick).
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

rounds=5
duration=20
scale=10
warmup=5
target=0.99
clients=8
threads=2

quick() { rounds=1; duration=3; warmup=1; scale=1; }
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

bindir=$("$PG_CONFIG" --bindir)
tmp=$(mktemp -d /tmp/pg_shield-bench.XXXXXX)
build=""
data="$tmp/data"
sock="$tmp"
started=0

# Run a command as the postgres user (the server refuses to run as root).
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- env PATH="$bindir:$PATH" "$@"
    else
        env PATH="$bindir:$PATH" "$@"
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$started" -eq 1 ]; then
        as_pg pg_ctl -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            as_pg pg_ctl -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    if [ "$rc" -ne 0 ] && [ -f "$tmp/server.log" ]; then
        echo "overhead.sh: failed (exit $rc); last server log lines:" >&2
        tail -n 30 "$tmp/server.log" >&2 || true
    fi
    rm -rf "$tmp"
    [ -n "$build" ] && case $build in /tmp/pg_shield-build.*) rm -rf "$build" ;; esac
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! build=$("$src/scripts/build-install.sh" 2>"$tmp/build.log"); then
    cat "$tmp/build.log" >&2
    echo "overhead.sh: build failed" >&2
    exit 1
fi
build=$(printf '%s\n' "$build" | tail -n 1)

[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$tmp"
chmod 700 "$tmp"

# A port no one listens on (TCP is off, but the socket name uses the port).
port=""
for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 30000))
    if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q . && [ ! -e "$sock/.s.PGSQL.$p" ]; then
        port=$p; break
    fi
done
[ -n "$port" ] || { echo "overhead.sh: no free port found" >&2; exit 1; }

as_pg initdb -D "$data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >"$tmp/initdb.log" 2>&1 ||
    { cat "$tmp/initdb.log" >&2; exit 1; }

cat >>"$data/postgresql.conf" <<EOF

# ---- pg_shield overhead benchmark
listen_addresses = ''
unix_socket_directories = '$sock'
port = $port
shared_buffers = 512MB
max_connections = 50
compute_query_id = on
logging_collector = off
include 'preload.conf'
EOF

set_preload() {
    echo "shared_preload_libraries = '$(preload_of "$1")'" | as_pg tee "$data/preload.conf" >/dev/null
}

psql_su() { as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres -At "$@"; }

start_with() {
    set_preload "$1"
    if [ "$started" -eq 1 ]; then
        as_pg pg_ctl -D "$data" -l "$tmp/server.log" -m fast -w -t 120 restart >/dev/null
    else
        as_pg pg_ctl -D "$data" -l "$tmp/server.log" -w -t 120 start >/dev/null
        started=1
    fi
    local got
    got=$(psql_su -d postgres -c "SHOW shared_preload_libraries")
    [ "$got" = "$(preload_of "$1")" ] ||
        { echo "overhead.sh: expected shared_preload_libraries '$(preload_of "$1")', got '$got'" >&2; exit 1; }
    [ "$(psql_su -d postgres -c "SHOW compute_query_id")" = on ] ||
        { echo "overhead.sh: compute_query_id is not on" >&2; exit 1; }
}

# Initialize with pg_shield preloaded: CREATE EXTENSION may need it (§2).
start_with pg_shield
psql_su -d postgres -c "CREATE DATABASE bench"
as_pg pgbench -h "$sock" -p "$port" -U postgres -i -q -s "$scale" bench >"$tmp/pgbench-init.log" 2>&1 ||
    { cat "$tmp/pgbench-init.log" >&2; exit 1; }
psql_su -d bench <<'SQL'
CREATE ROLE bench_user LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO bench_user;
CREATE EXTENSION pg_shield;
SQL
[ "$(psql_su -d bench -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'bench_user'")" = f ] ||
    { echo "overhead.sh: bench_user is a superuser" >&2; exit 1; }

# §8 wants a role policy that applies but never binds.  Set one when this
# build has policies (max_concurrent far above the 8 clients).
policy="none (shield.set_role_policy not available in this build)"
if [ "$(psql_su -d bench -c "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                             WHERE n.nspname = 'shield' AND p.proname = 'set_role_policy'")" != 0 ]; then
    psql_su -d bench -c "SELECT shield.set_role_policy('bench_user', max_concurrent => 1000)" >/dev/null
    policy="role policy on bench_user: max_concurrent 1000 (applies, never binds)"
fi

pgbench_run() {   # seconds logfile
    as_pg timeout $(($1 + 120)) pgbench -h "$sock" -p "$port" -U bench_user \
        -S -M prepared -c "$clients" -j "$threads" -T "$1" -n bench >"$2" 2>&1
}

# Disturbance check.  CPU jiffies the whole machine spent busy, minus those
# spent by this benchmark: the postmaster and its exited children (backends
# are reaped by it) and this shell's exited children (pgbench).  What remains
# is other load (plus the few jiffies of live auxiliary processes and
# interrupts), shown as a percentage of all CPUs over the run.
hz=$(getconf CLK_TCK)
ncpu=$(nproc)
machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat; }
machine_steal() { awk '/^cpu / {print $9; exit}' /proc/stat; }
proc_cpu() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13 + $14 + $15}'; }
own_cpu() { echo $(( $(proc_cpu "$(head -n 1 "$data/postmaster.pid")") + $(proc_cpu $$) )); }

# Host speed check: milliseconds of a fixed single-threaded CPU loop, run
# right after each measured run.  On shared or throttled virtual machines this
# moves with the host, not with anything this benchmark does.
cpu_probe() {
    local t0 t1
    t0=$(date +%s%N)
    awk 'BEGIN {for (i = 0; i < 20000000; i++) x += i; exit}'
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}

tps_of() {
    sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$1"
}

# ---------------------------------------------------------------- header

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
[ -n "$cpu" ] || cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
mem=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
pgver=$(psql_su -d postgres -c "SELECT version()")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

echo "pg_shield overhead benchmark (product contract §8: per-statement overhead)"
echo
echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:     $(nproc) CPUs, ${cpu:-unknown CPU}, $mem RAM, $(uname -sr)"
echo "postgres:    $pgver"
echo "pg_shield:   $(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)"
echo "workload:    pgbench -S -M prepared -c $clients -j $threads -T $duration -n, as bench_user (not superuser),"
echo "             scale $scale, unix socket, shared_buffers 512MB, compute_query_id on"
echo "policy:      $policy"
echo "runs:        $rounds rounds x ${#configs[@]} configs, order rotated per round, restart + ${warmup}s warm-up before each"
echo "load avg:    $load_before (before)"
echo

# ---------------------------------------------------------------- runs

declare -A results round_tps
disturbed=""
probes=""
printf '%-6s %-4s %-20s %12s %7s %9s %7s %9s\n' round pos config tps "busy%" "other%" "steal%" "probe ms"
n=${#configs[@]}
for ((r = 0; r < rounds; r++)); do
    for ((i = 0; i < n; i++)); do
        cfg=${configs[$(((r + i) % n))]}
        start_with "$cfg"
        if [ "$warmup" -gt 0 ]; then
            pgbench_run "$warmup" "$tmp/warmup.log" || { cat "$tmp/warmup.log" >&2; exit 1; }
        fi
        log="$tmp/run-$r-$cfg.log"
        b0=$(machine_busy); s0=$(machine_steal); o0=$(own_cpu); t0=$(date +%s.%N)
        pgbench_run "$duration" "$log" || { cat "$log" >&2; exit 1; }
        b1=$(machine_busy); s1=$(machine_steal); o1=$(own_cpu); t1=$(date +%s.%N)
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
        if [ "$cfg" = pg_shield ] && [ -z "${shield_calls:-}" ]; then
            # Sanity: pg_shield really governed bench_user's statements.
            shield_calls=$(psql_su -d bench -c "SELECT coalesce(sum(calls), 0) FROM shield.role_stats
                                                WHERE rolname = 'bench_user' AND datname = 'bench'")
        fi
        results[$cfg]+="$tps "
        round_tps[$r,$cfg]=$tps
        probe=$(cpu_probe)
        probes+="$probe "
        printf '%-6s %-4s %-20s %12.1f %7s %9s %7s %9s\n' $((r + 1)) $((i + 1)) "$cfg" "$tps" "$busy" "$other" "$steal" "$probe"
    done
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- summary

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {
    if (NR % 2) printf "%.1f", v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.1f-%.1f", lo, hi}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }

declare -A med
echo
printf '%-20s %12s   %s\n' config "median tps" "range"
for cfg in "${configs[@]}"; do
    med[$cfg]=$(median <<<"${results[$cfg]}")
    printf '%-20s %12s   %s\n' "$cfg" "${med[$cfg]}" "$(spread <<<"${results[$cfg]}")"
done

r_shield=$(ratio "${med[pg_shield]}" "${med[none]}")
r_pgss=$(ratio "${med[pg_stat_statements]}" "${med[none]}")
r_vs=$(ratio "${med[pg_shield]}" "${med[pg_stat_statements]}")
echo
echo "pg_shield/none:               $r_shield"
echo "pg_stat_statements/none:      $r_pgss"
echo "pg_shield/pg_stat_statements: $r_vs"

# The same ratios paired within each round (the runs of a round are a minute
# or two apart, so slow drift of the host mostly cancels), then the median.
ratio_median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {
    if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
paired() {
    local k out=""
    for ((k = 0; k < rounds; k++)); do
        out+="$(ratio "${round_tps[$k,$1]}" "${round_tps[$k,$2]}") "
    done
    printf '%-30s %s   (per round: %s)\n' "$1/$2:" "$(ratio_median <<<"$out")" "${out% }"
}
echo
echo "paired within rounds, median of the per-round ratios:"
paired pg_shield none
paired pg_stat_statements none
paired pg_shield pg_stat_statements
echo
echo "pg_shield accounted $shield_calls statements of bench_user in its first run (warm-up included)"
[ "${shield_calls:-0}" -gt 0 ] || echo "WARNING: pg_shield did not account bench_user's statements: it was not measured"
echo "load avg:    $load_after (after)"
echo "busy%:  all CPUs busy during the run"
echo "other%: busy CPU not spent by this benchmark's server or pgbench (other processes, kernel threads)"
echo "steal%: taken by the hypervisor, where the VM reports it"
echo "probe:  ms of a fixed CPU loop after the run; it moves with the host's speed"
if [ -n "$disturbed" ]; then
    echo "WARNING: other load above 15% of the CPUs during run(s):$disturbed; figures may be disturbed"
fi
probe_spread=$(tr ' ' '\n' <<<"$probes" | grep . | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f", hi / lo}')
if awk -v s="$probe_spread" 'BEGIN {exit !(s > 1.15)}'; then
    echo "WARNING: host CPU speed varied (slowest probe / fastest = $probe_spread); ratios within that noise are not meaningful"
fi
if awk -v l="${load_before%% *}" 'BEGIN {exit !(l > 0.5)}'; then
    echo "WARNING: 1-minute load average was ${load_before%% *} before the benchmark started"
fi
echo
verdict=$(awk -v r="$r_shield" -v t="$target" 'BEGIN {print (r + 0 >= t + 0) ? "MET" : "NOT MET"}')
echo "pg_shield/none = $r_shield (target >= $target): $verdict"
