// `npm run bench`: starts a raw `ws` relay and Parley as separate processes, drives each from a load-generator process, and prints the comparison.
//
// Each target (first the raw relay, then Parley) runs alone on the machine with its own load
// generator process (bench/load.ts), which opens BENCH_PAIRS sender/recipient pairs over
// 127.0.0.1 and runs, after a warm-up:
//   max   BENCH_MESSAGES messages spread evenly over the pairs, each pair keeping at most
//         BENCH_WINDOW sent-but-undelivered; throughput = delivered / (first send → last delivery).
//   rate  BENCH_RATE messages per second in total for BENCH_RATE_SECONDS, round-robin over the
//         pairs, no window: latency at a moderate, fixed load.
// Latency is send → deliver: from just before the sender writes the `send` frame to the arrival
// of the recipient's `msg` frame, both clocks in the generator, keyed by client message id.
// CPU per delivered message is sampled from /proc (user + system time, which leaves out time
// stolen by the host) over exactly each scenario, for every server process on its own — the
// relay, each gateway, PostgreSQL (its whole process tree: the postmaster, the parent of a
// backend of ours, and every child, including ones that exited meanwhile) and Redis (the
// redis-server process INFO names) when Parley uses them — their total, and the load generator.
// On PostgreSQL and Redis the engines' own statistics give counts per message: commits and rows
// written from pg_stat_database for the bench database, SQL statements from pg_stat_statements
// when the server has it loaded (the output says when not), Redis commands (server-wide, less the
// bench's own INFO calls) and PUBLISH calls from INFO. PostgreSQL publishes a backend's counters
// up to 10 s after it goes idle, so on PostgreSQL each scenario starts and ends with a wait
// (about 11 s) until every backend of the bench database has been idle that long.
// Parley users are registered and logged in through the SDK (createClient); the generator then
// speaks the wire protocol with plain `ws` (or a raw socket.io-client: the token in the handshake,
// one `frame` event per frame's JSON text): one Double Ratchet body per pair, encrypted once and
// reused, coalesced acks like the SDK's. Parley runs as `node --import tsx server.ts` with a
// temporary DATA_DIR and per-connection and per-user limits raised so it is never rate limited.
//
// Settings (environment; defaults in brackets):
//   BENCH_PAIRS         sender/recipient pairs [50]
//   BENCH_MESSAGES      messages in the max scenario [20000]
//   BENCH_WINDOW        undelivered messages allowed per pair in the max scenario [32]
//   BENCH_WARMUP        warm-up messages before measuring, not reported [2000]
//   BENCH_RATE          total messages per second in the rate scenario [2000]
//   BENCH_RATE_SECONDS  duration of the rate scenario [5]
//   BENCH_TEXT_CHARS    message text length before encryption [100]
//   BENCH_TRANSPORTS    how the generator reaches Parley, each against a fresh server, beside the
//                       same raw `ws` relay: ws (the WebSocket endpoint), socketio (a raw
//                       socket.io-client: long-polling, then the upgrade to WebSocket), polling
//                       (socket.io-client with long-polling only) [ws,socketio,polling]
//   BENCH_SERVER_ENV    extra configuration for Parley's servers, e.g. SEND_COMMIT_SHARDS=1,SQL_POOL_SIZE=4 []
//   BENCH_SQL           Parley's SQL driver: pglite | postgres [pglite]; `npm run bench -- --postgres` too
//   BENCH_PG_URL        admin URL for postgres; a fresh database is created and dropped
//                       [postgres://postgres@127.0.0.1:5432/postgres]
//   --connections       instead: hold BENCH_CONNECTIONS [100000] idle authenticated connections over
//                       several gateway processes and report memory per connection beside bare
//                       `ws` servers holding the same count (see bench/connections.ts)
//   --fanout            instead: one message to a group of BENCH_GROUP_MEMBERS [10000] online members
//                       over BENCH_GATEWAYS [2] gateways on PostgreSQL, Redis and Kafka, beside a raw
//                       `ws` broadcast to the same sockets (see bench/fanout.ts)
//   --cluster           run Parley as BENCH_GATEWAYS [2: one per core on the 2-core bench machines]
//                       gateway processes on PostgreSQL and Redis (Redis from scripts/services.sh,
//                       keys under a bench-only prefix); each pair's sender and recipient connect
//                       to different gateways
//   --crypto            instead: the CPU cost of the end-to-end encryption in this process, µs per
//                       message, per ratchet step, per X3DH setup, per sender-key message
//                       (BENCH_CRYPTO_OPS [2000] per round; see bench/crypto.ts)
//   --files             instead: upload and download throughput of BENCH_FILES [5] × BENCH_FILE_MIB [50]
//                       MiB through the server, and BENCH_SDK_FILES [2] through the SDK (encrypting),
//                       beside raw disk copy speed of the same bytes (see bench/files.ts)
//   --abuse             instead: a bystander pair's send → deliver latency idle and beside each of
//                       7 attacks (garbage frames, a large backlog, presence lookups, 6 greedy devices
//                       and a variant ignoring retryAfterMs, a ping flood, stalled request bodies,
//                       password guessing), on the embedded default (1 process, PGlite) and on a
//                       cluster (BENCH_GATEWAYS [2] gateways, PostgreSQL + Redis), server limits at
//                       their defaults; bystander and attacker run in processes of their own (see bench/abuse.ts;
//                       it runs both targets itself, so --cluster and --postgres do not apply):
//     BENCH_ABUSE_TARGETS              embedded,cluster or one of them [both]
//     BENCH_ABUSE_ATTACKS              a comma-separated subset of garbage,backlog,presence,devices,
//                                      flood,stalled,logins,devices-ignoring [all, in this order]
//     BENCH_ABUSE_SECONDS              each attack phase [8] (stalled bodies and the backlog run until done)
//     BENCH_ABUSE_IDLE_SECONDS         the idle phase right before each attack [BENCH_ABUSE_SECONDS]
//     BENCH_ABUSE_INTERVAL_MS          between bystander messages [20]
//     BENCH_ABUSE_GARBAGE_CONNECTIONS  devices of the garbage user, each its own connection [4] (≤ 6)
//     BENCH_ABUSE_BACKLOG_MESSAGES     messages waiting for the offline user [330]
//     BENCH_ABUSE_BACKLOG_BODY_CHARS   base64 characters of each [60000] (≤ 65536)
//     BENCH_ABUSE_PRESENCE_FRAMES      presence.subscribe frames of 256 random users per batch [400]
//     BENCH_ABUSE_STALLED              HTTP connections stalling in their request body [200]
//     BENCH_ABUSE_LOGIN_ADDRESSES      source addresses 127.0.0.2… guessing one password [8]
//   --inbox             instead: GET /v1/conversations for a user with BENCH_INBOX_CONVERSATIONS [1000]
//                       conversations on PostgreSQL: the first page and a full walk, p50/p99 (see bench/inbox.ts)
//   --history           instead: the SDK's Node message store (PGlite) filled with 100,000 messages, then
//                       history() pages at random points and at the newest, p50/p99 (see bench/history.ts)
//   --soak              instead: steady 1:1 traffic for minutes, twice, each against a fresh server and
//                       database: purge on (MESSAGE_RETENTION=acked), then off; samples the rows and
//                       size of `messages`, the database's size, the server's RSS and the pushes a local
//                       Web Push service received, and prints their growth per minute over the last half
//                       of each run (see bench/soak.ts). One Parley process, on PostgreSQL unless
//                       BENCH_SQL=pglite (then only the data directory's size, WAL left out); BENCH_PAIRS pairs:
//     BENCH_SOAK_SECONDS         how long each run sends [120]
//     BENCH_SOAK_RATE            messages per second in total, round-robin over the pairs [500]
//     BENCH_SOAK_OFFLINE         share of the pairs whose recipient is an offline device with a Web Push
//                                subscription (registered through the SDK) [0.2]
//     BENCH_SOAK_WAKE_SECONDS    each offline device visits (connects, syncs, acks, leaves after 2 s) every
//                                this many seconds, staggered; 0: never, its rows then stay until
//                                MESSAGE_RETENTION_DAYS [30]
//     BENCH_SOAK_SAMPLE_SECONDS  between samples [10]
//     BENCH_SOAK_SWEEP_MS        MESSAGE_SWEEP_INTERVAL_MS of the purge-on run [2000]
//   --web               instead: the web client (a fresh build of web/, served by one Parley process on
//                       PGlite, in Debian's headless Chromium): every built file's raw, gzip -9 and brotli
//                       q11 size and the first page load's; goto → interactive chat list for a signed-in
//                       user (context kept) and once cold (sign-in form); send → the recipient's screen
//                       one message at a time, beside two Node SDK clients on the same server, with the
//                       server's and the clients' CPU per message (see bench/web.ts):
//     BENCH_WEB_LOADS     signed-in page loads timed [20]
//     BENCH_WEB_CHATS     direct chats the signed-in user has, all listed before a load counts [20]
//     BENCH_WEB_MESSAGES  messages through the web client, then through the SDK alone [200]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase } from '../platform/test-databases.js';
import { benchAbuse } from './abuse.js';
import { Child, jsonLine, killAll, parleyEnv } from './children.js';
import { benchConnections } from './connections.js';
import { benchFanout } from './fanout.js';
import { benchCrypto } from './crypto.js';
import { benchFiles } from './files.js';
import { configuration, engineLines, machine, ratios, table, targetLabel } from './report.js';
import type { BenchTransport } from './pair-sockets.js';
import type { LoadResult, Target } from './results.js';
import { mergeMetrics, type ServerMetrics, serverMetrics } from './server-metrics.js';
import { service } from './gateways.js';
import { loadSettings, type Settings, SettingsError } from './settings.js';
import { benchSoak } from './soak.js';
import { benchHistory } from './history.js';
import { benchInbox, inboxOptions } from './inbox.js';
import { dropKeys } from './redis-keys.js';
import { benchWeb } from './web.js';

