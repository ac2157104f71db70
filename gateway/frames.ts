// Frames on the wire: zod schemas for inbound frames (every client frame is parsed here before anything acts on it), costs, and outbound serialization.
import { z } from 'zod';
import type { ClientFrame, MsgFrame, ServerFrame } from '../protocol/frames.js';
import type { StoredMessage } from '../messaging/message-store.js';
import { AppError } from '../platform/errors.js';

const uuid = z.uuid();
const seq = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** Body limit per device ciphertext (base64 chars); the frame as a whole is capped by WS_MAX_PAYLOAD_BYTES. */
export const MAX_BODY_CHARS = 65_536;
export const MAX_DEVICES_PER_SEND = 64;
/** Per-device payloads in a group send (sealed message keys); the frame limit usually binds first. */
export const MAX_DEVICES_PER_GROUP_SEND = 8192;
export const MAX_KEY_CHARS = 1024;

/** A disappearing message's expiry (epoch ms); the message path checks it against the clock and the retention period. */
const expiresAt = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const clientId = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only');
const base64 = (max: number) => z.string().min(1).max(max).regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64');

export const clientFrameSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('send'),
    id: clientId,
    to: uuid,
    payloads: z
      .array(z.object({ device: uuid, body: base64(MAX_BODY_CHARS) }))
      .min(1)
      .max(MAX_DEVICES_PER_SEND),
    expiresAt: expiresAt.optional(),
  }),
  z.object({
    type: z.literal('group.send'),
    id: clientId,
    group: uuid,
    body: base64(MAX_BODY_CHARS),
    payloads: z.array(z.object({ device: uuid, body: base64(MAX_KEY_CHARS) })).max(MAX_DEVICES_PER_GROUP_SEND).optional(),
    devicesHash: z.string().regex(/^[0-9a-f]{32}$/, '32 hex digits').optional(),
    expiresAt: expiresAt.optional(),
  }),
  z.object({ type: z.literal('ack'), conversationId: uuid, seq }),
  z.object({ type: z.literal('read'), conversationId: uuid, seq }),
  z.object({ type: z.literal('typing'), conversationId: uuid, active: z.boolean() }),
  z.object({ type: z.literal('presence.subscribe'), users: z.array(uuid).min(1).max(256) }),
  z.object({ type: z.literal('ping'), id: clientId.optional() }),
]);

export const KNOWN_FRAME_TYPES: ReadonlySet<string> = new Set(clientFrameSchema.options.map((o) => o.shape.type.value));

// The SDK's frame types and these schemas must agree; this fails to compile if they drift.
type Parsed = z.infer<typeof clientFrameSchema>;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const framesAgree: Same<Parsed, ClientFrame> = true;

/** Deepest nesting a frame may have; real frames nest 3 levels (frame → payloads → payload). */
export const MAX_FRAME_DEPTH = 16;
/** Validation problems quoted in an `invalid` error's message, at most. */
const MAX_ISSUES_QUOTED = 5;

/**
 * The nesting depth of JSON text, counted without parsing it (brackets outside strings), and
 * stopping as soon as it passes `limit`: a frame is bounded before anything recurses over it.
 * @example jsonDepth('{"a":[1]}', 16) // 2
 */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max && (max = depth) > limit) return max;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

export type ParsedFrame = z.infer<typeof clientFrameSchema>;

/** A decoded frame, or why not: the error to answer and the `ref` it answers. */
export type Decoded = { ok: true; frame: ParsedFrame } | { ok: false; error: AppError; ref?: string };

/** A short, printable rendering of a client-supplied value for an error message (never echoes big input). */
function quote(v: unknown): string {
  return typeof v === 'string' && v.length <= 64 ? JSON.stringify(v) : v === undefined || v === null ? 'null' : `(${typeof v})`;
}

/** The `ref` an answer to this (parsed, maybe invalid) frame names: its short string `id`, else its known `type`. */
export function frameRef(raw: unknown): string | undefined {
  const obj = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : null;
  const id = obj?.id;
  if (typeof id === 'string' && id.length <= 64) return id;
  return typeof obj?.type === 'string' && KNOWN_FRAME_TYPES.has(obj.type) ? obj.type : undefined;
}

/**
 * The JSON value of one inbound message (a WebSocket message, or a Socket.IO `frame` event's
 * text), with its depth bounded before it is parsed. Total: whatever the input is, it returns
 * (never throws).
 */
export function parseFrameJson(data: string | Buffer, isBinary: boolean): { ok: true; raw: unknown } | { ok: false; error: AppError } {
  if (isBinary) return { ok: false, error: new AppError('invalid', 'binary frames are not supported; send JSON text') };
  const text = typeof data === 'string' ? data : data.toString('utf8');
  if (jsonDepth(text, MAX_FRAME_DEPTH) > MAX_FRAME_DEPTH) {
    return { ok: false, error: new AppError('invalid', `frame nested deeper than ${MAX_FRAME_DEPTH} levels`) };
  }
  try {
    return { ok: true, raw: JSON.parse(text) };
  } catch {
    return { ok: false, error: new AppError('invalid', 'malformed JSON') };
  }
}

