import { describe, expect, it } from 'vitest';
import { GroupCommit } from './group-commit.js';

/** A group commit whose first batch is held until `release()`; `batches` records every batch. */
function heldFirstBatch(options: { lingerMs?: number; maxBatch?: number }) {
  const batches: number[][] = [];
  let unblock: (() => void) | undefined;
  const gc = new GroupCommit<number, number>(async (items) => {
    batches.push(items);
    if (batches.length === 1) await new Promise<void>((r) => (unblock = r));
    return items;
  }, options);
  return { batches, gc, release: () => unblock!() };
}

describe('GroupCommit', () => {
  it('batches what arrives while a flush runs, and keeps order', async () => {
    const batches: number[][] = [];
    let release!: () => void;
    let first = true;
    const gc = new GroupCommit<number, number>(async (items) => {
      batches.push(items);
      if (first) {
        first = false;
        await new Promise<void>((r) => (release = r));
      }
      return items.map((i) => i * 10);
    });
    const p1 = gc.submit(1);
    await new Promise((r) => setTimeout(r, 5));
    const rest = [2, 3, 4].map((i) => gc.submit(i));
    release();
    expect(await Promise.all([p1, ...rest])).toEqual([10, 20, 30, 40]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
  });

  it('respects maxBatch', async () => {
    const sizes: number[] = [];
    const gc = new GroupCommit<number, number>(async (items) => items, { maxBatch: 3, onBatch: (n) => sizes.push(n) });
    await Promise.all(Array.from({ length: 7 }, (_, i) => gc.submit(i)));
    expect(sizes).toEqual([3, 3, 1]);
  });

  it('rejects every item of a failed batch, then carries on', async () => {
    let fail = true;
    const gc = new GroupCommit<number, number>(async (items) => {
      if (fail) {
        fail = false;
        throw new Error('db down');
      }
      return items;
    });
    await expect(gc.submit(1)).rejects.toThrow('db down');
    expect(await gc.submit(2)).toBe(2);
    await gc.idle();
  });

  for (const [lingerMs, expected] of [
    [undefined, [[1], [2], [3]]],
    [0, [[1], [2, 3]]],
  ] as const) {
    it(`lingerMs ${String(lingerMs)}: a send that arrives in the same event-loop turn as a commit's result ${lingerMs === undefined ? 'waits for the next batch' : 'joins the batch after it'}`, async () => {
      const { batches, gc, release } = heldFirstBatch({ lingerMs });
      const done = [gc.submit(1)];
      await new Promise((r) => setTimeout(r, 5));
      done.push(gc.submit(2));
      // The commit's result and another send handled in the same turn (as socket reads are).
      release();
      setImmediate(() => done.push(gc.submit(3)));
      await new Promise((r) => setTimeout(r, 20));
      await Promise.all(done);
      expect(batches).toEqual(expected);
    });
  }

  it('lingerMs n: a busy batch waits up to n ms for more while few wait, and a lone send after an idle spell does not', async () => {
    const { batches, gc, release } = heldFirstBatch({ lingerMs: 30, maxBatch: 64 });
    const first = gc.submit(1);
    await new Promise((r) => setTimeout(r, 5));
    expect(batches).toEqual([[1]]); // not delayed: nothing was in flight
    const second = gc.submit(2);
    release();
    await first;
    await new Promise((r) => setTimeout(r, 5));
    const third = gc.submit(3); // arrives during the linger
    await Promise.all([second, third]);
    expect(batches).toEqual([[1], [2, 3]]);
  });
});
