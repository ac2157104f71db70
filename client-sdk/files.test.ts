// File encryption: round trips at chunk boundaries, and every way a ciphertext can be damaged is refused with a clear error.
import { createHash, randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeContent, encodeContent } from './content.js';
import { sodiumReady as ready } from './e2e.bytes.js';
import { ciphertextSize, encryptFile, FILE_CHUNK_BYTES, FileDecryptor, type FileRef, fileRefOf } from './files.js';
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

  it.each([0, 1, FILE_CHUNK_BYTES - 1, FILE_CHUNK_BYTES, FILE_CHUNK_BYTES + 1, 3 * FILE_CHUNK_BYTES, 200_001])(
    'round-trips %i bytes, in any piece size, with the predicted ciphertext size',
    async (n) => {
      const plain = randomBytes(n);
      const enc = await encryptFile(plain);
      const cipher = concat(enc.parts);
      expect(enc.size).toBe(cipher.length);
      expect(cipher.length).toBe(ciphertextSize(n));
      expect(enc.hash).toBe(sha256(cipher));
      const ref = fileRefOf(enc, 'A'.repeat(22), { name: 'x', type: '' });
      for (const piece of [1_000, 65_553, 1 << 20]) expect(Buffer.from(decrypt(ref, cipher, piece)).equals(plain)).toBe(true);
    },
  );

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
      plain = randomBytes(4 * FILE_CHUNK_BYTES + 100); // 5 chunks
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
      expect(failure(() => decrypt({ ...ref, size: ref.size - 1 }, cipher)).code).toBe('integrity');
    });
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
