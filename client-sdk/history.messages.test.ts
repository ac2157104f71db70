// Unit tests of the message history: actions folded in and checked (forged ones ignored), deletes erasing content, actions before their message, disappearing messages, archives, and bodies sealed at rest.
import { beforeAll, describe, expect, it } from 'vitest';
import { sodiumReady } from '../protocol/bytes.js';
import type { MessageAction } from './content.js';
import type { MessageStore } from './history.js';
import { memoryMessageStore } from './history.memory.js';
import { MessageHistory } from './history.messages.js';
import type { ActionRecord, MessageRecord } from './history.records.js';
import { decodeArchive, encodeArchive } from './history.transfer.js';

const C = 'conv';
const msg = (seq: number, from: string, text: string, extra: Partial<MessageRecord> = {}): MessageRecord => ({
  conversationId: C,
  seq,
  id: `m${seq}`,
  sentAt: 1000 + seq,
  from,
  fromDevice: `${from}-d`,
  text,
  ...extra,
});
const act = (seq: number, from: string, action: MessageAction): ActionRecord => ({ conversationId: C, seq, id: `a${seq}`, sentAt: 1000 + seq, from, fromDevice: `${from}-d`, action });
const edit = (seq: number, from: string, target: string, text: string) => act(seq, from, { type: 'edit', target, text });
const del = (seq: number, from: string, target: string) => act(seq, from, { type: 'delete', target });
const react = (seq: number, from: string, target: string, emoji: string, remove = false) => act(seq, from, { type: 'reaction', target, emoji, ...(remove ? { remove: true as const } : {}) });

const history = (store: MessageStore = memoryMessageStore(), key: Uint8Array | null = null) =>
  new MessageHistory({ store, key, file: (ref) => ({ id: ref.id, name: ref.name, type: ref.type, size: ref.size, download: async () => new Uint8Array() }) });
/** Every body byte the store holds, as text, to look for what must not be there. */
const raw = async (store: MessageStore) => (await store.exportAll()).map((e) => new TextDecoder().decode(e.body)).join('\n');

