// The session manager against an in-memory directory: fan-out, prekey use, resets, identity changes, sender keys.
import { describe, expect, it } from 'vitest';
import { fromB64, sodiumReady, toB64 } from './e2e.bytes.js';
import { decodeBundle, type KeyDirectoryClient } from './e2e.directory.js';
import { generateIdentity } from './e2e.keys.js';
import { type DeviceEntry, type IdentityChange, MAX_SESSIONS_PER_DEVICE, SESSION_RESET_PAYLOAD, SessionManager, type SessionReset } from './e2e.session-manager.js';
import { memoryKeyStore } from './e2e.store.memory.js';
import type { KeyStore } from './e2e.store.js';
import { INNER } from './e2e.wire.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

interface Published {
  identityKey: string;
  spk: { id: number; publicKey: string; signature: string } | null;
  otks: { id: number; publicKey: string }[];
}

/** A server in memory: device lists and a key directory, and the devices (session managers) of each user. */
class World {
  readonly devices = new Map<string, { userId: string; publicKey: string }>();
  readonly published = new Map<string, Published>();
  tamperSignatures = false;

  deviceList(userId: string): DeviceEntry[] {
    return [...this.devices].filter(([, d]) => d.userId === userId).map(([id, d]) => ({ id, publicKey: d.publicKey }));
  }

  async addDevice(userId: string, deviceId: string, store: KeyStore = memoryKeyStore()): Promise<Device> {
    const events = { resets: [] as SessionReset[], identity: [] as IdentityChange[], resetRequests: [] as string[] };
    const me = () => ({ userId, deviceId });
    const directory: KeyDirectoryClient = {
      status: async () => {
        const p = this.published.get(deviceId);
        const current = this.devices.get(deviceId)!.publicKey;
        return { identityKey: current, signedPrekeyId: p && p.identityKey === current ? (p.spk?.id ?? null) : null, oneTimePrekeys: p?.otks.length ?? 0 };
      },
      publish: async (ik, spk, otks) => {
        this.published.set(deviceId, {
          identityKey: toB64(ik),
          spk: { id: spk.id, publicKey: toB64(spk.keyPair.publicKey), signature: toB64(spk.signature) },
          otks: otks.map((k) => ({ id: k.id, publicKey: toB64(k.keyPair.publicKey) })),
        });
        return { oneTimePrekeys: otks.length };
      },
      rotate: async (spk) => void (this.published.get(deviceId)!.spk = { id: spk.id, publicKey: toB64(spk.keyPair.publicKey), signature: toB64(spk.signature) }),
      upload: async (otks) => {
        const p = this.published.get(deviceId)!;
        p.otks.push(...otks.map((k) => ({ id: k.id, publicKey: toB64(k.keyPair.publicKey) })));
        return { oneTimePrekeys: p.otks.length };
      },
      bundles: async (uid, ids) =>
        this.deviceList(uid)
          .filter((d) => !ids || ids.includes(d.id))
          .map((d) => {
            const p = this.published.get(d.id);
            const usable = p?.spk && p.identityKey === d.publicKey;
            const sig = usable && this.tamperSignatures ? toB64(fromB64(p.spk!.signature).map((b, i) => (i === 0 ? b ^ 1 : b))) : p?.spk?.signature;
            return decodeBundle({
              deviceId: d.id,
              identityKey: d.publicKey,
              signedPrekey: usable ? { ...p.spk!, signature: sig! } : null,
              oneTimePrekey: usable ? (p.otks.shift() ?? null) : null,
            });
          }),
    };
    const sessions = new SessionManager({
      store,
      directory,
      devicesOf: async (uid) => this.deviceList(uid),
      sendReset: (_u, d) => events.resetRequests.push(d),
      onIdentityChanged: (e) => events.identity.push(e),
      onSessionReset: (e) => events.resets.push(e),
    });
    const device = await sessions.loadDevice();
    this.devices.set(deviceId, { userId, publicKey: toB64(device.identity.publicKey) });
    await sessions.useDevice({ ...device, deviceId });
    await sessions.publishKeys();
    return { ...me(), sessions, store, events };
  }

  /** Encrypts for every device of `to` and the sender's other devices, as the client does. */
  async send(from: Device, to: string, text: string): Promise<Map<string, string>> {
    const recipients = [...new Set([to, from.userId])].map((u) => ({ userId: u, devices: this.deviceList(u) }));
    const out = await from.sessions.encryptForDevices(recipients, INNER.CONTENT, enc.encode(text));
    return new Map(out.map((p) => [p.device, p.body]));
  }

  async read(to: Device, from: Device, body: string): Promise<string> {
    const r = await to.sessions.decrypt(from.userId, from.deviceId, body);
    if (r.kind !== 'content') return `(${r.kind})`;
    return dec.decode(r.payload);
  }
}

interface Device {
  userId: string;
  deviceId: string;
  sessions: SessionManager;
  store: KeyStore;
  events: { resets: SessionReset[]; identity: IdentityChange[]; resetRequests: string[] };
}

