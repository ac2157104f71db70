// End-to-end: pushes for devices without a connection, through a real server and real local push receivers (Web Push, webhook).
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PUSH_COLLAPSE_KEY, type PushPayload } from '../protocol/push.js';
import { createTestDatabase } from '../platform/test-databases.js';
import { newUser, type Recorded } from './support/clients.js';
import { type PushService, startPushService, startWebhookReceiver, type WebhookReceiver } from './support/push-service.js';
import { type ServerProcess, startServer } from './support/server.js';
import { rawAccount } from './support/raw.js';
import { until } from './support/wait.js';

const adminUrl = inject('postgresAdminUrl');
const WEBHOOK_SECRET = randomBytes(32).toString('hex');

/** A server on its own PostgreSQL database (so the test can look at the push queue), pushing to local receivers, and its users. */
interface PushWorld {
  db: { url: string; drop(): Promise<void> };
  sql: postgres.Sql;
  pushService: PushService;
  webhook: WebhookReceiver;
  server: ServerProcess;
  users: Recorded[];
  user(prefix: string, connect?: boolean): Promise<Recorded>;
  dispose(): Promise<void>;
}

async function pushWorld(extra: Record<string, string> = {}): Promise<PushWorld> {
  const db = await createTestDatabase(adminUrl!);
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  const pushService = await startPushService();
  const webhook = await startWebhookReceiver(WEBHOOK_SECRET);
  const server = await startServer({
    env: {
      SQL_DRIVER: 'postgres',
      DATABASE_URL: db.url,
      SQL_POOL_SIZE: '4',
      PUSH_DRIVER: 'webpush',
      PUSH_ENDPOINT_HOSTS: new URL(pushService.origin).hostname,
      PUSH_ALLOW_HTTP: 'true',
      PUSH_WEBHOOK_URL: webhook.url,
      PUSH_WEBHOOK_SECRET: WEBHOOK_SECRET,
      // A message for a device without a connection is pushed after 1 s; later ones within 10 minutes are coalesced.
      PUSH_DELAY_MS: '1000',
      PUSH_COALESCE_MS: '600000',
      PUSH_POLL_MS: '50',
      ...extra,
    },
  });
  const users: Recorded[] = [];
  return {
    db,
    sql,
    pushService,
    webhook,
    server,
    users,
    user: async (prefix, connect = false) => {
      const u = await newUser(server.url, prefix, connect);
      users.push(u);
      return u;
    },
    dispose: async () => {
      for (const u of users) await u.client.close();
      await server.dispose();
      await pushService.close();
      await webhook.close();
      await sql.end();
      await db.drop();
    },
  };
}

