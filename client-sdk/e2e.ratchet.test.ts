// Double Ratchet behaviour: out-of-order, skip cap before any derivation, capped skipped keys, tampering and replays.
import sodium from 'libsodium-wrappers-sumo';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readU32, sodiumReady, u32 } from '../protocol/bytes.js';
import { generateX25519 } from '../protocol/keys.js';
import {
  HEADER_BYTES,
  initInitiator,
  initResponder,
  MAX_SKIP,
  MAX_SKIPPED_KEYS,
  ratchetDecrypt,
  ratchetEncrypt,
  ratchetFromJson,
  type RatchetState,
  ratchetToJson,
} from './e2e.ratchet.js';
import { errorCode } from './e2e.test-support.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Two ends of one session, each holding its current state like a key store would. */
function pair() {
  const shared = sodium.randombytes_buf(32);
  const ad = sodium.randombytes_buf(64);
  const bobSpk = generateX25519();
  const ends = { alice: initInitiator(shared, ad, bobSpk.publicKey), bob: initResponder(shared, ad, bobSpk) };
  const send = (from: 'alice' | 'bob', text: string, prefix?: Uint8Array) => {
    const r = ratchetEncrypt(ends[from], enc.encode(text), prefix);
    ends[from] = r.state;
    return r.message;
  };
  const receive = (to: 'alice' | 'bob', message: Uint8Array, at = 0) => {
    const r = ratchetDecrypt(ends[to], message, at);
    ends[to] = r.state;
    return dec.decode(r.plaintext);
  };
  return { ends, send, receive };
}

const snapshot = (s: RatchetState) => JSON.stringify(ratchetToJson(s));
const code = errorCode;

// Ready before the suites are collected: some build their keys at collection time.
await sodiumReady();
afterEach(() => vi.restoreAllMocks());

