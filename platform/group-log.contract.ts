// The group-log contract, run against every adapter (memory always, Kafka where a broker is reachable).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { until } from '../test/support/wait.js';
import type { GroupLog, LogRecord } from './group-log.js';

/** `make` returns a fresh, empty log (its own topic) and a unique consumer-group name per call. */
export function groupLogContract(name: string, make: () => Promise<{ log: GroupLog; group: () => string; dispose(): Promise<void> }>): void {
  describe(`GroupLog contract: ${name}`, () => {
    let f: Awaited<ReturnType<typeof make>>;
    beforeEach(async () => {
      f = await make();
    });
    afterEach(async () => {
      await f.dispose();
    });

    it('hands records of one key in append order, once each when nothing fails', async () => {
      const got: LogRecord[] = [];
      const consumer = await f.log.consume(f.group(), async (batch) => {
        got.push(...batch);
      });
      const sent = Array.from({ length: 90 }, (_, i) => ({ key: `g${i % 3}`, value: String(i) }));
      for (let i = 0; i < sent.length; i += 10) await f.log.append(sent.slice(i, i + 10));
      await until(() => got.length >= 90, '90 records', 30_000);
      for (const k of ['g0', 'g1', 'g2']) {
        expect(got.filter((r) => r.key === k).map((r) => r.value)).toEqual(sent.filter((r) => r.key === k).map((r) => r.value));
      }
      expect(new Set(got.map((r) => `${r.partition}:${r.offset}`)).size).toBe(90);
      await consumer.stop();
    });

    it('hands a batch again when the handler fails, never skipping it', async () => {
      let failures = 0;
      const got: string[] = [];
      const consumer = await f.log.consume(f.group(), async (batch) => {
        if (batch.some((r) => r.value === 'b1') && failures < 2) {
          failures++;
          throw new Error('transient');
        }
        got.push(...batch.map((r) => r.value));
      });
      await f.log.append([
        { key: 'k', value: 'b0' },
        { key: 'k', value: 'b1' },
        { key: 'k', value: 'b2' },
      ]);
      await until(() => got.includes('b2'), 'b2 after retries', 30_000);
      expect(failures).toBe(2);
      // b0 may come twice if it shared a failed batch; order holds and nothing is missing.
      const firsts = got.filter((v, i) => got.indexOf(v) === i);
      expect(firsts).toEqual(['b0', 'b1', 'b2']);
      await consumer.stop();
    });

    it('gives what a stopped consumer did not commit to the next member of its group', async () => {
      const group = f.group();
      let release: () => void = () => {};
      const held = new Promise<void>((r) => (release = r));
      let seenByFirst = 0;
      const first = await f.log.consume(group, async (batch) => {
        seenByFirst += batch.length;
        await held; // never commits before it stops
        throw new Error('stopped');
      });
      await f.log.append([{ key: 'x', value: 'v1' }]);
      await until(() => seenByFirst > 0, 'first consumer got the record', 30_000);
      const stopping = first.stop();
      release();
      await stopping;
      const got: string[] = [];
      const second = await f.log.consume(group, async (batch) => {
        got.push(...batch.map((r) => r.value));
      });
      await until(() => got.includes('v1'), 'second consumer got v1', 30_000);
      await second.stop();
    });

    it('lets two consumer groups each read everything', async () => {
      const a: string[] = [];
      const b: string[] = [];
      const ca = await f.log.consume(f.group(), async (batch) => void a.push(...batch.map((r) => r.value)));
      const cb = await f.log.consume(f.group(), async (batch) => void b.push(...batch.map((r) => r.value)));
      await f.log.append([
        { key: 'p', value: '1' },
        { key: 'q', value: '2' },
      ]);
      await until(() => a.length >= 2 && b.length >= 2, 'both groups', 30_000);
      expect([...a].sort()).toEqual(['1', '2']);
      expect([...b].sort()).toEqual(['1', '2']);
      await ca.stop();
      await cb.stop();
    });
  });
}
