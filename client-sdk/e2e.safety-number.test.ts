// Safety numbers: same on both sides, checked against a second implementation and libsignal's published vectors, sensitive to every key.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sodiumReady } from '../protocol/bytes.js';
import { generateIdentity } from '../protocol/keys.js';
import { fingerprintDigits, formatSafetyNumber, SAFETY_NUMBER_ITERATIONS, safetyNumber } from './e2e.safety-number.js';

// Ready before the suites are collected: some build their keys at collection time.
await sodiumReady();

/** The documented construction, written again with node:crypto: a second implementation to compare with. */
function reference(userId: string, keys: Uint8Array[]): string {
  const sorted = Buffer.concat([...keys].map((k) => Buffer.from(k)).sort(Buffer.compare));
  let hash = createHash('sha512').update(Buffer.from([0, 0])).update(sorted).update(userId).update(sorted).digest();
  for (let i = 1; i < SAFETY_NUMBER_ITERATIONS; i++) hash = createHash('sha512').update(hash).update(sorted).digest();
  let out = '';
  for (let c = 0; c < 6; c++) out += String(Number(hash.readBigUInt64BE(c * 5) >> 24n) % 100000).padStart(5, '0');
  return out;
}

/**
 * libsignal's NumericFingerprintGenerator test vectors (rust/protocol/src/fingerprint.rs and
 * java/…/NumericFingerprintGeneratorTest.java in signalapp/libsignal; the same in
 * libsignal-protocol-c tests/test_fingerprint.c): identity keys in their 33-byte serialized
 * form (0x05 ‖ X25519), phone numbers as stable identifiers, 5 200 iterations, and the
 * displayable fingerprint (the same for fingerprint versions 1 and 2).
 */
const SIGNAL_VECTOR = {
  aliceIdentity: '0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868',
  bobIdentity: '05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b',
  aliceStableId: '+14152222222',
  bobStableId: '+14153333333',
  iterations: 5200,
  displayable: '300354477692869396892869876765458257569162576843440918079131',
};

describe('safety numbers: known answer (libsignal NumericFingerprintGenerator)', () => {
  const alice = { userId: SIGNAL_VECTOR.aliceStableId, identityKeys: [new Uint8Array(Buffer.from(SIGNAL_VECTOR.aliceIdentity, 'hex'))] };
  const bob = { userId: SIGNAL_VECTOR.bobStableId, identityKeys: [new Uint8Array(Buffer.from(SIGNAL_VECTOR.bobIdentity, 'hex'))] };

  it('uses as many iterations as the vector', () => {
    expect(SAFETY_NUMBER_ITERATIONS).toBe(SIGNAL_VECTOR.iterations);
  });

  it("gives libsignal's displayable fingerprint, from either side", () => {
    expect(safetyNumber(alice, bob)).toBe(SIGNAL_VECTOR.displayable);
    expect(safetyNumber(bob, alice)).toBe(SIGNAL_VECTOR.displayable);
    // Each half is one party's 30 digits (the smaller first).
    expect([fingerprintDigits(alice), fingerprintDigits(bob)].sort().join('')).toBe(SIGNAL_VECTOR.displayable);
  });
});

describe('safety numbers', () => {
  const alice = { userId: 'alice-id', identityKeys: [generateIdentity().publicKey, generateIdentity().publicKey] };
  const bob = { userId: 'bob-id', identityKeys: [generateIdentity().publicKey] };

  it('is 60 digits and the same from both sides, whatever the device order', () => {
    const n = safetyNumber(alice, bob);
    expect(n).toMatch(/^\d{60}$/);
    expect(safetyNumber(bob, alice)).toBe(n);
    expect(safetyNumber({ ...alice, identityKeys: [...alice.identityKeys].reverse() }, bob)).toBe(n);
    expect(formatSafetyNumber(n)).toMatch(/^(\d{5} ){11}\d{5}$/);
  });

  it('matches an independent implementation of the construction', () => {
    expect(fingerprintDigits(alice)).toBe(reference(alice.userId, alice.identityKeys));
    expect(fingerprintDigits(bob)).toBe(reference(bob.userId, bob.identityKeys));
  });

  it('changes when any device key is replaced, added or removed, or the user id differs', () => {
    const n = safetyNumber(alice, bob);
    expect(safetyNumber(alice, { ...bob, identityKeys: [generateIdentity().publicKey] })).not.toBe(n);
    expect(safetyNumber(alice, { ...bob, identityKeys: [...bob.identityKeys, generateIdentity().publicKey] })).not.toBe(n);
    expect(safetyNumber({ ...alice, identityKeys: alice.identityKeys.slice(1) }, bob)).not.toBe(n);
    expect(safetyNumber(alice, { ...bob, userId: 'mallory-id' })).not.toBe(n);
  });
});
