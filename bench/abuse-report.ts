// What `--abuse` prints: per target, a table of the bystander's latency idle and under each attack with CPU, then what each attack met; last, one verdict line per attack.
import type { AttackResult, BystanderResult } from './abuse-results.js';
import type { AbuseSettings, Attack } from './settings.js';

export type AbuseTarget = AbuseSettings['targets'][number];

/** The p99 under attack may be at most this many times the idle p99. */
export const P99_TARGET = 2;

/** One phase as the orchestrator saw it. CPU figures are CPU seconds per second of wall time (1 = one core busy); null without /proc. */
export interface PhaseMeasure {
  bystander: BystanderResult;
  seconds: number;
  serverCpu: number | null;
  attackerCpu: number | null;
  bystanderCpu: number | null;
  machineBusy: number | null;
  /** What the servers' /metrics counted during the phase: errors as `code/transport`, `handler_crashes:where`, `backend_failures:backend/operation`. */
  serverCounted: Record<string, number>;
  /** Lines the servers logged at warn or above during the phase: how many, and the first ones. */
  serverProblemCount: number;
  serverProblems: string[];
}

export interface TargetOutcome {
  target: AbuseTarget;
  processes: string;
  setupSeconds: number;
  /** The whole target, setup to the servers' stop. */
  seconds?: number;
  /** The bystander's send frame on the wire. */
  frameBytes: number;
  notes: string[];
  /** Per attack: the idle phase, the attack phase, and how long the servers stayed busy after it (`quiet` false: longer than the bench waited). */
  pairs: { attack: Attack; idle: PhaseMeasure; under: PhaseMeasure; result: AttackResult | null; recovery: { seconds: number; quiet: boolean } }[];
  /** Why the attacks stopped early (a server died), or null. */
  aborted: string | null;
  /** The servers' stderr. */
  problems: string[];
}

const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
const cpu = (n: number | null) => (n === null ? '-' : n.toFixed(2));
const tally = (r: Record<string, number>) => Object.entries(r).map(([k, n]) => `${k}×${n.toLocaleString('en-US')}`).join(' ') || 'none';

/** The rest of the machine during a phase: busy CPU minus the servers, the attacker and the bystander (PostgreSQL and Redis on the cluster; anything else running). */
function otherCpu(m: PhaseMeasure): number | null {
  if (m.machineBusy === null || m.serverCpu === null || m.attackerCpu === null || m.bystanderCpu === null) return null;
  return Math.max(0, m.machineBusy - m.serverCpu - m.attackerCpu - m.bystanderCpu);
}

/** p99 under attack ÷ p99 idle. */
export function p99Ratio(p: TargetOutcome['pairs'][number]): number {
  return p.under.bystander.latency.p99 / p.idle.bystander.latency.p99;
}

/** The median of the target's idle p99s: the reference when one idle phase was itself disturbed. */
function medianIdleP99(o: TargetOutcome): number {
  const xs = o.pairs.map((p) => p.idle.bystander.latency.p99).sort((x, y) => x - y);
  return xs.length === 0 ? Number.NaN : xs[Math.floor((xs.length - 1) / 2)]!;
}

/**
 * An idle phase whose p99 is over twice the target's median idle p99 had a hiccup of its own
 * (nothing was attacking): its ratio says little, so the report also compares with the median.
 */
function disturbed(o: TargetOutcome, p: TargetOutcome['pairs'][number]): boolean {
  const m = medianIdleP99(o);
  return p.idle.bystander.latency.p99 > 2 * m && p.idle.bystander.latency.p99 > m + 5;
}

