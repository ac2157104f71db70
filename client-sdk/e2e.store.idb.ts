// The browser key store: a KeyStore over IndexedDB, every value sealed at rest (AES-GCM) under a non-extractable Web Crypto key kept in the same database.
//
// Why the keys themselves are not non-extractable CryptoKeys: the identity, prekey, ratchet and
// sender keys are X25519/Ed25519 and chain keys that libsodium uses as raw bytes (and the
// ratchet derives new ones on every message), so they must be readable by the page. What Web
// Crypto can protect is the key that seals them: one AES-GCM 256 key, made with
// `extractable: false` and stored as the CryptoKey object itself (IndexedDB structured-clones
// it and it stays non-extractable), so the database's files and anything that copies them hold
// only ciphertext, and the sealing key's bytes are never visible to script.
import { ParleyError } from '../protocol/errors.js';
import { idb } from './idb.js';
import type { JsonValue, KeyChange, KeySection, KeyStore } from './e2e.store.js';

export interface IdbKeyStoreOptions {
  /**
   * This store object is the only user of the database while it is open (the app makes sure,
   * e.g. with a Web Lock per device that its pages and service worker take): values are then
   * kept in memory after their first read, and a `get` costs no IndexedDB read or decryption.
   * Default false: every `get` reads the database.
   */
  exclusive?: boolean;
  /** The IndexedDB to use. Default `globalThis.indexedDB` (tests pass fake-indexeddb's `new IDBFactory()`). */
  factory?: IDBFactory;
}

/** A sealed value as stored: AES-GCM over the value's JSON, with the record's name as additional data. */
interface Sealed {
  iv: Uint8Array<ArrayBuffer>;
  ciphertext: Uint8Array<ArrayBuffer>;
}

/** A row of the `values` store. */
interface ValueRow extends Sealed {
  section: KeySection;
  id: string;
}

const VERSION = 1;
const SEAL_KEY = 'sealKey';
const HISTORY_KEY = 'historyKey';

/** Additional data binding a sealed value to where it is stored: a record moved elsewhere fails to open. */
const valueName = (section: KeySection, id: string) => JSON.stringify(['value', section, id]);
const metaName = (key: string) => JSON.stringify(['meta', key]);

const { wrap, request, done, factory: factoryOf } = idb('key store');

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new ParleyError('unavailable', 'key store: Web Crypto is not available (IndexedDB key stores need a secure context)');
  return s;
}

/** Opens (creating on first use) the database and its sealing key. */
async function openSealed(name: string, options: IdbKeyStoreOptions): Promise<{ db: IDBDatabase; key: CryptoKey }> {
  const factory = factoryOf(options.factory);
  const req = factory.open(name, VERSION);
  req.onupgradeneeded = () => {
    const db = req.result;
    if (!db.objectStoreNames.contains('values')) db.createObjectStore('values', { keyPath: ['section', 'id'] }).createIndex('bySection', 'section');
    if (!db.objectStoreNames.contains('meta')) db.createObjectStore('meta');
  };
  const db = await request(req);
  // Let a newer version of the app upgrade the database; this connection is done then.
  db.onversionchange = () => db.close();
  try {
    if (!db.objectStoreNames.contains('values') || !db.objectStoreNames.contains('meta')) {
      throw new ParleyError('invalid', `key store: database ${name} is not a Parley key store (give the message store another name)`);
    }
    // Made before the transaction (which would commit on any await that is not IndexedDB's);
    // kept only if the database has none, and readwrite transactions on `meta` run one at a
    // time, so two contexts opening a new database at once agree on one key.
    const fresh = await subtle().generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
    const tx = db.transaction('meta', 'readwrite', { durability: 'strict' });
    const meta = tx.objectStore('meta');
    let key: CryptoKey | undefined;
    meta.get(SEAL_KEY).onsuccess = (e) => {
      key = (e.target as IDBRequest<CryptoKey | undefined>).result;
      if (!key) {
        key = fresh;
        meta.add(fresh, SEAL_KEY);
      }
    };
    await done(tx);
    return { db, key: key! };
  } catch (err) {
    db.close();
    throw wrap(err);
  }
}

async function seal(key: CryptoKey, name: string, plain: Uint8Array<ArrayBuffer>): Promise<Sealed> {
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(12));
  const ct = await subtle().encrypt({ name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(name) }, key, plain);
  return { iv, ciphertext: new Uint8Array(ct) };
}

async function unseal(key: CryptoKey, name: string, sealed: Sealed, what: string): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return new Uint8Array(await subtle().decrypt({ name: 'AES-GCM', iv: sealed.iv, additionalData: new TextEncoder().encode(name) }, key, sealed.ciphertext));
  } catch {
    throw new ParleyError('invalid', `key store: ${what} does not open under this database's key (moved, altered or from another database)`);
  }
}

/**
 * A KeyStore in the IndexedDB database `name` (created on first use). Layout, version 1:
 * - `values`, keyPath `['section', 'id']`, index `bySection` on `section`: one row per value,
 *   `{ section, id, iv, ciphertext }`, the ciphertext AES-GCM over the value's JSON with
 *   `["value", section, id]` (JSON) as additional data. `ids` reads the index's keys only.
 * - `meta`, out-of-line keys: `sealKey` → the non-extractable AES-GCM 256 CryptoKey;
 *   `historyKey` → idbSecret's sealed secret (additional data `["meta", "historyKey"]`).
 * Nothing is cached but the sealing key unless `exclusive` says this object is the database's
 * only user (a page and its service worker open the same database): then values are kept
 * after their first read or write. A `write` is
 * one readwrite transaction with `durability: 'strict'`, resolved on `complete`; writes are
 * sealed and committed one after another, in call order. `close()` closes the database once
 * the writes already called are done; nothing after it. Give the message store another name.
 * @example createClient({ url, username, password, keyStore: await openIdbKeyStore('parley-keys'), historyKey: await idbSecret('parley-keys') })
 */
