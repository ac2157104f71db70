// `npm run cluster`: N gateway processes on the real tier (PostgreSQL, Redis, Kafka), started with the project's service script.
//
// Settings: CLUSTER_GATEWAYS (3), CLUSTER_BASE_PORT (8081: gateways listen on 8081, 8082, …),
// CLUSTER_HOST (127.0.0.1), CLUSTER_DATABASE (parley_cluster, created if missing),
// CLUSTER_JWT_SECRET (default: generated and kept in the database by the first gateway).
// Any other Parley setting in the environment (LOG_LEVEL, WS_RATE_PER_SECOND, …) is passed on.
// Ctrl-C (or SIGTERM) stops every gateway, then the services this run started (not those it
// found running). `npm run cluster -- stop` does the same for a run that was killed outright.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import postgres from 'postgres';

const ROOT = resolve(import.meta.dirname, '..');
/** The services this cluster started (scripts/services.sh's ledger) and its gateways' pids. */
const LEDGER = resolve(ROOT, '.services/cluster.ledger');
const PIDS = resolve(ROOT, '.services/cluster.pids');

/** Stops the services listed in the ledger (those a cluster run started), newest first. */
const stopServices = () =>
  execFileSync('bash', [resolve(ROOT, 'scripts/services.sh'), 'stop', LEDGER], { stdio: ['ignore', 'inherit', 'inherit'] });

if (process.argv[2] === 'stop') {
  // A run that was killed outright: its gateways (those pids still running server.ts), then its services.
  const pids = (() => {
    try {
      return readFileSync(PIDS, 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  })();
  for (const pid of pids) {
    const cmdline = (() => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    })();
    if (cmdline.includes('server.ts')) process.kill(pid, 'SIGTERM');
  }
  rmSync(PIDS, { force: true });
  stopServices();
  console.log('Parley cluster stopped (gateways, and the services it had started).');
  process.exit(0);
}
const n = Number(process.env.CLUSTER_GATEWAYS ?? 3);
const basePort = Number(process.env.CLUSTER_BASE_PORT ?? 8081);
const host = process.env.CLUSTER_HOST ?? '127.0.0.1';
const database = process.env.CLUSTER_DATABASE ?? 'parley_cluster';
if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error('CLUSTER_GATEWAYS must be 1–64');
if (!/^[a-z_][a-z0-9_]*$/.test(database)) throw new Error('CLUSTER_DATABASE must be a plain identifier');

mkdirSync(resolve(ROOT, '.services'), { recursive: true });
const service = (name: string) =>
  execFileSync('bash', [resolve(ROOT, 'scripts/services.sh'), name], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, PARLEY_SERVICES_LEDGER: LEDGER },
  })
    .trim()
    .split('\n')
    .pop()!;

const adminUrl = service('postgres');
const redisUrl = service('redis');
const kafkaBrokers = service('kafka');
const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
const exists = await admin`SELECT 1 FROM pg_database WHERE datname = ${database}`;
if (exists.length === 0) await admin.unsafe(`CREATE DATABASE ${database}`);
await admin.end();
const databaseUrl = Object.assign(new URL(adminUrl), { pathname: `/${database}` }).toString();

const children: ChildProcess[] = [];
let stopping = false;
const stop = () => {
  stopping = true;
  for (const c of children) c.kill('SIGTERM');
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

/** Starts gateway i and resolves with its URL once its /readyz answers. */
async function startGateway(i: number): Promise<string> {
  const port = basePort + i - 1;
  const child = spawn(process.execPath, ['--import', 'tsx', 'server.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOST: host,
      PORT: String(port),
      GATEWAY_ID: `gw${i}`,
      SQL_DRIVER: 'postgres',
      DATABASE_URL: databaseUrl,
      PRESENCE_DRIVER: 'redis',
      REDIS_URL: redisUrl,
      GROUP_LOG_DRIVER: 'kafka',
      KAFKA_BROKERS: kafkaBrokers,
      ...(process.env.CLUSTER_JWT_SECRET ? { JWT_SECRET: process.env.CLUSTER_JWT_SECRET } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  writeFileSync(PIDS, children.map((c) => `${c.pid}\n`).join(''));
  const prefix = (stream: NodeJS.WritableStream) => (chunk: Buffer) =>
    stream.write(chunk.toString().replace(/^(?=.)/gm, `[gw${i}] `));
  child.stdout!.on('data', prefix(process.stdout));
  child.stderr!.on('data', prefix(process.stderr));
  child.once('exit', (code) => {
    if (!stopping) console.error(`[gw${i}] exited with ${code}`);
    if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) {
      rmSync(PIDS, { force: true });
      if (stopping) stopServices();
      process.exit(stopping ? 0 : 1);
    }
  });
  const url = `http://${host}:${port}`;
  for (let t = 0; t < 600; t++) {
    if (child.exitCode !== null) throw new Error(`gateway ${i} exited with ${child.exitCode}`);
    const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ok) return url;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gateway ${i} did not become ready`);
}

// The first gateway migrates the schema (and creates the signing secret); the rest follow.
const urls = [await startGateway(1)];
urls.push(...(await Promise.all(Array.from({ length: n - 1 }, (_, k) => startGateway(k + 2)))));
console.log(`\nParley cluster: ${n} gateways (each also a group fan-out worker) on PostgreSQL (${database}), Redis and Kafka (${kafkaBrokers})\n  ${urls.join('\n  ')}\nCtrl-C stops them (and the services this run started).`);
