// SQL driver for PGlite: PostgreSQL in WASM on a worker thread, one connection, data in a local directory (embedded default).
import { AsyncLocalStorage } from 'node:async_hooks';
import { Worker } from 'node:worker_threads';
import { AppError } from './errors.js';
import { type Row, runTransaction, type Sql, type SqlTx, wrapSqlError } from './sql.js';
import { PGLITE_WORKER_SOURCE } from './sql.pglite.worker.js';

/** A statement waiting behind a transaction: posted, in order, once the transaction ends. */
type Queued = [id: number, text: string, params: readonly unknown[]];
/** A reply from the worker: `[id, rows]` or `[id, undefined, error]` (see sql.pglite.worker.ts). */
type Reply = [id: number, rows: Row[] | null | undefined, error?: WireError];
/** A PGlite error as the worker sends it: its message and PostgreSQL's string fields. */
type WireError = { message: string; code?: string; stack?: string } & Record<string, string | undefined>;
/** The caller's end of one message in flight. */
interface Resolver {
  resolve(rows: Row[]): void;
  reject(err: unknown): void;
}

/** Rebuilds the worker's error as an Error carrying `code` etc., so wrapSqlError reads it as before. */
function fromWire(w: WireError): Error {
  const { message, stack, ...fields } = w;
  const err = Object.assign(new Error(message), fields);
  if (stack) err.stack = stack;
  return err;
}

/**
 * PGlite runs each query synchronously on the thread that owns it, so it lives on a worker
 * thread: a heavy query no longer stalls every connection on the gateway's event loop. Each
 * statement is one postMessage round trip; the worker runs them one at a time, in order.
 *
 * PGlite is single-connection, so a transaction holds it from BEGIN to COMMIT/ROLLBACK: while
 * one is open (or waiting to open), other callers queue here, FIFO, and reach the worker only
 * after it ends. Plain queries outside a transaction are posted at once (the worker's order is
 * enough). Never open one data directory from two processes. `dataDir` undefined means
 * in-memory (tests). If the worker dies, every pending and later call rejects `unavailable`.
 */
/** Which PgliteSql's transaction callback the current async context runs in (while it is open), if any. */
const insideTransaction = new AsyncLocalStorage<{ db: PgliteSql; handle: { open: boolean } }>();

export class PgliteSql implements Sql {
  readonly driver = 'pglite' as const;

