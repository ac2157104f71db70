// Device keys: the Ed25519 identity (converted to X25519 for DH), signed prekeys, one-time prekeys, and checked X25519 DH.
import sodium from 'libsodium-wrappers-sumo';
import { concat, equal, fromB64, randomBytes, randomKeyId, u32, utf8 } from './bytes.js';
import { ParleyError } from './errors.js';

/** An Ed25519 identity key pair; `publicKey` is what the server registers as the device's key. */
export interface IdentityKeyPair {
  publicKey: Uint8Array; // 32 bytes, Ed25519
  secretKey: Uint8Array; // 64 bytes, Ed25519 (seed ‖ public key)
}

export interface X25519KeyPair {
  publicKey: Uint8Array; // 32 bytes
  secretKey: Uint8Array; // 32 bytes
}

/** A medium-term X25519 key, signed by the identity key; replaced (rotated) periodically. */
export interface SignedPrekey {
  id: number;
  keyPair: X25519KeyPair;
  signature: Uint8Array; // 64 bytes, Ed25519 over signedPrekeyMessage(id, publicKey)
  createdAt: number;
}

/** A single-use X25519 key; the server hands each out once. */
export interface OneTimePrekey {
  id: number;
  keyPair: X25519KeyPair;
}

/** What the key directory returns for one device (public parts only). */
export interface PrekeyBundle {
  deviceId: string;
  identityKey: Uint8Array;
  signedPrekey: { id: number; publicKey: Uint8Array; signature: Uint8Array };
  oneTimePrekey: { id: number; publicKey: Uint8Array } | null;
}

const SPK_CONTEXT = utf8('Parley signed prekey v1');

export function generateIdentity(): IdentityKeyPair {
  const kp = sodium.crypto_sign_keypair();
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
}

export function generateX25519(): X25519KeyPair {
  const secretKey = randomBytes(32);
  return { publicKey: sodium.crypto_scalarmult_base(secretKey), secretKey };
}

/** The identity's public key as an X25519 key; throws `invalid_key` for a point that is not a usable Ed25519 key. */
export function identityToX25519(identityPublicKey: Uint8Array): Uint8Array {
  try {
    return sodium.crypto_sign_ed25519_pk_to_curve25519(identityPublicKey);
  } catch {
    throw new ParleyError('invalid_key', 'not a valid Ed25519 identity key');
  }
}

export function identitySecretToX25519(identity: IdentityKeyPair): Uint8Array {
  return sodium.crypto_sign_ed25519_sk_to_curve25519(identity.secretKey);
}

/**
 * Whether `key` is a usable Ed25519 identity key: 32 bytes, a canonical point of prime order
 * (libsodium's conversion refuses small-order and invalid points). The server checks keys with this too.
 */
export function isValidIdentityKey(key: Uint8Array): boolean {
  if (key.length !== 32) return false;
  try {
    sodium.crypto_sign_ed25519_pk_to_curve25519(key);
    return true;
  } catch {
    return false;
  }
}

/**
 * X25519 with a fresh check: libsodium's crypto_scalarmult fails when the result is all zero,
 * which is exactly when the peer's point has low order (RFC 7748 §6.1); we check again anyway.
 */
export function dh(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  if (publicKey.length !== 32 || secretKey.length !== 32) throw new ParleyError('invalid_key', 'X25519 keys are 32 bytes');
  let out: Uint8Array;
  try {
    out = sodium.crypto_scalarmult(secretKey, publicKey);
  } catch {
    throw new ParleyError('invalid_key', 'X25519 public key has low order');
  }
  if (sodium.is_zero(out)) throw new ParleyError('invalid_key', 'X25519 public key has low order');
  return out;
}

/** Whether `key` is a 32-byte X25519 public key that is not of low order (checked with a throwaway scalar). */
export function isValidX25519PublicKey(key: Uint8Array): boolean {
  if (key.length !== 32) return false;
  try {
    dh(randomBytes(32), key);
    return true;
  } catch {
    return false;
  }
}

/** The bytes a signed prekey's signature covers: context ‖ id (uint32 BE) ‖ public key. */
export function signedPrekeyMessage(id: number, publicKey: Uint8Array): Uint8Array {
  return concat(SPK_CONTEXT, u32(id), publicKey);
}

export function generateSignedPrekey(identity: IdentityKeyPair, now: number, id = randomKeyId()): SignedPrekey {
  const keyPair = generateX25519();
  const signature = sodium.crypto_sign_detached(signedPrekeyMessage(id, keyPair.publicKey), identity.secretKey);
  return { id, keyPair, signature, createdAt: now };
}

/** Verifies a signed prekey against the identity key that should have signed it. */
export function verifySignedPrekey(identityKey: Uint8Array, id: number, publicKey: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32 || identityKey.length !== 32) return false;
  try {
    return sodium.crypto_sign_verify_detached(signature, signedPrekeyMessage(id, publicKey), identityKey);
  } catch {
    return false;
  }
}

/** `count` one-time prekeys with random ids not in `taken`. */
export function generateOneTimePrekeys(count: number, taken: ReadonlySet<number> = new Set()): OneTimePrekey[] {
  const ids = new Set<number>();
  while (ids.size < count) {
    const id = randomKeyId();
    if (!taken.has(id)) ids.add(id);
  }
  return [...ids].map((id) => ({ id, keyPair: generateX25519() }));
}

/** Decodes a base64 key and checks its length. */
export function keyFromB64(s: string, length = 32): Uint8Array {
  let k: Uint8Array;
  try {
    k = fromB64(s);
  } catch {
    throw new ParleyError('invalid_key', 'key is not base64');
  }
  if (k.length !== length) throw new ParleyError('invalid_key', `key must be ${length} bytes`);
  return k;
}

export function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return equal(a, b);
}
