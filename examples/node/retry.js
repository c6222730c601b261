// Retry pg_shield's retryable errors with node-postgres (pg).
//
// runWithRetry() runs one statement on a connection of the pool.  When
// pg_shield turns it away (53S01 to 53S05), or it hits a serialization
// failure or a deadlock (40001, 40P01), it waits the time of the HINT
// "Retry after N ms." plus up to half again as much at random (so that the
// clients turned away together do not come back together), and tries
// again, a few times at most.  54001 (the plan costs more than max_cost)
// and 57014 (a deadline or statement_timeout) are thrown at once: running
// the same statement again would fail the same way.
//
// It takes a connection with pool.connect() and gives it back with
// client.release(): pg_shield's errors are ERRORs, the connection stays
// usable.  pool.query() would instead close the connection on every error
// (pg-pool releases it with the error, which removes it from the pool), so
// each rejection would cost a new connection.
//
// Run against a role with shield.set_role_policy(role, max_rate => 2,
// max_cost => 1000): connects with the PGHOST, PGPORT, PGDATABASE and
// PGUSER of the environment and prints summary lines.
'use strict';

const { Pool } = require('pg');

const RETRYABLE = new Set(['53S01', '53S02', '53S03', '53S04', '53S05', '40001', '40P01']);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Milliseconds to wait: the hinted time plus 0-50 %, else backoff with full jitter.
function retryDelayMs(err, attempt) {
  const hint = /Retry after (\d+) ms/.exec(err.hint || '');
  return hint ? Number(hint[1]) * (1 + Math.random() / 2) : Math.random() * 100 * 2 ** attempt;
}

async function runWithRetry(pool, sql, params, { attempts = 5, onRetry } = {}) {
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    let delay;
    try {
      return await client.query(sql, params);
    } catch (err) {
      if (!RETRYABLE.has(err.code) || attempt === attempts) throw err; // 54001, 57014, ...
      if (onRetry) onRetry(err);
      delay = retryDelayMs(err, attempt);
    } finally {
      client.release(); // no error argument: the connection goes back to the pool
    }
    await sleep(delay);
  }
}

async function main() {
  const pool = new Pool(); // PGHOST, PGPORT, PGDATABASE, PGUSER
  const retried = [];
  const pids = new Set();
  for (let i = 0; i < 5; i++) {
    const res = await runWithRetry(pool, 'SELECT $1::int AS i, pg_backend_pid() AS pid', [i],
      { onRetry: (err) => retried.push(err.code) });
    if (res.rows[0].i !== i) throw new Error(`unexpected result ${JSON.stringify(res.rows)}`);
    pids.add(res.rows[0].pid);
  }
  let costly;
  try {
    await runWithRetry(pool, 'SELECT count(*) FROM generate_series(1, 1000) a, generate_series(1, 1000) b',
      [], { onRetry: (err) => retried.push(err.code) });
    throw new Error('the costly statement ran');
  } catch (err) {
    if (err.code !== '54001') throw err;
    costly = err.code;
  }
  const codes = [...new Set(retried)].sort().join('/') || '-';
  console.log(`ok: 5 statements, ${retried.length} retries after ${codes}, ${costly} not retried, ` +
    `${pids.size} connection(s)`);

  // What pool.query does with the same error: the bucket is empty now.
  const before = pool.totalCount;
  let rejected = 0;
  for (let i = 0; i < 3 && rejected === 0; i++) {
    try {
      await pool.query('SELECT 1');
    } catch (err) {
      if (err.code !== '53S04') throw err;
      rejected++;
    }
  }
  console.log(`pool.query: ${rejected} rejected with 53S04, connections in the pool ${before} -> ${pool.totalCount}`);
  await pool.end();
}

main().catch((err) => {
  console.error(`error: ${err.code || ''} ${err.message}`);
  process.exit(1);
});
