// File encryption (libsodium secretstream, XChaCha20-Poly1305) and transfer (upload, resumable download), for Node 20 and browsers.
import sodium from 'libsodium-wrappers-sumo';
import { ParleyError } from './http.js';

/**
 * Plaintext bytes per secretstream chunk. Part of the format: a receiver splits the
 * ciphertext at CHUNK_BYTES + ABYTES.
 */
export const FILE_CHUNK_BYTES = 64 * 1024;

/** What a message carries about a file, inside its encrypted content (never in server-visible fields). */
export interface FileRef {
  /** The server's public id of the uploaded ciphertext. */
  id: string;
  /** The secretstream key, 32 bytes, base64url without padding. */
  key: string;
  /** SHA-256 of the whole ciphertext, lowercase hex. */
  hash: string;
  /** Plaintext size in bytes. */
  size: number;
  name: string;
  /** A media type such as image/png ('' when unknown). */
  type: string;
}

/** A transfer's progress: `loaded` of `total` ciphertext bytes. `fileId` is absent while an upload is unanswered. */
export interface Progress {
  fileId?: string;
  name: string;
  loaded: number;
  total: number;
}

export interface EncryptedFile {
  key: Uint8Array;
  /** SHA-256 of the ciphertext, hex. */
  hash: string;
  /** The ciphertext, in order: the header, then one piece per chunk. */
  parts: Uint8Array[];
  /** Ciphertext bytes. */
  size: number;
  /** Plaintext bytes. */
  plainSize: number;
}

/** The reference a message carries for an uploaded file. */
export function fileRefOf(file: EncryptedFile, id: string, meta: { name: string; type: string }): FileRef {
  return {
    id,
    key: sodium.to_base64(file.key, sodium.base64_variants.URLSAFE_NO_PADDING),
    hash: file.hash,
    size: file.plainSize,
    name: meta.name,
    type: meta.type,
  };
}

const ss = () => ({
  HEADER: sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES,
  ABYTES: sodium.crypto_secretstream_xchacha20poly1305_ABYTES,
  FINAL: sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL,
  MESSAGE: sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
});

/** The smallest padded size (Signal's attachment buckets). */
export const MIN_PADDED_SIZE = 541;

/** floor(1.05^k) for k = 0, 1, …, exact (21^k / 20^k in BigInt), up to the first past 2^53. */
let buckets: number[] | null = null;
function paddingBuckets(): number[] {
  if (buckets) return buckets;
  const out: number[] = [];
  for (let num = 1n, den = 1n; ; num *= 21n, den *= 20n) {
    out.push(Number(num / den));
    if (num / den > BigInt(Number.MAX_SAFE_INTEGER)) break;
  }
  return (buckets = out);
}

/**
 * The length a plaintext of `size` bytes is padded to (with zeros) before it is encrypted,
 * so that the ciphertext tells the server only the size's bucket: Signal's attachment
 * padding, `max(541, floor(1.05 ^ ceil(log(size) / log(1.05))))` (Signal-Android
 * `PaddingInputStream.getPaddedSize`), at most 5% over the size (or 541 bytes for small files).
 * Computed exactly rather than in floating point, so that every platform agrees (sender and
 * receiver must): the same as Signal's formula for every size below about 300 GB, where
 * floating-point rounding starts to move Signal's buckets by a byte.
 * @example paddedSize(0) === 541; paddedSize(542) === 568; paddedSize(1000) === 1020
 */
export function paddedSize(size: number): number {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`not a file size: ${size}`);
  if (size <= MIN_PADDED_SIZE) return MIN_PADDED_SIZE;
  const b = paddingBuckets();
  // The first bucket >= size: floor(1.05^k) >= size exactly when 1.05^k >= size (size is an integer).
  let lo = 0;
  let hi = b.length - 1; // the last is past 2^53, so above any safe size
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (b[mid]! >= size) hi = mid;
    else lo = mid + 1;
  }
  if (!Number.isSafeInteger(b[lo])) throw new RangeError(`file size too large to pad: ${size}`);
  return b[lo]!;
}

