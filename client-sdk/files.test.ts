// File encryption: round trips at chunk boundaries, and every way a ciphertext can be damaged is refused with a clear error.
import { createHash, randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeContent, encodeContent } from './content.js';
import { sodiumReady as ready } from '../protocol/bytes.js';
import sodium from 'libsodium-wrappers-sumo';
import { ciphertextSize, encryptFile, FILE_CHUNK_BYTES, FileDecryptor, type FileRef, fileRefOf, MIN_PADDED_SIZE, paddedSize } from './files.js';
import { ParleyError } from './http.js';

const concat = (parts: Uint8Array[]) => Buffer.concat(parts.map((p) => Buffer.from(p)));
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Decrypts `cipher` fed in pieces of `piece` bytes (like a network). */
function decrypt(ref: Pick<FileRef, 'key' | 'hash' | 'size'>, cipher: Uint8Array, piece = 10_007): Uint8Array {
  const d = new FileDecryptor(ref);
  for (let i = 0; i < cipher.length; i += piece) d.push(cipher.slice(i, i + piece));
  return d.finish();
}

function failure(fn: () => unknown): ParleyError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ParleyError) return err;
    throw err;
  }
  throw new Error('expected a ParleyError');
}

describe('file encryption (secretstream)', () => {
  beforeAll(ready);

  it.each([0, 1, 540, 541, 542, 1000, 61_486, 61_487, FILE_CHUNK_BYTES - 1, FILE_CHUNK_BYTES, FILE_CHUNK_BYTES + 1, 3 * FILE_CHUNK_BYTES, 200_001])(
    'round-trips %i bytes, in any piece size, to exactly those bytes, with the predicted (padded) ciphertext size',
    async (n) => {
      const plain = randomBytes(n);
      const enc = await encryptFile(plain);
      const cipher = concat(enc.parts);
      expect(enc.size).toBe(cipher.length);
      expect(cipher.length).toBe(ciphertextSize(n));
      const padded = paddedSize(n);
      expect(cipher.length).toBe(24 + padded + 17 * Math.ceil(padded / FILE_CHUNK_BYTES));
      expect(enc.plainSize).toBe(n);
      expect(enc.hash).toBe(sha256(cipher));
      const ref = fileRefOf(enc, 'A'.repeat(22), { name: 'x', type: '' });
      expect(ref.size).toBe(n); // the real size travels in the (encrypted) message
      for (const piece of [1_000, 65_553, 1 << 20]) {
        const out = decrypt(ref, cipher, piece);
        expect(out.buffer.byteLength).toBe(n); // no padding left behind the returned bytes
        expect(Buffer.from(out).equals(plain)).toBe(true);
      }
    },
  );

  it('pads with zeros: the plaintext inside the stream is the file, then zeros up to the bucket', async () => {
    const plain = randomBytes(1000);
    const enc = await encryptFile(plain);
    const state = sodium.crypto_secretstream_xchacha20poly1305_init_pull(enc.parts[0]!, enc.key);
    const inside = (sodium.crypto_secretstream_xchacha20poly1305_pull(state, enc.parts[1]!, null) as { message: Uint8Array }).message;
    expect(inside.length).toBe(paddedSize(1000));
    expect(Buffer.from(inside.subarray(0, 1000)).equals(plain)).toBe(true);
    expect(inside.subarray(1000).every((b) => b === 0)).toBe(true);
  });

  it('gives every size in one bucket the same ciphertext size', async () => {
    const sizes = [61_486, 60_000, 58_559];
    expect(new Set(sizes.map(paddedSize))).toEqual(new Set([61_486]));
    const lengths = await Promise.all(sizes.map(async (n) => (await encryptFile(randomBytes(n))).size));
    expect(new Set(lengths).size).toBe(1);
    expect((await encryptFile(randomBytes(61_487))).size).toBeGreaterThan(lengths[0]!);
  });

  it('encrypts a Blob chunk by chunk to the same plaintext', async () => {
    const plain = randomBytes(150_000);
    const enc = await encryptFile(new Blob([plain]));
    const ref = fileRefOf(enc, 'A'.repeat(22), { name: 'x', type: '' });
    expect(Buffer.from(decrypt(ref, concat(enc.parts))).equals(plain)).toBe(true);
  });

  it('uses a fresh key each time: the same file never gives the same ciphertext', async () => {
    const plain = randomBytes(1000);
    const [a, b] = [await encryptFile(plain), await encryptFile(plain)];
    expect(a.hash).not.toBe(b.hash);
    expect(Buffer.from(a.key).equals(Buffer.from(b.key))).toBe(false);
    expect(concat(a.parts).includes(plain.subarray(0, 32))).toBe(false);
  });

  describe('refuses damaged ciphertext (even when the attacker also fixed up the hash)', () => {
    let plain: Buffer;
    let cipher: Buffer;
    let ref: FileRef;
    const HEADER = 24;
    const SEALED = FILE_CHUNK_BYTES + 17;
    /** The ref with the hash of `c`, so only the stream's own checks can catch the damage. */
    const rehashed = (c: Uint8Array) => ({ ...ref, hash: sha256(c) });

    beforeAll(async () => {
      plain = randomBytes(4 * FILE_CHUNK_BYTES + 100); // padded to 265 742 bytes: 5 chunks
      plain[plain.length - 1] = 0x5a; // not a zero: a size one short must show in the padding
      const enc = await encryptFile(plain);
      cipher = concat(enc.parts);
      ref = fileRefOf(enc, 'A'.repeat(22), { name: 'x', type: '' });
    });

    it('truncated: the final chunk is missing', () => {
      const cut = cipher.subarray(0, HEADER + 4 * SEALED);
      const e = failure(() => decrypt(rehashed(cut), cut));
      expect(e.code).toBe('integrity');
      expect(e.message).toMatch(/truncated.*final chunk/);
    });

    it('truncated: inside the header, or mid-chunk', () => {
      expect(failure(() => decrypt(rehashed(cipher.subarray(0, 10)), cipher.subarray(0, 10))).message).toMatch(/truncated/);
      const mid = cipher.subarray(0, cipher.length - 50);
      expect(failure(() => decrypt(rehashed(mid), mid)).code).toMatch(/integrity|undecryptable/);
    });

    it('reordered: two chunks swapped', () => {
      const c = Buffer.from(cipher);
      const one = Buffer.from(c.subarray(HEADER, HEADER + SEALED));
      c.copy(c, HEADER, HEADER + SEALED, HEADER + 2 * SEALED);
      one.copy(c, HEADER + SEALED);
      const e = failure(() => decrypt(rehashed(c), c));
      expect(e.code).toBe('undecryptable');
      expect(e.message).toMatch(/chunk 1 failed authentication/);
    });

    it('altered: one bit flipped', () => {
      const c = Buffer.from(cipher);
      c[HEADER + 2 * SEALED + 7]! ^= 1;
      expect(failure(() => decrypt(rehashed(c), c)).code).toBe('undecryptable');
      expect(failure(() => decrypt(ref, c)).code).toBe('undecryptable'); // with the sender's hash too
    });

    it('extended: bytes after the final chunk', () => {
      const c = Buffer.concat([cipher, randomBytes(40)]);
      expect(failure(() => decrypt(rehashed(c), c)).code).toBe('integrity');
    });

    it('replaced: an intact stream that is not the one the sender hashed', () => {
      const e = failure(() => decrypt({ ...ref, hash: sha256(Buffer.from('another')) }, cipher));
      expect(e.code).toBe('integrity');
      expect(e.message).toMatch(/hash/);
    });

    it('the wrong key', async () => {
      const other = fileRefOf(await encryptFile(plain), 'A'.repeat(22), { name: 'x', type: '' });
      expect(failure(() => decrypt({ ...ref, key: other.key }, cipher)).code).toBe('undecryptable');
    });

    it('a size that differs from the announced one', () => {
      // In another bucket: the stream has the wrong length.
      expect(failure(() => decrypt({ ...ref, size: Math.floor(ref.size * 0.9) }, cipher)).message).toMatch(/longer than its sender said/);
      expect(failure(() => decrypt({ ...ref, size: ref.size * 2 }, cipher)).message).toMatch(/decrypted to 265742 bytes, not the \d+ its announced/);
      // In the same bucket, one short: the last byte of the file would be padding, and it is not zero.
      expect(paddedSize(ref.size - 1)).toBe(paddedSize(ref.size));
      const e = failure(() => decrypt({ ...ref, size: ref.size - 1 }, cipher));
      expect(e.code).toBe('integrity');
      expect(e.message).toMatch(/padding .* is not all zeros/);
    });

    it('an unpadded stream (as a client without padding would send) has the wrong length', () => {
      const key = sodium.crypto_secretstream_xchacha20poly1305_keygen();
      const { state, header } = sodium.crypto_secretstream_xchacha20poly1305_init_push(key);
      const small = randomBytes(1000);
      const sealed = sodium.crypto_secretstream_xchacha20poly1305_push(state, small, null, sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL);
      const c = concat([header, sealed]);
      const unpadded = { key: sodium.to_base64(key, sodium.base64_variants.URLSAFE_NO_PADDING), hash: sha256(c), size: 1000 };
      expect(failure(() => decrypt(unpadded, c)).code).toBe('integrity');
    });
  });
});

