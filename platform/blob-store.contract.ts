// The blob store contract, run against every adapter (disk always; S3 against a real S3-compatible server).
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppError } from './errors.js';
import type { BlobStore, ByteRange } from './blob-store.js';

export interface BlobStoreFixture {
  store: BlobStore;
  /** Every object or file the backend holds right now (blobs and staging), to prove nothing was left behind. */
  listAll(): Promise<string[]>;
  dispose(): Promise<void>;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function readAll(store: BlobStore, hash: string, range?: ByteRange): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of await store.read(hash, range)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A body of `bytes` delivered in `chunk`-sized pieces, lazily (like a socket). */
function body(bytes: Buffer, chunk = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < bytes.length; i += chunk) yield bytes.subarray(i, i + chunk);
    })(),
  );
}

/** A body that yields `first` bytes, then fails with `err` (a client that went away, a limit that tripped). */
function failingBody(first: Buffer, err: Error): Readable {
  return Readable.from(
    (async function* () {
      yield first;
      await new Promise((r) => setTimeout(r, 5));
      throw err;
    })(),
  );
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

export function blobStoreContract(name: string, make: () => Promise<BlobStoreFixture>): void {
  describe(`BlobStore contract: ${name}`, () => {
    let f: BlobStoreFixture;
    beforeEach(async () => {
      f = await make();
    });
    afterEach(async () => {
      await f.dispose();
    });

    it('stages, promotes, and reads back the same bytes, whole and by range', async () => {
      const bytes = randomBytes(300_000);
      const hash = sha256(bytes);
      const staged = await f.store.stage(body(bytes, 10_000), bytes.length);
      expect(staged.size).toBe(bytes.length);
      expect(await f.store.size(hash)).toBeNull(); // not visible before promote
      await f.store.promote(staged, hash);
      expect(await f.store.size(hash)).toBe(bytes.length);
      expect((await readAll(f.store, hash)).equals(bytes)).toBe(true);
      for (const [start, end] of [[0, 0], [1, 99_999], [299_999, 299_999], [123_456, 299_999]] as const) {
        expect((await readAll(f.store, hash, { start, end })).equals(bytes.subarray(start, end + 1))).toBe(true);
      }
      const keys = await f.listAll();
      expect(keys).toHaveLength(1); // the blob only: the staging object is gone
      expect(keys[0]).toContain(hash);
    });

    it('streams a multi-megabyte body of many small chunks intact', async () => {
      const bytes = randomBytes(12 * 1024 * 1024 + 7);
      const hash = sha256(bytes);
      await f.store.promote(await f.store.stage(body(bytes, 16 * 1024), bytes.length), hash);
      expect(sha256(await readAll(f.store, hash))).toBe(hash);
    });

    it('stores an empty blob', async () => {
      const hash = sha256(new Uint8Array(0));
      await f.store.promote(await f.store.stage(body(Buffer.alloc(0)), 0), hash);
      expect(await f.store.size(hash)).toBe(0);
      expect((await readAll(f.store, hash)).length).toBe(0);
    });

    it('refuses a body shorter or longer than declared, and leaves nothing staged', async () => {
      const short = await rejection(f.store.stage(body(randomBytes(1000)), 1001));
      expect(short).toBeInstanceOf(AppError);
      expect((short as AppError).code).toBe('invalid');
      const long = await rejection(f.store.stage(body(randomBytes(1001)), 1000));
      expect((long as AppError).code).toBe('invalid');
      expect(await f.listAll()).toEqual([]);
    });

    it("passes a failing body's own error through and leaves nothing staged", async () => {
      const tooLarge = new AppError('too_large', 'over the limit');
      expect(await rejection(f.store.stage(failingBody(randomBytes(200_000), tooLarge), 1_000_000))).toBe(tooLarge);
      const gone = Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
      expect(await rejection(f.store.stage(failingBody(randomBytes(10), gone), 1_000_000))).toBe(gone);
      expect(await f.listAll()).toEqual([]);
    });

    it('leaves nothing staged when the body is destroyed mid-stream', async () => {
      const src = new Readable({ read() {} });
      src.push(randomBytes(100_000));
      const p = f.store.stage(src, 1_000_000);
      setTimeout(() => src.destroy(), 20);
      await rejection(p);
      expect(await f.listAll()).toEqual([]);
    });

    it('discards a staged blob, idempotently', async () => {
      const staged = await f.store.stage(body(randomBytes(500)), 500);
      expect(await f.listAll()).toHaveLength(1);
      await f.store.discard(staged);
      await f.store.discard(staged);
      expect(await f.listAll()).toEqual([]);
    });

    it('promoting the same content twice keeps one intact blob', async () => {
      const bytes = randomBytes(50_000);
      const hash = sha256(bytes);
      await f.store.promote(await f.store.stage(body(bytes), bytes.length), hash);
      await f.store.promote(await f.store.stage(body(bytes), bytes.length), hash);
      expect(await f.listAll()).toHaveLength(1);
      expect((await readAll(f.store, hash)).equals(bytes)).toBe(true);
    });

    it('answers not_found / null for a missing blob, and deletes idempotently', async () => {
      const bytes = randomBytes(1234);
      const hash = sha256(bytes);
      expect(((await rejection(f.store.read(hash))) as AppError).code).toBe('not_found');
      expect(await f.store.size(hash)).toBeNull();
      await f.store.delete(hash); // missing: fine
      await f.store.promote(await f.store.stage(body(bytes), bytes.length), hash);
      await f.store.delete(hash);
      await f.store.delete(hash);
      expect(await f.store.size(hash)).toBeNull();
      expect(((await rejection(f.store.read(hash))) as AppError).code).toBe('not_found');
      expect(await f.listAll()).toEqual([]);
    });

    it('refuses names that are not sha-256 hex digests', async () => {
      for (const bad of ['../../etc/passwd', 'A'.repeat(64), 'abc', '']) {
        expect(((await rejection(f.store.read(bad))) as AppError).code).toBe('invalid');
        expect(((await rejection(f.store.delete(bad))) as AppError).code).toBe('invalid');
      }
    });

    it('purges staging objects older than the cut-off, and only those', async () => {
      const hash = sha256(Buffer.from('kept'));
      await f.store.promote(await f.store.stage(body(Buffer.from('kept')), 4), hash);
      await f.store.stage(body(randomBytes(100)), 100);
      expect(await f.store.purgeStaged(Date.now() - 60 * 60_000)).toBe(0);
      expect(await f.listAll()).toHaveLength(2);
      expect(await f.store.purgeStaged(Date.now() + 60 * 60_000)).toBe(1);
      const left = await f.listAll();
      expect(left).toHaveLength(1);
      expect(left[0]).toContain(hash); // blobs are never purged as staging leftovers
    });
  });
}
