// KeyDirectory: the devices' public prekeys (signed and one-time) and the bundles senders fetch to start sessions.
import { isValidX25519PublicKey, keyFromB64, verifySignedPrekey } from '../protocol/keys.js';
import { sodiumReady } from '../protocol/bytes.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { num, type Sql } from '../platform/sql.js';

/** Keys travel as standard padded base64, as in the REST API. */
export interface SignedPrekeyUpload {
  id: number;
  publicKey: string;
  signature: string;
}
export interface OneTimePrekeyUpload {
  id: number;
  publicKey: string;
}

/** One device's bundle. `signedPrekey` is null while the device has published none for its current identity key. */
export interface DeviceBundle {
  deviceId: string;
  identityKey: string;
  signedPrekey: SignedPrekeyUpload | null;
  oneTimePrekey: OneTimePrekeyUpload | null;
}

export interface KeyStatus {
  identityKey: string;
  signedPrekeyId: number | null;
  oneTimePrekeys: number;
}

export interface KeyDirectoryOptions {
  /** Most one-time prekeys stored per device. Default 500. */
  maxOneTimePrekeys?: number;
  /** Below this many left after a fetch, the device is told to upload more. Default 20. */
  lowWatermark?: number;
  /** Told when a device runs low: (owner, device, remaining). Must not throw. */
  onLow?: (userId: string, deviceId: string, remaining: number) => void;
}

/**
 * Contract:
 * - A device publishes for itself only (user and device come from its token). The identity
 *   key must equal the public key it registered at login, and the signed prekey's Ed25519
 *   signature must verify under it; X25519 keys of low order are refused (`invalid`).
 * - `publish` replaces the device's signed prekey and all its one-time prekeys; `rotate`
 *   replaces the signed prekey only; `addOneTimePrekeys` adds (an id already stored: `conflict`).
 * - `bundles` returns one bundle per device of the user, oldest device first, and hands out
 *   each one-time prekey at most once, also under concurrent fetches on PostgreSQL (each claim
 *   deletes its row, skipping rows another fetch has locked). With none left, the bundle has
 *   only the signed prekey. A user that does not exist and a user without devices are the same
 *   `not_found`.
 * - A signed prekey signed by an identity the device no longer has (it logged in again with a
 *   new key) is never served: that device's bundle has `signedPrekey: null` until it publishes.
 *
 * Tables `signed_prekeys`, `one_time_prekeys` (platform/migrations.ts).
 */
export class KeyDirectory {
  private readonly maxOneTime: number;
  private readonly lowWatermark: number;

  constructor(
    private readonly sql: Sql,
    private readonly clock: Clock,
    private readonly options: KeyDirectoryOptions = {},
  ) {
    this.maxOneTime = options.maxOneTimePrekeys ?? 500;
    this.lowWatermark = options.lowWatermark ?? 20;
  }

  /** Publishes the device's identity key (checked), signed prekey and a fresh set of one-time prekeys. */
  async publish(userId: string, deviceId: string, identityKey: string, signedPrekey: SignedPrekeyUpload, oneTime: OneTimePrekeyUpload[]): Promise<{ oneTimePrekeys: number }> {
    if (oneTime.length > this.maxOneTime) throw new AppError('invalid', `at most ${this.maxOneTime} one-time prekeys`);
    await checkSignedPrekey(identityKey, signedPrekey);
    checkOneTime(oneTime);
    return this.sql.transaction(async (tx) => {
      const registered = await this.registeredKey(tx, userId, deviceId);
      if (registered !== identityKey) throw new AppError('invalid', "identity key is not this device's registered public key");
      await upsertSignedPrekey(tx, deviceId, identityKey, signedPrekey, this.clock.now());
      await tx.query(`DELETE FROM one_time_prekeys WHERE device_id = $1`, [deviceId]);
      await insertOneTime(tx, deviceId, oneTime);
      return { oneTimePrekeys: oneTime.length };
    });
  }

  /** Replaces the device's signed prekey (signed by its registered identity key). */
  async rotate(userId: string, deviceId: string, signedPrekey: SignedPrekeyUpload): Promise<void> {
    const registered = await this.registeredKey(this.sql, userId, deviceId);
    await checkSignedPrekey(registered, signedPrekey);
    await upsertSignedPrekey(this.sql, deviceId, registered, signedPrekey, this.clock.now());
  }

  /** Adds one-time prekeys; returns how many the device has now. */
  async addOneTimePrekeys(userId: string, deviceId: string, oneTime: OneTimePrekeyUpload[]): Promise<{ oneTimePrekeys: number }> {
    await sodiumReady();
    checkOneTime(oneTime);
    return this.sql.transaction(async (tx) => {
      await this.registeredKey(tx, userId, deviceId);
      // Lock the device row so concurrent uploads cannot both pass the limit.
      await tx.query(`SELECT 1 FROM devices WHERE id = $1 FOR UPDATE`, [deviceId]);
      const have = await countOneTime(tx, deviceId);
      if (have + oneTime.length > this.maxOneTime) {
        throw new AppError('invalid', `at most ${this.maxOneTime} one-time prekeys per device (${have} stored)`);
      }
      try {
        await insertOneTime(tx, deviceId, oneTime);
      } catch (err) {
        if (err instanceof AppError && err.code === 'conflict') throw new AppError('conflict', 'a one-time prekey with this id is already stored');
        throw err;
      }
      return { oneTimePrekeys: have + oneTime.length };
    });
  }

