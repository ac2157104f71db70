// The SQL store's client port: a tiny interface that PGlite and PostgreSQL both implement.
import { AppError } from './errors.js';

/** A row as returned by a query: column name to value. */
export type Row = Record<string, unknown>;

/**
 * A SQL client. Contract (checked by `sqlContract` against every driver):
 * - `query` runs one statement with `$1…$n` parameters and resolves to its rows ([] when none).
 *   Parameters are strings, numbers, booleans or null; pass structured values as JSON text
 *   and cast (`$1::json`). `bigint` columns come back as strings or numbers: use `num()`.
 * - `transaction` runs `fn` on one connection inside BEGIN … COMMIT; a throw rolls back and
 *   rethrows. Statements outside `fn` may interleave with it on other connections.
 * - Failures are AppErrors: a unique violation is `conflict`; a lost or refused connection is
 *   `unavailable` (temporary); a serialization failure or deadlock is `unavailable` with
 *   `details.retry: true`; anything else is `internal`. Driver errors never leave unwrapped.
 * - `close` waits for work in progress and releases the connection(s).
 */
export interface Sql {
  readonly driver: 'pglite' | 'postgres';
  query<T extends Row = Row>(text: string, params?: readonly unknown[]): Promise<T[]>;
  transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The handle inside a transaction. */
export interface SqlTx {
  query<T extends Row = Row>(text: string, params?: readonly unknown[]): Promise<T[]>;
}

/** Reads a bigint/int column as a JS number (both drivers may return strings for int8). */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' || typeof v === 'bigint') return Number(v);
  if (v === null || v === undefined) return 0;
  throw new TypeError(`not a number: ${typeof v}`);
}

/** SQLSTATE classes and codes we treat specially. */
const UNIQUE_VIOLATION = '23505';
const RETRYABLE = new Set(['40001', '40P01']); // serialization_failure, deadlock_detected
const CONNECTION_CLASSES = ['08', '57', '53']; // connection, operator intervention (shutdown), resources

/** Wraps a driver error into an AppError; shared by both drivers. */
export function wrapSqlError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const e = err as { code?: unknown; message?: unknown; errno?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  if (code === UNIQUE_VIOLATION) return new AppError('conflict', 'already exists', { cause: err, temporary: false });
  if (RETRYABLE.has(code)) return new AppError('unavailable', 'transaction conflict', { cause: err, details: { retry: true } });
  // Errors without a SQLSTATE come from the connection, not the statement (ECONNREFUSED,
  // EPIPE, postgres.js CONNECTION_CLOSED / CONNECT_TIMEOUT, …): the same call may work later.
  const sqlstate = /^[0-9A-Z]{5}$/.test(code) && !/^E[A-Z]{4}$/.test(code);
  if (!sqlstate || CONNECTION_CLASSES.some((c) => code.startsWith(c))) {
    return new AppError('unavailable', 'database unavailable', { cause: err });
  }
  return new AppError('internal', 'database error', { cause: err });
}

/**
 * Runs `fn` inside a driver's transaction: driver errors (from queries, BEGIN or COMMIT) become
 * AppErrors via wrapSqlError, while whatever `fn` itself throws passes through untouched.
 * Shared by both drivers so they fail alike.
 */
export async function runTransaction<T, Raw>(
  begin: (body: (raw: Raw) => Promise<T>) => Promise<T>,
  rawQuery: (raw: Raw, text: string, params: unknown[]) => Promise<Row[]>,
  fn: (tx: SqlTx) => Promise<T>,
): Promise<T> {
  // What `fn` threw, so it passes through untouched. The driver may reject with a different
  // error (e.g. its ROLLBACK failed because the connection died): that one is wrapped.
  const none = Symbol('none');
  let fnError: unknown = none;
  try {
    return await begin(async (raw) => {
      const tx: SqlTx = {
        query: async <R extends Row = Row>(text: string, params: readonly unknown[] = []) => {
          try {
            return (await rawQuery(raw, text, params as unknown[])) as R[];
          } catch (err) {
            throw wrapSqlError(err);
          }
        },
      };
      try {
        return await fn(tx);
      } catch (err) {
        fnError = err;
        throw err;
      }
    });
  } catch (err) {
    if (fnError !== none && fnError === err) throw err;
    throw wrapSqlError(err);
  }
}
