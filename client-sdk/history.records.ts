// What the message history keeps of a message or an action, and how it becomes a store entry: the plain index fields, and a body sealed under the app's history key.
import sodium from 'libsodium-wrappers-sumo';
import { concat, randomBytes, utf8 } from '../protocol/bytes.js';
import { fileRef, mentions, type MessageAction, validEmoji, validId, validTimer } from './content.js';
import type { FileRef } from './files.js';
import type { StoredEntry } from './history.js';
import { ParleyError } from './http.js';

/** What every record of the history has: where and when it was stored, and who sent it. */
interface RecordMeta {
  conversationId: string;
  seq: number;
  id: string;
  sentAt: number;
  from: string;
  /** The sending device ('' when the server did not say, e.g. a tombstone's). */
  fromDevice: string;
}

/** A message as the history keeps it. */
export interface MessageRecord extends RecordMeta {
  groupId?: string;
  /** A direct conversation: the other user (so a send to it finds its user after a restart). */
  peer?: string;
  text: string;
  file?: FileRef;
  timer?: number;
  expiresAt?: number;
  replyTo?: string;
  mentions?: string[];
  /** Deleted for everyone: its content is gone from the store too. */
  deleted?: true;
}

/** An action on a message, as the history keeps it (with its own seq). */
export interface ActionRecord extends RecordMeta {
  action: MessageAction;
}

export type HistoryRecord = MessageRecord | ActionRecord;

export const isActionRecord = (r: HistoryRecord): r is ActionRecord => 'action' in r;

/** Body format bytes: what follows the first byte. */
const PLAIN = 0x00;
const SEALED = 0x01;
const KEY_BYTES = 32;

type Json = Record<string, unknown>;

/** The body's JSON: everything but the plain index fields. Field names are part of the archive format (history.transfer.ts). */
export function bodyJson(r: HistoryRecord): Json {
  if (isActionRecord(r)) {
    const { conversationId: _c, seq: _s, id: _i, sentAt: _t, action, ...rest } = r;
    const { target: _target, ...a } = action;
    return { ...rest, ...a };
  }
  const { conversationId: _c, seq: _s, id: _i, sentAt: _t, ...rest } = r;
  return rest;
}

/** A record from the index fields and its body's JSON, every field checked (bodies also come from archives: hostile input). */
export function fromBody(e: Omit<StoredEntry, 'body'>, b: Json): HistoryRecord {
  const base = { conversationId: e.conversationId, seq: e.seq, id: e.id, sentAt: e.sentAt, from: need(b.from, validId, 'from'), fromDevice: need(b.fromDevice, str, 'fromDevice') };
  if (e.target !== undefined) return { ...base, action: action(e.target, b) };
  const r: MessageRecord = { ...base, text: need(b.text, str, 'text') };
  if (b.groupId !== undefined) r.groupId = need(b.groupId, validId, 'groupId');
  if (b.peer !== undefined) r.peer = need(b.peer, validId, 'peer');
  if (b.file !== undefined) r.file = fileRef(b.file);
  if (b.timer !== undefined) r.timer = need(b.timer, validTimer, 'timer');
  if (b.expiresAt !== undefined) r.expiresAt = need(b.expiresAt, Number.isSafeInteger, 'expiresAt') as number;
  if (b.replyTo !== undefined) r.replyTo = need(b.replyTo, validId, 'replyTo');
  if (b.mentions !== undefined) r.mentions = mentions(b.mentions);
  if (b.deleted === true) r.deleted = true;
  return r;
}

function action(target: string, b: Json): MessageAction {
  if (!validId(target)) throw malformed('target');
  switch (b.type) {
    case 'edit':
      return { type: 'edit', target, text: need(b.text, str, 'text') };
    case 'delete':
      return { type: 'delete', target };
    case 'reaction':
      return { type: 'reaction', target, emoji: need(b.emoji, validEmoji, 'emoji'), ...(b.remove === true ? { remove: true as const } : {}) };
    default:
      throw malformed('type');
  }
}

const str = (v: unknown): v is string => typeof v === 'string';

function need<T>(v: unknown, ok: (v: unknown) => v is T, field: string): T;
function need(v: unknown, ok: (v: unknown) => boolean, field: string): unknown;
function need(v: unknown, ok: (v: unknown) => boolean, field: string): unknown {
  if (!ok(v)) throw malformed(field);
  return v;
}

function malformed(field: string): ParleyError {
  return new ParleyError('malformed', `history entry: bad ${field}`);
}

/**
 * Seals and opens store entries. With a 32-byte key, a body is 0x01 ‖ nonce (24) ‖
 * XChaCha20-Poly1305 of the body's JSON, with the entry's plain fields (conversation, seq, id,
 * target, time) as associated data, so a body cannot be moved to another entry; without one it
 * is 0x00 ‖ the JSON. A keyed codec refuses plain bodies (they could have been put there by
 * anyone with the files), and an unkeyed one cannot read sealed ones.
 */
export class EntryCodec {
  constructor(private readonly key: Uint8Array | null) {
    if (key && key.length !== KEY_BYTES) throw new ParleyError('invalid', `historyKey must be ${KEY_BYTES} bytes`);
  }

  seal(r: HistoryRecord): StoredEntry {
    const index = { conversationId: r.conversationId, seq: r.seq, id: r.id, ...(isActionRecord(r) ? { target: r.action.target } : {}), sentAt: r.sentAt };
    const json = utf8(JSON.stringify(bodyJson(r)));
    if (!this.key) return { ...index, body: concat(new Uint8Array([PLAIN]), json) };
    const nonce = randomBytes(sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    const sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(json, ad(index), null, nonce, this.key);
    return { ...index, body: concat(new Uint8Array([SEALED]), nonce, sealed) };
  }

  open(e: StoredEntry): HistoryRecord {
    return fromBody(e, this.json(e));
  }

  /** The body's JSON, opened and checked against the entry's plain fields. */
  json(e: StoredEntry): Json {
    const format = e.body[0];
    if (format === PLAIN && !this.key) return JSON.parse(new TextDecoder().decode(e.body.subarray(1))) as Json;
    if (format !== SEALED || !this.key) {
      throw new ParleyError('undecryptable', this.key ? 'a history entry is not sealed under the history key' : 'the history is sealed: give the client its historyKey');
    }
    const n = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    let opened: Uint8Array;
    try {
      opened = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, e.body.subarray(1 + n), ad(e), e.body.subarray(1, 1 + n), this.key);
    } catch {
      throw new ParleyError('undecryptable', 'a history entry does not open under the history key (another key, or altered)');
    }
    return JSON.parse(new TextDecoder().decode(opened)) as Json;
  }
}

function ad(e: Omit<StoredEntry, 'body'>): Uint8Array {
  return utf8(JSON.stringify(['parley history v1', e.conversationId, e.seq, e.id, e.target ?? null, e.sentAt]));
}
