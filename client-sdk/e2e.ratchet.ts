// The Double Ratchet (Signal's specification) for one device pair: HKDF root chain, HMAC message chains, XChaCha20-Poly1305 with random nonces.
import sodium from 'libsodium-wrappers-sumo';
import { concat, equal, fromB64, randomBytes, readU32, toB64, u32, utf8 } from '../protocol/bytes.js';
import { hkdf, hmacSha256 } from './e2e.hkdf.js';
import { dh, generateX25519, type X25519KeyPair } from '../protocol/keys.js';
import { ParleyError } from './http.js';

/** Most message keys one message may make us skip in one chain (Signal's MAX_SKIP). */
export const MAX_SKIP = 1000;
/** Most skipped message keys kept per session; beyond it the oldest are forgotten. */
export const MAX_SKIPPED_KEYS = 2000;
/** Earlier remote ratchet keys remembered, so a replay from an old chain is told apart from a forgery. */
const MAX_PREVIOUS_REMOTES = 20;
/** A skipped message key older than this is forgotten: a message that late is undecryptable. */
export const SKIPPED_KEY_MAX_AGE_MS = 14 * 86_400_000;

/** dh (32) ‖ pn (uint32 BE) ‖ n (uint32 BE). */
export const HEADER_BYTES = 40;
/**
 * Each ciphertext starts with a random 24-byte XChaCha20 nonce. Nonces are not derived from
 * the message key: a state rolled back (a restored backup, a lost write) would derive the same
 * key again, and with a derived nonce the same keystream for a different plaintext.
 */
export const NONCE_BYTES = 24;
const TAG_BYTES = 16;
/** The shortest ciphertext after the header: nonce and tag. */
export const MIN_CIPHERTEXT_BYTES = NONCE_BYTES + TAG_BYTES;
const ROOT_INFO = utf8('Parley ratchet v1');
const MESSAGE_INFO = utf8('Parley message keys v1');
const ZERO_SALT = new Uint8Array(32);

/**
 * The state of one session. Treated as immutable: encrypt and decrypt return a new state and
 * never modify the one they were given (so a failed decryption leaves the caller's state as it was).
 */
export interface RatchetState {
  rootKey: Uint8Array;
  /** Our current ratchet key pair (DHs). */
  sending: X25519KeyPair;
  /** Their current ratchet public key (DHr); null until we receive (responder). */
  remote: Uint8Array | null;
  sendChain: Uint8Array | null;
  recvChain: Uint8Array | null;
  ns: number;
  nr: number;
  pn: number;
  /** `${base64(dh)}|${n}` → message key and when it was skipped (ms), oldest first. */
  skipped: Map<string, SkippedKey>;
  /** Earlier values of `remote` (base64), newest last. */
  previousRemotes: string[];
  /** The session's associated data: both identity keys, initiator's first. */
  ad: Uint8Array;
}

export interface SkippedKey {
  key: Uint8Array;
  at: number;
}

export interface RatchetHeader {
  dh: Uint8Array;
  pn: number;
  n: number;
}

function kdfRoot(rootKey: Uint8Array, dhOut: Uint8Array): [Uint8Array, Uint8Array] {
  const out = hkdf(dhOut, rootKey, ROOT_INFO, 64);
  return [out.slice(0, 32), out.slice(32)];
}

function kdfChain(chainKey: Uint8Array): [next: Uint8Array, messageKey: Uint8Array] {
  return [hmacSha256(chainKey, new Uint8Array([2])), hmacSha256(chainKey, new Uint8Array([1]))];
}

/** nonce (24, random) ‖ XChaCha20-Poly1305 ciphertext, under a key derived from the message key. */
function seal(messageKey: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const key = hkdf(messageKey, ZERO_SALT, MESSAGE_INFO, 32);
  const nonce = randomBytes(NONCE_BYTES);
  return concat(nonce, sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, null, nonce, key));
}

function open(messageKey: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array {
  const key = hkdf(messageKey, ZERO_SALT, MESSAGE_INFO, 32);
  try {
    return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, sealed.subarray(NONCE_BYTES), ad, sealed.subarray(0, NONCE_BYTES), key);
  } catch {
    throw new ParleyError('auth_failed', 'message failed authentication');
  }
}

function copy(s: RatchetState): RatchetState {
  // Byte arrays are never modified in place, so sharing them is safe.
  return { ...s, skipped: new Map(s.skipped), previousRemotes: [...s.previousRemotes] };
}

