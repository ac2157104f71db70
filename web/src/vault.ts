// The signed-in account's credentials, kept for reloads: sealed with AES-GCM under a non-extractable Web Crypto key that never leaves IndexedDB.
const DB = 'parley.web';
const STORE = 'vault';

export interface Credentials {
  username: string;
  password: string;
}

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

async function run<T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T> | void): Promise<T | undefined> {
  const db = await open();
  try {
    return await new Promise<T | undefined>((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = f(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req ? req.result : undefined);
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** The vault's key: created once, non-extractable, stored as a CryptoKey object (script can use it, never read it). */
async function vaultKey(): Promise<CryptoKey> {
  const held = await run<CryptoKey>('readonly', (s) => s.get('key'));
  if (held) return held;
  const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  await run('readwrite', (s) => void s.put(key, 'key'));
  return key;
}

export async function saveCredentials(c: Credentials): Promise<void> {
  const key = await vaultKey();
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, new TextEncoder().encode(JSON.stringify(c)));
  await run('readwrite', (s) => void s.put({ iv, sealed }, 'credentials'));
}

export async function loadCredentials(): Promise<Credentials | null> {
  const held = await run<{ iv: Uint8Array<ArrayBuffer>; sealed: ArrayBuffer }>('readonly', (s) => s.get('credentials')).catch(() => undefined);
  if (!held) return null;
  try {
    const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: held.iv }, await vaultKey(), held.sealed);
    return JSON.parse(new TextDecoder().decode(plain)) as Credentials;
  } catch {
    return null;
  }
}

export async function forgetCredentials(): Promise<void> {
  await run('readwrite', (s) => void s.delete('credentials'));
}
