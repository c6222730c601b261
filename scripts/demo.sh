#!/usr/bin/env bash
# pg_shield demo: start a throwaway server with pg_shield preloaded, run a
# mixed workload from four application roles at once, and show what
# pg_shield saw: the query shapes and roles that cost the most.  Then
# declare two policies, as a migration would (the reports may run one at a
# time, at low priority; the web tier is critical), run the same workload
# again and compare.
#
#   scripts/demo.sh            (as root on Debian 12; DEMO_SECONDS=15 per phase)
#
# Everything runs on a Unix socket in a temporary directory and is removed
# at the end.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
seconds=${DEMO_SECONDS:-15}

"$src/scripts/install-deps.sh"
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
bindir=$("$PG_CONFIG" --bindir)
echo "== building and installing pg_shield"
work=$("$src/scripts/build-install.sh")

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- env PATH="$bindir:$PATH" "$@"
    else
        env PATH="$bindir:$PATH" "$@"
    fi
}

dir=$(mktemp -d /tmp/pg_shield-demo.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
port=$((20000 + $$ % 20000))
cleanup() {
    as_postgres pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir" "$work"
}
trap cleanup EXIT

echo "== starting a throwaway server (port $port, socket in $dir)"
as_postgres initdb -D "$dir/data" -A trust -U postgres >/dev/null
cat >>"$dir/data/postgresql.conf" <<CONF
shared_preload_libraries = 'pg_shield'
compute_query_id = on
port = $port
unix_socket_directories = '$dir'
listen_addresses = ''
max_connections = 50
CONF
as_postgres pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null

psql_su() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres "$@"; }

psql_su -d postgres -c "CREATE DATABASE shop"
as_postgres pgbench -i -q -s 5 -h "$dir" -p "$port" -U postgres shop >/dev/null 2>&1
psql_su -d shop <<'SQL'
CREATE EXTENSION pg_shield;
CREATE ROLE web_app LOGIN;        -- point lookups from the web tier
CREATE ROLE reporting LOGIN;      -- dashboards: whole-table aggregates
CREATE ROLE orm_service LOGIN;    -- an ORM issuing an unindexed search
CREATE ROLE batch_jobs LOGIN;     -- writes
GRANT SELECT ON ALL TABLES IN SCHEMA public TO web_app, reporting, orm_service, batch_jobs;
GRANT UPDATE, INSERT ON pgbench_accounts, pgbench_history TO batch_jobs;
SQL

cat >"$dir/web.sql" <<'SQL'
\set aid random(1, 500000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SQL
cat >"$dir/reporting.sql" <<'SQL'
SELECT bid, count(*), sum(abalance) FROM pgbench_accounts GROUP BY bid;
SQL
cat >"$dir/orm.sql" <<'SQL'
\set bid random(1, 5)
SELECT aid, abalance FROM pgbench_accounts WHERE bid = :bid AND abalance > 100 LIMIT 20;
SELECT bbalance FROM pgbench_branches WHERE bid = :bid;
SQL
cat >"$dir/batch.sql" <<'SQL'
\set aid random(1, 500000)
\set delta random(-500, 500)
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, :aid, :delta, now());
SQL
chmod 644 "$dir"/*.sql

bench() {
    local role=$1 clients=$2 script=$3
    as_postgres pgbench -n -M prepared -h "$dir" -p "$port" -U "$role" -c "$clients" \
        -T "$seconds" -f "$dir/$script" shop >"$dir/$role.out" 2>&1
}
tps() { grep -E '^tps' "$dir/$1.out" | sed 's/tps = \([0-9.]*\).*/\1/'; }
workload() {
    bench web_app 4 web.sql &
    bench reporting 4 reporting.sql &
    bench orm_service 2 orm.sql &
    bench batch_jobs 2 batch.sql &
    # a few statements that fail, as applications' do
    for i in 1 2 3; do
        as_postgres psql -X -q -h "$dir" -p "$port" -U orm_service -d shop \
            -c "SELECT aid / (abalance - abalance) FROM pgbench_accounts WHERE aid = $i" >/dev/null 2>&1 || true
    done
}

