// The client's device trust: which listed devices it encrypts to and accepts messages from, approvals of its own new devices, safety numbers and verification.
import { fromB64, toB64 } from '../protocol/bytes.js';
import type { IdentityKeyPair } from '../protocol/keys.js';
import { safetyNumber } from './e2e.safety-number.js';
import type { E2eStore } from './e2e.store.js';
import { evaluateTrust, isTrusted, type ListedDevice, type TrustRecord, trustedKeys, vouchFor, vouchValid } from '../protocol/trust.js';
import { ParleyError } from './http.js';

export interface DeviceEvent {
  userId: string;
  deviceId: string;
}

export interface TrustDeps {
  store: E2eStore;
  /** The user's devices as the server lists them now. */
  listDevices(userId: string): Promise<ListedDevice[]>;
  /** This device. */
  me(): { userId: string; deviceId: string; identity: IdentityKeyPair };
  /** Stores a vouch by this device for `deviceId` (PUT /v1/devices/{id}/vouch). */
  putVouch(deviceId: string, signature: string): Promise<void>;
  /** A contact's (or our own) device became trusted: vouched for by a device we trust. */
  onDeviceAdded(e: DeviceEvent): void;
  /** A listed device nobody we trust vouched for: nothing is encrypted to it, nothing from it accepted. */
  onDeviceUntrusted(e: DeviceEvent): void;
  /** One of our own devices waits for approval (`approveDevice`). */
  onDevicePending(e: DeviceEvent): void;
  /** A user's devices were all replaced by new ones (`blocked`: the user was verified, so nothing goes to them until accepted). */
  onIdentityChanged(e: { userId: string; deviceId: string; previousKey: string; currentKey: string; blocked: boolean }): void;
}

export interface TrustedDevices {
  trusted: ListedDevice[];
  untrusted: ListedDevice[];
  /** A verified user whose identity changed: send nothing until `acceptIdentity`. */
  blocked: boolean;
}

/**
 * One client's trust decisions (e2e.trust.ts has the rule), kept per user in the key store.
 * Every evaluation runs alone, so two cannot overwrite each other's record.
 */
export class TrustManager {
  private chain: Promise<unknown> = Promise.resolve();
  /** Untrusted or pending devices already reported, so each is reported once per run. */
  private readonly reported = new Set<string>();
  /** The last evaluation per user, reused while the list is the same. */
  private readonly memo = new Map<string, { key: string; result: TrustedDevices }>();

  constructor(private readonly deps: TrustDeps) {}

  /** Which of `userId`'s devices to trust, from `listed` (or a fresh list); records changes and reports them. */
  devices(userId: string, listed?: readonly ListedDevice[]): Promise<TrustedDevices> {
    return this.exclusive(() => this.evaluate(userId, listed));
  }

  /** Whether a message from this device may be accepted: trusted now, or after looking at a fresh list. */
  async isTrusted(userId: string, deviceId: string, identityKey: Uint8Array): Promise<boolean> {
    if (isTrusted(await this.deps.store.trust(userId), deviceId, identityKey)) return true;
    const r = await this.devices(userId, await this.deps.listDevices(userId));
    return r.trusted.some((d) => d.id === deviceId && d.publicKey === toB64(identityKey));
  }

  /**
   * After login: makes sure this device is vouched for. The user's only device vouches for
   * itself (it is the root of the user's devices); otherwise it waits for another device of
   * the user to approve it. Returns whether it is approved.
   */
  ensureVouched(): Promise<boolean> {
    return this.exclusive(async () => {
      const me = this.deps.me();
      const listed = await this.deps.listDevices(me.userId);
      const mine = listed.find((d) => d.id === me.deviceId);
      if (mine && vouchValid(me.userId, mine, listed)) return true;
      if (listed.some((d) => d.id !== me.deviceId)) return false;
      await this.deps.putVouch(me.deviceId, vouchFor(me.identity, me.userId, me.deviceId, me.identity.publicKey));
      return true;
    });
  }

  /** Our own devices that wait for approval. */
  async pending(): Promise<ListedDevice[]> {
    const me = this.deps.me();
    return (await this.devices(me.userId, await this.deps.listDevices(me.userId))).untrusted.filter((d) => d.vouch === null);
  }

