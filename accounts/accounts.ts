// Accounts: users, their devices and public keys, and login into a device session.
import { randomUUID } from 'node:crypto';
import { fromB64 } from '../protocol/bytes.js';
import { verifyLoginProof } from '../protocol/login-proof.js';
import type { Cache } from '../platform/cache.js';
import { vouchValid } from '../protocol/trust.js';
import { listedDevice, type ListedDeviceJson } from '../protocol/frames.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { DUMMY_HASH_PROMISE, hashPassword, verifyPassword } from '../platform/passwords.js';
import { num, type Sql } from '../platform/sql.js';
import type { Tokens } from '../platform/tokens.js';
import { LoginBackoff } from './login-backoff.js';
import { LOGIN_CHALLENGE_KEY_LABEL, LoginChallenges } from './login-challenges.js';
import { usernameSkeleton } from './username.js';

/** A device with its public key and vouch (protocol/frames.ts). */
export type DeviceKey = ListedDeviceJson;

/** A login's proof that the device holds its identity key (`device.proof`, see checkKeyProof). */
export interface KeyProof {
  /** As issued by `challenge()`, base64. */
  challenge: string;
  /** Ed25519 signature by the device's key of the login proof bytes (protocol/login-proof.ts), base64. */
  signature: string;
}

export interface Session {
  token: string;
  expiresAt: number;
  userId: string;
  deviceId: string;
}

/** How long a user's device list may be served from this process's cache. */
const DEVICE_CACHE_MS = 5_000;

export interface AccountsOptions {
  /** Where login failures are counted: shared by every gateway (see LoginBackoff). */
  cache: Cache;
  /** Devices one user may have (MAX_DEVICES_PER_USER). */
  maxDevices: number;
  /** LOGIN_FAILURES_FREE and LOGIN_BACKOFF_MAX_MS. */
  loginFailuresFree: number;
  loginBackoffMaxMs: number;
}

/**
 * Users and devices live in SQL (tables in platform/migrations.ts). Device lists are cached
 * briefly per process; a device created here invalidates its user's entry at once, other
 * processes see it within DEVICE_CACHE_MS (a sender with a stale list gets `devices_changed`
 * from whichever process holds the fresh one, and re-encrypts).
 *
 * Usernames arrive validated and NFKC-normalized (accounts/username.ts); a new one must not
 * share its lookalike skeleton with an existing one (a unique column, migration 6).
 */
export class Accounts {
  private readonly deviceCache = new Map<string, { at: number; devices: DeviceKey[] }>();
  private readonly backoff: LoginBackoff;
  private readonly challenges: LoginChallenges;

  constructor(
    private readonly sql: Sql,
    private readonly tokens: Tokens,
    private readonly clock: Clock,
    private readonly options: AccountsOptions,
  ) {
    this.backoff = new LoginBackoff(options.cache, clock, { freeFailures: options.loginFailuresFree, maxWaitMs: options.loginBackoffMaxMs });
    this.challenges = new LoginChallenges(tokens.deriveKey(LOGIN_CHALLENGE_KEY_LABEL), clock);
  }

  /** A fresh login challenge for a device to sign (stateless: any gateway checks it; see LoginChallenges). */
  challenge(): { challenge: string; expiresAt: number } {
    return this.challenges.issue();
  }

  /**
   * Checks that a logging-in device holds the identity key it registers: `proof.challenge` is
   * one of ours and unexpired, and `proof.signature` is `publicKey`'s signature over it, the
   * (normalized) username and the key. Otherwise `unauthorized` ("proof of key possession
   * failed"; `details.expired` when only the challenge's time is up). Without this a user could
   * register anyone's public key as a device of their own. `login()` does not check it: every
   * caller that logs in over the network calls this first, before anything else about the
   * device (the password included, so a bad proof costs no password hash and counts no failure).
   */
  checkKeyProof(username: string, publicKey: string, proof: KeyProof | undefined): void {
    const failed = () => new AppError('unauthorized', 'proof of key possession failed');
    if (!proof) throw failed();
    let challenge: Uint8Array, signature: Uint8Array, key: Uint8Array;
    try {
      [challenge, signature, key] = [fromB64(proof.challenge), fromB64(proof.signature), fromB64(publicKey)];
    } catch {
      throw failed();
    }
    const check = this.challenges.check(challenge);
    if (check === 'expired') throw new AppError('unauthorized', 'login challenge expired: request a new one', { details: { expired: true } });
    if (check !== 'ok' || !verifyLoginProof(key, challenge, username, signature)) throw failed();
  }

