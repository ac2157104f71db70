// The server as the attacker: forging from public values, relabelling group senders, ghost and replaced devices, withheld removals, misbinding keys, verified contacts.
import { createHmac } from 'node:crypto';
import sodium from 'libsodium-wrappers-sumo';
import { describe, expect, it } from 'vitest';
import { concat, fromB64, sodiumReady, toB64, u32, utf8 } from '../protocol/bytes.js';
import { hkdf } from './e2e.hkdf.js';
import { generateIdentity } from '../protocol/keys.js';
import { encodeMetaKey, newGroupMetaKey } from './e2e.group-meta.js';
import { vouchFor } from '../protocol/trust.js';
import { sessionAd } from './e2e.x3dh.js';
import { INNER, packInner } from './e2e.wire.js';
import { code, World } from './e2e.world.test-support.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

await sodiumReady();

describe('a malicious server against the SDK', () => {
  it('cannot forge messages on a session the peer has not answered yet, from public values alone', async () => {
    const w = new World();
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    await w.send(a, 'bob', 'hi'); // Alice's session to b1: Bob's signed prekey is its ratchet key, with no receiving chain
    // Everything below is public: Bob's signed prekey, both identity keys, the ids.
    const bobSpk = fromB64(w.published.get('b1')!.spk!.publicKey);
    const header = concat(bobSpk, u32(0), u32(0));
    // With no chain key, HMAC(null) would be HMAC with an empty key: a constant anyone computes.
    const messageKey = new Uint8Array(createHmac('sha256', Buffer.alloc(0)).update(Buffer.from([1])).digest());
    const key = hkdf(messageKey, new Uint8Array(32), utf8('Parley message keys v1'), 32);
    const nonce = sodium.randombytes_buf(24);
    const ad = concat(
      sessionAd(a.identity.publicKey, b.identity.publicKey, { initiator: { userId: 'alice', deviceId: 'a1' }, responder: { userId: 'bob', deviceId: 'b1' } }),
      new Uint8Array([1]),
      header,
    );
    const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(packInner(INNER.CONTENT, enc.encode('{"v":1,"text":"forged"}')), ad, null, nonce, key);
    const forged = toB64(concat(new Uint8Array([1]), header, nonce, ct));
    expect(await code(a.sessions.decrypt('bob', 'b1', forged))).toBe('auth_failed');
    // The real session still works.
    expect(await w.read(a, b, (await w.send(b, 'alice', 'real')).get('a1')!)).toBe('real');
  });

  it("tells the app a group message's real sender: a message relabelled to another member is refused", async () => {
    const w = new World();
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    await w.addDevice('carol', 'c1');
    const [p] = await b.sessions.encryptForDevices([{ userId: 'alice', devices: w.deviceList('alice') }], INNER.SENDER_KEY, await b.sessions.senderKeyDistribution('g1'));
    expect(await a.sessions.decrypt('bob', 'b1', p!.body, 'g1')).toMatchObject({ kind: 'sender_key', groupId: 'g1' });
    const m = await b.sessions.groupEncrypt('g1', enc.encode('from bob'));
    expect(await code(a.sessions.groupDecrypt('g1', 'b1', m, 'carol'))).toBe('auth_failed'); // relabelled user
    expect(await code(a.sessions.groupDecrypt('g1', 'c1', m, 'carol'))).toBe('auth_failed'); // relabelled device: no key of carol's made it
    expect(dec.decode(await a.sessions.groupDecrypt('g1', 'b1', m, 'bob'))).toBe('from bob');
  });

  it('refuses a sender key distribution that names another group than the message carrying it', async () => {
    const w = new World();
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    const [p] = await b.sessions.encryptForDevices([{ userId: 'alice', devices: w.deviceList('alice') }], INNER.SENDER_KEY, await b.sessions.senderKeyDistribution('other'));
    expect(await code(a.sessions.decrypt('bob', 'b1', p!.body, 'g1'))).toBe('auth_failed');
    expect(await a.sessions.store.senderKeys('other', 'b1')).toEqual([]);
  });

  it('refuses a group name key the server moves to another group', async () => {
    const w = new World();
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    const key = newGroupMetaKey();
    const [p] = await a.sessions.encryptForDevices([{ userId: 'bob', devices: w.deviceList('bob') }], INNER.GROUP_META, encodeMetaKey('g1', key));
    expect(await code(b.sessions.decrypt('alice', 'a1', p!.body, 'g2'))).toBe('auth_failed'); // attached to g2's system message
    expect(await b.sessions.groupMetaKey('g2')).toBeNull();
    expect(await b.sessions.groupMetaKey('g1')).toBeNull();
  });

  it('encrypts nothing to a ghost device the server adds, accepts nothing from it, and tells the user', async () => {
    const w = new World();
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    expect(await w.read(b, a, (await w.send(a, 'bob', 'first')).get('b1')!)).toBe('first'); // Alice now trusts b1
    // The server adds devices to Bob's list: unvouched, self-vouched, and vouched with a key it made.
    const ghost = generateIdentity();
    const fakeVoucher = generateIdentity();
    w.addListed('bob', 'gx', toB64(ghost.publicKey));
    w.addListed('bob', 'gy', toB64(ghost.publicKey), { by: 'gy', signature: vouchFor(ghost, 'bob', 'gy', ghost.publicKey) });
    w.addListed('bob', 'gz', toB64(ghost.publicKey), { by: 'b1', signature: vouchFor(fakeVoucher, 'bob', 'gz', ghost.publicKey) });
    w.published.set('gx', w.published.get('b1')!); // even with usable prekeys
    const bodies = await w.send(a, 'bob', 'second');
    for (const g of ['gx', 'gy', 'gz']) expect(fromB64(bodies.get(g)!)).toEqual(new Uint8Array([0, 3])); // empty: untrusted
    expect(a.events.untrusted.map((e) => e.deviceId).sort()).toEqual(['gx', 'gy', 'gz']);
    expect(await w.read(b, a, bodies.get('b1')!)).toBe('second');
    // Bob's own copies do not go to a ghost in his own list either.
    const own = await w.send(b, 'alice', 'reply');
    expect(fromB64(own.get('gx')!)).toEqual(new Uint8Array([0, 3]));
    // A message "from Bob" sent by the ghost's device is refused.
    const mallory = await w.addDevice('mallory', 'm1');
    const fromGhost = (await w.send(mallory, 'alice', 'I am bob')).get('a1')!;
    expect(await code(a.sessions.decrypt('bob', 'gx', fromGhost))).toBe('untrusted_device');
  });

  it('a device logged in with the password gets nothing until another device of the user approves it; then contacts are told first', async () => {
    const w = new World();
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    await w.read(b, a, (await w.send(a, 'bob', 'first')).get('b1')!);
    const b2 = await w.addDevice('bob', 'b2', { vouch: 'none' }); // whoever has Bob's password
    expect(fromB64((await w.send(a, 'bob', 'not for b2')).get('b2')!)).toEqual(new Uint8Array([0, 3]));
    expect((await b.trust.pending()).map((d) => d.id)).toEqual(['b2']);
    expect(b.events.pending).toEqual([{ userId: 'bob', deviceId: 'b2' }]);
    await b.trust.approve('b2');
    const bodies = await w.send(a, 'bob', 'now for b2 too');
    expect(a.events.added).toEqual([{ userId: 'bob', deviceId: 'b2' }]);
    expect(await w.read(b2, a, bodies.get('b2')!)).toBe('now for b2 too');
  });

  it('gives different safety numbers when the server replaces both users’ devices, even in their own lists', async () => {
    const w = new World();
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    await w.send(a, 'bob', 'hi');
    await w.send(b, 'alice', 'hi');
    const before = await a.trust.safetyNumber('bob');
    expect(await b.trust.safetyNumber('alice')).toBe(before);
    // The server now shows everyone a fake Alice device and a fake Bob device, in every list.
    const fa = generateIdentity();
    const fb = generateIdentity();
    const real = w.listFor;
    w.listFor = (viewer, userId) =>
      userId === 'alice'
        ? [{ id: 'fa', publicKey: toB64(fa.publicKey), vouch: { by: 'fa', signature: vouchFor(fa, 'alice', 'fa', fa.publicKey) } }]
        : userId === 'bob'
          ? [{ id: 'fb', publicKey: toB64(fb.publicKey), vouch: { by: 'fb', signature: vouchFor(fb, 'bob', 'fb', fb.publicKey) } }]
          : real(viewer, userId);
    const alices = await a.trust.safetyNumber('bob');
    const bobs = await b.trust.safetyNumber('alice');
    expect(alices).not.toBe(bobs); // each side counts its own real key: the substitution shows
    expect(a.events.identityChanged).toEqual([{ userId: 'bob', blocked: false }]);
  });

  it('after a removal, stops accepting the removed member’s key, also where the server withheld the removal', async () => {
    const w = new World();
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    const c = await w.addDevice('carol', 'c1');
    const distribute = async (from: typeof a, to: (typeof a)[], distribution: Uint8Array) => {
      for (const m of to) {
        const [p] = await from.sessions.encryptForDevices([{ userId: m.userId, devices: w.deviceList(m.userId) }], INNER.SENDER_KEY, distribution);
        await m.sessions.decrypt(from.userId, from.deviceId, p!.body, 'g1');
      }
    };
    await distribute(c, [a, b], await c.sessions.senderKeyDistribution('g1'));
    const before = await c.sessions.groupEncrypt('g1', enc.encode('carol, a member'));
    expect(dec.decode(await b.sessions.groupDecrypt('g1', 'c1', before, 'carol'))).toBe('carol, a member');
    // Carol is removed. Alice hears of it and replaces her key, naming Carol's device; the server never tells Bob.
    const departed = await a.sessions.senderKeyDevicesOf('g1', ['carol']);
    expect(departed).toEqual(['c1']);
    const rotated = await a.sessions.rotateSenderKey('g1', departed);
    const after = await c.sessions.groupEncrypt('g1', enc.encode('carol, removed, still sending'));
    expect(await code(a.sessions.groupDecrypt('g1', 'c1', after, 'carol'))).toBe('unknown_sender_key');
    expect(dec.decode(await b.sessions.groupDecrypt('g1', 'c1', after, 'carol'))).toBe('carol, removed, still sending'); // not told yet
    await distribute(a, [b], rotated); // Alice's new key reaches Bob…
    const later = await c.sessions.groupEncrypt('g1', enc.encode('and again'));
    expect(await code(b.sessions.groupDecrypt('g1', 'c1', later, 'carol'))).toBe('unknown_sender_key'); // …and Bob forgot Carol's
  });

  it('refuses a message misbound by registering other users’ keys as your own devices', async () => {
    const w = new World();
    const a = await w.addDevice('alice', 'a1', { enforceTrust: false });
    const b = await w.addDevice('bob', 'b1', { enforceTrust: false });
    await w.addDevice('mallory', 'm1');
    // Mallory lists Alice's key and prekeys as her device m_a, and Bob's key as m_b.
    w.addListed('mallory', 'm_a', toB64(a.identity.publicKey));
    w.addListed('mallory', 'm_b', toB64(b.identity.publicKey));
    w.published.set('m_a', w.published.get('a1')!);
    // Bob writes to Mallory (to every device she lists, trust aside); the server hands m_a's copy to Alice as from m_b.
    const [forMa] = await b.sessions.encryptForDevices([{ userId: 'mallory', devices: w.deviceList('mallory').filter((d) => d.id === 'm_a') }], INNER.CONTENT, enc.encode('{"v":1,"text":"for mallory"}'));
    expect(await code(a.sessions.decrypt('mallory', 'm_b', forMa!.body))).toBe('auth_failed');
  });

  it('blocks sending to a verified contact whose identity changed, until the app accepts it', async () => {
    const w = new World();
    const a = await w.addDevice('alice', 'a1');
    await w.addDevice('bob', 'b1');
    await w.addDevice('carol', 'c1');
    await w.send(a, 'bob', 'hi');
    await w.send(a, 'carol', 'hi');
    await a.trust.markVerified('bob');
    // Both Bob's and Carol's devices are replaced by new ones (the server, or a reinstall).
    for (const [user, dev] of [
      ['bob', 'b1'],
      ['carol', 'c1'],
    ] as const) {
      const fresh = generateIdentity();
      w.devices.delete(dev);
      w.addListed(user, `${dev}-new`, toB64(fresh.publicKey), { by: `${dev}-new`, signature: vouchFor(fresh, user, `${dev}-new`, fresh.publicKey) });
    }
    const bob = await a.trust.devices('bob', w.deviceList('bob'));
    expect(bob).toMatchObject({ blocked: true, trusted: [] });
    const carol = await a.trust.devices('carol', w.deviceList('carol')); // not verified: accepted, and told
    expect(carol.blocked).toBe(false);
    expect(carol.trusted.map((d) => d.id)).toEqual(['c1-new']);
    expect(a.events.identityChanged).toEqual([
      { userId: 'bob', blocked: true },
      { userId: 'carol', blocked: false },
    ]);
    await a.trust.acceptIdentity('bob');
    expect(await a.trust.devices('bob', w.deviceList('bob'))).toMatchObject({ blocked: false, trusted: [{ id: 'b1-new' }] });
  });
});