/**
 * Ciphertext length for a plaintext of `plainSize` bytes: header, the padded plaintext, one
 * MAC+tag per chunk.
 */
export function ciphertextSize(plainSize: number): number {
  const { HEADER, ABYTES } = ss();
  const padded = paddedSize(plainSize);
  return HEADER + padded + Math.max(1, Math.ceil(padded / FILE_CHUNK_BYTES)) * ABYTES;
}

/** Bytes [start, end) of the padded plaintext: the data, then zeros from `size` on. Blobs are read only for the part they hold. */
async function paddedChunk(data: Uint8Array | Blob, size: number, start: number, end: number): Promise<Uint8Array> {
  const read = async (a: number, b: number) => (data instanceof Uint8Array ? data.subarray(a, b) : new Uint8Array(await data.slice(a, b).arrayBuffer()));
  if (end <= size) return read(start, end);
  const chunk = new Uint8Array(end - start);
  if (start < size) chunk.set(await read(start, size));
  return chunk;
}

/**
 * Encrypts `data` under a fresh random key: a secretstream header, then each 64 KiB chunk
 * of the plaintext padded with zeros to `paddedSize` (so the ciphertext shows only the size's
 * bucket; the real size travels in the encrypted message), the last one tagged TAG_FINAL (so
 * truncation is detected), and hashes the ciphertext with SHA-256 as it goes. Blobs are read
 * a chunk at a time. Call `await sodium.ready` first.
 * @example const enc = await encryptFile(new TextEncoder().encode('hello'))
 */
export async function encryptFile(data: Uint8Array | Blob): Promise<EncryptedFile> {
  const { FINAL, MESSAGE } = ss();
  const key = sodium.crypto_secretstream_xchacha20poly1305_keygen();
  const { state, header } = sodium.crypto_secretstream_xchacha20poly1305_init_push(key);
  const hash = sodium.crypto_hash_sha256_init();
  const parts: Uint8Array[] = [header];
  sodium.crypto_hash_sha256_update(hash, header);
  const plainSize = data instanceof Uint8Array ? data.length : data.size;
  const padded = paddedSize(plainSize);
  let offset = 0;
  do {
    const end = Math.min(offset + FILE_CHUNK_BYTES, padded);
    const chunk = await paddedChunk(data, plainSize, offset, end);
    const sealed = sodium.crypto_secretstream_xchacha20poly1305_push(state, chunk, null, end === padded ? FINAL : MESSAGE);
    sodium.crypto_hash_sha256_update(hash, sealed);
    parts.push(sealed);
    offset = end;
  } while (offset < padded);
  const size = parts.reduce((n, p) => n + p.length, 0);
  return { key, hash: sodium.to_hex(sodium.crypto_hash_sha256_final(hash)), parts, size, plainSize };
}

/**
 * Decrypts a ciphertext that arrives in pieces of any size, checking as it goes: each chunk's
 * authentication (an altered or reordered chunk fails: `undecryptable`), that the stream ends
 * with exactly one final chunk and nothing after it, that it is exactly as long as the
 * announced size padded (`paddedSize`), and at the end its SHA-256 (truncated, extended or
 * replaced: `integrity`); only then is the padding stripped, and it must be all zeros (else
 * the announced size is wrong: `integrity`). Plaintext is written into one buffer of the
 * announced size; the padding is checked as it passes, never stored.
 */
export class FileDecryptor {
  private readonly out: Uint8Array;
  /** Padded plaintext bytes decrypted so far. */
  private written = 0;
  private readonly padded: number;
  private paddingIsZero = true;
  private received = 0;
  private readonly expected: number;
  private pending: Uint8Array = new Uint8Array(0);
  private state: ReturnType<typeof sodium.crypto_secretstream_xchacha20poly1305_init_pull> | null = null;
  private readonly hash = sodium.crypto_hash_sha256_init();
  private chunks = 0;
  private final = false;

  constructor(private readonly ref: Pick<FileRef, 'key' | 'hash' | 'size'>) {
    this.out = new Uint8Array(ref.size);
    this.padded = paddedSize(ref.size);
    this.expected = ciphertextSize(ref.size);
  }

