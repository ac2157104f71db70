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

    it('counts increments from every process, concurrent ones once each', async () => {
      expect(await f.a.incr('n', 60_000)).toBe(1);
      expect(await f.b.incr('n', 60_000)).toBe(2);
      expect(await f.a.get('n')).toBe('2');
      const counts = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? f.a : f.b).incr('n', 60_000)));
      expect(counts.sort((x, y) => x! - y!)).toEqual(Array.from({ length: 20 }, (_, i) => i + 3));
      await f.b.del(['n']);
      expect(await f.a.incr('n', 60_000)).toBe(1);
    });

    it('counts down as well as up', async () => {
      expect(await f.a.incr('updown', 60_000, 3)).toBe(3);
      expect(await f.b.incr('updown', 60_000, -1)).toBe(2);
      expect(await f.a.incr('updown', 60_000, -2)).toBe(0);
      expect(await f.b.get('updown')).toBe('0');
    });

    it('expires a counter a fixed time after the increment that created it', async () => {
      await f.a.incr('window', 300);
      await f.wait(100);
      expect(await f.b.incr('window', 300)).toBe(2); // does not move the expiry…
      await f.wait(250);
      expect(await f.b.get('window')).toBeNull(); // …so it is gone 300 ms after the first
      expect(await f.a.incr('window', 300)).toBe(1);
    });
  });
}
