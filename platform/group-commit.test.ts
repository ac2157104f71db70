import { describe, expect, it } from 'vitest';
import { GroupCommit } from './group-commit.js';

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
});
