// X3DH: agreement with and without a one-time prekey, bad signatures abort, wrong keys fail.
import { describe, expect, it } from 'vitest';
import { sodiumReady } from '../protocol/bytes.js';
import { generateIdentity, generateOneTimePrekeys, generateSignedPrekey, type PrekeyBundle } from '../protocol/keys.js';
import { ratchetDecrypt, ratchetEncrypt } from './e2e.ratchet.js';
import { parseBody, PREKEY_PREFIX_BYTES } from './e2e.wire.js';
import { x3dhInitiate, x3dhRespond } from './e2e.x3dh.js';
import { errorCode } from './e2e.test-support.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Alice's first (prekey) message to Bob, parsed: what the responder-side tests start from. */
function opened() {
  const alice = generateIdentity();
  const b = bob();
  const init = x3dhInitiate(alice, b.bundle, PARTIES);
  const first = ratchetEncrypt(init.state, enc.encode('hello'), init.prekeyPrefix);
  const parsed = parseBody(first.message);
  if (parsed.type !== 'prekey') throw new Error('expected a prekey message');
  return { alice, b, init, first, parsed };
}

function bob(withOneTime = true) {
  const identity = generateIdentity();
  const spk = generateSignedPrekey(identity, 0);
  const [otk] = generateOneTimePrekeys(1);
  const bundle: PrekeyBundle = {
    deviceId: 'bob-device',
    identityKey: identity.publicKey,
    signedPrekey: { id: spk.id, publicKey: spk.keyPair.publicKey, signature: spk.signature },
    oneTimePrekey: withOneTime ? { id: otk!.id, publicKey: otk!.keyPair.publicKey } : null,
  };
  return { identity, spk, otk: otk!, bundle };
}

const code = errorCode;
const PARTIES = { initiator: { userId: 'alice', deviceId: 'a1' }, responder: { userId: 'bob', deviceId: 'b1' } };

// Ready before the suites are collected: some build their keys at collection time.
await sodiumReady();

describe('X3DH', () => {
  for (const withOneTime of [true, false]) {
    it(`agrees on a session ${withOneTime ? 'with' : 'without'} a one-time prekey, and the responder can answer`, () => {
      const alice = generateIdentity();
      const b = bob(withOneTime);
      const init = x3dhInitiate(alice, b.bundle, PARTIES);
      const first = ratchetEncrypt(init.state, enc.encode('hello'), init.prekeyPrefix);
      const parsed = parseBody(first.message);
      expect(parsed.type).toBe('prekey');
      if (parsed.type !== 'prekey') return;
      expect(parsed.at).toBe(PREKEY_PREFIX_BYTES);
      expect(parsed.header.identityKey).toEqual(alice.publicKey);
      expect(parsed.header.signedPrekeyId).toBe(b.spk.id);
      expect(parsed.header.oneTimePrekeyId).toBe(withOneTime ? b.otk.id : 0);
      const bobState = x3dhRespond(b.identity, b.spk, withOneTime ? b.otk : null, parsed.header, PARTIES);
      const got = ratchetDecrypt(bobState, first.message, parsed.at);
      expect(dec.decode(got.plaintext)).toBe('hello');
      const reply = ratchetEncrypt(got.state, enc.encode('hi alice'));
      expect(dec.decode(ratchetDecrypt(first.state, reply.message).plaintext)).toBe('hi alice');
    });
  }

  it('aborts when the signed prekey signature does not verify', () => {
    const alice = generateIdentity();
    const b = bob();
    const tampered = b.bundle.signedPrekey.signature.slice();
    tampered[0]! ^= 1;
    expect(code(() => x3dhInitiate(alice, { ...b.bundle, signedPrekey: { ...b.bundle.signedPrekey, signature: tampered } }, PARTIES))).toBe('bad_signature');
    // Signed by another identity (a server substituting its own prekey):
    const mallory = generateIdentity();
    const fake = generateSignedPrekey(mallory, 0);
    const substituted = { id: fake.id, publicKey: fake.keyPair.publicKey, signature: fake.signature };
    expect(code(() => x3dhInitiate(alice, { ...b.bundle, signedPrekey: substituted }, PARTIES))).toBe('bad_signature');
    expect(code(() => x3dhInitiate(alice, { ...b.bundle, signedPrekey: { ...b.bundle.signedPrekey, id: b.spk.id + 1 } }, PARTIES))).toBe('bad_signature');
  });

  it('fails when the responder uses the wrong one-time prekey or identity', () => {
    const { b, first, parsed } = opened();
    const [other] = generateOneTimePrekeys(1);
    expect(code(() => ratchetDecrypt(x3dhRespond(b.identity, b.spk, other!, parsed.header, PARTIES), first.message, parsed.at))).toBe('auth_failed');
    expect(code(() => ratchetDecrypt(x3dhRespond(b.identity, b.spk, null, parsed.header, PARTIES), first.message, parsed.at))).toBe('auth_failed');
    expect(code(() => ratchetDecrypt(x3dhRespond(generateIdentity(), b.spk, b.otk, parsed.header, PARTIES), first.message, parsed.at))).toBe('auth_failed');
  });

  it('binds both users and devices into the session: a responder that believes another sender or recipient fails', () => {
    const { b, first, parsed } = opened();
    for (const wrong of [
      { ...PARTIES, initiator: { userId: 'mallory', deviceId: 'a1' } },
      { ...PARTIES, initiator: { userId: 'alice', deviceId: 'a2' } },
      { ...PARTIES, responder: { userId: 'carol', deviceId: 'b1' } },
      { ...PARTIES, responder: { userId: 'bob', deviceId: 'b2' } },
    ]) {
      expect(code(() => ratchetDecrypt(x3dhRespond(b.identity, b.spk, b.otk, parsed.header, wrong), first.message, parsed.at))).toBe('auth_failed');
    }
    expect(dec.decode(ratchetDecrypt(x3dhRespond(b.identity, b.spk, b.otk, parsed.header, PARTIES), first.message, parsed.at).plaintext)).toBe('hello');
  });

  it('refuses a prekey message whose identity is replaced or whose base key has low order', () => {
    const { b, first, parsed } = opened();
    const swapped = first.message.slice();
    swapped.set(generateIdentity().publicKey, 1);
    const p2 = parseBody(swapped);
    if (p2.type !== 'prekey') throw new Error('expected a prekey message');
    expect(code(() => ratchetDecrypt(x3dhRespond(b.identity, b.spk, b.otk, p2.header, PARTIES), swapped, p2.at))).toBe('auth_failed');
    expect(code(() => x3dhRespond(b.identity, b.spk, b.otk, { ...parsed.header, baseKey: new Uint8Array(32) }, PARTIES))).toBe('invalid_key');
    expect(code(() => x3dhRespond(b.identity, b.spk, b.otk, { ...parsed.header, identityKey: new Uint8Array(32) }, PARTIES))).toBe('invalid_key');
  });
});
