// DiskBlobStore: blobs as files under a local directory (the embedded default, `$DATA_DIR/blobs`).
import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { AppError } from './errors.js';
import { BLOB_HASH, type BlobStore, type ByteRange, type StagedBlob } from './blob-store.js';

const STAGED_KEY = /^[0-9a-f]{32}$/;
/** Bytes gathered from the body before one write. */
const WRITE_BATCH_BYTES = 1024 * 1024;

/**
 * Layout under `root`:
 * - `sha256/<first 2 hex>/<hash>`: one file per blob, named by its content hash (256 fan-out
 *   directories keep each directory small).
 * - `staging/<32 hex>.part`: uploads in progress. Written with `wx`, fsynced, then renamed into
 *   place by `promote` (a rename within one file system is atomic) and the directory fsynced,
 *   so a crash leaves either no blob or the whole blob, plus at most a stale `.part` that
 *   `purgeStaged` removes.
 * Single machine only: processes on other machines cannot see these files.
 */
export class DiskBlobStore implements BlobStore {
  readonly driver = 'disk' as const;
  private readonly staging: string;
  private readonly blobs: string;

  private constructor(readonly root: string) {
    this.staging = join(root, 'staging');
    this.blobs = join(root, 'sha256');
  }

  /** Creates the directories if needed. */
  static async open(root: string): Promise<DiskBlobStore> {
    const store = new DiskBlobStore(root);
    try {
      await mkdir(store.staging, { recursive: true });
      await mkdir(store.blobs, { recursive: true });
    } catch (err) {
      throw wrap(err, 'open');
    }
    return store;
  }

  async stage(body: Readable, size: number): Promise<StagedBlob> {
    const key = randomBytes(16).toString('hex');
    const path = this.stagedPath(key);
    let fh: FileHandle | undefined;
    let written = 0;
    let bodyError: unknown;
    try {
      fh = await open(path, 'wx');
      // Socket chunks are small (often 64 KiB): gather up to WRITE_BATCH_BYTES per write(v)
      // call. Awaiting each write before pulling more keeps memory bounded (backpressure).
      let batch: Buffer[] = [];
      let batched = 0;
      for await (const chunk of bodyChunks(body, (e) => (bodyError = e))) {
        written += chunk.length;
        if (written > size) throw new AppError('invalid', `body is longer than its declared ${size} bytes`);
        batch.push(chunk);
        batched += chunk.length;
        if (batched >= WRITE_BATCH_BYTES) {
          await fh.writev(batch);
          [batch, batched] = [[], 0];
        }
      }
      if (batch.length > 0) await fh.writev(batch);
      if (written !== size) throw new AppError('invalid', `body ended after ${written} of ${size} bytes`);
      await fh.sync();
      await fh.close();
      fh = undefined;
      return { key, size };
    } catch (err) {
      body.destroy();
      await fh?.close().catch(() => {});
      await rm(path, { force: true }).catch(() => {});
      throw bodyError ?? (err instanceof AppError ? err : wrap(err, 'stage'));
    }
  }

  async promote(staged: StagedBlob, hash: string): Promise<void> {
    checkHash(hash);
    const dir = join(this.blobs, hash.slice(0, 2));
    try {
      await mkdir(dir, { recursive: true });
      await rename(this.stagedPath(staged.key), join(dir, hash));
      await syncDir(dir);
    } catch (err) {
      throw wrap(err, 'promote');
    }
  }

  async discard(staged: StagedBlob): Promise<void> {
    try {
      await rm(this.stagedPath(staged.key), { force: true });
    } catch (err) {
      throw wrap(err, 'discard');
    }
  }

  async read(hash: string, range?: ByteRange): Promise<Readable> {
    let fh: FileHandle;
    try {
      fh = await open(this.blobPath(hash), 'r');
    } catch (err) {
      throw wrap(err, 'read');
    }
    // The open handle keeps the bytes readable even if the blob is deleted meanwhile.
    return fh.createReadStream(range ? { start: range.start, end: range.end, highWaterMark: 256 * 1024 } : { highWaterMark: 256 * 1024 });
  }

  async size(hash: string): Promise<number | null> {
    try {
      return (await stat(this.blobPath(hash))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw wrap(err, 'size');
    }
  }

  async delete(hash: string): Promise<void> {
    try {
      await rm(this.blobPath(hash), { force: true });
    } catch (err) {
      throw wrap(err, 'delete');
    }
  }

  async purgeStaged(olderThan: number): Promise<number> {
    let deleted = 0;
    try {
      for (const name of await readdir(this.staging)) {
        const path = join(this.staging, name);
        const s = await stat(path).catch(() => null);
        if (s && s.mtimeMs < olderThan) {
          await rm(path, { force: true });
          deleted++;
        }
      }
    } catch (err) {
      throw wrap(err, 'purgeStaged');
    }
    return deleted;
  }

  private stagedPath(key: string): string {
    if (!STAGED_KEY.test(key)) throw new AppError('invalid', 'not a staging key');
    return join(this.staging, `${key}.part`);
  }

  private blobPath(hash: string): string {
    checkHash(hash);
    return join(this.blobs, hash.slice(0, 2), hash);
  }
}

/** The body's chunks; a failure of the body itself (not of our writes) is reported to `failed` first. */
async function* bodyChunks(body: Readable, failed: (err: unknown) => void): AsyncGenerator<Buffer> {
  const it = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  for (;;) {
    let r: IteratorResult<Buffer>;
    try {
      r = await it.next();
    } catch (err) {
      failed(err);
      throw err;
    }
    if (r.done) return;
    yield r.value;
  }
}

function checkHash(hash: string): void {
  if (!BLOB_HASH.test(hash)) throw new AppError('invalid', 'not a sha-256 hex digest');
}

/** Makes a rename durable: fsync the directory that holds the new name. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function wrap(err: unknown, operation: string): AppError {
  if (err instanceof AppError) return err;
  if ((err as NodeJS.ErrnoException).code === 'ENOENT' && operation === 'read') {
    return new AppError('not_found', 'no such blob', { cause: err });
  }
  // The message reaches clients: it names no path; the cause (logged) has the details.
  return new AppError('unavailable', 'file storage unavailable', { cause: err });
}
