// The connections scenario (`npm run bench -- --connections`): memory per idle authenticated connection, Parley gateways vs bare `ws` servers.
//
// C = BENCH_CONNECTIONS [100000] sockets, spread over ceil(C / 16,000) server processes (a process
// holds at most ~19,900 open files here) and as many holder processes, each holder using its own
// source addresses on 127.0.0.0/8. Parley runs on PostgreSQL (a fresh database) and Redis (a
// bench-only key prefix); its users and devices are inserted with SQL and the holders sign the
// tokens themselves (registering 100k users through scrypt would take an hour), all of them
// before they start connecting. A connection counts once its `ready` frame arrived; the connect
// time is the slowest holder's, from its first connection to its last `ready`. Memory is read from each server after all connections
// are held, minus the same reading taken before the first connection: Parley's from its
// Prometheus /metrics (process_resident_memory_bytes, nodejs_heap_size_used_bytes), the raw
// servers' from their /mem. BENCH_SERVER_NODE_ARGS (e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof')
// is given to node for both kinds of server.
import { createTestDatabase } from '../platform/test-databases.js';
import { Child } from './children.js';
import { type HolderJob, spawnHolders } from './holders.js';
import { insertUsers, realTierEnv } from './gateways.js';
import type { Settings } from './settings.js';
import { dropKeys } from './redis-keys.js';

const PER_PROCESS = 16_000;

/** BENCH_SERVER_NODE_ARGS: extra arguments for node in the servers (profiling). */
const serverNodeArgs = () => process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter(Boolean);

interface Memory {
  rss: number;
  heap: number;
}

interface Outcome {
  target: string;
  processes: number;
  held: number;
  failed: number;
  seconds: number;
  before: Memory;
  after: Memory;
}

type Defer = (fn: () => Promise<unknown>) => void;

const sumMem = (ms: Memory[]): Memory => ms.reduce((a, m) => ({ rss: a.rss + m.rss, heap: a.heap + m.heap }), { rss: 0, heap: 0 });

async function parleyMemory(url: string): Promise<Memory> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { rss: read('process_resident_memory_bytes'), heap: read('nodejs_heap_size_used_bytes') };
}

async function rawMemory(url: string): Promise<Memory> {
  const m = (await (await fetch(`${url}/mem`)).json()) as { rss: number; heapUsed: number };
  return { rss: m.rss, heap: m.heapUsed };
}

/**
 * Source addresses per target (127.0.<base + holder>.1 and .2): each target's holders bind their
 * own. A port closed in TIME_WAIT stays taken for a minute, and the kernel's search for a free
 * port to bind() slows down as a source address's ports fill up: with both targets on one
 * address, Parley's holder spent most of its time in bind() (the holders also reset their
 * sockets when stopped, which leaves no TIME_WAIT).
 */
const IP_BASE = { raw: 10, parley: 100 } as const;

/** Runs the holders against `wsUrls` and waits until each reports how many it holds. */
function hold(kind: HolderJob['kind'], wsUrls: string[], count: number, extra: Pick<HolderJob, 'secret' | 'devices'>, defer: Defer) {
  return spawnHolders({ script: 'bench/holder.ts', kind, urls: wsUrls, count, perProcess: PER_PROCESS, ipBase: IP_BASE[kind], ...extra, defer });
}


async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 3_000)); // let in-flight work and garbage settle
}

async function benchRawConnections(count: number, defer: Defer): Promise<Outcome> {
  const n = Math.ceil(count / PER_PROCESS);
  const servers: Child[] = [];
  const urls: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = new Child(`idle-${i}`, 'bench/idle-server.ts', [], { env: process.env, nodeArgs: serverNodeArgs() });
    defer(() => s.stop());
    const port = await s.waitFor('port', (l) => (l.startsWith('{"port"') ? (JSON.parse(l).port as number) : undefined), 30_000);
    servers.push(s);
    urls.push(`http://127.0.0.1:${port}`);
  }
  const before = sumMem(await Promise.all(urls.map(rawMemory)));
  const r = await hold('raw', urls.map((u) => u.replace('http', 'ws')), count, {}, defer);
  await settle();
  const after = sumMem(await Promise.all(urls.map(rawMemory)));
  for (const h of r.holders) await h.stop(1_000);
  for (const s of servers) await s.stop();
  return { target: 'raw ws', processes: n, held: r.held, failed: r.failed, seconds: r.seconds, before, after };
}

