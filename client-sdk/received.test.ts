// Unit tests of what a received message becomes, for the group members the user blocks: dropped (no message, action, tombstone or error), though still opened so the group's keys stay in step; a timer change still applies.
import { describe, expect, it } from 'vitest';
import type { MsgFrame } from '../protocol/frames.js';
import { ManualClock } from './clock.test-support.js';
import type { Decoded } from './content.js';
import type { DisappearingChange } from './client.types.js';
import { DisappearingSettings } from './disappearing.js';
import { memoryKeyStore } from './e2e.store.memory.js';
import { ExpiryTimers } from './expiry.js';
import { memoryMessageStore } from './history.memory.js';
import type { ActionEvent } from './history.messages.js';
import { MessageHistory } from './history.messages.js';
import { ReceivedMessages } from './received.js';

const G = 'group-1';

/** A received frame whose body is the decoded content as JSON (the fake decryption below reads it back). */
const frame = (seq: number, from: string, content: Decoded | null, extra: Partial<MsgFrame> = {}): MsgFrame => ({
  type: 'msg',
  id: `m${seq}`,
  conversationId: G,
  groupId: G,
  seq,
  from,
  fromDevice: `${from}-d`,
  sentAt: 1000 + seq,
  body: JSON.stringify(content),
  ...extra,
});

function receiver(blocked: Set<string>) {
  const kv = memoryKeyStore();
  const store = memoryMessageStore();
  const opened: number[] = [];
  const acted: ActionEvent[] = [];
  const changed: DisappearingChange[] = [];
  const history = new MessageHistory({ store, key: null, file: (ref) => ({ id: ref.id, name: ref.name, type: ref.type, size: ref.size, download: async () => new Uint8Array() }) });
  const received = new ReceivedMessages({
    open: async (f) => {
      opened.push(f.seq);
      if (f.body === 'garbage') throw new Error('auth_failed');
      return JSON.parse(f.body) as Decoded | null;
    },
    settings: new DisappearingSettings(kv),
    timers: new ExpiryTimers({ kv, clock: new ManualClock(), expired: () => {}, failed: (err) => { throw err; } }),
    history,
    me: () => 'carol',
    blocked: (u) => blocked.has(u),
    changed: (e) => changed.push(e),
    acted: (e) => acted.push(e),
    offered: () => {},
  });
  return { received, store, history, opened, acted, changed };
}

describe('ReceivedMessages: group members the user blocks', () => {
  it('drops their messages, actions and tombstones without an error, but still opens what has a body (the sender key stays in step)', async () => {
    const blocked = new Set(['alice']);
    const { received, store, opened, acted } = receiver(blocked);
    expect(await received.open(frame(1, 'alice', { text: 'from alice' }))).toBeNull();
    expect(await received.open(frame(2, 'bob', { text: 'from bob' }))).toMatchObject({ seq: 2, text: 'from bob' });
    expect(await received.open(frame(3, 'alice', { type: 'reaction', target: 'm2', emoji: '👍' }))).toBeNull();
    expect(await received.open(frame(4, 'alice', { type: 'edit', target: 'm1', text: 'edited' }))).toBeNull();
    expect(await received.open(frame(5, 'alice', null, { body: '', deleted: true }))).toBeNull();
    expect(await received.open(frame(6, 'alice', null, { body: 'garbage' }))).toBeNull(); // undecryptable: no error either
    expect(opened).toEqual([1, 2, 3, 4, 6]);
    expect(acted).toEqual([]);
    expect((await store.exportAll()).map((e) => e.seq)).toEqual([2]);
  });

  it('applies a timer change a blocked member made (it is the group’s setting, like a membership change)', async () => {
    const { received, changed } = receiver(new Set(['alice']));
    expect(await received.open(frame(1, 'alice', { type: 'disappearing', seconds: 60 }))).toBeNull();
    expect(changed).toEqual([{ conversationId: G, seconds: 60, by: 'alice' }]);
  });

  it('delivers their messages again once unblocked, and never filters direct messages (the server keeps those from the blocker)', async () => {
    const blocked = new Set(['alice']);
    const { received, history } = receiver(blocked);
    expect(await received.open(frame(1, 'alice', { text: 'while blocked' }))).toBeNull();
    blocked.delete('alice');
    expect(await received.open(frame(2, 'alice', { text: 'after the unblock' }))).toMatchObject({ text: 'after the unblock' });
    expect((await history.page(G, { limit: 10 })).map((m) => m.text)).toEqual(['after the unblock']);
    blocked.add('alice');
    const { groupId: _g, ...direct } = frame(1, 'alice', { text: 'direct' }, { conversationId: 'direct-1' });
    expect(await received.open(direct)).toMatchObject({ text: 'direct' });
  });
});
