// The PGlite message store: the shared contract (on one in-memory PGlite, a schema per store), a data directory kept across a reopen, and its errors.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messageStoreContract } from './history.contract.js';
import type { MessageStore } from './history.js';
import { openPgliteMessageStore, pgliteMessageStore } from './history.pglite.js';

let db: PGlite;
let n = 0;
const schemas = new WeakMap<MessageStore, string>();
const dirs: string[] = [];
beforeAll(async () => {
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

  it('refuses a schema name that is not a plain identifier', async () => {
    await expect(pgliteMessageStore(db, { schema: 'x; DROP TABLE y' })).rejects.toMatchObject({ code: 'invalid' });
  });
});
