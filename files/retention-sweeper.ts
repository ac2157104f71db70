// RetentionSweeper: the background worker that deletes expired files and the blobs nobody references any more.
import type { Clock } from '../platform/clock.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import { Periodic } from '../platform/periodic.js';
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
  private readonly sweeps: Periodic<SweepResult>;

  constructor(
    private readonly files: FileService,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly options: RetentionSweeperOptions,
  ) {
    this.sweeps = new Periodic(() => this.sweepOnce(), {
      intervalMs: options.intervalMs,
      firstMs: Math.min(5_000, options.intervalMs),
      onError: (err) => {
        this.log.error({ err }, 'retention sweep failed');
        this.metrics.backendFailures.inc({ backend: 'files', operation: 'sweep' });
      },
    });
  }

  /** Sweeps soon after start, then every `intervalMs`. */
  start(): void {
    this.sweeps.start();
  }

  /** Stops scheduling and waits for a sweep in progress. */
  stop(): Promise<void> {
    return this.sweeps.stop();
  }

  /** One full sweep now. Rejects if a step fails (start() logs and counts that instead). */
  sweep(): Promise<SweepResult> {
    return this.sweeps.run();
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