const code = async (p: Promise<unknown>) => ((await p.then(() => ({ code: 'no error' }), (e: unknown) => e)) as { code: string }).code;
const bodyType = (b: string) => fromB64(b)[0];

// Ready before the suites are collected: some build their keys at collection time.
await sodiumReady();

describe('SessionManager', () => {
  it("fans a message out to every device of the recipient and the sender's other devices", async () => {
    const w = new World();
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
    const w = new World();
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
    const w = new World();
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
    const w = new World();
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
    const w = new World();
    const a = await w.addDevice('alice', 'a1');
    await w.addDevice('bob', 'b1');
    w.tamperSignatures = true;
    expect(await code(w.send(a, 'bob', 'x'))).toBe('bad_signature');
    expect(await a.sessions.store.sessions('b1')).toBeNull();
    w.tamperSignatures = false;
    expect((await w.send(a, 'bob', 'x')).size).toBe(1);
  });

  it('rejects a tampered message without changing the session, then reads the real one', async () => {
    const w = new World();
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
    const w = new World();
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
    const w = new World();
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
    w.devices.set('b1', { userId: 'bob', publicKey: oldKey });
    await w.read(c, b, (await w.send(b, 'carol', 'from old b1')).get('c1')!);
    w.devices.set('b1', { userId: 'bob', publicKey: newKey });
    expect(await w.read(c, b2, (await w.send(b2, 'carol', 'from new b1')).get('c1')!)).toBe('from new b1');
    expect(c.events.identity).toEqual([{ userId: 'bob', deviceId: 'b1', previousKey: oldKey, currentKey: newKey }]);
  });

  it('refuses a prekey message whose identity key is not the one the device list shows', async () => {
    const w = new World();
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    const body = (await w.send(a, 'bob', 'hi')).get('b1')!;
    w.devices.set('a1', { userId: 'alice', publicKey: toB64(generateIdentity().publicKey) }); // the list now says otherwise
    expect(await code(b.sessions.decrypt('alice', 'a1', body))).toBe('untrusted_identity');
    expect(await b.sessions.store.sessions('a1')).toBeNull();
  });

  it('sends an empty body to a device without prekeys, which it reports', async () => {
    const w = new World();
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    w.published.delete('b1');
    const body = (await w.send(a, 'bob', 'nothing for you')).get('b1')!;
    expect(fromB64(body)).toEqual(new Uint8Array([0, 1]));
    expect(await code(b.sessions.decrypt('alice', 'a1', body))).toBe('no_keys');
  });

  it('computes the same safety number on both sides, and another one if a key is substituted', async () => {
    const w = new World();
    const a1 = await w.addDevice('alice', 'a1');
    await w.addDevice('alice', 'a2');
    const b = await w.addDevice('bob', 'b1');
    const alice = { userId: 'alice', devices: w.deviceList('alice') };
    const bob = { userId: 'bob', devices: w.deviceList('bob') };
    const fromAlice = await a1.sessions.safetyNumber(alice, bob);
    expect(fromAlice).toMatch(/^\d{60}$/);
    expect(await b.sessions.safetyNumber(bob, alice)).toBe(fromAlice);
    const substituted = { userId: 'bob', devices: [{ id: 'b1', publicKey: toB64(generateIdentity().publicKey) }] };
    expect(await a1.sessions.safetyNumber(alice, substituted)).not.toBe(fromAlice);
  });

  it('carries sender keys over pairwise sessions; after a rotation the removed member reads nothing new', async () => {
    const w = new World();
    const a = await w.addDevice('alice', 'a1');
    const b = await w.addDevice('bob', 'b1');
    const c = await w.addDevice('carol', 'c1');
    const distribute = async (members: Device[], distribution: Uint8Array) => {
      for (const m of members) {
        const [p] = await a.sessions.encryptForDevices([{ userId: m.userId, devices: w.deviceList(m.userId) }], INNER.SENDER_KEY, distribution);
        expect(await m.sessions.decrypt('alice', 'a1', p!.body)).toEqual({ kind: 'sender_key', groupId: 'g1' });
      }
    };
    await distribute([b, c], await a.sessions.senderKeyDistribution('g1'));
    const m1 = await a.sessions.groupEncrypt('g1', enc.encode('to all'));
    expect(dec.decode(await b.sessions.groupDecrypt('g1', 'a1', m1))).toBe('to all');
    expect(dec.decode(await c.sessions.groupDecrypt('g1', 'a1', m1))).toBe('to all');
    await distribute([b], await a.sessions.rotateSenderKey('g1')); // carol removed
    const m2 = await a.sessions.groupEncrypt('g1', enc.encode('without carol'));
    expect(dec.decode(await b.sessions.groupDecrypt('g1', 'a1', m2))).toBe('without carol');
    expect(await code(c.sessions.groupDecrypt('g1', 'a1', m2))).toBe('unknown_sender_key');
    expect(await code(b.sessions.groupDecrypt('g1', 'a1', m2))).toBe('duplicate');
  });
});