export async function openIdbKeyStore(name: string, options: IdbKeyStoreOptions = {}): Promise<KeyStore & { close(): void }> {
  const { db, key } = await openSealed(name, options);
  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;
  /** With `exclusive`: values read or written so far, by `section/id` (undefined: known absent). */
  const cache = options.exclusive ? new Map<string, JsonValue | undefined>() : null;
  const slot = (section: KeySection, id: string) => `${section}/${id}`;
  /**
   * Writes called per slot, ever, and those not yet committed: a read that overlapped a write
   * (called during the read, or still pending) must not fill the cache with what it read.
   */
  const called = new Map<string, number>();
  const writing = new Map<string, number>();
  /** What a read notes as it starts: -1 when a write to the slot is pending (what it reads may be older than that write). */
  const readStarts = (section: KeySection, id: string) => ((writing.get(slot(section, id)) ?? 0) > 0 ? -1 : (called.get(slot(section, id)) ?? 0));
  /** Whether what a read found may be cached: no write was pending when it began, and none was called since. */
  const mayCache = (section: KeySection, id: string, calledBefore: number) => calledBefore >= 0 && (called.get(slot(section, id)) ?? 0) === calledBefore;
  const open = () => {
    if (closed) throw new ParleyError('unavailable', `key store: ${name} is closed`);
  };

  return {
    get: async (section, id) => {
      open();
      if (cache?.has(slot(section, id))) {
        const held = cache.get(slot(section, id));
        return held === undefined ? undefined : structuredClone(held); // the caller's to modify
      }
      const calledBefore = readStarts(section, id);
      let row: ValueRow | undefined;
      try {
        row = await request<ValueRow | undefined>(db.transaction('values').objectStore('values').get([section, id]));
      } catch (err) {
        throw wrap(err);
      }
      if (!row) {
        if (cache && mayCache(section, id, calledBefore)) cache.set(slot(section, id), undefined);
        return undefined;
      }
      const plain = await unseal(key, valueName(section, id), row, `the record ${section}/${id}`);
      const value = JSON.parse(new TextDecoder().decode(plain)) as JsonValue;
      if (cache && mayCache(section, id, calledBefore)) cache.set(slot(section, id), structuredClone(value));
      return value;
    },
    ids: async (section) => {
      open();
      try {
        const keys = await request(db.transaction('values').objectStore('values').index('bySection').getAllKeys(section));
        return keys.map((k) => (k as [KeySection, string])[1]);
      } catch (err) {
        throw wrap(err);
      }
    },
    write: (changes: KeyChange[]) => {
      try {
        open();
      } catch (err) {
        return Promise.reject(err);
      }
      const run = queue.then(async () => {
        // Sealed first: the transaction must not wait on anything but IndexedDB, or it commits early.
        const rows = await Promise.all(
          changes.map(async (c): Promise<KeyChange | ValueRow> =>
            c.value === undefined
              ? c
              : { section: c.section, id: c.id, ...(await seal(key, valueName(c.section, c.id), new TextEncoder().encode(JSON.stringify(c.value)))) },
          ),
        );
        try {
          const tx = db.transaction('values', 'readwrite', { durability: 'strict' });
          const values = tx.objectStore('values');
          for (const r of rows) {
            if ('ciphertext' in r) values.put(r);
            else values.delete([r.section, r.id]);
          }
          await done(tx);
        } catch (err) {
          for (const c of changes) cache?.delete(slot(c.section, c.id)); // unknown now: read again
          throw wrap(err);
        } finally {
          for (const c of changes) writing.set(slot(c.section, c.id), (writing.get(slot(c.section, c.id)) ?? 1) - 1);
        }
        for (const c of changes) cache?.set(slot(c.section, c.id), c.value === undefined ? undefined : structuredClone(c.value));
      });
      for (const c of changes) {
        writing.set(slot(c.section, c.id), (writing.get(slot(c.section, c.id)) ?? 0) + 1);
        called.set(slot(c.section, c.id), (called.get(slot(c.section, c.id)) ?? 0) + 1);
      }
      queue = run.catch(() => undefined);
      return run;
    },
    close: () => {
      closed = true;
      void queue.then(() => db.close());
    },
  };
}

/**
 * A 32-byte random secret kept in the key store database `name` (created on first use), made
 * once and sealed there by the database's non-extractable key: what a browser app gives the
 * client as its `historyKey`. Every call on the same database returns the same bytes; it is
 * gone with the database (and with it the history it sealed is unreadable).
 * @example createClient({ ..., messageStore: await openIdbMessageStore('parley-history'), historyKey: await idbSecret('parley-keys') })
 */
export async function idbSecret(name: string, options: IdbKeyStoreOptions = {}): Promise<Uint8Array> {
  const { db, key } = await openSealed(name, options);
  try {
    const fresh = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const sealedFresh = await seal(key, metaName(HISTORY_KEY), fresh);
    // As with the sealing key: kept only if there is none yet, in one transaction.
    const tx = db.transaction('meta', 'readwrite', { durability: 'strict' });
    const meta = tx.objectStore('meta');
    let stored: Sealed | undefined;
    meta.get(HISTORY_KEY).onsuccess = (e) => {
      stored = (e.target as IDBRequest<Sealed | undefined>).result;
      if (!stored) meta.add(sealedFresh, HISTORY_KEY);
    };
    await done(tx);
    return stored ? await unseal(key, metaName(HISTORY_KEY), stored, 'the history key') : fresh;
  } catch (err) {
    throw wrap(err);
  } finally {
    db.close();
  }
}
