// postinstall: guards postgres.js 3.4.x against an uncatchable crash when PostgreSQL closes a
// connection while a small write is queued (porsager/postgres#1066, #1154, #1208; fix as in
// PR #1209, unreleased). Without it, restarting PostgreSQL can kill a gateway with
// "TypeError: Cannot read properties of null (reading 'write')" from a setImmediate callback.
// The guard rejects the pending queries with CONNECTION_CLOSED instead, which the SQL port
// turns into `unavailable`. Idempotent; fails loudly if the driver's code changed shape.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import console from 'node:console';
import process from 'node:process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', 'postgres');
const ORIGINAL = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`;
const PATCHED = `  function nextWrite(fn) {
    if (!socket) { // parley: guard, see scripts/patch-postgres.mjs
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options, socket))
      return false
    }
    const x = socket.write(chunk, fn)`;

let patched = 0;
for (const rel of ['src/connection.js', 'cjs/src/connection.js', 'cf/src/connection.js']) {
  const file = join(root, rel);
  if (!existsSync(file)) continue;
  const text = readFileSync(file, 'utf8');
  if (text.includes('parley: guard')) continue;
  if (!text.includes(ORIGINAL)) {
    console.error(`patch-postgres: ${rel} does not look like postgres.js 3.4.x; check whether the nextWrite fix was released`);
    process.exit(1);
  }
  writeFileSync(file, text.replace(ORIGINAL, PATCHED));
  patched++;
}
if (patched > 0) console.log(`patch-postgres: guarded nextWrite in ${patched} file(s)`);
