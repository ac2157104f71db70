// Unit tests of the client's block list: fetched once per connection, kept in step with the client's own calls, even one made while a fetch was out.
import { describe, expect, it } from 'vitest';
import type { BlockedUser } from './account.js';
import { BlockList } from './blocks.js';

/** A server's block list, with fetches that can be held back to race them with the client's own calls. */
function server(initial: string[] = []) {
  const blocked = new Set(initial);
  let fetches = 0;
  let hold: Promise<void> | null = null;
  let fail = false;
  const api = {
    block: async (u: string) => void blocked.add(u),
    unblock: async (u: string) => void blocked.delete(u),
    blocks: async (): Promise<BlockedUser[]> => {
      fetches++;
      const answer = [...blocked].map((userId) => ({ userId, since: 1 })); // as the server read it
      if (fail) throw new Error('unavailable');
      await hold;
      return answer;
    },
  };
  return {
    api,
    blocked,
    fetches: () => fetches,
    hold(p: Promise<void> | null) {
      hold = p;
    },
    fail(on: boolean) {
      fail = on;
    },
  };
}

describe('BlockList', () => {
  it('fetches once per connection, when asked; a block made elsewhere applies after the next reconnect', async () => {
    const s = server(['alice']);
    const list = new BlockList(s.api);
    expect(list.has('alice')).toBe(false);
    await list.current();
    await list.current();
    expect([list.has('alice'), s.fetches()]).toEqual([true, 1]);
    s.blocked.add('bob'); // another device of the user
    await list.current();
    expect(list.has('bob')).toBe(false);
    list.reconnected();
    await list.current();
    expect([list.has('bob'), s.fetches()]).toEqual([true, 2]);
  });

  it('applies its own block and unblock when they resolve, and keeps them over a fetch that was answered before them', async () => {
    const s = server();
    const list = new BlockList(s.api);
    await list.block('alice');
    expect(list.has('alice')).toBe(true);
    let release!: () => void;
    s.hold(new Promise<void>((r) => (release = r)));
    const fetching = list.list(); // answered with [alice], before the calls below
    await list.block('bob');
    await list.unblock('alice');
    release();
    expect((await fetching).map((b) => b.userId)).toEqual(['alice']);
    expect([list.has('alice'), list.has('bob')]).toEqual([false, true]);
  });

  it('keeps the old list when a fetch fails, and fetches again at the next call', async () => {
    const s = server(['alice']);
    const list = new BlockList(s.api);
    await list.current();
    s.blocked.add('bob');
    list.reconnected();
    s.fail(true);
    await expect(list.current()).rejects.toThrow('unavailable');
    expect([list.has('alice'), list.has('bob')]).toEqual([true, false]);
    s.fail(false);
    await list.current();
    expect(list.has('bob')).toBe(true);
  });
});
