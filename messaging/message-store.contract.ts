// MessageStore behaviour, run against each SQL driver (PGlite always, PostgreSQL where reachable).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../platform/clock.js';
import { migrate } from '../platform/migrations.js';
import type { Sql } from '../platform/sql.js';
import { MessageStore } from './message-store.js';

export function messageStoreSuite(name: string, open: () => Promise<{ sql: Sql; dispose(): Promise<void> }>): void {
  describe(`MessageStore on ${name}`, () => {
    let sql: Sql;
    let dispose: () => Promise<void>;
    let store: MessageStore;
    const clock = new ManualClock();
    const alice = randomUUID();
    const bob = randomUUID();
    const aliceDev = randomUUID();
    const bobDev = randomUUID();
    const bobDev2 = randomUUID();
    let conv: string;

    beforeAll(async () => {
      ({ sql, dispose } = await open());
      await migrate(sql);
      for (const [u, name] of [[alice, 'alice'], [bob, 'bob']] as const) {
        await sql.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, 'x', 0)`, [u, name]);
      }
      for (const [d, u] of [[aliceDev, alice], [bobDev, bob], [bobDev2, bob]] as const) {
        await sql.query(`INSERT INTO devices (id, user_id, name, public_key, created_at) VALUES ($1, $2, 'd', 'k', 0)`, [d, u]);
      }
      store = new MessageStore(sql, clock);
      conv = await store.ensureDirect(alice, bob);
    });
    afterAll(async () => {
      await store?.flush();
      await sql?.close();
      await dispose?.();
    });

    const send = (clientId: string, payloads: Record<string, string> = { [bobDev]: 'c1', [bobDev2]: 'c2' }) =>
      store.append({ conversationId: conv, senderId: alice, senderDeviceId: aliceDev, clientId, payloads });

    it('gives both users the same direct conversation', async () => {
      expect(MessageStore.directConversationId(bob, alice)).toBe(conv);
      expect(await store.ensureDirect(bob, alice)).toBe(conv);
      expect([...(await store.members(conv))].sort()).toEqual([alice, bob].sort());
      expect(await store.members(randomUUID())).toEqual([]);
    });

    it('assigns gap-free seqs under concurrent appends', async () => {
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => send(`gap-${i}`)));
      const seqs = results.map((r) => r.seq).sort((a, b) => a - b);
      expect(seqs).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      expect(results.every((r) => !r.duplicate && r.conversationId === conv)).toBe(true);
    });

    it('commits one conversation in submission order while other conversations commit alongside', async () => {
      const carol = randomUUID();
      await sql.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, 'carol', 'x', 0)`, [carol]);
      const other = await store.ensureDirect(alice, carol);
      const mine = Array.from({ length: 60 }, (_, i) => send(`order-${i}`));
      const theirs = Array.from({ length: 60 }, (_, i) =>
        store.append({ conversationId: other, senderId: alice, senderDeviceId: aliceDev, clientId: `other-${i}`, payloads: {} }),
      );
      const seqs = (await Promise.all(mine)).map((r) => r.seq);
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
      expect((await Promise.all(theirs)).map((r) => r.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    });

    it('is idempotent by client id, also within one batch', async () => {
      const first = await send('same-id');
      const again = await send('same-id', { [bobDev]: 'different' });
      expect(again).toMatchObject({ seq: first.seq, duplicate: true });
      const [x, y] = await Promise.all([send('twin'), send('twin')]);
      expect(x!.seq).toBe(y!.seq);
      expect([x!.duplicate, y!.duplicate].sort()).toEqual([false, true]);
      const rows = await sql.query(`SELECT count(*)::int AS n FROM messages WHERE client_id IN ('same-id', 'twin')`);
      expect(rows[0]!.n).toBe(2);
      const stored = await store.fetch(conv, bobDev, bob, first.seq - 1, 1);
      expect(stored[0]!.body).toBe('c1'); // the first copy wins
    });

    it('fetches in seq order with each device its own ciphertext, and null for others', async () => {
      const page = await store.fetch(conv, bobDev2, bob, 0, 3);
      expect(page.map((m) => m.seq)).toEqual([1, 2, 3]);
      expect(page.every((m) => m.body === 'c2' && m.from === alice && m.fromDevice === aliceDev)).toBe(true);
      const forAlice = await store.fetch(conv, aliceDev, alice, 0, 2);
      expect(forAlice.map((m) => m.body)).toEqual([null, null]);
      const rest = await store.fetch(conv, bobDev, bob, 100, 1000);
      expect(rest.map((m) => m.seq)[0]).toBe(101);
      expect(rest.at(-1)!.seq).toBe(162);
    });

    it('pages by bytes: rows until the budget is reached, and always the first row however big', async () => {
      // Each row carries 'c2' (2 bytes) for bobDev2: rows start at byte 0, 2, 4, …
      expect((await store.fetch(conv, bobDev2, bob, 0, 10, 4)).map((m) => m.seq)).toEqual([1, 2]);
      expect((await store.fetch(conv, bobDev2, bob, 0, 10, 5)).map((m) => m.seq)).toEqual([1, 2, 3]);
      expect((await store.fetch(conv, bobDev2, bob, 0, 10, 1)).map((m) => m.seq)).toEqual([1]);
      expect((await store.fetch(conv, bobDev2, bob, 3, 2, 1_000)).map((m) => m.seq)).toEqual([4, 5]);
    });

    it('lists a device conversation with its cursor, and moves cursors only forward', async () => {
      const [before] = (await store.deviceConversations(bobDev, bob)).filter((c) => c.conversationId === conv);
      expect(before).toMatchObject({ conversationId: conv, delivered: 0 });
      expect(before!.lastSeq).toBe(162);
      await Promise.all([
        store.advanceCursor({ deviceId: bobDev, conversationId: conv, delivered: 50, read: 10 }),
        store.advanceCursor({ deviceId: bobDev, conversationId: conv, delivered: 40, read: 20 }),
      ]);
      await store.advanceCursor({ deviceId: bobDev, conversationId: conv, delivered: 30, read: 0 });
      const [after] = (await store.deviceConversations(bobDev, bob)).filter((c) => c.conversationId === conv);
      expect(after!.delivered).toBe(50);
      expect(await store.receiptState(alice)).toEqual([{ conversationId: conv, userId: bob, delivered: 50, read: 20 }]);
      expect(await store.receiptState(bob)).toEqual([]);
    });

    it('rejects an append to a conversation that does not exist, without harming its batch', async () => {
      const bad = store.append({ conversationId: randomUUID(), senderId: alice, senderDeviceId: aliceDev, clientId: 'lost', payloads: {} });
      const good = send('fine');
      await expect(bad).rejects.toMatchObject({ code: 'not_found' });
      expect((await good).seq).toBe(163);
    });

    it('stores a disappearing message with its expiry and returns it until then; a direct conversation’s window is everything', async () => {
      const r = await store.append({ conversationId: conv, senderId: alice, senderDeviceId: aliceDev, clientId: 'vanishing', payloads: { [bobDev]: 'v' }, expiresAt: clock.now() + 10 });
      expect(await store.fetch(conv, bobDev, bob, r.seq - 1, 1)).toMatchObject([{ seq: r.seq, body: 'v', expiresAt: clock.now() + 10 }]);
      expect((await store.fetch(conv, bobDev, bob, r.seq - 2, 1))[0]!.expiresAt).toBeNull();
      clock.advance(10);
      expect(await store.fetch(conv, bobDev, bob, r.seq - 1, 1)).toEqual([]);
      expect(await store.membershipWindow(conv, bob)).toEqual({ joinedSeq: 0, leftSeq: null });
    });
  });
}
