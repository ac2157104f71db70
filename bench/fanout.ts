// The fan-out scenario (`npm run bench -- --fanout`): one message to a group whose members are all online, Parley vs a raw `ws` broadcast.
//
// M = BENCH_GROUP_MEMBERS [10000] member sockets are held by holder processes (bench/fanout-holder.ts)
// from several 127.0.x.y source addresses. Parley runs as BENCH_GATEWAYS [2] gateway processes on
// PostgreSQL (a fresh database), Redis (a bench-only key prefix) and Kafka (scripts/services.sh, a
// bench-only topic), each also a fan-out worker; members are spread over the gateways and the
// sender (the group's owner) sits on the first. Users, devices and the group are created with SQL
// and GroupStore (registering 10k users through scrypt would take long); tokens are signed with
// the servers' JWT_SECRET. The sender speaks the wire protocol: a `group.send` with one shared
// ciphertext body and no per-device keys (the Sender Keys shape). The ceiling is bench/raw-broadcast.ts:
// one process writing each message from its sender to every receiver socket.
//
// Two phases per target, after a warm-up message:
//   spaced  BENCH_FANOUT_MESSAGES [10] messages, one every BENCH_FANOUT_INTERVAL_MS [1000]: for each,
//           the time until the last member had it, and every delivery's latency.
//   burst   BENCH_FANOUT_BURST [10] messages back to back: deliveries per second, from the first
//           send to the last member receiving the last message.
// Latency is from just before the sender writes the frame to a member's socket reading it; the
// send time travels in the message id and both ends read the same machine clock.
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import WebSocket from 'ws';
import { GroupStore } from '../groups/group-store.js';
import { systemClock } from '../platform/clock.js';
import { PostgresSql } from '../platform/sql.postgres.js';
import { createTestDatabase } from '../platform/test-databases.js';
import { Child } from './children.js';
import { type HolderJob, spawnHolders } from './holders.js';
import { insertUsers, realTierEnv, service, startGateways } from './gateways.js';
import type { Settings } from './settings.js';
import { percentile, summarize } from './stats.js';
import { benchToken } from './tokens.js';

type Defer = (fn: () => Promise<unknown>) => void;

const PER_HOLDER = 16_000;
const STALL_MS = 30_000;
const BODY = randomBytes(150).toString('base64');
const nowUs = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Outcome {
  target: string;
  processes: string;
  held: number;
  connectSeconds: number;
  /** Per spaced message: ms until the last member had it. */
  lastMember: number[];
  /** Every delivery of the spaced phase, ms. */
  deliveries: number[];
  burstDeliveries: number;
  burstSeconds: number;
  missing: number;
}

/** Sends message `k` stamped with `t0` (µs); resolves once written (Parley: once acknowledged). */
type Sender = (k: number, t0: number) => Promise<void>;

function startHolders(kind: HolderJob['kind'], urls: string[], count: number, extra: Pick<HolderJob, 'secret' | 'devices'>, defer: Defer) {
  return spawnHolders({ script: 'bench/fanout-holder.ts', kind, urls, count, perProcess: PER_HOLDER, ipBase: 30, ...extra, defer });
}

let request = 0;
async function ask<T>(holders: Child[], cmd: 'count' | 'report', field: string): Promise<T[]> {
  const n = ++request;
  for (const h of holders) h.writeLine(`${cmd} ${n}`);
  return Promise.all(
    holders.map((h) =>
      h.waitFor(`${cmd} ${n}`, (l) => {
        if (!l.startsWith(`{"${field}":${n},`)) return undefined;
        return JSON.parse(l) as T;
      }, 60_000),
    ),
  );
}

/** Waits until `expected` broadcast frames arrived in all, or nothing moved for STALL_MS. */
async function arrived(holders: Child[], expected: number): Promise<number> {
  let last = -1;
  let since = Date.now();
  for (;;) {
    const got = (await ask<{ received: number }>(holders, 'count', 'count')).reduce((a, r) => a + r.received, 0);
    if (got >= expected) return got;
    if (got !== last) [last, since] = [got, Date.now()];
    else if (Date.now() - since > STALL_MS) return got;
    await sleep(100);
  }
}

