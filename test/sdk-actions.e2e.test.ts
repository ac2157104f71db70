// End-to-end: message actions through a real server, 1:1 and in groups: edits, reactions, replies and mentions, deletes for everyone (a tombstone for a device that had not fetched the original), and forged actions ignored.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type Message, type MessageDelete, type MessageEdit, type MessageReaction, type ParleyClient } from '../client-sdk/index.js';
import type { Decoded } from '../client-sdk/content.js';
import { type ServerProcess, startServer } from './support/server.js';
import { uniqueName, until } from './support/wait.js';

/** A client and what it emitted. */
interface Device {
  client: ParleyClient;
  username: string;
  messages: Message[];
  edits: MessageEdit[];
  deletes: MessageDelete[];
  reactions: MessageReaction[];
  errors: Error[];
}

/** A client's private send path, as a modified client would use it to send any content (the SDK refuses to forge). */
const forge = (d: Device, to: string, group: boolean, content: Decoded) =>
  (d.client as unknown as { sendContent(to: string, group: boolean, c: Decoded): Promise<unknown> }).sendContent(to, group, content);

describe('SDK: message actions (real server)', () => {
  let server: ServerProcess;
  const open: ParleyClient[] = [];

  const device = (username: string): Device => {
    const client = createClient({ url: server.url, username, password: `pw-${username}`, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } });
    open.push(client);
    const d: Device = { client, username, messages: [], edits: [], deletes: [], reactions: [], errors: [] };
    client.on('message', (m) => d.messages.push(m));
    client.on('edit', (e) => d.edits.push(e));
    client.on('delete', (e) => d.deletes.push(e));
    client.on('reaction', (e) => d.reactions.push(e));
    client.on('error', (e) => d.errors.push(e));
    return d;
  };
  const user = async (prefix: string): Promise<Device> => {
    const d = device(uniqueName(prefix));
    await d.client.register();
    await d.client.connect();
    return d;
  };

  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    for (const c of open) await c.close();
    await server?.dispose();
  });

  it('1:1: an edit, reactions, a reply with mentions and a delete reach the other side as events, and both histories show them applied', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const [a, b] = [alice.client.userId, bob.client.userId];
    const hi = await alice.client.sendText(b, 'hi bob', { mentions: [b] });
    await until(() => bob.messages.length === 1, 'bob got it');
    expect(bob.messages[0]).toMatchObject({ id: hi.id, text: 'hi bob', mentions: [b] });
    const c = hi.conversationId;

    await alice.client.edit(b, hi.id, 'hi bob, edited');
    await until(() => bob.edits.length === 1, 'bob saw the edit');
    expect(bob.edits[0]).toMatchObject({ conversationId: c, messageId: hi.id, by: a, text: 'hi bob, edited', message: { id: hi.id, text: 'hi bob, edited' } });
    await bob.client.react(c, hi.id, '👍');
    await alice.client.react(c, hi.id, '🎉');
    await bob.client.react(c, hi.id, '😂');
    await bob.client.unreact(c, hi.id, '😂');
    await until(() => alice.reactions.length === 3 && bob.reactions.length === 1, 'reactions arrived');
    expect(alice.reactions.map((r) => [r.by, r.emoji, r.added])).toEqual([
      [b, '👍', true],
      [b, '😂', true],
      [b, '😂', false],
    ]);
    expect(alice.reactions[2]!.message!.reactions).toEqual([
      { emoji: '👍', users: [b] },
      { emoji: '🎉', users: [a] },
    ]);
    const re = await bob.client.reply(c, hi.id, 'hello @alice', { mentions: [a] });
    await until(() => alice.messages.length === 1, 'alice got the reply');
    expect(alice.messages[0]).toMatchObject({ id: re.id, text: 'hello @alice', replyTo: hi.id, mentions: [a] });

    for (const d of [alice, bob]) {
      const [reply, original] = await d.client.history(c);
      expect(reply).toMatchObject({ id: re.id, replyTo: hi.id, mentions: [a] });
      expect(original).toMatchObject({ id: hi.id, from: a, text: 'hi bob, edited', editedAt: expect.any(Number), reactions: [{ emoji: '👍', users: [b] }, { emoji: '🎉', users: [a] }] });
    }

    await alice.client.deleteForEveryone(c, hi.id);
    await until(() => bob.deletes.length === 1, 'bob saw the delete');
    expect(bob.deletes[0]).toMatchObject({ conversationId: c, messageId: hi.id, by: a, message: { id: hi.id, deleted: true, text: '' } });
    for (const d of [alice, bob]) expect(await d.client.message(c, hi.id)).toEqual({ id: hi.id, from: a, fromDevice: alice.client.deviceId, conversationId: c, seq: hi.seq, text: '', sentAt: hi.sentAt, deleted: true });
    await expect(bob.client.edit(c, hi.id, 'not mine')).rejects.toMatchObject({ code: 'forbidden' });
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });

  it('groups: edits, reactions, replies and a delete reach every member, applied in everyone’s history', async () => {
    const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
    const g = await alice.client.createGroup({ name: 'actions', members: [bob.client.userId, carol.client.userId] });
    const m = await alice.client.sendGroupText(g.id, 'group hello', { mentions: [carol.client.userId] });
    await until(() => bob.messages.length === 1 && carol.messages.length === 1, 'members got it');
    await alice.client.edit(g.id, m.id, 'group hello (edited)');
    await bob.client.react(g.id, m.id, '🚀');
    await carol.client.reply(g.id, m.id, 'agreed');
    await until(() => carol.edits.length === 1 && carol.reactions.length === 1 && bob.messages.length === 2 && alice.messages.length === 1, 'actions arrived');
    expect(carol.edits[0]).toMatchObject({ messageId: m.id, text: 'group hello (edited)', message: { groupId: g.id } });
    for (const d of [alice, bob, carol]) {
      const [reply, original] = await d.client.history(g.id);
      expect(reply).toMatchObject({ from: carol.client.userId, text: 'agreed', replyTo: m.id, groupId: g.id });
      expect(original).toMatchObject({ id: m.id, text: 'group hello (edited)', mentions: [carol.client.userId], reactions: [{ emoji: '🚀', users: [bob.client.userId] }] });
    }
    await alice.client.deleteForEveryone(g.id, m.id);
    await until(() => bob.deletes.length === 1 && carol.deletes.length === 1, 'members saw the delete');
    for (const d of [alice, bob, carol]) expect((await d.client.history(g.id))[1]).toMatchObject({ id: m.id, deleted: true, text: '' });
    expect([...alice.errors, ...bob.errors, ...carol.errors]).toEqual([]);
  });

  it('an edit or a delete of someone else’s message is ignored by every receiver (1:1 and in a group); their reactions are not', async () => {
    const [alice, bob, mallory] = [await user('alice'), await user('bob'), await user('mallory')];
    const g = await alice.client.createGroup({ name: 'forged', members: [bob.client.userId, mallory.client.userId] });
    const m = await alice.client.sendGroupText(g.id, 'the real text');
    const direct = await alice.client.sendText(bob.client.userId, 'direct, real');
    await until(() => bob.messages.length === 2 && mallory.messages.length === 1, 'delivered');
    await forge(mallory, g.id, true, { type: 'edit', target: m.id, text: 'forged text' });
    await forge(mallory, g.id, true, { type: 'delete', target: m.id });
    // Bob's other device would see his own edit of Alice's direct message: still not his to edit.
    await forge(bob, alice.client.userId, false, { type: 'edit', target: direct.id, text: 'forged direct' });
    await forge(bob, alice.client.userId, false, { type: 'delete', target: direct.id });
    await mallory.client.react(g.id, m.id, '👀');
    await bob.client.sendText(alice.client.userId, 'sent after the forgeries');
    await until(() => alice.reactions.length === 1 && bob.reactions.length === 1 && alice.messages.length === 1, 'the reaction and the message sent last arrived');
    expect([...alice.edits, ...alice.deletes, ...bob.edits, ...bob.deletes]).toEqual([]);
    for (const d of [alice, bob]) expect((await d.client.history(g.id))[0]).toMatchObject({ text: 'the real text', reactions: [{ emoji: '👀', users: [mallory.client.userId] }] });
    for (const d of [alice, bob]) expect((await d.client.message(direct.conversationId, direct.id))?.text).toBe('direct, real');
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });

  it('a device that had not fetched a message deleted for everyone gets a tombstone in its place: a delete event, no message, and a deleted entry in its history', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const b = bob.client.userId;
    await alice.client.sendText(b, 'before');
    await until(() => bob.messages.length === 1, 'bob got the first');
    await bob.client.close();
    const doomed = await alice.client.sendText(b, 'regretted');
    const gone = await alice.client.deleteForEveryone(b, doomed.id);
    expect(gone.erased).toBe(true);
    await alice.client.sendText(b, 'after');
    await bob.client.connect();
    await until(() => bob.messages.length === 2, 'bob synced');
    expect(bob.messages.map((m) => m.text)).toEqual(['before', 'after']);
    expect(bob.deletes).toEqual([{ conversationId: doomed.conversationId, messageId: doomed.id, by: alice.client.userId, seq: doomed.seq, message: null }]);
    expect((await bob.client.history(doomed.conversationId)).map((m) => [m.text, m.deleted ?? false])).toEqual([
      ['after', false],
      ['', true],
      ['before', false],
    ]);
    expect(bob.errors).toEqual([]);
  });
});
