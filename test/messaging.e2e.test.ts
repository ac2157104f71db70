// End-to-end: 1:1 messaging through a real server process and the SDK.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newUser, type Recorded } from './support/clients.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

describe('1:1 messaging (one process, embedded defaults)', () => {
  let server: ServerProcess;
  const open: Recorded[] = [];
  const user = async (prefix: string, connect = true) => {
    const u = await newUser(server.url, prefix, connect);
    open.push(u);
    return u;
  };

  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    for (const u of open) await u.client.close();
    await server?.dispose();
  });

  it('delivers online, once, with the sender from the token', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const bobId = await alice.client.findUser(bob.username);
    expect(bobId).toBe(bob.client.userId);
    const sent = await alice.client.sendText(bobId, 'hello bob');
    expect(sent.seq).toBe(1);
    await until(() => bob.messages.length === 1, 'bob gets the message');
    expect(bob.messages[0]).toMatchObject({
      id: sent.id,
      from: alice.client.userId,
      conversationId: sent.conversationId,
      seq: 1,
      text: 'hello bob',
    });
    const reply = await bob.client.sendText(alice.client.userId, 'hi alice');
    expect(reply).toMatchObject({ conversationId: sent.conversationId, seq: 2 });
    await until(() => alice.messages.length === 1, 'alice gets the reply');
    expect(alice.messages[0]!.text).toBe('hi alice');
  });

  it('delivers 200 messages sent while offline in order, exactly once, after connect', async () => {
    const alice = await user('alice');
    const bob = await user('bob', true);
    await bob.client.close();
    const texts = Array.from({ length: 200 }, (_, i) => `offline message ${i}`);
    const results = await Promise.all(texts.map((t) => alice.client.sendText(bob.client.userId, t)));
    // One device's sends are committed in the order it sent them.
    expect(results.map((r) => r.seq)).toEqual(texts.map((_, i) => i + 1));
    let caughtUp = 0;
    bob.client.on('caught_up', () => caughtUp++);
    await bob.client.connect();
    await until(() => caughtUp === 1, 'bob caught up');
    expect(bob.messages.map((m) => m.seq)).toEqual(texts.map((_, i) => i + 1));
    expect(bob.messages.map((m) => m.text)).toEqual(texts);
    expect(new Set(bob.messages.map((m) => m.id)).size).toBe(200);
    // Reconnecting again brings nothing twice.
    await bob.client.close();
    await bob.client.connect();
    await until(() => caughtUp === 2, 'bob caught up again');
    expect(bob.messages.length).toBe(200);
  });

  it('relays delivered and read receipts both ways, and holds them for an offline sender', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const s1 = await alice.client.sendText(bob.client.userId, 'one');
    await until(() => alice.receipts.some((r) => r.kind === 'delivered' && r.seq >= s1.seq), 'delivered receipt to alice');
    expect(alice.receipts.find((r) => r.kind === 'delivered')).toMatchObject({ by: bob.client.userId, conversationId: s1.conversationId });

    await bob.client.markRead(s1.conversationId, s1.seq);
    await until(() => alice.receipts.some((r) => r.kind === 'read' && r.seq === s1.seq), 'read receipt to alice');

    // The other way round.
    const s2 = await bob.client.sendText(alice.client.userId, 'two');
    await until(() => alice.messages.length === 1, 'alice gets two');
    await alice.client.markRead(s2.conversationId, s2.seq);
    await until(() => bob.receipts.some((r) => r.kind === 'read' && r.seq === s2.seq && r.by === alice.client.userId), 'read receipt to bob');

    // Sender offline: the receipt waits for the next connect.
    await bob.client.close();
    const s3 = await alice.client.sendText(bob.client.userId, 'three');
    await alice.client.markRead(s3.conversationId, s3.seq);
    await bob.client.connect();
    await until(() => bob.receipts.some((r) => r.kind === 'read' && r.seq === s3.seq), 'held read receipt reaches bob');
  });

  it('relays typing and presence, and only to people who share a conversation', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const stranger = await user('stranger');
    const s = await alice.client.sendText(bob.client.userId, 'hey');
    const typing: unknown[] = [];
    const presence: { userId: string; online: boolean; lastSeen: number | null }[] = [];
    bob.client.on('typing', (t) => typing.push(t));
    bob.client.on('presence', (p) => presence.push(p));
    alice.client.setTyping(s.conversationId, true);
    await until(() => typing.length === 1, 'typing reaches bob');
    expect(typing[0]).toEqual({ conversationId: s.conversationId, from: alice.client.userId, active: true });

    bob.client.subscribePresence([alice.client.userId]);
    await until(() => presence.length === 1, 'current presence');
    expect(presence[0]).toMatchObject({ userId: alice.client.userId, online: true });
    await alice.client.close();
    await until(() => presence.length === 2, 'offline presence');
    expect(presence[1]!.online).toBe(false);
    expect(presence[1]!.lastSeen).toEqual(expect.any(Number));

    // A stranger learns nothing: typing into a conversation they are not in, presence of a non-contact.
    stranger.client.setTyping(s.conversationId, true);
    stranger.client.subscribePresence([bob.client.userId]);
    await until(() => stranger.errors.length === 2, 'stranger gets two errors');
    expect(stranger.errors.map((e) => (e as { code?: string }).code)).toEqual(['not_found', 'not_found']);
    expect(typing.length).toBe(1);
  });

  it('reports health, readiness, metrics and the OpenAPI document', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    await alice.client.sendText(bob.client.userId, 'counted');
    await until(() => bob.messages.length === 1, 'delivered');
    expect(await (await fetch(`${server.url}/healthz`)).json()).toEqual({ ok: true });
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
    expect(value('parley_messages_sent_total')).toBeGreaterThanOrEqual(1);
    expect(value('parley_messages_delivered_total')).toBeGreaterThanOrEqual(1);
    expect(value('parley_ws_connections')).toBeGreaterThanOrEqual(2);
    expect(metrics).toContain('parley_send_commit_seconds_bucket');
    const spec = (await (await fetch(`${server.url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(spec.openapi).toBe('3.1.0');
    expect(Object.keys(spec.paths)).toEqual(
      expect.arrayContaining([
        '/v1/accounts',
        '/v1/devices/{deviceId}',
        '/v1/sessions',
        '/v1/users',
        '/v1/users/{userId}/devices',
        '/v1/groups',
        '/v1/keys',
        '/v1/keys/one-time-prekeys',
        '/v1/keys/signed-prekey',
        '/v1/users/{userId}/bundles',
        '/v1/files',
        '/v1/files/limits',
        '/v1/files/{fileId}',
        '/v1/files/{fileId}/shares',
      ]),
    );
  });

  it('a second device of the recipient and the sender’s other devices get each message', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const { createClient } = await import('../client-sdk/index.js');
    const bobPhone = createClient({ url: server.url, username: bob.username, password: bob.password });
    const alicePhone = createClient({ url: server.url, username: alice.username, password: alice.password });
    const got: string[] = [];
    bobPhone.on('message', (m) => got.push(`bob:${m.text}`));
    alicePhone.on('message', (m) => got.push(`alice:${m.text}`));
    await bobPhone.login();
    await alicePhone.login();
    // A user's new device gets copies once another of their devices approves it.
    await bob.client.approveDevice(bobPhone.deviceId!);
    await alice.client.approveDevice(alicePhone.deviceId!);
    await bobPhone.connect();
    await alicePhone.connect();
    await alice.client.sendText(bob.client.userId, 'to all devices');
    await until(() => got.length === 2 && bob.messages.length === 1, 'every device has it');
    expect(got.sort()).toEqual(['alice:to all devices', 'bob:to all devices']);
    await bobPhone.close();
    await alicePhone.close();
  });
});
