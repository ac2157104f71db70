// Redis cache (ioredis): shared by every process of a deployment.
import type { Redis } from 'ioredis';
import type { Cache } from './cache.js';
import { AppError } from './errors.js';

/**
 * Layout: `<prefix>cache:<key>` → the value, a plain string with a PX expiry (a counter is
 * the same string, as INCR keeps it). Reads, writes and increments that fail are reported to
 * `onFailure` (logged and counted by the caller) and behave as a miss; deletes reject, since
 * the caller must not assume a stale value is gone.
 */
export class RedisCache implements Cache {
  private readonly p: string;

  constructor(
    private readonly redis: Redis,
    private readonly options: { prefix: string; onFailure?: (operation: string, err: unknown) => void },
  ) {
    this.p = `${options.prefix}cache:`;
  }

  async get(key: string): Promise<string | null> {
    try {
      return await this.redis.get(this.p + key);
    } catch (err) {
      this.options.onFailure?.('get', err);
      return null;
    }
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    try {
      await this.redis.set(this.p + key, value, 'PX', ttlMs);
    } catch (err) {
      this.options.onFailure?.('set', err);
    }
  }

  async incr(key: string, ttlMs: number, by = 1): Promise<number | null> {
    try {
      // One MULTI: create the key at 0 with its expiry if it is absent, then count. INCR
      // keeps the expiry, so it runs from the first increment (a fixed window).
      const results = await this.redis.multi().set(this.p + key, '0', 'PX', ttlMs, 'NX').incrby(this.p + key, by).exec();
      const [err, count] = results?.[1] ?? [new Error('transaction discarded'), null];
      if (err) throw err;
      return Number(count);
    } catch (err) {
      this.options.onFailure?.('incr', err);
      return null;
    }
  }

  async del(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    try {
      await this.redis.del(...keys.map((k) => this.p + k));
    } catch (err) {
      throw new AppError('unavailable', 'cache unavailable', { cause: err });
    }
  }

  async close(): Promise<void> {}
}
