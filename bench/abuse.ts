// The abuse scenario (`npm run bench -- --abuse`): a bystander pair's send → deliver latency beside each attack, on the embedded default and on a cluster, server limits at their defaults.
//
// Per target (embedded: one Parley process on PGlite; cluster: BENCH_GATEWAYS [2] gateways on
// PostgreSQL + Redis, started as `--cluster` starts them, with a fresh database and a bench-only
// key prefix) three kinds of process share the machine: the servers, one bystander process
// (bench/abuse-bystander.ts: two users over plain `ws`, one message every BENCH_ABUSE_INTERVAL_MS
// alternately each way, real Double Ratchet bodies, latency measured on its own clock; in a
// cluster the two users sit on different gateways) and one attacker process
// (bench/abuse-attacker.ts, the attacks in bench/attacks*.ts; attackers spread over the
// gateways). For each attack, after a short settle: an idle phase (the bystander alone,
// BENCH_ABUSE_IDLE_SECONDS), then the attack phase (bystander and attack together,
// BENCH_ABUSE_SECONDS, longer when the attack itself needs longer, e.g. stalled bodies wait for
// the body timeout). Each phase reports the bystander's p50/p99/max, its lost, duplicated and
// out-of-order messages, the CPU seconds per second of the server processes, the attacker and the
// whole machine (/proc), and what the servers counted (/metrics) and logged at warn or above.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../platform/config.js';
import { createTestDatabase } from '../platform/test-databases.js';
import { type AbuseTarget, type PhaseMeasure, printTarget, printVerdicts, type TargetOutcome } from './abuse-report.js';
import type { AbuseChildRequest, AttackerReady, AttackResult, BystanderResult } from './abuse-results.js';
import { Child, jsonLine, ROOT } from './children.js';
import { processCpuSeconds } from './cpu.js';
import { service } from './gateways.js';
import { machineBusySeconds } from './machine-cpu.js';
import type { Attack, Settings } from './settings.js';
import { dropKeys } from './redis-keys.js';

type Defer = (fn: () => Promise<unknown>) => void;

/** Between phases, so one phase's tail does not land in the next. */
const SETTLE_MS = 500;
/** The bystander's first phase, not reported: JIT, connections, first conversation rows. */
const WARMUP_MS = 2_000;
/** How long past its phase an attack may take (a backlog drain, stalled bodies waiting for the timeout) before the bench gives up on it. */
const ATTACK_OVERRUN_MS = 90_000;
const STOP_TIMEOUT_MS = 30_000;
/**
 * After an attack the servers may go on working through what it left behind (queued tasks, a
 * database backlog). The next idle phase waits until the machine as a whole (so PostgreSQL and
 * Redis count too) uses less than QUIET_CPU cores over a QUIET_WINDOW_MS window, at most
 * RECOVERY_MAX_MS; the report shows how long that took.
 */
const QUIET_CPU = 0.25;
const QUIET_WINDOW_MS = 500;
const RECOVERY_MAX_MS = 20_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));


/** A server process and what it logged at warn or above (pino level ≥ 40): how many lines, and the first MAX_KEPT_PROBLEMS. */
interface Server {
  child: Child;
  url: string;
  problemCount: number;
  problems: string[];
  exited: string | null;
}

const MAX_KEPT_PROBLEMS = 1_000;

/** Every line a child prints, past and future, until it exits (Child has no subscription; a waitFor that never matches is one). */
function watchLines(child: Child, onLine: (line: string) => void): void {
  child.waitFor('its exit', (l) => void onLine(l), 24 * 3_600_000).catch(() => {});
}

