// An in-memory server for the E2E unit tests: device lists with vouches, a key directory, and each device's session manager and trust — a server the test controls, so it can play the attacker.
import { fromB64, toB64 } from '../protocol/bytes.js';
import { decodeBundle, type KeyDirectoryClient } from './e2e.directory.js';
import type { IdentityKeyPair } from '../protocol/keys.js';
import { type DeviceEntry, type IdentityChange, SessionManager, type SessionReset } from './e2e.session-manager.js';
import { memoryKeyStore } from './e2e.store.memory.js';
import type { KeyStore } from './e2e.store.js';
import { type ListedDevice, vouchFor } from '../protocol/trust.js';
import { EMPTY_REASON, emptyBody, INNER } from './e2e.wire.js';
import { type DeviceEvent, TrustManager } from './trust.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

interface Published {
  identityKey: string;
  spk: { id: number; publicKey: string; signature: string } | null;
  otks: { id: number; publicKey: string }[];
}

export interface Device {
  userId: string;
  deviceId: string;
  identity: IdentityKeyPair;
  sessions: SessionManager;
  trust: TrustManager;
  store: KeyStore;
  events: {
    resets: SessionReset[];
    identity: IdentityChange[];
    resetRequests: string[];
    added: DeviceEvent[];
    untrusted: DeviceEvent[];
    pending: DeviceEvent[];
    identityChanged: { userId: string; blocked: boolean }[];
  };
}

export interface AddDeviceOptions {
  store?: KeyStore;
  /**
   * Who vouches for the new device: 'self' (a user's first device), a device of the same user
   * (approval), or 'none' (a login nobody approved). Default: 'self' for a user's first device,
   * else the user's first device.
   */
  vouch?: 'self' | 'none' | Device;
  /** Check trust when decrypting (what the client does). Default true. */
  enforceTrust?: boolean;
}

/** A server in memory: device lists (with vouches) and a key directory, and the devices of each user. */
export class World {
  readonly devices = new Map<string, { userId: string; publicKey: string; vouch: ListedDevice['vouch'] }>();
  readonly published = new Map<string, Published>();
  readonly members = new Map<string, Device>();
  tamperSignatures = false;
  /** With `trust: false`, devices neither check vouches nor filter recipients (tests of the session layer alone). */
  constructor(private readonly options: { trust?: boolean } = {}) {}

  /** What the server tells each user about a user's devices; by default the truth. A malicious server overrides it. */
  listFor: (viewer: string, userId: string) => ListedDevice[] = (_viewer, userId) => this.deviceList(userId);

  deviceList(userId: string): ListedDevice[] {
    return [...this.devices].filter(([, d]) => d.userId === userId).map(([id, d]) => ({ id, publicKey: d.publicKey, vouch: d.vouch }));
  }

  /** A device as the server would list it: not backed by a session manager (e.g. a ghost the server adds). */
  addListed(userId: string, deviceId: string, publicKey: string, vouch: ListedDevice['vouch'] = null): void {
    this.devices.set(deviceId, { userId, publicKey, vouch });
  }

