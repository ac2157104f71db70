// The service worker: shows a notification for each Web Push. When no page of the app is open it opens the message on this device (the SDK's handlePush over the same IndexedDB stores) and shows its text; with a page open, that page is the device's one client (it holds the sessions), so it shows a notification only when no page is focused.
import { createClient, type Message } from '../../client-sdk/index.js';
import { deviceLock, openDevice } from './device.js';
import { type Credentials, loadCredentials } from './vault.js';

interface PushEventLike extends Event {
  data: { text(): string } | null;
  waitUntil(p: Promise<unknown>): void;
}
interface NotificationEventLike extends Event {
  notification: Notification;
  waitUntil(p: Promise<unknown>): void;
}
interface WindowClientLike {
  focused: boolean;
  url: string;
  focus(): Promise<unknown>;
}
interface SwScope {
  registration: ServiceWorkerRegistration;
  clients: { matchAll(o: { type: 'window'; includeUncontrolled: boolean }): Promise<WindowClientLike[]>; openWindow(url: string): Promise<unknown>; claim(): Promise<void> };
  skipWaiting(): Promise<void>;
  addEventListener(type: string, f: (e: Event) => void): void;
  location: Location;
}
const sw = self as unknown as SwScope;

sw.addEventListener('install', () => void sw.skipWaiting());
sw.addEventListener('activate', (e) => (e as PushEventLike).waitUntil(sw.clients.claim()));

sw.addEventListener('push', (event) => {
  const e = event as PushEventLike;
  e.waitUntil(onPush(e.data?.text() ?? ''));
});

sw.addEventListener('notificationclick', (event) => {
  const e = event as NotificationEventLike;
  e.notification.close();
  e.waitUntil(
    sw.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((open) => (open[0] ? open[0].focus() : sw.clients.openWindow('/'))),
  );
});

async function onPush(payload: string): Promise<void> {
  const open = await sw.clients.matchAll({ type: 'window', includeUncontrolled: true });
  if (open.some((c) => c.focused)) return; // the chat is on screen
  let shown: { title: string; body: string; tag: string } = { title: 'Parley', body: 'New messages', tag: 'parley' };
  if (open.length === 0) {
    const m = await withDevice(payload).catch(() => null);
    if (m) shown = { title: m.title, body: m.message.file ? `📎 ${m.message.file.name}` : m.message.text, tag: m.message.conversationId };
  }
  await sw.registration.showNotification(shown.title, { body: shown.body, tag: shown.tag, data: { url: '/' } });
}

/** Opens the push with the device when no page holds it (a page being opened meanwhile waits for the worker). */
async function withDevice(payload: string): Promise<{ title: string; message: Message } | null> {
  const credentials = await loadCredentials();
  if (!credentials) return null;
  const locks = (navigator as unknown as { locks: LockManager }).locks;
  return locks.request(deviceLock(credentials.username), { ifAvailable: true }, (lock) => (lock ? openHere(payload, credentials) : null));
}

/** Decrypts the pushed message with this browser's device (null for a wake-up push, or one it cannot open). */
async function openHere(payload: string, credentials: Credentials): Promise<{ title: string; message: Message } | null> {
  const device = await openDevice(credentials.username);
  const client = createClient({ url: sw.location.origin, ...credentials, keyStore: device.keyStore, messageStore: device.messageStore, historyKey: device.historyKey });
  try {
    const message = await client.handlePush(payload);
    if (!message) return null;
    const title = await client.username(message.from).catch(() => 'New message');
    return { title, message };
  } finally {
    await client.close().catch(() => undefined);
    await device.close();
  }
}