async function startServers(target: AbuseTarget, settings: Settings, defer: Defer): Promise<Server[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'parley-abuse-'));
  defer(() => rm(dataDir, { recursive: true, force: true }));
  // As bench/run.ts starts Parley, but with every limit at its default.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', HOST: '127.0.0.1', PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'info' };
  let gateways = 1;
  if (target === 'cluster') {
    gateways = settings.abuse.gateways;
    const db = await createTestDatabase(settings.pgAdminUrl);
    defer(db.drop);
    const redisUrl = service('redis');
    const prefix = `bench-abuse-${process.pid}:`;
    defer(() => dropKeys(redisUrl, prefix));
    Object.assign(env, { SQL_DRIVER: 'postgres', DATABASE_URL: db.url, PRESENCE_DRIVER: 'redis', REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix });
  }
  const servers: Server[] = [];
  for (let i = 1; i <= gateways; i++) {
    // The first gateway migrates the database; the others start once it listens.
    // BENCH_SERVER_NODE_ARGS, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof', profiles the servers (as in run.ts).
    const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter(Boolean);
    const child = new Child(`parley-${target}-gw${i}`, 'server.ts', [], { env: { ...env, GATEWAY_ID: `gw${i}` }, nodeArgs });
    defer(() => child.stop());
    const port = await child.waitFor('"listening" log line', (l) => (l.includes('"msg":"listening"') ? (jsonLine(l)?.port as number) : undefined), 60_000);
    const server: Server = { child, url: `http://127.0.0.1:${port}`, problemCount: 0, problems: [], exited: null };
    watchLines(child, (l) => {
      if (Number(jsonLine(l)?.level ?? 0) < 40) return;
      server.problemCount++;
      if (server.problems.length < MAX_KEPT_PROBLEMS) server.problems.push(l);
    });
    void child.exited.then((how) => (server.exited = String(how)));
    servers.push(server);
  }
  return servers;
}


/** The server's own counters: errors by code and transport, handler crashes, backend failures. */
async function counters(servers: Server[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const s of servers) {
    const text = await fetch(new URL('/metrics', s.url)).then((r) => r.text(), () => '');
    for (const m of text.matchAll(/^(parley_errors_total|parley_handler_crashes_total|parley_backend_failures_total)\{([^}]*)\} (\S+)$/gm)) {
      const labels = [...m[2]!.matchAll(/="([^"]*)"/g)].map((l) => l[1]).join('/');
      const key = `${m[1] === 'parley_errors_total' ? '' : `${m[1]!.replace(/^parley_|_total$/g, '')}:`}${labels}`;
      out.set(key, (out.get(key) ?? 0) + Number(m[3]));
    }
  }
  return out;
}

function diff(after: Map<string, number>, before: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) if (v - (before.get(k) ?? 0) > 0) out[k] = v - (before.get(k) ?? 0);
  return out;
}

/** Seconds until the machine used less than QUIET_CPU over a window (`quiet`), or until RECOVERY_MAX_MS ran out. */
async function quietDown(): Promise<{ seconds: number; quiet: boolean }> {
  const t0 = performance.now();
  let before = machineBusySeconds();
  while (performance.now() - t0 < RECOVERY_MAX_MS) {
    const w0 = performance.now();
    await sleep(QUIET_WINDOW_MS);
    const after = machineBusySeconds();
    if (before === null || after === null) return { seconds: 0, quiet: true }; // no /proc: nothing to wait for
    if ((after - before) / ((performance.now() - w0) / 1000) < QUIET_CPU) return { seconds: (w0 - t0) / 1000, quiet: true };
    before = after;
  }
  return { seconds: (performance.now() - t0) / 1000, quiet: false };
}

/** Sends `line` to `child` and waits for its stdout line whose `field` is `value`. */
async function ask<T>(child: Child, line: string, field: string, value: string, timeoutMs: number): Promise<T> {
  const answer = child.waitFor(`${field} ${value}`, (l) => (l.startsWith(`{"${field}":${JSON.stringify(value)}`) ? (JSON.parse(l) as { result: T }).result : undefined), timeoutMs);
  child.writeLine(line);
  return answer;
}

