// The load shapes over a set of pairs: a fixed count through a window of undelivered messages per pair, and a fixed total rate for a fixed time.
import type { Pair, PairEvents } from './pairs.js';
import type { Probe } from './probe.js';
import type { ScenarioResult } from './results.js';
import { summarize } from './stats.js';

/** A scenario gives up when nothing was delivered or failed for this long. */
const STALL_MS = 15_000;
/** After a scenario, how long to wait for Parley's `sent` acknowledgements to catch up with the deliveries. */
const ACCEPT_WAIT_MS = 5_000;

interface Run {
  planned: number;
  startedAt: number;
  lastAt: number;
  progressAt: number;
  delivered: number;
  failed: number;
  latencies: number[];
  errors: Record<string, number>;
  /** A pair's in-flight slot freed up (its message was delivered or failed). */
  onSlot?: (pair: Pair) => void;
  finish: () => void;
  abort: (err: Error) => void;
}

/**
 * Keeps the send time of every message by client id (`p<pair>m<n>`, unique per sender device)
 * and turns deliveries into latencies for the scenario in progress.
 */
export class Driver implements PairEvents {
  private readonly sentAt = new Map<string, number>();
  private pairs: Pair[] = [];
  private run: Run | null = null;
  private sentTotal = 0;
  private acceptedTotal = 0;
  private failedTotal = 0;
  /** Deliveries of ids not (or no longer) awaited: duplicates, or late ones after a stalled scenario. */
  unexpected = 0;
  /** The first few error messages, for diagnosis. */
  readonly errorSamples: string[] = [];

  constructor(
    /** CPU per server process and the engines' counters, over exactly each scenario. */
    private readonly probe: Probe,
    /** Whether the target acknowledges sends with `sent` frames (Parley). */
    private readonly acknowledges: boolean,
  ) {}

  use(pairs: Pair[]): void {
    this.pairs = pairs;
  }

  /**
   * Max throughput: `planned` messages spread evenly over the pairs, each pair keeping at most `window` undelivered.
   * `probed` false (the warm-up) skips the per-process CPU and the engines' counters, and the wait for PostgreSQL's.
   */
  windowed(planned: number, window: number, probed = true): Promise<ScenarioResult> {
    const n = this.pairs.length;
    const quota = this.pairs.map((p) => Math.floor(planned / n) + (p.index < planned % n ? 1 : 0));
    const sentHere = this.pairs.map(() => 0);
    return this.measure('max', planned, probed, (run) => {
      const next = (pair: Pair) => {
        if (sentHere[pair.index]! >= quota[pair.index]!) return;
        sentHere[pair.index]!++;
        this.send(pair);
      };
      run.onSlot = next;
      for (let i = 0; i < window; i++) for (const p of this.pairs) next(p);
    });
  }

  /** Fixed rate: `rate` messages per second in total, round-robin over the pairs, for `seconds`; no window. */
  fixedRate(rate: number, seconds: number): Promise<ScenarioResult> {
    const planned = Math.round(rate * seconds);
    return this.measure('rate', planned, true, (run) => {
      let sent = 0;
      const tick = () => {
        if (this.run !== run) return;
        const due = Math.min(planned, Math.floor(((performance.now() - run.startedAt) / 1000) * rate) + 1);
        while (sent < due) this.send(this.pairs[sent++ % this.pairs.length]!);
        if (sent < planned) setTimeout(tick, 1);
      };
      tick();
    });
  }

  delivered(pair: Pair, id: string, at: number): void {
    const t0 = this.sentAt.get(id);
    const run = this.run;
    if (t0 === undefined || !run) {
      this.unexpected++;
      return;
    }
    this.sentAt.delete(id);
    run.latencies.push(at - t0);
    run.delivered++;
    run.lastAt = at;
    this.settle(pair, run);
  }

  accepted(): void {
    this.acceptedTotal++;
  }

