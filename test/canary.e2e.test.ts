// Privacy sweep on the real tier: canary texts sent 1:1 and to a group appear nowhere the server keeps or says anything, but in a report that discloses them, nor in the files of a device's SDK stores.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createClient, type Message, type MessageEdit, type MessageStore, type ParleyClient } from '../client-sdk/index.js';
import { diskKeyStore } from '../client-sdk/e2e.store.disk.js';
import { openPgliteMessageStore } from '../client-sdk/history.pglite.js';
import { createS3Client } from '../platform/blob-store.s3.js';
import { createTestDatabase } from '../platform/test-databases.js';
import { newUser, type Recorded } from './support/clients.js';
import { type PushService, startPushService, startWebhookReceiver, type WebhookReceiver } from './support/push-service.js';
import { forms, readAll } from './support/scan.js';
import { type ServerProcess, startServer } from './support/server.js';
import { uniqueName, until } from './support/wait.js';

const run = promisify(execFile);
const adminUrl = inject('postgresAdminUrl');
const redisUrl = inject('redisUrl');
const brokers = inject('kafkaBrokers');
const s3 = inject('s3');
const realTier = adminUrl !== null && redisUrl !== null && brokers !== null && s3 !== null;

function findLeaks(haystack: string, canaries: string[]): string[] {
  return canaries.flatMap((c) => forms(c).map((f) => f.toString('latin1')).filter((f) => haystack.includes(f)).map((f) => `${c} as ${f}`));
}

