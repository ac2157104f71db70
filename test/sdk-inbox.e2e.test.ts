// End-to-end: the SDK's inbox, blocks and account calls on the client itself, and the live 'conversation' event a chat list follows.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConversationChange } from '../client-sdk/index.js';
import { createClient } from '../client-sdk/index.js';
import { newUser, type Recorded } from './support/clients.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

describe('the inbox and the account through the SDK client', () => {
  let server: ServerProcess;
  let alice: Recorded;
  let bob: Recorded;
  const bobChanges: ConversationChange[] = [];

  beforeAll(async () => {
    server = await startServer();
    [alice, bob] = [await newUser(server.url, 'alice'), await newUser(server.url, 'bob')];
    bob.client.on('conversation', (c) => bobChanges.push(c));
  });
  afterAll(async () => {
    for (const u of [alice, bob]) await u?.client.close();
    await server?.dispose();
  });

  it('follows the chat list live: a message moves it up with one more unread, a read clears it, matching conversations()', async () => {
    const sent = [await alice.client.sendText(bob.client.userId, 'one'), await alice.client.sendText(bob.client.userId, 'two')];
    await until(() => bobChanges.filter((c) => c.cause === 'message').length === 2, 'two message changes');
    expect(bobChanges.map((c) => [c.conversationId, c.seq, c.cause])).toEqual(sent.map((s) => [s.conversationId, s.seq, 'message']));
    const [listed] = (await bob.client.conversations()).conversations;
    expect(listed).toMatchObject({ id: sent[0]!.conversationId, kind: 'direct', peer: alice.client.userId, lastSeq: sent[1]!.seq, unread: 2 });

    await bob.client.markRead(sent[1]!.conversationId, sent[1]!.seq);
    expect(bobChanges.at(-1)).toEqual({ conversationId: sent[1]!.conversationId, seq: sent[1]!.seq, cause: 'read' });
    await until(async () => (await bob.client.conversations()).conversations[0]!.unread === 0, 'the read reaches the server');

    const reply = await bob.client.sendText(alice.client.userId, 'three');
    await until(() => bobChanges.some((c) => c.cause === 'sent' && c.seq === reply.seq), 'bob’s own send moves the conversation too');
  });

  it('blocks and unblocks, lists devices, and changes the password so that the client logs in with the new one', async () => {
    await bob.client.block(alice.client.userId);
    expect((await bob.client.blocks()).map((b) => b.userId)).toEqual([alice.client.userId]);
    await bob.client.unblock(alice.client.userId);
    expect(await bob.client.blocks()).toEqual([]);

    const [device] = await bob.client.listDevices();
    expect(device).toMatchObject({ id: bob.client.deviceId, current: true });

    await bob.client.changePassword(bob.password, `${bob.password}-new`);
    await bob.client.login(); // a fresh login uses the new password
    await bob.client.close();
    await bob.client.connect();
    expect(bob.client.connected).toBe(true);
    // The old password no longer logs anyone in.
    const stale = createClient({ url: server.url, username: bob.username, password: bob.password });
    await expect(stale.login()).rejects.toMatchObject({ code: 'unauthorized' });
    await stale.close();
  });
});
