// What the bench prints: the machine, the configuration, one table row per scenario and target, and Parley / raw ratios.
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import type { LoadResult, ScenarioResult } from './results.js';
import type { Settings } from './settings.js';

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const pct = (n: number | null) => (n === null ? '-' : `${Math.round(n * 100)}%`);
const us = (n: number | null) => (n === null ? '-' : Math.round(n).toLocaleString('en-US'));
const times = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '-');

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

export function table(results: readonly LoadResult[], s: Settings): string {
  const header = ['scenario', 'target', 'msgs', 'throughput msg/s', 'p50 ms', 'p99 ms', 'max ms', 'server cpu', 'load cpu', 'server µs/msg', 'load µs/msg'];
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
        us(r.loadCpuUsPerMsg),
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line), ...notes].join('\n');
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
