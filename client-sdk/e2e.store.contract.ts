// The KeyStore contract, run against every implementation (memory, disk), plus the typed records round-tripping through it.
import { beforeAll, describe, expect, it } from 'vitest';
import { sodiumReady } from '../protocol/bytes.js';
import { generateIdentity, generateOneTimePrekeys, generateSignedPrekey, generateX25519 } from '../protocol/keys.js';
import { initInitiator, ratchetToJson } from './e2e.ratchet.js';
import { createSenderKey, senderKeyToJson } from './e2e.sender-keys.js';
import { E2eStore, type KeyStore } from './e2e.store.js';

export interface KeyStoreFactory {
  /** A new, empty store. */
  create(): Promise<KeyStore>;
  /** Another store over the same data, as after a restart (undefined where there is none). */
  reopen?(store: KeyStore): Promise<KeyStore>;
}

export function keyStoreContract(name: string, factory: KeyStoreFactory): void {
  describe(`KeyStore contract: ${name}`, () => {
    beforeAll(sodiumReady);

    it('returns what was written, undefined otherwise, and copies that callers can modify', async () => {
      const s = await factory.create();
      expect(await s.get('device', 'self')).toBeUndefined();
      expect(await s.ids('sessions')).toEqual([]);
      await s.write([{ section: 'sessions', id: 'd1', value: { a: [1, 'x'], b: null } }]);
      const v = (await s.get('sessions', 'd1')) as { a: unknown[] };
      expect(v).toEqual({ a: [1, 'x'], b: null });
      v.a.push('mutated');
      expect(await s.get('sessions', 'd1')).toEqual({ a: [1, 'x'], b: null });
      expect(await s.get('identities', 'd1')).toBeUndefined(); // sections are separate
    });

    it('applies a write’s changes together, deletes, and lists ids', async () => {
      const s = await factory.create();
      await s.write([
        { section: 'oneTimePrekeys', id: '1', value: 1 },
        { section: 'oneTimePrekeys', id: '2', value: 2 },
        { section: 'sessions', id: 'x', value: 'x' },
      ]);
      await s.write([{ section: 'oneTimePrekeys', id: '1' }, { section: 'sessions', id: 'x', value: 'y' }]);
      expect((await s.ids('oneTimePrekeys')).sort()).toEqual(['2']);
      expect(await s.get('sessions', 'x')).toBe('y');
    });

    it('keeps writes in call order when they are not awaited one by one', async () => {
      const s = await factory.create();
      await Promise.all(Array.from({ length: 20 }, (_, i) => s.write([{ section: 'device', id: 'n', value: i }])));
      expect(await s.get('device', 'n')).toBe(19);
    });

    it.skipIf(!factory.reopen)(`keeps everything across a reopen${factory.reopen ? '' : ' (skipped: this store keeps nothing across runs)'}`, async () => {
      const s = await factory.create();
      await s.write([{ section: 'identities', id: 'dev', value: { k: 'v' } }]);
      const again = await factory.reopen!(s);
      expect(await again.get('identities', 'dev')).toEqual({ k: 'v' });
    });

    it('round-trips every record the SDK keeps', async () => {
      const store = new E2eStore(await factory.create());
      const identity = generateIdentity();
      const spk = generateSignedPrekey(identity, 42);
      const otks = generateOneTimePrekeys(3);
      const ratchet = initInitiator(new Uint8Array(32).fill(1), new Uint8Array(64).fill(2), generateX25519().publicKey);
      const sk = createSenderKey('group');
      await store
        .begin()
        .putDevice({ deviceId: 'dev-1', identity })
        .putSignedPrekey(spk)
        .putOneTimePrekeys(otks)
        .putSessions('peer', {
          userId: 'u',
          identityKey: identity.publicKey,
          sessions: [{ baseKey: new Uint8Array(32).fill(3), ratchet, prekeyPrefix: null, createdAt: 5 }],
          retiredBaseKeys: ['AAAA'],
        })
        .putIdentity('peer', { userId: 'u', identityKey: identity.publicKey })
        .putSenderKeys('group', 'dev-1', [sk])
        .commit();
      expect(await store.device()).toEqual({ deviceId: 'dev-1', identity });
      expect(await store.signedPrekey(spk.id)).toEqual(spk);
      expect(await store.oneTimePrekey(otks[1]!.id)).toEqual(otks[1]);
      expect((await store.oneTimePrekeyIds()).sort()).toEqual(otks.map((k) => k.id).sort());
      const peer = await store.sessions('peer');
      expect(ratchetToJson(peer!.sessions[0]!.ratchet)).toEqual(ratchetToJson(ratchet));
      expect(peer!.retiredBaseKeys).toEqual(['AAAA']);
      expect(await store.identity('peer')).toEqual({ userId: 'u', identityKey: identity.publicKey });
      expect((await store.senderKeys('group', 'dev-1')).map(senderKeyToJson)).toEqual([senderKeyToJson(sk)]);
      await store.begin().deleteOneTimePrekey(otks[0]!.id).deleteSessions('peer').commit();
      expect(await store.oneTimePrekey(otks[0]!.id)).toBeNull();
      expect(await store.sessions('peer')).toBeNull();
    });
  });
}
