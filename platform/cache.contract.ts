// The cache contract, run against every adapter.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Cache } from './cache.js';

export function cacheContract(name: string, make: () => Promise<{ a: Cache; b: Cache; wait(ms: number): Promise<void>; dispose(): Promise<void> }>): void {
  describe(`Cache contract: ${name}`, () => {
    let f: Awaited<ReturnType<typeof make>>;
    beforeEach(async () => {
      f = await make();
    });
    afterEach(async () => {
      await f.dispose();
    });

    it('returns what was set, null for what never was', async () => {
      await f.a.set('k1', 'v1', 60_000);
      expect(await f.b.get('k1')).toBe('v1');
      expect(await f.b.get('missing')).toBeNull();
      await f.b.set('k1', 'v2', 60_000);
      expect(await f.a.get('k1')).toBe('v2');
    });

    it('forgets deleted keys everywhere at once', async () => {
      await f.a.set('x', '1', 60_000);
      await f.a.set('y', '2', 60_000);
      await f.b.del(['x', 'y', 'never-set']);
      expect(await f.a.get('x')).toBeNull();
      expect(await f.a.get('y')).toBeNull();
    });

    it('forgets a value after its TTL', async () => {
      await f.a.set('short', 's', 50);
      await f.a.set('long', 'l', 60_000);
      await f.wait(120);
      expect(await f.b.get('short')).toBeNull();
      expect(await f.b.get('long')).toBe('l');
    });
  });
}
