// Starts holder processes (bench/holder.ts, bench/fanout-holder.ts): each gets a job file with its share of the sockets and reports when it holds them.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Child } from './children.js';

export interface HeldReport {
  held: number;
  failed: number;
  firstError: string;
  seconds: number;
}

/**
 * Splits `count` sockets over ceil(count / perProcess) holder processes running `script`;
 * `jobFor(h, from, to)` is holder h's job (sockets from..to-1). Resolves once every holder
 * printed its `{"held":…}` line; failures are printed, not thrown.
 */
export async function spawnHolders(options: {
  script: string;
  label: string;
  count: number;
  perProcess: number;
  jobFor: (h: number, from: number, to: number) => unknown;
  defer: (fn: () => Promise<unknown>) => void;
}): Promise<{ holders: Child[]; held: number; failed: number; seconds: number }> {
  const n = Math.ceil(options.count / options.perProcess);
  const dir = await mkdtemp(join(tmpdir(), 'parley-holders-'));
  options.defer(() => rm(dir, { recursive: true, force: true }));
  const holders: Child[] = [];
  for (let h = 0; h < n; h++) {
    const file = join(dir, `job-${h}.json`);
    await writeFile(file, JSON.stringify(options.jobFor(h, Math.floor((h * options.count) / n), Math.floor(((h + 1) * options.count) / n))));
    const child = new Child(`${options.label}-${h}`, options.script, [file], { env: process.env, echoStderr: true });
    options.defer(() => child.stop(1_000));
    holders.push(child);
  }
  const reports = await Promise.all(
    holders.map((c) => c.waitFor('held report', (l) => (l.startsWith('{"held"') ? (JSON.parse(l) as HeldReport) : undefined), 10 * 60_000)),
  );
  for (const r of reports) if (r.failed > 0) console.error(`[${options.label}] ${r.failed} sockets failed, e.g. ${r.firstError}`);
  return {
    holders,
    held: reports.reduce((a, r) => a + r.held, 0),
    failed: reports.reduce((a, r) => a + r.failed, 0),
    seconds: Math.max(...reports.map((r) => r.seconds)),
  };
}
