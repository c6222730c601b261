# The protection scenario, shared by scripts/demo.sh and
# test/bench/protection.sh (sourced, not run).
#
# A critical role, app, runs pgbench -S with 4 clients while a low role,
# report, floods the server with a full-scan aggregate from 16 clients that
# retry on pg_shield's errors as an application would (test/bench/flood.c:
# sleep for the hinted "Retry after N ms.", capped at 1 s, and send again).
#
# The caller defines as_pg (run a command as the postgres user) and sets:
#   PROT_HOST, PROT_PORT   the server's socket directory and port
#   PROT_DB                the database (created by prot_load_db)
#   PROT_OUT               a directory for logs and results
#   bindir                 the PostgreSQL client programs
# Tunables (environment): PROT_SCALE, PROT_CRIT_CLIENTS, PROT_FLOOD_CLIENTS,
# PROT_MAX_ACTIVE, PROT_QUEUE_TIMEOUT, PROT_REPORT_RATE, PROT_QUERY (the
# report; a statement that takes no CPU, such as SELECT pg_sleep(0.05),
# shows what the scan's CPU costs the critical role).

PROT_SCALE=${PROT_SCALE:-5}                 # one scan of pgbench_accounts: ~100 ms on 2 CPUs
PROT_CRIT_CLIENTS=${PROT_CRIT_CLIENTS:-4}
PROT_FLOOD_CLIENTS=${PROT_FLOOD_CLIENTS:-16}
PROT_MAX_ACTIVE=${PROT_MAX_ACTIVE:-0}       # 0: no instance-wide limit
PROT_QUEUE_TIMEOUT=${PROT_QUEUE_TIMEOUT:-}  # the report role's queue_timeout; empty: the default
PROT_REPORT_RATE=${PROT_REPORT_RATE:-}      # the report role's max_rate; empty: none
PROT_QUERY=${PROT_QUERY:-'SELECT bid, count(*), sum(abalance) FROM pgbench_accounts GROUP BY bid'}

prot_psql() {   # psql-args...: as postgres, unaligned, stop on error
    as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$PROT_HOST" -p "$PROT_PORT" -U postgres -d "$PROT_DB" -At "$@"
}

# prot_build_flood: compile the flood client into $PROT_OUT/flood.
prot_build_flood() {
    local here inc
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    inc=$("$bindir/pg_config" --includedir 2>/dev/null || echo /usr/include/postgresql)
    cc -O2 -Wall -Wextra -Werror -o "$PROT_OUT/flood" "$here/flood.c" -I"$inc" -lpq -lpthread
}

# prot_load_db: the database with pgbench's tables at PROT_SCALE, prewarmed,
# and the two roles.  The pg_shield extension must be loadable.
prot_load_db() {
    as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$PROT_HOST" -p "$PROT_PORT" -U postgres -d postgres \
        -c "CREATE DATABASE $PROT_DB"
    as_pg "$bindir/pgbench" -i -q -s "$PROT_SCALE" -h "$PROT_HOST" -p "$PROT_PORT" -U postgres "$PROT_DB" \
        >"$PROT_OUT/pgbench-init.log" 2>&1 || { cat "$PROT_OUT/pgbench-init.log" >&2; return 1; }
    prot_psql >/dev/null <<'SQL'
CREATE EXTENSION pg_shield;
CREATE EXTENSION pg_prewarm;
CREATE ROLE app LOGIN;       -- the critical traffic: point lookups
CREATE ROLE report LOGIN;    -- the flood: a full-scan aggregate
GRANT SELECT ON ALL TABLES IN SCHEMA public TO app, report;
VACUUM ANALYZE;
SELECT pg_prewarm(c) FROM unnest(ARRAY['pgbench_accounts', 'pgbench_accounts_pkey',
    'pgbench_branches', 'pgbench_tellers']::regclass[]) c;
SQL
}

