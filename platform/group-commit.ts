// Group commit: many callers' writes share one transaction, so durability costs one round trip per batch.

interface Pending<T, R> {
  item: T;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

/**
 * Collects submitted items while a flush is in progress and writes them together in the next
 * flush. No timer: an idle system flushes a lone item at once; a busy one batches naturally.
 * `flush` must return one result per item, in order; if it throws, every item in that batch
 * is rejected with the error.
 *
 * @example
 * const commit = new GroupCommit((rows) => store.insertMany(rows), { maxBatch: 256 });
 * const { seq } = await commit.submit(row);
 */
export class GroupCommit<T, R> {
  private queue: Pending<T, R>[] = [];
  private running: Promise<void> | null = null;
  private readonly maxBatch: number;

  /** See the constructor's `lingerMs`. */
  private readonly lingerMs: number | undefined;

  /**
   * `lingerMs`: before a batch that follows another one (the system is busy), wait until the
   * event loop has run its pending I/O callbacks (0), or this many milliseconds while fewer
   * than a quarter of `maxBatch` items wait, so more items join it. Unset: no wait. A lone
   * item after an idle spell never waits.
   */
  constructor(
    private readonly flush: (items: T[]) => Promise<R[]>,
    options: { maxBatch?: number; onBatch?: (size: number) => void; lingerMs?: number } = {},
  ) {
    this.maxBatch = options.maxBatch ?? 256;
    this.onBatch = options.onBatch;
    this.lingerMs = options.lingerMs;
  }

  private readonly onBatch?: (size: number) => void;

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.running) this.running = this.drain();
    });
  }

  /** Resolves when everything submitted so far has been flushed (or failed). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    // Let the current tick's submissions join the first batch.
    await Promise.resolve();
    let first = true;
    while (this.queue.length > 0) {
      if (!first && this.lingerMs !== undefined) await this.linger(this.lingerMs);
      first = false;
      const batch = this.queue.splice(0, this.maxBatch);
      this.onBatch?.(batch.length);
      try {
        const results = await this.flush(batch.map((p) => p.item));
        batch.forEach((p, i) => p.resolve(results[i] as R));
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    this.running = null;
  }

  private async linger(ms: number): Promise<void> {
    await new Promise((r) => setImmediate(r));
    if (ms > 0 && this.queue.length < this.maxBatch / 4) await new Promise((r) => setTimeout(r, ms));
  }
}
