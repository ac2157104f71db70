// End-to-end on the real tier: a gateway killed after committing a message and before publishing it loses nothing.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '../platform/test-databases.js';
import { newUser, type Recorded } from './support/clients.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

const adminUrl = inject('postgresAdminUrl');
const redisUrl = inject('redisUrl');
const realTier = adminUrl !== null && redisUrl !== null;

describe.skipIf(!realTier)('a gateway killed between commit and publish (two gateways, PostgreSQL, Redis)', () => {
  let db: { url: string; drop(): Promise<void> };
  let scratch: string;
  let marker: string;
  let doomed: ServerProcess; // gateway A: dies once, right after its first direct commit
  let survivor: ServerProcess; // gateway B
  const users: Recorded[] = [];
  const prefix = `commit-crash-${randomBytes(4).toString('hex')}:`;

  beforeAll(async () => {
    db = await createTestDatabase(adminUrl!);
    scratch = await mkdtemp(join(tmpdir(), 'parley-commit-crash-'));
    marker = join(scratch, 'crashed');
    const env = (id: string) => ({
      SQL_DRIVER: 'postgres',
      DATABASE_URL: db.url,
      SQL_POOL_SIZE: '4',
      PRESENCE_DRIVER: 'redis',
      REDIS_URL: redisUrl!,
      REDIS_KEY_PREFIX: prefix,
      GATEWAY_ID: id,
      HEARTBEAT_INTERVAL_MS: '300',
      PRESENCE_TTL_MS: '2000',
    });
    doomed = await startServer({ env: { ...env('gwA'), PARLEY_FAULT_COMMIT_CRASH_MARKER: marker }, entry: 'test/support/fault-server.ts' });
    survivor = await startServer({ env: env('gwB') });
  });
  afterAll(async () => {
    for (const u of users) await u.client.close();
    for (const g of [doomed, survivor]) await g?.dispose();
    await db?.drop();
    const r = new Redis(redisUrl!);
    const keys = await r.keys(`${prefix}*`);
    if (keys.length > 0) await r.del(...keys);
    r.disconnect();
    await rm(scratch, { recursive: true, force: true });
  });

  it('the sender’s SDK resends to the other gateway; the recipient gets every message once, in seq order, and the sender every ack', async () => {
    const bob = await newUser([survivor.url], 'bob');
    const alice = await newUser([doomed.url, survivor.url], 'alice');
    users.push(bob, alice);
    expect(existsSync(marker)).toBe(false);

    // The first send is committed by gateway A, which dies before publishing it or acking it;
    // the four after it wait behind it in Alice's outbox (or ride in the same batch).
    const texts = Array.from({ length: 5 }, (_, i) => `message ${i}`);
    const sends = texts.map((t) => alice.client.sendText(bob.client.userId, t));
    await until(() => !doomed.running, () => `gateway A killed itself after the commit (logs: ${doomed.logs.slice(-5).join('\n')})`);
    expect(existsSync(marker)).toBe(true);
    const crashedAt = JSON.parse(await readFile(marker, 'utf8')) as { conversationId: string; seq: number };

    // Alice's SDK moves to gateway B and resends with the same ids: each is acked once.
    const acked = await Promise.all(sends);
    expect(acked.map((a) => a.seq)).toEqual([1, 2, 3, 4, 5]);
    // What A committed before dying is the first message, acked with the seq A gave it.
    expect(crashedAt).toEqual({ conversationId: acked[0]!.conversationId, seq: acked[0]!.seq });
    expect(alice.client.connected).toBe(true);

    // One more after the crash; it comes last, so anything delivered twice would show before it.
    const after = await alice.client.sendText(bob.client.userId, 'after the crash');
    expect(after.seq).toBe(6);
    await until(() => bob.messages.some((m) => m.id === after.id), () => `bob has everything (has ${bob.messages.map((m) => m.seq).join(',')})`);
    expect(bob.messages.map((m) => m.seq)).toEqual([...acked, after].map((a) => a.seq));
    expect(bob.messages.map((m) => m.id)).toEqual([...acked, after].map((a) => a.id));
    expect(bob.messages.map((m) => m.text)).toEqual([...texts, 'after the crash']);
    expect(bob.errors).toEqual([]);
    expect(alice.errors).toEqual([]);
  });
});

