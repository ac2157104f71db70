// SessionManager: what the client calls to encrypt for devices and decrypt from them (X3DH + Double Ratchet per device pair).
import { equal, fromB64, sodiumReady, toB64, utf8 } from '../protocol/bytes.js';
import type { KeyDirectoryClient } from './e2e.directory.js';
import { GroupKeys } from './e2e.group-keys.js';
import { decodeMetaKey, type GroupMetaKey } from './e2e.group-meta.js';
import { generateIdentity } from '../protocol/keys.js';
import { PrekeyManager } from './e2e.prekeys.js';
import { ratchetDecrypt, ratchetEncrypt } from './e2e.ratchet.js';
import { type DeviceRecord, E2eStore, type KeyStore, type PeerSession, type PeerSessions, type StoreTx } from './e2e.store.js';
import { EMPTY_REASON, emptyBody, INNER, type InnerKind, MESSAGE_PREFIX, packInner, parseBody, type ParsedBody, unpackInner } from './e2e.wire.js';
import { x3dhInitiate, x3dhRespond } from './e2e.x3dh.js';
import { ParleyError } from './http.js';

/** Sessions kept per remote device (current first); older ones still decrypt late messages. */
export const MAX_SESSIONS_PER_DEVICE = 5;
/** Base keys of dropped sessions remembered per remote device, so their prekey messages cannot be replayed. */
export const RETIRED_BASE_KEYS = 100;
/** At most one session reset per remote device in this interval. */
export const RESET_INTERVAL_MS = 60_000;

/** A device as `GET /v1/users/{id}/devices` lists it: `publicKey` is its Ed25519 identity key (base64). */
export interface DeviceEntry {
  id: string;
  publicKey: string;
}
export interface Recipients {
  userId: string;
  devices: DeviceEntry[];
}
export interface EncryptedPayload {
  device: string;
  body: string;
}
export interface IdentityChange {
  userId: string;
  deviceId: string;
  previousKey: string;
  currentKey: string;
}
export interface SessionReset {
  userId: string;
  deviceId: string;
  /** 'me': we could not decrypt and asked for a new session; 'peer': they did. */
  initiatedBy: 'me' | 'peer';
}

export type Decrypted =
  | { kind: 'content'; payload: Uint8Array }
  | { kind: 'control' }
  /** A sender key for the group; `excluded`: devices that left it, whose keys were forgotten. */
  | { kind: 'sender_key'; groupId: string; excluded: string[] }
  /** The sender could not decrypt our group message: it wants our sender key for the group again. */
  | { kind: 'sender_key_request'; groupId: string }
  /** Nothing for the app: a replay, a control message for another device, or an unknown kind. */
  | { kind: 'ignored' }
  /** A group's metadata key, now kept (it came attached to one of the group's system messages). */
  | { kind: 'group_meta'; groupId: string }
  /** Authentic, but refused: e.g. a sender key distribution for another group than expected (nothing of it kept). */
  | { kind: 'refused'; reason: string };

export interface SessionManagerDeps {
  store: KeyStore;
  directory: KeyDirectoryClient;
  /** A user's current devices; `fresh` bypasses caches. */
  devicesOf(userId: string, fresh: boolean): Promise<DeviceEntry[]>;
  /** Send a `session_reset` control message to one device (the client queues `encryptForDevices(..., only)`). */
  sendReset(userId: string, deviceId: string): void;
  onIdentityChanged(e: IdentityChange): void;
  onSessionReset(e: SessionReset): void;
  /**
   * Whether a device may be heard from: its user's devices vouch for it (the client's trust,
   * e2e.trust.ts). Without it every listed device is trusted (the in-memory tests' default).
   */
  trusted?: (userId: string, deviceId: string, identityKey: Uint8Array) => Promise<boolean>;
  now?: () => number;
}

/** The payload of a session_reset control message (inner kind CONTROL). */
export const SESSION_RESET_PAYLOAD: Uint8Array = utf8(JSON.stringify({ t: 'session_reset' }));

/** The payload of a control message asking a group member's device for its sender key again. */
export function senderKeyRequest(groupId: string): Uint8Array {
  return utf8(JSON.stringify({ t: 'sender_key_request', groupId }));
}