function table(o: TargetOutcome): string {
  const header = ['attack', 'idle p50', 'p99', 'max', 'attack p50', 'p99', 'max', 'p99 ÷ idle', '÷ median idle', 'lost', 'dup', 'server cpu idle', 'attack', 'attacker cpu', 'other cpu', 'machine busy', 'phase s', 'busy after s'];
  const rows = o.pairs.map((p) => {
    const [i, u] = [p.idle.bystander, p.under.bystander];
    const ratio = p99Ratio(p);
    return [
      p.attack,
      f2(i.latency.p50),
      f2(i.latency.p99),
      f2(i.latency.max),
      f2(u.latency.p50),
      f2(u.latency.p99),
      f2(u.latency.max),
      `${f2(ratio)}×${ratio <= P99_TARGET ? '' : ' !'}${disturbed(o, p) ? ' ?' : ''}`,
      `${f2(u.latency.p99 / medianIdleP99(o))}×`,
      String(u.lost),
      String(u.duplicated),
      cpu(p.idle.serverCpu),
      cpu(p.under.serverCpu),
      cpu(p.under.attackerCpu),
      cpu(otherCpu(p.under)),
      cpu(p.under.machineBusy),
      f1(p.under.seconds),
      `${p.recovery.quiet ? '' : '> '}${f1(p.recovery.seconds)}`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ');
  const notes = [`! over ${P99_TARGET}× the idle p99 right before; ? that idle phase was itself disturbed (p99 over twice the median idle p99, ${f2(medianIdleP99(o))} ms)`];
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line), ...notes].join('\n');
}

/** What the bystander met in a phase besides latency, or '' when nothing. */
function bystanderTrouble(b: BystanderResult): string {
  const parts: string[] = [];
  if (b.lost > 0) parts.push(`${b.lost} of ${b.sent} lost`);
  if (b.duplicated > 0) parts.push(`${b.duplicated} duplicated`);
  if (b.outOfOrder > 0) parts.push(`${b.outOfOrder} out of order`);
  if (b.late > 0) parts.push(`${b.late} late from an earlier phase`);
  if (b.skipped > 0) parts.push(`${b.skipped} sends skipped while reconnecting`);
  if (Object.keys(b.errors).length > 0) parts.push(`error frames ${tally(b.errors)}`);
  if (b.closes.length > 0) parts.push(`closed by the server: ${b.closes.join('; ')}`);
  return parts.join(', ');
}

export function printTarget(o: TargetOutcome, a: AbuseSettings): void {
  console.log(
    `\n== ${o.target}: ${o.processes}; setup ${f1(o.setupSeconds)} s, whole target ${f1(o.seconds ?? Number.NaN)} s; ` +
      `bystander: ${a.intervalMs} ms between messages, send frame ${o.frameBytes} bytes; latency in ms, CPU in CPU-seconds per second (1.00 = one core); ` +
      `other cpu: the rest of the machine (PostgreSQL and Redis on the cluster, and anything else running); ` +
      `busy after s: how long the machine stayed above a quarter of a core once the attack had stopped`,
  );
  for (const n of o.notes) console.log(`setup: ${n}`);
  console.log(table(o));
  for (const p of o.pairs) {
    const r = p.result;
    console.log(`${p.attack} (${f1(r?.seconds ?? Number.NaN)} s, ${p.under.bystander.sent} bystander messages): ${r?.summary ?? 'no result'}`);
    console.log(
      `    server counted: ${tally(p.under.serverCounted)}; cpu idle → under attack: bystander process ${cpu(p.idle.bystanderCpu)} → ${cpu(p.under.bystanderCpu)}, ` +
        `other ${cpu(otherCpu(p.idle))} → ${cpu(otherCpu(p.under))}`,
    );
    for (const finding of r?.findings ?? []) console.log(`    finding: ${finding}`);
    const [ti, tu] = [bystanderTrouble(p.idle.bystander), bystanderTrouble(p.under.bystander)];
    if (ti) console.log(`    bystander idle: ${ti}`);
    if (tu) console.log(`    bystander under attack: ${tu}`);
    for (const [label, m] of [['idle', p.idle], ['under attack', p.under]] as const) {
      if (m.serverProblemCount > 0) console.log(`    servers logged ${m.serverProblemCount} warn/error line(s) ${label}; the first: ${m.serverProblems[0]?.slice(0, 300) ?? '?'}`);
    }
  }
  if (o.aborted) console.log(`ABORTED: ${o.aborted}`);
  for (const p of o.problems.slice(0, 5)) console.log(`  ${p.slice(0, 300)}`);
}

export function printVerdicts(outcomes: TargetOutcome[]): void {
  console.log('\nverdicts (target: p99 under attack ≤ 2× idle; every bystander message delivered exactly once, in order):');
  for (const o of outcomes) {
    for (const p of o.pairs) {
      const u = p.under.bystander;
      const ratio = p99Ratio(p);
      const answered = p.result?.ok === null || p.result === null ? '' : `; the server answered the attack as expected: ${p.result.ok ? 'yes' : 'NO'}`;
      const m = medianIdleP99(o);
      const caveat = disturbed(o, p)
        ? ` [that idle phase was disturbed; against the median idle p99 (${f2(m)} ms): ${f2(u.latency.p99 / m)}× → ${u.latency.p99 / m <= P99_TARGET ? 'yes' : 'no'}]`
        : '';
      console.log(
        `${o.target.padEnd(8)} ${p.attack.padEnd(16)} p99 within 2× idle: ${ratio <= P99_TARGET ? 'yes' : 'no'} (${f2(ratio)}×; ` +
          `p99 ${f2(p.idle.bystander.latency.p99)} → ${f2(u.latency.p99)} ms, p50 ${f2(p.idle.bystander.latency.p50)} → ${f2(u.latency.p50)} ms)${caveat}, ` +
          `lost ${u.lost}, duplicated ${u.duplicated}${u.outOfOrder > 0 ? `, out of order ${u.outOfOrder}` : ''}${answered}`,
      );
    }
  }
}
