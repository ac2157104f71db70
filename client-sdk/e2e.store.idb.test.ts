// The IndexedDB key store (on fake-indexeddb, a fresh factory per store): the shared contract, values sealed at rest, records bound to their place, a reopen, concurrent first opens, and idbSecret.
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import { forms } from '../test/support/scan.js';
import { keyStoreContract } from './e2e.store.contract.js';
import { idbSecret, openIdbKeyStore } from './e2e.store.idb.js';
import type { KeyStore } from './e2e.store.js';
import { openIdbMessageStore } from './history.idb.js';

const factories = new WeakMap<KeyStore, IDBFactory>();

keyStoreContract('indexeddb', {
  create: async () => {
    const factory = new IDBFactory();
    const s = await openIdbKeyStore('keys', { factory });
    factories.set(s, factory);
    return s;
  },
  reopen: async (s) => {
    const factory = factories.get(s)!;
    (s as KeyStore & { close(): void }).close();
    return openIdbKeyStore('keys', { factory });
  },
});

// The same contract with the in-memory read cache of an exclusive store.
keyStoreContract('indexeddb, exclusive', {
  create: async () => {
    const factory = new IDBFactory();
    const s = await openIdbKeyStore('keys', { factory, exclusive: true });
    factories.set(s, factory);
    return s;
  },
  reopen: async (s) => {
    const factory = factories.get(s)!;
    (s as KeyStore & { close(): void }).close();
    return openIdbKeyStore('keys', { factory, exclusive: true });
  },
});

describe('openIdbKeyStore({ exclusive: true })', () => {
  it('answers repeated reads from memory, with copies, and stays in step with its own writes', async () => {
    const factory = new IDBFactory();
    const s = await openIdbKeyStore('keys', { factory, exclusive: true });
    await s.write([{ section: 'sessions', id: 'a', value: { n: 1 } }]);
    // Another writer behind its back (what `exclusive` rules out) is not seen: the value comes from memory.
    const other = await openIdbKeyStore('keys', { factory });
    await other.write([{ section: 'sessions', id: 'a', value: { n: 2 } }]);
    const got = (await s.get('sessions', 'a')) as { n: number };
    expect(got).toEqual({ n: 1 });
    got.n = 99;
    expect(await s.get('sessions', 'a')).toEqual({ n: 1 });
    expect(await s.get('sessions', 'missing')).toBeUndefined();
    await s.write([{ section: 'sessions', id: 'missing', value: 'now here' }, { section: 'sessions', id: 'a' }]);
    expect(await s.get('sessions', 'missing')).toBe('now here');
    expect(await s.get('sessions', 'a')).toBeUndefined();
    other.close();
    s.close();
  });

  it('a read racing a write never caches the value the write replaces', async () => {
    const factory = new IDBFactory();
    const s = await openIdbKeyStore('keys', { factory, exclusive: true });
    await s.write([{ section: 'sessions', id: 'a', value: 1 }]);
    const s2 = await openIdbKeyStore('keys', { factory, exclusive: true });
    const writing = s2.write([{ section: 'sessions', id: 'a', value: 2 }]);
    const raced = await s2.get('sessions', 'a'); // may see 1 or 2
    await writing;
    expect([1, 2]).toContain(raced);
    expect(await s2.get('sessions', 'a')).toBe(2);
    // The read first: it reads the old value, and is still opening it when the write commits.
    const s3 = await openIdbKeyStore('keys', { factory, exclusive: true });
    const reading = s3.get('sessions', 'a');
    const replacing = s3.write([{ section: 'sessions', id: 'a', value: 3 }]);
    expect([2, 3]).toContain(await reading);
    await replacing;
    expect(await s3.get('sessions', 'a')).toBe(3);
    s.close();
    s2.close();
    s3.close();
  });
});

const wait = <T>(req: IDBRequest<T>) =>
  new Promise<T>((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });

/** The database as it is at rest, opened directly (no sealing key involved). */
const raw = (factory: IDBFactory, name: string) => wait(factory.open(name));

