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

  constructor(
    private readonly flush: (items: T[]) => Promise<R[]>,
    options: { maxBatch?: number; onBatch?: (size: number) => void } = {},
  ) {
    this.maxBatch = options.maxBatch ?? 256;
    this.onBatch = options.onBatch;
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
    while (this.queue.length > 0) {
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
}
