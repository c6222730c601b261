# Shared by the benchmarks in test/bench (sourced, not run).
#
# Private build: pg_shield is built from a scratch copy of the tree and
# installed with DESTDIR under the benchmark's own temporary directory, never
# into the system PostgreSQL directories.  The servers find it through two
# settings written into every cluster's postgresql.conf:
#
#   extension_destdir     Debian's postgresql-15 only: CREATE EXTENSION and
#                         '$libdir/...' module names look under this prefix
#                         first, then in the system directories
#   dynamic_library_path  so that shared_preload_libraries = 'pg_shield'
#                         loads the private pg_shield.so
#
# bench_check_private_so proves it: the postmaster and a backend that has
# called a pg_shield SQL function must map the private pg_shield.so and no
# other.
#
# The caller sets: src (repository root), tmp (private directory, removed by
# the caller), PG_CONFIG; and calls bench_setup_common first.

bench_setup_common() {
    bindir=$("$PG_CONFIG" --bindir)
    pkglibdir=$("$PG_CONFIG" --pkglibdir)
    inst="$tmp/inst"
    privlib="$inst$pkglibdir"
    clusters_started=()
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$tmp"
    chmod 755 "$tmp"
    local gucs
    gucs=$("$bindir/postgres" --describe-config 2>/dev/null || true)
    if ! grep -q '^extension_destdir[[:space:]]' <<<"$gucs"; then
        echo "$(basename "$0"): this PostgreSQL has no extension_destdir setting (Debian's postgresql-15 has);" >&2
        echo "  the benchmark needs it to load a private build without installing into the system" >&2
        exit 1
    fi
}

# Run a command as the postgres user (the server refuses to run as root).
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- env PATH="$bindir:$PATH" "$@"
    else
        env PATH="$bindir:$PATH" "$@"
    fi
}

# Build with the strict flags of scripts/build-install.sh, install under
# $inst.  Nothing outside $tmp is written.
bench_private_install() {
    local build="$tmp/build"
    mkdir -p "$build"
    tar -C "$src" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
        --exclude='tmp_check*' --exclude=output_iso --exclude=results --exclude=log -cf - . |
        tar -C "$build" -xf -
    if ! { make -s -C "$build" PG_CONFIG="$PG_CONFIG" \
               PG_CFLAGS="-Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers" &&
           make -s -C "$build" PG_CONFIG="$PG_CONFIG" install DESTDIR="$inst"; } >"$tmp/build.log" 2>&1; then
        cat "$tmp/build.log" >&2
        echo "$(basename "$0"): build failed" >&2
        exit 1
    fi
    [ -f "$privlib/pg_shield.so" ] || { echo "$(basename "$0"): no $privlib/pg_shield.so after install" >&2; exit 1; }
    [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$tmp"
    return 0
}

# bench_free_port VAR: a port no one listens on and not given out before
# (TCP is off, but the socket name uses the port).
bench_ports_taken=" "
bench_free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 30000))
        if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q . && [ ! -e "$tmp/.s.PGSQL.$p" ] &&
           [[ $bench_ports_taken != *" $p "* ]]; then
            bench_ports_taken+="$p "
            printf -v "$1" '%s' "$p"
            return 0
        fi
    done
    echo "$(basename "$0"): no free port found" >&2
    exit 1
}

# bench_initdb DATADIR PORT PRELOAD SHARED_BUFFERS [extra conf lines...]
bench_initdb() {
    local data=$1 port=$2 preload=$3 sb=$4; shift 4
    as_pg initdb -D "$data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >"$data.initdb.log" 2>&1 ||
        { cat "$data.initdb.log" >&2; exit 1; }
    {
        echo
        echo "# ---- pg_shield benchmark ($(basename "$0"))"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$tmp'"
        echo "port = $port"
        echo "shared_buffers = $sb"
        echo "max_connections = 50"
        echo "compute_query_id = on"
        echo "jit = off"
        echo "logging_collector = off"
        echo "shared_preload_libraries = '$preload'"
        echo "extension_destdir = '$inst'"
        echo "dynamic_library_path = '$privlib:\$libdir'"
        local l
        for l in "$@"; do echo "$l"; done
    } | as_pg tee -a "$data/postgresql.conf" >/dev/null
}