const skippedId = (dhPub: Uint8Array, n: number) => `${toB64(dhPub)}|${n}`;

/** Alice, after X3DH: she knows Bob's signed prekey, which is his first ratchet key. */
export function initInitiator(sharedKey: Uint8Array, ad: Uint8Array, remoteRatchetKey: Uint8Array): RatchetState {
  const sending = generateX25519();
  const [rootKey, sendChain] = kdfRoot(sharedKey, dh(sending.secretKey, remoteRatchetKey));
  return { rootKey, sending, remote: remoteRatchetKey, sendChain, recvChain: null, ns: 0, nr: 0, pn: 0, skipped: new Map(), previousRemotes: [], ad };
}

/** Bob, after X3DH: his signed prekey pair is his first ratchet key pair; he can send once he has received. */
export function initResponder(sharedKey: Uint8Array, ad: Uint8Array, ourRatchetKeyPair: X25519KeyPair): RatchetState {
  return { rootKey: sharedKey, sending: ourRatchetKeyPair, remote: null, sendChain: null, recvChain: null, ns: 0, nr: 0, pn: 0, skipped: new Map(), previousRemotes: [], ad };
}

/**
 * Encrypts one message: returns `prefix ‖ header ‖ ciphertext` and the advanced state. The
 * AEAD's associated data is the session's `ad` followed by everything before the ciphertext,
 * so the prefix (e.g. X3DH fields) and the header are authenticated too.
 */
export function ratchetEncrypt(state: RatchetState, plaintext: Uint8Array, prefix: Uint8Array = new Uint8Array(0)): { state: RatchetState; message: Uint8Array } {
  if (!state.sendChain) throw new ParleyError('no_session', 'this session cannot send before it has received');
  const s = copy(state);
  const [next, messageKey] = kdfChain(state.sendChain);
  s.sendChain = next;
  const head = concat(prefix, s.sending.publicKey, u32(s.pn), u32(s.ns));
  s.ns += 1;
  return { state: s, message: concat(head, seal(messageKey, plaintext, concat(s.ad, head))) };
}

/** Reads the header that starts at `at`; throws `malformed` when the message is too short. */
export function readHeader(message: Uint8Array, at: number): RatchetHeader {
  if (message.length < at + HEADER_BYTES + MIN_CIPHERTEXT_BYTES) throw new ParleyError('malformed', 'message too short');
  return { dh: message.slice(at, at + 32), pn: readU32(message, at + 32), n: readU32(message, at + 36) };
}

/**
 * Decrypts a message whose ratchet header starts at byte `at` (bytes before it are an
 * authenticated prefix). Works on a copy: on any failure it throws and the given state is
 * untouched. Errors (`ParleyError.code`): `malformed`; `too_many_skipped` (decided from the
 * header alone, before any key is derived); `duplicate` (a replay or a key already used or
 * evicted); `auth_failed` (tampered, or not for this session); `invalid_key` (low-order ratchet key).
 * Skipped keys older than SKIPPED_KEY_MAX_AGE_MS (at `now`) are forgotten first.
 */
export function ratchetDecrypt(state: RatchetState, message: Uint8Array, at = 0, now = Date.now()): { state: RatchetState; plaintext: Uint8Array } {
  const h = readHeader(message, at);
  const ad = concat(state.ad, message.subarray(0, at + HEADER_BYTES));
  const ciphertext = message.subarray(at + HEADER_BYTES);

  const id = skippedId(h.dh, h.n);
  const stored = state.skipped.get(id);
  if (stored && now - stored.at <= SKIPPED_KEY_MAX_AGE_MS) {
    const plaintext = open(stored.key, ciphertext, ad);
    const s = copy(state);
    s.skipped.delete(id);
    expireSkipped(s, now);
    return { state: s, plaintext };
  }

  const sameChain = state.remote !== null && equal(h.dh, state.remote);
  // Our first ratchet key for the peer (their signed prekey, as initiator) has no receiving
  // chain: nothing the peer sends names it. Without this check the missing chain key would
  // act as an empty HMAC key, and anyone could forge messages from public values alone.
  if (sameChain && !state.recvChain) throw new ParleyError('auth_failed', 'no receiving chain for this ratchet key');
  if (sameChain) {
    if (h.n < state.nr) throw new ParleyError('duplicate', 'message key already used');
    if (h.n - state.nr > MAX_SKIP) throw new ParleyError('too_many_skipped', 'message counter too far ahead');
  } else {
    if (state.previousRemotes.includes(toB64(h.dh))) throw new ParleyError('duplicate', 'message from a finished chain, key already used');
    if (state.recvChain && h.pn > state.nr && h.pn - state.nr > MAX_SKIP) throw new ParleyError('too_many_skipped', 'previous chain length too far ahead');
    if (h.n > MAX_SKIP) throw new ParleyError('too_many_skipped', 'message counter too far ahead');
  }

  const s = copy(state);
  expireSkipped(s, now);
  if (!sameChain) {
    skipTo(s, h.pn, now);
    stepDh(s, h.dh);
  }
  skipTo(s, h.n, now);
  const [next, messageKey] = kdfChain(s.recvChain!);
  s.recvChain = next;
  s.nr += 1;
  return { state: s, plaintext: open(messageKey, ciphertext, ad) };
}

