import { beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, open, ready, seal } from './crypto.js';

describe('per-device sealing', () => {
  beforeAll(ready);
  const enc = new TextEncoder();

  it('round-trips between two devices and hides the plaintext', () => {
    const alice = generateKeyPair();
    const bob = generateKeyPair();
    const body = seal(enc.encode('hello bob'), bob.publicKey, alice.secretKey);
    expect(body).not.toContain('hello');
    expect(Buffer.from(body, 'base64').toString('latin1')).not.toContain('hello bob');
    expect(new TextDecoder().decode(open(body, alice.publicKey, bob.secretKey))).toBe('hello bob');
  });

  it('uses a fresh nonce every time', () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    expect(seal(enc.encode('x'), b.publicKey, a.secretKey)).not.toBe(seal(enc.encode('x'), b.publicKey, a.secretKey));
  });

  it('rejects altered ciphertext, a wrong sender and a wrong recipient', () => {
    const alice = generateKeyPair();
    const bob = generateKeyPair();
    const eve = generateKeyPair();
    const body = seal(enc.encode('secret'), bob.publicKey, alice.secretKey);
    const raw = Buffer.from(body, 'base64');
    raw[raw.length - 1]! ^= 1;
    expect(() => open(raw.toString('base64'), alice.publicKey, bob.secretKey)).toThrow();
    expect(() => open(body, eve.publicKey, bob.secretKey)).toThrow();
    expect(() => open(body, alice.publicKey, eve.secretKey)).toThrow();
    expect(() => open('AAAA', alice.publicKey, bob.secretKey)).toThrow();
  });
});
