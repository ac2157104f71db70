// FileService: uploads (hashed, size-limited, deduplicated), shares, authorization, downloads and blob reference counts.
import { createHash, randomBytes } from 'node:crypto';
import { pipeline, type Readable, Transform } from 'node:stream';
import type { MessageStore } from '../messaging/message-store.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import { num, type Sql } from '../platform/sql.js';
import { BLOB_HASH, type BlobStore, type ByteRange, type StagedBlob } from '../platform/blob-store.js';

/** A public file id: 128 random bits in base64url (22 characters). */
export const FILE_ID = /^[A-Za-z0-9_-]{22}$/;

export interface FileServiceOptions {
  /** Largest upload in bytes (FILE_MAX_BYTES). */
  maxBytes: number;
  /** How long a file stays downloadable after its upload (FILE_RETENTION_DAYS). */
  retentionMs: number;
}

export interface UploadResult {
  id: string;
  size: number;
  /** True when a blob with the same content already existed and was reused. */
  deduplicated: boolean;
}

/** A file the caller may download. `blobHash` never leaves the server. */
export interface FileHandle {
  id: string;
  size: number;
  blobHash: string;
}

export type ShareTarget = { conversationId: string } | { userId: string };

/** Every "no" about a file is this one error, so callers cannot tell missing from forbidden. */
const noSuchFile = () => new AppError('not_found', 'no such file');

/**
 * Tables (platform/migrations.ts): blobs (hash, size, refs), files (id, blob_hash, uploader,
 * size, expires_at), file_shares (file_id, conversation_id).
 *
 * Reference counting, and why nothing is lost or orphaned:
 * - Invariant: a blobs row with refs > 0 has its object in the blob store.
 * - Upload: stage the body (hashing it), then commit a placeholder row (refs 0) for its hash,
 *   then in one transaction lock that row (FOR UPDATE); if refs is 0 the object may be
 *   missing, so promote the staged bytes under the hash (content addressing makes a
 *   replacement harmless); bump refs; insert the files row. A crash after the promote leaves a
 *   refs-0 row that the sweep deletes, object included.
 * - Sweep (RetentionSweeper): delete expired files rows and decrement refs; then, holding the
 *   row lock of each refs-0 blob (SKIP LOCKED), delete its object, then the row. A crash in
 *   between leaves the row, and the next sweep deletes the object again (idempotent).
 * Because both take the row lock, an upload never bumps a blob whose object is being deleted.
 */
export class FileService {
  constructor(
    private readonly sql: Sql,
    private readonly blobs: BlobStore,
    private readonly messages: MessageStore,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    readonly options: FileServiceOptions,
  ) {}