/** Forgets skipped keys older than SKIPPED_KEY_MAX_AGE_MS (they are kept oldest first). */
function expireSkipped(s: RatchetState, now: number): void {
  for (const [id, k] of s.skipped) {
    if (now - k.at <= SKIPPED_KEY_MAX_AGE_MS) break;
    s.skipped.delete(id);
  }
}

function skipTo(s: RatchetState, until: number, now: number): void {
  if (!s.recvChain || !s.remote) return;
  while (s.nr < until) {
    const [next, messageKey] = kdfChain(s.recvChain);
    s.recvChain = next;
    s.skipped.set(skippedId(s.remote, s.nr), { key: messageKey, at: now });
    s.nr += 1;
    if (s.skipped.size > MAX_SKIPPED_KEYS) s.skipped.delete(s.skipped.keys().next().value!);
  }
}

function stepDh(s: RatchetState, remote: Uint8Array): void {
  if (s.remote) {
    s.previousRemotes.push(toB64(s.remote));
    if (s.previousRemotes.length > MAX_PREVIOUS_REMOTES) s.previousRemotes.shift();
  }
  s.pn = s.ns;
  s.ns = 0;
  s.nr = 0;
  s.remote = remote;
  [s.rootKey, s.recvChain] = kdfRoot(s.rootKey, dh(s.sending.secretKey, remote));
  s.sending = generateX25519();
  [s.rootKey, s.sendChain] = kdfRoot(s.rootKey, dh(s.sending.secretKey, remote));
}

/** The state as JSON-safe values (keys in base64): what a key store persists. */
export interface RatchetJson {
  rk: string;
  dhs: [pub: string, sec: string];
  dhr: string | null;
  cks: string | null;
  ckr: string | null;
  ns: number;
  nr: number;
  pn: number;
  /** [id, key, skipped at] (states saved before expiry existed have no time: they count as skipped when loaded). */
  skipped: [id: string, key: string, at?: number][];
  prev: string[];
  ad: string;
}

const b64OrNull = (b: Uint8Array | null) => (b ? toB64(b) : null);
const bytesOrNull = (s: string | null) => (s === null ? null : fromB64(s));

export function ratchetToJson(s: RatchetState): RatchetJson {
  return {
    rk: toB64(s.rootKey),
    dhs: [toB64(s.sending.publicKey), toB64(s.sending.secretKey)],
    dhr: b64OrNull(s.remote),
    cks: b64OrNull(s.sendChain),
    ckr: b64OrNull(s.recvChain),
    ns: s.ns,
    nr: s.nr,
    pn: s.pn,
    skipped: [...s.skipped].map(([id, k]) => [id, toB64(k.key), k.at]),
    prev: [...s.previousRemotes],
    ad: toB64(s.ad),
  };
}

export function ratchetFromJson(j: RatchetJson): RatchetState {
  return {
    rootKey: fromB64(j.rk),
    sending: { publicKey: fromB64(j.dhs[0]), secretKey: fromB64(j.dhs[1]) },
    remote: bytesOrNull(j.dhr),
    sendChain: bytesOrNull(j.cks),
    recvChain: bytesOrNull(j.ckr),
    ns: j.ns,
    nr: j.nr,
    pn: j.pn,
    skipped: new Map(j.skipped.map(([id, k, at]) => [id, { key: fromB64(k), at: at ?? Date.now() }])),
    previousRemotes: [...j.prev],
    ad: fromB64(j.ad),
  };
}