bench_start() {   # DATADIR LOGFILE
    as_pg pg_ctl -D "$1" -l "$2" -w -t 120 start >/dev/null
    clusters_started+=("$1")
}

bench_stop_all() {
    local d
    for d in "${clusters_started[@]:-}"; do
        [ -n "$d" ] && [ -f "$d/postmaster.pid" ] || continue
        as_pg pg_ctl -D "$d" -m fast -w -t 120 stop >/dev/null 2>&1 ||
            as_pg pg_ctl -D "$d" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
    done
}

bench_psql() {   # PORT DB psql-args...
    local port=$1 db=$2; shift 2
    as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$tmp" -p "$port" -U postgres -d "$db" -At "$@"
}

# bench_load_db PORT SCALE TAG: database "bench" with pgbench's tables at
# SCALE, pg_prewarm, and bench_user, a plain role that may only read them
# (statements of superusers are exempt from admission).  TAG names the
# pgbench -i log.  Exits on failure.
bench_load_db() {
    local port=$1 scale=$2 tag=$3
    bench_psql "$port" postgres -c "CREATE DATABASE bench"
    as_pg pgbench -h "$tmp" -p "$port" -U postgres -i -q -s "$scale" bench \
        >"$tmp/pgbench-init-$tag.log" 2>&1 ||
        { cat "$tmp/pgbench-init-$tag.log" >&2; exit 1; }
    bench_psql "$port" bench <<'SQL'
CREATE ROLE bench_user LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO bench_user;
CREATE EXTENSION pg_prewarm;
SQL
    [ "$(bench_psql "$port" bench -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'bench_user'")" = f ] ||
        { echo "bench_user is a superuser" >&2; exit 1; }
}

# bench_check_private_so DATADIR PORT DB: the postmaster and a backend that
# has run a pg_shield function map the private pg_shield.so, and no other.
bench_check_private_so() {
    local data=$1 port=$2 db=$3 pm maps bmaps
    pm=$(head -n 1 "$data/postmaster.pid")
    maps=$(awk '$6 ~ /pg_shield\.so$/ {print $6}' "/proc/$pm/maps" | sort -u)
    if [ "$maps" != "$privlib/pg_shield.so" ]; then
        echo "$(basename "$0"): postmaster $pm maps '${maps:-no pg_shield.so}', expected $privlib/pg_shield.so" >&2
        exit 1
    fi
    bmaps=$(bench_psql "$port" "$db" -c "SELECT count(*) FROM shield.role_stats" \
                -c "SELECT DISTINCT regexp_replace(l, '^.* ', '') FROM regexp_split_to_table(pg_read_file('/proc/self/maps'), E'\n') l
                    WHERE l LIKE '%pg_shield.so'" | tail -n +2)
    if [ "$bmaps" != "$privlib/pg_shield.so" ]; then
        echo "$(basename "$0"): a backend maps '${bmaps:-no pg_shield.so}', expected $privlib/pg_shield.so" >&2
        exit 1
    fi
}

bench_machine_info() {
    local cpu mem
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    [ -n "$cpu" ] || cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
    mem=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
    echo "$(nproc) CPUs, ${cpu:-unknown CPU}, $mem RAM, $(uname -sr)"
}

# The commit, and a digest of the sources actually built (the working tree
# may differ from any commit).
bench_pg_shield_version() {
    local v d
    v=$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)
    d=$(cd "$tmp/build" && find . -path ./test -prune -o -type f \( -name '*.c' -o -name '*.h' -o -name '*.sql' \
            -o -name '*.control' -o -name Makefile \) -print | LC_ALL=C sort | xargs cat | sha1sum | cut -c1-12)
    echo "$v, sources $d"
}

# ---------------------------------------------------------------- callgrind
# Instructions per statement of a configuration, for benchmarks other than
# instructions.sh (which has its own copy of this method and documents it):
# the postmaster runs under callgrind (collecting inside PostgresMain only),
# one pgbench client runs N1 and then N2 transactions of -S -M prepared, and
#
#     instructions per statement = (I(N2) - I(N1)) / (N2 - N1)
#
# less the instructions spent in WaitEventSetWait (waiting for the client's
# next message, which depends on timing, not on the statement).