  private nextId = 1;
  /** Messages posted or queued and not yet answered; non-empty keeps the process alive. */
  private readonly pending = new Map<number, Resolver>();
  /** Statements and transactions waiting for the open transaction to end, FIFO. */
  private readonly queue: (Queued | (() => void))[] = [];
  private inTransaction = false;
  private closing: Promise<void> | undefined;
  /** Why the worker is gone, once it is. */
  private dead: AppError | undefined;
  /** Resolves once nothing is pending, queued or in a transaction (for close). */
  private idle: (() => void) | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (msg: Reply) => this.settle(msg));
    worker.on('error', (err) => this.fail(err));
    worker.on('messageerror', (err) => {
      // A reply that cannot be read belongs to no known call: give up on the worker rather than hang one.
      this.fail(err);
      void this.worker.terminate();
    });
    worker.on('exit', (code) => this.fail(new Error(`PGlite worker exited with code ${code}`)));
    worker.unref();
  }

  /** Starts the worker and resolves once PGlite is ready in it; rejects with PGlite's error if it cannot open. */
  static async open(dataDir?: string): Promise<PgliteSql> {
    const worker = new Worker(PGLITE_WORKER_SOURCE, {
      eval: true,
      workerData: { pgliteUrl: import.meta.resolve('@electric-sql/pglite'), dataDir },
    });
    let onMessage!: (msg: [0, boolean, WireError?]) => void;
    let onError!: (err: Error) => void;
    let onExit!: (code: number) => void;
    try {
      await new Promise<void>((resolve, reject) => {
        onMessage = ([, ok, error]) => (ok ? resolve() : reject(fromWire(error!)));
        onError = reject;
        onExit = (code) => reject(new Error(`PGlite worker exited with code ${code} while opening`));
        worker.once('message', onMessage).once('error', onError).once('exit', onExit);
      });
    } catch (err) {
      await worker.terminate();
      throw err;
    } finally {
      // Only ours: removeAllListeners would also drop the Worker's internal ones and stall its port.
      worker.off('message', onMessage).off('error', onError).off('exit', onExit);
    }
    return new PgliteSql(worker);
  }

  async query<T extends Row = Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
    try {
      if (this.closing) throw new AppError('unavailable', 'database closed');
      // One connection: a plain query from inside a transaction's own callback would wait for
      // that transaction to end, which waits for the query: refuse it instead of hanging.
      const inside = insideTransaction.getStore();
      if (inside?.db === this && inside.handle.open) throw new AppError('internal', 'a query inside a transaction must use its tx, not the store');
      const id = this.nextId++;
      const rows = this.expect(id);
      if (this.inTransaction || this.queue.length > 0) this.queue.push([id, text, params]);
      else this.post(id, text, params);
      return (await rows) as T[];
    } catch (err) {
      throw wrapSqlError(err);
    }
  }

  async transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    if (this.closing) throw new AppError('unavailable', 'database closed');
    if (this.inTransaction || this.queue.length > 0) {
      await new Promise<void>((start) => this.queue.push(start)); // `drain` marks us in a transaction
    } else {
      this.inTransaction = true;
    }
    // Ends with the transaction: a `tx` kept past it must not slip statements in unlocked.
    const handle = { open: true };
    try {
      return await insideTransaction.run({ db: this, handle }, () => runTransaction<T, typeof handle>(
        async (body) => {
          await this.send('BEGIN');
          let result: T;
          try {
            result = await body(handle);
          } catch (err) {
            await this.send('ROLLBACK');
            throw err;
          }
          // A failed COMMIT has already ended the transaction: no ROLLBACK after it.
          await this.send('COMMIT');
          return result;
        },
        (h, text, params) => {
          if (!h.open) return Promise.reject(new Error('transaction is closed'));
          return this.send(text, params);
        },
        fn,
      ));
    } finally {
      handle.open = false;
      this.inTransaction = false;
      this.drain();
    }
  }

  /**
   * Waits for work in flight (including queued transactions), closes PGlite in the worker, then
   * ends the worker. Rejects `unavailable` if the worker died first: PGlite was not closed cleanly.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.busy()) await new Promise<void>((resolve) => (this.idle = resolve));
      if (this.dead) throw this.dead;
      const failed = await this.send(null).then(() => undefined, (err: unknown) => err);
      const died = this.dead;
      this.dead = new AppError('unavailable', 'database closed'); // also mutes the exit event below
      await this.worker.terminate();
      if (died) throw died;
      if (failed) throw wrapSqlError(failed);
    })();
    return this.closing;
  }

  /**
   * Test hook, not for production code: ends the worker abruptly, as a crash would, without
   * closing PGlite. Use only with in-memory databases.
   */
  async crashWorkerForTest(): Promise<void> {
    await this.worker.terminate();
  }

  /** Posts one statement now (the caller holds the connection or nothing holds it). */
  private send(text: string | null, params: readonly unknown[] = []): Promise<Row[]> {
    const id = this.nextId++;
    const rows = this.expect(id);
    this.post(id, text, params);
    return rows;
  }

  private expect(id: number): Promise<Row[]> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.pending.size === 0) this.worker.ref(); // the process must not exit mid-query
    return new Promise<Row[]>((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  private post(id: number, text: string | null, params: readonly unknown[]): void {
    if (this.dead) return; // `expect` already rejected it
    try {
      this.worker.postMessage([id, text, params]);
    } catch (err) {
      // A parameter structured clone cannot copy (a function, a symbol): a bug in this call alone.
      this.take(id)?.reject(new AppError('internal', 'database error', { cause: err }));
    }
  }

  private settle([id, rows, error]: Reply): void {
    const r = this.take(id);
    if (error) r?.reject(fromWire(error));
    else r?.resolve(rows!);
  }

  /** Removes an answered message; with none left, the process may exit and `close` may go on. */
  private take(id: number): Resolver | undefined {
    const r = this.pending.get(id);
    if (!r) return undefined;
    this.pending.delete(id);
    if (this.pending.size === 0) {
      this.worker.unref();
      if (this.idle && !this.busy()) this.idle();
    }
    return r;
  }

  /** The transaction ended: post queued statements in order, up to the next transaction, which starts. */
  private drain(): void {
    while (this.queue.length > 0) {
      const next = this.queue.shift()!;
      if (typeof next === 'function') {
        this.inTransaction = true;
        next();
        return;
      }
      this.post(...next);
    }
    if (this.idle && !this.busy()) this.idle();
  }

  private busy(): boolean {
    return this.inTransaction || this.pending.size > 0 || this.queue.length > 0;
  }

  /** The worker is gone: reject everything pending, let queued transactions fail on their BEGIN, refuse the rest. */
  private fail(cause: unknown): void {
    if (this.dead) return;
    this.dead = new AppError('unavailable', 'database unavailable', { cause });
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.worker.unref();
    for (const r of pending) r.reject(this.dead);
    for (const next of this.queue.splice(0)) if (typeof next === 'function') next();
    if (this.idle && !this.busy()) this.idle();
  }
}
