// The server's VAPID key pair (RFC 8292): the configured one, else one generated once and kept in the database.
import webPush from 'web-push';
import type { Config } from './config.js';
import type { VapidKeys } from './push.js';
import type { Sql } from './sql.js';

/**
 * The VAPID keys Web Push is signed with. Browsers bind a subscription to the public key the
 * app subscribed with, so it must never change under them: without VAPID_PUBLIC_KEY /
 * VAPID_PRIVATE_KEY a pair is generated once and stored in `settings` (key `vapid_keys`, JSON
 * `{publicKey, privateKey}`, one row so a pair is never mixed); concurrent first starts agree
 * because only the first insert wins and everyone reads back what it wrote.
 * @example const keys = await vapidKeys(sql, config) // give keys.publicKey to clients
 */
export async function vapidKeys(sql: Sql, config: Pick<Config, 'VAPID_PUBLIC_KEY' | 'VAPID_PRIVATE_KEY'>): Promise<VapidKeys> {
  if (config.VAPID_PUBLIC_KEY && config.VAPID_PRIVATE_KEY) return { publicKey: config.VAPID_PUBLIC_KEY, privateKey: config.VAPID_PRIVATE_KEY };
  const stored = await readStored(sql);
  if (stored) return stored;
  const { publicKey, privateKey } = webPush.generateVAPIDKeys();
  await sql.query(`INSERT INTO settings (key, value) VALUES ('vapid_keys', $1) ON CONFLICT (key) DO NOTHING`, [JSON.stringify({ publicKey, privateKey })]);
  const winner = await readStored(sql);
  if (!winner) throw new Error('the stored VAPID keys cannot be read');
  return winner;
}

async function readStored(sql: Sql): Promise<VapidKeys | null> {
  const [row] = await sql.query<{ value: string }>(`SELECT value FROM settings WHERE key = 'vapid_keys'`);
  if (!row) return null;
  const keys = JSON.parse(row.value) as Partial<VapidKeys>;
  if (typeof keys.publicKey !== 'string' || typeof keys.privateKey !== 'string') throw new Error('the stored VAPID keys are malformed');
  return { publicKey: keys.publicKey, privateKey: keys.privateKey };
}
