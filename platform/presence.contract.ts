// The presence contract, run against every adapter with a clock the test controls.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ManualClock } from './clock.js';
import type { Presence } from './presence.js';

export interface PresenceFixture {
  presence: Presence;
  clock: ManualClock;
  /** Lets `ms` pass for the adapter's TTLs (the manual clock for memory, real time for a server) and advances the clock. */
  expire(ms: number): Promise<void>;
  dispose(): Promise<void>;
}

export function presenceContract(name: string, make: () => Promise<PresenceFixture>): void {
  describe(`Presence contract: ${name}`, () => {
    let f: PresenceFixture;
    const alice = { userId: 'u-alice', deviceId: 'd-alice-1', gatewayId: 'g1' };
    const alice2 = { userId: 'u-alice', deviceId: 'd-alice-2', gatewayId: 'g2' };

    beforeEach(async () => {
      f = await make();
    });
    afterEach(async () => {
      await f.dispose();
    });

    it('routes a connected device to its gateway', async () => {
      expect((await f.presence.connect(alice, 10_000)).previousGateway).toBeNull();
      await f.presence.connect(alice2, 10_000);
      const routes = await f.presence.routes(['u-alice', 'u-nobody']);
      expect(routes.sort((a, b) => a.deviceId.localeCompare(b.deviceId))).toEqual([alice, alice2]);
      expect(await f.presence.status(['u-alice', 'u-nobody'])).toEqual([
        { userId: 'u-alice', online: true, lastSeen: null },
        { userId: 'u-nobody', online: false, lastSeen: null },
      ]);
    });

    it('reports the previous gateway when a device moves, and only then', async () => {
      await f.presence.connect(alice, 10_000);
      expect((await f.presence.connect({ ...alice, gatewayId: 'g1' }, 10_000)).previousGateway).toBeNull();
      expect((await f.presence.connect({ ...alice, gatewayId: 'g9' }, 10_000)).previousGateway).toBe('g1');
      expect(await f.presence.routes(['u-alice'])).toEqual([{ ...alice, gatewayId: 'g9' }]);
    });

    it('a stale gateway cannot disconnect or refresh a device that moved', async () => {
      await f.presence.connect(alice, 10_000);
      await f.presence.connect({ ...alice, gatewayId: 'g2' }, 10_000);
      await f.presence.disconnect(alice);
      expect(await f.presence.refresh('g1', [alice.deviceId], 10_000)).toBe(0);
      expect(await f.presence.routes(['u-alice'])).toEqual([{ ...alice, gatewayId: 'g2' }]);
    });

    it('records last seen on disconnect', async () => {
      await f.presence.connect(alice, 10_000);
      f.clock.advance(5_000);
      await f.presence.disconnect(alice);
      const [s] = await f.presence.status(['u-alice']);
      expect(s!.online).toBe(false);
      expect(s!.lastSeen).toBe(f.clock.now());
      expect(await f.presence.routes(['u-alice'])).toEqual([]);
    });

    it('forgets a route whose TTL ran out, and keeps a refreshed one', async () => {
      await f.presence.connect(alice, 1_000);
      await f.presence.connect(alice2, 1_000);
      await f.expire(600);
      expect(await f.presence.refresh('g2', [alice2.deviceId], 1_000)).toBe(1);
      await f.expire(600);
      expect(await f.presence.routes(['u-alice'])).toEqual([alice2]);
      await f.expire(1_100);
      expect(await f.presence.routes(['u-alice'])).toEqual([]);
      const [s] = await f.presence.status(['u-alice']);
      expect(s!.online).toBe(false);
      expect(s!.lastSeen).not.toBeNull();
    });

    it('gives a user a new route version on every connect and removing disconnect, never a used one', async () => {
      const seen = new Set<string | null>();
      const version = async () => {
        const [v] = await f.presence.versions(['u-alice']);
        return v ?? null;
      };
      const fresh = async () => {
        const v = await version();
        expect(v).not.toBeNull();
        expect(seen.has(v)).toBe(false);
        seen.add(v);
      };
      expect(await version()).toBeNull();
      await f.presence.connect(alice, 10_000);
      await fresh();
      await f.presence.connect(alice2, 10_000);
      await fresh();
      await f.presence.connect({ ...alice, gatewayId: 'g9' }, 10_000); // takeover
      await fresh();
      await f.presence.connect({ ...alice, gatewayId: 'g9' }, 10_000); // the same route again
      await fresh();
      await f.presence.disconnect(alice2);
      await fresh();
    });

    it('leaves the version alone on refresh and on a disconnect that removes nothing; other users keep theirs', async () => {
      await f.presence.connect(alice, 10_000);
      const bob = { userId: 'u-bob', deviceId: 'd-bob-1', gatewayId: 'g2' };
      await f.presence.connect(bob, 10_000);
      const before = await f.presence.versions(['u-alice', 'u-bob', 'u-nobody']);
      expect(await f.presence.refresh('g1', [alice.deviceId], 10_000)).toBe(1);
      await f.presence.disconnect({ ...alice, gatewayId: 'g-stale' });
      expect(await f.presence.versions(['u-alice', 'u-bob', 'u-nobody'])).toEqual(before);
      await f.presence.connect(alice2, 10_000);
      const after = await f.presence.versions(['u-alice', 'u-bob', 'u-nobody']);
      expect(after[0]).not.toEqual(before[0]);
      expect(after.slice(1)).toEqual(before.slice(1));
    });

    it('reads routes with the versions they were read at', async () => {
      await f.presence.connect(alice, 10_000);
      const at = await f.presence.routesAt(['u-nobody', 'u-alice']);
      expect(at.routes).toEqual([alice]);
      expect(at.versions).toEqual(await f.presence.versions(['u-nobody', 'u-alice']));
      expect(at.versions[0]).toBeNull();
      expect(await f.presence.routesAt([])).toEqual({ routes: [], versions: [] });
    });

    it('connect tells the user status just before: offline and never seen, online, offline since a disconnect or expiry', async () => {
      expect(await f.presence.connect(alice, 10_000)).toEqual({ previousGateway: null, wasOnline: false, lastSeen: null });
      expect(await f.presence.connect(alice2, 10_000)).toEqual({ previousGateway: null, wasOnline: true, lastSeen: null });
      f.clock.advance(1_000);
      await f.presence.disconnect(alice);
      await f.presence.disconnect(alice2);
      const left = f.clock.now();
      const again = await f.presence.connect(alice, 1_000);
      expect(again).toEqual({ previousGateway: null, wasOnline: false, lastSeen: left });
      await f.expire(1_100); // the route ran out without a disconnect
      const after = await f.presence.connect(alice2, 10_000);
      expect(after.wasOnline).toBe(false);
      expect(after.lastSeen).not.toBeNull();
      expect(after.lastSeen!).toBeGreaterThanOrEqual(left);
      expect(await f.presence.status(['u-alice'])).toEqual([{ userId: 'u-alice', online: true, lastSeen: after.lastSeen }]);
    });
  });
}
