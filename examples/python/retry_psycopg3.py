#!/usr/bin/env python3
"""Retry pg_shield's retryable errors with psycopg 3.

run_with_retry() runs one statement in its own transaction.  When pg_shield
turns it away (53S01 to 53S05), or it hits a serialization failure or a
deadlock (40001, 40P01), it rolls back, waits the time of the HINT
"Retry after N ms." plus up to half again as much at random (so that the
clients turned away together do not come back together), and tries again,
a few times at most.  54001 (the plan costs more than max_cost) and 57014
(a deadline or statement_timeout) are raised at once: running the same
statement again would fail the same way.

The connection stays usable after any of these errors: they are ERRORs,
never FATAL, and leaving conn.transaction() rolls the aborted transaction
back.

Run against a role with shield.set_role_policy(role, max_rate => 2,
max_cost => 1000): connects with the PGHOST, PGPORT, PGDATABASE and PGUSER
of the environment and prints a summary line.
"""
import random
import re
import sys
import time

import psycopg

RETRYABLE = {"53S01", "53S02", "53S03", "53S04", "53S05", "40001", "40P01"}


def run_with_retry(conn, sql, params=None, attempts=5, on_retry=None):
    for attempt in range(1, attempts + 1):
        try:
            with conn.transaction(), conn.cursor() as cur:  # rolls back on error
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        except psycopg.Error as e:
            if e.sqlstate not in RETRYABLE or attempt == attempts:
                raise  # 54001, 57014, ...: the same statement would fail again
            if on_retry:
                on_retry(e)
            hint = re.search(r"Retry after (\d+) ms", e.diag.message_hint or "")
            time.sleep(int(hint[1]) / 1000 * (1 + random.random() / 2) if hint
                       else random.uniform(0, 0.1 * 2 ** attempt))  # jitter


def main():
    # prepare_threshold=None: no server-side prepared statements, which
    # PgBouncer before 1.21 cannot carry in transaction mode
    conn = psycopg.connect("", prepare_threshold=None)  # PGHOST, PGPORT, ...
    retried = []
    for i in range(5):
        rows = run_with_retry(conn, "SELECT %s::int", (i,), on_retry=retried.append)
        assert rows == [(i,)], rows
    try:
        run_with_retry(conn, "SELECT count(*) FROM generate_series(1, 1000) a, "
                       "generate_series(1, 1000) b", on_retry=retried.append)
        sys.exit("error: the costly statement ran")
    except psycopg.errors.lookup("54001") as e:
        costly = e.sqlstate
    codes = sorted({e.sqlstate for e in retried})
    print(f"ok: 5 statements, {len(retried)} retries after {'/'.join(codes) or '-'}, "
          f"{costly} not retried")
    conn.close()


if __name__ == "__main__":
    main()
