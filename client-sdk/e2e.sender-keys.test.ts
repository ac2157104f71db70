// Sender Keys: distribution, signatures, out-of-order and replays, and rotation locking out a removed member.
import sodium from 'libsodium-wrappers-sumo';
import { describe, expect, it } from 'vitest';
import { concat, sodiumReady, u32, utf8 } from '../protocol/bytes.js';
import {
  createSenderKey,
  receiveSenderKey,
  SENDER_KEY_MAX_SKIP,
  senderKeyDecrypt,
  senderKeyDistribution,
  senderKeyEncrypt,
  senderKeyFromJson,
  type SenderKeyState,
  senderKeyToJson,
} from './e2e.sender-keys.js';
import { errorCode } from './e2e.test-support.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

const code = errorCode;

/** A sender and the receivers' copies of its current sender key. */
function group(members: string[]) {
  let own = createSenderKey('group-1');
  const copies = new Map<string, SenderKeyState>();
  const distribute = (to: string[]) => {
    for (const m of to) copies.set(m, receiveSenderKey(senderKeyDistribution(own)));
  };
  distribute(members);
  const send = (text: string) => {
    const r = senderKeyEncrypt(own, enc.encode(text));
    own = r.state;
    return r.message;
  };
  const read = (member: string, message: Uint8Array) => {
    const r = senderKeyDecrypt(copies.get(member)!, message);
    copies.set(member, r.state);
    return dec.decode(r.plaintext);
  };
  const rotate = (remaining: string[]) => {
    own = createSenderKey('group-1');
    distribute(remaining);
  };
  return { send, read, rotate, copies, own: () => own };
}

// Ready before the suites are collected: some build their keys at collection time.
await sodiumReady();

describe('Sender Keys', () => {
  it('lets every member who got the distribution read, and hides the text', () => {
    const g = group(['bob', 'carol']);
    const m = g.send('hello group');
    expect(Buffer.from(m).includes(Buffer.from('hello group'))).toBe(false);
    expect(g.read('bob', m)).toBe('hello group');
    expect(g.read('carol', m)).toBe('hello group');
  });

  it('distributes the chain at its current iteration: a late joiner reads only what follows', () => {
    const g = group(['bob']);
    const before = g.send('before carol');
    g.copies.set('carol', receiveSenderKey(senderKeyDistribution(g.own())));
    expect(code(() => g.read('carol', before))).toBe('duplicate');
    expect(g.read('carol', g.send('after carol'))).toBe('after carol');
    expect(g.read('bob', before)).toBe('before carol');
  });

  it('signs every message: a member who knows the chain key still cannot forge one', () => {
    const g = group(['bob', 'mallory']);
    const real = g.send('real');
    // Mallory holds the chain key and builds a message with it, signed with her own key.
    const mallorys = g.copies.get('mallory')!;
    const forged = senderKeyEncrypt({ ...mallorys, signingSecret: sodium.crypto_sign_keypair().privateKey }, enc.encode('forged'));
    expect(code(() => senderKeyDecrypt(g.copies.get('bob')!, forged.message))).toBe('bad_signature');
    const flipped = real.slice();
    flipped[12]! ^= 1; // ciphertext
    expect(code(() => senderKeyDecrypt(g.copies.get('bob')!, flipped))).toBe('bad_signature');
    const badSig = real.slice();
    badSig[badSig.length - 1]! ^= 1;
    expect(code(() => senderKeyDecrypt(g.copies.get('bob')!, badSig))).toBe('bad_signature');
    expect(g.read('bob', real)).toBe('real');
  });

  it('binds the group: the same key distributed under another group id does not verify', () => {
    const g = group(['bob']);
    const m = g.send('for group-1 only');
    const elsewhere = { ...g.copies.get('bob')!, groupId: 'group-2' };
    expect(code(() => senderKeyDecrypt(elsewhere, m))).toBe('bad_signature');
  });

  it('handles out-of-order messages, rejects replays and counters beyond the skip cap', () => {
    const g = group(['bob']);
    const ms = [0, 1, 2, 3].map((i) => g.send(`m${i}`));
    expect(g.read('bob', ms[3]!)).toBe('m3');
    expect(g.read('bob', ms[1]!)).toBe('m1');
    expect(code(() => g.read('bob', ms[3]!))).toBe('duplicate');
    expect(code(() => g.read('bob', ms[1]!))).toBe('duplicate');
    expect(g.read('bob', ms[0]!)).toBe('m0');
    // A validly signed message whose iteration is far ahead: refused before deriving keys.
    const own = g.own();
    const far = senderKeyEncrypt({ ...own, iteration: own.iteration + SENDER_KEY_MAX_SKIP + 1 }, enc.encode('far')).message;
    const before = JSON.stringify(senderKeyToJson(g.copies.get('bob')!));
    expect(code(() => g.read('bob', far))).toBe('too_many_skipped');
    expect(JSON.stringify(senderKeyToJson(g.copies.get('bob')!))).toBe(before);
    expect(g.read('bob', ms[2]!)).toBe('m2');
  });

  it('after a member is removed and the sender rotates, the removed member reads nothing that follows', () => {
    const g = group(['bob', 'carol', 'dave']);
    expect(g.read('dave', g.send('while dave is in'))).toBe('while dave is in');
    g.rotate(['bob', 'carol']); // dave removed: the new key goes to the remaining members only
    const after = g.send('after dave left');
    expect(g.read('bob', after)).toBe('after dave left');
    expect(g.read('carol', after)).toBe('after dave left');
    expect(code(() => senderKeyDecrypt(g.copies.get('dave')!, after))).toBe('unknown_sender_key');
    // Even pretending the key id matched, dave's old chain and signing key do not open it.
    const daves = g.copies.get('dave')!;
    const relabelled = after.slice();
    relabelled.set(u32(daves.keyId), 1);
    expect(['bad_signature', 'auth_failed']).toContain(code(() => senderKeyDecrypt(daves, relabelled)));
  });

  it('rejects malformed distributions and survives serialization', () => {
    const own = createSenderKey('g');
    const d = senderKeyDistribution(own);
    expect(code(() => receiveSenderKey(d.subarray(0, d.length - 1)))).toBe('malformed');
    expect(code(() => receiveSenderKey(concat(new Uint8Array([9]), d.subarray(1))))).toBe('malformed');
    const copy = senderKeyFromJson(JSON.parse(JSON.stringify(senderKeyToJson(receiveSenderKey(d)))));
    const r = senderKeyEncrypt(senderKeyFromJson(JSON.parse(JSON.stringify(senderKeyToJson(own)))), utf8('x'));
    expect(dec.decode(senderKeyDecrypt(copy, r.message).plaintext)).toBe('x');
    expect(code(() => senderKeyEncrypt(copy, utf8('receivers cannot send')))).toBe('invalid');
  });
});
