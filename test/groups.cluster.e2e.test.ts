// End-to-end on the real tier: groups over PostgreSQL, Redis and Kafka, with gateways and fan-out workers as separate processes.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { SendResult } from '../client-sdk/index.js';
import { newUser, type Recorded } from './support/clients.js';
import { type PrivateService, privateKafka, privatePostgres, privateRedis } from './support/private-services.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

const realTier = inject('postgresAdminUrl') !== null && inject('redisUrl') !== null && inject('kafkaBrokers') !== null;
const TOPIC = 'parley.group-messages';

describe.skipIf(!realTier)('groups on the real tier: PostgreSQL, Redis, Kafka; two gateways and separate fan-out workers', () => {
  let pg: PrivateService;
  let redis: PrivateService;
  let kafka: PrivateService;
  let scratch: string;
  const gateways: ServerProcess[] = [];
  const workers: ServerProcess[] = [];
  const users: Recorded[] = [];
  const url = (i: number) => gateways[i]!.url;
  const env = () => ({
    SQL_DRIVER: 'postgres',
    DATABASE_URL: pg.url,
    SQL_POOL_SIZE: '4',
    PRESENCE_DRIVER: 'redis',
    REDIS_URL: redis.url,
    GROUP_LOG_DRIVER: 'kafka',
    KAFKA_BROKERS: kafka.url,
    KAFKA_PARTITIONS: '3',
    // Every group message goes through the broadcast path here (the one-process suite routes them).
    GROUP_BROADCAST_MIN_MEMBERS: '1',
    HEARTBEAT_INTERVAL_MS: '300',
    PRESENCE_TTL_MS: '2000',
  });
  const worker = async (extra: Record<string, string> = {}, entry?: string) => {
    const w = await startServer({ env: { ...env(), FANOUT_WORKER: 'true', GATEWAY_ID: `worker${workers.length + 1}`, ...extra }, entry });
    workers.push(w);
    return w;
  };
  const user = async (prefix: string, gateway: number) => {
    const u = await newUser([url(gateway), url(1 - gateway)], prefix);
    users.push(u);
    return u;
  };
  const texts = (u: Recorded, groupId: string) => u.messages.filter((m) => m.groupId === groupId).map((m) => m.text);

  beforeAll(async () => {
    [pg, redis, kafka] = await Promise.all([privatePostgres(), privateRedis(), privateKafka()]);
    scratch = await mkdtemp(join(tmpdir(), 'parley-groups-'));
    for (let i = 1; i <= 2; i++) {
      gateways.push(await startServer({ env: { ...env(), FANOUT_WORKER: 'false', GATEWAY_ID: `gw${i}` } }));
    }
  });
  afterAll(async () => {
    for (const u of users) await u.client.close();
    for (const p of [...gateways, ...workers]) await p.dispose();
    await Promise.all([kafka?.dispose(), redis?.dispose(), pg?.dispose()]);
    await rm(scratch, { recursive: true, force: true });
  });

  it('a fan-out worker killed after delivering and before committing: the next one delivers again and clients show each message once', async () => {
    const [alice, bob, carol] = [await user('alice', 0), await user('bob', 1), await user('carol', 0)];
    const { id } = await alice.client.createGroup({ name: 'crash', members: [bob.client.userId, carol.client.userId] });
    // No worker runs yet: the log holds 'created' and five messages, uncommitted.
    const sent: SendResult[] = [];
    for (let i = 0; i < 5; i++) sent.push(await alice.client.sendGroupText(id, `before crash ${i}`));
    const marker = join(scratch, 'crashed');
    const doomed = await worker({ PARLEY_FAULT_FANOUT_CRASH_MARKER: marker }, 'test/support/fault-server.ts');
    await until(() => !doomed.running, 'the worker killed itself after its first batch');
    expect(Number(await readFile(marker, 'utf8'))).toBeGreaterThan(0);
    // It delivered before dying (Bob is on the other gateway, Carol on the first)…
    await until(() => texts(bob, id).length === 5 && texts(carol, id).length === 5, 'delivered before the crash');
    // …and never committed: the consumer group's offsets are still unset.
    const admin = new Kafka({ clientId: 'test', brokers: [kafka.url], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const [offsets] = await admin.fetchOffsets({ groupId: 'parley-fanout', topics: [TOPIC] });
    await admin.disconnect();
    expect(offsets!.partitions.every((p) => Number(p.offset) < 0)).toBe(true);

    const survivor = await worker();
    // 'created' and the five messages again (this suite broadcasts every group message).
    await until(async () => (await metric(survivor, 'parley_group_fanout_broadcasts_total')) >= 6, 'the next worker handed the same records out again');
    for (let i = 5; i < 10; i++) sent.push(await alice.client.sendGroupText(id, `after crash ${i}`));
    await until(() => texts(bob, id).length === 10 && texts(carol, id).length === 10, 'everything after the crash');
    for (const u of [bob, carol]) {
      expect(texts(u, id)).toEqual(sent.map((_, i) => `${i < 5 ? 'before' : 'after'} crash ${i}`));
      expect(u.messages.filter((m) => m.groupId === id).map((m) => m.seq)).toEqual(sent.map((s) => s.seq));
      expect(u.groupEvents.filter((e) => e.groupId === id).map((e) => e.kind)).toEqual(['created']);
      expect(u.errors).toEqual([]);
    }
  });

  it('Kafka restarted during traffic: no acknowledged group message is lost, each arrives once, in order', async () => {
    const [alice, bob, carol] = [await user('alice', 0), await user('bob', 1), await user('carol', 1)];
    const { id } = await alice.client.createGroup({ name: 'kafka restart', members: [bob.client.userId, carol.client.userId] });
    const acked: SendResult[] = [];
    const stream = (async () => {
      for (let i = 0; i < 60; i++) {
        acked.push(await alice.client.sendGroupText(id, `k${i}`));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await until(() => acked.length >= 15, 'stream under way');
    await kafka.stop();
    const whileDown = acked.length;
    await new Promise((r) => setTimeout(r, 1500));
    await kafka.start();
    await stream;
    expect(whileDown).toBeLessThan(60);
    await until(() => texts(bob, id).length >= 60 && texts(carol, id).length >= 60, () => `members have all 60 (bob ${texts(bob, id).length}, carol ${texts(carol, id).length})`, 60_000);
    for (const u of [bob, carol]) {
      expect(texts(u, id)).toEqual(acked.map((_, i) => `k${i}`));
      expect(u.messages.filter((m) => m.groupId === id).map((m) => m.seq)).toEqual(acked.map((a) => a.seq));
    }
  });

  it('keeps the membership in Redis, invalidated by every change; removed members get nothing after, added ones what follows', async () => {
    const [alice, bob, dave] = [await user('alice', 0), await user('bob', 1), await user('dave', 1)];
    const { id } = await alice.client.createGroup({ name: 'cache', members: [bob.client.userId] });
    await alice.client.sendGroupText(id, 'one');
    const r = new Redis(redis.url);
    const key = `parley:cache:group:${id}:members`;
    let redisKeys: string[] = [];
    void r.keys('parley:cache:*').then((k) => (redisKeys = k));
    // Reading the member devices reads the membership afresh and caches it.
    const devices = await fetch(`${url(0)}/v1/groups/${id}/devices`, { headers: { authorization: `Bearer ${alice.client.accessToken}` } });
    expect(devices.status).toBe(200);
    try {
      await until(
        async () => (await r.get(key)) !== null,
        () => `membership cached in Redis; keys: ${JSON.stringify(redisKeys)}; logs: ${[...gateways, ...workers].flatMap((g) => g.logs.filter((l) => /cache|redis|presence/i.test(l))).slice(-5).join('\n')}`,
      );
      const before = JSON.parse((await r.get(key))!) as { version: number; members: unknown[] };
      expect(before.members).toHaveLength(2);
      await bob.client.sendGroupText(id, 'bob on gateway 2'); // gateway 2 now holds the membership too
      await alice.client.addMember(id, dave.client.userId); // changed through gateway 1
      const after = await r.get(key);
      expect(after === null || (JSON.parse(after) as { version: number }).version > before.version).toBe(true);
      // Dave, on gateway 2, can send at once although that gateway cached the group without him.
      await dave.client.sendGroupText(id, 'dave joins in');
      await until(() => texts(alice, id).includes('dave joins in'), 'alice gets dave’s first message');
      await alice.client.removeMember(id, bob.client.userId);
      await alice.client.sendGroupText(id, 'two');
      await until(() => texts(dave, id).length === 1, 'dave gets what follows his addition');
      await until(() => bob.groupEvents.some((e) => e.kind === 'member_removed'), 'bob learns he was removed');
      const cached = JSON.parse((await r.get(key)) ?? '{"members":[]}') as { members: { userId: string; leftSeq: number | null }[] };
      expect(cached.members.find((m) => m.userId === bob.client.userId)?.leftSeq).not.toBeNull();
    } finally {
      r.disconnect();
    }
    expect(texts(bob, id)).toEqual(['one', 'dave joins in']);
    expect(texts(dave, id)).toEqual(['two']);
  });
});

/** A counter from the process's /metrics. */
async function metric(p: ServerProcess, name: string): Promise<number> {
  const text = await (await fetch(`${p.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}
