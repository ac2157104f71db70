// RetentionSweeper: the background worker that deletes expired files and the blobs nobody references any more.
import type { Clock } from '../platform/clock.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import type { FileService } from './files.js';

export interface RetentionSweeperOptions {
  /** Time between sweeps. */
  intervalMs: number;
  /** Staging objects older than this are leftovers of a dead upload. Default 1 hour. */
  stagingMaxAgeMs?: number;
}

export interface SweepResult {
  files: number;
  blobs: number;
  staged: number;
}

/**
 * Each sweep, in order: expire files past `expires_at` (by the injected clock), delete blobs
 * whose references reached 0 (store first, then row: see FileService), and remove staging
 * leftovers. Each step works in bounded batches and loops until a batch comes back short.
 * Several processes may sweep at once (rows are claimed with SKIP LOCKED). A failing sweep is
 * logged and counted, and the next one starts over; nothing is lost by a crash mid-sweep.
 *
 * @example const sweeper = new RetentionSweeper(files, clock, log, metrics, { intervalMs: 600_000 }); sweeper.start();
 */
export class RetentionSweeper {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private stopped = true;

  constructor(
    private readonly files: FileService,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly options: RetentionSweeperOptions,
  ) {}

  /** Sweeps soon after start, then every `intervalMs`. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(Math.min(5_000, this.options.intervalMs));
  }

  /** Stops scheduling and waits for a sweep in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One full sweep now. Rejects if a step fails (start() logs and counts that instead). */
  async sweep(): Promise<SweepResult> {
    const run = this.running.then(() => this.sweepOnce());
    this.running = run.catch(() => {});
    return run;
  }

  private async sweepOnce(): Promise<SweepResult> {
    const now = this.clock.now();
    const result: SweepResult = { files: 0, blobs: 0, staged: 0 };
    result.files = await drain((limit) => this.files.expireFiles(now, limit), 500);
    result.blobs = await drain((limit) => this.files.purgeBlobs(limit), 100);
    result.staged = await this.files.purgeStaged(now - (this.options.stagingMaxAgeMs ?? 60 * 60_000));
    if (result.files + result.blobs + result.staged > 0) this.log.info(result, 'retention sweep');
    return result;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sweep()
        .catch((err: unknown) => {
          this.log.error({ err }, 'retention sweep failed');
          this.metrics.backendFailures.inc({ backend: 'files', operation: 'sweep' });
        })
        .finally(() => this.schedule(this.options.intervalMs));
    }, ms);
    this.timer.unref?.();
  }
}

/** Runs `batch` until it handles fewer than `size` items; the total handled. */
async function drain(batch: (limit: number) => Promise<number>, size: number): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await batch(size);
    total += n;
    if (n < size) return total;
  }
}
