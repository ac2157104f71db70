// In-memory cache: the embedded default. Single process only.
import type { Cache } from './cache.js';
import type { Clock } from './clock.js';

/** Expiry is checked on read against the injected clock; at most `maxEntries` are kept (oldest go first). */
export class MemoryCache implements Cache {
  private readonly entries = new Map<string, { value: string; expiresAt: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly maxEntries = 10_000,
  ) {}

  async get(key: string): Promise<string | null> {
    const e = this.entries.get(key);
    if (!e) return null;
    if (e.expiresAt <= this.clock.now()) {
      this.entries.delete(key);
      return null;
    }
    return e.value;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt: this.clock.now() + ttlMs });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  async incr(key: string, ttlMs: number, by = 1): Promise<number | null> {
    const now = this.clock.now();
    const e = this.entries.get(key);
    const live = e && e.expiresAt > now;
    const count = (live ? Number(e.value) : 0) + by;
    this.entries.delete(key);
    this.entries.set(key, { value: String(count), expiresAt: live ? e.expiresAt : now + ttlMs });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return count;
  }

  async del(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.entries.delete(k);
  }

  async close(): Promise<void> {
    this.entries.clear();
  }
}