/**
 * Sessions are per remote device, kept in the KeyStore. Every operation runs alone (one at a
 * time) and writes its changes in one atomic store write, or nothing when it fails.
 *
 * Identity: a device's identity key is the one its user's device list shows. A session is
 * built only with that key (bundle and list must agree); a prekey message from a device is
 * accepted only if its identity key is the listed one. When a device's key differs from the
 * one we knew, `onIdentityChanged` fires (the new key is accepted, as Signal does by default;
 * safety numbers show it).
 *
 * Re-establishment: when a message from a device cannot be decrypted (no session, state lost
 * or stale, unknown prekey, failed authentication; not a replay, which is dropped), we fire
 * `onSessionReset({initiatedBy:'me'})` and ask the client to send that device a `session_reset`
 * control message in a NEW X3DH session; receiving it makes that session the peer's current one,
 * so its next messages reach us, and fires `onSessionReset({initiatedBy:'peer'})` there. The
 * undecryptable message itself is lost (the app gets an `error`).
 */
export class SessionManager {
  readonly store: E2eStore;
  readonly prekeys: PrekeyManager;
  readonly groups: GroupKeys;
  private device: DeviceRecord | null = null;
  private readonly resetPending = new Set<string>();
  private readonly lastReset = new Map<string, number>();
  private chain: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;

  constructor(private readonly deps: SessionManagerDeps) {
    this.store = new E2eStore(deps.store);
    this.now = deps.now ?? Date.now;
    this.prekeys = new PrekeyManager(this.store, deps.directory, this.now);
    this.groups = new GroupKeys(this.store, this.now);
  }

  /** The device record in the store, or a new identity (saved) on first use. */
  async loadDevice(): Promise<DeviceRecord> {
    await sodiumReady();
    const stored = await this.store.device();
    if (stored) return stored;
    const fresh: DeviceRecord = { identity: generateIdentity() };
    await this.store.begin().putDevice(fresh).commit();
    return fresh;
  }

  /** Acts as this device from now on (after login gave it an id); saves the record if the store differs. */
  async useDevice(d: DeviceRecord): Promise<void> {
    const stored = await this.store.device();
    if (!stored || stored.deviceId !== d.deviceId || !equal(stored.identity.publicKey, d.identity.publicKey)) await this.store.begin().putDevice(d).commit();
    this.device = d;
  }

  /** Publishes or refreshes this device's prekeys in the directory (at login). */
  publishKeys(): Promise<void> {
    return this.exclusive(() => this.prekeys.sync(this.me().identity));
  }

  /** Uploads one-time prekeys if the directory runs low (on the server's `prekeys_low` frame). */
  topUpPrekeys(): Promise<void> {
    return this.exclusive(() => this.prekeys.topUp());
  }

  /**
   * Encrypts `payload` for every listed device except our own: with the current session, or a
   * new one from a fetched bundle. With `only`, the other devices get an empty not-addressed
   * body. A device without published prekeys gets an empty no-keys body. Throws (nothing
   * saved) on a bad bundle signature (`bad_signature`) or a directory error.
   */
  encryptForDevices(recipients: Recipients[], kind: InnerKind, payload: Uint8Array, only?: string): Promise<EncryptedPayload[]> {
    return this.exclusive(async () => {
      const me = this.me();
      const plaintext = packInner(kind, payload);
      const tx = this.store.begin();
      const changes: IdentityChange[] = [];
      const started: string[] = [];
      const out: EncryptedPayload[] = [];
      for (const r of recipients) {
        const missing: DeviceEntry[] = [];
        for (const d of r.devices) {
          if (d.id === me.deviceId) continue;
          if (only !== undefined && d.id !== only) {
            out.push({ device: d.id, body: toB64(emptyBody(EMPTY_REASON.NOT_ADDRESSED)) });
            continue;
          }
          const peer = await this.store.sessions(d.id);
          const current = peer?.sessions[0];
          const usable = peer && current?.ratchet.sendChain && peer.userId === r.userId && toB64(peer.identityKey) === d.publicKey && !this.resetPending.has(d.id);
          if (usable) out.push({ device: d.id, body: toB64(this.seal(tx, d.id, peer, plaintext)) });
          else missing.push(d);
        }
        if (missing.length > 0) out.push(...(await this.startSessions(tx, r.userId, missing, plaintext, changes, started)));
      }
      await tx.commit();
      for (const d of started) this.resetPending.delete(d);
      for (const c of changes) this.deps.onIdentityChanged(c);
      return out;
    });
  }

