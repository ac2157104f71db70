// Accounts: users, their devices and public keys, and login into a device session.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { fromB64 } from '../protocol/bytes.js';
import { verifyLoginProof } from '../protocol/login-proof.js';
import type { Cache } from '../platform/cache.js';
import { vouchValid } from '../protocol/trust.js';
import { listedDevice, type ListedDeviceJson } from '../protocol/frames.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { GroupCommit } from '../platform/group-commit.js';
import { DUMMY_HASH_PROMISE, hashPassword, verifyPassword } from '../platform/passwords.js';
import { num, type Sql, type SqlTx } from '../platform/sql.js';
import type { TokenClaims, Tokens } from '../platform/tokens.js';
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

/** A device as its own user lists them (`GET /v1/account/devices`). */
export interface OwnDevice {
  id: string;
  name: string;
  createdAt: number;
  /** Its last connect, disconnect or login (epoch ms). */
  lastSeenAt: number;
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
 *
 * Revoking sessions: a device's `tokens_not_before` (epoch seconds, migration 9) refuses every
 * token of it issued (`iat`) before then; `sessionValid` checks it in the same single-row read
 * that already checked the device exists, on every REST request and every connect. Tokens
 * carry whole seconds, so a revocation refuses the rest of its second too, and a device that
 * logs in again within that second waits for the next one (at most a second) before its new
 * token is issued.
 */
export class Accounts {
  private readonly deviceCache = new Map<string, { at: number; devices: DeviceKey[] }>();
  private readonly backoff: LoginBackoff;
  private readonly challenges: LoginChallenges;
  private readonly lastSeen = new GroupCommit((items: { deviceId: string; at: number }[]) => this.writeSeen(items), { maxBatch: 1024 });

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
      const [updated] = await this.sql.query(
        `UPDATE devices SET public_key = $3, name = $4, last_seen_at = $5,
                vouched_by = CASE WHEN public_key = $3 THEN vouched_by END,
                vouch_signature = CASE WHEN public_key = $3 THEN vouch_signature END
          WHERE id = $1 AND user_id = $2 RETURNING tokens_not_before`,
        [deviceId, user.id, device.publicKey, device.name, this.clock.now()],
      );
      if (!updated) throw new AppError('not_found', 'no such device');
      // Revoked within this second: a token issued now would be refused (see the class comment).
      // A timer may fire a millisecond early: wait until the clock says so.
      const notBefore = num(updated.tokens_not_before) * 1000;
      for (let round = 0; round < 3 && this.clock.now() < notBefore; round++) await sleep(Math.min(notBefore - this.clock.now(), 1000) + 1);
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
      const now = this.clock.now();
      await tx.query(`INSERT INTO devices (id, user_id, name, public_key, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $5)`, [
        id,
        userId,
        device.name,
        device.publicKey,
        now,
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

  /**
   * The username of a user id, for a viewer who has a reason to know it: themselves, someone
   * they share (or shared) a conversation with, or someone they block. Anyone else gets the
   * same `not_found` as an unknown id, so ids do not turn into a directory of usernames.
   */
  async username(userId: string, viewer: string): Promise<string> {
    const [row] = await this.sql.query<{ username: string }>(
      `SELECT u.username FROM users u
        WHERE u.id = $1
          AND (u.id = $2
               OR EXISTS (SELECT 1 FROM conversation_members a JOIN conversation_members b ON b.conversation_id = a.conversation_id
                           WHERE a.user_id = $2 AND b.user_id = $1)
               OR EXISTS (SELECT 1 FROM blocks WHERE user_id = $2 AND blocked_id = $1))`,
      [userId, viewer],
    );
    if (!row) throw new AppError('not_found', 'no such user');
    return row.username;
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

  /**
   * Whether a verified token still opens a session: its device exists, belongs to its user, and
   * the token was issued no earlier than the device's `tokens_not_before` (checked on every REST
   * request and every connect; one row read by primary key).
   */
  async sessionValid(claims: TokenClaims): Promise<boolean> {
    const [row] = await this.sql.query(`SELECT tokens_not_before FROM devices WHERE id = $1 AND user_id = $2`, [claims.deviceId, claims.userId]);
    if (!row) return false;
    const notBefore = num(row.tokens_not_before);
    return notBefore === 0 || claims.iat >= notBefore;
  }

  /**
   * Checks `password` against the user's, counted by the login backoff exactly like a login (so
   * a stolen token cannot be used to guess the password faster): `unauthorized` when wrong,
   * `rate_limited` while the username waits.
   */
  async checkPassword(userId: string, password: string): Promise<void> {
    const [user] = await this.sql.query<{ username: string; password_hash: string }>(`SELECT username, password_hash FROM users WHERE id = $1`, [userId]);
    if (!user) throw new AppError('unauthorized', 'no such account');
    const ok = await this.backoff.attempt(user.username, () => verifyPassword(password, user.password_hash));
    if (!ok) throw new AppError('unauthorized', 'wrong password');
  }

  /**
   * Changes the password after checking the current one (see checkPassword) and revokes the
   * sessions of every other device of the user; returns their ids, to close their sockets.
   * The calling device's tokens stay valid.
   */
  async changePassword(userId: string, deviceId: string, current: string, next: string): Promise<string[]> {
    await this.checkPassword(userId, current);
    const hash = await hashPassword(next);
    return this.sql.transaction(async (tx) => {
      await tx.query(`UPDATE users SET password_hash = $2 WHERE id = $1`, [userId, hash]);
      return this.revoke(tx, userId, deviceId);
    });
  }

  /** Revokes the tokens of every device of the user; returns their ids. */
  revokeAll(userId: string): Promise<string[]> {
    return this.revoke(this.sql, userId, null);
  }

  /** Sets `tokens_not_before` to the next second for the user's devices but `except`. */
  private async revoke(db: SqlTx | Sql, userId: string, except: string | null): Promise<string[]> {
    const rows = await db.query<{ id: string }>(
      `UPDATE devices SET tokens_not_before = $3 WHERE user_id = $1 AND ($2::uuid IS NULL OR id <> $2::uuid) RETURNING id`,
      [userId, except, Math.floor(this.clock.now() / 1000) + 1],
    );
    return rows.map((r) => r.id);
  }

  /** The user's devices with names and when each was last seen, oldest first. */
  async ownDevices(userId: string): Promise<OwnDevice[]> {
    const rows = await this.sql.query(
      `SELECT id, name, created_at, coalesce(last_seen_at, created_at) AS last_seen_at FROM devices WHERE user_id = $1 ORDER BY created_at, id`,
      [userId],
    );
    return rows.map((r) => ({ id: r.id as string, name: r.name as string, createdAt: num(r.created_at), lastSeenAt: num(r.last_seen_at) }));
  }

  /** Records that the device was just seen (a connect or disconnect); writes are batched, one statement per batch. */
  seen(deviceId: string): Promise<void> {
    return this.lastSeen.submit({ deviceId, at: this.clock.now() });
  }

  /** Waits for last-seen writes in flight. */
  flush(): Promise<void> {
    return this.lastSeen.idle();
  }

  /**
   * Deletes the user and, by the schema's cascades, its devices (their keys, cursors, push
   * targets and pending pushes), its memberships, mutes and blocks (both ways). Its uploads
   * are marked expired in the same transaction, for the file service to erase (expireFiles,
   * purgeBlobs). Groups it owned must have been handed on before (groups' leave), and its
   * messages erased (MessageStore.eraseUser): neither is this layer's to do.
   */
  async deleteAccount(userId: string): Promise<void> {
    const now = this.clock.now();
    await this.sql.transaction(async (tx) => {
      await tx.query(`UPDATE files SET expires_at = least(expires_at, $2) WHERE uploader_id = $1`, [userId, now]);
      await tx.query(`DELETE FROM users WHERE id = $1`, [userId]);
    });
    this.deviceCache.delete(userId);
  }

  private async writeSeen(items: { deviceId: string; at: number }[]): Promise<void[]> {
    await this.sql.query(
      `UPDATE devices d SET last_seen_at = greatest(coalesce(d.last_seen_at, 0), v.at)
         FROM (SELECT device_id, max(at) AS at FROM json_to_recordset($1::json) AS x(device_id uuid, at bigint) GROUP BY device_id) v
        WHERE d.id = v.device_id`,
      [JSON.stringify(items.map((i) => ({ device_id: i.deviceId, at: i.at })))],
    );
    return items.map(() => undefined);
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