  /** Feeds the next ciphertext bytes. */
  push(bytes: Uint8Array): void {
    this.received += bytes.length;
    if (this.received > this.expected) throw integrity('the file is longer than its sender said');
    sodium.crypto_hash_sha256_update(this.hash, bytes);
    this.pending = this.pending.length === 0 ? bytes : concat(this.pending, bytes);
    const { HEADER, ABYTES } = ss();
    if (!this.state) {
      if (this.pending.length < HEADER) return;
      this.state = sodium.crypto_secretstream_xchacha20poly1305_init_pull(this.pending.subarray(0, HEADER), sodium.from_base64(this.ref.key));
      this.pending = this.pending.subarray(HEADER);
    }
    const whole = FILE_CHUNK_BYTES + ABYTES;
    let at = 0;
    while (this.pending.length - at >= whole) {
      this.open(this.pending.subarray(at, at + whole));
      at += whole;
    }
    // Keep the remainder in its own buffer, so the caller's array can be reused or freed.
    this.pending = at === 0 ? this.pending : this.pending.slice(at);
  }

  /** Checks that the stream is complete and intact; returns the plaintext. */
  finish(): Uint8Array {
    if (!this.state) throw integrity('the file is truncated: it ended inside its header');
    if (this.pending.length > 0) this.open(this.pending);
    this.pending = new Uint8Array(0);
    if (!this.final) throw integrity('the file is truncated: it ended before its final chunk');
    if (this.written !== this.padded) {
      throw integrity(`the file decrypted to ${this.written} bytes, not the ${this.padded} its announced ${this.ref.size} pad to`);
    }
    if (sodium.to_hex(sodium.crypto_hash_sha256_final(this.hash)) !== this.ref.hash) {
      throw integrity('the file does not match the hash its sender announced');
    }
    if (!this.paddingIsZero) throw integrity(`the file's padding after its announced ${this.ref.size} bytes is not all zeros`);
    return this.out;
  }

  private open(sealed: Uint8Array): void {
    if (this.final) throw integrity('the file has data after its final chunk');
    const r = sodium.crypto_secretstream_xchacha20poly1305_pull(this.state!, sealed, null) as { message: Uint8Array; tag: number } | false;
    this.chunks++;
    if (!r) {
      throw new ParleyError('undecryptable', `file chunk ${this.chunks} failed authentication: the file was altered or reordered, or the key is wrong`);
    }
    if (this.written + r.message.length > this.padded) throw integrity('the file is longer than its sender said');
    const kept = Math.max(0, Math.min(r.message.length, this.out.length - this.written));
    if (kept > 0) this.out.set(r.message.subarray(0, kept), this.written);
    for (let i = kept; i < r.message.length; i++) if (r.message[i] !== 0) this.paddingIsZero = false;
    this.written += r.message.length;
    if (r.tag === ss().FINAL) this.final = true;
  }
}

function integrity(message: string): ParleyError {
  return new ParleyError('integrity', message);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Calls `report` at most once per `step` bytes, and always at the end. */
function throttled(report: (loaded: number) => void, total: number, step = 256 * 1024): (loaded: number) => void {
  let last = -Infinity;
  return (loaded) => {
    if (loaded - last >= step || loaded === total) {
      last = loaded;
      report(loaded);
    }
  };
}

async function errorFrom(res: Response): Promise<ParleyError> {
  const json = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string; details?: Record<string, unknown> } };
  const e = json.error ?? { code: res.status >= 500 ? 'unavailable' : 'internal', message: `HTTP ${res.status}` };
  return new ParleyError(e.code, e.message, res.status, e.details);
}

/**
 * Uploads a ciphertext (`POST /v1/files`) with its length and hash; resolves to the file id.
 * Progress counts bytes handed to the network. Node streams the parts with fetch; browsers
 * (where fetch can neither stream a request body over HTTP/1.1 nor report upload progress)
 * use XMLHttpRequest with a Blob.
 */
