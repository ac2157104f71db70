// The MessageStore contract, run against every implementation (memory, PGlite).
import { describe, expect, it } from 'vitest';
import type { MessageStore, StoredEntry } from './history.js';

export interface MessageStoreFactory {
  /** A new, empty store. */
  create(): Promise<MessageStore>;
  /** Another store over the same data, as after a restart (the first is closed first); undefined where there is none. */
  reopen?(store: MessageStore): Promise<MessageStore>;
}

const body = (s: string) => new TextEncoder().encode(s);
const msg = (conversationId: string, seq: number, id = `m${seq}`, text = id): StoredEntry => ({ conversationId, seq, id, sentAt: 1_700_000_000_000 + seq, body: body(text) });
const act = (conversationId: string, seq: number, target: string, text = `a${seq}`): StoredEntry => ({ ...msg(conversationId, seq, `a${seq}`, text), target });
const seqs = (entries: StoredEntry[]) => entries.map((e) => e.seq);
const text = (e: StoredEntry | undefined) => (e ? new TextDecoder().decode(e.body) : undefined);

export function messageStoreContract(name: string, factory: MessageStoreFactory): void {
  describe(`MessageStore contract: ${name}`, () => {
    it('pages a conversation’s messages newest first, below `before`, at most `limit`, without its actions or other conversations', async () => {
      const s = await factory.create();
      await s.put([msg('c', 3), msg('c', 1), act('c', 4, 'm1'), msg('c', 2), msg('d', 5), msg('c', 6)]);
      expect(seqs(await s.page('c', { limit: 10 }))).toEqual([6, 3, 2, 1]);
      expect(seqs(await s.page('c', { limit: 2 }))).toEqual([6, 3]);
      expect(seqs(await s.page('c', { before: 3, limit: 10 }))).toEqual([2, 1]);
      expect(seqs(await s.page('c', { before: 1, limit: 10 }))).toEqual([]);
      expect(await s.page('nobody', { limit: 10 })).toEqual([]);
      const [first] = await s.page('c', { before: 2, limit: 1 });
      expect(first).toEqual(msg('c', 1));
      await s.close();
    });

    it('finds a message by id (not an action, not in another conversation), and the actions on messages in seq order', async () => {
      const s = await factory.create();
      await s.put([msg('c', 1, 'x'), act('c', 2, 'x'), act('c', 5, 'y'), act('c', 3, 'x'), msg('d', 1, 'y'), act('d', 2, 'x')]);
      expect(await s.message('c', 'x')).toEqual(msg('c', 1, 'x'));
      expect(await s.message('c', 'a2')).toBeUndefined();
      expect(await s.message('d', 'x')).toBeUndefined();
      expect(seqs(await s.actions('c', ['x']))).toEqual([2, 3]);
      expect(seqs(await s.actions('c', ['y', 'x', 'x']))).toEqual([2, 3, 5]);
      expect((await s.actions('c', ['x']))[0]!.target).toBe('x');
      expect(await s.actions('c', [])).toEqual([]);
      await s.close();
    });

    it('put replaces the entry at a seq; merge keeps what it holds and adds the rest', async () => {
      const s = await factory.create();
      await s.put([msg('c', 1, 'x', 'first')]);
      await s.put([msg('c', 1, 'x', 'replaced')]);
      expect(text(await s.message('c', 'x'))).toBe('replaced');
      await s.merge([msg('c', 1, 'x', 'imported'), msg('c', 2, 'y', 'new'), act('c', 3, 'x')]);
      expect(text(await s.message('c', 'x'))).toBe('replaced');
      expect(text(await s.message('c', 'y'))).toBe('new');
      expect(seqs(await s.actions('c', ['x']))).toEqual([3]);
      await s.close();
    });

    it('deletes entries by seq (a message, its actions; absent seqs are no error)', async () => {
      const s = await factory.create();
      await s.put([msg('c', 1, 'x'), act('c', 2, 'x'), msg('c', 3, 'y'), msg('d', 1)]);
      await s.delete('c', [1, 2, 99]);
      await s.delete('c', []);
      expect(await s.message('c', 'x')).toBeUndefined();
      expect(await s.actions('c', ['x'])).toEqual([]);
      expect(seqs(await s.page('c', { limit: 10 }))).toEqual([3]);
      expect(seqs(await s.page('d', { limit: 10 }))).toEqual([1]);
      await s.close();
    });

    it('exports every entry by conversation, then seq, with bodies byte for byte', async () => {
      const s = await factory.create();
      const bytes = new Uint8Array(256).map((_, i) => i);
      await s.put([msg('b', 2), { ...msg('a', 7), body: bytes }, act('b', 1, 'm2'), msg('a', 3)]);
      const all = await s.exportAll();
      expect(all.map((e) => `${e.conversationId}:${e.seq}`)).toEqual(['a:3', 'a:7', 'b:1', 'b:2']);
      expect(all[1]!.body).toEqual(bytes);
      expect(all[2]).toEqual(act('b', 1, 'm2'));
      await s.close();
    });

    it('gives copies: changing what it returned changes nothing stored', async () => {
      const s = await factory.create();
      await s.put([msg('c', 1, 'x', 'kept')]);
      const got = (await s.message('c', 'x'))!;
      got.body[0] = 0;
      got.id = 'changed';
      expect(text(await s.message('c', 'x'))).toBe('kept');
      await s.close();
    });

    it('applies writes in call order when they are not awaited one by one, and reads see them', async () => {
      const s = await factory.create();
      const writes = Array.from({ length: 20 }, (_, i) => s.put([msg('c', 1, 'x', `v${i}`)]));
      const read = s.message('c', 'x');
      await Promise.all(writes);
      expect(text(await read)).toBe('v19');
      await s.close();
    });

    it('writes many entries at once (more than one statement’s worth) and pages through them', async () => {
      const s = await factory.create();
      await s.put(Array.from({ length: 2500 }, (_, i) => msg('big', i + 1)));
      const seen: number[] = [];
      for (let before: number | undefined; ; ) {
        const page = await s.page('big', { ...(before === undefined ? {} : { before }), limit: 400 });
        if (page.length === 0) break;
        seen.push(...seqs(page));
        before = page.at(-1)!.seq;
      }
      expect(seen).toEqual(Array.from({ length: 2500 }, (_, i) => 2500 - i));
      await s.close();
    });

    it.skipIf(!factory.reopen)(`keeps everything across a reopen${factory.reopen ? '' : ' (skipped: this store keeps nothing across runs)'}`, async () => {
      const s = await factory.create();
      await s.put([msg('c', 1, 'x', 'durable'), act('c', 2, 'x')]);
      const again = await factory.reopen!(s);
      expect(text(await again.message('c', 'x'))).toBe('durable');
      expect(seqs(await again.actions('c', ['x']))).toEqual([2]);
      await again.close();
    });
  });
}