async function benchParleyConnections(count: number, settings: Settings, defer: Defer): Promise<Outcome> {
  const n = Math.ceil(count / PER_PROCESS);
  const db = await createTestDatabase(settings.pgAdminUrl);
  defer(db.drop);
  const prefix = `bench-conn-${process.pid}:`;
  const { env, secret } = realTierEnv(db.url, prefix);
  defer(() => dropKeys(env.REDIS_URL!, prefix)); // after the servers have stopped (cleanups run last first)
  // As bench/gateways.ts startGateways, with node arguments for profiling.
  const servers: Child[] = [];
  const urls: string[] = [];
  for (let i = 1; i <= n; i++) {
    const s = new Child(`parley-gw${i}`, 'server.ts', [], { env: { ...env, GATEWAY_ID: `gw${i}` }, nodeArgs: serverNodeArgs() });
    defer(() => s.stop());
    const port = await s.waitFor('listening', (l) => (l.includes('"msg":"listening"') ? (JSON.parse(l).port as number) : undefined), 60_000);
    servers.push(s);
    urls.push(`http://127.0.0.1:${port}`);
  }
  const devices = (await insertUsers(db.url, 'conn', 1, count)).map((d) => [d.userId, d.deviceId] as [string, string]);

  const before = sumMem(await Promise.all(urls.map(parleyMemory)));
  const wsUrls = urls.map((u) => `${u.replace('http', 'ws')}/v1/ws`);
  const r = await hold('parley', wsUrls, count, { secret, devices }, defer);
  await settle();
  const after = sumMem(await Promise.all(urls.map(parleyMemory)));
  for (const h of r.holders) await h.stop(1_000);
  for (const s of servers) await s.stop();
  return { target: 'parley', processes: n, held: r.held, failed: r.failed, seconds: r.seconds, before, after };
}

export async function benchConnections(settings: Settings, defer: Defer): Promise<void> {
  const count = settings.connections;
  console.log(`connections: ${count.toLocaleString('en-US')} idle sockets over 127.0.0.0/8, at most ${PER_PROCESS.toLocaleString('en-US')} per process\n`);
  const raw = await benchRawConnections(count, defer);
  const parley = await benchParleyConnections(count, settings, defer);
  const rows = [raw, parley].map((o) => {
    const perConn = (bytes: number) => (o.held > 0 ? (bytes / o.held / 1024).toFixed(1) : '-');
    return [
      o.target,
      String(o.processes),
      o.held.toLocaleString('en-US') + (o.failed > 0 ? ` (${o.failed} failed)` : ''),
      o.seconds.toFixed(1),
      String(Math.round(o.after.rss / 2 ** 20)),
      perConn(o.after.rss - o.before.rss),
      perConn(o.after.heap - o.before.heap),
    ];
  });
  const header = ['target', 'processes', 'connections held', 'connect s', 'RSS total MiB', 'RSS/conn KiB', 'heap/conn KiB'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
  for (const r of rows) console.log(line(r));
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(1) : '-');
  console.log(
    `\nparley / raw per connection: RSS ${ratio((parley.after.rss - parley.before.rss) / parley.held, (raw.after.rss - raw.before.rss) / raw.held)}×, ` +
      `heap ${ratio((parley.after.heap - parley.before.heap) / parley.held, (raw.after.heap - raw.before.heap) / raw.held)}×`,
  );
}
