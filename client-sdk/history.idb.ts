// The browser message store: a MessageStore over IndexedDB, in the layout client-sdk/history.ts prescribes.
import { ParleyError } from '../protocol/errors.js';
import { idb } from './idb.js';
import type { MessageStore, StoredEntry } from './history.js';

export interface IdbMessageStoreOptions {
  /** The IndexedDB to use. Default `globalThis.indexedDB`. */
  factory?: IDBFactory;
  /**
   * `IDBKeyRange` of the same implementation as `factory` (paging needs a key range, and an
   * implementation accepts only its own). Default `globalThis.IDBKeyRange`; tests pass
   * fake-indexeddb's with its factory, since Node has no global one.
   */
  keyRange?: typeof IDBKeyRange;
}

const VERSION = 1;

const { wrap, request, done } = idb('message store');

/** The entry as stored: only the port's fields, and a body that is not a view into a larger buffer (a clone would keep all of it). */
const row = (e: StoredEntry): StoredEntry => ({
  conversationId: e.conversationId,
  seq: e.seq,
  id: e.id,
  ...(e.target === undefined ? {} : { target: e.target }),
  sentAt: e.sentAt,
  body: e.body.byteOffset === 0 && e.body.byteLength === e.body.buffer.byteLength ? e.body : e.body.slice(),
});

/** IndexedDB's order of the keys [conversationId, seq]: strings by code unit (as `<` compares them), then seq. */
const byKey = (a: StoredEntry, b: StoredEntry) => (a.conversationId < b.conversationId ? -1 : a.conversationId > b.conversationId ? 1 : a.seq - b.seq);

/**
 * A MessageStore in the IndexedDB database `name` (created on first use), version 1, laid out
 * as history.ts says: `messages` and `actions`, keyPath `['conversationId', 'seq']`, indexes
 * `messages.byId` on `['conversationId', 'id']` and `actions.byTarget` on
 * `['conversationId', 'target']`; an entry with a `target` lives in `actions`, any other in
 * `messages`. Each call makes its transaction when it is called, and IndexedDB runs
 * transactions over the same stores in the order they were made: writes apply in call order
 * and reads see the writes called before them. Writes use `durability: 'strict'` and resolve
 * on `complete`. Bodies are stored as given (ciphertext under the client's `historyKey`).
 * Give the key store another database.
 * @example createClient({ url, username, password, keyStore, messageStore: await openIdbMessageStore('parley-history'), historyKey })
 */
