// Retention through a real server on PostgreSQL: acknowledged messages leave the database, a device behind an age purge gets `expired` and carries on, disappearing messages vanish at expiry unfetched.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ServerFrame } from '../protocol/frames.js';
import { num } from '../platform/sql.js';
import { PostgresSql } from '../platform/sql.postgres.js';
import { createTestDatabase } from '../platform/test-databases.js';
import { type RawAccount, rawAccount, rawConnect, type RawSession } from './support/raw.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

const adminUrl = inject('postgresAdminUrl');
const DAY = 86_400_000;

describe.skipIf(!adminUrl)('retention and disappearing messages (the server’s own purge, on PostgreSQL)', () => {
  let db: { url: string; drop(): Promise<void> };
  let server: ServerProcess;
  let sql: PostgresSql;
  let alice: RawAccount;
  let aliceWs: RawSession;
  const sessions: RawSession[] = [];
  const connect = async (a: RawAccount) => {
    const s = await rawConnect(server.url, a.token);
    sessions.push(s);
    return s;
  };

  beforeAll(async () => {
    db = await createTestDatabase(adminUrl!);
    server = await startServer({
      env: {
        SQL_DRIVER: 'postgres',
        DATABASE_URL: db.url,
        MESSAGE_RETENTION: 'acked',
        MESSAGE_RETENTION_DAYS: '1',
        MESSAGE_SWEEP_INTERVAL_MS: '200',
        PUSH_DRIVER: 'none',
      },
    });
    sql = new PostgresSql(db.url, { max: 2 });
    alice = await rawAccount(server.url, 'alice');
    aliceWs = await connect(alice);
  });
  afterAll(async () => {
    for (const s of sessions) s.ws.terminate();
    await sql?.close();
    await server?.dispose();
    await db?.drop();
  });

  /** A ciphertext stand-in (base64) with a marker to look for in the database. */
  const ciphertext = () => Buffer.from(`ciphertext-${randomBytes(8).toString('hex')}`).toString('base64');
  /** Sends from alice to `to`'s one device; resolves to the `sent` seq. */
  const send = async (to: RawAccount, body: string, expiresAt?: number) => {
    const id = `m-${randomBytes(6).toString('hex')}`;
    const from = aliceWs.frames.length;
    aliceWs.sendJson({ type: 'send', id, to: to.userId, payloads: [{ device: to.deviceId, body }], ...(expiresAt ? { expiresAt } : {}) });
    await until(() => aliceWs.frames.slice(from).some((f) => (f.type === 'sent' && f.id === id) || (f.type === 'error' && f.ref === id)), `an answer to ${id}`);
    const answer = aliceWs.frames.slice(from).find((f) => (f.type === 'sent' || f.type === 'error') && (f.type === 'sent' ? f.id : f.ref) === id)!;
    if (answer.type !== 'sent') throw Object.assign(new Error(`refused: ${JSON.stringify(answer)}`), { frame: answer });
    return answer.seq;
  };
  const stored = async (body: string) => num((await sql.query(`SELECT count(*) AS n FROM messages WHERE payloads::text LIKE $1`, [`%${body}%`]))[0]!.n);
  /** What a sync wrote: messages, expired ranges and its end (not receipts or key notices). */
  const synced = (s: RawSession) => s.frames.filter((f) => f.type === 'msg' || f.type === 'expired' || f.type === 'caught_up');

  it('erases acknowledged messages from the database and keeps the unacknowledged ones', async () => {
    const bob = await rawAccount(server.url, 'bob');
    const bobWs = await connect(bob);
    const [first, second] = [ciphertext(), ciphertext()];
    const s1 = await send(bob, first);
    await send(bob, second);
    const msg = await bobWs.next('msg');
    bobWs.sendJson({ type: 'ack', conversationId: msg.conversationId, seq: s1 });
    await until(async () => (await stored(first)) === 0, 'the acknowledged message is erased');
    expect(await stored(second)).toBe(1); // swept in the same passes, and kept: bob has not acknowledged it
  });

  it('a device behind an age purge gets `expired` for what it missed, then later messages as usual', async () => {
    const carol = await rawAccount(server.url, 'carol');
    const [a, b] = [ciphertext(), ciphertext()];
    const seqs = [await send(carol, a), await send(carol, b)];
    // Two days old: past MESSAGE_RETENTION_DAYS=1 (the purge runs on the server's clock, so the rows are aged instead).
    await sql.query(`UPDATE messages SET sent_at = sent_at - $1 WHERE payloads::text LIKE $2 OR payloads::text LIKE $3`, [2 * DAY, `%${a}%`, `%${b}%`]);
    await until(async () => (await stored(a)) + (await stored(b)) === 0, 'the old messages are erased');

    const carolWs = await connect(carol);
    await carolWs.next('caught_up');
    const expired = synced(carolWs);
    const conversationId = (expired[0] as Extract<ServerFrame, { type: 'expired' }>).conversationId;
    expect(expired).toEqual([{ type: 'expired', conversationId, from: seqs[0], to: seqs[1] }, { type: 'caught_up' }]);
    carolWs.sendJson({ type: 'ack', conversationId, seq: seqs[1] });

    const later = ciphertext();
    const s3 = await send(carol, later);
    expect(await carolWs.next('msg')).toMatchObject({ seq: s3, body: later });
    carolWs.sendJson({ type: 'ack', conversationId, seq: s3 });
    await until(async () => (await stored(later)) === 0, 'the acknowledged later message is erased');
    // Back again: nothing is reported twice.
    carolWs.ws.close();
    const again = await connect(carol);
    await again.next('caught_up');
    expect(synced(again)).toEqual([{ type: 'caught_up' }]);
  });

  it('erases a disappearing message at its expiry though its recipient never fetched it, and refuses an expiry that is past or too far', async () => {
    const dave = await rawAccount(server.url, 'dave');
    const body = ciphertext();
    const expiresAt = Date.now() + 1_500;
    const seq = await send(dave, body, expiresAt);
    const [row] = await sql.query(`SELECT expires_at FROM messages WHERE payloads::text LIKE $1`, [`%${body}%`]);
    expect(num(row!.expires_at)).toBe(expiresAt);
    await until(async () => (await stored(body)) === 0, 'the disappearing message is erased');
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);

    const daveWs = await connect(dave);
    await daveWs.next('caught_up');
    expect(synced(daveWs)[0]).toMatchObject({ type: 'expired', from: seq, to: seq });

    for (const bad of [Date.now() - 1, Date.now() + 40 * DAY]) {
      const refused = await send(dave, ciphertext(), bad).catch((err: { frame?: ServerFrame }) => err.frame);
      expect(refused).toMatchObject({ type: 'error', code: 'invalid' });
    }
  });
});
