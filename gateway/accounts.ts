// Accounts: users, their devices and public keys, and login into a device session.
import { randomUUID } from 'node:crypto';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { DUMMY_HASH_PROMISE, hashPassword, verifyPassword } from '../platform/passwords.js';
import type { Sql } from '../platform/sql.js';
import type { Tokens } from '../platform/tokens.js';

export interface DeviceKey {
  id: string;
  publicKey: string;
}

export interface Session {
  token: string;
  expiresAt: number;
  userId: string;
  deviceId: string;
}

/** How long a user's device list may be served from this process's cache. */
const DEVICE_CACHE_MS = 5_000;

/**
 * Users and devices live in SQL (tables in platform/migrations.ts). Device lists are cached
 * briefly per process; a device created here invalidates its user's entry at once, other
 * processes see it within DEVICE_CACHE_MS (a sender with a stale list gets `devices_changed`
 * from whichever process holds the fresh one, and re-encrypts).
 */
export class Accounts {
  private readonly deviceCache = new Map<string, { at: number; devices: DeviceKey[] }>();

  constructor(
    private readonly sql: Sql,
    private readonly tokens: Tokens,
    private readonly clock: Clock,
  ) {}

  /** Creates a user; `conflict` when the username is taken. */
  async register(username: string, password: string): Promise<{ userId: string }> {
    const id = randomUUID();
    const hash = await hashPassword(password);
    try {
      await this.sql.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)`, [
        id,
        username,
        hash,
        this.clock.now(),
      ]);
    } catch (err) {
      if (err instanceof AppError && err.code === 'conflict') throw new AppError('conflict', 'username is taken');
      throw err;
    }
    return { userId: id };
  }

  /**
   * Checks the password and opens a session for a device: the given device id if it is the
   * user's (its public key is updated), otherwise a new device. Wrong user or password: the
   * same `unauthorized`, after the same work.
   */
  async login(
    username: string,
    password: string,
    device: { id?: string; name: string; publicKey: string },
  ): Promise<Session> {
    const [user] = await this.sql.query<{ id: string; password_hash: string }>(
      `SELECT id, password_hash FROM users WHERE username = $1`,
      [username],
    );
    const ok = await verifyPassword(password, user?.password_hash ?? (await DUMMY_HASH_PROMISE));
    if (!user || !ok) throw new AppError('unauthorized', 'wrong username or password');

    let deviceId = device.id;
    if (deviceId) {
      const updated = await this.sql.query(`UPDATE devices SET public_key = $3, name = $4 WHERE id = $1 AND user_id = $2 RETURNING id`, [
        deviceId,
        user.id,
        device.publicKey,
        device.name,
      ]);
      if (updated.length === 0) throw new AppError('not_found', 'no such device');
    } else {
      deviceId = randomUUID();
      await this.sql.query(`INSERT INTO devices (id, user_id, name, public_key, created_at) VALUES ($1, $2, $3, $4, $5)`, [
        deviceId,
        user.id,
        device.name,
        device.publicKey,
        this.clock.now(),
      ]);
    }
    this.deviceCache.delete(user.id);
    const { token, expiresAt } = await this.tokens.issue({ userId: user.id, deviceId });
    return { token, expiresAt, userId: user.id, deviceId };
  }

  /** The user id for a username; `not_found` when there is none. */
  async findUser(username: string): Promise<string> {
    const [row] = await this.sql.query<{ id: string }>(`SELECT id FROM users WHERE username = $1`, [username]);
    if (!row) throw new AppError('not_found', 'no such user');
    return row.id;
  }

  /** A user's devices with their public keys, oldest first ([] for an unknown user). */
  async devices(userId: string): Promise<DeviceKey[]> {
    const cached = this.deviceCache.get(userId);
    if (cached && this.clock.now() - cached.at < DEVICE_CACHE_MS) return cached.devices;
    const rows = await this.sql.query<{ id: string; public_key: string }>(
      `SELECT id, public_key FROM devices WHERE user_id = $1 ORDER BY created_at, id`,
      [userId],
    );
    const devices = rows.map((r) => ({ id: r.id, publicKey: r.public_key }));
    this.deviceCache.set(userId, { at: this.clock.now(), devices });
    return devices;
  }

  /** Deletes one of the caller's devices (log out for good): its token stops working at the next connect. */
  async removeDevice(userId: string, deviceId: string): Promise<void> {
    const rows = await this.sql.query(`DELETE FROM devices WHERE id = $1 AND user_id = $2 RETURNING id`, [deviceId, userId]);
    if (rows.length === 0) throw new AppError('not_found', 'no such device');
    this.deviceCache.delete(userId);
  }

  /** Whether the device exists and belongs to the user (checked on every WebSocket upgrade). */
  async deviceBelongs(userId: string, deviceId: string): Promise<boolean> {
    const rows = await this.sql.query(`SELECT 1 FROM devices WHERE id = $1 AND user_id = $2`, [deviceId, userId]);
    return rows.length > 0;
  }
}

/** The token signing secret: JWT_SECRET when set, else one generated once and kept in the database. */
export async function signingSecret(sql: Sql, configured: string | undefined): Promise<string> {
  if (configured) return configured;
  const fresh = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url');
  await sql.query(`INSERT INTO settings (key, value) VALUES ('jwt_secret', $1) ON CONFLICT (key) DO NOTHING`, [fresh]);
  const [row] = await sql.query<{ value: string }>(`SELECT value FROM settings WHERE key = 'jwt_secret'`);
  return row!.value;
}
