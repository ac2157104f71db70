// This browser's device for one account: its keys, its message history and the key that seals that history, all in IndexedDB through the SDK's stores.
import { type KeyStore, type MessageStore, idbSecret, openIdbKeyStore, openIdbMessageStore } from '../../client-sdk/index.js';

export interface Device {
  keyStore: KeyStore;
  messageStore: MessageStore;
  /** Seals each stored message (the SDK's historyKey); kept sealed by a non-extractable Web Crypto key. */
  historyKey: Uint8Array;
  close(): Promise<void>;
  /** Closes and deletes the device's databases (after the account was deleted, or to start over). */
  erase(): Promise<void>;
}

const names = (username: string) => ({ keys: `parley.${username}.keys`, history: `parley.${username}.history` });

/** The Web Lock that makes one page (or the service worker) this device's only client at a time. */
export const deviceLock = (username: string) => `parley.device.${username}`;

/** Opens the device's stores; the caller holds `deviceLock(username)`, so the key store may keep what it read. */
export async function openDevice(username: string): Promise<Device> {
  const n = names(username);
  const keyStore = await openIdbKeyStore(n.keys, { exclusive: true });
  const historyKey = await idbSecret(n.keys);
  const messageStore = await openIdbMessageStore(n.history);
  const close = async () => {
    keyStore.close();
    await messageStore.close();
  };
  return {
    keyStore,
    messageStore,
    historyKey,
    close,
    async erase() {
      await close();
      await Promise.all([deleteDatabase(n.keys), deleteDatabase(n.history)]);
    },
  };
}

function deleteDatabase(name: string): Promise<void> {
  return new Promise((resolve) => {
    const r = indexedDB.deleteDatabase(name);
    r.onsuccess = r.onerror = r.onblocked = () => resolve();
  });
}
