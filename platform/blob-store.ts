// The blob store port: content-addressed storage of encrypted file bytes, written through a staging area.
import type { Readable } from 'node:stream';

/** A blob written by `stage` and not yet promoted or discarded. Opaque outside the adapter. */
export interface StagedBlob {
  /** The adapter's staging key (never a content hash, never shown to clients). */
  readonly key: string;
  /** Bytes written. */
  readonly size: number;
}

/** An inclusive byte range, `0 <= start <= end < size`. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Content hashes are lowercase hex SHA-256: the only blob names a store accepts. */
export const BLOB_HASH = /^[0-9a-f]{64}$/;

/**
 * Stores opaque bytes (file ciphertext) under their SHA-256. Writes go to a staging area first
 * so that a blob becomes visible under its hash only once it is complete and verified.
 *
 * Contract (checked by `blobStoreContract` against every adapter):
 * - `stage(body, size)` consumes `body`, which must yield exactly `size` bytes, and writes them
 *   durably to a new staging object; it resolves once they are durable. If `body` errors, is
 *   destroyed, or yields more or fewer bytes than `size`, or the backend fails, nothing is left
 *   staged and the promise rejects: with the body's own error when the body failed (so an
 *   AppError such as `too_large` passes through), `invalid` on a size mismatch, `unavailable`
 *   when the backend failed. The store never reads ahead of what it writes (bounded memory).
 * - `promote(staged, hash)` makes the staged bytes readable under `hash` and removes the
 *   staging object. The caller vouches that `hash` is the SHA-256 of those bytes. If an object
 *   already exists under `hash` it is replaced: content addressing makes it the same bytes.
 *   After `promote` resolves the blob survives a crash of the process.
 * - `discard(staged)` removes a staging object; idempotent.
 * - `read(hash, range?)` resolves to a stream of the blob (or of the inclusive range) once the
 *   blob is known to exist; `not_found` when there is no blob under `hash`. The stream is
 *   read lazily; its consumer must read or destroy it.
 * - `size(hash)` is the blob's length in bytes, or null when there is none.
 * - `delete(hash)` removes the blob; deleting a missing blob succeeds (idempotent).
 * - `purgeStaged(olderThan)` deletes staging objects last written before `olderThan` (epoch
 *   ms): the leftovers of a process that died mid-upload. Resolves to how many it deleted.
 * - Every backend failure is an AppError (`unavailable`, temporary; `not_found` as above);
 *   driver errors never leave an adapter unwrapped. `hash` must match BLOB_HASH (`invalid`).
 */
export interface BlobStore {
  readonly driver: 'disk' | 's3';
  stage(body: Readable, size: number): Promise<StagedBlob>;
  promote(staged: StagedBlob, hash: string): Promise<void>;
  discard(staged: StagedBlob): Promise<void>;
  read(hash: string, range?: ByteRange): Promise<Readable>;
  size(hash: string): Promise<number | null>;
  delete(hash: string): Promise<void>;
  purgeStaged(olderThan: number): Promise<number>;
}
