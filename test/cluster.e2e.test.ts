// End-to-end on the real tier: several gateway processes sharing PostgreSQL and Redis; nothing acked is lost when parts die.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { sodiumReady as ready } from '../protocol/bytes.js';
import type { SendResult } from '../client-sdk/index.js';
import { newUser, type Recorded } from './support/clients.js';
import { type PrivateService, privatePostgres, privateRedis } from './support/private-services.js';
import { loginDevice, rawConnect } from './support/raw.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

const realTier = inject('postgresAdminUrl') !== null && inject('redisUrl') !== null;

describe.skipIf(!realTier)('cluster: three gateways on PostgreSQL and Redis', () => {
  let pg: PrivateService;
  let redis: PrivateService;
  const gateways: ServerProcess[] = [];
  const users: Recorded[] = [];
  const url = (i: number) => gateways[i]!.url;

  const user = async (prefix: string, urls: string[]) => {
    const u = await newUser(urls, prefix);
    users.push(u);
    return u;
  };

  /** Sends `n` messages one after another, as a steady stream; returns the acks as they come. */
  const stream = (from: Recorded, to: Recorded, n: number, prefix: string) => {
    const acked: SendResult[] = [];
    const done = (async () => {
      for (let i = 0; i < n; i++) {
        acked.push(
          await from.client.sendText(to.client.userId, `${prefix} ${i}`).catch(async (e: Error) => {
            await new Promise((r) => setTimeout(r, 500));
            const failed = gateways.flatMap((g) => g.logs.filter((l) => l.includes('failed"') && !l.includes('"code":"unavailable"'))).slice(-5);
            throw new Error(`send ${i} failed: ${e.message}\n${failed.join('\n')}`);
          }),
        );
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    return { acked, done };
  };

  beforeAll(async () => {
    [pg, redis] = await Promise.all([privatePostgres(), privateRedis()]);
    for (let i = 1; i <= 3; i++) {
      gateways.push(
        await startServer({
          env: {
            SQL_DRIVER: 'postgres',
            DATABASE_URL: pg.url,
            SQL_POOL_SIZE: '4',
            PRESENCE_DRIVER: 'redis',
            REDIS_URL: redis.url,
            GATEWAY_ID: `gw${i}`,
            HEARTBEAT_INTERVAL_MS: '300',
            PRESENCE_TTL_MS: '2000',
          },
        }),
      );
    }
  });
  afterAll(async () => {
    for (const u of users) await u.client.close();
    for (const g of gateways) await g.dispose();
    await redis?.dispose();
    await pg?.dispose();
  });

  it('Alice on gateway 1 and Bob on gateway 2: messages, receipts, typing and presence flow both ways', async () => {
    const alice = await user('alice', [url(0)]);
    const bob = await user('bob', [url(1)]);
    const typing: string[] = [];
    const presence: boolean[] = [];
    alice.client.on('typing', (t) => typing.push(`alice<-${t.from === bob.client.userId}`));
    bob.client.on('typing', (t) => typing.push(`bob<-${t.from === alice.client.userId}`));
    alice.client.on('presence', (p) => presence.push(p.online));

    const s1 = await alice.client.sendText(bob.client.userId, 'across gateways');
    await until(() => bob.messages.length === 1, 'bob gets it on gateway 2');
    const s2 = await bob.client.sendText(alice.client.userId, 'and back');
    await until(() => alice.messages.length === 1, 'alice gets the reply on gateway 1');
    expect(s2.seq).toBe(s1.seq + 1);

    await bob.client.markRead(s1.conversationId, s1.seq);
    await alice.client.markRead(s2.conversationId, s2.seq);
    await until(() => alice.receipts.some((r) => r.kind === 'read' && r.seq === s1.seq), 'read receipt to alice');
    await until(() => bob.receipts.some((r) => r.kind === 'read' && r.seq === s2.seq), 'read receipt to bob');

    alice.client.setTyping(s1.conversationId, true);
    bob.client.setTyping(s1.conversationId, true);
    await until(() => typing.length === 2, 'typing both ways');
    expect(typing.sort()).toEqual(['alice<-true', 'bob<-true']);

    alice.client.subscribePresence([bob.client.userId]);
    await until(() => presence.length === 1, 'bob is online');
    await bob.client.close();
    await until(() => presence.length === 2, 'bob went offline');
    expect(presence).toEqual([true, false]);
    await bob.client.connect();
  });

  it('SIGKILL of the gateway holding Bob mid-stream: he reconnects elsewhere and ends with every acked message once, in order', async () => {
    const alice = await user('alice', [url(0)]);
    const bob = await user('bob', [url(1), url(2)]);
    const { acked, done } = stream(alice, bob, 120, 'steady');
    try {
      await until(() => acked.length >= 40, 'stream under way');
      await gateways[1]!.kill();
      await done;
      await until(() => bob.messages.length >= 120, () => `bob has the whole stream (has ${bob.messages.length}, connected: ${bob.client.connected})`);
      expect(bob.messages.map((m) => m.seq)).toEqual(acked.map((a) => a.seq));
      expect(bob.messages.map((m) => m.text)).toEqual(acked.map((_, i) => `steady ${i}`));
    } finally {
      if (!gateways[1]!.running) await gateways[1]!.start(); // back for the next tests
    }
  });

  it('Redis restarted during traffic: no acked message is lost and routing recovers by itself', async () => {
    const alice = await user('alice', [url(0)]);
    const bob = await user('bob', [url(1)]);
    const { acked, done } = stream(alice, bob, 120, 'redis');
    await until(() => acked.length >= 30, 'stream under way');
    await redis.stop();
    await until(() => acked.length >= 60, 'sends go on while Redis is down (they only need the store)');
    await redis.start();
    await done;
    await until(() => bob.messages.length >= 120, 'bob has everything after Redis came back');
    expect(bob.messages.map((m) => m.seq)).toEqual(acked.map((a) => a.seq));
    // Routing works again for live delivery without reconnecting anyone.
    const after = await alice.client.sendText(bob.client.userId, 'after redis');
    await until(() => bob.messages.at(-1)?.seq === after.seq, 'live delivery after recovery');
  });

  it('PostgreSQL restarted during traffic: sends fail with a temporary error, the SDK retries, every acked message arrives', async () => {
    await ready();
    const alice = await user('alice', [url(0)]);
    const bob = await user('bob', [url(1)]);
    // A raw device of Alice's to see the error frame the SDK handles silently.
    const res = await fetch(`${url(0)}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: alice.username, password: alice.password, device: await loginDevice(url(0), alice.username) }),
    });
    const raw = await rawConnect(url(0), ((await res.json()) as { token: string }).token);

    const { acked, done } = stream(alice, bob, 100, 'pg');
    await until(() => acked.length >= 30, 'stream under way');
    await pg.stop();
    raw.sendJson({
      type: 'send',
      id: 'while-down',
      to: bob.client.userId,
      payloads: [
        { device: bob.client.deviceId!, body: 'AAAA' },
        { device: alice.client.deviceId!, body: 'AAAA' },
      ],
    });
    const err = await raw.next('error').catch((e: Error) => {
      throw new Error(`${e.message}; gateway 1 running: ${gateways[0]!.running}\n${gateways[0]!.logs.slice(-15).join('\n')}`);
    });
    expect(err).toMatchObject({ code: 'unavailable', temporary: true, ref: 'while-down' });
    const stalled = acked.length;
    await pg.start();
    await done;
    expect(acked.length).toBe(100);
    expect(stalled).toBeLessThan(100);
    await until(() => bob.messages.length >= 100, 'bob has every acked message');
    expect(new Set(bob.messages.map((m) => m.text)).size).toBe(100);
    expect(bob.messages.map((m) => m.seq)).toEqual([...acked.map((a) => a.seq)].sort((a, b) => a - b));
    raw.ws.terminate();
  });

  it('connect races send: a device that comes online while its routes are cached offline elsewhere misses no live message', async () => {
    const alice = await user('alice', [url(0)]);
    const bob = await newUser([url(1)], 'bob', false);
    users.push(bob);
    let connects = 0;
    let caughtUp = 0;
    bob.client.on('connected', () => connects++);
    bob.client.on('caught_up', () => caughtUp++);
    const acked: SendResult[] = [];
    for (let i = 0; i < 8; i++) {
      // Bob is offline: gateway 1 delivers to nobody and caches that (gateway 2 does not tell it when Bob comes back).
      acked.push(await alice.client.sendText(bob.client.userId, `offline ${i}`));
      const [, racing] = await Promise.all([bob.client.connect(), alice.client.sendText(bob.client.userId, `racing ${i}`)]);
      acked.push(racing);
      await until(() => caughtUp === i + 1, 'bob synced');
      // Sent after Bob's sync read the store: only a live delivery can bring it, and nothing else will trigger one.
      const after = await alice.client.sendText(bob.client.userId, `after ${i}`);
      acked.push(after);
      await until(() => bob.messages.some((m) => m.seq === after.seq), () => `live delivery after connect ${i} (bob has ${bob.messages.length} of ${acked.length})`);
      expect(connects).toBe(i + 1); // no reconnect (and so no sync) brought it
      await bob.client.close();
    }
    expect(bob.messages.map((m) => m.seq)).toEqual(acked.map((a) => a.seq));
    expect(bob.messages.map((m) => m.text)).toEqual(acked.map((_, k) => `${['offline', 'racing', 'after'][k % 3]} ${Math.floor(k / 3)}`));
  });
});