  async addDevice(userId: string, deviceId: string, options: AddDeviceOptions = {}): Promise<Device> {
    const store = options.store ?? memoryKeyStore();
    const events: Device['events'] = { resets: [], identity: [], resetRequests: [], added: [], untrusted: [], pending: [], identityChanged: [] };
    const directory: KeyDirectoryClient = {
      status: async () => {
        const p = this.published.get(deviceId);
        const current = this.devices.get(deviceId)!.publicKey;
        return { identityKey: current, signedPrekeyId: p && p.identityKey === current ? (p.spk?.id ?? null) : null, oneTimePrekeys: p?.otks.length ?? 0 };
      },
      publish: async (ik, spk, otks) => {
        this.published.set(deviceId, {
          identityKey: toB64(ik),
          spk: { id: spk.id, publicKey: toB64(spk.keyPair.publicKey), signature: toB64(spk.signature) },
          otks: otks.map((k) => ({ id: k.id, publicKey: toB64(k.keyPair.publicKey) })),
        });
        return { oneTimePrekeys: otks.length };
      },
      rotate: async (spk) => void (this.published.get(deviceId)!.spk = { id: spk.id, publicKey: toB64(spk.keyPair.publicKey), signature: toB64(spk.signature) }),
      upload: async (otks) => {
        const p = this.published.get(deviceId)!;
        p.otks.push(...otks.map((k) => ({ id: k.id, publicKey: toB64(k.keyPair.publicKey) })));
        return { oneTimePrekeys: p.otks.length };
      },
      bundles: async (uid, ids) =>
        this.listFor(userId, uid)
          .filter((d) => !ids || ids.includes(d.id))
          .map((d) => {
            const p = this.published.get(d.id);
            const usable = p?.spk && p.identityKey === d.publicKey;
            const sig = usable && this.tamperSignatures ? toB64(fromB64(p.spk!.signature).map((b, i) => (i === 0 ? b ^ 1 : b))) : p?.spk?.signature;
            return decodeBundle({
              deviceId: d.id,
              identityKey: d.publicKey,
              signedPrekey: usable ? { ...p.spk!, signature: sig! } : null,
              oneTimePrekey: usable ? (p.otks.shift() ?? null) : null,
            });
          }),
    };
    let trust: TrustManager | null = null;
    const sessions = new SessionManager({
      store,
      directory,
      devicesOf: async (uid) => this.listFor(userId, uid),
      sendReset: (_u, d) => events.resetRequests.push(d),
      onIdentityChanged: (e) => events.identity.push(e),
      onSessionReset: (e) => events.resets.push(e),
      ...(options.enforceTrust === false || this.options.trust === false ? {} : { trusted: (u: string, d: string, k: Uint8Array) => trust!.isTrusted(u, d, k) }),
    });
    const device = await sessions.loadDevice();
    const first = !this.deviceList(userId).length;
    this.devices.set(deviceId, { userId, publicKey: toB64(device.identity.publicKey), vouch: null });
    const voucher = options.vouch ?? (first ? 'self' : this.members.get(this.deviceList(userId)[0]!.id));
    if (voucher === 'self') this.devices.get(deviceId)!.vouch = { by: deviceId, signature: vouchFor(device.identity, userId, deviceId, device.identity.publicKey) };
    else if (voucher && voucher !== 'none') {
      this.devices.get(deviceId)!.vouch = { by: voucher.deviceId, signature: vouchFor(voucher.identity, userId, deviceId, device.identity.publicKey) };
    }
    await sessions.useDevice({ ...device, deviceId, userId });
    await sessions.publishKeys();
    trust = new TrustManager({
      store: sessions.store,
      listDevices: async (uid) => this.listFor(userId, uid),
      me: () => ({ userId, deviceId, identity: device.identity }),
      putVouch: async (d, signature) => void (this.devices.get(d)!.vouch = { by: deviceId, signature }),
      onDeviceAdded: (e) => events.added.push(e),
      onDeviceUntrusted: (e) => events.untrusted.push(e),
      onDevicePending: (e) => events.pending.push(e),
      onIdentityChanged: (e) => events.identityChanged.push({ userId: e.userId, blocked: e.blocked }),
    });
    const d: Device = { userId, deviceId, identity: device.identity, sessions, trust, store, events };
    this.members.set(deviceId, d);
    return d;
  }

  /**
   * Encrypts for every device of `to` and the sender's other devices, as the client does: only
   * to devices it trusts; the others get an empty "untrusted" body.
   */
  async send(from: Device, to: string, text: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const recipients: { userId: string; devices: DeviceEntry[] }[] = [];
    for (const u of [...new Set([to, from.userId])]) {
      const listed = this.listFor(from.userId, u);
      const t = this.options.trust === false ? { trusted: listed, untrusted: [] } : await from.trust.devices(u, listed);
      recipients.push({ userId: u, devices: t.trusted });
      for (const d of t.untrusted) if (d.id !== from.deviceId) out.set(d.id, toB64(emptyBody(EMPTY_REASON.UNTRUSTED)));
    }
    for (const p of await from.sessions.encryptForDevices(recipients, INNER.CONTENT, enc.encode(text))) out.set(p.device, p.body);
    return out;
  }

  /** Decrypts as `to` a body the server says is from `from` (or from any user and device it claims). */
  async read(to: Device, from: Device | { userId: string; deviceId: string }, body: string): Promise<string> {
    const r = await to.sessions.decrypt(from.userId, from.deviceId, body);
    if (r.kind !== 'content') return `(${r.kind})`;
    return dec.decode(r.payload);
  }
}

/** The `code` of what a promise rejects with, or 'no error'. */
export const code = async (p: Promise<unknown>) => ((await p.then(() => ({ code: 'no error' }), (e: unknown) => e)) as { code: string }).code;
/** The first byte of a body: 0 empty, 1 message, 2 prekey message. */
export const bodyType = (b: string) => fromB64(b)[0];