describe('paddedSize (Signal attachment buckets)', () => {
  /** Signal-Android's PaddingInputStream.getPaddedSize, in floating point as Signal computes it. */
  const signal = (size: number) => Math.max(541, Math.floor(Math.pow(1.05, Math.ceil(Math.log(size) / Math.log(1.05)))));

  it('equals Signal\'s formula for every size up to 1.1 MB and around every bucket up to 2^38 (256 GiB)', () => {
    for (let n = 0; n <= 1_100_000; n++) if (paddedSize(n) !== signal(n)) expect(paddedSize(n), `size ${n}`).toBe(signal(n));
    for (let k = 0, b = 1; b < 2 ** 38; k++, b = Math.floor(1.05 ** k)) {
      for (const n of [b - 1, b, b + 1]) if (n >= 0) expect(paddedSize(n), `size ${n}`).toBe(signal(n));
    }
  });

  it('is at least the size, at most 5% more (or 541), and never decreases', () => {
    let last = 0;
    for (const n of [0, 1, 540, 541, 542, 10_000, 65_536, 1 << 20, 100 * (1 << 20), 2 ** 40, 2 ** 52]) {
      const p = paddedSize(n);
      expect(p).toBeGreaterThanOrEqual(Math.max(n, MIN_PADDED_SIZE));
      expect(p).toBeLessThanOrEqual(Math.max(MIN_PADDED_SIZE, Math.ceil(n * 1.05)));
      expect(p).toBeGreaterThanOrEqual(last);
      last = p;
    }
    expect(paddedSize(0)).toBe(541);
    expect(paddedSize(542)).toBe(568);
  });

  it('refuses what is not a size', () => {
    for (const bad of [-1, 1.5, NaN, Infinity, Number.MAX_SAFE_INTEGER]) expect(() => paddedSize(bad)).toThrow(RangeError);
  });
});

describe('message content with a file', () => {
  const file: FileRef = { id: 'abcdefghijklmnopqrstuv', key: 'k'.repeat(43), hash: 'a'.repeat(64), size: 5, name: 'cat.png', type: 'image/png' };

  it('round-trips, and old content without a file still decodes', () => {
    expect(decodeContent(encodeContent({ text: '', file }))).toEqual({ text: '', file });
    expect(decodeContent(encodeContent({ text: 'hi' }))).toEqual({ text: 'hi' });
  });

  it('refuses a malformed file reference', () => {
    for (const bad of [{ ...file, id: 'short' }, { ...file, hash: 'xyz' }, { ...file, size: -1 }, { ...file, key: 1 }, null]) {
      expect(() => decodeContent(new TextEncoder().encode(JSON.stringify({ v: 1, text: '', file: bad })))).toThrow(/malformed file/);
    }
  });
});