  /** What the directory holds for the calling device. */
  async status(userId: string, deviceId: string): Promise<KeyStatus> {
    const identityKey = await this.registeredKey(this.sql, userId, deviceId);
    const [spk] = await this.sql.query<{ key_id: unknown; identity_key: string }>(`SELECT key_id, identity_key FROM signed_prekeys WHERE device_id = $1`, [deviceId]);
    return {
      identityKey,
      signedPrekeyId: spk && spk.identity_key === identityKey ? num(spk.key_id) : null,
      oneTimePrekeys: await countOneTime(this.sql, deviceId),
    };
  }

  /** One bundle per device of `userId` (only `deviceIds` when given), claiming a one-time prekey for each. */
  async bundles(userId: string, deviceIds?: readonly string[]): Promise<DeviceBundle[]> {
    const rows = await this.sql.query<{ id: string; public_key: string; key_id: unknown; spk: string | null; signature: string | null; identity_key: string | null }>(
      `SELECT d.id, d.public_key, s.key_id, s.public_key AS spk, s.signature, s.identity_key
         FROM devices d LEFT JOIN signed_prekeys s ON s.device_id = d.id
        WHERE d.user_id = $1 ORDER BY d.created_at, d.id`,
      [userId],
    );
    const wanted = deviceIds ? new Set(deviceIds) : null;
    const devices = rows.filter((r) => !wanted || wanted.has(r.id));
    if (devices.length === 0) throw new AppError('not_found', 'no such user');
    const out: DeviceBundle[] = [];
    for (const d of devices) {
      const usable = d.spk !== null && d.signature !== null && d.identity_key === d.public_key;
      if (!usable) {
        out.push({ deviceId: d.id, identityKey: d.public_key, signedPrekey: null, oneTimePrekey: null });
        continue;
      }
      const oneTimePrekey = await this.claim(userId, d.id);
      out.push({ deviceId: d.id, identityKey: d.public_key, signedPrekey: { id: num(d.key_id), publicKey: d.spk!, signature: d.signature! }, oneTimePrekey });
    }
    return out;
  }

  /** Deletes and returns one of the device's one-time prekeys; rows locked by a concurrent claim are skipped, never shared. */
  private async claim(userId: string, deviceId: string): Promise<OneTimePrekeyUpload | null> {
    const [row] = await this.sql.query<{ key_id: unknown; public_key: string }>(
      `DELETE FROM one_time_prekeys
        WHERE device_id = $1
          AND key_id = (SELECT key_id FROM one_time_prekeys WHERE device_id = $1 ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING key_id, public_key`,
      [deviceId],
    );
    const remaining = await countOneTime(this.sql, deviceId);
    if (remaining < this.lowWatermark) this.options.onLow?.(userId, deviceId, remaining);
    return row ? { id: num(row.key_id), publicKey: row.public_key } : null;
  }

  private async registeredKey(q: Pick<Sql, 'query'>, userId: string, deviceId: string): Promise<string> {
    const [row] = await q.query<{ public_key: string }>(`SELECT public_key FROM devices WHERE id = $1 AND user_id = $2`, [deviceId, userId]);
    if (!row) throw new AppError('not_found', 'no such device');
    return row.public_key;
  }
}

/** Decodes a base64 key of `length` bytes; anything else is the caller's mistake (`invalid`). */
function key(b64: string, length = 32): Uint8Array {
  try {
    return keyFromB64(b64, length);
  } catch {
    throw new AppError('invalid', `expected ${length} bytes in base64`);
  }
}

async function checkSignedPrekey(identityKey: string, spk: SignedPrekeyUpload): Promise<void> {
  await sodiumReady();
  const pub = key(spk.publicKey);
  if (!isValidX25519PublicKey(pub)) throw new AppError('invalid', 'signed prekey is not a usable X25519 key');
  if (!verifySignedPrekey(key(identityKey), spk.id, pub, key(spk.signature, 64))) {
    throw new AppError('invalid', 'signed prekey signature does not verify under the identity key');
  }
}

function checkOneTime(keys: OneTimePrekeyUpload[]): void {
  if (new Set(keys.map((k) => k.id)).size !== keys.length) throw new AppError('invalid', 'one-time prekey ids must be distinct');
  for (const k of keys) {
    if (!isValidX25519PublicKey(key(k.publicKey))) throw new AppError('invalid', `one-time prekey ${k.id} is not a usable X25519 key`);
  }
}

async function upsertSignedPrekey(q: Pick<Sql, 'query'>, deviceId: string, identityKey: string, spk: SignedPrekeyUpload, now: number): Promise<void> {
  await q.query(
    `INSERT INTO signed_prekeys (device_id, identity_key, key_id, public_key, signature, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (device_id) DO UPDATE SET identity_key = EXCLUDED.identity_key, key_id = EXCLUDED.key_id,
       public_key = EXCLUDED.public_key, signature = EXCLUDED.signature, updated_at = EXCLUDED.updated_at`,
    [deviceId, identityKey, spk.id, spk.publicKey, spk.signature, now],
  );
}

async function insertOneTime(q: Pick<Sql, 'query'>, deviceId: string, keys: OneTimePrekeyUpload[]): Promise<void> {
  if (keys.length === 0) return;
  await q.query(
    `INSERT INTO one_time_prekeys (device_id, key_id, public_key)
     SELECT $1, k.id, k.pk FROM json_to_recordset($2::json) AS k(id bigint, pk text)`,
    [deviceId, JSON.stringify(keys.map((k) => ({ id: k.id, pk: k.publicKey })))],
  );
}

async function countOneTime(q: Pick<Sql, 'query'>, deviceId: string): Promise<number> {
  const [row] = await q.query<{ n: unknown }>(`SELECT count(*) AS n FROM one_time_prekeys WHERE device_id = $1`, [deviceId]);
  return num(row?.n);
}
