// A group's metadata key, shared by its members' devices, and the group name sealed under it: the server stores only opaque text.
import sodium from 'libsodium-wrappers-sumo';
import { concat, randomBytes, randomKeyId, readU32, u32, utf8 } from '../protocol/bytes.js';
import { ParleyError } from './http.js';

/** A group's metadata key: made by whoever created the group (or replaced it after a removal). */
export interface GroupMetaKey {
  id: number;
  key: Uint8Array;
  /** Seconds since the epoch: the newest key seals new names. */
  createdAt: number;
}

const VERSION = 1;
const NAME_CONTEXT = utf8('Parley group name v1');
/** A sealed name starts with this, so a client tells it from a name set in plaintext by another app. */
export const SEALED_NAME_PREFIX = 'pn1.';
const NONCE_BYTES = 24;
/** Names are padded to a multiple of this before sealing, so the sealed length says little. */
const NAME_PAD = 32;

export function newGroupMetaKey(now = Date.now()): GroupMetaKey {
  return { id: randomKeyId(), key: randomBytes(32), createdAt: Math.floor(now / 1000) };
}

const groupBytes = (groupId: string) => {
  const g = utf8(groupId);
  return concat(u32(g.length), g);
};

/**
 * The key as it travels to a member device, over the pairwise session (inner kind
 * GROUP_META): version ‖ len ‖ group id ‖ key id ‖ created at ‖ key (32). It names its group,
 * so a server cannot hand one group's key to another.
 */
export function encodeMetaKey(groupId: string, k: GroupMetaKey): Uint8Array {
  return concat(new Uint8Array([VERSION]), groupBytes(groupId), u32(k.id), u32(k.createdAt), k.key);
}

export function decodeMetaKey(bytes: Uint8Array): { groupId: string; key: GroupMetaKey } {
  const bad = () => new ParleyError('malformed', 'bad group metadata key');
  if (bytes.length < 5 || bytes[0] !== VERSION) throw bad();
  const len = readU32(bytes, 1);
  if (len > 256 || bytes.length !== 5 + len + 8 + 32) throw bad();
  const groupId = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(5, 5 + len));
  const at = 5 + len;
  return { groupId, key: { id: readU32(bytes, at), createdAt: readU32(bytes, at + 4), key: bytes.slice(at + 8, at + 40) } };
}

/**
 * A group name sealed for the group's members: "pn1." ‖ base64url(key id ‖ nonce ‖
 * XChaCha20-Poly1305 ciphertext of the name padded with 0x80 then zeros to a multiple of 32
 * bytes), whose associated data binds the group id (a name cannot be moved to another group).
 * @example sealGroupName(groupId, key, 'trip') // 'pn1.AAAB…'
 */
export function sealGroupName(groupId: string, k: GroupMetaKey, name: string): string {
  const nonce = randomBytes(NONCE_BYTES);
  const bytes = utf8(name);
  const padded = new Uint8Array(Math.ceil((bytes.length + 1) / NAME_PAD) * NAME_PAD);
  padded.set(bytes);
  padded[bytes.length] = 0x80; // ISO/IEC 7816-4 padding
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(padded, concat(NAME_CONTEXT, groupBytes(groupId), u32(k.id)), null, nonce, k.key);
  return SEALED_NAME_PREFIX + sodium.to_base64(concat(u32(k.id), nonce, ct), sodium.base64_variants.URLSAFE_NO_PADDING);
}

export function isSealedName(name: string): boolean {
  return name.startsWith(SEALED_NAME_PREFIX);
}

/** The id of the key a sealed name needs, or null when it is not a sealed name. */
export function sealedNameKeyId(name: string): number | null {
  if (!isSealedName(name)) return null;
  try {
    const bytes = sodium.from_base64(name.slice(SEALED_NAME_PREFIX.length), sodium.base64_variants.URLSAFE_NO_PADDING);
    return bytes.length >= 4 + NONCE_BYTES + 16 ? readU32(bytes, 0) : null;
  } catch {
    return null;
  }
}

/** The name, or throws `auth_failed` when it was not sealed with this key for this group. */
export function openGroupName(groupId: string, k: GroupMetaKey, sealed: string): string {
  try {
    const bytes = sodium.from_base64(sealed.slice(SEALED_NAME_PREFIX.length), sodium.base64_variants.URLSAFE_NO_PADDING);
    const plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      bytes.subarray(4 + NONCE_BYTES),
      concat(NAME_CONTEXT, groupBytes(groupId), u32(k.id)),
      bytes.subarray(4, 4 + NONCE_BYTES),
      k.key,
    );
    let end = plain.length - 1;
    while (end > 0 && plain[end] === 0) end--;
    if (plain[end] !== 0x80) throw new Error('bad padding');
    return new TextDecoder('utf-8', { fatal: true }).decode(plain.subarray(0, end));
  } catch {
    throw new ParleyError('auth_failed', 'the group name was not sealed for this group');
  }
}
