// End-to-end: the SDK drops group messages from members its user blocks (the server delivers a group's one ciphertext to every member), without an error, and delivers them again after an unblock.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConversationChange, MessageReaction } from '../client-sdk/index.js';
import { newUser, type Recorded } from './support/clients.js';
import { rest } from './support/rest.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

describe('SDK: group messages from blocked members (real server)', () => {
  let server: ServerProcess;
  const users: Recorded[] = [];

  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    for (const u of users) await u.client.close();
    await server?.dispose();
  });

  it('carol blocks alice: alice’s group message and reaction reach bob, not carol’s app or history, with no error; after the unblock alice’s next message reaches carol', async () => {
    const [alice, bob, carol] = [await newUser(server.url, 'alice'), await newUser(server.url, 'bob'), await newUser(server.url, 'carol')];
    users.push(alice, bob, carol);
    const changes: ConversationChange[] = [];
    const reactions: MessageReaction[] = [];
    carol.client.on('conversation', (c) => changes.push(c));
    carol.client.on('reaction', (r) => reactions.push(r));
    const { id } = await alice.client.createGroup({ name: 'three', members: [bob.client.userId, carol.client.userId] });
    await until(() => carol.groupEvents.some((e) => e.kind === 'created'), 'carol hears of the group');

    await carol.client.block(alice.client.userId);
    const hidden = await alice.client.sendGroupText(id, 'carol must not see this');
    const fromBob = await bob.client.sendGroupText(id, 'bob after it');
    await alice.client.react(id, fromBob.id, '👍');
    const marker = await bob.client.sendGroupText(id, 'bob after the reaction');
    await until(() => bob.messages.some((m) => m.id === hidden.id), 'bob gets alice’s message');
    // Carol's inbox handles a group's messages in seq order: once bob's marker is here, alice's were handled.
    await until(() => carol.messages.some((m) => m.id === marker.id), 'carol gets bob’s marker');
    expect(carol.messages.map((m) => m.text)).toEqual(['bob after it', 'bob after the reaction']);
    expect(reactions).toEqual([]);
    expect(changes.filter((c) => c.cause === 'message').map((c) => c.seq)).toEqual([fromBob.seq, marker.seq]);
    expect((await carol.client.history(id)).map((m) => [m.text, m.reactions])).toEqual([
      ['bob after the reaction', undefined],
      ['bob after it', undefined],
    ]);
    expect(await carol.client.message(id, hidden.id)).toBeNull();
    expect(carol.errors).toEqual([]);
    // Acknowledged like any other: carol's device is past every seq, so the server keeps nothing for her.
    await until(async () => (await carol.client.conversations()).conversations.find((c) => c.id === id)?.delivered === marker.seq, 'carol’s cursor passes them all');

    await carol.client.unblock(alice.client.userId);
    const visible = await alice.client.sendGroupText(id, 'carol sees this one');
    await until(() => carol.messages.some((m) => m.id === visible.id), 'carol gets alice’s next message');
    expect(carol.messages.find((m) => m.id === visible.id)).toMatchObject({ from: alice.client.userId, text: 'carol sees this one' });
    expect(carol.errors).toEqual([]);
  });

  it('a block made elsewhere (another device of hers, here her REST call) applies once carol’s client has reconnected', async () => {
    const [alice, carol] = [await newUser(server.url, 'alice'), await newUser(server.url, 'carol')];
    users.push(alice, carol);
    const { id } = await alice.client.createGroup({ name: 'two', members: [carol.client.userId] });
    const before = await alice.client.sendGroupText(id, 'before the block');
    await until(() => carol.messages.some((m) => m.id === before.id), 'carol gets the first message');
    const blocked = await rest(server.url, 'POST', '/v1/blocks', { token: carol.client.accessToken!, body: { userId: alice.client.userId } });
    expect(blocked.status).toBeLessThan(300);
    await carol.client.close();
    await carol.client.connect();
    const hidden = await alice.client.sendGroupText(id, 'after the block');
    await until(async () => (await carol.client.conversations()).conversations.find((c) => c.id === id)?.delivered === hidden.seq, 'carol’s device acknowledges it');
    expect(carol.messages.map((m) => m.text)).toEqual(['before the block']);
    expect(carol.errors).toEqual([]);
  });
});
