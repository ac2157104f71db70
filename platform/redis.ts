// Redis clients (ioredis) with the options every Redis adapter relies on.
import { Redis } from 'ioredis';

/**
 * Opens a client and waits until it is ready. Commands fail fast while Redis is away
 * (no offline queue, one retry), so callers get `unavailable` instead of hanging; the
 * client keeps reconnecting in the background with capped backoff.
 */
export async function openRedis(url: string, name: string): Promise<Redis> {
  const client = new Redis(url, {
    connectionName: name,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2_000),
    lazyConnect: true,
  });
  client.on('error', () => {}); // reported through the failing calls, counted by their callers
  await client.connect();
  return client;
}