describe('MessageHistory', () => {
  beforeAll(sodiumReady);

  it('pages newest first with the sender’s edits, everyone’s reactions and replies; forged edits and deletes are ignored and not kept', async () => {
    const store = memoryMessageStore();
    const h = history(store);
    await h.addMessage(msg(1, 'alice', 'hello', { mentions: ['bob'] }));
    await h.addMessage(msg(2, 'bob', 'hi back', { replyTo: 'm1' }));
    expect(await h.addAction(edit(3, 'alice', 'm1', 'hello, edited'), false)).toMatchObject({ kind: 'edit', event: { messageId: 'm1', by: 'alice', text: 'hello, edited', seq: 3, message: { text: 'hello, edited', editedAt: 1003 } } });
    expect(await h.addAction(edit(4, 'mallory', 'm1', 'forged'), false)).toBeNull();
    expect(await h.addAction(del(5, 'bob', 'm1'), false)).toBeNull();
    expect(await h.addAction(react(6, 'bob', 'm1', '👍'), false)).toMatchObject({ kind: 'reaction', event: { emoji: '👍', added: true, message: { reactions: [{ emoji: '👍', users: ['bob'] }] } } });
    await h.addAction(react(7, 'carol', 'm1', '👍'), false);
    await h.addAction(react(8, 'alice', 'm1', '🎉'), false);
    expect(await h.addAction(react(9, 'bob', 'm1', '👍', true), false)).toMatchObject({ kind: 'reaction', event: { added: false } });
    const page = await h.page(C, { limit: 10 });
    expect(page.map((m) => m.seq)).toEqual([2, 1]);
    expect(page[1]).toMatchObject({ id: 'm1', from: 'alice', text: 'hello, edited', editedAt: 1003, mentions: ['bob'], reactions: [{ emoji: '👍', users: ['carol'] }, { emoji: '🎉', users: ['alice'] }] });
    expect(page[0]).toMatchObject({ id: 'm2', text: 'hi back', replyTo: 'm1' });
    expect(page[0]!.reactions).toBeUndefined();
    expect(await raw(store)).not.toContain('forged');
    expect((await h.page(C, { before: 2, limit: 10 })).map((m) => m.seq)).toEqual([1]);
  });

  it('a delete by the sender erases the message’s content and its edits and reactions from the store; later actions on it are ignored', async () => {
    const store = memoryMessageStore();
    const h = history(store);
    await h.addMessage(msg(1, 'alice', 'secret plans', { replyTo: 'm0', mentions: ['bob'] }));
    await h.addAction(edit(2, 'alice', 'm1', 'secret plans v2'), false);
    await h.addAction(react(3, 'bob', 'm1', '😮'), false);
    const e = await h.addAction(del(4, 'alice', 'm1'), false);
    expect(e).toMatchObject({ kind: 'delete', event: { messageId: 'm1', by: 'alice', seq: 4, message: { id: 'm1', deleted: true, text: '' } } });
    expect(await h.addAction(edit(5, 'alice', 'm1', 'back again'), false)).toBeNull();
    expect(await h.addAction(react(6, 'bob', 'm1', '👍'), false)).toBeNull();
    expect(await h.addAction(del(7, 'alice', 'm1'), false)).toBeNull(); // reported once
    const [m] = await h.page(C, { limit: 10 });
    expect(m).toEqual({ id: 'm1', from: 'alice', fromDevice: 'alice-d', conversationId: C, seq: 1, text: '', sentAt: 1001, deleted: true });
    const left = await raw(store);
    for (const gone of ['secret', 'back again', '😮', 'mentions']) expect(left).not.toContain(gone);
  });

  it('keeps actions that come before their message: a reaction reported without it, an edit or delete applied (and checked) when it arrives', async () => {
    const store = memoryMessageStore();
    const h = history(store);
    expect(await h.addAction(react(5, 'bob', 'm1', '❤️'), false)).toMatchObject({ kind: 'reaction', event: { messageId: 'm1', message: null } });
    expect(await h.addAction(edit(6, 'alice', 'm1', 'edited first'), false)).toBeNull();
    expect(await h.addAction(edit(7, 'mallory', 'm1', 'forged first'), false)).toBeNull();
    const m = await h.addMessage(msg(1, 'alice', 'original'));
    expect(m).toMatchObject({ text: 'edited first', reactions: [{ emoji: '❤️', users: ['bob'] }] });
    expect(await raw(store)).not.toContain('forged first');

    expect(await h.addAction(del(9, 'alice', 'm2'), false)).toBeNull();
    expect(await h.addMessage(msg(2, 'alice', 'deleted before it came'))).toMatchObject({ deleted: true, text: '' });
    expect(await raw(store)).not.toContain('deleted before');
    // In a disappearing conversation an action on a message not held is dropped (it may be long gone).
    expect(await h.addAction(edit(10, 'alice', 'm3', 'late'), true)).toBeNull();
    expect(await raw(store)).not.toContain('late');
  });

  it('erases disappearing messages with the actions on them', async () => {
    const store = memoryMessageStore();
    const h = history(store);
    await h.addMessage(msg(1, 'alice', 'vanishing', { timer: 60 }));
    await h.addAction(react(2, 'bob', 'm1', '🔥'), true);
    await h.addMessage(msg(3, 'alice', 'stays'));
    await h.eraseAll([{ conversationId: C, id: 'm1', seq: 1 }]);
    expect((await store.exportAll()).map((e) => e.seq)).toEqual([3]);
    expect(await h.message(C, 'm1')).toBeNull();
  });

  it('exports an archive (without disappearing messages) that another device imports, keeping what it holds; a delete on either side erases', async () => {
    const old = history();
    await old.addMessage(msg(1, 'alice', 'one'));
    await old.addMessage(msg(2, 'bob', 'two'));
    await old.addAction(edit(3, 'bob', 'm2', 'two, edited'), false);
    await old.addMessage(msg(4, 'alice', 'timed', { timer: 30 }));
    await old.addAction(react(5, 'bob', 'm4', '⏳'), false);
    await old.addMessage(msg(6, 'alice', 'deleted on the new device'));
    const records = decodeArchive(encodeArchive(await old.exportRecords()));
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 6]);

    const store = memoryMessageStore();
    const fresh = history(store, new Uint8Array(32).fill(9));
    await fresh.addMessage(msg(7, 'alice', 'newer, live'));
    await fresh.addAction(del(8, 'alice', 'm6'), false); // arrived live before the archive
    await fresh.addMessage(msg(1, 'alice', 'held here'));
    expect(await fresh.importRecords(records)).toBe(3);
    const page = await fresh.page(C, { limit: 10 });
    expect(page.map((m) => [m.seq, m.text])).toEqual([
      [7, 'newer, live'],
      [6, ''],
      [2, 'two, edited'],
      [1, 'held here'],
    ]);
    expect(page[1]!.deleted).toBe(true);
    expect(JSON.stringify(await store.exportAll())).not.toContain('deleted on the new device');

    // The other way: the archive carries a delete of a message the new device holds.
    await old.addMessage(msg(9, 'alice', 'to go'));
    await old.addAction(del(10, 'alice', 'm9'), false);
    const other = history();
    await other.addMessage(msg(9, 'alice', 'to go'));
    await other.importRecords(decodeArchive(encodeArchive(await old.exportRecords())));
    expect(await other.message(C, 'm9')).toMatchObject({ deleted: true, text: '' });
  });

  it('refuses a malformed archive', () => {
    const bytes = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    expect(() => decodeArchive(bytes({ v: 2, type: 'parley.history', entries: [] }))).toThrow(/archive/);
    expect(() => decodeArchive(new TextEncoder().encode('nope'))).toThrow(/JSON/);
    const good = { c: C, s: 1, id: 'm1', at: 1, b: { from: 'alice', fromDevice: 'd', text: 'x' } };
    expect(decodeArchive(bytes({ v: 1, type: 'parley.history', entries: [good] }))).toHaveLength(1);
    for (const bad of [{ ...good, s: 0 }, { ...good, id: '' }, { ...good, b: { ...good.b, from: 7 } }, { ...good, b: { ...good.b, mentions: 'bob' } }, { ...good, t: 'm0', b: { from: 'a', fromDevice: 'd', type: 'nuke' } }]) {
      expect(() => decodeArchive(bytes({ v: 1, type: 'parley.history', entries: [bad] }))).toThrow(/malformed|bad/);
    }
  });

  it('seals bodies under the history key: no content in the store, nothing opens under another key or without one, a body moved to another entry fails', async () => {
    const store = memoryMessageStore();
    const key = new Uint8Array(32).fill(1);
    const h = history(store, key);
    await h.addMessage(msg(1, 'alice', 'canary-text-4242', { mentions: ['canary-user'] }));
    await h.addAction(react(2, 'bob', 'm1', 'canary-emoji'), false);
    const left = await raw(store);
    for (const c of ['canary', 'alice', 'bob']) expect(left).not.toContain(c);
    expect((await h.page(C, { limit: 1 }))[0]!.text).toBe('canary-text-4242');

    await expect(history(store, new Uint8Array(32).fill(2)).page(C, { limit: 1 })).rejects.toMatchObject({ code: 'undecryptable' });
    await expect(history(store, null).page(C, { limit: 1 })).rejects.toMatchObject({ code: 'undecryptable' });
    const [entry] = await store.page(C, { limit: 1 });
    await store.put([{ ...entry!, seq: 9 }]);
    await expect(h.page(C, { limit: 1 })).rejects.toMatchObject({ code: 'undecryptable' });
    const plain = memoryMessageStore();
    await history(plain, null).addMessage(msg(1, 'alice', 'plain'));
    await expect(history(plain, key).page(C, { limit: 1 })).rejects.toMatchObject({ code: 'undecryptable' });
    expect(() => history(store, new Uint8Array(16))).toThrow(/32 bytes/);
  });
});
