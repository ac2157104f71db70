// Safety numbers: 60 digits that two users compare to check they hold each other's real identity keys.
import sodium from 'libsodium-wrappers-sumo';
import { concat, utf8 } from '../protocol/bytes.js';

/**
 * SHA-512 rounds per half, as Signal's NumericFingerprintGenerator (libsignal: 5 200). The
 * construction is Signal's: round 1 hashes version ‖ keys ‖ stable id ‖ keys, each further
 * round hashes the previous digest ‖ keys. For one key per user, given its 33-byte form
 * (0x05 ‖ X25519 key) and the stable id Signal uses, it gives Signal's digits exactly (the
 * test checks libsignal's published vectors); with our 32-byte Ed25519 keys and user ids the
 * numbers are of course our own.
 */
export const SAFETY_NUMBER_ITERATIONS = 5200;
const VERSION = new Uint8Array([0, 0]);

/** One side: a user and the identity keys of all their devices (each user has one per device). */
export interface SafetyParty {
  userId: string;
  identityKeys: Uint8Array[];
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * 30 digits for one party. The keys are sorted, so the order devices are listed in does not
 * matter; any added, removed or replaced device key changes the digits.
 */
export function fingerprintDigits(party: SafetyParty): string {
  const keys = concat(...[...party.identityKeys].sort(compareBytes));
  let hash = sodium.crypto_hash_sha512(concat(VERSION, keys, utf8(party.userId), keys));
  for (let i = 1; i < SAFETY_NUMBER_ITERATIONS; i++) hash = sodium.crypto_hash_sha512(concat(hash, keys));
  let digits = '';
  for (let chunk = 0; chunk < 6; chunk++) {
    let v = 0;
    for (let j = 0; j < 5; j++) v = v * 256 + hash[chunk * 5 + j]!; // 40 bits: exact in a double
    digits += String(v % 100_000).padStart(5, '0');
  }
  return digits;
}

/**
 * The safety number of two parties: both halves, the smaller first, so both users see the same
 * 60 digits whichever of them computes it.
 * @example safetyNumber({ userId: alice, identityKeys: [a1, a2] }, { userId: bob, identityKeys: [b1] })
 */
export function safetyNumber(a: SafetyParty, b: SafetyParty): string {
  return [fingerprintDigits(a), fingerprintDigits(b)].sort().join('');
}

/** "12345 67890 …": twelve groups of five, as apps show it. */
export function formatSafetyNumber(digits: string): string {
  return digits.replace(/(\d{5})(?=\d)/g, '$1 ');
}
