// HMAC-SHA256 (RFC 2104 / 4231) and HKDF-SHA256 (RFC 5869) on libsodium's crypto_auth_hmacsha256, which has no HKDF of its own.
import sodium from 'libsodium-wrappers-sumo';
import { ParleyError } from './http.js';

/** The streaming HMAC API (any key length) exists in libsodium-wrappers but not in its type definitions. */
interface HmacApi {
  crypto_auth_hmacsha256_init(key: Uint8Array): number;
  crypto_auth_hmacsha256_update(state: number, message: Uint8Array): void;
  crypto_auth_hmacsha256_final(state: number): Uint8Array;
}

const HASH_LEN = 32;

/**
 * HMAC-SHA256 with a key of any length.
 * @example hmacSha256(chainKey, new Uint8Array([1])) // 32 bytes
 */
export function hmacSha256(key: Uint8Array, ...data: Uint8Array[]): Uint8Array {
  // A missing or empty key would make every output a public constant (HMAC pads it with zeros).
  if (!(key instanceof Uint8Array) || key.length === 0) throw new ParleyError('invalid_key', 'HMAC needs a non-empty key');
  const api = sodium as unknown as HmacApi;
  const state = api.crypto_auth_hmacsha256_init(key);
  for (const d of data) api.crypto_auth_hmacsha256_update(state, d);
  return api.crypto_auth_hmacsha256_final(state);
}

/** HKDF-Extract: PRK = HMAC(salt, IKM); an empty salt means HashLen zero bytes. */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hmacSha256(salt.length === 0 ? new Uint8Array(HASH_LEN) : salt, ikm);
}

/** HKDF-Expand: T(i) = HMAC(PRK, T(i-1) ‖ info ‖ i), concatenated and cut to `length` (at most 255 · 32). */
export function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > 255 * HASH_LEN) throw new RangeError('HKDF length out of range');
  const out = new Uint8Array(length);
  let t: Uint8Array = new Uint8Array(0);
  for (let i = 1, at = 0; at < length; i++) {
    t = hmacSha256(prk, t, info, new Uint8Array([i]));
    out.set(t.subarray(0, Math.min(HASH_LEN, length - at)), at);
    at += HASH_LEN;
  }
  return out;
}

/**
 * HKDF-SHA256 (extract then expand).
 * @example hkdf(ikm, new Uint8Array(32), utf8('Parley X3DH v1'), 32)
 */
export function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!(ikm instanceof Uint8Array) || ikm.length === 0) throw new ParleyError('invalid_key', 'HKDF needs non-empty input key material');
  return hkdfExpand(hkdfExtract(salt, ikm), info, length);
}