  /**
   * Decrypts a body from `fromDevice` of `fromUserId` (both as the server stated them; the
   * session's associated data binds them, so a relabelled message fails). With
   * `expectedGroup`, a sender key distribution must be for that group. Throws ParleyError on
   * failure: `untrusted_device` when no device the client trusts vouched for the sender's.
   */
  decrypt(fromUserId: string, fromDevice: string, body: string, expectedGroup?: string): Promise<Decrypted> {
    return this.exclusive(async () => {
      let result: Decrypted;
      try {
        result = await this.decryptAlone(fromUserId, fromDevice, body, expectedGroup);
      } catch (err) {
        const code = err instanceof ParleyError ? err.code : 'malformed';
        if (code === 'duplicate') return { kind: 'ignored' };
        // A new session would not help: the device is not one its user vouched for.
        if (code === 'untrusted_device') throw err;
        this.requestReset(fromUserId, fromDevice);
        throw err instanceof ParleyError ? err : new ParleyError('malformed', (err as Error).message);
      }
      // The session moved on (the message was authentic); what it carried is refused.
      if (result.kind === 'refused') throw new ParleyError('auth_failed', result.reason);
      return result;
    });
  }

  /** Our sender key distribution for a group (to send to each member pairwise, inner kind SENDER_KEY). */
  senderKeyDistribution(groupId: string): Promise<Uint8Array> {
    return this.exclusive(() => this.groups.distribution(groupId, this.me().deviceId!));
  }

  /** The id of our current sender key for the group (a new one when the old was too old or too used). */
  ownSenderKeyId(groupId: string): Promise<number> {
    return this.exclusive(() => this.groups.ownKeyId(groupId, this.me().deviceId!));
  }

  /**
   * A new sender key for the group (members or devices left): their keys are forgotten here, and
   * the new key's distribution, for the remaining members, names them so every receiver forgets them too.
   */
  rotateSenderKey(groupId: string, departedDevices: readonly string[] = []): Promise<Uint8Array> {
    return this.exclusive(async () => {
      await this.groups.forget(groupId, departedDevices);
      return this.groups.rotate(groupId, this.me().deviceId!, departedDevices);
    });
  }

  /** The devices whose sender keys we hold for the group that belong to these users (for forgetting them when they leave). */
  async senderKeyDevicesOf(groupId: string, userIds: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    for (const d of await this.store.senderKeyDevices(groupId)) {
      const who = await this.store.identity(d);
      if (who && userIds.includes(who.userId)) out.push(d);
    }
    return out;
  }

  /** The group's newest metadata key we hold, or null. */
  async groupMetaKey(groupId: string): Promise<GroupMetaKey | null> {
    return (await this.store.groupMetaKeys(groupId))[0] ?? null;
  }

  /** The metadata key a sealed name needs (by id), or null when we do not hold it. */
  async groupMetaKeyById(groupId: string, id: number): Promise<GroupMetaKey | null> {
    return (await this.store.groupMetaKeys(groupId)).find((k) => k.id === id) ?? null;
  }

  /** Keeps a metadata key for the group (one we made). */
  addGroupMetaKey(groupId: string, key: GroupMetaKey): Promise<void> {
    return this.exclusive(async () => this.store.begin().putGroupMetaKeys(groupId, withMetaKey(await this.store.groupMetaKeys(groupId), key)).commit());
  }

  groupEncrypt(groupId: string, payload: Uint8Array): Promise<Uint8Array> {
    return this.exclusive(() => this.groups.encrypt(groupId, this.me().deviceId!, packInner(INNER.CONTENT, payload)));
  }