export async function uploadCiphertext(base: string, token: string, file: EncryptedFile, onProgress: (loaded: number) => void): Promise<{ id: string }> {
  const url = new URL('/v1/files', base).toString();
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'x-content-sha256': file.hash };
  const progress = throttled(onProgress, file.size);
  const XHR = (globalThis as { XMLHttpRequest?: typeof XMLHttpRequest }).XMLHttpRequest;
  if (XHR) return uploadXhr(XHR, url, headers, file, progress);
  let i = 0;
  let loaded = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const part = file.parts[i++];
      if (!part) return controller.close();
      controller.enqueue(part);
      progress((loaded += part.length));
    },
  });
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(file.size) },
      body,
      duplex: 'half',
    } as RequestInit);
  } catch (err) {
    throw new ParleyError('unavailable', `cannot reach server: ${(err as Error).message}`);
  }
  if (!res.ok) throw await errorFrom(res);
  return (await res.json()) as { id: string };
}

function uploadXhr(
  XHR: typeof XMLHttpRequest,
  url: string,
  headers: Record<string, string>,
  file: EncryptedFile,
  progress: (loaded: number) => void,
): Promise<{ id: string }> {
  return new Promise((resolve, reject) => {
    const xhr = new XHR();
    xhr.open('POST', url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (ev) => progress(ev.loaded);
    xhr.onerror = () => reject(new ParleyError('unavailable', 'cannot reach server'));
    xhr.onload = () => {
      let json: { id?: string; error?: { code: string; message: string; details?: Record<string, unknown> } } = {};
      try {
        json = JSON.parse(xhr.responseText) as typeof json;
      } catch {
        /* not JSON */
      }
      if (xhr.status === 201 && json.id) return resolve({ id: json.id });
      const e = json.error ?? { code: xhr.status >= 500 ? 'unavailable' : 'internal', message: `HTTP ${xhr.status}` };
      reject(new ParleyError(e.code, e.message, xhr.status, e.details));
    };
    xhr.send(new Blob(file.parts as BlobPart[]));
  });
}

/**
 * Downloads a file's ciphertext and decrypts it as it arrives (see FileDecryptor). If the
 * connection breaks mid-way, it resumes where it stopped with a Range request (`If-Range`
 * makes the server send everything again if the file changed), up to `resumes` times.
 */
export async function downloadFile(
  base: () => string,
  token: () => Promise<string>,
  ref: FileRef,
  onProgress: (loaded: number) => void,
  resumes = 3,
): Promise<Uint8Array> {
  const decryptor = new FileDecryptor(ref);
  const total = ciphertextSize(ref.size);
  const progress = throttled(onProgress, total);
  let received = 0;
  let etag: string | null = null;
  for (let attempt = 0; ; attempt++) {
    const headers: Record<string, string> = { authorization: `Bearer ${await token()}` };
    if (received > 0) headers.range = `bytes=${received}-`;
    if (received > 0 && etag) headers['if-range'] = etag;
    let res: Response;
    try {
      res = await fetch(new URL(`/v1/files/${encodeURIComponent(ref.id)}`, base()), { headers });
    } catch (err) {
      if (attempt < resumes) continue;
      throw new ParleyError('unavailable', `cannot reach server: ${(err as Error).message}`);
    }
    if (!res.ok) throw await errorFrom(res);
    etag ??= res.headers.get('etag');
    const length = Number(res.headers.get('content-length') ?? NaN);
    const problem =
      received > 0 && res.status !== 206
        ? 'the server did not resume the download where it stopped'
        : res.status === 206 && !res.headers.get('content-range')?.startsWith(`bytes ${received}-`)
          ? 'the server resumed the download at the wrong offset'
          : received === 0 && length !== total
            ? `the server holds ${length} bytes for this file, not the ${total} its sender sent`
            : null;
    if (problem) {
      await res.body?.cancel().catch(() => {}); // release the connection
      throw integrity(problem);
    }
    const reader = res.body!.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        decryptor.push(value);
        received += value.length;
        progress(received);
      }
    } catch (err) {
      if (err instanceof ParleyError) {
        await reader.cancel().catch(() => {});
        throw err;
      }
      if (attempt < resumes && received < total) continue; // the connection broke: resume
      throw new ParleyError('unavailable', `download interrupted: ${(err as Error).message}`);
    }
    return decryptor.finish();
  }
}
