// Per-device sealing with libsodium crypto_box (X25519 + XSalsa20-Poly1305); a later issue swaps in the Double Ratchet.
import sodium from 'libsodium-wrappers-sumo';

export interface KeyPair {
  /** base64 (standard, padded) */
  publicKey: string;
  secretKey: string;
}

const B64 = () => sodium.base64_variants.ORIGINAL;

export async function ready(): Promise<void> {
  await sodium.ready;
}

export function generateKeyPair(): KeyPair {
  const kp = sodium.crypto_box_keypair();
  return { publicKey: sodium.to_base64(kp.publicKey, B64()), secretKey: sodium.to_base64(kp.privateKey, B64()) };
}

/** Encrypts `plaintext` from the sender's secret key to one recipient device's public key: base64(nonce ‖ box). */
export function seal(plaintext: Uint8Array, recipientPublicKey: string, senderSecretKey: string): string {
  const nonce = sodium.randombytes_buf(sodium.crypto_box_NONCEBYTES);
  const box = sodium.crypto_box_easy(
    plaintext,
    nonce,
    sodium.from_base64(recipientPublicKey, B64()),
    sodium.from_base64(senderSecretKey, B64()),
  );
  const out = new Uint8Array(nonce.length + box.length);
  out.set(nonce);
  out.set(box, nonce.length);
  return sodium.to_base64(out, B64());
}

/** Decrypts and authenticates a sealed body from the sender device's public key; throws if it was altered. */
export function open(body: string, senderPublicKey: string, recipientSecretKey: string): Uint8Array {
  const raw = sodium.from_base64(body, B64());
  const n = sodium.crypto_box_NONCEBYTES;
  if (raw.length < n + sodium.crypto_box_MACBYTES) throw new Error('ciphertext too short');
  return sodium.crypto_box_open_easy(
    raw.subarray(n),
    raw.subarray(0, n),
    sodium.from_base64(senderPublicKey, B64()),
    sodium.from_base64(recipientSecretKey, B64()),
  );
}

/**
 * Group messages (until Sender Keys): the content is encrypted once under a fresh random key
 * (XChaCha20-Poly1305), and that key is sealed for each member device with `seal`.
 * Returns the key (to seal per device) and base64(nonce ‖ ciphertext).
 */
export function encryptShared(plaintext: Uint8Array): { key: Uint8Array; body: string } {
  const key = sodium.crypto_aead_xchacha20poly1305_ietf_keygen();
  const nonce = sodium.randombytes_buf(sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  const box = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, null, null, nonce, key);
  const out = new Uint8Array(nonce.length + box.length);
  out.set(nonce);
  out.set(box, nonce.length);
  return { key, body: sodium.to_base64(out, B64()) };
}

/** Decrypts a shared body with its key; throws if either was altered. */
export function decryptShared(body: string, key: Uint8Array): Uint8Array {
  const raw = sodium.from_base64(body, B64());
  const n = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  if (raw.length < n + sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES) throw new Error('ciphertext too short');
  return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, raw.subarray(n), null, raw.subarray(0, n), key);
}
