// SQL driver for PostgreSQL via the `postgres` library: a connection pool shared by many processes.
import postgres from 'postgres';
import { type Row, runTransaction, type Sql, type SqlTx, wrapSqlError } from './sql.js';

export interface PostgresSqlOptions {
  /** Pool size per process. Default 10. */
  max?: number;
  /** Seconds to wait for a connection before failing with `unavailable`. Default 5. */
  connectTimeout?: number;
}

function jsonText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** postgres.js prepares tagged queries by default but not `unsafe` ones: ours are all `unsafe` (the port passes text and parameters). */
const PREPARED = { prepare: true } as const;

/** PostgreSQL 15+. Int8 columns come back as strings (use `num()`); json/jsonb are parsed. */
export class PostgresSql implements Sql {
  readonly driver = 'postgres' as const;
  private readonly pg: postgres.Sql;

  constructor(url: string, options: PostgresSqlOptions = {}) {
    this.pg = postgres(url, {
      max: options.max ?? 10,
      connect_timeout: options.connectTimeout ?? 5,
      onnotice: () => {},
      // Statements are prepared once per connection (postgres.js caches them by text): a query
      // is then one round trip, not a Parse/Describe round trip before every Bind/Execute, and
      // after five runs PostgreSQL may keep a generic plan instead of planning each time (the
      // append's plan cost 0.3-0.5 ms a batch). Hot statements are written so that even a plan
      // made while the tables were empty stays index-driven (see messaging/append.ts).
      prepare: true,
      // The port passes structured values as JSON text: send strings to json/jsonb as they are
      // (postgres.js would JSON-encode them a second time).
      types: {
        json: { to: 114, from: [114], serialize: jsonText, parse: JSON.parse },
        jsonb: { to: 3802, from: [3802], serialize: jsonText, parse: JSON.parse },
      },
    });
  }

  async query<T extends Row = Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
    try {
      return (await this.pg.unsafe(text, params as postgres.ParameterOrJSON<never>[], PREPARED)) as unknown as T[];
    } catch (err) {
      throw wrapSqlError(err);
    }
  }

  transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    return runTransaction<T, postgres.TransactionSql>(
      (body) => this.pg.begin(body) as Promise<T>,
      async (t, text, params) => (await t.unsafe(text, params as postgres.ParameterOrJSON<never>[], PREPARED)) as unknown as Row[],
      fn,
    );
  }

  async close(): Promise<void> {
    await this.pg.end({ timeout: 5 });
  }
}