describe.skipIf(adminUrl === null)('pushes to devices without a connection (PostgreSQL, local push service and webhook relay)', () => {
  let world: PushWorld;
  let sql: postgres.Sql;
  let pushService: PushService;
  let webhook: WebhookReceiver;
  let server: ServerProcess;
  let alice: Recorded;
  let users: Recorded[];
  const user = (prefix: string, connect = false) => world.user(prefix, connect);
  const pending = async (deviceId: string) => (await sql`SELECT count, seq, due_at FROM push_pending WHERE device_id = ${deviceId}`)[0];

  beforeAll(async () => {
    world = await pushWorld();
    ({ sql, pushService, webhook, server, users } = world);
    alice = await user('alice', true);
  });
  afterAll(() => world?.dispose());

  it('an offline device gets an RFC 8291 push carrying only its own ciphertext, which the SDK decrypts; the later sync does not repeat it', async () => {
    const bob = await user('bob');
    const subscription = pushService.subscribe();
    await bob.client.registerPush({ kind: 'webpush', ...subscription });

    const sent = await alice.client.sendText(bob.client.userId, 'secret canary for the push');
    const [push] = await pushService.waitFor(1, subscription.endpoint);
    expect(push!.headers.topic).toBe(PUSH_COLLAPSE_KEY);
    expect(push!.payload).not.toContain('secret canary');
    const payload = JSON.parse(push!.payload) as PushPayload;
    expect(payload).toMatchObject({ v: 1, kind: 'message', count: 1, msg: { type: 'msg', id: sent.id, conversationId: sent.conversationId, seq: sent.seq } });

    // A service worker's job: decrypt it with the device's own stores, without a connection.
    const shown = await bob.client.handlePush(push!.payload);
    expect(shown).toMatchObject({ id: sent.id, text: 'secret canary for the push', seq: sent.seq });
    // The sync brings the same message again: acknowledged, not reported again, not an error.
    const after = await alice.client.sendText(bob.client.userId, 'after the push');
    await bob.client.connect();
    await until(() => bob.messages.some((m) => m.id === after.id), 'bob syncs the message after the pushed one');
    expect(bob.messages.map((m) => m.id)).toEqual([after.id]);
    expect(bob.errors).toEqual([]);
  });

  it('coalesces: messages after a push wait for the interval in the one push the device is owed', async () => {
    const carol = await user('carol');
    const subscription = pushService.subscribe();
    await carol.client.registerPush({ kind: 'webpush', ...subscription });
    await alice.client.sendText(carol.client.userId, 'one');
    await pushService.waitFor(1, subscription.endpoint);

    const more = [];
    for (const text of ['two', 'three', 'four']) more.push(await alice.client.sendText(carol.client.userId, text));
    // Due at the end of the interval after the last push (a message that raced the recording of
    // that push is moved there by the worker instead of being sent).
    await until(async () => {
      const owed = await pending(carol.client.deviceId!);
      return owed?.count === 3 && Number(owed.due_at) > Date.now() + 500_000;
    }, 'three messages folded into one push, owed after the interval');
    expect(Number((await pending(carol.client.deviceId!))!.seq)).toBe(more[2]!.seq);
    expect(pushService.received(subscription.endpoint)).toHaveLength(1);
  });

  it('a device that is connected acknowledges the message and gets no push', async () => {
    const dave = await user('dave', true);
    const subscription = pushService.subscribe();
    await dave.client.registerPush({ kind: 'webpush', ...subscription });
    const sent = await alice.client.sendText(dave.client.userId, 'live');
    await until(() => dave.messages.some((m) => m.id === sent.id), 'dave receives it live');
    // A later push to an offline device: pushes are queued and sent in order, so dave's would have gone first.
    const later = await user('later');
    const laterSubscription = pushService.subscribe();
    await later.client.registerPush({ kind: 'webpush', ...laterSubscription });
    await alice.client.sendText(later.client.userId, 'offline');
    await pushService.waitFor(1, laterSubscription.endpoint);
    expect(pushService.received(subscription.endpoint)).toEqual([]);
    expect(await pending(dave.client.deviceId!)).toBeUndefined();
  });

  it('a muted conversation sends nothing, and its messages are not counted in other pushes', async () => {
    const erin = await user('erin');
    const frank = await user('frank', true);
    const subscription = pushService.subscribe();
    await erin.client.registerPush({ kind: 'webpush', ...subscription });
    const withAlice = (await alice.client.sendText(erin.client.userId, 'before the mute')).conversationId;
    await pushService.waitFor(1, subscription.endpoint);
    // A fresh interval: the owed push is dropped once erin has it (sync), and the next one is due at once.
    await erin.client.connect();
    await until(async () => (await pending(erin.client.deviceId!)) === undefined, 'nothing owed');
    await erin.client.close();
    await sql`UPDATE push_targets SET last_sent_at = 0 WHERE device_id = ${erin.client.deviceId!}`;

    await erin.client.mute(withAlice);
    await alice.client.sendText(erin.client.userId, 'muted');
    const fromFrank = await frank.client.sendText(erin.client.userId, 'not muted');
    const pushes = await pushService.waitFor(2, subscription.endpoint);
    const second = JSON.parse(pushes[1]!.payload) as PushPayload;
    expect(second).toMatchObject({ kind: 'message', count: 1, msg: { conversationId: fromFrank.conversationId } });

    // Unmuted, it pushes again.
    await erin.client.unmute(withAlice);
    await sql`UPDATE push_targets SET last_sent_at = 0 WHERE device_id = ${erin.client.deviceId!}`;
    const unmuted = await alice.client.sendText(erin.client.userId, 'unmuted');
    const third = JSON.parse((await pushService.waitFor(3, subscription.endpoint))[2]!.payload) as PushPayload;
    expect(third).toMatchObject({ kind: 'message', msg: { id: unmuted.id } });
  });

  it('a group message from someone the user blocks pushes nothing (the server stores it for every member)', async () => {
    const [bob, carol] = [await user('gbob', true), await user('gcarol')];
    const subscription = pushService.subscribe();
    await carol.client.registerPush({ kind: 'webpush', ...subscription });
    const { id: groupId } = await alice.client.createGroup({ name: 'blocked', members: [bob.client.userId, carol.client.userId] });
    // The group's creation is a system message naming carol: wait for its push, then for nothing owed.
    await pushService.waitFor(1, subscription.endpoint);
    await until(async () => (await pending(carol.client.deviceId!)) === undefined, 'nothing owed');
    await sql`UPDATE push_targets SET last_sent_at = 0 WHERE device_id = ${carol.client.deviceId!}`;

    await carol.client.block(alice.client.userId);
    await alice.client.sendGroupText(groupId, 'from someone carol blocks');
    await until(async () => (await pending(carol.client.deviceId!)) !== undefined, 'a push is owed (the fan-out does not know blocks)');
    await until(async () => (await pending(carol.client.deviceId!)) === undefined, 'the worker drops it');
    const fromBob = await bob.client.sendGroupText(groupId, 'from bob');
    const pushes = await pushService.waitFor(2, subscription.endpoint);
    expect(pushes).toHaveLength(2);
    expect(JSON.parse(pushes[1]!.payload) as PushPayload).toMatchObject({ kind: 'message', count: 1, msg: { id: fromBob.id, from: bob.client.userId } });
  });

  it('an endpoint the push service answers 410 for is removed', async () => {
    const gina = await user('gina');
    const subscription = pushService.subscribe();
    await gina.client.registerPush({ kind: 'webpush', ...subscription });
    pushService.respond(subscription.endpoint, 410);
    await alice.client.sendText(gina.client.userId, 'to a dead subscription');
    await until(async () => (await sql`SELECT 1 FROM push_targets WHERE device_id = ${gina.client.deviceId!}`).length === 0, 'the target is removed');
    expect(await pending(gina.client.deviceId!)).toBeUndefined();
  });

  it('the webhook relay gets a signed, content-free push; a replay of it is refused', async () => {
    const hana = await user('hana');
    await hana.client.registerPush({ kind: 'webhook', token: 'app-token-for-hana' });
    const before = webhook.received().length;
    await alice.client.sendText(hana.client.userId, 'webhook canary');
    const got = (await webhook.waitFor(before + 1)).at(-1)!;
    expect(got.push).toMatchObject({ v: 1, device: hana.client.deviceId!, token: 'app-token-for-hana', collapseKey: PUSH_COLLAPSE_KEY, count: 1 });
    expect(got.rawBody.toString('utf8')).not.toContain('webhook canary');
    expect(Object.keys(got.push).sort()).toEqual(['collapseKey', 'count', 'device', 'id', 'sentAt', 'token', 'v']);
    expect(await webhook.replay(got)).toBe(409);
  });

  it('refuses another device, a host not allowed, bad keys, and a conversation the caller is not in (404 as for a missing one)', async () => {
    const ivan = await rawAccount(server.url, 'ivan');
    const subscription = pushService.subscribe();
    const status = async (path: string, method: string, body: unknown) =>
      (await fetch(`${server.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ivan.token}` },
        body: JSON.stringify(body),
      })).status;
    const mine = `/v1/devices/${ivan.deviceId}/push`;
    expect(await status(`/v1/devices/${alice.client.deviceId!}/push`, 'PUT', { kind: 'webpush', ...subscription })).toBe(404);
    expect(await status(mine, 'PUT', { kind: 'webpush', ...subscription, endpoint: 'https://evil.example/push' })).toBe(400);
    expect(await status(mine, 'PUT', { kind: 'webpush', ...subscription, keys: { ...subscription.keys, p256dh: 'AAAA' } })).toBe(400);
    expect(await status(mine, 'PUT', { kind: 'carrier-pigeon' })).toBe(400);
    expect(await status(mine, 'PUT', { kind: 'webpush', ...subscription })).toBe(204);
    const theirs = (await alice.client.sendText(users[1]!.client.userId, 'not for ivan')).conversationId;
    expect(await status(`/v1/conversations/${theirs}/mute`, 'PUT', { until: null })).toBe(404);
    expect(await status(`/v1/conversations/${crypto.randomUUID()}/mute`, 'PUT', { until: null })).toBe(404);
    expect((await fetch(`${server.url}/v1/push/vapid`).then((r) => r.json())) as unknown).toMatchObject({ publicKey: expect.stringMatching(/^[A-Za-z0-9_-]{87}$/) });
  });
});

