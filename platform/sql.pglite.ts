// SQL driver for PGlite: PostgreSQL in WASM, one connection, data in a local directory (embedded default).
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { type Row, runTransaction, type Sql, type SqlTx, wrapSqlError } from './sql.js';

/**
 * PGlite is single-connection: PGlite itself queues queries, and a transaction holds the
 * connection until it ends, so other queries wait for it. Never open one data directory from
 * two processes. `dataDir` undefined means in-memory (tests).
 */
export class PgliteSql implements Sql {
  readonly driver = 'pglite' as const;

  private constructor(private readonly db: PGlite) {}

  static async open(dataDir?: string): Promise<PgliteSql> {
    const db = dataDir ? new PGlite(dataDir) : new PGlite();
    await db.waitReady;
    return new PgliteSql(db);
  }

  async query<T extends Row = Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
    try {
      const r = await this.db.query<T>(text, params as unknown[]);
      return r.rows;
    } catch (err) {
      throw wrapSqlError(err);
    }
  }

  transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    return runTransaction<T, Transaction>(
      (body) => this.db.transaction(body),
      async (t, text, params) => (await t.query<Row>(text, params)).rows,
      fn,
    );
  }

  async close(): Promise<void> {
    if (!this.db.closed) await this.db.close();
  }
}