async function runTarget(target: AbuseTarget, settings: Settings, defer: Defer): Promise<TargetOutcome> {
  const a = settings.abuse;
  const started = performance.now();
  const servers = await startServers(target, settings, defer);
  const request: AbuseChildRequest = { urls: servers.map((s) => s.url), settings };
  const bystander = new Child(`bystander-${target}`, 'bench/abuse-bystander.ts', [JSON.stringify(request)], { env: process.env, echoStderr: true });
  const attacker = new Child(`attacker-${target}`, 'bench/abuse-attacker.ts', [JSON.stringify(request)], { env: process.env, echoStderr: true });
  defer(() => bystander.stop(1_000));
  defer(() => attacker.stop(1_000));
  const [frame, ready] = await Promise.all([
    bystander.waitFor('bystander ready', (l) => (l.startsWith('{"bystanderReady"') ? (JSON.parse(l) as { frameBytes: number }).frameBytes : undefined), 120_000),
    attacker.waitFor('attacker ready', (l) => (l.startsWith('{"attackerReady"') ? (JSON.parse(l) as AttackerReady) : undefined), 120_000),
  ]);
  const outcome: TargetOutcome = {
    target,
    processes: target === 'embedded' ? '1 Parley process on PGlite' : `${servers.length} gateways on PostgreSQL + Redis`,
    setupSeconds: (performance.now() - started) / 1000,
    frameBytes: frame,
    notes: ready.notes,
    pairs: [],
    aborted: null,
    problems: [],
  };
  const serverPids = servers.map((s) => s.child.pid);
  let phase = 0;

  /** One phase: the bystander for `ms` (and the attack, if any, until it is done), with CPU and server counters around it. */
  const measure = async (label: string, ms: number, attack: Attack | null): Promise<{ m: PhaseMeasure; result: AttackResult | null }> => {
    const name = `${++phase}-${label}`;
    const before = await counters(servers);
    const problems0 = servers.map((s) => s.problems.length);
    const count0 = servers.reduce((n, s) => n + s.problemCount, 0);
    const [server0, attacker0, bystander0, machine0, t0] = [processCpuSeconds(serverPids), processCpuSeconds([attacker.pid]), processCpuSeconds([bystander.pid]), machineBusySeconds(), performance.now()];
    bystander.writeLine(`start ${name}`);
    const attacked = attack ? ask<AttackResult>(attacker, `attack ${attack} ${ms}`, 'attacked', attack, ms + ATTACK_OVERRUN_MS) : null;
    await sleep(ms);
    const result = attacked ? await attacked.catch((err: Error) => ({ attack: attack!, seconds: 0, summary: 'no result', ok: false, findings: [err.message.split('\n')[0]!], cpu: 0 })) : null;
    const wall = (performance.now() - t0) / 1000;
    const [server1, attacker1, bystander1, machine1] = [processCpuSeconds(serverPids), processCpuSeconds([attacker.pid]), processCpuSeconds([bystander.pid]), machineBusySeconds()];
    const by = await ask<BystanderResult>(bystander, `stop ${name}`, 'stopped', name, STOP_TIMEOUT_MS);
    const perSecond = (x: number | null, y: number | null) => (x === null || y === null ? null : (y - x) / wall);
    const problems = servers.flatMap((s, i) => s.problems.slice(problems0[i]));
    return {
      m: {
        bystander: by,
        seconds: wall,
        serverCpu: perSecond(server0, server1),
        attackerCpu: perSecond(attacker0, attacker1),
        bystanderCpu: perSecond(bystander0, bystander1),
        machineBusy: perSecond(machine0, machine1),
        serverCounted: diff(await counters(servers), before),
        serverProblems: problems,
        serverProblemCount: servers.reduce((n, s) => n + s.problemCount, 0) - count0,
      },
      result,
    };
  };

  await measure('warmup', WARMUP_MS, null);
  for (const attack of a.attacks) {
    try {
      await sleep(SETTLE_MS);
      process.stderr.write(`[abuse ${target}] ${attack}: idle ${a.idleSeconds} s, then under attack ${a.seconds} s\n`);
      const idle = await measure(`idle-${attack}`, a.idleSeconds * 1000, null);
      const under = await measure(attack, a.seconds * 1000, attack);
      const recovery = await quietDown();
      outcome.pairs.push({ attack, idle: idle.m, under: under.m, result: under.result, recovery });
    } catch (err) {
      // A child that died or stopped answering: report what ran, say why the rest did not.
      outcome.aborted = `${attack}: ${err instanceof Error ? err.message : String(err)}`;
    }
    const dead = servers.filter((s) => s.exited !== null);
    if (dead.length > 0) outcome.aborted = `${dead.map((s) => `${s.child.name} exited (${s.exited})`).join(', ')} during ${attack}${outcome.aborted ? `; ${outcome.aborted}` : ''}`;
    if (outcome.aborted) {
      outcome.aborted += '; the remaining attacks were not run';
      break;
    }
  }
  // The bystander and the attacker first, so that the servers' shutdown (1001) is not counted against the bystander.
  await Promise.all([bystander.stop(1_000), attacker.stop(1_000)]);
  for (const s of servers) await s.child.stop();
  for (const s of servers) outcome.problems.push(...s.child.stderr.map((l) => `${s.child.name} stderr: ${l}`));
  outcome.seconds = (performance.now() - started) / 1000;
  return outcome;
}

