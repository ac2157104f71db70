// Periodic: a background job run every interval, one run at a time, that can also be run at once and stopped.
export interface PeriodicOptions {
  /** Time between the end of one scheduled run and the start of the next. */
  intervalMs: number;
  /** Delay of the first scheduled run after start(). Default: intervalMs. */
  firstMs?: number;
  /** A scheduled run failed: log and count it (the next run starts over). */
  onError(err: unknown): void;
}

/**
 * Runs never overlap: run() queues behind a run in progress, and a scheduled run is one more
 * run(). The timer is unref'd, so it never keeps a process alive; stop() waits for the run in
 * progress, so nothing touches a backing service after its adapter is closed.
 *
 * @example const sweeps = new Periodic(() => sweep(), { intervalMs: 60_000, onError: (err) => log.error({ err }) }); sweeps.start();
 */
export class Periodic<T> {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private stopped = true;

  constructor(
    private readonly job: () => Promise<T>,
    private readonly options: PeriodicOptions,
  ) {}

  /** Whether it was started and not stopped. */
  get active(): boolean {
    return !this.stopped;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(this.options.firstMs ?? this.options.intervalMs);
  }

  /** Stops scheduling and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One run now, after any run in progress. Rejects if the job fails (scheduled runs report to onError instead). */
  run(): Promise<T> {
    const run = this.running.then(() => this.job());
    this.running = run.catch(() => {});
    return run;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.run()
        .catch((err: unknown) => this.options.onError(err))
        .finally(() => this.schedule(this.options.intervalMs));
    }, ms);
    this.timer.unref?.();
  }
}
