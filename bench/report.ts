// What the bench prints: the machine, the configuration, one table row per scenario and target (CPU per message per process), the engines' counts per message, and Parley / raw ratios.
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import type { LoadResult, ScenarioResult } from './results.js';
import type { Settings } from './settings.js';

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const pct = (n: number | null) => (n === null ? '-' : `${Math.round(n * 100)}%`);
const us = (n: number | null) => (n === null ? '-' : Math.round(n).toLocaleString('en-US'));
const times = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '-');
const per = (n: number, delivered: number) => (delivered > 0 ? (n / delivered).toFixed(2) : '-');

export function machine(): string {
  const cores = cpus();
  const [one] = loadavg();
  return (
    `machine: ${cores.length} cores (${cores[0]?.model.trim() ?? 'unknown cpu'}), ${Math.round(totalmem() / 2 ** 30)} GiB, ` +
    `${platform()} ${release()}, Node ${process.version}, load average ${one?.toFixed(2) ?? '?'} at start`
  );
}

export function configuration(s: Settings): string {
  return (
    `config: ${s.pairs} pairs over 127.0.0.1; max: ${int(s.messages)} messages, at most ${s.window} undelivered per pair ` +
    `(after ${int(s.warmup)} warm-up); rate: ${int(s.rate)} msg/s for ${s.rateSeconds} s; ${s.textChars}-char text, ` +
    `Double Ratchet bodies; Parley on ${s.gateways > 1 ? `${s.gateways} gateways on PostgreSQL + Redis` : s.sql === 'postgres' ? 'PostgreSQL' : 'PGlite'}`
  );
}

/** A result's name in the table: the raw relay, or Parley with the transport the generator used. */
export function targetLabel(r: LoadResult): string {
  if (r.target === 'raw') return 'raw ws';
  return { ws: 'parley ws', socketio: 'parley socket.io (ws upgrade)', polling: 'parley socket.io (polling)' }[r.transport];
}

function scenarioName(r: ScenarioResult, s: Settings): string {
  return r.scenario === 'max' ? `max (window ${s.window}/pair)` : `rate ${int(s.rate)}/s × ${s.rateSeconds} s`;
}

/**
 * One row per scenario and target. Where a target has several server processes (gateways,
 * PostgreSQL, Redis), each gets a column of its CPU µs per delivered message beside the total.
 */
export function table(results: readonly LoadResult[], s: Settings): string {
  const split: string[] = [];
  for (const result of results) {
    for (const r of result.scenarios) {
      if (r.processes.length < 2) continue;
      for (const p of r.processes) if (!split.includes(p.name)) split.push(p.name);
    }
  }
  const header = [
    'scenario', 'target', 'msgs', 'throughput msg/s', 'p50 ms', 'p99 ms', 'max ms', 'server cpu', 'load cpu', 'server µs/msg',
    ...split.map((name) => `${name} µs`), 'load µs/msg',
  ];
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const scenario of ['max', 'rate'] as const) {
    for (const result of results) {
      const r = result.scenarios.find((x) => x.scenario === scenario);
      if (!r) continue;
      const label = targetLabel(result);
      let msgs = int(r.delivered);
      if (r.failed > 0 || !r.complete) {
        msgs += '*';
        const errors = Object.entries(r.errors).map(([c, n]) => `${c}×${n}`).join(' ');
        notes.push(`* ${label} ${scenario}: ${int(r.delivered)} of ${int(r.planned)} delivered, ${r.failed} failed${errors ? ` (${errors})` : ''}${r.complete ? '' : ', stalled'}`);
      }
      const processUs = (name: string) => {
        const seconds = r.processes.find((p) => p.name === name)?.cpuSeconds ?? null;
        return us(seconds !== null && r.delivered > 0 ? (seconds * 1e6) / r.delivered : null);
      };
      rows.push([
        scenarioName(r, s),
        label,
        msgs,
        int(r.throughput),
        ms(r.latency.p50),
        ms(r.latency.p99),
        ms(r.latency.max),
        pct(r.serverCpu),
        pct(r.loadCpu),
        us(r.serverCpuUsPerMsg),
        ...split.map(processUs),
        us(r.loadCpuUsPerMsg),
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ');
  const legend =
    'µs: CPU time (user + system, from /proc) per delivered message over the scenario; server = every server process together' +
    (split.length > 0 ? ` (${split.join(' + ')}); postgres = the whole PostgreSQL server's process tree, redis = the redis-server process (both server-wide)` : '');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line), ...notes, legend].join('\n');
}

/**
 * The engines' own counts per delivered message, one line per target and scenario, e.g.
 * `parley ws, rate 2,000/s × 5 s: per message: commits 0.15, redis commands 2.10, publishes 1.00`;
 * then, once, what was not counted and why.
 */
export function engineLines(results: readonly LoadResult[], s: Settings): string[] {
  const out: string[] = [];
  const notes = new Set<string>();
  for (const result of results) {
    for (const r of result.scenarios) {
      const e = r.engines;
      if (!e) continue;
      for (const n of e.notes) notes.add(n);
      const parts: string[] = [];
      if (e.postgres) {
        const pg = e.postgres;
        parts.push(`commits ${per(pg.commits, r.delivered)}`);
        if (pg.rollbacks > 0) parts.push(`rollbacks ${per(pg.rollbacks, r.delivered)}`);
        if (pg.statements !== null) parts.push(`SQL statements ${per(pg.statements, r.delivered)}`);
        parts.push(`rows inserted ${per(pg.rowsInserted, r.delivered)} / updated ${per(pg.rowsUpdated, r.delivered)} / deleted ${per(pg.rowsDeleted, r.delivered)}`);
        if (!pg.settled) notes.add(`${targetLabel(result)} ${r.scenario}: a PostgreSQL backend stayed busy, so its counters may lag`);
      }
      if (e.redis) parts.push(`redis commands ${per(e.redis.commands, r.delivered)}`, `publishes ${per(e.redis.publishes, r.delivered)}`);
      out.push(`${targetLabel(result)}, ${scenarioName(r, s)}: per message: ${parts.join(', ')}`);
    }
  }
  if (out.length === 0) return [];
  const sources =
    'counts from pg_stat_database (the bench database; commits include read-only transactions) and Redis INFO stats / commandstats ' +
    "(server-wide, less the bench's own INFO calls), from before each scenario's first send until its acks are handled";
  return [...out, sources, ...notes];
}

export function ratios(raw: LoadResult, parley: LoadResult): string[] {
  const pick = (r: LoadResult, s: ScenarioResult['scenario']) => r.scenarios.find((x) => x.scenario === s);
  const out: string[] = [];
  const [rm, pm] = [pick(raw, 'max'), pick(parley, 'max')];
  if (rm && pm) {
    out.push(
      `${targetLabel(parley)} / raw, max:  throughput ${times(pm.throughput / rm.throughput)} (${Math.round((100 * pm.throughput) / rm.throughput)}% of the ceiling), ` +
        `p50 ${times(pm.latency.p50 / rm.latency.p50)}, p99 ${times(pm.latency.p99 / rm.latency.p99)}`,
    );
  }
  const [rr, pr] = [pick(raw, 'rate'), pick(parley, 'rate')];
  if (rr && pr) {
    out.push(
      `${targetLabel(parley)} / raw, rate: throughput ${times(pr.throughput / rr.throughput)}, p50 ${times(pr.latency.p50 / rr.latency.p50)}, p99 ${times(pr.latency.p99 / rr.latency.p99)}`,
    );
  }
  return out;
}
