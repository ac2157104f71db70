// Byte helpers shared by the end-to-end encryption modules: concatenation, big-endian integers, base64, comparison.
import sodium from 'libsodium-wrappers-sumo';

const enc = new TextEncoder();

/** Resolves once libsodium is initialised; every e2e function assumes it has been awaited. */
export async function sodiumReady(): Promise<void> {
  await sodium.ready;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function utf8(s: string): Uint8Array {
  return enc.encode(s);
}

/** 4 bytes, big-endian. */
export function u32(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`not a uint32: ${n}`);
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

export function readU32(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(at);
}

/** Standard base64 with padding (what the REST API and the wire bodies use). */
export function toB64(bytes: Uint8Array): string {
  return sodium.to_base64(bytes, sodium.base64_variants.ORIGINAL);
}

/** Decodes standard padded base64; throws on anything else. */
export function fromB64(s: string): Uint8Array {
  return sodium.from_base64(s, sodium.base64_variants.ORIGINAL);
}

/** Constant-time equality (lengths are not secret). */
export function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && sodium.memcmp(a, b);
}

/**
 * `n` random bytes from the platform's CSPRNG (Web Crypto, in Node and browsers alike).
 * libsodium's randombytes_buf reaches the same source through its WASM glue at about 70 µs a
 * call, more than the rest of a message's encryption; this costs a few µs.
 */
export function randomBytes(n: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

/** A random integer in [1, 2^31), for key ids that must not collide across stores. */
export function randomKeyId(): number {
  return 1 + (new DataView(randomBytes(4).buffer).getUint32(0) % (0x7fffffff - 1));
}
