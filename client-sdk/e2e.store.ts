// The key store port (where a device keeps its secrets) and the typed records the SDK keeps in it.
import { fromB64, toB64 } from '../protocol/bytes.js';
import type { IdentityKeyPair, OneTimePrekey, SignedPrekey } from '../protocol/keys.js';
import { ratchetFromJson, type RatchetJson, type RatchetState, ratchetToJson } from './e2e.ratchet.js';
import { senderKeyFromJson, type SenderKeyJson, type SenderKeyState, senderKeyToJson } from './e2e.sender-keys.js';
import type { GroupMetaKey } from './e2e.group-meta.js';
import type { TrustRecord } from '../protocol/trust.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * The sections of a key store; ids are opaque strings within each. Besides keys, three hold
 * message state that must survive a restart and be shared by every client over the store (a
 * page and its service worker): `pushed` (messages handlePush decrypted: push.ts),
 * `disappearing` (conversations' timers) and `expiring` (timers of received messages): disappearing.ts.
 */
export type KeySection =
  | 'device'
  | 'signedPrekeys'
  | 'oneTimePrekeys'
  | 'sessions'
  | 'senderKeys'
  | 'identities'
  | 'trust'
  | 'groupMeta'
  | 'pushed'
  | 'disappearing'
  | 'expiring';

export interface KeyChange {
  section: KeySection;
  id: string;
  /** The new value; absent to delete. */
  value?: JsonValue;
}

/**
 * Where one device keeps its identity, prekeys, sessions, sender keys and the identities of
 * its contacts, between runs. Apps choose it (`createClient({ keyStore })`): `memoryKeyStore()`
 * (lost when the process ends: every run is a new device) or, in Node, `diskKeyStore(path)`;
 * a browser app can put the same three methods over IndexedDB. Contract:
 * - `get` returns the value last written for (section, id), or undefined. Callers may modify
 *   what they get without affecting the store.
 * - `ids` lists a section's ids (any order).
 * - `write` applies all its changes or none, and is durable when it resolves. Writes are
 *   applied in call order.
 * - One store belongs to one device and one client at a time; the SDK serializes its calls.
 * Values are secrets: a store must never log them.
 */
export interface KeyStore {
  get(section: KeySection, id: string): Promise<JsonValue | undefined>;
  ids(section: KeySection): Promise<string[]>;
  write(changes: KeyChange[]): Promise<void>;
}

export interface DeviceRecord {
  /** Assigned by the server at the first login. */
  deviceId?: string;
  /** The user this device belongs to (known after login; bound into every session's X3DH). */
  userId?: string;
  identity: IdentityKeyPair;
}

/** One Double Ratchet session with a remote device. */
export interface PeerSession {
  /** The initiator's X3DH ephemeral key: a replayed prekey message names the session it built. */
  baseKey: Uint8Array;
  ratchet: RatchetState;
  /** While set, our messages carry the X3DH fields (we initiated and have not heard back yet). */
  prekeyPrefix: Uint8Array | null;
  createdAt: number;
}

/** Every session with one remote device: the current one first, then older ones still accepted. */
export interface PeerSessions {
  userId: string;
  identityKey: Uint8Array;
  sessions: PeerSession[];
  /** Base keys (base64) of sessions dropped from `sessions`, newest last: a replayed prekey message for one is refused. */
  retiredBaseKeys: string[];
}

/** The identity key last seen for a remote device (trust on first use; changes raise an event). */
export interface KnownIdentity {
  userId: string;
  identityKey: Uint8Array;
}

const b = toB64;
const u = fromB64;
type Obj = Record<string, JsonValue>;

const json = {
  device: (d: DeviceRecord): JsonValue => ({
    ...(d.deviceId ? { deviceId: d.deviceId } : {}),
    ...(d.userId ? { userId: d.userId } : {}),
    pub: b(d.identity.publicKey),
    sec: b(d.identity.secretKey),
  }),
  spk: (k: SignedPrekey): JsonValue => ({ id: k.id, pub: b(k.keyPair.publicKey), sec: b(k.keyPair.secretKey), sig: b(k.signature), at: k.createdAt }),
  otk: (k: OneTimePrekey): JsonValue => ({ id: k.id, pub: b(k.keyPair.publicKey), sec: b(k.keyPair.secretKey) }),
  sessions: (p: PeerSessions): JsonValue => ({
    userId: p.userId,
    ik: b(p.identityKey),
    sessions: p.sessions.map((s) => ({
      base: b(s.baseKey),
      ratchet: ratchetToJson(s.ratchet) as unknown as JsonValue,
      prefix: s.prekeyPrefix ? b(s.prekeyPrefix) : null,
      at: s.createdAt,
    })),
    retired: [...p.retiredBaseKeys],
  }),
};

/**
 * The SDK's typed view of a KeyStore: reads records, and collects changes to write at once
 * (`const tx = store.begin(); tx.putSessions(...); await tx.commit()`).
 */
export class E2eStore {
  constructor(readonly kv: KeyStore) {}

  async device(): Promise<DeviceRecord | null> {
    const v = (await this.kv.get('device', 'self')) as Obj | undefined;
    if (!v) return null;
    return {
      ...(typeof v.deviceId === 'string' ? { deviceId: v.deviceId } : {}),
      ...(typeof v.userId === 'string' ? { userId: v.userId } : {}),
      identity: { publicKey: u(v.pub as string), secretKey: u(v.sec as string) },
    };
  }

  async signedPrekeys(): Promise<SignedPrekey[]> {
    const out: SignedPrekey[] = [];
    for (const id of await this.kv.ids('signedPrekeys')) {
      const v = (await this.kv.get('signedPrekeys', id)) as Obj | undefined;
      if (v) out.push({ id: v.id as number, keyPair: { publicKey: u(v.pub as string), secretKey: u(v.sec as string) }, signature: u(v.sig as string), createdAt: v.at as number });
    }
    return out.sort((x, y) => y.createdAt - x.createdAt);
  }

  async signedPrekey(id: number): Promise<SignedPrekey | null> {
    return (await this.signedPrekeys()).find((k) => k.id === id) ?? null;
  }

  async oneTimePrekey(id: number): Promise<OneTimePrekey | null> {
    const v = (await this.kv.get('oneTimePrekeys', String(id))) as Obj | undefined;
    return v ? { id: v.id as number, keyPair: { publicKey: u(v.pub as string), secretKey: u(v.sec as string) } } : null;
  }

  async oneTimePrekeyIds(): Promise<number[]> {
    return (await this.kv.ids('oneTimePrekeys')).map(Number);
  }

  async sessions(deviceId: string): Promise<PeerSessions | null> {
    const v = (await this.kv.get('sessions', deviceId)) as Obj | undefined;
    if (!v) return null;
    return {
      userId: v.userId as string,
      identityKey: u(v.ik as string),
      sessions: (v.sessions as Obj[]).map((s) => ({
        baseKey: u(s.base as string),
        ratchet: ratchetFromJson(s.ratchet as unknown as RatchetJson),
        prekeyPrefix: typeof s.prefix === 'string' ? u(s.prefix) : null,
        createdAt: s.at as number,
      })),
      retiredBaseKeys: Array.isArray(v.retired) ? (v.retired as string[]) : [],
    };
  }

  /** Device ids we hold sessions with. */
  async sessionDevices(): Promise<string[]> {
    return this.kv.ids('sessions');
  }

  async identity(deviceId: string): Promise<KnownIdentity | null> {
    const v = (await this.kv.get('identities', deviceId)) as Obj | undefined;
    return v ? { userId: v.userId as string, identityKey: u(v.ik as string) } : null;
  }

  /** What we trust of a user's devices (e2e.trust.ts), or null before first contact. */
  async trust(userId: string): Promise<TrustRecord | null> {
    const v = (await this.kv.get('trust', userId)) as Obj | undefined;
    if (!v) return null;
    return { devices: v.devices as Record<string, string>, verified: v.verified === true, blocked: v.blocked === true };
  }

  /** A group's metadata keys, the newest first. */
  async groupMetaKeys(groupId: string): Promise<GroupMetaKey[]> {
    const v = (await this.kv.get('groupMeta', groupId)) as Obj[] | undefined;
    return (v ?? []).map((k) => ({ id: k.id as number, key: u(k.key as string), createdAt: k.at as number }));
  }

  /** Sender key store ids (`device|group`) of one group: whose keys we hold for it. */
  async senderKeyDevices(groupId: string): Promise<string[]> {
    return (await this.kv.ids('senderKeys')).filter((id) => id.endsWith(`|${groupId}`)).map((id) => id.slice(0, id.length - groupId.length - 1));
  }

  /** Sender keys of one sender device in one group, the current one first. */
  async senderKeys(groupId: string, deviceId: string): Promise<SenderKeyState[]> {
    const v = (await this.kv.get('senderKeys', senderKeyId(groupId, deviceId))) as JsonValue[] | undefined;
    return (v ?? []).map((j) => senderKeyFromJson(j as unknown as SenderKeyJson));
  }

  begin(): StoreTx {
    return new StoreTx(this.kv);
  }
}

const senderKeyId = (groupId: string, deviceId: string) => `${deviceId}|${groupId}`;

/** Changes collected for one atomic write. */
export class StoreTx {
  private readonly changes = new Map<string, KeyChange>();

  constructor(private readonly kv: KeyStore) {}

  private set(section: KeySection, id: string, value?: JsonValue): this {
    this.changes.set(`${section}\u0000${id}`, value === undefined ? { section, id } : { section, id, value });
    return this;
  }

  putDevice(d: DeviceRecord): this {
    return this.set('device', 'self', json.device(d));
  }
  putSignedPrekey(k: SignedPrekey): this {
    return this.set('signedPrekeys', String(k.id), json.spk(k));
  }
  deleteSignedPrekey(id: number): this {
    return this.set('signedPrekeys', String(id));
  }
  putOneTimePrekeys(keys: OneTimePrekey[]): this {
    for (const k of keys) this.set('oneTimePrekeys', String(k.id), json.otk(k));
    return this;
  }
  deleteOneTimePrekey(id: number): this {
    return this.set('oneTimePrekeys', String(id));
  }
  putSessions(deviceId: string, p: PeerSessions): this {
    return this.set('sessions', deviceId, json.sessions(p));
  }
  deleteSessions(deviceId: string): this {
    return this.set('sessions', deviceId);
  }
  putIdentity(deviceId: string, k: KnownIdentity): this {
    return this.set('identities', deviceId, { userId: k.userId, ik: b(k.identityKey) });
  }
  putGroupMetaKeys(groupId: string, keys: GroupMetaKey[]): this {
    return this.set('groupMeta', groupId, keys.map((k) => ({ id: k.id, key: b(k.key), at: k.createdAt })));
  }
  putTrust(userId: string, r: TrustRecord): this {
    return this.set('trust', userId, { devices: r.devices, verified: r.verified, blocked: r.blocked });
  }
  putSenderKeys(groupId: string, deviceId: string, states: SenderKeyState[]): this {
    return this.set('senderKeys', senderKeyId(groupId, deviceId), states.map((s) => senderKeyToJson(s) as unknown as JsonValue));
  }

  get size(): number {
    return this.changes.size;
  }

  async commit(): Promise<void> {
    if (this.changes.size > 0) await this.kv.write([...this.changes.values()]);
    this.changes.clear();
  }
}