# prot_policy_sql: the migration a DBA would write.
prot_policy_sql() {
    local qt=""
    [ -n "$PROT_QUEUE_TIMEOUT" ] && qt=" queue_timeout => '$PROT_QUEUE_TIMEOUT',"
    [ -n "$PROT_REPORT_RATE" ] && qt="$qt max_rate => $PROT_REPORT_RATE,"
    echo "-- the reports: one at a time, at low priority, without parallel workers"
    echo "SELECT shield.set_role_policy('report', max_concurrent => 1,$qt priority => 'low',"
    echo "                              max_parallel_workers => 0);"
    echo "-- the web tier: first in the admission queue, never shed"
    echo "SELECT shield.set_role_policy('app', priority => 'critical');"
    if [ "$PROT_MAX_ACTIVE" -gt 0 ]; then
        echo "-- the instance"
        echo "ALTER SYSTEM SET pg_shield.max_active = $PROT_MAX_ACTIVE;"
        echo "SELECT pg_reload_conf();"
    fi
    return 0
}

# prot_wait_setting NAME VALUE: a new session sees the setting (the
# postmaster has processed the reload).
prot_wait_setting() {
    local i
    for ((i = 0; i < 200; i++)); do
        [ "$(prot_psql -c "SELECT coalesce(current_setting('$1', true), '')")" = "$2" ] && return 0
        sleep 0.05
    done
    echo "$(basename "$0"): $1 did not become '$2' after a reload" >&2
    return 1
}

# prot_apply_policies SQLFILE: run the migration, wait until it is in force.
prot_apply_policies() {
    prot_psql -f "$1" >/dev/null
    [ "$PROT_MAX_ACTIVE" -gt 0 ] && prot_wait_setting pg_shield.max_active "$PROT_MAX_ACTIVE"
    return 0
}

# prot_clear_policies: back to no policy at all.
prot_clear_policies() {
    prot_psql >/dev/null <<'SQL'
SELECT shield.drop_role_policy('report');
SELECT shield.drop_role_policy('app');
ALTER SYSTEM RESET pg_shield.max_active;
SQL
    prot_psql -c "SELECT pg_reload_conf()" >/dev/null
    prot_wait_setting pg_shield.max_active 0
}

# CPU ticks (user + system) of the backends of a role, by pid list.
prot_ticks() {
    local p t=0 s
    for p in "$@"; do
        s=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || s=0
        t=$((t + ${s:-0}))
    done
    echo "$t"
}

prot_flood_pid=""
prot_crit_pid=""
# prot_kill_clients: for the caller's exit trap.
prot_kill_clients() {
    [ -n "$prot_flood_pid" ] && kill -TERM "$prot_flood_pid" 2>/dev/null
    [ -n "$prot_crit_pid" ] && kill -TERM "$prot_crit_pid" 2>/dev/null
    return 0
}