describe.skipIf(!realTier)('canary sweep: no plaintext in PostgreSQL, Redis, Kafka, the blob store (S3), pushes, the logs or the SDK’s stores on a device; nothing of expired messages', () => {
  let db: { url: string; drop(): Promise<void> };
  let pushService: PushService;
  let webhook: WebhookReceiver;
  const webhookSecret = randomBytes(32).toString('hex');
  const gateways: ServerProcess[] = [];
  const users: Recorded[] = [];
  /** A device with the SDK's Node stores on disk (its message store sealed under a history key), and their directory. */
  let device: { client: ParleyClient; store: MessageStore; closed: boolean } | null = null;
  let storeDir: string | null = null;
  const prefix = `canary-${randomBytes(4).toString('hex')}:`;
  const topic = `canary-${randomBytes(4).toString('hex')}`;
  const canary = () => `canary${randomBytes(12).toString('hex')}`;
  const bucket = `canary-${randomBytes(6).toString('hex')}`;
  const bucketClient = s3 ? createS3Client({ ...s3, region: 'us-east-1' }) : null;
  const objects = async () =>
    ((await bucketClient!.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key!).filter((k) => !k.endsWith('/'));

  beforeAll(async () => {
    db = await createTestDatabase(adminUrl!);
    await bucketClient!.send(new CreateBucketCommand({ Bucket: bucket }));
    pushService = await startPushService();
    webhook = await startWebhookReceiver(webhookSecret);
    for (let i = 1; i <= 2; i++) {
      gateways.push(
        await startServer({
          env: {
            LOG_LEVEL: 'debug', // the most the server ever says
            SQL_DRIVER: 'postgres',
            DATABASE_URL: db.url,
            PRESENCE_DRIVER: 'redis',
            REDIS_URL: redisUrl!,
            REDIS_KEY_PREFIX: prefix,
            GROUP_LOG_DRIVER: 'kafka',
            KAFKA_BROKERS: brokers!,
            KAFKA_TOPIC: topic,
            GATEWAY_ID: `canary-gw${i}`,
            BLOB_DRIVER: 's3',
            S3_ENDPOINT: s3!.endpoint,
            S3_BUCKET: bucket,
            S3_ACCESS_KEY_ID: s3!.accessKeyId,
            S3_SECRET_ACCESS_KEY: s3!.secretAccessKey,
            PUSH_ENDPOINT_HOSTS: '127.0.0.1',
            PUSH_ALLOW_HTTP: 'true',
            PUSH_WEBHOOK_URL: webhook.url,
            PUSH_WEBHOOK_SECRET: webhookSecret,
            PUSH_DELAY_MS: '0',
            PUSH_COALESCE_MS: '0',
            PUSH_POLL_MS: '50',
            MESSAGE_SWEEP_INTERVAL_MS: '200',
          },
        }),
      );
    }
  });
  afterAll(async () => {
    for (const u of users) await u.client.close();
    if (device && !device.closed) {
      await device.client.close();
      await device.store.close();
    }
    if (storeDir) await rm(storeDir, { recursive: true, force: true });
    for (const g of gateways) await g.dispose();
    await pushService?.close();
    await webhook?.close();
    await db?.drop();
    const admin = new Kafka({ clientId: 'canary', brokers: [brokers!], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
    const r = new Redis(redisUrl!);
    const keys = await r.keys(`${prefix}*`);
    if (keys.length > 0) await r.del(...keys);
    r.disconnect();
    if (bucketClient) {
      for (const key of await objects()) await bucketClient.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      await bucketClient.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
      bucketClient.destroy();
    }
  });

  it('sends canaries 1:1, to a group, as files and as group names, then finds none of them in any dump, in any form, but the reported ones in the reports table', async () => {
    storeDir = await mkdtemp(join(tmpdir(), 'canary-sdk-'));
    const opening = openPgliteMessageStore(join(storeDir, 'history')); // (seconds: it opens beside the sign-ups)
    const [alice, bob, carol] = [await newUser(gateways[0]!.url, 'alice'), await newUser(gateways[1]!.url, 'bob'), await newUser(gateways[1]!.url, 'carol')];
    users.push(alice, bob, carol);
    const local = await sendToStoredDevice(await opening, alice);
    const direct = [canary(), canary(), canary()];
    const group = [canary(), canary(), canary()];
    for (const c of direct) await alice.client.sendText(bob.client.userId, `the secret is ${c}!`);
    // Group names are canaries too: the one it is created with, and a rename.
    const [groupName, groupRename] = [canary(), canary()];
    const { id } = await alice.client.createGroup({ name: groupName, members: [bob.client.userId, carol.client.userId] });
    for (const c of group) await bob.client.sendGroupText(id, c);
    // Files: their content and their names are canaries too, one 1:1 and one to the group.
    const [fileText, fileName, groupFileText, groupFileName] = [canary(), canary(), canary(), canary()];
    await alice.client.sendFile(bob.client.userId, Buffer.from(`file body ${fileText} end`), { name: `${fileName}.txt`, type: 'text/plain' });
    await carol.client.sendFile(id, Buffer.from(groupFileText.repeat(3000)), { name: groupFileName, type: 'text/plain' });
    await until(() => bob.messages.some((m) => m.file?.name === `${fileName}.txt`) && alice.messages.some((m) => m.file?.name === groupFileName), 'the files arrive');
    const got = await bob.messages.find((m) => m.file?.name === `${fileName}.txt`)!.file!.download();
    expect(Buffer.from(got).toString()).toContain(fileText);
    // They really went through: the recipients read every one.
    await until(() => bob.messages.filter((m) => direct.some((c) => m.text.includes(c))).length === 3, 'bob reads the direct canaries');
    await until(() => carol.messages.filter((m) => group.includes(m.text)).length === 3, 'carol reads the group canaries');
    await until(() => alice.messages.filter((m) => group.includes(m.text)).length === 3, 'alice reads the group canaries');
    await alice.client.renameGroup(id, groupRename);
    await until(() => carol.groupEvents.some((e) => e.kind === 'renamed' && e.name === groupRename), 'carol reads the new name');
    expect((await bob.client.getGroup(id)).name).toBe(groupRename);
    expect(carol.groupEvents.find((e) => e.kind === 'created')?.name).toBe(groupName);

    // Pushes: an offline device with a Web Push subscription and one with the app's webhook relay.
    const [dave, erin] = [await newUser(gateways[0]!.url, 'dave', false), await newUser(gateways[1]!.url, 'erin', false)];
    users.push(dave, erin);
    await dave.client.registerPush({ kind: 'webpush', ...pushService.subscribe() });
    await erin.client.registerPush({ kind: 'webhook', token: `token-${randomBytes(8).toString('hex')}` });
    const pushed = [canary(), canary()];
    await alice.client.sendText(dave.client.userId, `push ${pushed[0]}`);
    await alice.client.sendText(erin.client.userId, `push ${pushed[1]}`);
    await pushService.waitFor(1);
    await webhook.waitFor(1);
    expect((await dave.client.handlePush(pushService.received()[0]!.payload))?.text).toBe(`push ${pushed[0]}`); // it carried the message

    // Disappearing messages, 1:1 and in the group, to an offline member: their ciphertext as stored, then gone.
    const frank = await newUser(gateways[0]!.url, 'frank', false);
    users.push(frank);
    await frank.client.registerPush({ kind: 'webpush', ...pushService.subscribe() });
    await alice.client.addMember(id, frank.client.userId);
    await alice.client.setDisappearing(frank.client.userId, 3);
    await alice.client.setDisappearing(id, 3);
    const vanishing = [canary(), canary()];
    const sent = [await alice.client.sendText(frank.client.userId, vanishing[0]!), await alice.client.sendGroupText(id, vanishing[1]!)];
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const stored = await sql`SELECT conversation_id, seq, expires_at, payloads::text AS payloads, body FROM messages
                              WHERE (conversation_id, seq) IN ((${sent[0]!.conversationId}::uuid, ${sent[0]!.seq}), (${sent[1]!.conversationId}::uuid, ${sent[1]!.seq}))`;
    expect(stored.map((r) => r.expires_at === null)).toEqual([false, false]);
    const expiredCiphertext = stored.flatMap((r) => [...Object.values(JSON.parse(r.payloads as string) as Record<string, string>), (r.body as string | null) ?? '']).filter((c) => c.length > 40);
    expect(expiredCiphertext.length).toBeGreaterThanOrEqual(2);
    await until(async () => (await sql`SELECT count(*)::int AS n FROM messages WHERE expires_at IS NOT NULL`)[0]!.n === 0, 'the disappearing messages are erased at expiry');
    await sql.end();

    // A report: bob discloses one message he received (a canary) and writes a reason (another):
    // the reports table is the one place they may be, because the reporter put them there.
    const quoted = bob.messages.find((m) => m.text.includes(direct[0]!))!;
    const reason = canary();
    const report = await fetch(`${gateways[1]!.url}/v1/reports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bob.client.accessToken!}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        userId: alice.client.userId,
        conversationId: quoted.conversationId,
        reason: `spam: ${reason}`,
        messages: [{ id: quoted.id, seq: quoted.seq, text: quoted.text, sentAt: quoted.sentAt, from: quoted.from }],
      }),
    });
    expect(report.status).toBe(201);
    const reported = [direct[0]!, reason];
    const canaries = [...direct, ...group, fileText, fileName, groupFileText, groupFileName, groupName, groupRename, ...pushed, ...vanishing, reason, ...local.canaries];

    // PostgreSQL: every row of every table.
    const { stdout: sqlDump } = await run('pg_dump', ['--data-only', '--no-owner', db.url], { maxBuffer: 256 << 20 });
    // Redis: every value under this deployment's prefix, read by type.
    const r = new Redis(redisUrl!);
    const parts: string[] = [];
    for (const key of await r.keys(`${prefix}*`)) {
      const type = await r.type(key);
      const value =
        type === 'string' ? await r.get(key) : type === 'set' ? await r.smembers(key) : type === 'hash' ? await r.hgetall(key) : type === 'list' ? await r.lrange(key, 0, -1) : type === 'zset' ? await r.zrange(key, 0, -1) : null;
      parts.push(key, JSON.stringify(value));
    }
    r.disconnect();
    const redisDump = parts.join('\n');
    // Kafka: every record of the group log topic, keys and values.
    const kafka = new Kafka({ clientId: 'canary-reader', brokers: [brokers!], logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({ groupId: `${topic}-reader`, maxWaitTimeInMs: 100 });
    const records: string[] = [];
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => void records.push(`${message.key?.toString('utf8')} ${message.value?.toString('utf8')}`) });
    await until(() => records.length >= 1 + group.length + 3, 'the group log records (created + messages + added + timer + vanishing)');
    await consumer.disconnect();
    const kafkaDump = records.join('\n');
    // The blob store: every object in the bucket, as bytes (read as latin1 so every byte maps to a character).
    const blobParts: string[] = [];
    for (const key of await objects()) {
      const body = await (await bucketClient!.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray();
      blobParts.push(key, Buffer.from(body).toString('latin1'));
    }
    const blobDump = blobParts.join('\n');
    // Logs: everything both gateways printed.
    const logDump = gateways.flatMap((g) => g.logs).join('\n');
    // Pushes: every payload as the push service decrypted it, every webhook body as it arrived.
    const pushDump = [...pushService.received().map((p) => p.payload), ...webhook.received().map((w) => w.rawBody.toString('utf8'))].join('\n');

    // The dumps are real: each holds something we know it must (so an empty dump cannot pass).
    expect(sqlDump).toContain(alice.username);
    expect(redisDump).toContain(bob.client.userId);
    expect(kafkaDump).toContain(id);
    expect(logDump).toContain('canary-gw1');
    expect(blobParts.length).toBe(4); // two files: key and ciphertext each
    expect(blobDump.length).toBeGreaterThan(90_000);
    expect(sqlDump.length + redisDump.length + kafkaDump.length + logDump.length).toBeGreaterThan(10_000);

    // PostgreSQL: the reported plaintext is in the reports table and nowhere else; nothing else is anywhere.
    const reportRows = /COPY public\.reports [^\n]*\n([\s\S]*?)\n\\\.\n/.exec(sqlDump)?.[1] ?? '';
    expect(reported.map((c) => findLeaks(reportRows, [c]).length > 0)).toEqual([true, true]);
    expect(findLeaks(reportRows, canaries.filter((c) => !reported.includes(c)))).toEqual([]);
    expect(findLeaks(sqlDump.replace(reportRows, ''), canaries)).toEqual([]);
    expect(findLeaks(redisDump, canaries)).toEqual([]);
    expect(findLeaks(kafkaDump, canaries)).toEqual([]);
    expect(findLeaks(logDump, canaries)).toEqual([]);
    expect(findLeaks(blobDump, canaries)).toEqual([]);
    expect(pushDump).toContain(erin.client.deviceId!);
    expect(findLeaks(pushDump, canaries)).toEqual([]);
    // Expired messages: their ciphertext is nowhere, but in the group log (Kafka keeps records for
    // KAFKA_RETENTION_HOURS, as the fan-out needs them) — pushes for them carry no ciphertext.
    const remains = (dump: string) => expiredCiphertext.filter((c) => dump.includes(c)).length;
    expect([remains(sqlDump), remains(redisDump), remains(logDump), remains(pushDump), remains(blobDump)]).toEqual([0, 0, 0, 0, 0]);
    expect(remains(kafkaDump)).toBeGreaterThan(0); // the group message (body, sealed keys) until the topic’s retention

    // The SDK's stores on the device, closed: every file of their directory, as bytes. The scan
    // is real: the files hold the message's id (plain, for indexing) and the device's user id.
    device!.closed = true;
    await device!.client.close();
    await device!.store.close();
    const files = (await readAll(storeDir)).map((b) => b.toString('latin1'));
    expect([files.some((f) => f.includes(local.messageId)), files.some((f) => f.includes(local.userId))]).toEqual([true, true]);
    expect(files.flatMap((f) => findLeaks(f, local.canaries))).toEqual([]);
  });

  /**
   * A new user on a device with the SDK's Node stores (the PGlite message store sealed under a
   * history key, the disk key store) gets canaries from `from`: two messages and an edit; they
   * are in its history before this returns.
   */
  async function sendToStoredDevice(store: MessageStore, from: Recorded): Promise<{ canaries: string[]; messageId: string; userId: string }> {
    const username = uniqueName('grace');
    const client = createClient({ url: gateways[0]!.url, username, password: `pw-${username}`, keyStore: diskKeyStore(join(storeDir!, 'keys.json')), messageStore: store, historyKey: randomBytes(32) });
    device = { client, store, closed: false };
    const [got, edits]: [Message[], MessageEdit[]] = [[], []];
    client.on('message', (m) => got.push(m));
    client.on('edit', (e) => edits.push(e));
    await client.register();
    await client.connect();
    const canaries = [canary(), canary(), canary()];
    const first = await from.client.sendText(client.userId, `stored ${canaries[0]}`);
    await from.client.sendText(client.userId, canaries[1]!);
    await from.client.edit(client.userId, first.id, `edited ${canaries[2]}`);
    await until(() => got.length === 2 && edits.length === 1, 'the device gets the messages and the edit');
    expect((await client.history(first.conversationId)).map((m) => m.text)).toEqual([canaries[1], `edited ${canaries[2]}`]);
    return { canaries, messageId: first.id, userId: client.userId };
  }

  it('would find a canary in each form it checks (the detector works)', () => {
    const c = canary();
    const inside = (s: string) => `xx${s}yy`;
    expect(findLeaks(inside(c), [c])).not.toEqual([]);
    expect(findLeaks(inside(Buffer.from(`prefix ${c} suffix`).toString('hex')), [c])).not.toEqual([]);
    for (let pad = 0; pad < 3; pad++) {
      const b64 = Buffer.from(`${'p'.repeat(pad)}${c} and more`).toString('base64');
      expect(findLeaks(inside(b64), [c])).not.toEqual([]);
      expect(findLeaks(inside(b64.replace(/\+/g, '-').replace(/\//g, '_')), [c])).not.toEqual([]);
    }
  });
});