/**
 * Validates a parsed frame. Total: an invalid one gets an `invalid` error with a bounded
 * message and the `ref` of frameRef.
 */
export function validateFrame(raw: unknown): Decoded {
  const parsed = clientFrameSchema.safeParse(raw);
  if (parsed.success) return { ok: true, frame: parsed.data };
  const obj = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : null;
  const type = obj?.type;
  const known = typeof type === 'string' && KNOWN_FRAME_TYPES.has(type);
  const issues = parsed.error.issues;
  const message = known
    ? issues
        .slice(0, MAX_ISSUES_QUOTED)
        .map((i) => `${i.path.slice(0, 4).join('.') || 'frame'}: ${i.message.slice(0, 200)}`)
        .join('; ') + (issues.length > MAX_ISSUES_QUOTED ? `; and ${issues.length - MAX_ISSUES_QUOTED} more` : '')
    : `unknown frame type ${quote(type)}`;
  const ref = frameRef(raw);
  return {
    ok: false,
    error: new AppError('invalid', message, { details: { type: known ? type : typeof type === 'string' && type.length <= 64 ? type : null } }),
    ...(ref === undefined ? {} : { ref }),
  };
}

/**
 * Turns one WebSocket message into a validated frame (parseFrameJson, then validateFrame).
 * @example decodeFrame(Buffer.from('{"type":"ping"}'), false) // { ok: true, frame: { type: 'ping' } }
 */
export function decodeFrame(data: string | Buffer, isBinary: boolean): Decoded {
  const json = parseFrameJson(data, isBinary);
  return json.ok ? validateFrame(json.raw) : json;
}

/**
 * What a frame costs from the rate budget: 1, plus the work it fans out to (devices in a send,
 * users looked up for presence, members a typing indicator reaches). Read from the parsed
 * JSON before validation, so a refused frame costs no validation. An invalid frame costs
 * INVALID_FRAME_COST. Group sends are charged their audience after the membership is known.
 */
export function frameCost(raw: unknown): number {
  const f = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const n = (v: unknown) => (Array.isArray(v) ? v.length : 0);
  switch (f.type) {
    case 'send':
      return 1 + Math.ceil(n(f.payloads) / 4);
    case 'group.send':
      return 1 + Math.ceil(n(f.payloads) / 16);
    case 'presence.subscribe':
      return 1 + Math.ceil(n(f.users) / 8);
    case 'typing':
      return 2;
    default:
      return 1;
  }
}

/** A malformed frame costs this many tokens, so garbage floods hit the limit quickly. */
export const INVALID_FRAME_COST = 5;

/** The end of every switch over frame types: a frame type left unhandled fails to compile. */
export function assertNever(x: never): never {
  throw new Error(`unhandled frame ${JSON.stringify(x)}`);
}

const serialized = new WeakMap<object, string>();
/**
 * JSON of a frame, computed once per frame object: a group message fanned out to thousands of
 * devices on this gateway is one shared object (when it carries no per-device key).
 */
export function serializeFrame(frame: ServerFrame): string {
  if (frame.type !== 'msg') return JSON.stringify(frame);
  let json = serialized.get(frame);
  if (json === undefined) serialized.set(frame, (json = JSON.stringify(frame)));
  return json;
}

/** Rate tokens a frame's size costs before it is parsed: one per started 16 KiB beyond the first. */
export function sizeTokens(bytes: number): number {
  return bytes <= 16_384 ? 0 : Math.ceil(bytes / 16_384) - 1;
}

/**
 * The client id of a send, read from the first bytes of a frame without parsing it, so a
 * refusal of a big frame can still name the send it refuses (clients write `type` and `id`
 * first). Undefined when it is not there.
 */
export function sniffSendId(data: string | Buffer): string | undefined {
  const head = typeof data === 'string' ? data.slice(0, 160) : data.subarray(0, 160).toString('latin1');
  return /^\{\s*"type"\s*:\s*"(?:group\.)?send"\s*,\s*"id"\s*:\s*"([A-Za-z0-9_-]{1,64})"/.exec(head)?.[1];
}

/** The frame a device receives for a stored message (a tombstone, `deleted: true` with body '', for one deleted for everyone). */
export function storedToFrame(m: StoredMessage): MsgFrame {
  return {
    type: 'msg',
    id: m.id,
    conversationId: m.conversationId,
    seq: m.seq,
    from: m.from,
    fromDevice: m.fromDevice,
    sentAt: m.sentAt,
    body: m.body ?? '',
    ...(m.group ? { groupId: m.conversationId } : {}),
    ...(m.key === null ? {} : { key: m.key }),
    ...(m.system === null ? {} : { system: m.system }),
    ...(m.expiresAt === null ? {} : { expiresAt: m.expiresAt }),
    ...(m.deleted ? { deleted: true as const } : {}),
  };
}
