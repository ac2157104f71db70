// Sender Keys for groups: per (group, sender device) a hash chain of message keys and an Ed25519 key that signs every message.
import sodium from 'libsodium-wrappers-sumo';
import { concat, fromB64, randomBytes, randomKeyId, readU32, toB64, u32, utf8 } from '../protocol/bytes.js';
import { hkdf, hmacSha256 } from './e2e.hkdf.js';
import { ParleyError } from './http.js';

/** Most message keys one group message may make a receiver skip. */
export const SENDER_KEY_MAX_SKIP = 2000;
/** Most skipped keys a receiver keeps per sender key; the oldest go first. */
export const SENDER_KEY_MAX_SKIPPED = 2000;
/** A skipped key older than this is forgotten. */
export const SENDER_KEY_SKIPPED_MAX_AGE_MS = 14 * 86_400_000;
/** XChaCha20 nonces are random (not derived from the message key), so a rolled-back state cannot reuse a keystream. */
const NONCE_BYTES = 24;

/** 2: random nonces, and distributions that name departed devices. */
const VERSION = 2;
const MESSAGE_INFO = utf8('Parley group message keys v1');
const CONTEXT = utf8('Parley group v1');
const ZERO_SALT = new Uint8Array(32);
/** version ‖ key id ‖ iteration */
const HEADER_BYTES = 9;
const SIGNATURE_BYTES = 64;

/**
 * One sender key. The sender's own copy has `signingSecret`; a receiver's copy only the public
 * half, so members can read each other's messages but not forge them. States are treated as
 * immutable: encrypt and decrypt return new ones.
 */
export interface SenderKeyState {
  groupId: string;
  /** Random; a rotation makes a new one, and messages name the one they were made with. */
  keyId: number;
  /** The iteration `chainKey` is at: the next message key to use (sender) or expect (receiver). */
  iteration: number;
  chainKey: Uint8Array;
  signingPublic: Uint8Array;
  signingSecret: Uint8Array | null;
  /** iteration → message key and when it was skipped (ms), oldest first (receivers only). */
  skipped: Map<number, { key: Uint8Array; at: number }>;
  /** When this key was made (ms; own keys: rotation by age). */
  createdAt: number;
  /** Own keys: the devices that had left when it was made (its distributions name them). */
  excluded?: string[];
}

/** A fresh sender key for our device in `groupId`; also what rotation does (new chain, new signing key). */
export function createSenderKey(groupId: string, now = Date.now()): SenderKeyState {
  const signing = sodium.crypto_sign_keypair();
  return {
    createdAt: now,
    groupId,
    keyId: randomKeyId(),
    iteration: 0,
    chainKey: randomBytes(32),
    signingPublic: signing.publicKey,
    signingSecret: signing.privateKey,
    skipped: new Map(),
  };
}

const groupBytes = (groupId: string) => {
  const g = utf8(groupId);
  return concat(u32(g.length), g);
};

/** Most departed devices one distribution may name. */
const MAX_EXCLUDED = 1024;

/**
 * The distribution message: what the sender sends each member over their pairwise session
 * (inner kind SENDER_KEY): version ‖ len ‖ group id ‖ key id ‖ iteration ‖ chain key ‖ signing
 * public key ‖ count (u32) ‖ count × (len ‖ device id): the devices that left the group
 * (a rotation after a removal names them), whose keys every receiver then forgets, even one
 * the server never told of the removal.
 */
export function senderKeyDistribution(own: SenderKeyState, excluded: readonly string[] = []): Uint8Array {
  return concat(
    new Uint8Array([VERSION]),
    groupBytes(own.groupId),
    u32(own.keyId),
    u32(own.iteration),
    own.chainKey,
    own.signingPublic,
    u32(excluded.length),
    ...excluded.map(groupBytes),
  );
}

/** A receiver's state from a distribution message, and the departed devices it names; throws `malformed`. */
export function receiveSenderKey(distribution: Uint8Array, now = Date.now()): SenderKeyState & { excluded: string[] } {
  const bad = () => new ParleyError('malformed', 'bad sender key distribution');
  const text = new TextDecoder('utf-8', { fatal: true });
  if (distribution.length < 5 || distribution[0] !== VERSION) throw bad();
  const len = readU32(distribution, 1);
  if (len > 256 || distribution.length < 5 + len + 8 + 64 + 4) throw bad();
  const groupId = text.decode(distribution.subarray(5, 5 + len));
  const at = 5 + len;
  const excluded: string[] = [];
  let p = at + 72;
  const count = readU32(distribution, p);
  p += 4;
  if (count > MAX_EXCLUDED) throw bad();
  for (let i = 0; i < count; i++) {
    if (p + 4 > distribution.length) throw bad();
    const n = readU32(distribution, p);
    if (n > 256 || p + 4 + n > distribution.length) throw bad();
    excluded.push(text.decode(distribution.subarray(p + 4, p + 4 + n)));
    p += 4 + n;
  }
  if (p !== distribution.length) throw bad();
  return {
    excluded,
    groupId,
    keyId: readU32(distribution, at),
    iteration: readU32(distribution, at + 4),
    chainKey: distribution.slice(at + 8, at + 40),
    signingPublic: distribution.slice(at + 40, at + 72),
    signingSecret: null,
    skipped: new Map(),
    createdAt: now,
  };
}

function step(chainKey: Uint8Array): [next: Uint8Array, messageKey: Uint8Array] {
  return [hmacSha256(chainKey, new Uint8Array([2])), hmacSha256(chainKey, new Uint8Array([1]))];
}

