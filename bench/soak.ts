// The soak (`npm run bench -- --soak`): steady 1:1 traffic for minutes with the message purge on, then off, sampling the database's size and rows, the server's memory and the pushes to offline devices.
//
// Each run starts a fresh Parley process (`server.ts`) on a fresh database (PostgreSQL, or PGlite
// with BENCH_SQL=pglite) and registers BENCH_PAIRS sender/recipient pairs through the SDK; a share
// BENCH_SOAK_OFFLINE of the recipients are offline devices whose push target (registered with
// `client.registerPush`) is a subscription at a local RFC 8030 push service in this process
// (test/support/push-service.ts: it checks VAPID and decrypts every RFC 8291 payload). Senders
// and online recipients speak the wire protocol over plain `ws` from this process (one Double
// Ratchet body per pair, encrypted once and reused; acks coalesced like the SDK's). Messages go
// round-robin over the pairs at BENCH_SOAK_RATE for BENCH_SOAK_SECONDS. Offline devices visit
// every BENCH_SOAK_WAKE_SECONDS (staggered; bench/soak-push.ts): connect, sync, acknowledge,
// leave after 2 s; between visits they get pushes. Every BENCH_SOAK_SAMPLE_SECONDS: the rows of
// `messages`, pg_total_relation_size('messages'), pg_database_size (on PGlite: the data
// directory's size on disk, rows not measured), the server's VmRSS, messages accepted and pushes
// received. The runs: purge on (MESSAGE_RETENTION=acked, MESSAGE_SWEEP_INTERVAL_MS
// BENCH_SOAK_SWEEP_MS) and purge off (MESSAGE_RETENTION=off). Everything runs on 127.0.0.1.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import postgres from 'postgres';
import { sodiumReady } from '../protocol/bytes.js';
import { createTestDatabase } from '../platform/test-databases.js';
import { type BenchDevice, mapLimit, registerDevice } from './accounts.js';
import { Child, jsonLine, parleyEnv } from './children.js';
import { frameTail, plaintext, ratchetBody } from './endpoints.js';
import { processInfo, treeCpuSeconds } from './cpu.js';
import type { Settings } from './settings.js';
import { connectDevice, type DeviceLink, offlineRecipients, type OfflineRecipients, Visits } from './soak-push.js';

type Defer = (fn: () => Promise<unknown>) => void;

/** Pushes: a message waits 500 ms for a live ack, then at most one push per device per second (so they flow at a visible rate). */
const PUSH_ENV = { PUSH_DELAY_MS: '500', PUSH_COALESCE_MS: '1000', PUSH_POLL_MS: '100' };
const SETUP_CONCURRENCY = 8;
const MiB = 2 ** 20;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const mib = (bytes: number | null) => (bytes === null ? '-' : (bytes / MiB).toFixed(1));

/** What one sample saw, `t` seconds after the first send. */
interface Sample {
  t: number;
  rows: number | null;
  tableBytes: number | null;
  dbBytes: number;
  rssBytes: number;
  accepted: number;
  pushes: number;
}

interface RunResult {
  purge: boolean;
  samples: Sample[];
  /** CPU µs per accepted message over the run: the server process and PostgreSQL's process tree (null where not visible). */
  gatewayUs: number;
  postgresUs: number | null;
  pushesPerSecond: number;
  /** Who reclaimed the space of erased rows (DbProbe.maintain). */
  maintenance: string;
}

/** The database's size and rows, from outside the server. */
interface DbProbe {
  read(): Promise<{ rows: number | null; tableBytes: number | null; dbBytes: number }>;
  /** PostgreSQL's postmaster, for CPU (null on PGlite, or where it is not visible in /proc). */
  postmaster: number | null;
  /** Who reclaims the space of erased rows during the run; starts the bench's stand-in for autovacuum where the server has it off. */
  maintain(): string;
  /** What vacuum did to `messages` (PostgreSQL), for the run's summary. */
  vacuumNote(): Promise<string>;
  close(): Promise<void>;
}

