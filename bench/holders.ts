// Starts holder processes (bench/holder.ts, bench/fanout-holder.ts): each gets a job file with its share of the sockets and reports when it holds them.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Child } from './children.js';

/** One holder process's share of the sockets. */
export interface HolderJob {
  kind: 'raw' | 'parley';
  /** ws:// URLs of the servers; connection i goes to urls[i % n]. */
  urls: string[];
  /** Source addresses on 127.0.0.0/8 to spread the sockets over (ephemeral ports are per address). */
  sourceIps: string[];
  count: number;
  concurrency: number;
  /** Parley: the token secret and one [userId, deviceId] per connection. */
  secret?: string;
  devices?: [string, string][];
}

export interface HeldReport {
  held: number;
  failed: number;
  firstError: string;
  seconds: number;
}

/**
 * Splits `count` sockets over ceil(count / perProcess) holder processes running `script`, each
 * with its own source addresses (127.0.<ipBase + h>.1 and .2) and its slice of `devices`.
 * Resolves once every holder printed its `{"held":…}` line; failures are printed, not thrown.
 */
export async function spawnHolders(options: {
  script: string;
  kind: HolderJob['kind'];
  urls: string[];
  count: number;
  perProcess: number;
  ipBase: number;
  secret?: string;
  devices?: [string, string][];
  defer: (fn: () => Promise<unknown>) => void;
}): Promise<{ holders: Child[]; held: number; failed: number; seconds: number }> {
  const n = Math.ceil(options.count / options.perProcess);
  const label = `${options.script.replace(/^bench\/|\.ts$/g, '')}-${options.kind}`;
  const dir = await mkdtemp(join(tmpdir(), 'parley-holders-'));
  options.defer(() => rm(dir, { recursive: true, force: true }));
  const holders: Child[] = [];
  for (let h = 0; h < n; h++) {
    const [from, to] = [Math.floor((h * options.count) / n), Math.floor(((h + 1) * options.count) / n)];
    const job: HolderJob = {
      kind: options.kind,
      urls: options.urls,
      sourceIps: [`127.0.${options.ipBase + h}.1`, `127.0.${options.ipBase + h}.2`],
      count: to - from,
      concurrency: 64,
      secret: options.secret,
      devices: options.devices?.slice(from, to),
    };
    const file = join(dir, `job-${h}.json`);
    await writeFile(file, JSON.stringify(job));
    const child = new Child(`${label}-${h}`, options.script, [file], { env: process.env, echoStderr: true });
    options.defer(() => child.stop(1_000));
    holders.push(child);
  }
  const reports = await Promise.all(
    holders.map((c) => c.waitFor('held report', (l) => (l.startsWith('{"held"') ? (JSON.parse(l) as HeldReport) : undefined), 10 * 60_000)),
  );
  for (const r of reports) if (r.failed > 0) console.error(`[${label}] ${r.failed} sockets failed, e.g. ${r.firstError}`);
  return {
    holders,
    held: reports.reduce((a, r) => a + r.held, 0),
    failed: reports.reduce((a, r) => a + r.failed, 0),
    seconds: Math.max(...reports.map((r) => r.seconds)),
  };
}
