// The session manager against an in-memory directory (trust left out: e2e.malicious-server.test.ts has it): fan-out, prekey use, resets, identity changes, sender keys.
import { describe, expect, it } from 'vitest';
import { fromB64, sodiumReady, toB64 } from '../protocol/bytes.js';
import { generateIdentity } from '../protocol/keys.js';
import { MAX_SESSIONS_PER_DEVICE, SESSION_RESET_PAYLOAD } from './e2e.session-manager.js';
import { INNER } from './e2e.wire.js';
import { bodyType, code, type Device, World } from './e2e.world.test-support.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

// Ready before the suites are collected: some build their keys at collection time.
await sodiumReady();

describe('SessionManager', () => {
  it("fans a message out to every device of the recipient and the sender's other devices", async () => {
    const w = new World({ trust: false });
    const a1 = await w.addDevice('alice', 'a1');
    const a2 = await w.addDevice('alice', 'a2');
    const b1 = await w.addDevice('bob', 'b1');
    const b2 = await w.addDevice('bob', 'b2');
    const bodies = await w.send(a1, 'bob', 'hello bob');
    expect([...bodies.keys()].sort()).toEqual(['a2', 'b1', 'b2']);
    expect([...bodies.values()].map(bodyType)).toEqual([2, 2, 2]); // prekey messages: new sessions
    for (const d of [a2, b1, b2]) expect(await w.read(d, a1, bodies.get(d.deviceId)!)).toBe('hello bob');
    // Bob answers from b1; a1 then stops sending X3DH fields to b1 only.
    const reply = await w.send(b1, 'alice', 'hi alice');
    expect(await w.read(a1, b1, reply.get('a1')!)).toBe('hi alice');
    const next = await w.send(a1, 'bob', 'second');
    expect(bodyType(next.get('b1')!)).toBe(1);
    expect(bodyType(next.get('b2')!)).toBe(2);
  });

  it('uses each one-time prekey once and drops a replayed prekey message silently', async () => {
    const w = new World({ trust: false });
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    const before = w.published.get('b1')!.otks.length;
    const first = (await w.send(a, 'bob', 'one')).get('b1')!;
    expect(w.published.get('b1')!.otks.length).toBe(before - 1);
    const usedId = new DataView(fromB64(first).buffer).getUint32(69);
    expect(await b.sessions.store.oneTimePrekey(usedId)).not.toBeNull();
    expect(await w.read(b, a, first)).toBe('one');
    expect(await b.sessions.store.oneTimePrekey(usedId)).toBeNull();
    expect(await w.read(b, a, first)).toBe('(ignored)');
    expect(b.events.resetRequests).toEqual([]);
  });

  it('refuses a replayed prekey message (no one-time prekey) even after its session was dropped', async () => {
    const w = new World({ trust: false });
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    w.published.get('b1')!.otks.length = 0; // the directory ran out: sessions use the signed prekey only
    const first = (await w.send(a, 'bob', 'once')).get('b1')!;
    expect(await w.read(b, a, first)).toBe('once');
    for (let i = 0; i < MAX_SESSIONS_PER_DEVICE; i++) {
      await a.store.write([{ section: 'sessions', id: 'b1' }]); // Alice starts over each time
      expect(await w.read(b, a, (await w.send(a, 'bob', `session ${i}`)).get('b1')!)).toBe(`session ${i}`);
    }
    expect((await b.sessions.store.sessions('a1'))!.sessions).toHaveLength(MAX_SESSIONS_PER_DEVICE);
    expect(await w.read(b, a, first)).toBe('(ignored)');
    expect(b.events.resetRequests).toEqual([]);
  });

  it('reads messages out of order', async () => {
    const w = new World({ trust: false });
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    const ms = [];
    for (let i = 0; i < 4; i++) ms.push((await w.send(a, 'bob', `m${i}`)).get('b1')!);
    expect(await w.read(b, a, ms[2]!)).toBe('m2');
    expect(await w.read(b, a, ms[0]!)).toBe('m0');
    expect(await w.read(b, a, ms[3]!)).toBe('m3');
    expect(await w.read(b, a, ms[1]!)).toBe('m1');
  });

  it('aborts a send when a bundle signature is bad, saving nothing', async () => {
    const w = new World({ trust: false });
    const a = await w.addDevice('alice', 'a1');
    await w.addDevice('bob', 'b1');
    w.tamperSignatures = true;
    expect(await code(w.send(a, 'bob', 'x'))).toBe('bad_signature');
    expect(await a.sessions.store.sessions('b1')).toBeNull();
    w.tamperSignatures = false;
    expect((await w.send(a, 'bob', 'x')).size).toBe(1);
  });

  it('rejects a tampered message without changing the session, then reads the real one', async () => {
    const w = new World({ trust: false });
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    await w.read(b, a, (await w.send(a, 'bob', 'setup')).get('b1')!);
    const real = (await w.send(a, 'bob', 'real')).get('b1')!;
    const bytes = fromB64(real);
    bytes[bytes.length - 5]! ^= 1;
    const before = JSON.stringify(await b.store.get('sessions', 'a1'));
    expect(await code(b.sessions.decrypt('alice', 'a1', toB64(bytes)))).toBe('auth_failed');
    expect(JSON.stringify(await b.store.get('sessions', 'a1'))).toBe(before);
    expect(await w.read(b, a, real)).toBe('real');
  });

  it('a device that lost its sessions asks for a new one and then reads again', async () => {
    const w = new World({ trust: false });
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    await w.read(b, a, (await w.send(a, 'bob', 'before')).get('b1')!);
    await w.read(a, b, (await w.send(b, 'alice', 'ack')).get('a1')!);
    // Bob's sessions are gone (say, restored from an old backup): identity and prekeys remain.
    await b.store.write([{ section: 'sessions', id: 'a1' }]);
    const lost = (await w.send(a, 'bob', 'lost')).get('b1')!;
    expect(await code(b.sessions.decrypt('alice', 'a1', lost))).toBe('no_session');
    expect(b.events.resets).toEqual([{ userId: 'alice', deviceId: 'a1', initiatedBy: 'me' }]);
    expect(b.events.resetRequests).toEqual(['a1']);
    // The client sends the reset in a new session, to a1 only.
    const reset = await b.sessions.encryptForDevices([{ userId: 'alice', devices: w.deviceList('alice') }], INNER.CONTROL, SESSION_RESET_PAYLOAD, 'a1');
    expect(bodyType(reset[0]!.body)).toBe(2);
    expect(await a.sessions.decrypt('bob', 'b1', reset[0]!.body)).toEqual({ kind: 'control' });
    expect(a.events.resets).toEqual([{ userId: 'bob', deviceId: 'b1', initiatedBy: 'peer' }]);
    expect(await w.read(b, a, (await w.send(a, 'bob', 'after reset')).get('b1')!)).toBe('after reset');
    // A second failure within the interval does not send another reset.
    await b.store.write([{ section: 'sessions', id: 'a1' }]);
    await code(b.sessions.decrypt('alice', 'a1', (await w.send(a, 'bob', 'x')).get('b1')!));
    expect(b.events.resetRequests).toEqual(['a1']);
  });

  it('raises identity_changed when a contact device comes back with a new identity key', async () => {
    const w = new World({ trust: false });
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    await w.read(b, a, (await w.send(a, 'bob', 'first')).get('b1')!);
    const oldKey = w.devices.get('b1')!.publicKey;
    const b2 = await w.addDevice('bob', 'b1'); // same device id, new state and identity (reinstalled)
    const newKey = w.devices.get('b1')!.publicKey;
    expect(newKey).not.toBe(oldKey);
    expect(await w.read(b2, a, (await w.send(a, 'bob', 'to the new key')).get('b1')!)).toBe('to the new key');
    expect(a.events.identity).toEqual([{ userId: 'bob', deviceId: 'b1', previousKey: oldKey, currentKey: newKey }]);
    // The other way round: Bob's new device writes first to Carol, who knew the old key.
    const c = await w.addDevice('carol', 'c1');
    w.devices.set('b1', { userId: 'bob', publicKey: oldKey, vouch: null });
    await w.read(c, b, (await w.send(b, 'carol', 'from old b1')).get('c1')!);
    w.devices.set('b1', { userId: 'bob', publicKey: newKey, vouch: null });
    expect(await w.read(c, b2, (await w.send(b2, 'carol', 'from new b1')).get('c1')!)).toBe('from new b1');
    expect(c.events.identity).toEqual([{ userId: 'bob', deviceId: 'b1', previousKey: oldKey, currentKey: newKey }]);
  });

  it('refuses a prekey message whose identity key is not the one the device list shows', async () => {
    const w = new World({ trust: false });
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    const body = (await w.send(a, 'bob', 'hi')).get('b1')!;
    w.devices.set('a1', { userId: 'alice', publicKey: toB64(generateIdentity().publicKey), vouch: null }); // the list now says otherwise
    expect(await code(b.sessions.decrypt('alice', 'a1', body))).toBe('untrusted_identity');
    expect(await b.sessions.store.sessions('a1')).toBeNull();
  });

  it('sends an empty body to a device without prekeys, which it reports', async () => {
    const w = new World({ trust: false });
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    w.published.delete('b1');
    const body = (await w.send(a, 'bob', 'nothing for you')).get('b1')!;
    expect(fromB64(body)).toEqual(new Uint8Array([0, 1]));
    expect(await code(b.sessions.decrypt('alice', 'a1', body))).toBe('no_keys');
  });

  it('carries sender keys over pairwise sessions; after a rotation the removed member reads nothing new', async () => {
    const w = new World({ trust: false });
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    const c = await w.addDevice('carol', 'c1');
    const distribute = async (members: Device[], distribution: Uint8Array) => {
      for (const m of members) {
        const [p] = await a.sessions.encryptForDevices([{ userId: m.userId, devices: w.deviceList(m.userId) }], INNER.SENDER_KEY, distribution);
        expect(await m.sessions.decrypt('alice', 'a1', p!.body)).toEqual({ kind: 'sender_key', groupId: 'g1', excluded: [] });
      }
    };
    await distribute([b, c], await a.sessions.senderKeyDistribution('g1'));
    const m1 = await a.sessions.groupEncrypt('g1', enc.encode('to all'));
    expect(dec.decode(await b.sessions.groupDecrypt('g1', 'a1', m1, 'alice'))).toBe('to all');
    expect(dec.decode(await c.sessions.groupDecrypt('g1', 'a1', m1, 'alice'))).toBe('to all');
    await distribute([b], await a.sessions.rotateSenderKey('g1')); // carol removed
    const m2 = await a.sessions.groupEncrypt('g1', enc.encode('without carol'));
    expect(dec.decode(await b.sessions.groupDecrypt('g1', 'a1', m2, 'alice'))).toBe('without carol');
    expect(await code(c.sessions.groupDecrypt('g1', 'a1', m2, 'alice'))).toBe('unknown_sender_key');
    expect(await code(b.sessions.groupDecrypt('g1', 'a1', m2, 'alice'))).toBe('duplicate');
  });
});