interface Row {
  section: string;
  id: string;
  iv: Uint8Array;
  ciphertext: Uint8Array;
}

/** Every byte the key store's database holds: its rows' keys, IVs and ciphertexts, and the meta records other than the CryptoKey. */
async function everything(factory: IDBFactory, name: string): Promise<Buffer> {
  const db = await raw(factory, name);
  const tx = db.transaction(['values', 'meta']);
  const rows = (await wait(tx.objectStore('values').getAll())) as Row[];
  const meta = (await wait(tx.objectStore('meta').getAll())) as unknown[];
  db.close();
  const parts = rows.flatMap((r) => [Buffer.from(r.section), Buffer.from(r.id), Buffer.from(r.iv), Buffer.from(r.ciphertext)]);
  for (const m of meta) {
    if (m instanceof CryptoKey) continue;
    const sealed = m as { iv: Uint8Array; ciphertext: Uint8Array };
    parts.push(Buffer.from(sealed.iv), Buffer.from(sealed.ciphertext));
  }
  return Buffer.concat(parts);
}

const leaked = (blob: Buffer, s: string | Uint8Array) => forms(Buffer.from(s)).some((f) => blob.includes(f));

describe('openIdbKeyStore', () => {
  it('holds values only sealed, under a non-extractable AES-GCM key kept in the database (ids stay plain: they are keys)', async () => {
    const factory = new IDBFactory();
    const s = await openIdbKeyStore('keys', { factory });
    const secret = new Uint8Array(32).map((_, i) => 200 - i);
    await s.write([
      { section: 'device', id: 'self', value: { sec: Buffer.from(secret).toString('base64'), note: 'canary-value-at-rest' } },
      { section: 'sessions', id: 'canary-id-in-the-clear', value: 'canary-session-at-rest' },
    ]);
    const blob = await everything(factory, 'keys');
    expect(leaked(blob, 'canary-value-at-rest')).toBe(false);
    expect(leaked(blob, secret)).toBe(false);
    expect(leaked(blob, 'canary-session-at-rest')).toBe(false);
    expect(leaked(blob, 'canary-id-in-the-clear')).toBe(true); // the scan does find what is there

    const db = await raw(factory, 'keys');
    const key = (await wait(db.transaction('meta').objectStore('meta').get('sealKey'))) as CryptoKey;
    db.close();
    expect(key).toBeInstanceOf(CryptoKey);
    expect(key.extractable).toBe(false);
    expect(key.algorithm).toEqual({ name: 'AES-GCM', length: 256 });
    await expect(crypto.subtle.exportKey('raw', key)).rejects.toThrow();
    s.close();
  });

  it('refuses a record moved to another id or section, or altered, instead of returning it', async () => {
    const factory = new IDBFactory();
    const s = await openIdbKeyStore('keys', { factory });
    await s.write([{ section: 'sessions', id: 'd1', value: { ratchet: 'alice' } }]);
    const db = await raw(factory, 'keys');
    const row = (await wait(db.transaction('values').objectStore('values').get(['sessions', 'd1']))) as Row;
    const tx = db.transaction('values', 'readwrite');
    tx.objectStore('values').put({ ...row, id: 'd2' });
    tx.objectStore('values').put({ ...row, section: 'identities' });
    const flipped = row.ciphertext.slice();
    flipped[0]! ^= 1;
    tx.objectStore('values').put({ ...row, id: 'd3', ciphertext: flipped });
    await new Promise((resolve) => (tx.oncomplete = resolve));
    db.close();

    expect(await s.get('sessions', 'd1')).toEqual({ ratchet: 'alice' });
    await expect(s.get('sessions', 'd2')).rejects.toMatchObject({ code: 'invalid', message: expect.stringContaining('sessions/d2') });
    await expect(s.get('identities', 'd1')).rejects.toMatchObject({ code: 'invalid' });
    await expect(s.get('sessions', 'd3')).rejects.toMatchObject({ code: 'invalid' });
    s.close();
  });

  it('sees after a reopen what was written and deleted before it, sealed under the same key', async () => {
    const factory = new IDBFactory();
    const s = await openIdbKeyStore('keys', { factory });
    await s.write([
      { section: 'oneTimePrekeys', id: '1', value: 1 },
      { section: 'oneTimePrekeys', id: '2', value: { n: 2 } },
      { section: 'trust', id: 'u', value: [true, null, 'x'] },
    ]);
    await s.write([{ section: 'oneTimePrekeys', id: '1' }]);
    s.close();
    const again = await openIdbKeyStore('keys', { factory });
    expect(await again.ids('oneTimePrekeys')).toEqual(['2']);
    expect(await again.get('oneTimePrekeys', '2')).toEqual({ n: 2 });
    expect(await again.get('trust', 'u')).toEqual([true, null, 'x']);
    expect(await again.get('oneTimePrekeys', '1')).toBeUndefined();
    again.close();
  });

  it('reads IndexedDB on every get: a second connection (a service worker’s) sees the first one’s writes, and both agree on one sealing key when they open a new database at once', async () => {
    const factory = new IDBFactory();
    const [page, worker] = await Promise.all([openIdbKeyStore('keys', { factory }), openIdbKeyStore('keys', { factory })]);
    await page.write([{ section: 'pushed', id: 'm1', value: 'from the page' }]);
    expect(await worker.get('pushed', 'm1')).toBe('from the page');
    await worker.write([{ section: 'pushed', id: 'm1', value: 'from the worker' }]);
    expect(await page.get('pushed', 'm1')).toBe('from the worker');
    page.close();
    worker.close();
  });

  it('finishes the writes called before close, then refuses calls', async () => {
    const factory = new IDBFactory();
    const s = await openIdbKeyStore('keys', { factory });
    const pending = s.write([{ section: 'device', id: 'self', value: 'last' }]);
    s.close();
    await pending;
    await expect(s.get('device', 'self')).rejects.toMatchObject({ code: 'unavailable' });
    await expect(s.write([{ section: 'device', id: 'self' }])).rejects.toMatchObject({ code: 'unavailable' });
    const again = await openIdbKeyStore('keys', { factory });
    expect(await again.get('device', 'self')).toBe('last');
    again.close();
  });

  it('refuses a database that holds a message store', async () => {
    const factory = new IDBFactory();
    await (await openIdbMessageStore('shared', { factory, keyRange: IDBKeyRange })).close();
    await expect(openIdbKeyStore('shared', { factory })).rejects.toMatchObject({ code: 'invalid' });
  });
});