# bench_cg_start DATADIR PORT OUTDIR LOGFILE: start the (stopped) cluster
# under callgrind; every backend writes OUTDIR/cg.<pid> when it exits.
bench_cg_start() {
    local data=$1 port=$2 out=$3 logf=$4 i
    as_pg mkdir -p "$out"
    as_pg valgrind --tool=callgrind --trace-children=yes --toggle-collect=PostgresMain \
        --callgrind-out-file="$out/cg.%p" --log-file="$out/valgrind.%p.log" \
        "$bindir/postgres" -D "$data" </dev/null >>"$logf" 2>&1 &
    bench_cg_pid=$!
    clusters_started+=("$data")
    for ((i = 0; i < 600; i++)); do
        as_pg pg_isready -q -h "$tmp" -p "$port" && return 0
        sleep 0.5
    done
    echo "$(basename "$0"): the server did not start under valgrind" >&2
    exit 1
}

bench_cg_stop() {   # DATADIR
    as_pg pg_ctl -D "$1" -m fast -w -t 300 stop >/dev/null
    wait "$bench_cg_pid" 2>/dev/null || true
}

# bench_cg_pgbench PORT DB USER N LOGFILE: N transactions, one client, in
# the protocol bench_protocol names (prepared unless the caller says).
bench_cg_pgbench() {
    as_pg pgbench -h "$tmp" -p "$1" -U "$3" -S -M "${bench_protocol:-prepared}" -c 1 -j 1 -n \
        --random-seed=1 -t "$4" "$2" >"$5" 2>&1 || { cat "$5" >&2; exit 1; }
    grep -q "number of transactions actually processed: $4/$4" "$5" ||
        { echo "$(basename "$0"): pgbench did not complete $4 transactions:" >&2; cat "$5" >&2; exit 1; }
}

