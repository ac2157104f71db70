// The cache port: short-lived values shared by the processes of a deployment (e.g. group memberships).

/**
 * A key-value cache. A cache is never the record: every value can be rebuilt from the store,
 * and a cache that is down behaves like an empty one for reads.
 *
 * Contract (cache.contract.ts runs it against every adapter):
 * - `get` returns the value last `set` under the key, or null once it was deleted, expired
 *   (`ttlMs` after the set) or never set.
 * - `del` removes the keys; after it resolves, no `get` anywhere returns the old value.
 * - `incr` atomically adds `by` (default 1; may be negative) to the counter under the key and
 *   resolves to the new count: `by` when the key was absent or expired. The key expires `ttlMs` after the increment that
 *   created it; later increments keep that expiry (a fixed window). Increments from every
 *   process sharing the cache are counted once each, concurrent ones included. `get` returns
 *   the count as a decimal string; do not `set` a key that is used as a counter.
 * - `get` and `incr` resolve to null, and `set` resolves anyway, when the backing service is
 *   away; `del` rejects with an `unavailable` AppError then, because a stale value could
 *   outlive it.
 */
export interface Cache {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
  incr(key: string, ttlMs: number, by?: number): Promise<number | null>;
  del(keys: readonly string[]): Promise<void>;
  close(): Promise<void>;
}
