// Login proof: the device signs the server's login challenge with its identity key, so a login registers only a key its holder controls.
import sodium from 'libsodium-wrappers-sumo';
import { concat, fromB64, toB64, u32, utf8 } from './bytes.js';
import type { IdentityKeyPair } from './keys.js';
import { ParleyError } from './errors.js';

const CONTEXT = utf8('Parley login v1');

/** `device.proof` of `POST /v1/sessions`: the challenge as the server issued it, and the signature (base64, 64 bytes). */
export interface LoginProof {
  challenge: string;
  signature: string;
}

/**
 * The bytes a login proof signs: `"Parley login v1"` ‖ challenge length (uint32 BE) ‖ challenge
 * ‖ username length (uint32 BE) ‖ username (NFKC, UTF-8) ‖ the 32-byte identity public key.
 * The username is normalized here as the server normalizes it, so callers pass what they log in with.
 */
export function loginProofMessage(challenge: Uint8Array, username: string, publicKey: Uint8Array): Uint8Array {
  const name = utf8(username.normalize('NFKC'));
  return concat(CONTEXT, u32(challenge.length), challenge, u32(name.length), name, publicKey);
}

/**
 * Signs a login challenge (from `POST /v1/sessions/challenge`) for `username` with the identity
 * key the device logs in with. Call `await sodiumReady()` first.
 * @example device: { name, publicKey: toB64(identity.publicKey), proof: signLoginProof(identity, challenge, 'alice') }
 */
export function signLoginProof(identity: IdentityKeyPair, challenge: string, username: string): LoginProof {
  let bytes: Uint8Array;
  try {
    bytes = fromB64(challenge);
  } catch {
    throw new ParleyError('invalid', 'the server sent a malformed login challenge');
  }
  const signature = sodium.crypto_sign_detached(loginProofMessage(bytes, username, identity.publicKey), identity.secretKey);
  return { challenge, signature: toB64(signature) };
}

/** Whether `signature` is `publicKey`'s signature of the login proof bytes (the server checks logins with this). */
export function verifyLoginProof(publicKey: Uint8Array, challenge: Uint8Array, username: string, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return sodium.crypto_sign_verify_detached(signature, loginProofMessage(challenge, username, publicKey), publicKey);
  } catch {
    return false;
  }
}
