// The IndexedDB message store (on fake-indexeddb, a fresh factory per store): the shared contract, the layout history.ts prescribes, entries that change store at a seq, and stored bodies.
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import { openIdbKeyStore } from './e2e.store.idb.js';
import { messageStoreContract } from './history.contract.js';
import { openIdbMessageStore } from './history.idb.js';
import type { MessageStore, StoredEntry } from './history.js';

const factories = new WeakMap<MessageStore, IDBFactory>();
const open = (factory: IDBFactory) => openIdbMessageStore('history', { factory, keyRange: IDBKeyRange });

messageStoreContract('indexeddb', {
  create: async () => {
    const factory = new IDBFactory();
    const s = await open(factory);
    factories.set(s, factory);
    return s;
  },
  reopen: async (s) => {
    await s.close();
    return open(factories.get(s)!);
  },
});

const wait = <T>(req: IDBRequest<T>) =>
  new Promise<T>((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });

const msg = (seq: number, id = `m${seq}`): StoredEntry => ({ conversationId: 'c', seq, id, sentAt: seq, body: new Uint8Array([seq]) });
const act = (seq: number, target: string): StoredEntry => ({ ...msg(seq, `a${seq}`), target });

/** The keys [conversationId, seq] held by each object store, read directly. */
async function keys(factory: IDBFactory): Promise<{ messages: unknown[]; actions: unknown[] }> {
  const db = await wait(factory.open('history'));
  const tx = db.transaction(['messages', 'actions']);
  const out = { messages: await wait(tx.objectStore('messages').getAllKeys()), actions: await wait(tx.objectStore('actions').getAllKeys()) };
  db.close();
  return out;
}

describe('openIdbMessageStore', () => {
  it('lays the database out as history.ts says: messages and actions by [conversationId, seq], indexes byId and byTarget', async () => {
    const factory = new IDBFactory();
    const s = await open(factory);
    await s.put([msg(1, 'x'), act(2, 'x')]);
    await s.close();
    const db = await wait(factory.open('history'));
    expect(Array.from(db.objectStoreNames).sort()).toEqual(['actions', 'messages']);
    const tx = db.transaction(['messages', 'actions']);
    const messages = tx.objectStore('messages');
    const actions = tx.objectStore('actions');
    expect(messages.keyPath).toEqual(['conversationId', 'seq']);
    expect(actions.keyPath).toEqual(['conversationId', 'seq']);
    expect(Array.from(messages.indexNames)).toEqual(['byId']);
    expect(messages.index('byId').keyPath).toEqual(['conversationId', 'id']);
    expect(Array.from(actions.indexNames)).toEqual(['byTarget']);
    expect(actions.index('byTarget').keyPath).toEqual(['conversationId', 'target']);
    expect(await wait(messages.getAll())).toEqual([msg(1, 'x')]);
    expect(await wait(actions.getAll())).toEqual([act(2, 'x')]);
    db.close();
  });

  it('keeps one entry per seq when put turns a message into an action there, or back', async () => {
    const factory = new IDBFactory();
    const s = await open(factory);
    await s.put([msg(1, 'x'), msg(2, 'y')]);
    await s.put([act(2, 'x')]);
    expect(await keys(factory)).toEqual({ messages: [['c', 1]], actions: [['c', 2]] });
    expect(await s.message('c', 'y')).toBeUndefined();
    await s.put([msg(2, 'y')]);
    expect(await keys(factory)).toEqual({ messages: [['c', 1], ['c', 2]], actions: [] });
    expect(await s.actions('c', ['x'])).toEqual([]);
    await s.close();
  });

  it('merges nothing over a seq held in the other store, and keeps the first of a seq given twice', async () => {
    const factory = new IDBFactory();
    const s = await open(factory);
    await s.put([msg(1, 'x'), act(2, 'x')]);
    await s.merge([act(1, 'x'), msg(2, 'y'), { ...msg(3, 'z'), body: new Uint8Array([1]) }, { ...msg(3, 'z'), body: new Uint8Array([2]) }, act(3, 'x')]);
    expect(await keys(factory)).toEqual({ messages: [['c', 1], ['c', 3]], actions: [['c', 2]] });
    expect((await s.message('c', 'z'))!.body).toEqual(new Uint8Array([1]));
    expect(await s.message('c', 'y')).toBeUndefined();
    await s.close();
  });

  it('stores a body that is a view into a larger buffer as its own bytes only', async () => {
    const factory = new IDBFactory();
    const s = await open(factory);
    const big = new Uint8Array(1 << 16).fill(9);
    big.set([1, 2, 3], 100);
    await s.put([{ ...msg(1, 'x'), body: big.subarray(100, 103) }]);
    const got = (await s.message('c', 'x'))!;
    expect(got.body).toEqual(new Uint8Array([1, 2, 3]));
    expect(got.body.buffer.byteLength).toBe(3);
    await s.close();
  });

  it('refuses calls after close, and a database that holds a key store', async () => {
    const factory = new IDBFactory();
    const s = await open(factory);
    await s.close();
    await expect(s.page('c', { limit: 1 })).rejects.toMatchObject({ code: 'unavailable' });
    await expect(s.put([msg(1)])).rejects.toMatchObject({ code: 'unavailable' });
    (await openIdbKeyStore('keys', { factory })).close();
    await expect(openIdbMessageStore('keys', { factory, keyRange: IDBKeyRange })).rejects.toMatchObject({ code: 'invalid' });
  });

  it('says what is missing where there is no IndexedDB (Node without a factory)', async () => {
    await expect(openIdbMessageStore('history')).rejects.toMatchObject({ code: 'unavailable', message: expect.stringContaining('options.factory') });
  });
});