  /**
   * Decrypts a group message from `fromDevice`, which the server says is `fromUserId`'s. The
   * sender is the user our pairwise session with that device belongs to (the one whose device
   * distributed the key), never the server's label: a relabelled message is refused
   * (`auth_failed`), and so is one from a device not (or no longer) trusted.
   */
  groupDecrypt(groupId: string, fromDevice: string, message: Uint8Array, fromUserId: string): Promise<Uint8Array> {
    return this.exclusive(async () => {
      const who = await this.store.identity(fromDevice);
      if (!who || who.userId !== fromUserId) throw new ParleyError('auth_failed', 'the group message is not from the user it names');
      if (this.deps.trusted && !(await this.deps.trusted(who.userId, fromDevice, who.identityKey))) {
        throw new ParleyError('untrusted_device', 'the sending device is not vouched for by its user');
      }
      return unpackInner(await this.groups.decrypt(groupId, fromDevice, message)).payload;
    });
  }

  private me(): DeviceRecord {
    if (!this.device?.deviceId) throw new ParleyError('invalid', 'not logged in');
    return this.device;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private requestReset(userId: string, deviceId: string): void {
    const last = this.lastReset.get(deviceId);
    if (last !== undefined && this.now() - last < RESET_INTERVAL_MS) return;
    this.lastReset.set(deviceId, this.now());
    this.resetPending.add(deviceId);
    this.deps.onSessionReset({ userId, deviceId, initiatedBy: 'me' });
    this.deps.sendReset(userId, deviceId);
  }

  /** Encrypts with the device's current session and records the advanced state in `tx`. */
  private seal(tx: StoreTx, deviceId: string, peer: PeerSessions, plaintext: Uint8Array): Uint8Array {
    const current = peer.sessions[0]!;
    const r = ratchetEncrypt(current.ratchet, plaintext, current.prekeyPrefix ?? MESSAGE_PREFIX);
    peer.sessions[0] = { ...current, ratchet: r.state };
    tx.putSessions(deviceId, peer);
    return r.message;
  }

  /** New X3DH sessions for `devices` from fetched bundles; adds the ids it started to `started`. */
  private async startSessions(
    tx: StoreTx,
    userId: string,
    devices: DeviceEntry[],
    plaintext: Uint8Array,
    changes: IdentityChange[],
    started: string[],
  ): Promise<EncryptedPayload[]> {
    const me = this.me();
    const fetched = await this.deps.directory.bundles(userId, devices.map((d) => d.id));
    const listed = new Map(devices.map((d) => [d.id, d.publicKey]));
    if (fetched.some((f) => listed.has(f.deviceId) && listed.get(f.deviceId) !== f.identityKey)) {
      // Our device list may be stale (a device logged in again with a new key): check a fresh one.
      for (const d of await this.deps.devicesOf(userId, true)) if (listed.has(d.id)) listed.set(d.id, d.publicKey);
      if (fetched.some((f) => listed.has(f.deviceId) && listed.get(f.deviceId) !== f.identityKey)) {
        throw new ParleyError('unavailable', 'the key directory and the device list disagree; try again');
      }
    }
    const out: EncryptedPayload[] = [];
    for (const d of devices) {
      const f = fetched.find((x) => x.deviceId === d.id);
      if (!f?.bundle) {
        out.push({ device: d.id, body: toB64(emptyBody(EMPTY_REASON.NO_KEYS)) });
        continue;
      }
      const init = x3dhInitiate(me.identity, f.bundle, {
        initiator: { userId: me.userId!, deviceId: me.deviceId! },
        responder: { userId, deviceId: d.id },
      });
      const known = await this.store.identity(d.id);
      if (known && !equal(known.identityKey, f.bundle.identityKey)) {
        changes.push({ userId, deviceId: d.id, previousKey: toB64(known.identityKey), currentKey: f.identityKey });
      }
      const peer = await this.store.sessions(d.id);
      const session: PeerSession = { baseKey: init.baseKey, ratchet: init.state, prekeyPrefix: init.prekeyPrefix, createdAt: this.now() };
      const next = withNewSession(peer?.userId === userId ? peer : null, userId, f.bundle.identityKey, session);
      tx.putIdentity(d.id, { userId, identityKey: f.bundle.identityKey });
      out.push({ device: d.id, body: toB64(this.seal(tx, d.id, next, plaintext)) });
      started.push(d.id);
    }
    return out;
  }

  private async decryptAlone(fromUserId: string, fromDevice: string, body: string, expectedGroup?: string): Promise<Decrypted> {
    let bytes: Uint8Array;
    try {
      bytes = fromB64(body);
    } catch {
      throw new ParleyError('malformed', 'body is not base64');
    }
    const parsed = parseBody(bytes);
    if (parsed.type === 'empty') {
      if (parsed.reason === EMPTY_REASON.NOT_ADDRESSED) return { kind: 'ignored' };
      throw new ParleyError('no_keys', 'the sender found no prekeys for this device');
    }
    const peer = await this.store.sessions(fromDevice);
    if (peer && peer.userId !== fromUserId) throw new ParleyError('auth_failed', 'this device belongs to another user');
    const claimedKey = parsed.type === 'prekey' ? parsed.header.identityKey : peer?.identityKey;
    if (claimedKey && this.deps.trusted && !(await this.deps.trusted(fromUserId, fromDevice, claimedKey))) {
      throw new ParleyError('untrusted_device', 'the sending device is not vouched for by its user');
    }
    const tx = this.store.begin();
    const existing = parsed.type === 'prekey' ? peer?.sessions.find((s) => equal(s.baseKey, parsed.header.baseKey)) : undefined;
    let plaintext: Uint8Array;
    let change: IdentityChange | null = null;
    if (parsed.type === 'message' || existing) {
      if (!peer) throw new ParleyError('no_session', 'no session with this device');
      plaintext = this.openExisting(tx, fromDevice, peer, bytes, parsed.at, existing);
    } else {
      ({ plaintext, change } = await this.openPrekey(tx, fromUserId, fromDevice, peer, bytes, parsed));
    }
    const result = await this.inner(tx, fromDevice, plaintext, expectedGroup);
    await tx.commit();
    if (change) this.deps.onIdentityChanged(change);
    if (result.kind === 'control') this.deps.onSessionReset({ userId: fromUserId, deviceId: fromDevice, initiatedBy: 'peer' });
    return result;
  }

  /** Tries the device's sessions, current first (or only `only`); the one that decrypts becomes current. */
  private openExisting(tx: StoreTx, deviceId: string, peer: PeerSessions, bytes: Uint8Array, at: number, only?: PeerSession): Uint8Array {
    let firstError: unknown;
    for (const s of only ? [only] : peer.sessions) {
      try {
        const r = ratchetDecrypt(s.ratchet, bytes, at, this.now());
        // Hearing from the peer on this session means it has it: stop sending X3DH fields.
        const updated: PeerSession = { ...s, ratchet: r.state, prekeyPrefix: null };
        tx.putSessions(deviceId, { ...peer, sessions: [updated, ...peer.sessions.filter((x) => x !== s)] });
        return r.plaintext;
      } catch (err) {
        if (err instanceof ParleyError && err.code === 'duplicate') throw err; // the header named this session
        firstError ??= err;
      }
    }
    throw firstError;
  }

  private async openPrekey(
    tx: StoreTx,
    fromUserId: string,
    fromDevice: string,
    peer: PeerSessions | null,
    bytes: Uint8Array,
    parsed: Extract<ParsedBody, { type: 'prekey' }>,
  ): Promise<{ plaintext: Uint8Array; change: IdentityChange | null }> {
    const h = parsed.header;
    if (peer?.retiredBaseKeys.includes(toB64(h.baseKey))) throw new ParleyError('duplicate', 'prekey message of a session already dropped');
    const known = await this.store.identity(fromDevice);
    if (!known || !equal(known.identityKey, h.identityKey)) {
      const listed = (await this.deps.devicesOf(fromUserId, true)).find((d) => d.id === fromDevice);
      if (listed?.publicKey !== toB64(h.identityKey)) throw new ParleyError('untrusted_identity', "the sender's identity key is not the one its device list shows");
    }
    const spk = await this.store.signedPrekey(h.signedPrekeyId);
    if (!spk) throw new ParleyError('unknown_prekey', 'signed prekey unknown (replaced long ago, or state lost)');
    const otk = h.oneTimePrekeyId === 0 ? null : await this.store.oneTimePrekey(h.oneTimePrekeyId);
    if (h.oneTimePrekeyId !== 0 && !otk) throw new ParleyError('unknown_prekey', 'one-time prekey already used or unknown');
    const me = this.me();
    const parties = { initiator: { userId: fromUserId, deviceId: fromDevice }, responder: { userId: me.userId!, deviceId: me.deviceId! } };
    const r = ratchetDecrypt(x3dhRespond(me.identity, spk, otk, h, parties), bytes, parsed.at, this.now());
    const session: PeerSession = { baseKey: h.baseKey, ratchet: r.state, prekeyPrefix: null, createdAt: this.now() };
    tx.putSessions(fromDevice, withNewSession(peer, fromUserId, h.identityKey, session));
    tx.putIdentity(fromDevice, { userId: fromUserId, identityKey: h.identityKey });
    if (otk) tx.deleteOneTimePrekey(otk.id);
    const change = known && !equal(known.identityKey, h.identityKey) ? { userId: fromUserId, deviceId: fromDevice, previousKey: toB64(known.identityKey), currentKey: toB64(h.identityKey) } : null;
    return { plaintext: r.plaintext, change };
  }

  /** What the decrypted plaintext carries. Never throws: the session has advanced either way. */
  private async inner(tx: StoreTx, fromDevice: string, plaintext: Uint8Array, expectedGroup?: string): Promise<Decrypted> {
    try {
      const { kind, payload } = unpackInner(plaintext);
      if (kind === INNER.CONTENT) return { kind: 'content', payload };
      if (kind === INNER.GROUP_META) {
        const m = decodeMetaKey(payload);
        if (expectedGroup === undefined || m.groupId !== expectedGroup) return { kind: 'refused', reason: 'a group metadata key for another group' };
        tx.putGroupMetaKeys(m.groupId, withMetaKey(await this.store.groupMetaKeys(m.groupId), m.key));
        return { kind: 'group_meta', groupId: m.groupId };
      }
      if (kind === INNER.SENDER_KEY) {
        try {
          const r = await this.groups.receive(tx, fromDevice, payload, this.me().deviceId!, expectedGroup);
          return { kind: 'sender_key', groupId: r.groupId, excluded: r.excluded };
        } catch (err) {
          if (err instanceof ParleyError && err.code === 'auth_failed') return { kind: 'refused', reason: err.message };
          throw err;
        }
      }
      if (kind === INNER.CONTROL) {
        const c = JSON.parse(new TextDecoder().decode(payload)) as { t?: unknown; groupId?: unknown };
        if (c.t === 'session_reset') return { kind: 'control' };
        if (c.t === 'sender_key_request' && typeof c.groupId === 'string') return { kind: 'sender_key_request', groupId: c.groupId };
      }
    } catch {
      // Authenticated but not understood (a newer client's format): nothing for the app.
    }
    return { kind: 'ignored' };
  }
}

/**
 * The device's sessions with `session` first. Sessions of another identity key are dropped (they
 * belong to the device's previous install); beyond MAX_SESSIONS_PER_DEVICE the oldest are, and
 * every dropped session's base key is remembered.
 */
function withNewSession(peer: PeerSessions | null, userId: string, identityKey: Uint8Array, session: PeerSession): PeerSessions {
  const previous = peer?.sessions ?? [];
  const kept = peer && equal(peer.identityKey, identityKey) ? previous.slice(0, MAX_SESSIONS_PER_DEVICE - 1) : [];
  const dropped = previous.filter((s) => !kept.includes(s)).map((s) => toB64(s.baseKey));
  const retiredBaseKeys = [...(peer?.retiredBaseKeys ?? []), ...dropped].slice(-RETIRED_BASE_KEYS);
  return { userId, identityKey, sessions: [session, ...kept], retiredBaseKeys };
}

/** Metadata keys kept per group: the newest few, newest first (an old one still opens names sealed before a rotation). */
const META_KEYS_KEPT = 5;

function withMetaKey(keys: GroupMetaKey[], key: GroupMetaKey): GroupMetaKey[] {
  if (keys.some((k) => k.id === key.id)) return keys;
  return [key, ...keys].sort((a, b) => b.createdAt - a.createdAt).slice(0, META_KEYS_KEPT);
}
