// End-to-end: the inbox (GET /v1/conversations) through a real server and SDK clients: order, pages, cursors and unread counts across a user's devices.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountApi, type ConversationSummary } from '../client-sdk/account.js';
import { request } from '../client-sdk/http.js';
import { newUser, type Recorded } from './support/clients.js';
import { rawConnect, rawLogin, type RawSession } from './support/raw.js';
import { rest } from './support/rest.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

describe('the inbox through a real server and SDK clients', () => {
  let server: ServerProcess;
  let alice: Recorded;
  let bob: Recorded;
  let carol: Recorded;
  let bobOther: RawSession | undefined;

  beforeAll(async () => {
    server = await startServer();
    [alice, bob, carol] = [await newUser(server.url, 'alice'), await newUser(server.url, 'bob'), await newUser(server.url, 'carol')];
  });
  afterAll(async () => {
    bobOther?.ws.close();
    for (const u of [alice, bob, carol]) await u?.client.close();
    await server?.dispose();
  });

  /** The SDK's AccountApi for a connected client, over its own token. */
  const api = (u: Recorded) => new AccountApi({ call: (method, path, options) => request(server.url, method, path, options), freshToken: async () => u.client.accessToken! });
  const byKind = (list: ConversationSummary[]) => Object.fromEntries(list.map((c) => [c.kind, c])) as Record<'direct' | 'group', ConversationSummary>;

  it('lists direct conversations and groups by last activity, in pages, and counts unread for the user over all of their devices', async () => {
    for (const t of ['one', 'two', 'three']) await alice.client.sendText(bob.client.userId, t);
    const { id: groupId } = await carol.client.createGroup({ name: 'the group', members: [bob.client.userId, alice.client.userId] });
    await carol.client.sendGroupText(groupId, 'g1');
    await carol.client.sendGroupText(groupId, 'g2');
    const four = await alice.client.sendText(bob.client.userId, 'four');
    await until(() => bob.messages.length === 6, () => `bob has ${bob.messages.length} of 6 messages`);
    const direct = four.conversationId;

    // Bob's other device: logged in, never connected, never read anything.
    const other = await rawLogin(server.url, bob.username, bob.password);
    const fromOther = await rest(server.url, 'GET', '/v1/conversations', { token: other.token });
    expect(fromOther.status).toBe(200);
    const listed = fromOther.body.conversations as ConversationSummary[];
    expect(listed.map((c) => c.id)).toEqual([direct, groupId]);
    expect(listed[0]).toEqual({ id: direct, kind: 'direct', peer: alice.client.userId, lastSeq: four.seq, lastActivityAt: four.sentAt, delivered: 0, read: 0, unread: 4 });
    expect(listed[1]).toMatchObject({ id: groupId, kind: 'group', group: { role: 'member' }, lastSeq: 3, unread: 2 });
    expect(listed[1]!.group!.name).not.toContain('the group'); // sealed by the SDK

    // Pages of one, through the SDK's API on bob's connected device (which has received, not read).
    await until(async () => (await api(bob).conversations({ limit: 1 })).conversations[0]?.delivered === four.seq, 'bob acknowledges');
    const first = await api(bob).conversations({ limit: 1 });
    expect(first.conversations.map((c) => c.id)).toEqual([direct]);
    expect(first.conversations[0]).toMatchObject({ delivered: four.seq, read: 0, unread: 4 });
    const second = await api(bob).conversations({ limit: 1, cursor: first.cursor! });
    expect(second.conversations.map((c) => c.id)).toEqual([groupId]);
    expect(second.cursor).toBeUndefined();
    expect((await rest(server.url, 'GET', '/v1/conversations?cursor=nope', { token: other.token })).status).toBe(400);

    // A read on bob's SDK device counts for the user: the other device sees unread fall, its own read cursor stays.
    const two = bob.messages.find((m) => m.text === 'two')!;
    await bob.client.markRead(direct, two.seq);
    await until(async () => byKind((await api(bob).conversations()).conversations).direct.read === two.seq, 'the read cursor moves');
    expect(byKind((await rest(server.url, 'GET', '/v1/conversations', { token: other.token })).body.conversations).direct).toMatchObject({ read: 0, unread: 2 });

    // Bob's own message is not unread for him; for alice it is, and the group's messages from carol too (not her own, not the system message).
    const reply = await bob.client.sendText(alice.client.userId, 'a reply');
    const bobs = byKind((await api(bob).conversations()).conversations);
    expect(bobs.direct).toMatchObject({ lastSeq: reply.seq, unread: 2 });
    const alices = (await api(alice).conversations()).conversations;
    expect(alices.map((c) => c.id)).toEqual([direct, groupId]);
    expect(byKind(alices)).toMatchObject({ direct: { unread: 1, peer: bob.client.userId }, group: { unread: 2 } });

    // A read from bob's other device (a raw session) clears the group for every device of his.
    bobOther = await rawConnect(server.url, other.token);
    await bobOther.next('caught_up');
    bobOther.sendJson({ type: 'read', conversationId: groupId, seq: 3 });
    await until(async () => byKind((await api(bob).conversations()).conversations).group.unread === 0, 'the group read everywhere');
    expect(byKind((await api(bob).conversations()).conversations).group.read).toBe(0); // this device's cursor did not move
  });

  it('a group one has left is no longer listed; 401 without a token; without ADMIN_TOKEN the operator API is not there', async () => {
    const dave = await newUser(server.url, 'dave');
    try {
      const { id } = await dave.client.createGroup({ name: 'short-lived', members: [carol.client.userId] });
      expect((await api(carol).conversations()).conversations.map((c) => c.id)).toContain(id);
      await carol.client.leaveGroup(id);
      expect((await api(carol).conversations()).conversations.map((c) => c.id)).not.toContain(id);
      expect((await rest(server.url, 'GET', '/v1/conversations')).status).toBe(401);
      expect((await rest(server.url, 'GET', '/v1/admin/reports', { token: 'x'.repeat(40) })).status).toBe(404);
    } finally {
      await dave.client.close();
    }
  });
});