async function collect(holders: Child[]): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>();
  for (const r of await ask<{ byMessage: Record<string, number[]> }>(holders, 'report', 'report')) {
    for (const [k, list] of Object.entries(r.byMessage)) out.set(Number(k), [...(out.get(Number(k)) ?? []), ...list]);
  }
  for (const h of holders) h.writeLine('reset');
  return out;
}

async function measure(target: string, processes: string, held: { holders: Child[]; held: number; seconds: number }, send: Sender, settings: Settings): Promise<Outcome> {
  const { holders } = held;
  const members = held.held;
  let k = 0;
  // Warm-up: caches, JIT, connections.
  await send(k++, nowUs());
  await arrived(holders, members);
  await collect(holders);

  const spaced: number[] = [];
  for (let i = 0; i < settings.fanoutMessages; i++) {
    spaced.push(k);
    await send(k++, nowUs());
    await sleep(settings.fanoutIntervalMs);
  }
  const spacedGot = await arrived(holders, members * spaced.length);
  const byMessage = await collect(holders);
  const lastMember = spaced.map((m) => Math.max(...(byMessage.get(m) ?? [Number.NaN])));
  const deliveries = spaced.flatMap((m) => byMessage.get(m) ?? []);

  const burst: { k: number; t0: number }[] = [];
  const sends: Promise<void>[] = [];
  for (let i = 0; i < settings.fanoutBurst; i++) {
    const t0 = nowUs();
    burst.push({ k, t0 });
    sends.push(send(k++, t0));
  }
  await Promise.all(sends);
  const burstGot = await arrived(holders, members * burst.length);
  const burstBy = await collect(holders);
  const end = Math.max(...burst.map((b) => b.t0 / 1000 + Math.max(...(burstBy.get(b.k) ?? [0]))));
  return {
    target,
    processes,
    held: members,
    connectSeconds: held.seconds,
    lastMember,
    deliveries,
    burstDeliveries: burst.reduce((a, b) => a + (burstBy.get(b.k)?.length ?? 0), 0),
    burstSeconds: (end - burst[0]!.t0 / 1000) / 1000,
    missing: members * spaced.length - spacedGot + members * burst.length - burstGot,
  };
}

async function runRaw(settings: Settings, defer: Defer): Promise<Outcome> {
  const server = new Child('raw-broadcast', 'bench/raw-broadcast.ts', [], { env: process.env });
  defer(() => server.stop());
  const port = await server.waitFor('port', (l) => (l.startsWith('{"port"') ? (JSON.parse(l).port as number) : undefined), 30_000);
  const held = await startHolders('raw', [`ws://127.0.0.1:${port}/`], settings.groupMembers, {}, defer);
  const sender = new WebSocket(`ws://127.0.0.1:${port}/send`, { perMessageDeflate: false });
  await new Promise((r, j) => sender.once('open', r).once('error', j));
  const acks: (() => void)[] = [];
  sender.on('message', () => acks.shift()?.());
  const send: Sender = (k, t0) =>
    new Promise<void>((resolve) => {
      acks.push(resolve);
      sender.send(JSON.stringify({ type: 'msg', id: `f-${k}-${t0}`, conversationId: 'raw', seq: k + 1, body: BODY }));
    });
  const out = await measure('raw ws broadcast', '1 server', held, send, settings);
  sender.close();
  for (const h of held.holders) await h.stop(1_000);
  await server.stop();
  return out;
}

