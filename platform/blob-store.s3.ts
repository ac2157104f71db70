// S3BlobStore: blobs as objects in one bucket of any S3-compatible service, via @aws-sdk/client-s3.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { AppError } from './errors.js';
import { BLOB_HASH, type BlobStore, type ByteRange, type StagedBlob } from './blob-store.js';

const STAGED_KEY = /^[0-9a-f]{32}$/;

/** The largest object one PutObject or CopyObject may write (S3's limit); config caps FILE_MAX_BYTES at it. */
export const S3_SINGLE_PUT_MAX_BYTES = 5 * 1024 ** 3;

export interface S3Settings {
  /** e.g. http://127.0.0.1:9000; omit for AWS itself. */
  endpoint?: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/**
 * An S3 client set up for S3-compatible services as well as AWS: path-style URLs when an
 * endpoint is given, and checksums only where S3 requires them (newer SDKs send checksums
 * that older S3-compatible servers reject).
 * @example const s3 = createS3Client({ endpoint: 'http://127.0.0.1:9000', region: 'us-east-1', accessKeyId, secretAccessKey })
 */
export function createS3Client(settings: S3Settings): S3Client {
  return new S3Client({
    ...(settings.endpoint ? { endpoint: settings.endpoint, forcePathStyle: true } : {}),
    region: settings.region,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Fail fast when the service is unreachable; `requestTimeout` is per idle socket, not per request.
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
  });
}

export interface S3BlobStoreOptions {
  /** Prepended to every key, so several deployments can share a bucket. Default ''. */
  prefix?: string;
}

/**
 * Keys in `bucket` (under `prefix`):
 * - `sha256/<hash>`: one object per blob, named by its content hash.
 * - `staging/<32 hex>`: uploads in progress. `stage` streams the body with one PutObject of a
 *   known length (no multipart, nothing buffered; a PUT either stores the whole object or
 *   nothing); `promote` is a server-side CopyObject to the blob's key, then a delete.
 *   Leftovers of a crash are removed by `purgeStaged` (by LastModified).
 * Objects are at most 5 GiB (S3_SINGLE_PUT_MAX_BYTES). Takes a ready client: the wiring
 * builds it from the S3_* settings.
 */
export class S3BlobStore implements BlobStore {
  readonly driver = 's3' as const;
  private readonly prefix: string;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    options: S3BlobStoreOptions = {},
  ) {
    this.prefix = options.prefix ?? '';
  }

  async stage(body: Readable, size: number): Promise<StagedBlob> {
    if (size > S3_SINGLE_PUT_MAX_BYTES) throw new AppError('too_large', 'blob is over the 5 GiB a single S3 PUT may write');
    const key = randomBytes(16).toString('hex');
    // The body's own failure (too large, client gone) wins over what the SDK makes of it.
    let bodyError: unknown;
    let seen = 0;
    const counted = body.on('error', (e) => (bodyError ??= e));
    const checked = Readable.from(
      (async function* () {
        for await (const chunk of counted as AsyncIterable<Buffer>) {
          seen += chunk.length;
          if (seen > size) throw (bodyError = new AppError('invalid', `body is longer than its declared ${size} bytes`));
          yield chunk;
        }
        if (seen !== size) throw (bodyError = new AppError('invalid', `body ended after ${seen} of ${size} bytes`));
      })(),
      { objectMode: false },
    );
    // The SDK pipes the body into the request, and a pipe does not end its destination when
    // the source fails: abort the request ourselves, or it waits for the server's timeout.
    const abort = new AbortController();
    checked.on('error', (e) => {
      bodyError ??= e;
      abort.abort();
    });
    try {
      await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.stagedKey(key), Body: checked, ContentLength: size }), {
        abortSignal: abort.signal,
      });
      if (bodyError) throw bodyError;
      return { key, size };
    } catch (err) {
      body.destroy();
      checked.destroy();
      // A failed PUT stores nothing; delete anyway in case the service kept a partial object.
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.stagedKey(key) })).catch(() => {});
      if (bodyError) throw bodyError;
      throw wrap(err, 'stage');
    }
  }

  async promote(staged: StagedBlob, hash: string): Promise<void> {
    const source = this.stagedKey(staged.key);
    try {
      await this.s3.send(
        new CopyObjectCommand({ Bucket: this.bucket, Key: this.blobKey(hash), CopySource: `${this.bucket}/${encodeURI(source)}` }),
      );
    } catch (err) {
      throw wrap(err, 'promote');
    }
    await this.discard(staged);
  }

  async discard(staged: StagedBlob): Promise<void> {
    try {
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.stagedKey(staged.key) }));
    } catch (err) {
      throw wrap(err, 'discard');
    }
  }

  async read(hash: string, range?: ByteRange): Promise<Readable> {
    try {
      const r = await this.s3.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.blobKey(hash), ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }),
      );
      if (!(r.Body instanceof Readable)) throw new Error('GetObject returned no Node stream');
      return r.Body;
    } catch (err) {
      throw wrap(err, 'read');
    }
  }

  async size(hash: string): Promise<number | null> {
    try {
      const r = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.blobKey(hash) }));
      return r.ContentLength ?? 0;
    } catch (err) {
      if (isMissing(err)) return null;
      throw wrap(err, 'size');
    }
  }

  async delete(hash: string): Promise<void> {
    try {
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.blobKey(hash) }));
    } catch (err) {
      if (isMissing(err)) return;
      throw wrap(err, 'delete');
    }
  }

  async purgeStaged(olderThan: number): Promise<number> {
    const stagingPrefix = `${this.prefix}staging/`;
    let deleted = 0;
    let token: string | undefined;
    try {
      do {
        const page = await this.s3.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: stagingPrefix, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) {
          // Only our own staging keys: some S3-compatible servers also list directory markers ("…/").
          if (o.Key && STAGED_KEY.test(o.Key.slice(stagingPrefix.length)) && o.LastModified && o.LastModified.getTime() < olderThan) {
            await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: o.Key }));
            deleted++;
          }
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw wrap(err, 'purgeStaged');
    }
    return deleted;
  }

  private stagedKey(key: string): string {
    if (!STAGED_KEY.test(key)) throw new AppError('invalid', 'not a staging key');
    return `${this.prefix}staging/${key}`;
  }

  private blobKey(hash: string): string {
    if (!BLOB_HASH.test(hash)) throw new AppError('invalid', 'not a sha-256 hex digest');
    return `${this.prefix}sha256/${hash}`;
  }
}

function isMissing(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

function wrap(err: unknown, operation: string): AppError {
  if (err instanceof AppError) return err;
  if (operation === 'read' && isMissing(err)) return new AppError('not_found', 'no such blob', { cause: err });
  // The message reaches clients: it names no bucket or key; the cause (logged) has the details.
  return new AppError('unavailable', 'file storage unavailable', { cause: err });
}