  /** Approves (vouches for) one of our own devices: our contacts then trust it, and see `device_added`. */
  async approve(deviceId: string): Promise<void> {
    const me = this.deps.me();
    const target = (await this.deps.listDevices(me.userId)).find((d) => d.id === deviceId);
    if (!target) throw new ParleyError('not_found', 'no such device of yours');
    await this.deps.putVouch(deviceId, vouchFor(me.identity, me.userId, deviceId, fromB64(target.publicKey)));
    this.memo.delete(me.userId);
  }

  /**
   * The safety number with `userId`, over the keys this client trusts for both users: its own
   * user's from its own record (never the server's list of them), the other's from theirs.
   */
  async safetyNumber(userId: string): Promise<string> {
    const me = this.deps.me();
    await this.devices(me.userId, await this.deps.listDevices(me.userId));
    await this.devices(userId, await this.deps.listDevices(userId));
    const [mine, theirs] = await Promise.all([this.deps.store.trust(me.userId), this.deps.store.trust(userId)]);
    return safetyNumber({ userId: me.userId, identityKeys: trustedKeys(mine!) }, { userId, identityKeys: trustedKeys(theirs!) });
  }

  /** Records that the user compared safety numbers: from now on a change of identity blocks sending to them until accepted. */
  markVerified(userId: string): Promise<void> {
    return this.exclusive(async () => {
      await this.evaluate(userId, await this.deps.listDevices(userId));
      const record = (await this.deps.store.trust(userId))!;
      await this.deps.store.begin().putTrust(userId, { ...record, verified: true }).commit();
    });
  }

  /** Accepts a changed identity: trusts the user's current vouched devices as on first contact, unverified. */
  acceptIdentity(userId: string): Promise<void> {
    return this.exclusive(async () => {
      await this.deps.store.begin().putTrust(userId, { devices: {}, verified: false, blocked: false }).commit();
      this.memo.delete(userId);
      const listed = await this.deps.listDevices(userId);
      const r = evaluateTrust(userId, listed, null, this.self(userId));
      await this.deps.store.begin().putTrust(userId, r.record).commit();
    });
  }

  private self(userId: string): { id: string; publicKey: string } | undefined {
    const me = this.deps.me();
    return userId === me.userId ? { id: me.deviceId, publicKey: toB64(me.identity.publicKey) } : undefined;
  }

  private async evaluate(userId: string, listed?: readonly ListedDevice[]): Promise<TrustedDevices> {
    const list = listed ?? (await this.deps.listDevices(userId));
    const key = JSON.stringify(list);
    const held = this.memo.get(userId);
    if (held && held.key === key) return held.result;
    const record = await this.deps.store.trust(userId);
    const r = evaluateTrust(userId, list, record, this.self(userId));
    if (!record || JSON.stringify(r.record) !== JSON.stringify(record)) await this.deps.store.begin().putTrust(userId, r.record).commit();
    if (r.identityChanged) {
      const first = r.record.blocked ? list[0] : r.trusted.find((d) => d.id !== this.self(userId)?.id);
      const previousKey = (first && record?.devices[first.id]) ?? '';
      this.deps.onIdentityChanged({ userId, deviceId: first?.id ?? '', previousKey, currentKey: first?.publicKey ?? '', blocked: r.record.blocked });
    }
    for (const d of r.added) this.deps.onDeviceAdded({ userId, deviceId: d.id });
    const own = userId === this.deps.me().userId;
    for (const d of r.untrusted) {
      const k = `${d.id}|${d.publicKey}`;
      if (this.reported.has(k)) continue;
      this.reported.add(k);
      if (own && d.vouch === null) this.deps.onDevicePending({ userId, deviceId: d.id });
      else this.deps.onDeviceUntrusted({ userId, deviceId: d.id });
    }
    const result: TrustedDevices = { trusted: r.trusted, untrusted: r.untrusted, blocked: r.record.blocked };
    this.memo.set(userId, { key, result });
    return result;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}

export type { TrustRecord };
