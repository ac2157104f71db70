// The cache port: short-lived values shared by the processes of a deployment (e.g. group memberships).

/**
 * A key-value cache. A cache is never the record: every value can be rebuilt from the store,
 * and a cache that is down behaves like an empty one for reads.
 *
 * Contract (cache.contract.ts runs it against every adapter):
 * - `get` returns the value last `set` under the key, or null once it was deleted, expired
 *   (`ttlMs` after the set) or never set.
 * - `del` removes the keys; after it resolves, no `get` anywhere returns the old value.
 * - `get` resolves to null, and `set` resolves anyway, when the backing service is away;
 *   `del` rejects with an `unavailable` AppError then, because a stale value could outlive it.
 */
export interface Cache {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
  del(keys: readonly string[]): Promise<void>;
  close(): Promise<void>;
}
