// Redis cache (ioredis): shared by every process of a deployment.
import type { Redis } from 'ioredis';
import type { Cache } from './cache.js';
import { AppError } from './errors.js';

/**
 * Layout: `<prefix>cache:<key>` → the value, a plain string with a PX expiry. Reads and
 * writes that fail are reported to `onFailure` (logged and counted by the caller) and
 * behave as a miss; deletes reject, since the caller must not assume a stale value is gone.
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
