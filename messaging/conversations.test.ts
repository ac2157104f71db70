// The inbox query on PGlite and PostgreSQL: order and paging, unread counts across devices and after the purge, what never counts, and the index's upkeep.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ManualClock } from '../platform/clock.js';
import { createLogger } from '../platform/log.js';
import { createMetrics } from '../platform/metrics.js';
import { migrate } from '../platform/migrations.js';
import { PgliteSql } from '../platform/sql.pglite.js';
import { PostgresSql } from '../platform/sql.postgres.js';
import { num, type Sql } from '../platform/sql.js';
import { createTestDatabase } from '../platform/test-databases.js';
import { appendSystemTx } from './append.js';
import { Conversations } from './conversations.js';
import { MessageStore } from './message-store.js';
import { MessagePurge } from './purge.js';

function inboxSuite(name: string, open: () => Promise<{ sql: Sql; dispose(): Promise<void> }>): void {
  describe(`the inbox on ${name}`, () => {
    let sql: Sql;
    let dispose: () => Promise<void>;
    let store: MessageStore;
    let inbox: Conversations;
    const clock = new ManualClock();
    const [alice, bob, carol] = [randomUUID(), randomUUID(), randomUUID()];
    const [aliceDev, bobDev, bobDev2, carolDev] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    let direct: string;
    let group: string;

    beforeAll(async () => {
      ({ sql, dispose } = await open());
      await migrate(sql);
      for (const u of [alice, bob, carol]) await sql.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, 'x', 0)`, [u, `u${u.slice(0, 8)}`]);
      for (const [d, u] of [[aliceDev, alice], [bobDev, bob], [bobDev2, bob], [carolDev, carol]] as const) {
        await sql.query(`INSERT INTO devices (id, user_id, name, public_key, created_at) VALUES ($1, $2, 'd', 'k', 0)`, [d, u]);
      }
      store = new MessageStore(sql, clock);
      inbox = new Conversations(sql);
      direct = await store.ensureDirect(alice, bob);
      group = randomUUID();
      await sql.query(`INSERT INTO conversations (id, kind, last_seq, created_at) VALUES ($1, 'group', 0, $2)`, [group, clock.now()]);
      await sql.query(`INSERT INTO groups (id, name, owner_id, created_at) VALUES ($1, 'sealed-name', $2, 0)`, [group, carol]);
      const created = await sql.transaction((tx) => appendSystemTx(tx, group, carol, { kind: 'created', users: [carol, bob] }, clock.now(), true));
      await sql.query(`INSERT INTO conversation_members (conversation_id, user_id, joined_seq, role) VALUES ($1, $2, $4, 'owner'), ($1, $3, $4, 'member')`, [group, carol, bob, created]);
    });
    afterAll(async () => {
      await store?.flush();
      await sql?.close();
      await dispose?.();
    });

    const sendDirect = async (from: string, device: string, payloads: Record<string, string>) => {
      clock.advance(1000);
      return (await store.append({ conversationId: direct, senderId: from, senderDeviceId: device, clientId: randomUUID(), payloads })).seq;
    };
    const toBob = () => sendDirect(alice, aliceDev, { [bobDev]: 'c1', [bobDev2]: 'c2' });
    const postGroup = async (from: string, device: string) => {
      clock.advance(1000);
      return (await store.append({ conversationId: group, senderId: from, senderDeviceId: device, clientId: randomUUID(), payloads: {}, body: 'shared' })).seq;
    };
    const cursor = async (deviceId: string, conversationId: string, delivered: number, read = 0) => {
      await store.advanceCursor({ deviceId, conversationId, delivered, read });
    };
    const bobsView = async (device = bobDev2) => {
      const page = await inbox.list(bob, device, { limit: 10 });
      return Object.fromEntries(page.conversations.map((c) => [c.kind, c]));
    };

    it('lists direct conversations and current groups, newest activity first, paged, with the peer, the group and this device’s cursors', async () => {
      await toBob();
      const g = await postGroup(carol, carolDev);
      const page1 = await inbox.list(bob, bobDev, { limit: 1 });
      expect(page1.conversations).toMatchObject([{ id: group, kind: 'group', group: { name: 'sealed-name', role: 'member' }, lastSeq: g, lastActivityAt: clock.now() }]);
      const page2 = await inbox.list(bob, bobDev, { limit: 1, cursor: page1.cursor! });
      expect(page2.conversations).toMatchObject([{ id: direct, kind: 'direct', peer: alice, lastSeq: 1 }]);
      expect(page2.cursor).toBeUndefined();
      await cursor(bobDev, direct, 1, 1);
      await store.flush();
      expect((await inbox.list(bob, bobDev, { limit: 5 })).conversations[1]).toMatchObject({ delivered: 1, read: 1 });
      expect((await inbox.list(bob, bobDev2, { limit: 5 })).conversations[1]).toMatchObject({ delivered: 0, read: 0 });
      const s = await toBob(); // the direct conversation moves to the top
      expect((await inbox.list(bob, bobDev, { limit: 5 })).conversations.map((c) => [c.id, c.lastSeq])).toEqual([[direct, s], [group, g]]);
      expect((await inbox.list(alice, aliceDev, { limit: 5 })).conversations.map((c) => c.id)).toEqual([direct]); // not in the group
    });

    it('counts unread for the user: a read on one device clears it for all; own, system, deleted and hidden messages never count', async () => {
      const before = (await bobsView()).direct!.unread;
      const seqs = [await toBob(), await toBob(), await toBob()];
      expect((await bobsView()).direct!.unread).toBe(before + 3);
      await cursor(bobDev, direct, seqs[2]!, seqs[1]!); // read on the other device up to the second
      await store.flush();
      expect((await bobsView()).direct!.unread).toBe(1);
      expect((await bobsView()).direct!.read).toBe(0); // this device's own read cursor did not move
      await sendDirect(bob, bobDev, { [aliceDev]: 'x', [bobDev2]: 'y' }); // bob's own
      expect(await store.unsend(direct, seqs[2]!, aliceDev, 0)).toBe('deleted'); // deleted for everyone
      await sql.query(`INSERT INTO blocks (user_id, blocked_id, created_at) VALUES ($1, $2, 0)`, [bob, alice]);
      await sendDirect(alice, aliceDev, {}); // blocked: stored without bob's copies
      await sql.query(`DELETE FROM blocks WHERE user_id = $1`, [bob]);
      expect((await bobsView()).direct!.unread).toBe(0);
      expect((await inbox.list(alice, aliceDev, { limit: 5 })).conversations[0]!.unread).toBe(1); // bob's message
      // Groups: not before joining, not system messages, not from a member one blocks.
      const groupBefore = (await bobsView()).group!.unread;
      await sql.query(`INSERT INTO conversation_members (conversation_id, user_id, joined_seq) VALUES ($1, $2, 0)`, [group, alice]);
      await sql.transaction((tx) => appendSystemTx(tx, group, carol, { kind: 'renamed', name: 'n' }, clock.now(), false));
      await postGroup(alice, aliceDev);
      await postGroup(carol, carolDev);
      expect((await bobsView()).group!.unread).toBe(groupBefore + 2);
      await sql.query(`INSERT INTO blocks (user_id, blocked_id, created_at) VALUES ($1, $2, 0)`, [bob, alice]);
      expect((await bobsView()).group!.unread).toBe(groupBefore + 1);
      await sql.query(`DELETE FROM blocks WHERE user_id = $1`, [bob]);
    });

    it('keeps counting after the purge erased the delivered messages, and the purge keeps only the index rows someone may still need', async () => {
      const purge = new MessagePurge(sql, clock, createLogger('silent'), createMetrics(), { policy: 'acked', retentionMs: 30 * 86_400_000, intervalMs: 60_000, batch: 1000 });
      const seqs = [await toBob(), await toBob()];
      await Promise.all([cursor(bobDev, direct, seqs[1]!), cursor(bobDev2, direct, seqs[1]!), cursor(aliceDev, direct, seqs[1]!)]);
      await store.flush();
      const unread = (await bobsView()).direct!.unread;
      expect(unread).toBeGreaterThanOrEqual(2);
      await purge.runOnce();
      expect(num((await sql.query(`SELECT count(*) AS n FROM messages WHERE conversation_id = $1 AND seq = ANY($2::bigint[])`, [direct, seqs]))[0]!.n)).toBe(0);
      expect((await bobsView()).direct!.unread).toBe(unread);
      // Both read everything: the index keeps only the newest row, and the inbox its time.
      const activity = (await bobsView()).direct!.lastActivityAt;
      await Promise.all([cursor(bobDev, direct, seqs[1]!, seqs[1]!), cursor(aliceDev, direct, seqs[1]!, seqs[1]!)]);
      await store.flush();
      await purge.runOnce();
      expect((await sql.query(`SELECT seq FROM message_index WHERE conversation_id = $1`, [direct])).map((r) => num(r.seq))).toEqual([seqs[1]]);
      expect((await bobsView()).direct).toMatchObject({ unread: 0, lastActivityAt: activity });
    });
  });
}

inboxSuite('PGlite', async () => ({ sql: await PgliteSql.open(), dispose: async () => {} }));

const adminUrl = inject('postgresAdminUrl');
if (adminUrl) {
  inboxSuite('PostgreSQL', async () => {
    const db = await createTestDatabase(adminUrl);
    return { sql: new PostgresSql(db.url, { max: 4 }), dispose: db.drop };
  });
} else {
  describe('the inbox on PostgreSQL', () => it.skip(`skipped: ${inject('postgresUnavailable')}`, () => {}));
}
