// The worker-thread side of the PGlite driver: holds the PGlite instance and runs the queries posted to it.

/**
 * The worker's source, as plain CommonJS JavaScript run with `new Worker(source, { eval: true })`.
 * A string rather than a module file because the worker must load the same way under
 * `node --import tsx`, under vitest (whose TS transform does not reach worker threads) and
 * from `dist/`: an eval worker needs no loader, and it imports PGlite from the URL the main
 * thread resolved (`workerData.pgliteUrl`), so both threads use the same PGlite build.
 *
 * Protocol (main → worker): `[id, text, params]` runs one statement; `[id, null]` closes the
 * database. Worker → main: `[0, true]` once PGlite is ready, or `[0, false, error]` if it could
 * not open; then `[id, rows]` or `[id, undefined, error]` per message, in the order received.
 * Messages run strictly one after another: the main side relies on that order to keep a
 * transaction's statements together. Errors travel as plain objects (see `wireError`), since
 * structured clone keeps an Error's message but drops PostgreSQL's fields such as `code`.
 */
export const PGLITE_WORKER_SOURCE = /* js */ `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');

const FIELDS = ['code', 'severity', 'detail', 'hint', 'position', 'where', 'schema', 'table', 'column', 'dataType', 'constraint', 'routine', 'query'];

function wireError(err) {
  const out = { message: String(err && err.message !== undefined ? err.message : err) };
  if (err && typeof err === 'object') {
    for (const k of FIELDS) if (typeof err[k] === 'string') out[k] = err[k];
    if (typeof err.stack === 'string') out.stack = err.stack;
  }
  return out;
}

async function main() {
  let db;
  try {
    const { PGlite } = await import(workerData.pgliteUrl);
    db = workerData.dataDir ? new PGlite(workerData.dataDir) : new PGlite();
    await db.waitReady;
  } catch (err) {
    parentPort.postMessage([0, false, wireError(err)]);
    return;
  }

  async function run(msg) {
    const id = msg[0];
    try {
      if (msg[1] === null) {
        if (!db.closed) await db.close();
        parentPort.postMessage([id, null]);
      } else {
        const r = await db.query(msg[1], msg[2]);
        parentPort.postMessage([id, r.rows]);
      }
    } catch (err) {
      parentPort.postMessage([id, undefined, wireError(err)]);
    }
  }

  // One at a time, in arrival order, whatever PGlite's own queueing does.
  let tail = Promise.resolve();
  parentPort.on('message', (msg) => {
    tail = tail.then(() => run(msg));
  });
  parentPort.postMessage([0, true]);
}

main();
`;