describe.skipIf(adminUrl === null)('a gateway killed while pushes are in flight', () => {
  let world: PushWorld;
  beforeAll(async () => {
    world = await pushWorld({ PUSH_DELAY_MS: '0', PUSH_LEASE_MS: '1500' });
  });
  afterAll(() => world?.dispose());

  it('repeats at most the pushes that were in flight, once each, with the same collapse key', async () => {
    const { sql, pushService, server } = world;
    const sender = await world.user('burst-sender', true);
    const devices: { user: Recorded; endpoint: string }[] = [];
    for (let i = 0; i < 6; i++) {
      const u = await world.user(`burst-${i}`);
      const subscription = pushService.subscribe();
      await u.client.registerPush({ kind: 'webpush', ...subscription });
      devices.push({ user: u, endpoint: subscription.endpoint });
    }
    // The push service takes the pushes but does not answer: they are in flight when the process dies.
    pushService.hold();
    await Promise.all(devices.map((d) => sender.client.sendText(d.user.client.userId, 'burst')));
    await until(async () => (await sql`SELECT count(*)::int AS n FROM push_pending`)[0]!.n === devices.length, 'every push is owed');
    await until(() => pushService.received().length >= 1, 'pushes are in flight');
    const inFlight = pushService.received().length;
    await server.kill();
    pushService.release();

    await server.start();
    // After the lease, the pushes the dead process held are sent again, once.
    await until(async () => (await sql`SELECT count(*)::int AS n FROM push_pending`)[0]!.n === 0, 'nothing is owed any more');
    const perDevice = devices.map((d) => pushService.received(d.endpoint).length);
    expect(perDevice.every((n) => n >= 1 && n <= 2)).toBe(true);
    expect(perDevice.reduce((a, b) => a + b, 0) - devices.length).toBeLessThanOrEqual(inFlight);
    expect(new Set(pushService.received().map((p) => p.headers.topic))).toEqual(new Set([PUSH_COLLAPSE_KEY]));

    // After the restart, nothing is repeated: one more message each is owed once (coalesced: none sent within the interval).
    await Promise.all(devices.map((d) => sender.client.sendText(d.user.client.userId, 'after')));
    await until(async () => (await sql`SELECT count(*)::int AS n FROM push_pending WHERE count = 1`)[0]!.n === devices.length, 'one owed push each');
    expect(devices.map((d) => pushService.received(d.endpoint).length)).toEqual(perDevice);
  });
});