  failed(pair: Pair, ref: string | undefined, code: string, message: string): void {
    const run = this.run;
    if (run) run.errors[code] = (run.errors[code] ?? 0) + 1;
    if (this.errorSamples.length < 5) this.errorSamples.push(`${code}: ${message}`);
    if (ref !== undefined && this.sentAt.delete(ref)) {
      this.failedTotal++;
      if (run) {
        run.failed++;
        run.lastAt = performance.now();
        this.settle(pair, run);
      }
    }
  }

  closed(pair: Pair, end: 'sender' | 'recipient', code: number, reason: string): void {
    this.run?.abort(new Error(`pair ${pair.index}: the ${end}'s socket closed (${code} ${reason})`));
  }

  private send(pair: Pair): void {
    const id = `p${pair.index}m${pair.sent}`;
    this.sentAt.set(id, performance.now());
    pair.send(id);
    this.sentTotal++;
  }

  private settle(pair: Pair, run: Run): void {
    pair.inFlight--;
    run.progressAt = performance.now();
    if (run.delivered + run.failed >= run.planned) run.finish();
    else run.onSlot?.(pair);
  }

  private async measure(scenario: ScenarioResult['scenario'], planned: number, probed: boolean, start: (run: Run) => void): Promise<ScenarioResult> {
    const mark = probed ? await this.probe.begin() : null;
    const load0 = process.cpuUsage();
    const t0 = performance.now();
    let stall: NodeJS.Timeout | undefined;
    const run: Run = {
      planned,
      startedAt: t0,
      lastAt: t0,
      progressAt: t0,
      delivered: 0,
      failed: 0,
      latencies: [],
      errors: {},
      finish: () => {},
      abort: () => {},
    };
    const outcome = new Promise<boolean>((resolve, reject) => {
      run.finish = () => resolve(true);
      run.abort = reject;
      stall = setInterval(() => {
        if (performance.now() - run.progressAt > STALL_MS) resolve(false);
      }, 500);
    });
    this.run = run;
    let complete: boolean;
    try {
      if (planned > 0) start(run);
      complete = planned === 0 || (await outcome);
    } finally {
      clearInterval(stall);
      this.run = null;
    }
    const t1 = performance.now();
    const wall = (t1 - t0) / 1000;
    const load = process.cpuUsage(load0);
    const processes = mark ? this.probe.cpuSince(mark) : [];
    if (!complete) {
      // Forget what is still in flight: late deliveries count as unexpected, not in the next scenario.
      this.sentAt.clear();
      for (const p of this.pairs) p.inFlight = 0;
    }
    if (this.acknowledges) await this.acceptsCaughtUp();
    const engines = mark ? await this.probe.enginesSince(mark) : null;
    const seconds = ((complete ? run.lastAt : t1) - run.startedAt) / 1000;
    const loadCpuSeconds = (load.user + load.system) / 1e6;
    const serverCpuSeconds = processes.length > 0 && processes.every((p) => p.cpuSeconds !== null) ? processes.reduce((a, p) => a + p.cpuSeconds!, 0) : null;
    const perMessage = (cpuSeconds: number | null) => (cpuSeconds !== null && run.delivered > 0 ? (cpuSeconds * 1e6) / run.delivered : null);
    return {
      scenario,
      planned,
      delivered: run.delivered,
      failed: run.failed,
      seconds,
      throughput: seconds > 0 ? run.delivered / seconds : 0,
      latency: summarize(run.latencies),
      errors: run.errors,
      complete,
      serverCpu: serverCpuSeconds !== null && wall > 0 ? serverCpuSeconds / wall : null,
      loadCpu: wall > 0 ? loadCpuSeconds / wall : 0,
      serverCpuUsPerMsg: perMessage(serverCpuSeconds),
      loadCpuUsPerMsg: perMessage(loadCpuSeconds),
      processes,
      engines,
    };
  }

  /** Waits (briefly) until every send was acknowledged or failed, so one scenario's tail does not spill into the next. */
  private async acceptsCaughtUp(): Promise<void> {
    const deadline = performance.now() + ACCEPT_WAIT_MS;
    while (this.acceptedTotal + this.failedTotal < this.sentTotal && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
