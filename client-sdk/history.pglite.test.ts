// The PGlite message store: the shared contract (on one in-memory PGlite, a schema per store), a data directory kept across a reopen, content sealed at rest in its files, and its errors.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sodiumReady } from '../protocol/bytes.js';
import { forms, readAll } from '../test/support/scan.js';
import { messageStoreContract } from './history.contract.js';
import type { MessageStore } from './history.js';
import { MessageHistory } from './history.messages.js';
import { openPgliteMessageStore, pgliteMessageStore } from './history.pglite.js';

let db: PGlite;
let n = 0;
const schemas = new WeakMap<MessageStore, string>();
const dirs: string[] = [];
beforeAll(async () => {
  await sodiumReady();
  db = await PGlite.create();
});
afterAll(async () => {
  await db?.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

messageStoreContract('pglite', {
  create: async () => {
    const schema = `contract_${++n}`;
    const s = await pgliteMessageStore(db, { schema });
    schemas.set(s, schema);
    return s;
  },
  reopen: async (s) => {
    await s.close();
    return pgliteMessageStore(db, { schema: schemas.get(s)! });
  },
});

describe('openPgliteMessageStore', () => {
  it('keeps the history in its data directory across a close and an open', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-history-'));
    dirs.push(dir);
    const s = await openPgliteMessageStore(dir);
    await s.put([{ conversationId: 'c', seq: 1, id: 'x', sentAt: 5, body: new Uint8Array([1, 2, 3]) }]);
    await s.close();
    const again = await openPgliteMessageStore(dir);
    expect(await again.message('c', 'x')).toEqual({ conversationId: 'c', seq: 1, id: 'x', sentAt: 5, body: new Uint8Array([1, 2, 3]) });
    await again.close();
  });

  it('holds no message content in its files under a history key (and does without one: the scan finds what is there)', async () => {
    const found = async (key: Uint8Array | null) => {
      const dir = await mkdtemp(join(tmpdir(), 'parley-history-'));
      dirs.push(dir);
      const h = new MessageHistory({ store: await openPgliteMessageStore(dir), key, file: () => ({}) as never });
      await h.addMessage({ conversationId: 'c', seq: 1, id: 'm1', sentAt: 1, from: 'user-canary-from', fromDevice: 'd', text: 'canary-text-at-rest', mentions: ['user-canary-mention'] });
      await h.addAction({ conversationId: 'c', seq: 2, id: 'a2', sentAt: 2, from: 'user-canary-from', fromDevice: 'd', action: { type: 'edit', target: 'm1', text: 'canary-edit-at-rest' } }, false);
      await h.close();
      const files = await readAll(dir);
      return ['canary-text-at-rest', 'canary-edit-at-rest', 'user-canary-mention', 'user-canary-from'].filter((t) => forms(t).some((f) => files.some((b) => b.includes(f))));
    };
    expect(await found(new Uint8Array(32).fill(7))).toEqual([]);
    expect(await found(null)).toEqual(['canary-text-at-rest', 'canary-edit-at-rest', 'user-canary-mention', 'user-canary-from']);
  });

  it('refuses a schema name that is not a plain identifier', async () => {
    await expect(pgliteMessageStore(db, { schema: 'x; DROP TABLE y' })).rejects.toMatchObject({ code: 'invalid' });
  });
});
