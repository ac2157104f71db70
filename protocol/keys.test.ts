// Known answers for X25519 (RFC 7748), low-order points refused, identity conversion and prekey signatures.
import sodium from 'libsodium-wrappers-sumo';
import { describe, expect, it } from 'vitest';
import { sodiumReady } from './bytes.js';
import {
  dh,
  generateIdentity,
  generateOneTimePrekeys,
  generateSignedPrekey,
  identitySecretToX25519,
  identityToX25519,
  isValidIdentityKey,
  isValidX25519PublicKey,
  verifySignedPrekey,
} from './keys.js';

const hex = (s: string) => sodium.from_hex(s);
const toHex = (b: Uint8Array) => sodium.to_hex(b);

// Ready before the suites are collected: some build their keys at collection time.
await sodiumReady();

describe('X25519: RFC 7748 known answers', () => {
  it('§5.2 test vectors (scalar × u-coordinate)', () => {
    expect(toHex(dh(hex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4'), hex('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c')))).toBe(
      'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
    );
    expect(toHex(dh(hex('4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d'), hex('e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493')))).toBe(
      '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
    );
  });

  it('§5.2 iterated: 1 and 1000 iterations from k = u = 9', () => {
    let k: Uint8Array = new Uint8Array(32);
    k[0] = 9;
    let u: Uint8Array = k.slice();
    for (let i = 1; i <= 1000; i++) {
      const next = dh(k, u);
      u = k;
      k = next;
      if (i === 1) expect(toHex(k)).toBe('422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079');
    }
    expect(toHex(k)).toBe('684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51');
  });

  it('§6.1 Diffie-Hellman between Alice and Bob', () => {
    const aliceSk = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const bobSk = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    const alicePk = sodium.crypto_scalarmult_base(aliceSk);
    const bobPk = sodium.crypto_scalarmult_base(bobSk);
    expect(toHex(alicePk)).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(toHex(bobPk)).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    expect(toHex(dh(aliceSk, bobPk))).toBe(shared);
    expect(toHex(dh(bobSk, alicePk))).toBe(shared);
  });

  // The points of order 1, 2, 4 and 8 (and p-1, p, p+1, which reduce to them): DH with any is all zero.
  const canonical = [
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0100000000000000000000000000000000000000000000000000000000000000',
    'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
    '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  ];
  // RFC 7748 §5 masks bit 255 of u, so the same points with it set must be refused too.
  const withHighBit = canonical.map((h) => h.slice(0, 62) + (parseInt(h.slice(62), 16) | 0x80).toString(16).padStart(2, '0'));
  const lowOrder = [...canonical, ...withHighBit];
  it.each(lowOrder)('rejects the low-order point %s', (point) => {
    const sk = sodium.randombytes_buf(32);
    expect(() => dh(sk, hex(point))).toThrow(expect.objectContaining({ code: 'invalid_key' }));
    expect(isValidX25519PublicKey(hex(point))).toBe(false);
  });

  it('accepts ordinary public keys and refuses wrong lengths', () => {
    expect(isValidX25519PublicKey(sodium.crypto_scalarmult_base(sodium.randombytes_buf(32)))).toBe(true);
    expect(isValidX25519PublicKey(new Uint8Array(31).fill(7))).toBe(false);
  });
});

describe('identity and prekeys', () => {
  it('converts an Ed25519 identity to an X25519 pair whose halves agree', () => {
    const id = generateIdentity();
    const x = identitySecretToX25519(id);
    expect(sodium.crypto_scalarmult_base(x)).toEqual(identityToX25519(id.publicKey));
    const peer = generateIdentity();
    expect(dh(x, identityToX25519(peer.publicKey))).toEqual(dh(identitySecretToX25519(peer), identityToX25519(id.publicKey)));
  });

  it('tells usable identity keys from invalid and low-order points', () => {
    expect(isValidIdentityKey(generateIdentity().publicKey)).toBe(true);
    expect(isValidIdentityKey(new Uint8Array(32))).toBe(false);
    const identityPoint = new Uint8Array(32);
    identityPoint[0] = 1; // the Ed25519 neutral element
    expect(isValidIdentityKey(identityPoint)).toBe(false);
    expect(() => identityToX25519(new Uint8Array(32))).toThrow(expect.objectContaining({ code: 'invalid_key' }));
  });

  it('signs a prekey so that only its identity, id and key verify', () => {
    const id = generateIdentity();
    const spk = generateSignedPrekey(id, 0, 7);
    expect(verifySignedPrekey(id.publicKey, 7, spk.keyPair.publicKey, spk.signature)).toBe(true);
    expect(verifySignedPrekey(generateIdentity().publicKey, 7, spk.keyPair.publicKey, spk.signature)).toBe(false);
    expect(verifySignedPrekey(id.publicKey, 8, spk.keyPair.publicKey, spk.signature)).toBe(false);
    const otherKey = spk.keyPair.publicKey.slice();
    otherKey[0]! ^= 1;
    expect(verifySignedPrekey(id.publicKey, 7, otherKey, spk.signature)).toBe(false);
    const badSig = spk.signature.slice();
    badSig[10]! ^= 1;
    expect(verifySignedPrekey(id.publicKey, 7, spk.keyPair.publicKey, badSig)).toBe(false);
  });

  it('generates one-time prekeys with distinct ids avoiding taken ones', () => {
    const first = generateOneTimePrekeys(50);
    const taken = new Set(first.map((k) => k.id));
    expect(taken.size).toBe(50);
    const more = generateOneTimePrekeys(50, taken);
    expect(more.every((k) => !taken.has(k.id) && k.id >= 1 && k.id < 2 ** 31)).toBe(true);
  });
});
