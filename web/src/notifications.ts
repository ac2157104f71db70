// Desktop notifications: the service worker subscribes to Web Push with the server's VAPID key and the SDK registers the subscription for this device.
import type { ChatModel } from './model.js';

export async function enableNotifications(model: ChatModel): Promise<string> {
  if (!('serviceWorker' in navigator) || !('PushManager' in window)) return 'This browser has no Web Push.';
  if ((await Notification.requestPermission()) !== 'granted') return 'Notifications are blocked for this site.';
  const reg = await navigator.serviceWorker.ready;
  const key = await model.client.vapidPublicKey();
  const sub = (await reg.pushManager.getSubscription()) ?? (await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: fromB64url(key) }));
  const json = sub.toJSON() as { endpoint: string; keys: { p256dh: string; auth: string } };
  await model.client.registerPush({ kind: 'webpush', endpoint: json.endpoint, keys: { p256dh: json.keys.p256dh, auth: json.keys.auth } });
  return 'Notifications are on for this browser.';
}

function fromB64url(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