function aeadKey(messageKey: Uint8Array): Uint8Array {
  return hkdf(messageKey, ZERO_SALT, MESSAGE_INFO, 32);
}

/** The key id a group message was made with (to pick the sender's state), or throws `malformed`. */
export function senderKeyIdOf(message: Uint8Array): number {
  if (message.length < HEADER_BYTES + NONCE_BYTES + 16 + SIGNATURE_BYTES || message[0] !== VERSION) throw new ParleyError('malformed', 'bad group message');
  return readU32(message, 1);
}

/** Encrypts and signs: version ‖ key id ‖ iteration ‖ nonce ‖ ciphertext ‖ Ed25519 signature over (group ‖ everything before it). */
export function senderKeyEncrypt(own: SenderKeyState, plaintext: Uint8Array): { state: SenderKeyState; message: Uint8Array } {
  if (!own.signingSecret) throw new ParleyError('invalid', 'only the owner of a sender key can send with it');
  const [next, messageKey] = step(own.chainKey);
  const header = concat(new Uint8Array([VERSION]), u32(own.keyId), u32(own.iteration));
  const group = groupBytes(own.groupId);
  const nonce = randomBytes(NONCE_BYTES);
  const ciphertext = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, concat(CONTEXT, group, header), null, nonce, aeadKey(messageKey));
  const signed = concat(header, nonce, ciphertext);
  const signature = sodium.crypto_sign_detached(concat(CONTEXT, group, signed), own.signingSecret);
  return { state: { ...own, chainKey: next, iteration: own.iteration + 1 }, message: concat(signed, signature) };
}

/**
 * Verifies the signature first, then decrypts. Never modifies `state`. Errors: `malformed`,
 * `unknown_sender_key` (another key id: rotated, or never distributed to us), `bad_signature`,
 * `duplicate` (replay), `too_many_skipped`, `auth_failed`.
 */
export function senderKeyDecrypt(state: SenderKeyState, message: Uint8Array, now = Date.now()): { state: SenderKeyState; plaintext: Uint8Array } {
  const keyId = senderKeyIdOf(message);
  if (keyId !== state.keyId) throw new ParleyError('unknown_sender_key', 'message made with a sender key we do not have');
  const signed = message.subarray(0, message.length - SIGNATURE_BYTES);
  const signature = message.subarray(message.length - SIGNATURE_BYTES);
  const group = groupBytes(state.groupId);
  if (!sodium.crypto_sign_verify_detached(signature, concat(CONTEXT, group, signed), state.signingPublic)) {
    throw new ParleyError('bad_signature', 'group message not signed by its sender');
  }
  const iteration = readU32(message, 5);
  let messageKey: Uint8Array;
  const s: SenderKeyState = { ...state, skipped: new Map(state.skipped) };
  for (const [i, k] of s.skipped) {
    if (now - k.at <= SENDER_KEY_SKIPPED_MAX_AGE_MS) break;
    s.skipped.delete(i);
  }
  if (iteration < state.iteration) {
    const stored = s.skipped.get(iteration);
    if (!stored) throw new ParleyError('duplicate', 'group message key already used');
    s.skipped.delete(iteration);
    messageKey = stored.key;
  } else {
    if (iteration - state.iteration > SENDER_KEY_MAX_SKIP) throw new ParleyError('too_many_skipped', 'group message counter too far ahead');
    let chain = state.chainKey;
    for (let i = state.iteration; i < iteration; i++) {
      const [next, skippedKey] = step(chain);
      s.skipped.set(i, { key: skippedKey, at: now });
      if (s.skipped.size > SENDER_KEY_MAX_SKIPPED) s.skipped.delete(s.skipped.keys().next().value!);
      chain = next;
    }
    [s.chainKey, messageKey] = step(chain);
    s.iteration = iteration + 1;
  }
  const nonce = signed.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES);
  const ciphertext = signed.subarray(HEADER_BYTES + NONCE_BYTES);
  try {
    const plaintext = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, ciphertext, concat(CONTEXT, group, signed.subarray(0, HEADER_BYTES)), nonce, aeadKey(messageKey));
    return { state: s, plaintext };
  } catch {
    throw new ParleyError('auth_failed', 'group message failed authentication');
  }
}

export interface SenderKeyJson {
  g: string;
  id: number;
  it: number;
  ck: string;
  pub: string;
  sec: string | null;
  skipped: [number, string, number?][];
  /** Made at (ms); absent in states saved before it existed. */
  at?: number;
  ex?: string[];
}

export function senderKeyToJson(s: SenderKeyState): SenderKeyJson {
  return {
    g: s.groupId,
    id: s.keyId,
    it: s.iteration,
    ck: toB64(s.chainKey),
    pub: toB64(s.signingPublic),
    sec: s.signingSecret ? toB64(s.signingSecret) : null,
    skipped: [...s.skipped].map(([i, k]) => [i, toB64(k.key), k.at]),
    at: s.createdAt,
    ...(s.excluded?.length ? { ex: s.excluded } : {}),
  };
}

export function senderKeyFromJson(j: SenderKeyJson): SenderKeyState {
  return {
    groupId: j.g,
    keyId: j.id,
    iteration: j.it,
    chainKey: fromB64(j.ck),
    signingPublic: fromB64(j.pub),
    signingSecret: j.sec ? fromB64(j.sec) : null,
    skipped: new Map(j.skipped.map(([i, k, at]) => [i, { key: fromB64(k), at: at ?? Date.now() }])),
    createdAt: j.at ?? Date.now(),
    ...(j.ex?.length ? { excluded: [...j.ex] } : {}),
  };
}
