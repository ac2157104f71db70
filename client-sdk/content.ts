// What travels inside the encryption: the message content a device encodes and its peers decode, message actions (edit, delete, reactions), and the controls (disappearing timers, a history archive for a new device).
import type { FileRef } from './files.js';

/** The plaintext of a message, before encryption and after decryption. Version 1 is JSON. */
export interface Content {
  text: string;
  /** A file sent with the message: where to fetch it and how to decrypt and check it. */
  file?: FileRef;
  /** A disappearing message: each device deletes its copy this many seconds after the message was read there. */
  timer?: number;
  /** A reply: the id of the message it quotes, in the same conversation. */
  replyTo?: string;
  /** Users mentioned in the text (user ids). */
  mentions?: string[];
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

/** New text for the sender's own message `target` (receivers ignore an edit by anyone else). */
export interface EditAction {
  type: 'edit';
  target: string;
  text: string;
}

/** The sender deletes their own message `target` for everyone (receivers ignore it from anyone else). */
export interface DeleteAction {
  type: 'delete';
  target: string;
}

/** A member reacts to message `target` with `emoji`, or (`remove`) takes that reaction back. */
export interface ReactionAction {
  type: 'reaction';
  target: string;
  emoji: string;
  remove?: true;
}

/** What a message does to an earlier message of its conversation, named by id. */
export type MessageAction = EditAction | DeleteAction | ReactionAction;

/**
 * A device hands its message history to another device of the same user: the archive, an
 * encrypted file (history.transfer.ts), and how many messages it holds. Sent to that one device.
 */
export interface HistoryOffer {
  type: 'history';
  file: FileRef;
  messages: number;
}

/** What a decrypted message carries: content for the app, an action on an earlier message, or a control the SDK applies. */
export type Decoded = Content | MessageAction | DisappearingControl | HistoryOffer;

/** The longest disappearing timer: 4 weeks (below the server's default retention of 30 days, which bounds a send's `expiresAt`). */
export const MAX_TIMER_SECONDS = 28 * 24 * 3600;
/** The longest message id, user id or emoji accepted inside content (longer ones make the content malformed). */
export const MAX_ID_CHARS = 200;
export const MAX_EMOJI_CHARS = 64;
export const MAX_MENTIONS = 256;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Whether `v` is a usable timer: whole seconds from 1 to MAX_TIMER_SECONDS. */
export function validTimer(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 && v <= MAX_TIMER_SECONDS;
}

/** Whether decoded bytes are content for the app (as opposed to an action or a control). */
export function isContent(d: Decoded): d is Content {
  return !('type' in d);
}

/** Whether decoded bytes are an action on an earlier message. */
export function isAction(d: Decoded): d is MessageAction {
  return 'type' in d && (d.type === 'edit' || d.type === 'delete' || d.type === 'reaction');
}

/**
 * Encodes content, an action or a control for encryption. Content has no `type` (as version 1
 * always was); the others name their `type`.
 * @example encodeContent({ text: 'hi' }) // bytes of {"v":1,"text":"hi"}
 * @example encodeContent({ type: 'reaction', target: messageId, emoji: '👍' })
 */
export function encodeContent(content: Decoded): Uint8Array {
  return enc.encode(JSON.stringify({ v: 1, ...content }));
}

type Raw = Record<string, unknown>;

/**
 * Decodes decrypted bytes; unknown fields are ignored, a missing text is ''. Returns null for a
 * `type` this SDK does not know (a newer client's: ignored, not shown). Throws on bytes that are
 * not JSON and on a known field or type that is malformed (a file reference, a timer, an id, an
 * emoji, mentions).
 */
export function decodeContent(bytes: Uint8Array): Decoded | null {
  const raw = JSON.parse(dec.decode(bytes)) as Raw;
  switch (raw.type) {
    case undefined:
      return content(raw);
    case 'disappearing':
      return disappearing(raw);
    case 'edit':
      return { type: 'edit', target: id(raw.target), text: text(raw.text) };
    case 'delete':
      return { type: 'delete', target: id(raw.target) };
    case 'reaction':
      return { type: 'reaction', target: id(raw.target), emoji: emoji(raw.emoji), ...(raw.remove === true ? { remove: true as const } : {}) };
    case 'history':
      if (!Number.isSafeInteger(raw.messages) || (raw.messages as number) < 0) throw new Error('malformed history offer');
      return { type: 'history', file: fileRef(raw.file), messages: raw.messages as number };
    default:
      return null;
  }
}

function content(raw: Raw): Content {
  const c: Content = { text: typeof raw.text === 'string' ? raw.text : '' };
  if (raw.file !== undefined) c.file = fileRef(raw.file);
  if (raw.timer !== undefined) {
    if (!validTimer(raw.timer)) throw new Error('malformed disappearing timer');
    c.timer = raw.timer;
  }
  if (raw.replyTo !== undefined) c.replyTo = id(raw.replyTo);
  if (raw.mentions !== undefined) c.mentions = mentions(raw.mentions);
  return c;
}

function disappearing(raw: Raw): DisappearingControl {
  if (raw.seconds !== null && !validTimer(raw.seconds)) throw new Error('malformed disappearing timer');
  if (raw.to !== undefined && typeof raw.to !== 'string') throw new Error('malformed disappearing control');
  return { type: 'disappearing', seconds: raw.seconds as number | null, ...(raw.to !== undefined ? { to: raw.to } : {}) };
}

/** A message or user id: a non-empty string of at most MAX_ID_CHARS. */
export function validId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_ID_CHARS;
}

/** A reaction: a non-empty string of at most MAX_EMOJI_CHARS (UTF-16 units: room for ZWJ sequences and flags). */
export function validEmoji(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_EMOJI_CHARS;
}

function id(v: unknown): string {
  if (!validId(v)) throw new Error('malformed message id');
  return v;
}

function text(v: unknown): string {
  if (typeof v !== 'string') throw new Error('malformed text');
  return v;
}

function emoji(v: unknown): string {
  if (!validEmoji(v)) throw new Error('malformed reaction');
  return v;
}

/** Mentioned user ids: distinct, at most MAX_MENTIONS. */
export function mentions(v: unknown): string[] {
  if (!Array.isArray(v) || v.length > MAX_MENTIONS || !v.every(validId)) throw new Error('malformed mentions');
  return [...new Set(v)];
}

/** A well-formed file reference (hostile input: every field checked), or a throw. */
export function fileRef(v: unknown): FileRef {
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