  /**
   * Stores an upload of exactly `declared.size` bytes whose SHA-256 is `declared.sha256`.
   * `invalid` when the body is shorter, or its hash differs; `too_large` over the limit. In
   * every failure nothing of it is left in the blob store.
   * @example await files.upload(userId, req.raw, { size: 1024, sha256: 'ab12…' })
   */
  async upload(uploaderId: string, body: Readable, declared: { size: number; sha256: string }): Promise<UploadResult> {
    if (declared.size > this.options.maxBytes) {
      body.destroy();
      throw tooLarge(this.options.maxBytes);
    }
    const hasher = createHash('sha256');
    const metered = new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        hasher.update(chunk);
        done(null, chunk);
      },
    });
    // A body that fails (the client went away) destroys `metered`, and the store's stage fails.
    pipeline(body, metered, () => {});
    let staged: StagedBlob;
    try {
      staged = await this.blob('stage', () => this.blobs.stage(metered, declared.size));
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw new AppError('invalid', 'the upload ended before its content-length', { cause: err });
    }
    this.metrics.fileBytes.inc({ direction: 'in' }, staged.size);
    const hash = hasher.digest('hex');
    if (hash !== declared.sha256) {
      await this.blob('discard', () => this.blobs.discard(staged)).catch(() => {});
      throw new AppError('invalid', 'x-content-sha256 does not match the uploaded bytes');
    }
    let deduplicated: boolean;
    const id = randomBytes(16).toString('base64url');
    try {
      deduplicated = await this.commit(id, uploaderId, hash, staged);
    } catch (err) {
      await this.blob('discard', () => this.blobs.discard(staged)).catch(() => {});
      throw err;
    }
    if (deduplicated) await this.blob('discard', () => this.blobs.discard(staged)).catch(() => {}); // purgeStaged retries
    this.metrics.fileUploads.inc({ result: deduplicated ? 'deduplicated' : 'stored' });
    return { id, size: staged.size, deduplicated };
  }

  /** Records the file and its blob reference (see the class comment); true when the blob already existed. */
  private async commit(id: string, uploaderId: string, hash: string, staged: StagedBlob): Promise<boolean> {
    for (let attempt = 1; attempt <= 3; attempt++) {
      const now = this.clock.now();
      await this.sql.query(`INSERT INTO blobs (hash, size, refs, created_at) VALUES ($1, $2, 0, $3) ON CONFLICT (hash) DO NOTHING`, [
        hash,
        staged.size,
        now,
      ]);
      const outcome = await this.sql.transaction(async (tx) => {
        const [row] = await tx.query(`SELECT refs FROM blobs WHERE hash = $1 FOR UPDATE`, [hash]);
        if (!row) return 'swept' as const; // a sweep removed the placeholder in between: start over
        const existed = num(row.refs) > 0;
        if (!existed) await this.blob('promote', () => this.blobs.promote(staged, hash));
        await tx.query(`UPDATE blobs SET refs = refs + 1 WHERE hash = $1`, [hash]);
        await tx.query(
          `INSERT INTO files (id, blob_hash, uploader_id, size, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
          [id, hash, uploaderId, staged.size, now, now + this.options.retentionMs],
        );
        return existed ? ('deduplicated' as const) : ('stored' as const);
      });
      if (outcome !== 'swept') return outcome === 'deduplicated';
    }
    throw new AppError('unavailable', 'could not store the file; try again');
  }

  /**
   * The file if `userId` may download it, before it expires: its uploader, or someone whose
   * membership window in a conversation it was shared in covers the share, exactly as it would
   * cover a message sent at that moment (see migration 5): a member who joined later, or who
   * left or was removed before the share, gets null — as does everyone else, and any id that
   * is not a file id.
   */
  async find(userId: string, fileId: string): Promise<FileHandle | null> {
    if (!FILE_ID.test(fileId)) return null;
    const [row] = await this.sql.query(
      `SELECT f.blob_hash, f.size FROM files f
        WHERE f.id = $1 AND f.expires_at > $3
          AND (f.uploader_id = $2 OR EXISTS (
                SELECT 1 FROM file_shares s
                  JOIN conversation_members m ON m.conversation_id = s.conversation_id
                 WHERE s.file_id = f.id AND m.user_id = $2
                   AND m.joined_seq <= s.shared_seq + 1 AND (m.left_seq IS NULL OR s.shared_seq < m.left_seq)))`,
      [fileId, userId, this.clock.now()],
    );
    return row ? { id: fileId, size: num(row.size), blobHash: row.blob_hash as string } : null;
  }

  /** Like `find`, but `not_found` instead of null. */
  async authorize(userId: string, fileId: string): Promise<FileHandle> {
    const file = await this.find(userId, fileId);
    if (!file) throw noSuchFile();
    return file;
  }

  /**
   * Lets the members of a conversation download a file. The caller must be able to download
   * it and be a current member of the conversation (not one who left or was removed); `{ userId }`
   * means the direct conversation with that user (created if needed, as a first message would).
   * The share is recorded at the conversation's current seq, so members who join later do not
   * get it until it is shared again. Idempotent at one seq.
   */
  async share(callerId: string, fileId: string, target: ShareTarget): Promise<{ conversationId: string }> {
    await this.authorize(callerId, fileId);
    let conversationId: string;
    if ('userId' in target) {
      if (target.userId === callerId) throw new AppError('invalid', 'cannot share with yourself: you can already download it');
      // As for a send: the other user must exist and have a device.
      const [user] = await this.sql.query(`SELECT 1 FROM devices WHERE user_id = $1 LIMIT 1`, [target.userId]);
      if (!user) throw new AppError('not_found', 'no such user');
      conversationId = await this.messages.ensureDirect(callerId, target.userId);
    } else {
      conversationId = target.conversationId;
    }
    // Current members only, and not in a deleted group: the same 404 for every "no".
    const [shared] = await this.sql.query(
      `INSERT INTO file_shares (file_id, conversation_id, shared_seq)
       SELECT $1, c.id, c.last_seq FROM conversations c
         JOIN conversation_members m ON m.conversation_id = c.id AND m.user_id = $3 AND m.left_seq IS NULL
         LEFT JOIN groups g ON g.id = c.id
        WHERE c.id = $2 AND g.deleted_at IS NULL
       ON CONFLICT DO NOTHING
       RETURNING 1 AS ok`,
      [fileId, conversationId, callerId],
    );
    if (!shared) {
      const [member] = await this.sql.query(
        `SELECT 1 FROM conversation_members m LEFT JOIN groups g ON g.id = m.conversation_id
          WHERE m.conversation_id = $1 AND m.user_id = $2 AND m.left_seq IS NULL AND g.deleted_at IS NULL`,
        [conversationId, callerId],
      );
      if (!member) throw new AppError('not_found', 'no such conversation');
    }
    return { conversationId };
  }

  /** A stream of the file's bytes (or of a range of them), for a handle from `find`/`authorize`. */
  async read(file: FileHandle, range?: ByteRange): Promise<Readable> {
    let stream: Readable;
    try {
      stream = await this.blob('read', () => this.blobs.read(file.blobHash, range));
    } catch (err) {
      if (err instanceof AppError && err.code === 'not_found') {
        // The row says the blob exists: losing it is a storage failure, not the caller's.
        this.log.error({ err, fileId: file.id }, 'blob missing for a live file');
        this.metrics.backendFailures.inc({ backend: 'blob', operation: 'read' });
        throw new AppError('internal', 'file content missing', { cause: err });
      }
      throw err;
    }
    this.metrics.fileDownloads.inc({ kind: range ? 'range' : 'full' });
    const length = range ? range.end - range.start + 1 : file.size;
    stream.once('end', () => this.metrics.fileBytes.inc({ direction: 'out' }, length));
    stream.once('error', (err) => {
      this.log.error({ err, fileId: file.id }, 'reading a blob failed mid-stream');
      this.metrics.backendFailures.inc({ backend: 'blob', operation: 'read' });
    });
    return stream;
  }

  /** Deletes up to `limit` files expired at `now` (their shares go with them) and releases their blob references. */
  async expireFiles(now: number, limit = 500): Promise<number> {
    const rows = await this.sql.query(
      `WITH gone AS (
         DELETE FROM files WHERE id IN (
           SELECT id FROM files WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING blob_hash),
       counts AS (SELECT blob_hash, count(*) AS n FROM gone GROUP BY blob_hash),
       released AS (UPDATE blobs b SET refs = b.refs - c.n FROM counts c WHERE b.hash = c.blob_hash RETURNING b.hash)
       SELECT (SELECT count(*) FROM gone) AS files`,
      [now, limit],
    );
    const n = num(rows[0]?.files);
    this.metrics.filesExpired.inc(n);
    return n;
  }

  /**
   * Deletes up to `limit` unreferenced blobs: from the store first, then their rows, each under
   * its row lock (see the class comment). A store failure keeps the rows for the next sweep.
   */
  async purgeBlobs(limit = 100): Promise<number> {
    const n = await this.sql.transaction(async (tx) => {
      const rows = await tx.query<{ hash: string }>(
        `SELECT hash FROM blobs WHERE refs <= 0 ORDER BY hash LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit],
      );
      const hashes = rows.map((r) => r.hash).filter((h) => BLOB_HASH.test(h));
      for (const h of hashes) await this.blob('delete', () => this.blobs.delete(h));
      if (hashes.length > 0) {
        await tx.query(`DELETE FROM blobs WHERE refs <= 0 AND hash IN (SELECT json_array_elements_text($1::json))`, [JSON.stringify(hashes)]);
      }
      return hashes.length;
    });
    this.metrics.blobsPurged.inc(n);
    return n;
  }

  /** Removes staging leftovers (uploads of processes that died) last written before `olderThan`. */
  purgeStaged(olderThan: number): Promise<number> {
    return this.blob('purgeStaged', () => this.blobs.purgeStaged(olderThan));
  }

  /** Runs a blob store call; a backend failure is logged and counted, then rethrown. */
  private async blob<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof AppError && (err.code === 'unavailable' || err.code === 'internal')) {
        this.log.error({ err, operation, driver: this.blobs.driver }, 'blob store failed');
        this.metrics.backendFailures.inc({ backend: 'blob', operation });
      }
      throw err;
    }
  }
}

export function tooLarge(maxBytes: number): AppError {
  return new AppError('too_large', `file is over the ${maxBytes}-byte limit`, { details: { maxBytes } });
}
