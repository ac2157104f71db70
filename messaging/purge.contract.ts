// MessagePurge behaviour, run against each SQL driver: what each policy erases, that the ciphertext is gone from the table, claims, bounds and metrics.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../platform/clock.js';
import { createLogger } from '../platform/log.js';
import { createMetrics, type Metrics } from '../platform/metrics.js';
import { migrate } from '../platform/migrations.js';
import { num, type Sql } from '../platform/sql.js';
import { appendSystemTx } from './append.js';
import { MessageStore } from './message-store.js';
import { MessagePurge, type MessagePurgeOptions } from './purge.js';

const DAY = 86_400_000;

export function purgeSuite(name: string, open: () => Promise<{ sql: Sql; dispose(): Promise<void> }>): void {
  describe(`MessagePurge on ${name}`, () => {
    let sql: Sql;
    let dispose: () => Promise<void>;
    let store: MessageStore;
    let metrics: Metrics;
    const clock = new ManualClock();
    const log = createLogger('silent');
    const [alice, bob, carol] = [randomUUID(), randomUUID(), randomUUID()];
    const [aliceDev, bobDev, bobDev2, carolDev] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    let conv: string;

    const addDevice = (id: string, user: string) =>
      sql.query(`INSERT INTO devices (id, user_id, name, public_key, created_at) VALUES ($1, $2, 'd', 'k', $3)`, [id, user, clock.now()]);

    beforeAll(async () => {
      ({ sql, dispose } = await open());
      await migrate(sql);
      for (const [u, n] of [[alice, 'alice'], [bob, 'bob'], [carol, 'carol']] as const) {
        await sql.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, 'x', 0)`, [u, n]);
      }
      for (const [d, u] of [[aliceDev, alice], [bobDev, bob], [bobDev2, bob], [carolDev, carol]] as const) await addDevice(d, u);
      store = new MessageStore(sql, clock);
      conv = await store.ensureDirect(alice, bob);
    });
    beforeEach(async () => {
      // Each test starts from no messages and no cursors (the purge acts on the whole table).
      await store.flush();
      await sql.query(`DELETE FROM messages`);
      await sql.query(`DELETE FROM device_cursors`);
      metrics = createMetrics();
    });
    afterAll(async () => {
      await store?.flush();
      await sql?.close();
      await dispose?.();
    });

    const purge = (options: Partial<MessagePurgeOptions> = {}) =>
      new MessagePurge(sql, clock, log, metrics, { policy: 'acked', retentionMs: 30 * DAY, intervalMs: 60_000, batch: 1_000, ...options });
    /** Direct messages from alice to bob's two devices; the ciphertext names the message and device. */
    const sendDirect = async (n: number, extra: { expiresAt?: number; conversationId?: string } = {}) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const id = randomUUID().slice(0, 8);
        const r = await store.append({
          conversationId: extra.conversationId ?? conv,
          senderId: alice,
          senderDeviceId: aliceDev,
          clientId: `m-${id}`,
          payloads: { [bobDev]: `secret-${id}-one`, [bobDev2]: `secret-${id}-two` },
          ...(extra.expiresAt === undefined ? {} : { expiresAt: extra.expiresAt }),
        });
        out.push(r.seq);
      }
      return out;
    };
    const ack = (deviceId: string, seq: number, conversationId = conv) => store.advanceCursor({ deviceId, conversationId, delivered: seq, read: 0 });
    const stored = async (conversationId = conv) =>
      (await sql.query(`SELECT seq, payloads FROM messages WHERE conversation_id = $1 ORDER BY seq`, [conversationId])).map((r) => ({
        seq: num(r.seq),
        devices: Object.keys(r.payloads as object).sort(),
      }));
    /** Rows whose stored text still holds this ciphertext (or any, for 'secret-'): in the body or in any payload. */
    const holding = async (text: string) =>
      num((await sql.query(`SELECT count(*) AS n FROM messages WHERE payloads::text LIKE $1 OR body LIKE $1`, [`%${text}%`]))[0]!.n);
    const counted = async (counter: 'messagesPurged' | 'messageBytesPurged', reason: string) =>
      (await metrics[counter].get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

    it('acked: erases the messages every device acknowledged, byte for byte, and keeps the others', async () => {
      const [s1, s2, s3] = await sendDirect(3);
      const ciphertext = (await sql.query(`SELECT payloads FROM messages WHERE seq = $1 AND conversation_id = $2`, [s1, conv]))[0]!.payloads as Record<string, string>;
      await Promise.all([ack(bobDev, s2!), ack(bobDev2, s2!)]);
      expect(await purge().runOnce()).toEqual({ acked: 2, age: 0, expired: 0 });
      expect((await stored()).map((r) => r.seq)).toEqual([s3]);
      expect(await holding(ciphertext[bobDev]!)).toBe(0);
      expect(await holding(ciphertext[bobDev2]!)).toBe(0);
      expect(await holding('secret-')).toBe(1); // the unacknowledged one, whole
      expect(await counted('messagesPurged', 'acked')).toBe(2);
      // Two payloads of 'secret-xxxxxxxx-one' / '-two' (19 bytes each) per row.
      expect(await counted('messageBytesPurged', 'acked')).toBe(2 * 2 * 19);
      // Nothing moved since: the next run examines nothing and erases nothing.
      expect(await purge().runOnce()).toEqual({ acked: 0, age: 0, expired: 0 });
    });

    it('acked: a device that alone acknowledged loses its own payload; the row goes once the last device acknowledged', async () => {
      const [s1, s2] = await sendDirect(2);
      await ack(bobDev, s2!);
      expect((await purge().runOnce()).acked).toBe(0);
      expect(await stored()).toEqual([
        { seq: s1, devices: [bobDev2] },
        { seq: s2, devices: [bobDev2] },
      ]);
      expect(num((await sql.query(`SELECT count(*) AS n FROM messages WHERE payloads::text LIKE '%-one%'`))[0]!.n)).toBe(0);
      expect(await counted('messageBytesPurged', 'acked')).toBe(2 * 19);
      await ack(bobDev2, s1!);
      expect((await purge().runOnce()).acked).toBe(1);
      expect(await stored()).toEqual([{ seq: s2, devices: [bobDev2] }]);
    });

    it('delete for everyone: only the sending device, within its window; the tombstone holds no ciphertext and the acked purge erases it as its devices acknowledge it', async () => {
      const [s1, s2] = await sendDirect(2);
      const ciphertext = (await sql.query(`SELECT payloads FROM messages WHERE seq = $1 AND conversation_id = $2`, [s1, conv]))[0]!.payloads as Record<string, string>;
      expect(await store.unsend(conv, s1!, bobDev, 0)).toBe('not_found'); // not the sending device
      expect(await store.unsend(conv, 999, aliceDev, 0)).toBe('not_found');
      expect(await store.unsend(conv, s2!, aliceDev, clock.now() + 1)).toBe('too_late');
      expect(await store.unsend(conv, s1!, aliceDev, clock.now())).toBe('deleted');
      expect(await store.unsend(conv, s1!, aliceDev, clock.now() + 1)).toBe('deleted'); // again: already done
      expect(await holding(ciphertext[bobDev]!)).toBe(0);
      expect(await holding(ciphertext[bobDev2]!)).toBe(0);
      expect(await stored()).toEqual([
        { seq: s1, devices: [bobDev, bobDev2].sort() },
        { seq: s2, devices: [bobDev, bobDev2].sort() },
      ]);
      expect((await store.fetch(conv, bobDev, bob, 0, 1))[0]).toMatchObject({ seq: s1, body: '', key: null, deleted: true });
      expect((await store.fetch(conv, aliceDev, alice, 0, 1))[0]).toMatchObject({ seq: s1, body: null }); // the sender's own device: nothing
      await ack(bobDev, s1!);
      expect((await purge().runOnce()).acked).toBe(0);
      expect((await stored())[0]).toEqual({ seq: s1, devices: [bobDev2] });
      await ack(bobDev2, s1!);
      expect((await purge().runOnce()).acked).toBe(1);
      expect((await stored()).map((r) => r.seq)).toEqual([s2]);
    });

    it('acked: a removed device does not hold a message back', async () => {
      const gone = randomUUID();
      await addDevice(gone, bob);
      const r = await store.append({ conversationId: conv, senderId: alice, senderDeviceId: aliceDev, clientId: `rm-${gone}`, payloads: { [bobDev]: 'x1', [gone]: 'x2' } });
      await sql.query(`DELETE FROM devices WHERE id = $1`, [gone]);
      await ack(bobDev, r.seq);
      expect((await purge().runOnce()).acked).toBe(1);
      expect(await stored()).toEqual([]);
    });

    it('acked, groups: erased up to the first seq a device it is for has not acknowledged; later members and later devices do not hold it back', async () => {
      const group = randomUUID();
      await sql.query(`INSERT INTO conversations (id, kind, last_seq, created_at) VALUES ($1, 'group', 0, $2)`, [group, clock.now()]);
      const created = await sql.transaction((tx) => appendSystemTx(tx, group, alice, { kind: 'created', users: [alice, bob] }, clock.now(), true));
      await sql.query(`INSERT INTO conversation_members (conversation_id, user_id, joined_seq) VALUES ($1, $2, $4), ($1, $3, $4)`, [group, alice, bob, created]);
      const post = async (device: string, user: string) =>
        (await store.append({ conversationId: group, senderId: user, senderDeviceId: device, clientId: `g-${randomUUID()}`, payloads: {}, body: 'shared-secret' })).seq;
      const g2 = await post(aliceDev, alice);
      clock.advance(1000);
      const added = await sql.transaction((tx) => appendSystemTx(tx, group, alice, { kind: 'member_added', users: [carol] }, clock.now(), true));
      await sql.query(`INSERT INTO conversation_members (conversation_id, user_id, joined_seq) VALUES ($1, $2, $3)`, [group, carol, added]);
      clock.advance(1000);
      const late = randomUUID();
      await addDevice(late, bob); // created after seqs 1-3 were sent: it never holds them back
      const g4 = await post(bobDev, bob);
      // Everyone has everything but bobDev2, which stopped at `created`, and carol and the late device, which acknowledged nothing.
      await Promise.all([ack(aliceDev, g4, group), ack(bobDev, g4, group), ack(bobDev2, created, group)]);
      expect((await purge().runOnce()).acked).toBe(1);
      expect((await stored(group)).map((r) => r.seq)).toEqual([g2, added, g4]);
      await ack(bobDev2, g4, group);
      expect((await purge().runOnce()).acked).toBe(1); // g2: carol's window starts after it
      expect((await stored(group)).map((r) => r.seq)).toEqual([added, g4]);
      await ack(carolDev, g4, group);
      expect((await purge().runOnce()).acked).toBe(1); // `added`: the late device did not exist yet
      expect((await stored(group)).map((r) => r.seq)).toEqual([g4]);
      await ack(late, g4, group);
      expect((await purge().runOnce()).acked).toBe(1);
      expect(await holding('shared-secret')).toBe(0);
    });

    it('age: erases what was sent before the retention period, acknowledged or not; off keeps it', async () => {
      const [old] = await sendDirect(1);
      clock.advance(10 * DAY);
      const [recent] = await sendDirect(1);
      clock.advance(21 * DAY); // `old` is 31 days old, `recent` 21
      expect(await purge({ policy: 'off' }).runOnce()).toEqual({ acked: 0, age: 0, expired: 0 });
      expect(await purge({ policy: 'days' }).runOnce()).toEqual({ acked: 0, age: 1, expired: 0 });
      expect((await stored()).map((r) => r.seq)).toEqual([recent]);
      expect(old).toBeLessThan(recent!);
      expect((await purge({ policy: 'acked' }).runOnce()).age).toBe(0);
      expect(await counted('messagesPurged', 'age')).toBe(1);
      expect(await counted('messageBytesPurged', 'age')).toBe(2 * 19);
    });

    it('days keeps acknowledged messages; off keeps everything but expired ones', async () => {
      const [s1] = await sendDirect(1);
      await Promise.all([ack(bobDev, s1!), ack(bobDev2, s1!)]);
      expect((await purge({ policy: 'days' }).runOnce()).acked).toBe(0);
      expect((await purge({ policy: 'off' }).runOnce()).acked).toBe(0);
      expect(await stored()).toHaveLength(1);
    });

    it('expired: a disappearing message is erased at its expiry under every policy, fetched or not', async () => {
      for (const policy of ['acked', 'days', 'off'] as const) {
        const [keep] = await sendDirect(1);
        const [gone] = await sendDirect(1, { expiresAt: clock.now() + 5_000 });
        expect(await store.fetch(conv, bobDev, bob, keep!, 10)).toMatchObject([{ seq: gone, expiresAt: clock.now() + 5_000 }]);
        clock.advance(4_999);
        expect((await purge({ policy }).runOnce()).expired).toBe(0);
        clock.advance(1);
        expect(await store.fetch(conv, bobDev, bob, keep!, 10)).toEqual([]); // hidden from its expiry on, before the purge ran
        expect(await purge({ policy }).runOnce()).toEqual({ acked: 0, age: 0, expired: 1 });
        expect((await stored()).map((r) => r.seq)).toEqual([keep]);
        await sql.query(`DELETE FROM messages`);
      }
      expect(await counted('messagesPurged', 'expired')).toBe(3);
    });

    it('bounded: a run erases at most `batch` rows per reason', async () => {
      const acked = await sendDirect(7);
      await Promise.all([ack(bobDev, acked.at(-1)!), ack(bobDev2, acked.at(-1)!)]);
      await sendDirect(7, { expiresAt: clock.now() + 1 });
      clock.advance(1);
      const p = purge({ batch: 3 });
      const runs = [await p.runOnce(), await p.runOnce(), await p.runOnce(), await p.runOnce()];
      expect(runs.map((r) => r.expired)).toEqual([3, 3, 1, 0]);
      expect(runs.map((r) => r.acked)).toEqual([3, 3, 1, 0]);
      expect(await stored()).toEqual([]);
    });

    it('a row another process holds is skipped, not lost: the next run erases it', async (ctx) => {
      if (sql.driver !== 'postgres') ctx.skip('needs a second connection to hold the row lock (PGlite has one)');
      const [s1, s2, s3] = await sendDirect(3);
      await Promise.all([ack(bobDev, s3!), ack(bobDev2, s3!)]);
      const first = await sql.transaction(async (tx) => {
        await tx.query(`SELECT 1 FROM messages WHERE conversation_id = $1 AND seq = $2 FOR UPDATE`, [conv, s2]);
        return purge().runOnce();
      });
      expect(first.acked).toBe(2);
      expect((await stored()).map((r) => r.seq)).toEqual([s2]);
      const swept = await sql.query(`SELECT swept_seq FROM device_cursors WHERE conversation_id = $1`, [conv]);
      expect(swept.map((r) => num(r.swept_seq))).toEqual([s1, s1]); // not past the row it could not claim
      expect((await purge().runOnce()).acked).toBe(1);
      expect(await stored()).toEqual([]);
    });

    it('two purges at once claim each row once: their counts add up to what was erased', async () => {
      const others = [];
      for (let i = 0; i < 6; i++) {
        const u = randomUUID();
        await sql.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, 'x', 0)`, [u, `u-${u}`]);
        others.push(await store.ensureDirect(alice, u));
      }
      let total = 0;
      for (const c of [conv, ...others]) {
        const seqs = await sendDirect(5, { conversationId: c });
        await Promise.all([ack(bobDev, seqs.at(-1)!, c), ack(bobDev2, seqs.at(-1)!, c)]);
        total += 5;
      }
      await sendDirect(20, { expiresAt: clock.now() + 1 });
      clock.advance(1);
      const [a, b] = [purge({ batch: 4 }), purge({ batch: 4 })];
      const results = [];
      for (let round = 0; round < 20 && (await holding('secret-')) > 0; round++) results.push(...(await Promise.all([a.runOnce(), b.runOnce()])));
      expect(await holding('secret-')).toBe(0);
      expect(results.reduce((n, r) => n + r.acked, 0)).toBe(total);
      expect(results.reduce((n, r) => n + r.expired, 0)).toBe(20);
      expect(await counted('messagesPurged', 'acked')).toBe(total);
    });
  });
}
