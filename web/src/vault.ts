// The signed-in account's credentials, kept for reloads: in a database of the SDK's IndexedDB key store of their own, so they are sealed as the keys are (AES-GCM under a non-extractable Web Crypto key).
import { type KeyStore, openIdbKeyStore } from '../../client-sdk/index.js';

/** Not any account's device database (those are `parley.<username>.*`): this one holds only the credentials. */
const DB = 'parley.web.vault';
/** Where in it: the key store's sections are typed, and this is the one record of this database. */
const AT = { section: 'device', id: 'web-credentials' } as const;

export interface Credentials {
  username: string;
  password: string;
}

async function withVault<T>(f: (store: KeyStore) => Promise<T>): Promise<T> {
  const store = await openIdbKeyStore(DB);
  try {
    return await f(store);
  } finally {
    store.close();
  }
}

export function saveCredentials(c: Credentials): Promise<void> {
  return withVault((s) => s.write([{ ...AT, value: { username: c.username, password: c.password } }]));
}

export async function loadCredentials(): Promise<Credentials | null> {
  const held = (await withVault((s) => s.get(AT.section, AT.id)).catch(() => undefined)) as Credentials | undefined;
  return held && typeof held.username === 'string' && typeof held.password === 'string' ? held : null;
}

export function forgetCredentials(): Promise<void> {
  return withVault((s) => s.write([AT]));
}
