// End-to-end: the SDK's side of issue 14 through a real server: handlePush on a real message's ciphertext (and the sync after it), disappearing timers, mute and push registration.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type DisappearingChange, type Message, type ParleyClient, type PushPayload } from '../client-sdk/index.js';
import type { KeyStore } from '../client-sdk/e2e.store.js';
import { memoryKeyStore } from '../client-sdk/e2e.store.memory.js';
import type { MsgFrame } from '../protocol/frames.js';
import { type PushService, startPushService } from './support/push-service.js';
import { rawConnect } from './support/raw.js';
import { type ServerProcess, startServer } from './support/server.js';
import { uniqueName, until } from './support/wait.js';

/** A client and everything it emitted. */
interface Device {
  client: ParleyClient;
  messages: Message[];
  errors: Error[];
  changes: DisappearingChange[];
  expired: { conversationId: string; id: string; seq: number }[];
  caughtUp: number;
}

describe('SDK: push, mute and disappearing messages (real server)', () => {
  let server: ServerProcess;
  let push: PushService;
  const open: ParleyClient[] = [];

  /** A client of `username` over `keyStore` (a new device unless the store already holds one), recording what it emits. */
  const device = (username: string, keyStore: KeyStore): Device => {
    const client = createClient({ url: server.url, username, password: `pw-${username}`, keyStore, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } });
    open.push(client);
    const d: Device = { client, messages: [], errors: [], changes: [], expired: [], caughtUp: 0 };
    client.on('message', (m) => d.messages.push(m));
    client.on('error', (e) => d.errors.push(e));
    client.on('disappearing', (c) => d.changes.push(c));
    client.on('expire', (e) => d.expired.push(e));
    client.on('caught_up', () => d.caughtUp++);
    return d;
  };
  const user = async (prefix: string, keyStore: KeyStore = memoryKeyStore()): Promise<Device> => {
    const d = device(uniqueName(prefix), keyStore);
    await d.client.register();
    await d.client.connect();
    return d;
  };
  const username = (d: Device) => (d.client as unknown as { options: { username: string } }).options.username;

  /** The msg frames this device's sync holds now, read over a second connection of the same device that acknowledges nothing. */
  const pending = async (d: Device): Promise<MsgFrame[]> => {
    const raw = await rawConnect(server.url, d.client.accessToken!);
    await raw.next('caught_up');
    raw.ws.close();
    return raw.frames.filter((f): f is MsgFrame => f.type === 'msg');
  };
  const pushOf = (msg: MsgFrame): PushPayload => ({ v: 1, kind: 'message', count: 1, msg });

  /** A new client over the device's store connects, syncs and is checked: it reports `texts` and nothing else, and no error. */
  const syncReports = async (d: Device, store: KeyStore, texts: string[]) => {
    const page = device(username(d), store);
    await page.client.connect();
    await until(() => page.caughtUp === 1, 'the page caught up');
    expect(page.messages.map((m) => m.text)).toEqual(texts);
    expect(page.errors).toEqual([]);
    await until(async () => (await store.ids('pushed')).length === 0, 'the pushed seqs are pruned once acknowledged');
    await page.client.close();
    // Everything was acknowledged: nothing comes again.
    const again = device(username(d), store);
    await again.client.connect();
    await until(() => again.caughtUp === 1, 'caught up again');
    expect(again.messages).toEqual([]);
    await again.client.close();
  };

  beforeAll(async () => {
    push = await startPushService();
    server = await startServer({ env: { PUSH_ENDPOINT_HOSTS: '127.0.0.1', PUSH_ALLOW_HTTP: 'true', PUSH_DELAY_MS: '0', PUSH_COALESCE_MS: '0', PUSH_POLL_MS: '50' } });
  });
  afterAll(async () => {
    for (const c of open) await c.close();
    await server?.dispose();
    await push?.close();
  });

  it('handlePush decrypts a direct message with only the stores; a new client over them syncs without reporting it again or failing on it', async () => {
    const alice = await user('alice');
    const store = memoryKeyStore();
    const bob = await user('bob', store);
    const bobId = bob.client.userId;
    await alice.client.sendText(bobId, 'one');
    await until(() => bob.messages.length === 1, 'bob gets one live');
    await bob.client.close();
    await alice.client.sendText(bobId, 'two');
    const three = await alice.client.sendText(bobId, 'three');
    const frames = await pending(bob);
    expect(frames.map((f) => f.seq)).toEqual([2, 3]);

    // A service worker: a client over the same store that neither logs in nor connects.
    const worker = device(username(bob), store);
    const shown = await worker.client.handlePush(JSON.stringify(pushOf(frames[1]!)));
    expect(shown).toMatchObject({ id: three.id, seq: 3, text: 'three', from: alice.client.userId, conversationId: three.conversationId });
    expect(await worker.client.handlePush(pushOf(frames[1]!))).toBeNull(); // the same push twice
    expect(await worker.client.handlePush({ v: 1, kind: 'wake', count: 1 })).toBeNull();
    expect(worker.client.connected).toBe(false);
    await syncReports(bob, store, ['two']);
  });

  it('handlePush decrypts a group message; the sync skips it (its sender key message key is used up) and reports the one before', async () => {
    const alice = await user('alice');
    const store = memoryKeyStore();
    const bob = await user('bob', store);
    const g = await alice.client.createGroup({ name: 'pushed', members: [bob.client.userId] });
    await alice.client.sendGroupText(g.id, 'g1');
    await until(() => bob.messages.length === 1, 'bob gets g1 live (and alice’s sender key)');
    await bob.client.close();
    await alice.client.sendGroupText(g.id, 'g2');
    const g3 = await alice.client.sendGroupText(g.id, 'g3');
    const frames = (await pending(bob)).filter((f) => !f.system);
    const worker = device(username(bob), store);
    expect(await worker.client.handlePush(pushOf(frames.find((f) => f.id === g3.id)!))).toMatchObject({ id: g3.id, groupId: g.id, text: 'g3' });
    await syncReports(bob, store, ['g2']);
  });

  it('a real Web Push to an offline device carries its ciphertext, and handlePush shows it', async () => {
    const alice = await user('alice');
    const store = memoryKeyStore();
    const bob = await user('bob', store);
    const subscription = push.subscribe();
    await bob.client.registerPush({ kind: 'webpush', ...subscription });
    await bob.client.close();
    const sent = await alice.client.sendText(bob.client.userId, 'pushed to you');
    const [received] = await push.waitFor(1, subscription.endpoint);
    expect(received!.payload).not.toContain('pushed to you');
    const worker = device(username(bob), store);
    expect(await worker.client.handlePush(received!.payload)).toMatchObject({ id: sent.id, text: 'pushed to you' });
    await syncReports(bob, store, []);
  });

  it('setDisappearing reaches both users; later messages carry the timer and expiresAt, and go after read + timer', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const first = await alice.client.sendText(bob.client.userId, 'before');
    const conversationId = first.conversationId;
    await alice.client.setDisappearing(bob.client.userId, 1);
    const change = { conversationId, seconds: 1, by: alice.client.userId };
    await until(() => alice.changes.length === 1 && bob.changes.length === 1, 'both apply the timer');
    expect(alice.changes).toEqual([change]);
    expect(bob.changes).toEqual([change]);
    expect(await bob.client.disappearingTimer(conversationId)).toBe(1);

    // Bob's sends carry it too (he sends by user id: his device keeps alice's conversation's timer).
    const secret = await alice.client.sendText(bob.client.userId, 'secret');
    await until(() => bob.messages.some((m) => m.id === secret.id), 'bob gets the secret');
    const m = bob.messages.find((x) => x.id === secret.id)!;
    expect(m.timer).toBe(1);
    expect(m.expiresAt).toBeGreaterThan(m.sentAt);
    expect(bob.messages.find((x) => x.id === first.id)!.timer).toBeUndefined();
    const reply = await bob.client.sendText(alice.client.userId, 'reply');
    await until(() => alice.messages.some((x) => x.id === reply.id), 'alice gets the reply');
    expect(alice.messages.find((x) => x.id === reply.id)!.timer).toBe(1);

    // Unread, the secret stays on bob's device; read, it goes a second later (alice's own copy went a second after it was stored).
    await until(() => alice.expired.some((e) => e.id === secret.id), "alice's copy of her own message expires");
    expect(bob.expired.some((e) => e.id === secret.id)).toBe(false);
    await bob.client.markRead(conversationId, m.seq);
    await until(() => bob.expired.some((e) => e.id === secret.id), "bob's copy expires after read + 1 s");
    expect(bob.expired.find((e) => e.id === secret.id)).toEqual({ conversationId, id: secret.id, seq: m.seq });

    await bob.client.setDisappearing(conversationId, null);
    await until(() => alice.changes.length === 2 && bob.changes.length === 2, 'both turn it off');
    expect(alice.changes[1]).toEqual({ conversationId, seconds: null, by: bob.client.userId });
    const plain = await alice.client.sendText(bob.client.userId, 'plain');
    await until(() => bob.messages.some((x) => x.id === plain.id), 'bob gets the plain message');
    expect(bob.messages.find((x) => x.id === plain.id)).not.toHaveProperty('timer');
    expect(alice.errors).toEqual([]);
    expect(bob.errors).toEqual([]);
  });

  it('setDisappearing in a group reaches every member', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const g = await alice.client.createGroup({ name: 'timed', members: [bob.client.userId] });
    await bob.client.setDisappearing(g.id, 3600);
    await until(() => alice.changes.length === 1 && bob.changes.length === 1, 'both apply the group timer');
    expect(alice.changes[0]).toEqual({ conversationId: g.id, seconds: 3600, by: bob.client.userId });
    const s = await alice.client.sendGroupText(g.id, 'for an hour');
    await until(() => bob.messages.some((m) => m.id === s.id), 'bob gets it');
    expect(bob.messages.find((m) => m.id === s.id)).toMatchObject({ timer: 3600 });
  });

  it('mute, unmute, registerPush, unregisterPush and vapidPublicKey round-trip', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const { conversationId } = await alice.client.sendText(bob.client.userId, 'hi');
    await alice.client.mute(conversationId);
    await alice.client.mute(conversationId, Date.now() + 60_000);
    await alice.client.unmute(conversationId);
    await expect(alice.client.mute(crypto.randomUUID())).rejects.toMatchObject({ code: 'not_found' });
    expect(await alice.client.vapidPublicKey()).toMatch(/^[A-Za-z0-9_-]{87}$/);
    await alice.client.registerPush({ kind: 'webpush', ...push.subscribe() });
    await alice.client.unregisterPush();
    await expect(alice.client.registerPush({ kind: 'webpush', endpoint: 'https://evil.example/x', keys: push.subscribe().keys })).rejects.toMatchObject({ code: 'invalid' });
  });
});
