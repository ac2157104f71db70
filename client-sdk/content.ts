// What travels inside the encryption: the message content a device encodes and its peers decode.
import type { FileRef } from './files.js';

/** The plaintext of a message, before encryption and after decryption. Version 1 is JSON. */
export interface Content {
  text: string;
  /** A file sent with the message: where to fetch it and how to decrypt and check it. */
  file?: FileRef;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Encodes content for encryption.
 * @example encodeContent({ text: 'hi' }) // bytes of {"v":1,"text":"hi"}
 */
export function encodeContent(content: Content): Uint8Array {
  return enc.encode(JSON.stringify({ v: 1, ...content }));
}

/**
 * Decodes decrypted bytes; unknown fields are ignored, a missing text is ''. Throws on bytes
 * that are not JSON, and on a `file` that is not a well-formed file reference.
 */
export function decodeContent(bytes: Uint8Array): Content {
  const raw = JSON.parse(dec.decode(bytes)) as { text?: unknown; file?: unknown };
  const content: Content = { text: typeof raw.text === 'string' ? raw.text : '' };
  if (raw.file !== undefined) content.file = fileRef(raw.file);
  return content;
}

function fileRef(v: unknown): FileRef {
  const f = (v ?? {}) as Record<string, unknown>;
  const ok =
    typeof f.id === 'string' &&
    /^[A-Za-z0-9_-]{22}$/.test(f.id) &&
    typeof f.key === 'string' &&
    /^[A-Za-z0-9_-]{43}$/.test(f.key) && // 32 bytes, base64url without padding
    typeof f.hash === 'string' &&
    /^[0-9a-f]{64}$/.test(f.hash) &&
    typeof f.size === 'number' &&
    Number.isSafeInteger(f.size) &&
    f.size >= 0 &&
    typeof f.name === 'string' &&
    typeof f.type === 'string';
  if (!ok) throw new Error('malformed file reference');
  return { id: f.id as string, key: f.key as string, hash: f.hash as string, size: f.size as number, name: f.name as string, type: f.type as string };
}
