// Safety numbers: same on both sides, checked against a second implementation, sensitive to every key.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sodiumReady } from './e2e.bytes.js';
import { generateIdentity } from './e2e.keys.js';
import { fingerprintDigits, formatSafetyNumber, SAFETY_NUMBER_ITERATIONS, safetyNumber } from './e2e.safety-number.js';

// Ready before the suites are collected: some build their keys at collection time.
await sodiumReady();

/** The documented construction, written again with node:crypto: a second implementation to compare with. */
function reference(userId: string, keys: Uint8Array[]): string {
  const sorted = Buffer.concat([...keys].map((k) => Buffer.from(k)).sort(Buffer.compare));
  let hash = createHash('sha512').update(Buffer.from([0, 0])).update(sorted).update(userId).digest();
  for (let i = 0; i < SAFETY_NUMBER_ITERATIONS; i++) hash = createHash('sha512').update(hash).update(sorted).digest();
  let out = '';
  for (let c = 0; c < 6; c++) out += String(Number(hash.readBigUInt64BE(c * 5) >> 24n) % 100000).padStart(5, '0');
  return out;
}

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
