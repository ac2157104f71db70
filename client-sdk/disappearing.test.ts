// Unit tests of conversations' disappearing timers: the newest change by seq wins on every device, and sends find their timer by user or group.
import { describe, expect, it } from 'vitest';
import { DisappearingSettings } from './disappearing.js';
import { memoryKeyStore } from './e2e.store.memory.js';

describe('DisappearingSettings', () => {
  it('applies changes in seq order, whatever order they arrive in, and says which are new', async () => {
    const s = new DisappearingSettings(memoryKeyStore());
    expect(await s.apply({ conversationId: 'c', seconds: 60, by: 'alice', seq: 5, peer: 'bob' })).toBe(true);
    expect(await s.apply({ conversationId: 'c', seconds: 60, by: 'alice', seq: 5, peer: 'bob' })).toBe(false); // again
    expect(await s.apply({ conversationId: 'c', seconds: 10, by: 'bob', seq: 4, peer: 'bob' })).toBe(false); // older
    expect(await s.get('c')).toEqual({ conversationId: 'c', seconds: 60, by: 'alice', seq: 5, peer: 'bob' });
    expect(await s.apply({ conversationId: 'c', seconds: null, by: 'bob', seq: 9, peer: null })).toBe(true);
    // The peer learnt before is kept (the sender's own other devices may not know it).
    expect(await s.get('c')).toEqual({ conversationId: 'c', seconds: null, by: 'bob', seq: 9, peer: 'bob' });
  });

  it('finds the timer of a send by the user it goes to, or by the group', async () => {
    const kv = memoryKeyStore();
    const s = new DisappearingSettings(kv);
    await s.apply({ conversationId: 'direct', seconds: 30, by: 'alice', seq: 1, peer: 'bob' });
    await s.apply({ conversationId: 'g', seconds: 3600, by: 'carol', seq: 2, peer: null });
    expect(await s.forSend('bob', false)).toBe(30);
    expect(await s.forSend('g', true)).toBe(3600);
    expect(await s.forSend('carol', false)).toBeNull();
    // Another client over the same store sees it (a service worker applied it).
    expect(await new DisappearingSettings(kv).forSend('bob', false)).toBe(30);
  });
});
