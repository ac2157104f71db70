// What travels inside the encryption: the message content a device encodes and its peers decode, and the conversation controls (disappearing timers).
import type { FileRef } from './files.js';

/** The plaintext of a message, before encryption and after decryption. Version 1 is JSON. */
export interface Content {
  text: string;
  /** A file sent with the message: where to fetch it and how to decrypt and check it. */
  file?: FileRef;
  /** A disappearing message: each device deletes its copy this many seconds after the message was read there. */
  timer?: number;
}

/**
 * A conversation's disappearing-message timer set by a member (`seconds`, or null for off).
 * `to`: in a direct conversation, the other user, so that the sender's own devices know whose
 * conversation it is (their copy names only the sender).
 */
export interface DisappearingControl {
  type: 'disappearing';
  seconds: number | null;
  to?: string;
}

/** What a decrypted message carries: content for the app, or a control the SDK applies. */
export type Decoded = Content | DisappearingControl;

/** The longest disappearing timer: 4 weeks (below the server's default retention of 30 days, which bounds a send's `expiresAt`). */
export const MAX_TIMER_SECONDS = 28 * 24 * 3600;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Whether `v` is a usable timer: whole seconds from 1 to MAX_TIMER_SECONDS. */
export function validTimer(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 && v <= MAX_TIMER_SECONDS;
}

/** Whether decoded bytes are a control for the SDK rather than content for the app. */
export function isControl(d: Decoded): d is DisappearingControl {
  return 'type' in d;
}

/**
 * Encodes content or a control for encryption. Content has no `type` (as version 1 always
 * was); a control names its `type`.
 * @example encodeContent({ text: 'hi' }) // bytes of {"v":1,"text":"hi"}
 * @example encodeContent({ type: 'disappearing', seconds: 3600 })
 */
export function encodeContent(content: Decoded): Uint8Array {
  return enc.encode(JSON.stringify({ v: 1, ...content }));
}

/**
 * Decodes decrypted bytes; unknown fields are ignored, a missing text is ''. Returns null for a
 * `type` this SDK does not know (a newer client's control: ignored, not shown). Throws on bytes
 * that are not JSON, on a `file` that is not a well-formed file reference, and on a malformed
 * timer.
 */
export function decodeContent(bytes: Uint8Array): Decoded | null {
  const raw = JSON.parse(dec.decode(bytes)) as { type?: unknown; text?: unknown; file?: unknown; timer?: unknown; seconds?: unknown; to?: unknown };
  if (raw.type === 'disappearing') return disappearing(raw);
  if (raw.type !== undefined) return null;
  const content: Content = { text: typeof raw.text === 'string' ? raw.text : '' };
  if (raw.file !== undefined) content.file = fileRef(raw.file);
  if (raw.timer !== undefined) {
    if (!validTimer(raw.timer)) throw new Error('malformed disappearing timer');
    content.timer = raw.timer;
  }
  return content;
}

function disappearing(raw: { seconds?: unknown; to?: unknown }): DisappearingControl {
  if (raw.seconds !== null && !validTimer(raw.seconds)) throw new Error('malformed disappearing timer');
  if (raw.to !== undefined && typeof raw.to !== 'string') throw new Error('malformed disappearing control');
  return { type: 'disappearing', seconds: raw.seconds as number | null, ...(raw.to !== undefined ? { to: raw.to } : {}) };
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
