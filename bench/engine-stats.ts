// The engines' own statistics, read before and after a scenario: PostgreSQL's pg_stat_database for the bench database, Redis's INFO; and where their processes are.
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { processInfo } from './cpu.js';

/**
 * A PostgreSQL backend publishes its counters to pg_stat_database at most once a second while
 * busy; what it still holds when it goes idle is published by a timer up to 10 s later
 * (PGSTAT_IDLE_INTERVAL in PostgreSQL 15's pgstat.c). So the counters are complete once every
 * backend of the database has been idle this long.
 */
const PG_STATS_IDLE_MS = 11_000;
/** Read anyway (and say the figures may lag) when the database has not gone quiet by then. */
const PG_SETTLE_LIMIT_MS = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface PostgresCounters {
  commits: number;
  rollbacks: number;
  rowsInserted: number;
  rowsUpdated: number;
  rowsDeleted: number;
  /** Statements executed (pg_stat_statements), null where not counted. */
  statements: number | null;
  /** False when a backend stayed busy past PG_SETTLE_LIMIT_MS: the counters may lag behind. */
  settled: boolean;
}

export interface RedisCounters {
  /** total_commands_processed, less the INFO calls of this reader (server-wide otherwise). */
  commands: number;
  /** cmdstat_publish calls. */
  publishes: number;
}

/** PostgreSQL's counters for one database, read over a connection to the admin database (so the reads do not count themselves). */
export class PostgresStats {
  /** Reads of pg_stat_statements so far: each is a commit in the bench database (see settledCounters). */
  private statementReads = 0;

  private constructor(
    private readonly admin: postgres.Sql,
    private readonly database: string,
    /** A connection to the bench database when pg_stat_statements is loaded (its view lives per database), else null. */
    private readonly statementsSql: postgres.Sql | null,
    /** The postmaster, for CPU: the parent of our own backend. Null where it is not visible from here (another host or container). */
    readonly serverPid: number | null,
    /** Why statements are not counted, or null when they are. */
    readonly statementsNote: string | null,
  ) {}

  static async open(adminUrl: string, database: string): Promise<PostgresStats> {
    const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
    try {
      const [me] = await admin.unsafe<{ pid: number; libs: string }[]>(`SELECT pg_backend_pid() AS pid, current_setting('shared_preload_libraries') AS libs`);
      const backend = processInfo(me!.pid);
      const postmaster = backend && processInfo(backend.ppid);
      const serverPid = postmaster && ['postgres', 'postmaster'].includes(postmaster.comm) ? backend.ppid : null;
      let statementsSql: postgres.Sql | null = null;
      let note: string | null = null;
      if (!/\bpg_stat_statements\b/.test(me!.libs)) {
        note = `pg_stat_statements is not loaded (shared_preload_libraries = '${me!.libs}'; loading it needs a PostgreSQL restart)`;
      } else {
        const url = new URL(adminUrl);
        url.pathname = `/${database}`;
        statementsSql = postgres(url.toString(), { max: 1, onnotice: () => {} });
        try {
          await statementsSql.unsafe('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
        } catch (err) {
          note = `pg_stat_statements is loaded but unusable here: ${err instanceof Error ? err.message : String(err)}`;
          await statementsSql.end();
          statementsSql = null;
        }
      }
      return new PostgresStats(admin, database, statementsSql, serverPid, note);
    } catch (err) {
      await admin.end();
      throw err;
    }
  }

  /** Waits until every backend of the database has been idle long enough to have published its counters, then reads them. */
  async settledCounters(): Promise<PostgresCounters> {
    const deadline = performance.now() + PG_SETTLE_LIMIT_MS;
    let settled = false;
    while (!settled) {
      const [row] = await this.admin.unsafe<{ busy: number; idle_ms: number | null }[]>(
        `SELECT count(*) FILTER (WHERE state IS DISTINCT FROM 'idle')::int AS busy,
                (extract(epoch FROM clock_timestamp() - max(state_change)) * 1000)::float8 AS idle_ms
           FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'`,
        [this.database],
      );
      const quietFor = row!.busy > 0 ? 0 : (row!.idle_ms ?? Infinity);
      settled = quietFor >= PG_STATS_IDLE_MS;
      if (settled || performance.now() >= deadline) break;
      await sleep(Math.min(PG_STATS_IDLE_MS - quietFor + 50, 1_000));
    }
    // A fresh statement outside any transaction: pg_stat_* are cached per transaction (stats_fetch_consistency).
    const [db] = await this.admin.unsafe<{ xact_commit: string; xact_rollback: string; tup_inserted: string; tup_updated: string; tup_deleted: string }[]>(
      `SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database WHERE datname = $1`,
      [this.database],
    );
    if (!db) throw new Error(`pg_stat_database has no row for ${this.database}`);
    return {
      // Each statements read below is a commit in the bench database, published before the next
      // settled read: subtracted here as one per earlier read.
      commits: Number(db.xact_commit) - this.statementReads,
      rollbacks: Number(db.xact_rollback),
      rowsInserted: Number(db.tup_inserted),
      rowsUpdated: Number(db.tup_updated),
      rowsDeleted: Number(db.tup_deleted),
      statements: await this.statements(),
      settled,
    };
  }

  /** Statements executed in the bench database, this reader's own (which name the view) left out. */
  private async statements(): Promise<number | null> {
    if (!this.statementsSql) return null;
    const [row] = await this.statementsSql.unsafe<{ calls: string }[]>(
      `SELECT coalesce(sum(calls), 0) AS calls FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT ILIKE '%pg_stat_statements%'`,
    );
    this.statementReads++;
    return Number(row!.calls);
  }

  async close(): Promise<void> {
    await Promise.all([this.admin.end(), this.statementsSql?.end()]);
  }
}

/** Redis's INFO counters (server-wide: Redis does not count per client or per key prefix). */
export class RedisStats {
  /** INFO calls made so far by this reader: each shows up in total_commands_processed of the next. */
  private infoCalls = 0;

  /** The redis-server process, for CPU; null where it is not visible from here (another host or container). */
  serverPid: number | null = null;

  private constructor(private readonly client: Redis) {}

  static async open(url: string): Promise<RedisStats> {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableReadyCheck: false });
    client.on('error', () => {}); // surfaces through the failing INFO call
    await client.connect();
    const stats = new RedisStats(client);
    const pid = Number(field(await stats.info('server'), 'process_id'));
    if (Number.isInteger(pid) && processInfo(pid)?.comm.startsWith('redis-server')) stats.serverPid = pid;
    return stats;
  }

  async counters(): Promise<RedisCounters> {
    const own = this.infoCalls;
    const text = await this.info('stats', 'commandstats');
    return {
      commands: Number(field(text, 'total_commands_processed')) - own,
      publishes: Number(/^cmdstat_publish:calls=(\d+)/m.exec(text)?.[1] ?? 0),
    };
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }

  private async info(...sections: string[]): Promise<string> {
    const text = (await this.client.call('INFO', ...sections)) as string;
    this.infoCalls++;
    return text;
  }
}

function field(info: string, name: string): string | undefined {
  return new RegExp(`^${name}:(\\S+)`, 'm').exec(info)?.[1];
}
