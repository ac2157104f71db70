// Device trust: a user's devices vouch for each other with signed certificates, and a client encrypts only to devices vouched for by devices it already trusts.
import sodium from 'libsodium-wrappers-sumo';
import { concat, equal, fromB64, toB64, u32, utf8 } from './bytes.js';
import type { IdentityKeyPair } from './keys.js';
import type { ListedDeviceJson } from './frames.js';

const CERT_CONTEXT = utf8('Parley device v1');

/** A device as the server lists it: its identity key (base64) and who vouched for it (itself, for a user's first device). */
export type ListedDevice = ListedDeviceJson;

/**
 * What a voucher signs: "Parley device v1" ‖ len ‖ user id ‖ len ‖ device id ‖ the device's
 * 32-byte identity key (lengths u32 big-endian, ids UTF-8). It binds the key to that device of
 * that user, so it cannot be moved to another device or user.
 */
export function deviceCertificate(userId: string, deviceId: string, identityKey: Uint8Array): Uint8Array {
  const u = utf8(userId);
  const d = utf8(deviceId);
  return concat(CERT_CONTEXT, u32(u.length), u, u32(d.length), d, identityKey);
}

/** A vouch by `signer` for a device of the same user (base64 Ed25519 signature). */
export function vouchFor(signer: IdentityKeyPair, userId: string, deviceId: string, identityKey: Uint8Array): string {
  return toB64(sodium.crypto_sign_detached(deviceCertificate(userId, deviceId, identityKey), signer.secretKey));
}

/** Whether `device`'s vouch is a valid signature by the listed device it names (or by itself). */
export function vouchValid(userId: string, device: ListedDevice, listed: readonly ListedDevice[]): boolean {
  if (!device.vouch) return false;
  const signer = device.vouch.by === device.id ? device : listed.find((d) => d.id === device.vouch!.by);
  if (!signer) return false;
  try {
    return sodium.crypto_sign_verify_detached(fromB64(device.vouch.signature), deviceCertificate(userId, device.id, fromB64(device.publicKey)), fromB64(signer.publicKey));
  } catch {
    return false;
  }
}

/** What a client keeps per user (its own included): the devices it trusts and whether the user was verified. */
export interface TrustRecord {
  /** Device id → identity key (base64) of every device trusted. */
  devices: Record<string, string>;
  /** Set by markVerified: a change of identity then blocks sending until the app accepts it. */
  verified: boolean;
  /** Set when a verified user's identity changed: nothing is encrypted to them until accepted. */
  blocked: boolean;
}

export interface TrustResult {
  /** The listed devices to encrypt to and accept messages from. */
  trusted: ListedDevice[];
  /** Listed devices that are not: no copy is encrypted to them, nothing from them is accepted. */
  untrusted: ListedDevice[];
  /** Devices trusted now that were not before (a contact's `device_added`). Empty on first contact. */
  added: ListedDevice[];
  /** None of the devices trusted before is left, and new ones took their place (a reinstall, or a server substituting keys). */
  identityChanged: boolean;
  record: TrustRecord;
}

/**
 * Decides which of a user's listed devices to trust, from what the client trusted before.
 *
 * - First contact (no record): every listed device with a valid vouch is trusted (trust on
 *   first use; safety numbers check it). A device nobody vouched for (a new login not yet
 *   approved by another device of its user) is not.
 * - After that: devices still listed with the key we trusted stay trusted, and a device is
 *   added only when a trusted device vouched for it (its certificate is signed by one). A
 *   device the server adds on its own, or with a certificate it made itself, is not trusted.
 * - If none of the trusted devices is listed any more but some listed devices are vouched for
 *   (the user lost their devices and started again, or the server substitutes them), the
 *   identity changed: for a user not verified, the new devices are trusted as on first contact
 *   (`identityChanged`, so the app is told); for a verified one, nothing is trusted until
 *   the app accepts the change (`record.blocked`).
 * - `alwaysTrusted` (our own device, when `userId` is us) is trusted whatever the list says.
 */
export function evaluateTrust(
  userId: string,
  listed: readonly ListedDevice[],
  record: TrustRecord | null,
  alwaysTrusted?: { id: string; publicKey: string },
): TrustResult {
  const vouched = listed.filter((d) => vouchValid(userId, d, listed));
  const anchors = new Set<string>();
  if (alwaysTrusted) anchors.add(alwaysTrusted.id);
  let identityChanged = false;
  let blocked = record?.blocked ?? false;
  if (record && !blocked) {
    for (const d of listed) if (record.devices[d.id] === d.publicKey) anchors.add(d.id);
    const kept = [...anchors].some((id) => id !== alwaysTrusted?.id);
    if (!kept && Object.keys(record.devices).some((id) => id !== alwaysTrusted?.id) && vouched.some((d) => d.id !== alwaysTrusted?.id)) {
      identityChanged = true;
      if (record.verified) blocked = true;
      else for (const d of vouched) anchors.add(d.id);
    }
  } else if (!record) {
    for (const d of vouched) anchors.add(d.id);
  }
  const trusted = new Set(blocked ? [] : anchors);
  if (alwaysTrusted) trusted.add(alwaysTrusted.id);
  if (!blocked) {
    // Closure: a device vouched for by a trusted device is trusted.
    for (let grew = true; grew; ) {
      grew = false;
      for (const d of vouched) {
        if (!trusted.has(d.id) && trusted.has(d.vouch!.by)) {
          trusted.add(d.id);
          grew = true;
        }
      }
    }
  }
  const trustedList = listed.filter((d) => trusted.has(d.id) && (d.id !== alwaysTrusted?.id || d.publicKey === alwaysTrusted.publicKey));
  const devices: Record<string, string> = {};
  for (const d of trustedList) devices[d.id] = d.publicKey;
  if (alwaysTrusted) devices[alwaysTrusted.id] = alwaysTrusted.publicKey;
  const before = record && !identityChanged ? record.devices : null;
  return {
    trusted: trustedList,
    untrusted: listed.filter((d) => !trustedList.includes(d)),
    added: before ? trustedList.filter((d) => before[d.id] !== d.publicKey) : [],
    identityChanged,
    record: { devices: blocked ? (record?.devices ?? {}) : devices, verified: record?.verified ?? false, blocked },
  };
}

/** The identity keys of a trust record (what safety numbers are computed over), sorted by device id. */
export function trustedKeys(record: TrustRecord): Uint8Array[] {
  return Object.keys(record.devices)
    .sort()
    .map((id) => fromB64(record.devices[id]!));
}

/** Whether a device's identity key is the one a record trusts. */
export function isTrusted(record: TrustRecord | null, deviceId: string, identityKey: Uint8Array): boolean {
  const k = record?.devices[deviceId];
  return k !== undefined && !record!.blocked && equal(fromB64(k), identityKey);
}