export async function openIdbMessageStore(name: string, options: IdbMessageStoreOptions = {}): Promise<MessageStore> {
  const factory = options.factory ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  const KeyRange = options.keyRange ?? (globalThis as { IDBKeyRange?: typeof IDBKeyRange }).IDBKeyRange;
  if (!factory || !KeyRange) throw new ParleyError('unavailable', 'message store: IndexedDB is not available here (pass options.factory and options.keyRange)');

  const req = factory.open(name, VERSION);
  req.onupgradeneeded = () => {
    const db = req.result;
    if (!db.objectStoreNames.contains('messages')) db.createObjectStore('messages', { keyPath: ['conversationId', 'seq'] }).createIndex('byId', ['conversationId', 'id']);
    if (!db.objectStoreNames.contains('actions')) db.createObjectStore('actions', { keyPath: ['conversationId', 'seq'] }).createIndex('byTarget', ['conversationId', 'target']);
  };
  const db = await request(req);
  // Let a newer version of the app upgrade the database; this connection is done then.
  db.onversionchange = () => db.close();
  if (!db.objectStoreNames.contains('messages') || !db.objectStoreNames.contains('actions')) {
    db.close();
    throw new ParleyError('invalid', `message store: database ${name} is not a Parley message store (give the key store another name)`);
  }

  /** The last write called: `close` waits for it. */
  let lastWrite: Promise<unknown> = Promise.resolve();
  let closed = false;

  /** Runs `fill` in a new transaction over both stores and resolves when it commits (or, for reads, with what `fill` gathered). */
  const run = <T>(mode: IDBTransactionMode, fill: (messages: IDBObjectStore, actions: IDBObjectStore) => () => T): Promise<T> => {
    try {
      if (closed) throw new ParleyError('unavailable', `message store: ${name} is closed`);
      const tx = db.transaction(['messages', 'actions'], mode, mode === 'readwrite' ? { durability: 'strict' } : undefined);
      const result = fill(tx.objectStore('messages'), tx.objectStore('actions'));
      const p = done(tx).then(result);
      if (mode === 'readwrite') lastWrite = p.catch(() => undefined);
      return p;
    } catch (err) {
      return Promise.reject(wrap(err));
    }
  };
  const write = (fill: (messages: IDBObjectStore, actions: IDBObjectStore) => void) =>
    run('readwrite', (m, a) => {
      fill(m, a);
      return () => undefined;
    });
  /** The store an entry lives in, and the other one. */
  const storeOf = (e: StoredEntry, m: IDBObjectStore, a: IDBObjectStore): [IDBObjectStore, IDBObjectStore] => (e.target === undefined ? [m, a] : [a, m]);

  return {
    put: (entries) =>
      write((m, a) => {
        for (const e of entries) {
          const [own, other] = storeOf(e, m, a);
          own.put(row(e));
          other.delete([e.conversationId, e.seq]); // a message may become an action at the same seq, or back
        }
      }),
    merge: (entries) =>
      write((m, a) => {
        // The first of a key wins within a call, as `add` keeps the first; so no two entries
        // below share a key, and each one's check and add cannot race another's.
        const seen = new Set<string>();
        for (const e of entries) {
          const k = JSON.stringify([e.conversationId, e.seq]);
          if (seen.has(k)) continue;
          seen.add(k);
          const [own, other] = storeOf(e, m, a);
          // The key is held if either store has it.
          other.getKey([e.conversationId, e.seq]).onsuccess = (ev) => {
            if ((ev.target as IDBRequest).result !== undefined) return;
            own.add(row(e)).onerror = (err) => {
              const r = err.target as IDBRequest;
              if (r.error?.name === 'ConstraintError') err.preventDefault(); // held already: keep it, and the transaction
            };
          };
        }
      }),
    page: (conversationId, { before, limit }) => {
      if (limit <= 0 || (before !== undefined && before <= 0)) return Promise.resolve([]);
      return run('readonly', (m) => {
        const out: StoredEntry[] = [];
        const range = KeyRange.bound([conversationId, 0], [conversationId, before ?? Infinity], false, true);
        const cursor = m.openCursor(range, 'prev');
        cursor.onsuccess = () => {
          const c = cursor.result;
          if (!c) return;
          out.push(c.value as StoredEntry);
          if (out.length < limit) c.continue();
        };
        return () => out;
      });
    },
    message: (conversationId, id) =>
      run('readonly', (m) => {
        const r = m.index('byId').get([conversationId, id]);
        return () => r.result as StoredEntry | undefined;
      }),
    actions: (conversationId, targets) => {
      if (targets.length === 0) return Promise.resolve([]);
      return run('readonly', (_, a) => {
        const index = a.index('byTarget');
        const reads = [...new Set(targets)].map((t) => index.getAll([conversationId, t]));
        return () => reads.flatMap((r) => r.result as StoredEntry[]).sort((x, y) => x.seq - y.seq);
      });
    },
    delete: (conversationId, seqs) => {
      if (seqs.length === 0) return Promise.resolve();
      return write((m, a) => {
        for (const s of seqs) {
          m.delete([conversationId, s]);
          a.delete([conversationId, s]);
        }
      });
    },
    exportAll: () =>
      run('readonly', (m, a) => {
        const messages = m.getAll();
        const actions = a.getAll();
        return () => [...(messages.result as StoredEntry[]), ...(actions.result as StoredEntry[])].sort(byKey);
      }),
    close: async () => {
      closed = true;
      await lastWrite;
      db.close();
    },
  };
}