echo "== phase 1, no policies: ${seconds}s of web_app x4, reporting x4, orm_service x2, batch_jobs x2"
workload
wait
declare -A before
for role in web_app reporting orm_service batch_jobs; do
    before[$role]=$(tps "$role")
    printf '   %-12s %8.1f transactions/s\n' "$role" "${before[$role]}"
done

echo
echo "== top query shapes by total execution time (shield.query_stats)"
psql_su -d shop -P pager=off <<'SQL'
SELECT rolname AS role, calls, errors,
       round(total_exec_ms::numeric, 1) AS total_ms,
       round(mean_exec_ms::numeric, 3) AS mean_ms,
       round(p95_exec_ms::numeric, 3) AS p95_ms,
       round(p99_exec_ms::numeric, 3) AS p99_ms,
       round(mean_cost::numeric) AS cost,
       left(regexp_replace(query, '\s+', ' ', 'g'), 60) AS query
FROM shield.query_stats
WHERE datname = 'shop' AND rolname <> 'postgres'
ORDER BY total_exec_ms DESC
LIMIT 8;
SQL

echo "== per role (shield.role_stats)"
psql_su -d shop -P pager=off <<'SQL'
SELECT rolname AS role, calls, errors, rows,
       round(total_exec_ms::numeric, 1) AS total_ms,
       round(mean_exec_ms::numeric, 3) AS mean_ms,
       round(max_exec_ms::numeric, 1) AS max_ms
FROM shield.role_stats
WHERE datname = 'shop' AND rolname <> 'postgres'
ORDER BY total_exec_ms DESC;
SQL

echo "== instance (shield.status)"
psql_su -d shop -P pager=off -x -c "SELECT mode, fingerprints, max_fingerprints, evictions, roles FROM shield.status"

psql_su -d shop -At <<'SQL'
WITH q AS (
    SELECT rolname, calls, total_exec_ms,
           left(regexp_replace(query, '\s+', ' ', 'g'), 50) AS query,
           100 * total_exec_ms / sum(total_exec_ms) OVER () AS pct_time,
           100.0 * calls / sum(calls) OVER () AS pct_calls
    FROM shield.query_stats
    WHERE datname = 'shop' AND rolname <> 'postgres')
SELECT format('The costliest shape (%s: "%s...") used %s%% of all execution time '
              'with %s%% of the statements: the one a policy should limit.',
              rolname, query, round(pct_time), round(pct_calls, 2))
FROM q ORDER BY total_exec_ms DESC LIMIT 1;
SQL

echo
echo "== declaring policies, as a migration would"
psql_su -d shop -e <<'SQL'
SELECT shield.set_role_policy('reporting', max_concurrent => 1, priority => 'low',
                              queue_timeout => '60s');
SELECT shield.set_role_policy('web_app', priority => 'critical');
SQL
psql_su -d shop -c "SELECT shield.reset()" >/dev/null

echo "== phase 2, same workload under the policies (${seconds}s)"
workload
sleep $(( seconds / 2 ))
echo "   halfway, statements admitted or queued (shield.activity):"
psql_su -d shop -P pager=off <<'SQL'
SELECT rolname AS role, state, priority, count(*) AS statements
FROM shield.activity WHERE datname = 'shop'
GROUP BY 1, 2, 3 ORDER BY 1, 2;
SQL
wait

echo "== throughput before and after (pgbench transactions per second)"
for role in web_app reporting orm_service batch_jobs; do
    printf '   %-12s %8.1f -> %8.1f\n' "$role" "${before[$role]}" "$(tps "$role")"
done
echo "== admission per role in phase 2 (shield.role_stats)"
psql_su -d shop -P pager=off <<'SQL'
SELECT rolname AS role, calls, admitted, queued,
       round(queue_ms::numeric / greatest(queued, 1), 1) AS mean_wait_ms,
       rejected, peak_active, active, waiting
FROM shield.role_stats
WHERE datname = 'shop' AND rolname <> 'postgres'
ORDER BY calls DESC;
SQL
psql_su -d shop -At <<'SQL'
SELECT format('reporting ran at most %s at a time and waited %s ms on average; '
              'nothing was rejected (%s), and every slot was given back (%s running now).',
              peak_active, round(queue_ms::numeric / greatest(queued, 1)), rejected,
              (SELECT active FROM shield.status))
FROM shield.role_stats WHERE datname = 'shop' AND rolname = 'reporting';
SQL