describe('idbSecret', () => {
  it('makes 32 random bytes once and returns the same ones on every later call and reopen, beside the key store', async () => {
    const factory = new IDBFactory();
    const s = await openIdbKeyStore('keys', { factory });
    await s.write([{ section: 'device', id: 'self', value: 'kept' }]);
    const first = await idbSecret('keys', { factory });
    expect(first).toBeInstanceOf(Uint8Array);
    expect(first.length).toBe(32);
    expect(await idbSecret('keys', { factory })).toEqual(first);
    s.close();
    const [a, b] = await Promise.all([idbSecret('keys', { factory }), idbSecret('keys', { factory })]);
    expect(a).toEqual(first);
    expect(b).toEqual(first);
    const again = await openIdbKeyStore('keys', { factory });
    expect(await again.get('device', 'self')).toBe('kept');
    again.close();
    expect(await idbSecret('other', { factory })).not.toEqual(first);
    expect(await idbSecret('keys', { factory: new IDBFactory() })).not.toEqual(first);
  });

  it('agrees on one secret when two contexts make it at once, and keeps it sealed', async () => {
    const factory = new IDBFactory();
    const [a, b] = await Promise.all([idbSecret('keys', { factory }), idbSecret('keys', { factory })]);
    expect(a).toEqual(b);
    expect(leaked(await everything(factory, 'keys'), a)).toBe(false);
  });
});
