// Node services as the incidents saw them, driven by the integration tests:
//   node incident.js crash-holding PORT N   check out N clients, open a transaction on each,
//                                           never release them, and die (exit 3)
//   node incident.js slow-handlers PORT N   N handlers at once, each: query, a 1 s outside
//                                           call with no transaction open, query
// Prints one JSON line with what it saw.
'use strict';
const { Pool } = require('pg');

const [mode, port, count] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] || 5)];
const pool = new Pool({
  host: '127.0.0.1', port, user: 'app', database: 'appdb', max: count,
  connectionTimeoutMillis: 10000, idleTimeoutMillis: 1000,
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function crashHolding() {
  const pids = [];
  for (let i = 0; i < count; i++) {
    const c = await pool.connect(); // and never c.release(): the incident's bug
    await c.query('BEGIN');
    const r = await c.query("select pg_backend_pid() as pid, 'held by node' as marker");
    pids.push(r.rows[0].pid);
  }
  console.log(JSON.stringify({ held: pids.length, pids }));
  process.exit(3); // the process dies with its transactions open
}

async function slowHandlers() {
  const t0 = Date.now();
  const errors = [];
  const handler = async (i) => {
    try {
      await pool.query('select $1::int as i', [i]);
      await sleep(1000); // an LLM or HTTPS call; nothing is held in the pooler meanwhile
      await pool.query('select $1::int as i', [i]);
    } catch (e) {
      errors.push(String(e.message || e));
    }
  };
  await Promise.all(Array.from({ length: count }, (_, i) => handler(i)));
  console.log(JSON.stringify({ handlers: count, errors, seconds: (Date.now() - t0) / 1000 }));
  await pool.end();
}

(mode === 'crash-holding' ? crashHolding() : slowHandlers()).catch((e) => {
  console.log(JSON.stringify({ fatal: String(e.message || e) }));
  process.exit(1);
});