/** The code under test: the commit, and how many files outside bench/ differ from it (the servers run the working tree). */
function treeUnderTest(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
    const changed = git('status', '--porcelain', '--', '.', ':!bench').split('\n').filter(Boolean).length;
    return `${git('log', '-1', '--format=%h %cd', '--date=iso')}${changed > 0 ? `, plus ${changed} uncommitted file(s) outside bench/` : ', no uncommitted changes outside bench/'}`;
  } catch {
    return 'unknown (no git)';
  }
}

export async function benchAbuse(settings: Settings, defer: Defer): Promise<void> {
  const a = settings.abuse;
  const d = loadConfig({});
  console.log(`code under test: ${treeUnderTest()}`);
  console.log(
    `abuse: a bystander pair (1 message every ${a.intervalMs} ms, alternately each way; ${settings.textChars}-char text, Double Ratchet bodies) ` +
      `beside each attack: ${a.attacks.join(', ')}; idle ${a.idleSeconds} s then attack ${a.seconds} s per attack; targets: ${a.targets.join(', ')}`,
  );
  console.log(
    `server limits at their defaults: WS_RATE ${d.WS_RATE_PER_SECOND}/s burst ${d.WS_RATE_BURST} per connection, ${d.WS_USER_RATE_PER_SECOND}/s burst ${d.WS_USER_RATE_BURST} per user and gateway; ` +
      `WS_CONNECT_RATE ${d.WS_CONNECT_RATE_PER_MINUTE}/min per user and gateway; AUTH_RATE ${d.AUTH_RATE_PER_MINUTE}/min per address; ${d.LOGIN_FAILURES_FREE} free login failures, backoff to ${d.LOGIN_BACKOFF_MAX_MS / 1000} s; ` +
      `MAX_DEVICES_PER_USER ${d.MAX_DEVICES_PER_USER}; HTTP_BODY_TIMEOUT_MS ${d.HTTP_BODY_TIMEOUT_MS}; WS_MAX_PAYLOAD_BYTES ${d.WS_MAX_PAYLOAD_BYTES}; PRESENCE_WATCH_MAX ${d.PRESENCE_WATCH_MAX}`,
  );
  console.log(
    `attack sizes: garbage ${a.garbageConnections} devices; backlog ${a.backlogMessages} × ${a.backlogBodyChars} chars; presence ${a.presenceFrames} frames × 256 users per batch; ` +
      `devices ${d.MAX_DEVICES_PER_USER}; stalled ${a.stalledConnections} connections; logins from ${a.loginAddresses} addresses`,
  );
  console.log(
    'processes: the servers, one bystander process and one attacker process share this machine; the bystander times messages on its own clock, ' +
      "but the attacker's CPU still competes with the servers and the bystander for the cores (see the attacker and machine CPU columns)\n",
  );
  const outcomes: TargetOutcome[] = [];
  for (const target of a.targets) {
    const outcome = await runTarget(target, settings, defer);
    outcomes.push(outcome);
    printTarget(outcome, a);
  }
  printVerdicts(outcomes);
}