  /**
   * Creates a user; `conflict` when the username, or one that looks like it, is taken (the
   * same answer either way: which account it resembles is not told).
   */
  async register(username: string, password: string): Promise<{ userId: string }> {
    const id = randomUUID();
    const hash = await hashPassword(password);
    try {
      await this.sql.query(`INSERT INTO users (id, username, username_skeleton, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)`, [
        id,
        username,
        usernameSkeleton(username),
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
   * user's (its public key is updated), otherwise a new device, unless the user already has
   * `maxDevices` (`limit_exceeded`, `details.maxDevices`). Wrong user or password: the same
   * `unauthorized`, after the same work. Repeated failures for one username make further
   * attempts wait (`rate_limited`, see LoginBackoff), known username or not.
   */
  async login(
    username: string,
    password: string,
    device: { id?: string; name: string; publicKey: string },
  ): Promise<Session> {
    const user = await this.backoff.attempt(username, async () => {
      const [row] = await this.sql.query<{ id: string; password_hash: string }>(`SELECT id, password_hash FROM users WHERE username = $1`, [username]);
      const ok = await verifyPassword(password, row?.password_hash ?? (await DUMMY_HASH_PROMISE));
      return row && ok ? row : null;
    });
    if (!user) throw new AppError('unauthorized', 'wrong username or password');

    let deviceId = device.id;
    if (deviceId) {
      // Logging an existing device in again is always allowed, whatever the cap.
      // A new key voids the device's vouch (it certified the old key), and the vouches it signed.
      const updated = await this.sql.query(
        `UPDATE devices SET public_key = $3, name = $4,
                vouched_by = CASE WHEN public_key = $3 THEN vouched_by END,
                vouch_signature = CASE WHEN public_key = $3 THEN vouch_signature END
          WHERE id = $1 AND user_id = $2 RETURNING id`,
        [
        deviceId,
        user.id,
          device.publicKey,
          device.name,
        ],
      );
      if (updated.length === 0) throw new AppError('not_found', 'no such device');
    } else {
      deviceId = await this.addDevice(user.id, device);
    }
    this.deviceCache.delete(user.id);
    const { token, expiresAt } = await this.tokens.issue({ userId: user.id, deviceId });
    return { token, expiresAt, userId: user.id, deviceId };
  }

  /**
   * Adds a device within the cap. The user's row is locked first, so concurrent logins of
   * one user count one after another (on PostgreSQL, where they really run at once, and on
   * PGlite alike) and never pass the cap together.
   */
  private async addDevice(userId: string, device: { name: string; publicKey: string }): Promise<string> {
    const { maxDevices } = this.options;
    return this.sql.transaction(async (tx) => {
      await tx.query(`SELECT id FROM users WHERE id = $1 FOR UPDATE`, [userId]);
      const [row] = await tx.query<{ n: unknown }>(`SELECT count(*) AS n FROM devices WHERE user_id = $1`, [userId]);
      if (num(row?.n) >= maxDevices) {
        throw new AppError('limit_exceeded', `at most ${maxDevices} devices per user: remove one first`, { details: { maxDevices } });
      }
      const id = randomUUID();
      await tx.query(`INSERT INTO devices (id, user_id, name, public_key, created_at) VALUES ($1, $2, $3, $4, $5)`, [
        id,
        userId,
        device.name,
        device.publicKey,
        this.clock.now(),
      ]);
      return id;
    });
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
    const rows = await this.sql.query<{ id: string; public_key: string; vouched_by: string | null; vouch_signature: string | null }>(
      `SELECT id, public_key, vouched_by, vouch_signature FROM devices WHERE user_id = $1 ORDER BY created_at, id`,
      [userId],
    );
    const devices = rows.map((r) => listedDevice(r.id, r.public_key, r.vouched_by, r.vouch_signature));
    this.deviceCache.set(userId, { at: this.clock.now(), devices });
    return devices;
  }

  /**
   * Records that `signerId`, a device of `userId`, vouches for `deviceId`, another device of
   * the same user (or itself): `signature` must be the signer's Ed25519 signature over the
   * device certificate (protocol/trust.ts) of the device's current key, else `invalid`.
   * The server checks it only to keep garbage out: clients verify every vouch themselves.
   */
  async vouch(userId: string, signerId: string, deviceId: string, signature: string): Promise<void> {
    const rows = await this.sql.query<{ id: string; public_key: string }>(`SELECT id, public_key FROM devices WHERE user_id = $1 AND id IN ($2, $3)`, [
      userId,
      signerId,
      deviceId,
    ]);
    const target = rows.find((r) => r.id === deviceId);
    const signer = rows.find((r) => r.id === signerId);
    if (!target || !signer) throw new AppError('not_found', 'no such device');
    const listed: ListedDeviceJson = { id: deviceId, publicKey: target.public_key, vouch: { by: signerId, signature } };
    const signerListed: ListedDeviceJson = { id: signerId, publicKey: signer.public_key, vouch: null };
    if (!vouchValid(userId, listed, [listed, signerListed])) throw new AppError('invalid', "the signature does not certify this device's current key");
    await this.sql.query(`UPDATE devices SET vouched_by = $3, vouch_signature = $4 WHERE id = $1 AND user_id = $2 AND public_key = $5`, [
      deviceId,
      userId,
      signerId,
      signature,
      target.public_key,
    ]);
    this.deviceCache.delete(userId);
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