async function runParley(settings: Settings, defer: Defer): Promise<Outcome> {
  const n = settings.groupMembers;
  const db = await createTestDatabase(settings.pgAdminUrl);
  defer(db.drop);
  const brokers = service('kafka');
  const topic = `bench-fanout-${process.pid}`;
  defer(async () => {
    const admin = new Kafka({ clientId: 'bench', brokers: [brokers], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
  });
  const unlimited = '1000000';
  const { env, secret } = realTierEnv(db.url, `bench-fanout-${process.pid}:`, {
    GROUP_LOG_DRIVER: 'kafka',
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC: topic,
    GROUP_MAX_MEMBERS: String(n + 1),
    WS_RATE_PER_SECOND: unlimited,
    WS_RATE_BURST: unlimited,
  });
  const { servers, urls } = await startGateways(env, settings.fanoutGateways, defer);

  // Members and the owner, with one device each; then the group.
  const rows = await insertUsers(db.url, 'fan', 0, n + 1);
  const owner = rows.find((r) => r.username === 'fan0')!;
  const members = rows.filter((r) => r !== owner);
  const sql = new PostgresSql(db.url, { max: 2 });
  const { id: groupId } = await new GroupStore(sql, systemClock).create(owner.userId, 'fan-out bench', members.map((m) => m.userId));
  await sql.close();

  const wsUrls = urls.map((u) => `${u.replace('http', 'ws')}/v1/ws`);
  const held = await startHolders('parley', wsUrls, n, { secret, devices: members.map((m) => [m.userId, m.deviceId]) }, defer);

  const token = await benchToken(secret, owner.userId, owner.deviceId);
  const sender = new WebSocket(wsUrls[0]!, ['parley.v1', `bearer.${token}`], { perMessageDeflate: false });
  const pending = new Map<string, () => void>();
  await new Promise<void>((resolve, reject) => {
    sender.on('message', (d) => {
      const f = JSON.parse(d.toString()) as { type: string; id?: string; ref?: string; message?: string };
      if (f.type === 'ready') resolve();
      else if (f.type === 'sent') pending.get(f.id!)?.();
      else if (f.type === 'error') console.error(`[fanout] parley refused ${f.ref}: ${f.message}`);
    });
    sender.once('error', reject);
  });
  const send: Sender = (k, t0) =>
    new Promise<void>((resolve) => {
      const id = `f-${k}-${t0}`;
      pending.set(id, resolve);
      sender.send(JSON.stringify({ type: 'group.send', id, group: groupId, body: BODY }));
    });
  const out = await measure('parley', `${settings.fanoutGateways} gateways (+ fan-out workers), PostgreSQL, Redis, Kafka`, held, send, settings);
  sender.close();
  for (const h of held.holders) await h.stop(1_000);
  for (const s of servers) await s.stop();
  return out;
}

export async function benchFanout(settings: Settings, defer: Defer): Promise<void> {
  console.log(
    `fan-out: a group of ${settings.groupMembers.toLocaleString('en-US')} online members; ${settings.fanoutMessages} messages ${settings.fanoutIntervalMs} ms apart, ` +
      `then a burst of ${settings.fanoutBurst}\n`,
  );
  const results = [await runRaw(settings, defer), await runParley(settings, defer)];
  const header = ['target', 'processes', 'members held', 'last member p50 ms', 'p99 ms', 'max ms', 'delivery p50 ms', 'p99 ms', 'burst deliveries/s', 'missing'];
  const rows = results.map((o) => {
    const last = Float64Array.from(o.lastMember).sort();
    const d = summarize(o.deliveries);
    return [
      o.target,
      o.processes,
      o.held.toLocaleString('en-US'),
      percentile(last, 50).toFixed(1),
      percentile(last, 99).toFixed(1),
      Math.max(...o.lastMember).toFixed(1),
      d.p50.toFixed(1),
      d.p99.toFixed(1),
      Math.round(o.burstDeliveries / o.burstSeconds).toLocaleString('en-US'),
      String(o.missing),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
  for (const r of rows) console.log(line(r));
  const [raw, parley] = results as [Outcome, Outcome];
  console.log(
    `\nparley / raw: burst throughput ${((parley.burstDeliveries / parley.burstSeconds) / (raw.burstDeliveries / raw.burstSeconds)).toFixed(2)}×, ` +
      `last member p50 ${(percentile(Float64Array.from(parley.lastMember).sort(), 50) / percentile(Float64Array.from(raw.lastMember).sort(), 50)).toFixed(1)}×; ` +
      `connect: raw ${raw.connectSeconds.toFixed(1)} s, parley ${parley.connectSeconds.toFixed(1)} s`,
  );
}