export async function benchSoak(settings: Settings, defer: Defer): Promise<void> {
  const s = settings.soak;
  const offline = Math.round(settings.pairs * s.offline);
  const env = serverEnv('', true, settings);
  console.log(
    `config: ${settings.pairs} pairs over 127.0.0.1, ${offline} of them to offline devices (Web Push to a local push service; ` +
      `${s.wakeSeconds > 0 ? `each visits every ${s.wakeSeconds} s for 2 s` : 'never connecting'}); ${int(s.rate)} msg/s for ${s.seconds} s per run, ` +
      `sampled every ${s.sampleSeconds} s; ${settings.textChars}-char text, Double Ratchet bodies; Parley in one process on ${settings.sql === 'postgres' ? 'PostgreSQL' : 'PGlite'}; ` +
      `PUSH_DELAY_MS=${env.PUSH_DELAY_MS}, PUSH_COALESCE_MS=${env.PUSH_COALESCE_MS}, PUSH_POLL_MS=${env.PUSH_POLL_MS}; ` +
      `purge on: MESSAGE_RETENTION=acked, MESSAGE_SWEEP_INTERVAL_MS=${env.MESSAGE_SWEEP_INTERVAL_MS}; purge off: MESSAGE_RETENTION=off`,
  );
  const runs: RunResult[] = [];
  for (const purge of [true, false]) runs.push(await soakRun(settings, purge, defer));
  console.log('');
  for (const line of summary(runs, settings)) console.log(line);
}

/** The server's environment for one run; BENCH_SERVER_ENV overrides any of it. */
function serverEnv(dataDir: string, purge: boolean, settings: Settings, databaseUrl?: string): NodeJS.ProcessEnv {
  return {
    ...parleyEnv(dataDir),
    ...(databaseUrl ? { SQL_DRIVER: 'postgres', DATABASE_URL: databaseUrl } : {}),
    MESSAGE_RETENTION: purge ? 'acked' : 'off',
    MESSAGE_SWEEP_INTERVAL_MS: String(settings.soak.sweepMs),
    PUSH_DRIVER: 'webpush',
    PUSH_ENDPOINT_HOSTS: '127.0.0.1',
    PUSH_ALLOW_HTTP: 'true',
    ...PUSH_ENV,
    ...settings.serverEnv,
  };
}

/** Cleanups of one run: done at its end, so the next run has the machine to itself, or by the bench's own cleanup when interrupted. */
function runScope(defer: Defer): { add: (fn: () => Promise<unknown>) => void; done: () => Promise<void> } {
  const fns: (() => Promise<unknown>)[] = [];
  const done = async () => {
    for (const fn of fns.splice(0).reverse()) {
      await fn().catch((err: unknown) => console.error(`cleanup: ${err instanceof Error ? err.message : String(err)}`));
    }
  };
  defer(done);
  return { add: (fn) => void fns.push(fn), done };
}

async function soakRun(settings: Settings, purge: boolean, defer: Defer): Promise<RunResult> {
  const label = purge ? 'purge on' : 'purge off';
  const log = (line: string) => process.stderr.write(`[soak ${label}] ${line}\n`);
  const scope = runScope(defer);
  try {
    const dataDir = await mkdtemp(join(tmpdir(), 'parley-soak-'));
    scope.add(() => rm(dataDir, { recursive: true, force: true }));
    const db = settings.sql === 'postgres' ? await createTestDatabase(settings.pgAdminUrl) : null;
    if (db) scope.add(db.drop);
    const server = new Child(`parley (${label})`, 'server.ts', [], { env: serverEnv(dataDir, purge, settings, db?.url) });
    scope.add(() => server.stop());
    const port = await server.waitFor('"listening" log line', (l) => (l.includes('"msg":"listening"') ? (jsonLine(l)?.port as number) : undefined), 60_000);
    const url = `http://127.0.0.1:${port}`;
    const probe = db ? await postgresProbe(db.url) : pgliteProbe(dataDir);
    scope.add(() => probe.close());
    const traffic = await Traffic.open(url, settings, log);
    scope.add(() => traffic.close());
    const result = await measure(settings, purge, server, probe, traffic, log);
    console.log('');
    console.log(`${label} (MESSAGE_RETENTION=${purge ? 'acked' : 'off'})`);
    for (const line of sampleTable(result.samples)) console.log(`  ${line}`);
    for (const line of await runLines(result, traffic, server, url, probe)) console.log(`  ${line}`);
    return result;
  } finally {
    await scope.done();
  }
}

