// Login proofs: the exact bytes signed, the signature a fixed key gives, and every binding (challenge, username, key) checked.
import sodium from 'libsodium-wrappers-sumo';
import { describe, expect, it } from 'vitest';
import { fromB64, sodiumReady, toB64 } from './bytes.js';
import { generateIdentity, type IdentityKeyPair } from './keys.js';
import { loginProofMessage, signLoginProof, verifyLoginProof } from './login-proof.js';

await sodiumReady();

/** A fixed identity: Ed25519 from the seed 00 01 02 … 1f. */
const fixed: IdentityKeyPair = (() => {
  const kp = sodium.crypto_sign_seed_keypair(Uint8Array.from({ length: 32 }, (_, i) => i));
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
})();
const challenge = Uint8Array.from({ length: 57 }, (_, i) => 0xa0 ^ i);

describe('login proof bytes', () => {
  it('are "Parley login v1" ‖ u32 len ‖ challenge ‖ u32 len ‖ username (UTF-8) ‖ public key', () => {
    const bytes = Buffer.from(loginProofMessage(challenge, 'alice', fixed.publicKey));
    const expected = Buffer.concat([
      Buffer.from('Parley login v1', 'utf8'),
      Buffer.from([0, 0, 0, 57]),
      challenge,
      Buffer.from([0, 0, 0, 5]),
      Buffer.from('alice', 'utf8'),
      fixed.publicKey,
    ]);
    expect(bytes.equals(expected)).toBe(true);
    expect(bytes.length).toBe(15 + 4 + 57 + 4 + 5 + 32);
  });

  it('use the NFKC-normalized username, as the server compares it', () => {
    const fullwidth = 'ａｌｉｃｅ'; // NFKC: alice
    expect(Buffer.from(loginProofMessage(challenge, fullwidth, fixed.publicKey)).equals(Buffer.from(loginProofMessage(challenge, 'alice', fixed.publicKey)))).toBe(true);
    // Lengths count UTF-8 bytes, not characters.
    const multi = Buffer.from(loginProofMessage(new Uint8Array(0), 'é', fixed.publicKey));
    expect(multi.subarray(15, 23).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 2]))).toBe(true);
  });

  it('give a fixed signature for a fixed key (Ed25519 is deterministic): the format is pinned', () => {
    const proof = signLoginProof(fixed, toB64(challenge), 'alice');
    expect(proof.challenge).toBe(toB64(challenge));
    const signature = fromB64(proof.signature);
    expect(signature.length).toBe(64);
    expect(sodium.crypto_sign_verify_detached(signature, loginProofMessage(challenge, 'alice', fixed.publicKey), fixed.publicKey)).toBe(true);
    expect(Buffer.from(fixed.publicKey).toString('hex')).toBe('03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8');
    expect(Buffer.from(signature).toString('hex')).toBe(
      'c759a4e619601939fd6a807c454e0d15f49b37dd90012ea9a5e08853ca15a7e30f5841d6b5a77cd8d3675d3771857d615240e414555edc4a02398a443dd5720b',
    );
  });
});

describe('verifyLoginProof', () => {
  const identity = generateIdentity();
  const proof = signLoginProof(identity, toB64(challenge), 'alice');
  const sig = fromB64(proof.signature);

  it('accepts the proof it was made for', () => {
    expect(verifyLoginProof(identity.publicKey, challenge, 'alice', sig)).toBe(true);
  });

  it('refuses it for another username, key or challenge, and a damaged or short signature', () => {
    expect(verifyLoginProof(identity.publicKey, challenge, 'alicf', sig)).toBe(false);
    expect(verifyLoginProof(generateIdentity().publicKey, challenge, 'alice', sig)).toBe(false);
    const other = Uint8Array.from(challenge);
    other[56]! ^= 1;
    expect(verifyLoginProof(identity.publicKey, other, 'alice', sig)).toBe(false);
    const bent = Uint8Array.from(sig);
    bent[0]! ^= 1;
    expect(verifyLoginProof(identity.publicKey, challenge, 'alice', bent)).toBe(false);
    expect(verifyLoginProof(identity.publicKey, challenge, 'alice', sig.subarray(0, 63))).toBe(false);
    expect(verifyLoginProof(identity.publicKey.subarray(0, 31), challenge, 'alice', sig)).toBe(false);
  });

  it('refuses a malformed challenge from the server with a clear error', () => {
    expect(() => signLoginProof(identity, 'not base64!', 'alice')).toThrow(/malformed login challenge/);
  });
});