describe('Double Ratchet', () => {
  it('carries a conversation in both directions, with a DH step at each turn', () => {
    const p = pair();
    for (let turn = 0; turn < 5; turn++) {
      for (let i = 0; i < 3; i++) expect(p.receive('bob', p.send('alice', `a${turn}.${i}`))).toBe(`a${turn}.${i}`);
      const before = p.ends.alice.remote;
      for (let i = 0; i < 2; i++) expect(p.receive('alice', p.send('bob', `b${turn}.${i}`))).toBe(`b${turn}.${i}`);
      expect(p.ends.alice.remote).not.toEqual(before); // Bob's new ratchet key reached Alice
    }
  });

  it('never repeats a ciphertext, and a message does not contain its plaintext', () => {
    const p = pair();
    const a = p.send('alice', 'same text');
    const b = p.send('alice', 'same text');
    expect(a).not.toEqual(b);
    expect(Buffer.from(a).includes(Buffer.from('same text'))).toBe(false);
  });

  it('decrypts out-of-order messages within a chain and across DH steps', () => {
    const p = pair();
    const a = [0, 1, 2, 3].map((i) => p.send('alice', `a${i}`));
    expect(p.receive('bob', a[2]!)).toBe('a2');
    expect(p.receive('bob', a[0]!)).toBe('a0');
    const b0 = p.send('bob', 'b0');
    expect(p.receive('alice', b0)).toBe('b0');
    const late = [p.send('alice', 'c0'), p.send('alice', 'c1')];
    // Bob gets the new chain before the rest of the old one.
    expect(p.receive('bob', late[1]!)).toBe('c1');
    expect(p.receive('bob', a[3]!)).toBe('a3');
    expect(p.receive('bob', late[0]!)).toBe('c0');
    expect(p.receive('bob', a[1]!)).toBe('a1');
    expect(p.ends.bob.skipped.size).toBe(0);
  });

  it('rejects a counter beyond MAX_SKIP before deriving any key, and keeps the state', () => {
    const p = pair();
    p.receive('bob', p.send('alice', 'first'));
    const message = p.send('alice', 'second');
    const far = message.slice();
    far.set(u32(MAX_SKIP + 2), 36); // n, in the same chain: MAX_SKIP + 1 keys would be skipped
    const before = snapshot(p.ends.bob);
    const hmac = vi.spyOn(sodium as unknown as { crypto_auth_hmacsha256_init: () => number }, 'crypto_auth_hmacsha256_init');
    const x25519 = vi.spyOn(sodium, 'crypto_scalarmult');
    expect(code(() => ratchetDecrypt(p.ends.bob, far))).toBe('too_many_skipped');
    // A new chain (unknown DH key) whose counter is too far ahead: refused before the DH step.
    const newChain = far.slice();
    newChain.set(generateX25519().publicKey, 0);
    expect(code(() => ratchetDecrypt(p.ends.bob, newChain))).toBe('too_many_skipped');
    const longPrevious = message.slice();
    longPrevious.set(generateX25519().publicKey, 0);
    longPrevious.set(u32(MAX_SKIP + 5), 32); // pn
    expect(code(() => ratchetDecrypt(p.ends.bob, longPrevious))).toBe('too_many_skipped');
    expect(hmac).not.toHaveBeenCalled();
    expect(x25519).not.toHaveBeenCalled();
    expect(snapshot(p.ends.bob)).toBe(before);
    // The spies do see key derivation: a real message (HMAC) and a real DH step (X25519) call them.
    ratchetDecrypt(p.ends.bob, message);
    expect(hmac).toHaveBeenCalled();
    const reply = ratchetEncrypt(p.ends.bob, enc.encode('reply')).message;
    x25519.mockClear();
    ratchetDecrypt(p.ends.alice, reply);
    expect(x25519).toHaveBeenCalled();
    vi.restoreAllMocks();
    expect(p.receive('bob', message)).toBe('second');
  });

  it('accepts exactly MAX_SKIP skipped keys', () => {
    const p = pair();
    for (let i = 0; i < MAX_SKIP; i++) p.send('alice', `skipped ${i}`);
    expect(p.receive('bob', p.send('alice', 'last'))).toBe('last');
    expect(p.ends.bob.skipped.size).toBe(MAX_SKIP);
  });

  it('caps the skipped-key store, evicting the oldest keys first', () => {
    const p = pair();
    const oldest = p.send('alice', 'oldest');
    for (let i = 0; i < 999; i++) p.send('alice', 'x');
    p.receive('bob', p.send('alice', 'chain 1 end')); // 1000 skipped
    p.receive('alice', p.send('bob', 'turn'));
    const middle = p.send('alice', 'middle');
    for (let i = 0; i < 999; i++) p.send('alice', 'x');
    p.receive('bob', p.send('alice', 'chain 2 end')); // 2000 skipped
    p.receive('alice', p.send('bob', 'turn'));
    for (let i = 0; i < 10; i++) p.send('alice', 'x');
    p.receive('bob', p.send('alice', 'chain 3 end')); // 10 more: the 10 oldest are evicted
    expect(p.ends.bob.skipped.size).toBe(MAX_SKIPPED_KEYS);
    expect(code(() => ratchetDecrypt(p.ends.bob, oldest))).toBe('duplicate');
    expect(p.receive('bob', middle)).toBe('middle');
  });

  it('rejects a tampered ciphertext or header without changing the state', () => {
    const p = pair();
    p.receive('bob', p.send('alice', 'hello'));
    p.receive('alice', p.send('bob', 'hi'));
    const prefix = new Uint8Array([2, 7, 7, 7]);
    const message = p.send('alice', 'attack at dawn', prefix);
    const before = snapshot(p.ends.bob);
    // Every byte: the authenticated prefix, the header (dh, pn, n) and the ciphertext.
    for (let i = 0; i < message.length; i++) {
      const t = message.slice();
      t[i]! ^= 0x01;
      expect(['auth_failed', 'too_many_skipped', 'duplicate', 'invalid_key']).toContain(code(() => ratchetDecrypt(p.ends.bob, t, prefix.length)));
      expect(snapshot(p.ends.bob)).toBe(before);
    }
    expect(code(() => ratchetDecrypt(p.ends.bob, message.subarray(0, prefix.length + HEADER_BYTES + 15), prefix.length))).toBe('malformed');
    expect(p.receive('bob', message, prefix.length)).toBe('attack at dawn');
  });

  it('rejects replays, in the current chain, from a skipped key, and from an earlier chain', () => {
    const p = pair();
    const m0 = p.send('alice', 'm0');
    const m1 = p.send('alice', 'm1');
    p.receive('bob', m1);
    p.receive('bob', m0); // used a skipped key
    expect(code(() => ratchetDecrypt(p.ends.bob, m0))).toBe('duplicate');
    expect(code(() => ratchetDecrypt(p.ends.bob, m1))).toBe('duplicate');
    p.receive('alice', p.send('bob', 'reply'));
    p.receive('bob', p.send('alice', 'next chain'));
    expect(code(() => ratchetDecrypt(p.ends.bob, m1))).toBe('duplicate');
    expect(readU32(m1, 36)).toBe(1);
  });

  it('binds the associated data: another session with the same keys but other identities fails', () => {
    const shared = sodium.randombytes_buf(32);
    const spk = generateX25519();
    const alice = initInitiator(shared, new Uint8Array(64).fill(1), spk.publicKey);
    const bob = initResponder(shared, new Uint8Array(64).fill(2), spk);
    const { message } = ratchetEncrypt(alice, enc.encode('hi'));
    expect(code(() => ratchetDecrypt(bob, message))).toBe('auth_failed');
  });

  it('refuses to send from a responder that has not received yet', () => {
    const bob = initResponder(sodium.randombytes_buf(32), new Uint8Array(64), generateX25519());
    expect(code(() => ratchetEncrypt(bob, enc.encode('too early')))).toBe('no_session');
  });

  it('survives serialization at any point', () => {
    const p = pair();
    const skippedMessage = p.send('alice', 'skipped');
    p.receive('bob', p.send('alice', 'seen'));
    p.ends.bob = ratchetFromJson(JSON.parse(JSON.stringify(ratchetToJson(p.ends.bob))));
    p.ends.alice = ratchetFromJson(JSON.parse(JSON.stringify(ratchetToJson(p.ends.alice))));
    expect(p.receive('bob', skippedMessage)).toBe('skipped');
    expect(p.receive('alice', p.send('bob', 'after restore'))).toBe('after restore');
    expect(p.receive('bob', p.send('alice', 'and back'))).toBe('and back');
  });
});