/** Sends for the run's duration with the offline devices visiting, sampling on schedule; CPU from /proc over exactly that time. */
async function measure(settings: Settings, purge: boolean, server: Child, probe: DbProbe, traffic: Traffic, log: (line: string) => void): Promise<RunResult> {
  const s = settings.soak;
  const sample = async (t: number): Promise<Sample> => ({
    t,
    ...(await probe.read()),
    rssBytes: await rssBytes(server.pid),
    accepted: traffic.accepted,
    pushes: traffic.offline.service.received().length,
  });
  const maintenance = probe.maintain();
  const samples = [await sample(0)];
  const cpu0 = treeCpuSeconds([server.pid, probe.postmaster ?? -1]);
  const t0 = performance.now();
  traffic.start(s.rate, s.seconds);
  for (let t = s.sampleSeconds; t < s.seconds + s.sampleSeconds; t += s.sampleSeconds) {
    const at = Math.min(t, s.seconds);
    await sleep(t0 + at * 1000 - performance.now());
    samples.push(await sample(at));
    log(`${at} s: ${int(traffic.accepted)} messages accepted, ${int(samples.at(-1)!.pushes)} pushes`);
  }
  const cpu1 = treeCpuSeconds([server.pid, probe.postmaster ?? -1]);
  await traffic.stop();
  const perMessage = (i: number) => {
    const [a, b] = [cpu0[i], cpu1[i]];
    return a === null || a === undefined || b === null || b === undefined || traffic.accepted === 0 ? null : ((b - a) * 1e6) / traffic.accepted;
  };
  return {
    purge,
    samples,
    gatewayUs: perMessage(0) ?? NaN,
    postgresUs: probe.postmaster === null ? null : perMessage(1),
    pushesPerSecond: samples.at(-1)!.pushes / s.seconds,
    maintenance,
  };
}

/**
 * The run's devices and their traffic: every sender connected, every online recipient connected
 * (acknowledging), the offline recipients registered for pushes and not connected.
 */
class Traffic {
  accepted = 0;
  delivered = 0;
  failed = 0;
  /** Sockets the server closed during the run (none expected). */
  dropped = 0;
  readonly errors: Record<string, number> = {};
  readonly errorSamples: string[] = [];
  /** Each pair's sender and what follows the client id in its send frames, in pair order. */
  private pairs: { sender: DeviceLink; frameTail: string }[] = [];
  private readonly links: DeviceLink[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    readonly url: string,
    readonly offline: OfflineRecipients,
    /** The offline devices' visits, while messages flow. */
    readonly visits: Visits,
  ) {}

