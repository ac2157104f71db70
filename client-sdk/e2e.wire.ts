// The byte layout of an encrypted body (opaque to the server) and of the padded plaintext inside it; docs/protocol.md §7.
import { concat, readU32, u32 } from '../protocol/bytes.js';
import { ParleyError } from './http.js';
import { HEADER_BYTES, MIN_CIPHERTEXT_BYTES } from './e2e.ratchet.js';

/**
 * First byte of a body:
 * - 0x00 empty: one more byte says why (EMPTY_REASON); carries nothing.
 * - 0x01 message: ratchet header (dh 32 ‖ pn u32 ‖ n u32) ‖ nonce (24, random) ‖
 *   XChaCha20-Poly1305 ciphertext.
 * - 0x02 prekey message (the first messages of a session, until the peer answers):
 *   identity key (Ed25519, 32) ‖ base key (X25519, 32) ‖ signed prekey id (u32) ‖
 *   one-time prekey id (u32, 0 = none) ‖ the same as 0x01 after its type byte.
 * All integers are big-endian. Every byte before the ciphertext is authenticated.
 */
export const BODY = { EMPTY: 0x00, MESSAGE: 0x01, PREKEY: 0x02 } as const;
export const EMPTY_REASON = {
  /** The recipient device had published no prekeys, so the sender could not encrypt for it. */
  NO_KEYS: 1,
  /** A control message meant for another device of the conversation. */
  NOT_ADDRESSED: 2,
  /** A device none of the sender's trusted devices of its user vouched for: the sender encrypts nothing to it. */
  UNTRUSTED: 3,
} as const;

export const PREKEY_PREFIX_BYTES = 1 + 32 + 32 + 4 + 4;

export interface PrekeyHeader {
  identityKey: Uint8Array;
  baseKey: Uint8Array;
  signedPrekeyId: number;
  /** 0 when the bundle had no one-time prekey left. */
  oneTimePrekeyId: number;
}

export type ParsedBody =
  | { type: 'empty'; reason: number }
  | { type: 'message'; at: number }
  | { type: 'prekey'; header: PrekeyHeader; at: number };

export function encodePrekeyPrefix(h: PrekeyHeader): Uint8Array {
  return concat(new Uint8Array([BODY.PREKEY]), h.identityKey, h.baseKey, u32(h.signedPrekeyId), u32(h.oneTimePrekeyId));
}

export const MESSAGE_PREFIX: Uint8Array = new Uint8Array([BODY.MESSAGE]);

export function emptyBody(reason: number): Uint8Array {
  return new Uint8Array([BODY.EMPTY, reason]);
}

/** Splits a body into its kind and where the ratchet header starts; throws `malformed`. */
export function parseBody(bytes: Uint8Array): ParsedBody {
  switch (bytes[0]) {
    case BODY.EMPTY:
      if (bytes.length !== 2) throw new ParleyError('malformed', 'bad empty body');
      return { type: 'empty', reason: bytes[1]! };
    case BODY.MESSAGE:
      if (bytes.length < 1 + HEADER_BYTES + MIN_CIPHERTEXT_BYTES) throw new ParleyError('malformed', 'message too short');
      return { type: 'message', at: 1 };
    case BODY.PREKEY:
      if (bytes.length < PREKEY_PREFIX_BYTES + HEADER_BYTES + MIN_CIPHERTEXT_BYTES) throw new ParleyError('malformed', 'prekey message too short');
      return {
        type: 'prekey',
        at: PREKEY_PREFIX_BYTES,
        header: {
          identityKey: bytes.slice(1, 33),
          baseKey: bytes.slice(33, 65),
          signedPrekeyId: readU32(bytes, 65),
          oneTimePrekeyId: readU32(bytes, 69),
        },
      };
    default:
      throw new ParleyError('malformed', 'unknown body type');
  }
}

/**
 * What a session carries, first byte of the plaintext:
 * - 0x01 content: the app's message (content.ts).
 * - 0x02 control: JSON, e.g. {"t":"session_reset"}.
 * - 0x03 sender key distribution (e2e.sender-keys.ts) for a group.
 * - 0x04 a group's metadata key (e2e.group-meta.ts), attached to one of the group's system messages.
 */
export const INNER = { CONTENT: 0x01, CONTROL: 0x02, SENDER_KEY: 0x03, GROUP_META: 0x04 } as const;
export type InnerKind = (typeof INNER)[keyof typeof INNER];

/** Plaintexts are padded to a multiple of this, so ciphertext sizes say little about lengths. */
export const PAD_BLOCK = 64;

/** kind ‖ payload ‖ 0x80 ‖ zeros, to a multiple of PAD_BLOCK (ISO/IEC 7816-4 padding). */
export function packInner(kind: InnerKind, payload: Uint8Array): Uint8Array {
  const length = 1 + payload.length + 1;
  const out = new Uint8Array(Math.ceil(length / PAD_BLOCK) * PAD_BLOCK);
  out[0] = kind;
  out.set(payload, 1);
  out[1 + payload.length] = 0x80;
  return out;
}

export function unpackInner(padded: Uint8Array): { kind: number; payload: Uint8Array } {
  let end = padded.length - 1;
  while (end > 0 && padded[end] === 0) end--;
  if (end < 1 || padded[end] !== 0x80) throw new ParleyError('malformed', 'bad padding');
  return { kind: padded[0]!, payload: padded.slice(1, end) };
}