/** Hard limit for one load generator run (each scenario also gives up by itself after a 15 s stall). */
const LOAD_TIMEOUT_MS = 10 * 60_000;

const cleanups: (() => Promise<unknown>)[] = [];
const defer = (fn: () => Promise<unknown>) => void cleanups.push(fn);

async function cleanup(): Promise<void> {
  for (const fn of cleanups.splice(0).reverse()) {
    await fn().catch((err: unknown) => console.error(`cleanup: ${err instanceof Error ? err.message : String(err)}`));
  }
}


async function runLoad(target: Target, settings: Settings): Promise<LoadResult> {
  const load = new Child(`load→${target.kind}`, 'bench/load.ts', [JSON.stringify({ target, settings })], { env: process.env, echoStderr: true });
  defer(() => load.stop(1_000));
  const how = await load.finished(LOAD_TIMEOUT_MS);
  const last = load.stdout.at(-1);
  if (how !== 0 || last === undefined) throw new Error(`the load generator against ${target.kind} failed (exit ${how})`);
  return JSON.parse(last) as LoadResult;
}

async function benchRaw(settings: Settings): Promise<LoadResult> {
  const relay = new Child('raw-relay', 'bench/raw-relay.ts', [], { env: process.env });
  defer(() => relay.stop());
  const port = await relay.waitFor('port', (l) => jsonLine(l)?.port as number | undefined, 30_000);
  const result = await runLoad({ kind: 'raw', transport: 'ws', urls: [`ws://127.0.0.1:${port}`], processes: [{ name: 'relay', pid: relay.pid }] }, settings);
  await relay.stop();
  return result;
}

