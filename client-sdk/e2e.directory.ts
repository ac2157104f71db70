// The SDK's view of the server's key directory (REST /v1/keys and /v1/users/{id}/bundles), keys decoded to bytes.
import { fromB64, toB64 } from '../protocol/bytes.js';
import type { OneTimePrekey, PrekeyBundle, SignedPrekey } from '../protocol/keys.js';

export interface DirectoryStatus {
  identityKey: string;
  signedPrekeyId: number | null;
  oneTimePrekeys: number;
}

/** A device's bundle, or `bundle: null` when it has published no prekeys for its identity key. */
export interface FetchedBundle {
  deviceId: string;
  identityKey: string;
  bundle: PrekeyBundle | null;
}

/** What the session manager needs from the server; `restDirectory` implements it, tests fake it. */
export interface KeyDirectoryClient {
  status(): Promise<DirectoryStatus>;
  /** Replaces the device's signed prekey and all its one-time prekeys. */
  publish(identityKey: Uint8Array, signedPrekey: SignedPrekey, oneTime: OneTimePrekey[]): Promise<{ oneTimePrekeys: number }>;
  rotate(signedPrekey: SignedPrekey): Promise<void>;
  upload(oneTime: OneTimePrekey[]): Promise<{ oneTimePrekeys: number }>;
  /** One bundle per device of the user (only `deviceIds` when given); claims one-time prekeys. */
  bundles(userId: string, deviceIds?: string[]): Promise<FetchedBundle[]>;
}

type Call = <T>(method: string, path: string, body?: unknown) => Promise<T>;

interface BundleJson {
  deviceId: string;
  identityKey: string;
  signedPrekey: { id: number; publicKey: string; signature: string } | null;
  oneTimePrekey: { id: number; publicKey: string } | null;
}

const spkJson = (k: SignedPrekey) => ({ id: k.id, publicKey: toB64(k.keyPair.publicKey), signature: toB64(k.signature) });

/** The directory over the REST API; `call` makes an authenticated request and throws ParleyError. */
export function restDirectory(call: Call): KeyDirectoryClient {
  return {
    status: () => call<DirectoryStatus>('GET', '/v1/keys'),
    publish: (identityKey, spk, oneTime) =>
      call('PUT', '/v1/keys', {
        identityKey: toB64(identityKey),
        signedPrekey: spkJson(spk),
        oneTimePrekeys: oneTime.map((k) => ({ id: k.id, publicKey: toB64(k.keyPair.publicKey) })),
      }),
    rotate: (spk) => call<void>('PUT', '/v1/keys/signed-prekey', spkJson(spk)),
    upload: (oneTime) => call('POST', '/v1/keys/one-time-prekeys', { prekeys: oneTime.map((k) => ({ id: k.id, publicKey: toB64(k.keyPair.publicKey) })) }),
    bundles: async (userId, deviceIds) => {
      const query = deviceIds && deviceIds.length > 0 ? `?devices=${deviceIds.join(',')}` : '';
      const r = await call<{ bundles: BundleJson[] }>('GET', `/v1/users/${encodeURIComponent(userId)}/bundles${query}`);
      return r.bundles.map(decodeBundle);
    },
  };
}

/** Decodes a bundle from the server; a malformed key makes the bundle unusable rather than throwing. */
export function decodeBundle(b: BundleJson): FetchedBundle {
  if (!b.signedPrekey) return { deviceId: b.deviceId, identityKey: b.identityKey, bundle: null };
  try {
    return {
      deviceId: b.deviceId,
      identityKey: b.identityKey,
      bundle: {
        deviceId: b.deviceId,
        identityKey: fromB64(b.identityKey),
        signedPrekey: { id: b.signedPrekey.id, publicKey: fromB64(b.signedPrekey.publicKey), signature: fromB64(b.signedPrekey.signature) },
        oneTimePrekey: b.oneTimePrekey ? { id: b.oneTimePrekey.id, publicKey: fromB64(b.oneTimePrekey.publicKey) } : null,
      },
    };
  } catch {
    return { deviceId: b.deviceId, identityKey: b.identityKey, bundle: null };
  }
}
