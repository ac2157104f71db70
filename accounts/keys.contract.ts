// The KeyDirectory contract, run on every SQL driver: publishing checks, bundles, and one-time prekeys handed out once.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sodiumReady, toB64 } from '../protocol/bytes.js';
import { generateIdentity, generateOneTimePrekeys, generateSignedPrekey, type IdentityKeyPair } from '../protocol/keys.js';
import { ManualClock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { migrate } from '../platform/migrations.js';
import type { SqlFactory } from '../platform/sql.contract.js';
import type { Sql } from '../platform/sql.js';
import { KeyDirectory } from './keys.js';

const spkUpload = (identity: IdentityKeyPair) => {
  const spk = generateSignedPrekey(identity, 0);
  return { id: spk.id, publicKey: toB64(spk.keyPair.publicKey), signature: toB64(spk.signature) };
};
const oneTime = (n: number) => generateOneTimePrekeys(n).map((k) => ({ id: k.id, publicKey: toB64(k.keyPair.publicKey) }));
const errorOf = async (p: Promise<unknown>) => {
  const e = await p.catch((err: unknown) => err);
  expect(e).toBeInstanceOf(AppError);
  return e as AppError;
};

export function keyDirectoryContract(name: string, factory: () => Promise<SqlFactory>): void {
  describe(`KeyDirectory: ${name}`, () => {
    let f: SqlFactory;
    let sql: Sql;
    const low: { userId: string; deviceId: string; remaining: number }[] = [];
    let keys: KeyDirectory;

    beforeAll(async () => {
      await sodiumReady();
      f = await factory();
      sql = await f.open();
      await migrate(sql);
      keys = new KeyDirectory(sql, new ManualClock(), { maxOneTimePrekeys: 100, lowWatermark: 5, onLow: (userId, deviceId, remaining) => low.push({ userId, deviceId, remaining }) });
    });
    afterAll(async () => {
      await sql?.close();
      await f?.dispose();
    });

    /** A user with `n` devices, each with its own identity registered as the device's public key. */
    const user = async (n = 1) => {
      const userId = randomUUID();
      await sql.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, 'x', 0)`, [userId, `u${userId.slice(0, 8)}`]);
      const devices: { id: string; identity: IdentityKeyPair }[] = [];
      for (let i = 0; i < n; i++) {
        const identity = generateIdentity();
        const id = randomUUID();
        await sql.query(`INSERT INTO devices (id, user_id, name, public_key, created_at) VALUES ($1, $2, 'd', $3, $4)`, [id, userId, toB64(identity.publicKey), i]);
        devices.push({ id, identity });
      }
      return { userId, devices };
    };

    it('publishes only under the identity key the device registered, with a valid signature and usable keys', async () => {
      const { userId, devices } = await user();
      const d = devices[0]!;
      const ik = toB64(d.identity.publicKey);
      const stranger = generateIdentity();
      expect((await errorOf(keys.publish(userId, d.id, toB64(stranger.publicKey), spkUpload(stranger), []))).code).toBe('invalid');
      // Signed by another key than the identity it claims:
      expect((await errorOf(keys.publish(userId, d.id, ik, spkUpload(stranger), []))).message).toContain('signature');
      const lowOrder = { ...spkUpload(d.identity), publicKey: toB64(new Uint8Array(32)) };
      expect((await errorOf(keys.publish(userId, d.id, ik, lowOrder, []))).code).toBe('invalid');
      expect((await errorOf(keys.publish(userId, d.id, ik, spkUpload(d.identity), [{ id: 1, publicKey: toB64(new Uint8Array(32)) }]))).code).toBe('invalid');
      expect((await errorOf(keys.publish(randomUUID(), d.id, ik, spkUpload(d.identity), []))).code).toBe('not_found');
      expect(await keys.publish(userId, d.id, ik, spkUpload(d.identity), oneTime(3))).toEqual({ oneTimePrekeys: 3 });
      expect(await keys.status(userId, d.id)).toMatchObject({ identityKey: ik, oneTimePrekeys: 3, signedPrekeyId: expect.any(Number) });
    });

    it('returns one bundle per device and hands out each one-time prekey once, then only the signed prekey', async () => {
      const { userId, devices } = await user(2);
      const uploads = new Map<string, number[]>();
      for (const d of devices) {
        const otks = oneTime(2);
        uploads.set(d.id, otks.map((k) => k.id));
        await keys.publish(userId, d.id, toB64(d.identity.publicKey), spkUpload(d.identity), otks);
      }
      const seen: number[] = [];
      for (let round = 0; round < 3; round++) {
        const bundles = await keys.bundles(userId);
        expect(bundles.map((b) => b.deviceId)).toEqual(devices.map((d) => d.id));
        for (const b of bundles) {
          expect(b.signedPrekey).not.toBeNull();
          if (round < 2) seen.push(b.oneTimePrekey!.id);
          else expect(b.oneTimePrekey).toBeNull();
        }
      }
      expect(seen.sort()).toEqual([...uploads.values()].flat().sort());
      expect(low.filter((l) => l.userId === userId).map((l) => l.remaining)).toEqual([1, 1, 0, 0, 0, 0]);
      expect(await keys.bundles(userId, [devices[1]!.id])).toHaveLength(1);
    });

    it('answers a missing user, a user without devices and a filter matching none with the same not_found', async () => {
      const { userId } = await user(0);
      const withDevice = await user(1);
      const errors = [await errorOf(keys.bundles(randomUUID())), await errorOf(keys.bundles(userId)), await errorOf(keys.bundles(withDevice.userId, [randomUUID()]))];
      expect(errors.map((e) => [e.code, e.message])).toEqual([
        ['not_found', 'no such user'],
        ['not_found', 'no such user'],
        ['not_found', 'no such user'],
      ]);
    });

    it('serves no signed prekey for a device that has not published, or whose identity changed since', async () => {
      const { userId, devices } = await user();
      const d = devices[0]!;
      expect(await keys.bundles(userId)).toEqual([{ deviceId: d.id, identityKey: toB64(d.identity.publicKey), signedPrekey: null, oneTimePrekey: null }]);
      await keys.publish(userId, d.id, toB64(d.identity.publicKey), spkUpload(d.identity), oneTime(1));
      const renewed = generateIdentity(); // the device logged in again with a new identity key
      await sql.query(`UPDATE devices SET public_key = $2 WHERE id = $1`, [d.id, toB64(renewed.publicKey)]);
      const [b] = await keys.bundles(userId);
      expect(b).toMatchObject({ identityKey: toB64(renewed.publicKey), signedPrekey: null, oneTimePrekey: null });
      expect((await keys.status(userId, d.id)).signedPrekeyId).toBeNull();
      await keys.publish(userId, d.id, toB64(renewed.publicKey), spkUpload(renewed), []);
      expect((await keys.bundles(userId))[0]!.signedPrekey).not.toBeNull();
    });

    it('rotates the signed prekey, refusing one not signed by the registered identity', async () => {
      const { userId, devices } = await user();
      const d = devices[0]!;
      await keys.publish(userId, d.id, toB64(d.identity.publicKey), spkUpload(d.identity), []);
      const next = spkUpload(d.identity);
      await keys.rotate(userId, d.id, next);
      expect((await keys.bundles(userId))[0]!.signedPrekey).toEqual(next);
      expect((await errorOf(keys.rotate(userId, d.id, spkUpload(generateIdentity())))).code).toBe('invalid');
    });

    it('adds one-time prekeys up to the limit, refusing ids already stored', async () => {
      const { userId, devices } = await user();
      const d = devices[0]!;
      await keys.publish(userId, d.id, toB64(d.identity.publicKey), spkUpload(d.identity), []);
      const batch = oneTime(60);
      expect(await keys.addOneTimePrekeys(userId, d.id, batch)).toEqual({ oneTimePrekeys: 60 });
      expect((await errorOf(keys.addOneTimePrekeys(userId, d.id, batch.slice(0, 1)))).code).toBe('conflict');
      expect((await errorOf(keys.addOneTimePrekeys(userId, d.id, oneTime(41)))).code).toBe('invalid');
      expect(await keys.addOneTimePrekeys(userId, d.id, oneTime(40))).toEqual({ oneTimePrekeys: 100 });
      expect((await errorOf(keys.addOneTimePrekeys(userId, d.id, [...batch.slice(0, 1), ...batch.slice(0, 1)]))).code).toBe('invalid');
    });

    it('never hands the same one-time prekey to two concurrent fetches', async () => {
      const { userId, devices } = await user();
      const d = devices[0]!;
      const uploaded = oneTime(25);
      await keys.publish(userId, d.id, toB64(d.identity.publicKey), spkUpload(d.identity), uploaded);
      const results = await Promise.all(Array.from({ length: 40 }, () => keys.bundles(userId)));
      const handed = results.map((r) => r[0]!.oneTimePrekey?.id).filter((id): id is number => id !== undefined);
      expect(new Set(handed).size).toBe(handed.length); // no key twice
      expect(handed.every((id) => uploaded.some((k) => k.id === id))).toBe(true);
      expect(handed.length).toBeGreaterThan(0);
      const left = (await keys.status(userId, d.id)).oneTimePrekeys;
      expect(handed.length + left).toBe(25); // none lost: handed out or still there
    });

    it('forgets a removed device’s keys', async () => {
      const { userId, devices } = await user(2);
      for (const d of devices) await keys.publish(userId, d.id, toB64(d.identity.publicKey), spkUpload(d.identity), oneTime(1));
      await sql.query(`DELETE FROM devices WHERE id = $1`, [devices[0]!.id]);
      expect((await keys.bundles(userId)).map((b) => b.deviceId)).toEqual([devices[1]!.id]);
      const [n] = await sql.query<{ n: unknown }>(`SELECT count(*) AS n FROM one_time_prekeys WHERE device_id = $1`, [devices[0]!.id]);
      expect(Number(n!.n)).toBe(0);
    });
  });
}