# prot_run LABEL SECONDS CRIT_CLIENTS FLOOD_CLIENTS [PROGRESS_SECONDS]
# Runs the critical pgbench and the flood side by side for SECONDS (either
# may have 0 clients), and writes $PROT_OUT/LABEL.sum ("key value" lines:
# tps p50_ms p99_ms tx, completed shed rejected retried errors reject_p50_ms
# reject_p99_ms reject_n, flood_cores busy_cores) and LABEL.series (per
# second of the critical run: second, transactions, p50 ms, p99 ms).  With
# PROGRESS_SECONDS, pgbench's progress lines are shown, indented.
prot_run() {
    local label=$1 secs=$2 ncrit=$3 nflood=$4 progress=${5:-0}
    local out="$PROT_OUT/$label" fifo ready="" fpids="" t0 t1 b0 b1 fd
    rm -f "$out".* "$out"-crit.*
    as_pg psql -X -q -h "$PROT_HOST" -p "$PROT_PORT" -U postgres -d "$PROT_DB" -c "SELECT shield.reset()" >/dev/null
    if [ "$nflood" -gt 0 ]; then
        fifo="$out.ready"
        mkfifo "$fifo"
        exec {fd}<>"$fifo"
        "$PROT_OUT/flood" -d "host=$PROT_HOST port=$PROT_PORT dbname=$PROT_DB user=report application_name=flood" \
            -c "$nflood" -q "$PROT_QUERY" -e "$out.error" -r "$fifo" \
            >"$out.flood" 2>"$out.flood-stderr" &
        prot_flood_pid=$!
        read -r -t 60 -u "$fd" ready || true
        exec {fd}<&-
        rm -f "$fifo"
        if [ "$ready" != ready ]; then
            echo "$(basename "$0"): the flood client did not start:" >&2
            cat "$out.flood-stderr" >&2
            return 1
        fi
        fpids=$(prot_psql -c "SELECT pid FROM pg_stat_activity WHERE usename = 'report' AND application_name = 'flood'")
    fi
    # shellcheck disable=SC2086
    t0=$(prot_ticks $fpids)
    b0=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat)
    if [ "$ncrit" -gt 0 ]; then
        local popt=()
        [ "$progress" -gt 0 ] && popt=(--progress="$progress")
        # pgbench writes its per-transaction logs into the current directory
        (cd "$PROT_OUT" && exec "$bindir/pgbench" -n -S -c "$ncrit" -j 2 -T "$secs" "${popt[@]}" \
            -l --log-prefix="$label-crit" -h "$PROT_HOST" -p "$PROT_PORT" -U app "$PROT_DB") \
            >"$out.pgbench" 2> >(tee "$out.pgbench-stderr" | { grep --line-buffered '^progress' || true; } |
                                   sed -u "s/^/   [$label] /" >&2) &
        prot_crit_pid=$!
        wait "$prot_crit_pid" || { prot_crit_pid=""; cat "$out.pgbench-stderr" >&2; return 1; }
        prot_crit_pid=""
    else
        sleep "$secs"   # the flood alone: the length of the run
    fi
    # shellcheck disable=SC2086
    t1=$(prot_ticks $fpids)
    b1=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat)
    if [ -n "$prot_flood_pid" ]; then
        kill -TERM "$prot_flood_pid"
        wait "$prot_flood_pid" || { prot_flood_pid=""; cat "$out.flood-stderr" >&2; return 1; }
        prot_flood_pid=""
    fi
    {
        local hz
        hz=$(getconf CLK_TCK)
        awk -v t="$((t1 - t0))" -v b="$((b1 - b0))" -v s="$secs" -v hz="$hz" \
            'BEGIN {printf "flood_cores %.2f\nbusy_cores %.2f\n", t / hz / s, b / hz / s}'
        if [ "$ncrit" -gt 0 ]; then
            sed -n 's/^tps = \([0-9.]*\) (without.*/tps \1/p' "$out.pgbench"
            # per-transaction log: client tx latency_us script epoch_s epoch_us
            cat "$PROT_OUT/$label-crit".[0-9]* | awk '{print $3}' | sort -n | awk '
                {v[NR] = $1}
                function q(p,  k) { k = int(p * NR + 0.999999); if (k < 1) k = 1; return v[k] / 1000 }
                END {printf "tx %d\np50_ms %.3f\np99_ms %.3f\n", NR, q(0.5), q(0.99)}'
        fi
        [ "$nflood" -gt 0 ] && cat "$out.flood"
    } >"$out.sum"
    if [ "$ncrit" -gt 0 ]; then
        # whole seconds only (the last one is cut short by -T)
        cat "$PROT_OUT/$label-crit".[0-9]* | awk '{print $5, $3}' | sort -k1,1n -k2,2n | awk -v secs="$secs" '
            function flush(  k50, k99) {
                if (!n) return
                k50 = int(0.5 * n + 0.999999); k99 = int(0.99 * n + 0.999999)
                if (sec - first < secs) printf "%d %d %.3f %.3f\n", sec - first, n, v[k50] / 1000, v[k99] / 1000
            }
            NR == 1 {first = $1}
            $1 != sec {flush(); sec = $1; n = 0}
            {v[++n] = $2}
            END {flush()}' >"$out.series"
        rm -f "$PROT_OUT/$label-crit".[0-9]*
    fi
}

# prot_get LABEL KEY: a value of a run's summary (empty if absent).
prot_get() { awk -v k="$2" '$1 == k {print $2}' "$PROT_OUT/$1.sum"; }