async function benchParley(settings: Settings, transport: BenchTransport): Promise<{ result: LoadResult; metrics: ServerMetrics | null; problems: string[] }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'parley-bench-'));
  defer(() => rm(dataDir, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = {
    ...parleyEnv(dataDir),
    ...settings.serverEnv,
  };
  const engines: Pick<Target, 'postgres' | 'redis'> = {};
  if (settings.sql === 'postgres') {
    const db = await createTestDatabase(settings.pgAdminUrl);
    defer(db.drop);
    Object.assign(env, { SQL_DRIVER: 'postgres', DATABASE_URL: db.url });
    engines.postgres = { adminUrl: settings.pgAdminUrl, database: new URL(db.url).pathname.slice(1) };
  }
  if (settings.gateways > 1) {
    const redisUrl = service('redis');
    const prefix = `bench-${process.pid}:`;
    Object.assign(env, { PRESENCE_DRIVER: 'redis', REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix });
    defer(() => dropKeys(redisUrl, prefix));
    engines.redis = { url: redisUrl };
  }
  const servers: Child[] = [];
  const urls: string[] = [];
  for (let i = 1; i <= settings.gateways; i++) {
    // The first gateway migrates the database; the others start once it listens.
    // BENCH_SERVER_NODE_ARGS, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof', profiles the servers.
    const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter(Boolean);
    const server = new Child(`parley-gw${i}`, 'server.ts', [], { env: { ...env, GATEWAY_ID: `gw${i}` }, nodeArgs });
    defer(() => server.stop());
    const port = await server.waitFor('"listening" log line', (l) => (l.includes('"msg":"listening"') ? (jsonLine(l)?.port as number) : undefined), 60_000);
    servers.push(server);
    urls.push(`http://127.0.0.1:${port}`);
  }
  const processes = servers.map((s, i) => ({ name: `gw${i + 1}`, pid: s.pid }));
  const result = await runLoad({ kind: 'parley', transport, urls, processes, ...engines }, settings);
  const all = await Promise.all(urls.map((u) => serverMetrics(u).catch(() => null)));
  const metrics = all.every((m) => m !== null) ? mergeMetrics(all as ServerMetrics[]) : null;
  for (const s of servers) await s.stop();
  const problems = servers.flatMap((s) => [...s.stdout.filter((l) => Number(jsonLine(l)?.level ?? 0) >= 40), ...s.stderr]);
  return { result, metrics, problems };
}

async function main(): Promise<void> {
  const settings = loadSettings(process.env, process.argv.slice(2));
  if (settings.scenario === 'crypto') {
    await benchCrypto();
    return;
  }
  if (settings.scenario === 'history') {
    await benchHistory();
    return;
  }
  if (settings.scenario === 'inbox') {
    console.log(machine());
    await benchInbox(inboxOptions(process.env), defer);
    return;
  }
  const other = { connections: benchConnections, fanout: benchFanout, files: benchFiles, abuse: benchAbuse, soak: benchSoak, web: benchWeb } as const;
  if (settings.scenario !== 'messages') {
    console.log(machine());
    await other[settings.scenario](settings, defer);
    return;
  }
  console.log(machine());
  console.log(configuration(settings));
  console.log('');

  const raw = await benchRaw(settings);
  const parleys = [];
  for (const transport of settings.transports) parleys.push(await benchParley(settings, transport));

  console.log('');
  console.log(table([raw, ...parleys.map((p) => p.result)], settings));
  console.log('');
  const counts = engineLines(parleys.map((p) => p.result), settings);
  if (counts.length > 0) {
    for (const line of counts) console.log(line);
    console.log('');
  }
  for (const parley of parleys) for (const line of ratios(raw, parley.result)) console.log(line);
  for (const parley of parleys) {
    const name = targetLabel(parley.result);
    console.log(
      `setup: raw ${raw.setupSeconds.toFixed(1)} s, ${name} ${parley.result.setupSeconds.toFixed(1)} s (registering ${2 * settings.pairs} users through the SDK); ` +
        `send frame ${parley.result.frameBytes} bytes`,
    );
    const m = parley.metrics;
    if (m) {
      const errors = Object.entries(m.errors).map(([c, n]) => `${c}×${n}`).join(' ') || 'none';
      console.log(
        `${name} server: ${m.messagesSent.toLocaleString('en-US')} messages in ${m.commitBatches.toLocaleString('en-US')} group commits ` +
          `(mean batch ${m.meanBatch.toFixed(1)}), mean send→commit ${m.meanCommitMs.toFixed(2)} ms, RSS ${Math.round(m.rssMiB)} MiB, errors: ${errors}`,
      );
    }
    if (parley.problems.length > 0) {
      console.log(`${name} logged ${parley.problems.length} warning/error line(s); the first:`);
      for (const p of parley.problems.slice(0, 3)) console.log(`  ${p.slice(0, 300)}`);
    }
  }
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`\n${signal}: stopping the bench's processes`);
    killAll();
    void cleanup().finally(() => process.exit(130));
  });
}

main()
  .then(cleanup, async (err: unknown) => {
    if (interrupted) return; // the signal handler cleans up and exits
    console.error(err instanceof SettingsError ? `bench: ${err.message}` : err);
    await cleanup();
    process.exitCode = 1;
  })
  .finally(() => {
    killAll();
  });
