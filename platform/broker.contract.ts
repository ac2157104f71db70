// The broker contract, run against every adapter.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { until } from '../test/support/wait.js';
import type { Broker } from './broker.js';

export function brokerContract(name: string, make: () => Promise<{ a: Broker; b: Broker; dispose(): Promise<void> }>): void {
  describe(`Broker contract: ${name}`, () => {
    let f: Awaited<ReturnType<typeof make>>;
    beforeEach(async () => {
      f = await make();
    });
    afterEach(async () => {
      await f.dispose();
    });

    it('delivers to every subscriber of the channel, in publish order, and not to others', async () => {
      const got1: string[] = [];
      const got2: string[] = [];
      const other: string[] = [];
      await f.b.subscribe('gateway:g1', (m) => got1.push(m));
      await f.b.subscribe('gateway:g1', (m) => got2.push(m));
      await f.b.subscribe('gateway:g2', (m) => other.push(m));
      const sent = Array.from({ length: 50 }, (_, i) => `m${i}`);
      for (const m of sent) await f.a.publish('gateway:g1', m);
      await until(() => got1.length === 50 && got2.length === 50, 'both subscribers got all 50', 5_000);
      expect(got1).toEqual(sent);
      expect(got2).toEqual(sent);
      expect(other).toEqual([]);
    });

    it('stops delivering after unsubscribe', async () => {
      const got: string[] = [];
      const keep: string[] = [];
      const off = await f.b.subscribe('c', (m) => got.push(m));
      await f.b.subscribe('c', (m) => keep.push(m));
      await f.a.publish('c', 'one');
      await until(() => got.length === 1 && keep.length === 1, 'both got the first', 5_000);
      await off();
      await f.a.publish('c', 'two');
      await until(() => keep.length === 2, 'the remaining subscriber got the second', 5_000);
      expect(got).toEqual(['one']);
    });

    it('publishing to a channel nobody listens on is not an error', async () => {
      await expect(f.a.publish('nobody', 'x')).resolves.toBeUndefined();
    });
  });
}
