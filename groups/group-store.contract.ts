// GroupStore and group appends, run against each SQL driver (PGlite always, PostgreSQL where reachable).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessageStore } from '../messaging/message-store.js';
import { ManualClock } from '../platform/clock.js';
import { migrate } from '../platform/migrations.js';
import type { Sql } from '../platform/sql.js';
import { GroupStore, sees } from './group-store.js';

export function groupStoreSuite(name: string, open: () => Promise<{ sql: Sql; dispose(): Promise<void> }>): void {
  describe(`GroupStore on ${name}`, () => {
    let sql: Sql;
    let dispose: () => Promise<void>;
    let groups: GroupStore;
    let messages: MessageStore;
    const clock = new ManualClock();
    const [ann, ben, cat] = [randomUUID(), randomUUID(), randomUUID()];
    const dev = { [ann]: randomUUID(), [ben]: randomUUID(), [cat]: randomUUID() };

    beforeAll(async () => {
      ({ sql, dispose } = await open());
      await migrate(sql);
      for (const [u, n] of [[ann, 'ann'], [ben, 'ben'], [cat, 'cat']] as const) {
        await sql.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, 'x', 0)`, [u, n]);
        await sql.query(`INSERT INTO devices (id, user_id, name, public_key, created_at) VALUES ($1, $2, 'd', 'k', 0)`, [dev[u], u]);
      }
      groups = new GroupStore(sql, clock);
      messages = new MessageStore(sql, clock, { shards: 2 });
    });
    afterAll(async () => {
      await messages?.flush();
      await sql?.close();
      await dispose?.();
    });

    const send = (groupId: string, from: string, clientId: string, membersVersion?: number) =>
      messages.append({ conversationId: groupId, senderId: from, senderDeviceId: dev[from]!, clientId, payloads: {}, body: 'Y2lwaGVy', membersVersion });

    it('creates a group whose first message is its creation, with the owner and members', async () => {
      const { id, seq } = await groups.create(ann, 'g1', [ben]);
      expect(seq).toBe(1);
      const info = await groups.info(id);
      expect(info).toMatchObject({ name: 'g1', ownerId: ann, lastSeq: 1, membersVersion: 1 });
      expect(Object.fromEntries(info!.members.map((m) => [m.userId, m.role]))).toEqual({ [ann]: 'owner', [ben]: 'member' });
      const [first] = await messages.fetch(id, dev[ben]!, ben, 0, 10);
      expect(first).toMatchObject({ seq: 1, group: true, system: { kind: 'created', name: 'g1' }, fromDevice: null });
      await expect(groups.create(ann, 'bad', [randomUUID()])).rejects.toMatchObject({ code: 'not_found' });
    });

    it('gives each member a window: a removed member sees up to the removal, an added one from the addition', async () => {
      const { id } = await groups.create(ann, 'g2', [ben]);
      await send(id, ann, 'a1');
      const removedAt = await groups.change(id, async (g) => {
        const s = await g.record(ann, { kind: 'member_removed', users: [ben] });
        await g.remove([ben], s);
        return s;
      });
      const addedAt = await groups.change(id, async (g) => {
        const s = await g.record(ann, { kind: 'member_added', users: [cat] });
        await g.add([cat], s);
        return s;
      });
      await send(id, ann, 'a2');
      const seqs = async (u: string) => (await messages.fetch(id, dev[u]!, u, 0, 100)).map((m) => m.seq);
      expect(await seqs(ben)).toEqual([1, 2, removedAt]);
      expect(await seqs(cat)).toEqual([addedAt, addedAt + 1]);
      const m = (await groups.membership(id))!;
      expect(m.version).toBe(addedAt);
      const benRow = m.members.find((r) => r.userId === ben)!;
      expect([sees(benRow, removedAt), sees(benRow, removedAt + 1)]).toEqual([true, false]);
      const [benConv] = (await messages.deviceConversations(dev[ben]!, ben)).filter((c) => c.conversationId === id);
      expect(benConv!.lastSeq).toBe(removedAt); // nothing past the window to sync
      expect(await messages.hasSeen(ben, id)).toBe(true);
      expect((await messages.members(id)).slice().sort()).toEqual([ann, cat].sort());
    });

    it('refuses at commit a send checked against an older membership, and keeps seqs gap-free', async () => {
      const { id } = await groups.create(ann, 'g3', [ben]);
      const v = (await groups.membership(id))!.version;
      const ok = await send(id, ann, 'v-ok', v);
      await groups.change(id, async (g) => {
        const s = await g.record(ann, { kind: 'member_added', users: [cat] });
        await g.add([cat], s);
      });
      await expect(send(id, ann, 'v-stale', v)).rejects.toMatchObject({ code: 'devices_changed' });
      const fresh = await send(id, ann, 'v-new', (await groups.membership(id))!.version);
      expect(fresh.seq).toBe(ok.seq + 2); // the change took one seq, the refused send none
    });

    it('serializes concurrent sends and membership changes: every send commits under the version it names or is refused', async () => {
      const { id } = await groups.create(ann, 'g4', [ben]);
      const v = (await groups.membership(id))!.version;
      const sends = Array.from({ length: 40 }, (_, i) => send(id, i % 2 ? ann : ben, `c${i}`, v).then((r) => r, (e: { code: string }) => e.code));
      const change = groups.change(id, async (g) => {
        const s = await g.record(ann, { kind: 'member_added', users: [cat] });
        await g.add([cat], s);
        return s;
      });
      const [results, changedAt] = [await Promise.all(sends), await change];
      const committed = results.filter((r) => typeof r !== 'string') as { seq: number; membersVersion: number }[];
      expect(results.filter((r) => typeof r === 'string').every((c) => c === 'devices_changed')).toBe(true);
      expect(committed.every((r) => r.seq < changedAt && r.membersVersion === v)).toBe(true);
      const all = (await messages.fetch(id, dev[cat]!, ann, 0, 1000)).map((m) => m.seq);
      expect(all).toEqual(all.map((_, i) => i + 1)); // gap-free
    });

    it('reports per-member receipts over each member’s devices', async () => {
      const { id } = await groups.create(ann, 'g5', [ben, cat]);
      await send(id, ann, 'r1');
      await messages.advanceCursor({ deviceId: dev[ben]!, conversationId: id, delivered: 2, read: 2 });
      await messages.advanceCursor({ deviceId: dev[cat]!, conversationId: id, delivered: 2, read: 0 });
      const r = await groups.receipts(id);
      expect(r).toEqual(
        expect.arrayContaining([
          { userId: ben, delivered: 2, read: 2 },
          { userId: cat, delivered: 2, read: 0 },
          { userId: ann, delivered: 0, read: 0 },
        ]),
      );
    });
  });
}