# bench_cg_executor_starts FILE: calls of standard_ExecutorStart in the
# profile (one per statement of pgbench -S, whatever hook wraps it).
bench_cg_executor_starts() {
    callgrind_annotate --auto=no --tree=caller "$1" | awk '
        /^ *$/ { n = 0; next }
        /^ *[0-9,]+ +\( *[0-9.]+%\) +< / {
            if (match($0, /\([0-9,]+x\)/)) { c = substr($0, RSTART + 1, RLENGTH - 3); gsub(/,/, "", c); n += c }
            next
        }
        /\*  [^ ]*:standard_ExecutorStart \[/ { total += n }
        { n = 0 }
        END { print total + 0 }'
}

# bench_cg_inclusive FILE FUNCTION: inclusive instructions of FUNCTION.
bench_cg_inclusive() {
    callgrind_annotate --auto=no --threshold=100 --inclusive=yes "$1" | awk -v fn="$2" '
        /^ *[0-9,]+ +\( *[0-9.]+%\) +/ && index($0, ":" fn " [") && !done {
            s = $1; gsub(/,/, "", s); print s; done = 1 }
        END { if (!done) print 0 }'
}

# bench_cg_measure OUTDIR PORT DB USER N: run N transactions; print the
# profile of the client's backend (the new, complete profile that shows
# exactly N statements; pgbench's setup connection leaves another).
bench_cg_measure() {
    local out=$1 n=$5 before files f pid c i found=""
    local -A examined=()
    before=$(ls -d "$out"/cg.* 2>/dev/null || true)
    bench_cg_pgbench "$2" "$3" "$4" "$n" "$out/pgbench-$n.log"
    for ((i = 0; i < 600; i++)); do
        for f in "$out"/cg.*; do
            [ -e "$f" ] || continue
            case $f in *.self|*.incl) continue ;; esac   # annotations, not profiles
            grep -qx "$f" <<<"$before" && continue
            [ -n "${examined[$f]:-}" ] && continue
            pid=${f##*.}
            [ -d "/proc/$pid" ] && continue
            tail -n 1 "$f" | grep -q '^totals:' || continue
            c=$(bench_cg_executor_starts "$f")
            examined[$f]=$c
            if [ "$c" -eq "$n" ]; then found=$f; break; fi
        done
        [ -n "$found" ] && break
        sleep 0.2
    done
    if [ -z "$found" ]; then
        echo "$(basename "$0"): no backend profile with $n statements after pgbench -t $n; seen:" >&2
        for f in "${!examined[@]}"; do echo "  $f: ${examined[$f]} statements" >&2; done
        exit 1
    fi
    echo "$found"
}

# bench_cg_per_statement DATADIR PORT DB USER N1 N2 WARMUP OUTDIR LOGFILE:
# the cluster must be stopped; it is started under callgrind, prewarmed
# (pg_prewarm of the pgbench tables, the extension must exist in DB), warmed
# up with WARMUP transactions, measured, and stopped again.  Prints
# "all wait net": instructions per statement, those in WaitEventSetWait,
# and the difference (the figure to compare).
bench_cg_per_statement() {
    local data=$1 port=$2 db=$3 user=$4 n1=$5 n2=$6 warm=$7 out=$8 logf=$9 f1 f2 t1 t2 w1 w2
    bench_cg_start "$data" "$port" "$out" "$logf"
    bench_psql "$port" "$db" -c "SELECT sum(pg_prewarm(c)) FROM unnest(ARRAY['pgbench_accounts', 'pgbench_accounts_pkey',
        'pgbench_branches', 'pgbench_branches_pkey', 'pgbench_tellers', 'pgbench_tellers_pkey']::regclass[]) c" >/dev/null
    bench_cg_pgbench "$port" "$db" "$user" "$warm" "$out/pgbench-warmup.log"
    f1=$(bench_cg_measure "$out" "$port" "$db" "$user" "$n1")
    f2=$(bench_cg_measure "$out" "$port" "$db" "$user" "$n2")
    bench_cg_stop "$data"
    t1=$(sed -n 's/^totals: //p' "$f1"); t2=$(sed -n 's/^totals: //p' "$f2")
    w1=$(bench_cg_inclusive "$f1" WaitEventSetWait); w2=$(bench_cg_inclusive "$f2" WaitEventSetWait)
    awk -v t1="$t1" -v t2="$t2" -v w1="$w1" -v w2="$w2" -v d=$((n2 - n1)) 'BEGIN {
        a = (t2 - t1) / d; w = (w2 - w1) / d; printf "%.1f %.1f %.1f\n", a, w, a - w }'
}

# ---------------------------------------------------------------- measuring

# bench_cpu_probe: milliseconds of a fixed single-threaded CPU loop (about
# 0.2 s).  On shared or throttled virtual machines it moves with the host's
# speed, not with anything a benchmark does.
bench_cpu_probe() {
    local t0 t1
    t0=$(date +%s%N)
    awk 'BEGIN {for (i = 0; i < 10000000; i++) x += i; exit}'
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}

# bench_machine_busy: busy jiffies of all CPUs since boot.
bench_machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat; }

# bench_children_cpu PID: "cutime cstime" of PID's reaped children.
bench_children_cpu() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $14, $15}'; }

# bench_wait_reaped PMPID IDLE: a backend's CPU time reaches its
# postmaster's counters only when the postmaster reaps it, a moment after
# the client disconnects: wait (5 s at most) until the postmaster has no
# more children than IDLE, its count when idle.
bench_wait_reaped() {
    local k
    for ((k = 0; k < 100; k++)); do
        [ "$(pgrep -c -P "$1" || true)" -le "$2" ] && return 0
        sleep 0.05
    done
}

# bench_quartiles FMT: reads numbers, prints "Q1 median Q3" (linear
# interpolation, R type 7), each with printf format FMT.
bench_quartiles() { tr ' ' '\n' | grep . | sort -g | awk -v f="$1" '{v[NR] = $1}
    function q(p,   h, lo) { h = (NR - 1) * p + 1; lo = int(h); return lo >= NR ? v[NR] : v[lo] + (h - lo) * (v[lo + 1] - v[lo]) }
    END { printf f " " f " " f "\n", q(0.25), q(0.5), q(0.75) }'; }

# bench_ratio A B: A / B with three decimals.
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