  /** Registers the users (offline recipients first: pairs 0…offline-1), makes each pair's body, and connects. */
  static async open(url: string, settings: Settings, log: (line: string) => void): Promise<Traffic> {
    await sodiumReady();
    const prefix = `k${randomBytes(4).toString('hex')}`;
    const n = settings.pairs;
    const offlineCount = Math.round(n * settings.soak.offline);
    const started = performance.now();
    const indexes = (count: number) => Array.from({ length: count }, (_, i) => i);
    const senders = await mapLimit(indexes(n), SETUP_CONCURRENCY, (i) => registerDevice(url, `${prefix}-s${i}`));
    const online = await mapLimit(indexes(n - offlineCount), SETUP_CONCURRENCY, (i) => registerDevice(url, `${prefix}-r${i}`));
    const offline = await offlineRecipients(url, indexes(offlineCount).map((i) => `${prefix}-o${i}`));
    const recipients: BenchDevice[] = [...offline.devices, ...online];
    log(`registered ${2 * n} users via the SDK (${offlineCount} with a push target) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const traffic = new Traffic(url, offline, new Visits(url, offline.devices, settings.soak.wakeSeconds * 1000));
    try {
      await traffic.connect(senders, recipients, offlineCount, settings.textChars);
    } catch (err) {
      await traffic.close();
      throw err;
    }
    return traffic;
  }

  /** Sends `rate` messages per second in total, round-robin over the pairs, for `seconds`; the offline devices start visiting. */
  start(rate: number, seconds: number): void {
    this.visits.start();
    const planned = Math.round(rate * seconds);
    const t0 = performance.now();
    let sent = 0;
    this.timer = setInterval(() => {
      const due = Math.min(planned, Math.floor(((performance.now() - t0) / 1000) * rate));
      while (sent < due) {
        const pair = this.pairs[sent % this.pairs.length]!;
        pair.sender.send(`{"type":"send","id":"m${sent++}${pair.frameTail}`);
      }
      if (sent >= planned) clearInterval(this.timer);
    }, 5);
  }

  /** Stops sending and waits for the visits in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.visits.stop();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.stop();
    for (const link of this.links) link.close();
    await this.offline.service.close();
  }

  private async connect(senders: BenchDevice[], recipients: BenchDevice[], offlineCount: number, textChars: number): Promise<void> {
    const dropped = () => void this.dropped++;
    this.pairs = await mapLimit(senders, SETUP_CONCURRENCY, async (sender, i) => {
      const recipient = recipients[i]!;
      const tail = frameTail(recipient.userId, [{ device: recipient.deviceId, body: ratchetBody(plaintext(textChars)) }]);
      const link = await connectDevice(this.url, sender.token, (f) => this.onSenderFrame(f.type, f.code, f.message), dropped);
      this.links.push(link);
      if (i >= offlineCount) {
        this.links.push(await connectDevice(this.url, recipient.token, (f) => void (f.type === 'msg' && this.delivered++), dropped));
      }
      return { sender: link, frameTail: tail };
    });
  }

  private onSenderFrame(type: string | undefined, code = 'unknown', message = ''): void {
    if (type === 'sent') this.accepted++;
    else if (type === 'error') {
      this.failed++;
      this.errors[code] = (this.errors[code] ?? 0) + 1;
      if (this.errorSamples.length < 3) this.errorSamples.push(`${code}: ${message}`);
    }
  }
}

/**
 * Rows and sizes from connections of our own to the run's database. Where the server runs with
 * autovacuum off (the project's CI configuration does), the space of erased rows would never be
 * reused, which no production server does; so the bench VACUUMs the run's database every
 * autovacuum_naptime seconds in its place, in both runs alike, and says so.
 */
async function postgresProbe(url: string): Promise<DbProbe> {
  const sql = postgres(url, { max: 2, onnotice: () => {} });
  const [me] = await sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
  const [auto] = await sql<{ on: boolean; naptime: number }[]>`
    SELECT current_setting('autovacuum') = 'on' AS on, (SELECT setting::int FROM pg_settings WHERE name = 'autovacuum_naptime') AS naptime`;
  let timer: NodeJS.Timeout | undefined;
  let vacuuming: Promise<unknown> = Promise.resolve();
  let vacuums = 0;
  return {
    postmaster: processInfo(me!.pid)?.ppid ?? null,
    maintain: () => {
      if (auto!.on) return `autovacuum on (naptime ${auto!.naptime} s)`;
      timer = setInterval(() => {
        vacuuming = vacuuming.then(() => sql`VACUUM`).then(() => void vacuums++, (err: Error) => console.error(`VACUUM: ${err.message}`));
      }, auto!.naptime * 1000);
      return `autovacuum is off on this PostgreSQL server: the bench runs VACUUM on the run's database every ${auto!.naptime} s (autovacuum_naptime) in its place`;
    },
    read: async () => {
      const [r] = await sql<{ rows: number; table_bytes: number; db_bytes: number }[]>`
        SELECT (SELECT count(*) FROM messages)::float8 AS rows, pg_total_relation_size('messages')::float8 AS table_bytes,
               pg_database_size(current_database())::float8 AS db_bytes`;
      return { rows: r!.rows, tableBytes: r!.table_bytes, dbBytes: r!.db_bytes };
    },
    vacuumNote: async () => {
      const [v] = await sql<{ auto: number; dead: number }[]>`
        SELECT autovacuum_count::float8 AS auto, n_dead_tup::float8 AS dead FROM pg_stat_user_tables WHERE relname = 'messages'`;
      const by = auto!.on ? `autovacuum ran ${v?.auto ?? 0} time(s) on messages` : `the bench's VACUUM ran ${vacuums} time(s)`;
      return `${by}; ${int(v?.dead ?? 0)} dead rows in messages at the end (PostgreSQL's statistics, may lag)`;
    },
    close: async () => {
      clearInterval(timer);
      await vacuuming;
      await sql.end();
    },
  };
}

