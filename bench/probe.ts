// What the load generator samples around each measured scenario: CPU per server process from /proc, and PostgreSQL's and Redis's own counters.
import { treeCpuSeconds } from './cpu.js';
import { type PostgresCounters, PostgresStats, type RedisCounters, RedisStats } from './engine-stats.js';
import type { EngineCounts, Target } from './results.js';

/** Readings taken when a scenario starts, to subtract at its end. */
export interface Mark {
  cpu: (number | null)[];
  postgres: PostgresCounters | null;
  redis: RedisCounters | null;
}

/**
 * The target's processes (the relay or each gateway, then `postgres` and `redis` as whole
 * process trees) and its engines' counters. Per scenario: `begin()` right before the first
 * send, `cpuSince()` right after the last delivery, `enginesSince()` once the tail (acks,
 * receipts) has been handled, so the counters include all of the scenario's work.
 */
export class Probe {
  private constructor(
    private readonly names: string[],
    private readonly roots: (number | null)[],
    private readonly pg: PostgresStats | null,
    private readonly redis: RedisStats | null,
    private readonly notes: string[],
  ) {}

  static async open(target: Target): Promise<Probe> {
    const names = target.processes.map((p) => p.name);
    const roots: (number | null)[] = target.processes.map((p) => p.pid);
    const notes: string[] = [];
    let pg: PostgresStats | null = null;
    let redis: RedisStats | null = null;
    try {
      if (target.postgres) {
        pg = await PostgresStats.open(target.postgres.adminUrl, target.postgres.database);
        names.push('postgres');
        roots.push(pg.serverPid);
        if (pg.serverPid === null) notes.push('PostgreSQL CPU not measured: its postmaster is not visible in this /proc');
        if (pg.statementsNote) notes.push(`SQL statements not counted: ${pg.statementsNote}`);
      }
      if (target.redis) {
        redis = await RedisStats.open(target.redis.url);
        names.push('redis');
        roots.push(redis.serverPid);
        if (redis.serverPid === null) notes.push('Redis CPU not measured: its process is not visible in this /proc');
      }
    } catch (err) {
      await pg?.close();
      throw err;
    }
    return new Probe(names, roots, pg, redis, notes);
  }

  /** Before a scenario: lets PostgreSQL's statistics catch up (see PostgresStats), reads the counters, then the CPU times. */
  async begin(): Promise<Mark> {
    const postgres = this.pg ? await this.pg.settledCounters() : null;
    const redis = this.redis ? await this.redis.counters() : null;
    return { postgres, redis, cpu: this.cpuNow() };
  }

  /** Each process's CPU seconds since the mark. */
  cpuSince(mark: Mark): { name: string; cpuSeconds: number | null }[] {
    const now = this.cpuNow();
    return this.names.map((name, i) => {
      const [a, b] = [mark.cpu[i], now[i]];
      return { name, cpuSeconds: a === null || a === undefined || b === null || b === undefined ? null : b - a };
    });
  }

  /** The engines' counters since the mark: Redis's at once (so its idle heartbeats stay out), then PostgreSQL's once settled. */
  async enginesSince(mark: Mark): Promise<EngineCounts | null> {
    if (!this.pg && !this.redis) return null;
    const redis = this.redis ? await this.redis.counters() : null;
    const postgres = this.pg ? await this.pg.settledCounters() : null;
    return {
      postgres:
        postgres && mark.postgres
          ? {
              commits: postgres.commits - mark.postgres.commits,
              rollbacks: postgres.rollbacks - mark.postgres.rollbacks,
              rowsInserted: postgres.rowsInserted - mark.postgres.rowsInserted,
              rowsUpdated: postgres.rowsUpdated - mark.postgres.rowsUpdated,
              rowsDeleted: postgres.rowsDeleted - mark.postgres.rowsDeleted,
              statements: postgres.statements !== null && mark.postgres.statements !== null ? postgres.statements - mark.postgres.statements : null,
              settled: postgres.settled && mark.postgres.settled,
            }
          : null,
      redis: redis && mark.redis ? { commands: redis.commands - mark.redis.commands, publishes: redis.publishes - mark.redis.publishes } : null,
      notes: this.notes,
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.pg?.close(), this.redis?.close()]);
  }

  private cpuNow(): (number | null)[] {
    const live = treeCpuSeconds(this.roots.map((r) => r ?? -1));
    return this.roots.map((r, i) => (r === null ? null : (live[i] ?? null)));
  }
}
