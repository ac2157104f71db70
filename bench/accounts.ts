// Parley setup through the real SDK: registers and logs in one user (one device) per pair end, and reads devices over REST.
import { request } from '../client-sdk/http.js';
import { createClient } from '../client-sdk/index.js';

/** What speaking the wire protocol as this device takes. */
export interface BenchDevice {
  username: string;
  userId: string;
  deviceId: string;
  token: string;
}

/**
 * Creates the account and logs in a new device with `createClient(...).register()` (which also
 * publishes its prekeys), then takes the session token (`client.accessToken`): the bench speaks
 * the protocol itself.
 */
export async function registerDevice(url: string, username: string): Promise<BenchDevice> {
  const client = createClient({ url, username, password: `bench-password-${username}`, deviceName: 'bench' });
  await client.register();
  const token = client.accessToken;
  const deviceId = client.deviceId;
  if (typeof token !== 'string' || !deviceId) throw new Error('the SDK logged in but exposed no token or device id ');
  return { username, userId: client.userId, deviceId, token };
}

/** A user's devices and their public keys (GET /v1/users/:id/devices), as the SDK fetches them before encrypting. */
export async function devicesOf(url: string, token: string, userId: string): Promise<{ id: string; publicKey: string }[]> {
  return (await request<{ devices: { id: string; publicKey: string }[] }>(url, 'GET', `/v1/users/${userId}/devices`, { token })).devices;
}

/** `fn` over `items`, at most `limit` at a time, results in order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