/** PGlite holds its data directory alone: only its size on disk is measured, from outside. */
function pgliteProbe(dataDir: string): DbProbe {
  return {
    postmaster: null,
    read: async () => ({ rows: null, tableBytes: null, dbBytes: await directoryBytes(dataDir) }),
    maintain: () => 'PGlite is one backend without background workers (no autovacuum launcher): nothing reclaims the space of erased rows unless something runs VACUUM',
    vacuumNote: async () => 'PGlite: rows and table size not measured (the server holds the database alone); db MB is the data directory on disk without its WAL',
    close: async () => {},
  };
}

/** Bytes of the files under `dir`, leaving out the WAL (pg_wal: 16 MiB segments, recycled, that hide the tables' growth). */
async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || entry.parentPath.split(sep).includes('pg_wal')) continue;
    total += await stat(join(entry.parentPath, entry.name)).then((st) => st.size, () => 0);
  }
  return total;
}

/** VmRSS of a process, from /proc/<pid>/status. */
async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  return kb === undefined ? NaN : Number(kb) * 1024;
}

/** One row per sample; msg/s and pushes/s over the interval before it. */
function sampleTable(samples: Sample[]): string[] {
  const header = ['time s', 'rows', 'table MB', 'db MB', 'RSS MB', 'msg/s', 'pushes/s'];
  const rows = samples.map((x, i) => {
    const prev = samples[i - 1];
    const rate = (now: number, before: number, digits: number) => (prev && x.t > prev.t ? ((now - before) / (x.t - prev.t)).toFixed(digits) : '-');
    return [String(x.t), x.rows === null ? '-' : int(x.rows), mib(x.tableBytes), mib(x.dbBytes), mib(x.rssBytes), rate(x.accepted, prev?.accepted ?? 0, 0), rate(x.pushes, prev?.pushes ?? 0, 1)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join(' | ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)];
}

/** What the run did besides the samples: messages, visits, pushes, what the purge erased, vacuum, CPU, server warnings. */
async function runLines(r: RunResult, traffic: Traffic, server: Child, url: string, probe: DbProbe): Promise<string[]> {
  const metrics = await fetch(new URL('/metrics', url)).then((res) => res.text(), () => '');
  const errors = Object.entries(traffic.errors).map(([c, n]) => `${c}×${n}`).join(' ');
  const v = traffic.visits;
  const visits = v.visits > 0 || v.failures > 0 ? `${v.visits} visits synced ${int(v.synced)} messages${v.failures > 0 ? `, ${v.failures} visits failed (${v.errorSamples.join('; ')})` : ''}` : 'no visits';
  const lines = [
    `${int(traffic.accepted)} messages accepted, ${int(traffic.delivered)} delivered live, ${traffic.failed} failed${errors ? ` (${errors})` : ''}, ${traffic.dropped} sockets dropped; ` +
      `offline devices: ${visits}`,
    `pushes received ${int(r.samples.at(-1)!.pushes)} (${r.pushesPerSecond.toFixed(1)}/s), refused by the push service ${traffic.offline.service.rejected().length}; ` +
      `server push attempts: ${metricLine(metrics, 'parley_pushes_total', 'outcome')}; rows purged: ${metricLine(metrics, 'parley_messages_purged_total', 'reason')}`,
    `CPU per accepted message: server ${us(r.gatewayUs)} µs, PostgreSQL ${r.postgresUs === null ? '-' : `${us(r.postgresUs)} µs (its whole process tree, server-wide)`}`,
    `${r.maintenance}; ${await probe.vacuumNote()}`,
    ...traffic.errorSamples.map((e) => `error frame: ${e}`),
  ];
  const problems = [...server.stdout.filter((l) => Number(jsonLine(l)?.level ?? 0) >= 40), ...server.stderr];
  if (problems.length > 0) lines.push(`the server logged ${problems.length} warning/error line(s); the first: ${problems[0]!.slice(0, 300)}`);
  return lines.filter((l) => l !== '');
}

const us = (n: number) => (Number.isFinite(n) ? int(n) : '-');

/** `name`'s samples in Prometheus text, as `label=value` pairs, e.g. `sent=120`; 'none' when there are none. */
function metricLine(text: string, name: string, label: string): string {
  const parts: string[] = [];
  for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
    const value = new RegExp(`${label}="([^"]*)"`).exec(m[1]!)?.[1] ?? '?';
    parts.push(`${value} ${int(Number(m[2]))}`);
  }
  return parts.join(', ') || 'none';
}

/**
 * Growth per minute of `value` over the samples in the last half of the run: the Theil–Sen
 * estimate (the median of the slopes between every two samples), so one step (a GC, a VACUUM,
 * an offline device's visit) does not set it. Null without two such samples with values.
 */
function slopePerMinute(samples: Sample[], seconds: number, value: (s: Sample) => number | null): number | null {
  const points = samples.filter((x) => x.t >= seconds / 2).flatMap((x) => {
    const y = value(x);
    return y === null || !Number.isFinite(y) ? [] : [[x.t, y] as const];
  });
  const slopes = points.flatMap(([t1, y1], i) => points.slice(i + 1).map(([t2, y2]) => (y2 - y1) / (t2 - t1))).sort((a, b) => a - b);
  if (slopes.length === 0) return null;
  const mid = slopes.length >> 1;
  return (slopes.length % 2 === 1 ? slopes[mid]! : (slopes[mid - 1]! + slopes[mid]!) / 2) * 60;
}

/** ON beside OFF: growth per minute in the last half of each run, pushes per second, CPU per message; and what "flat" means for offline devices. */
function summary(runs: RunResult[], settings: Settings): string[] {
  const s = settings.soak;
  const signed = (n: number | null, digits: number) => (n === null ? '-' : `${n >= 0 ? '+' : ''}${n.toFixed(digits)}`);
  const header = ['run', 'rows/min', 'table MB/min', 'db MB/min', 'RSS MB/min', 'rows at end', 'pushes/s', 'server µs/msg', 'postgres µs/msg'];
  const rows = runs.map((r) => {
    const last = r.samples.at(-1)!;
    return [
      r.purge ? 'purge on' : 'purge off',
      signed(slopePerMinute(r.samples, s.seconds, (x) => x.rows), 0),
      signed(slopePerMinute(r.samples, s.seconds, (x) => (x.tableBytes === null ? null : x.tableBytes / MiB)), 2),
      signed(slopePerMinute(r.samples, s.seconds, (x) => x.dbBytes / MiB), 2),
      signed(slopePerMinute(r.samples, s.seconds, (x) => x.rssBytes / MiB), 2),
      last.rows === null ? '-' : int(last.rows),
      r.pushesPerSecond.toFixed(1),
      us(r.gatewayUs),
      r.postgresUs === null ? '-' : us(r.postgresUs),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ');
  const offlineRate = (s.rate * Math.round(settings.pairs * s.offline)) / settings.pairs;
  const flat =
    s.wakeSeconds > 0
      ? `offline devices: their copies are acknowledged only when they visit (every ${s.wakeSeconds} s, staggered), so with the purge on ` +
        `their rows stay up to one wake interval (about ${int(offlineRate * s.wakeSeconds)} rows at most, ${int((offlineRate * s.wakeSeconds) / 2)} on average): flat, not zero. ` +
        `A device that never comes back (BENCH_SOAK_WAKE_SECONDS=0) keeps its rows until MESSAGE_RETENTION_DAYS, so rows would grow by ~${int(offlineRate * 60)}/min with the purge on too.`
      : `offline devices never connect (BENCH_SOAK_WAKE_SECONDS=0): under MESSAGE_RETENTION=acked their rows stay until MESSAGE_RETENTION_DAYS, ` +
        `so rows grow by ~${int(offlineRate * 60)}/min with the purge on too; only the online recipients' rows are erased.`;
  return [
    `summary: growth per minute over the last half of each run (Theil–Sen over the samples from ${s.seconds / 2} s), pushes received per second, CPU per accepted message`,
    line(header),
    widths.map((w) => '-'.repeat(w)).join('-|-'),
    ...rows.map(line),
    flat,
    'table MB includes the indexes and TOAST; erased rows free space only once (auto)vacuum has run, and the files keep it for reuse rather than shrink.',
  ];
}
