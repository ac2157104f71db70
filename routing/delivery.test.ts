// Two gateways in one process sharing one in-memory broker and presence: routing, batching per gateway, takeover.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ServerFrame } from '../protocol/frames.js';
import { MemoryBroker } from '../platform/broker.memory.js';
import { ManualClock } from '../platform/clock.js';
import { createLogger } from '../platform/log.js';
import { createMetrics } from '../platform/metrics.js';
import { MemoryPresence } from '../platform/presence.memory.js';
import { Delivery, type LocalDevice } from './delivery.js';

class Sink implements LocalDevice {
  frames: ServerFrame[] = [];
  replacedCount = 0;
  constructor(
    readonly userId: string,
    readonly deviceId: string,
  ) {}
  deliver(frame: ServerFrame): void {
    this.frames.push(frame);
  }
  send(frame: ServerFrame): void {
    this.frames.push(frame);
  }
  replaced(): void {
    this.replacedCount++;
  }
  resyncs = 0;
  resync(): void {
    this.resyncs++;
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('Delivery across two gateways', () => {
  let broker: MemoryBroker;
  let g1: Delivery;
  let g2: Delivery;
  let envelopesToG2: string[];
  let presence: MemoryPresence;

  beforeEach(async () => {
    broker = new MemoryBroker();
    presence = new MemoryPresence(new ManualClock());
    const log = createLogger('silent');
    const opts = { presenceTtlMs: 60_000, heartbeatMs: 10_000 };
    g1 = new Delivery(presence, broker, log, createMetrics(), { ...opts, gatewayId: 'g1' });
    g2 = new Delivery(presence, broker, log, createMetrics(), { ...opts, gatewayId: 'g2' });
    await g1.start();
    await g2.start();
    envelopesToG2 = [];
    await broker.subscribe('gateway:g2', (m) => envelopesToG2.push(m));
  });
  afterEach(async () => {
    await g1.stop();
    await g2.stop();
  });

  const base = { id: 'm1', conversationId: 'c1', seq: 1, from: 'alice', fromDevice: 'a1', sentAt: 0 };

  it('delivers to devices on another gateway with one publish for all of them, each its own body', async () => {
    const phone = new Sink('bob', 'b1');
    const laptop = new Sink('bob', 'b2');
    const aliceOther = new Sink('alice', 'a2');
    await g2.attach(phone);
    await g2.attach(laptop);
    await g1.attach(aliceOther);
    const reached = await g1.deliverMessage(['bob', 'alice'], base, { b1: 'for-b1', b2: 'for-b2', a2: 'for-a2', b3: 'offline' }, 'a1');
    expect([...reached].sort()).toEqual(['a2', 'b1', 'b2']); // b3 has no route: it is the notifier's
    await tick();
    expect(envelopesToG2).toHaveLength(1);
    expect(phone.frames).toEqual([{ type: 'msg', ...base, body: 'for-b1' }]);
    expect(laptop.frames).toEqual([{ type: 'msg', ...base, body: 'for-b2' }]);
    expect(aliceOther.frames).toEqual([{ type: 'msg', ...base, body: 'for-a2' }]);
  });

  it('broadcasts a large group message once; each gateway delivers to its own devices of the audience, with their keys', async () => {
    const members = new Set(['alice', 'bob', 'carol']);
    const asked: [string, number, number][] = [];
    for (const g of [g1, g2]) {
      g.useGroupAudience(async (group, minVersion, seq) => {
        asked.push([group, minVersion, seq]);
        return members;
      });
    }
    const [sender, aliceOther, bob, carol, eve] = [new Sink('alice', 'a1'), new Sink('alice', 'a2'), new Sink('bob', 'b1'), new Sink('carol', 'c1'), new Sink('eve', 'e1')];
    await g1.attach(sender);
    await g1.attach(carol);
    await g2.attach(aliceOther);
    await g2.attach(bob);
    await g2.attach(eve);
    const frame = { type: 'msg' as const, ...base, conversationId: 'grp', groupId: 'grp', seq: 7, body: 'shared' };
    await g1.broadcastGroup(frame, { b1: 'key-for-b1' }, 5);
    await tick();
    await tick();
    expect(sender.frames).toEqual([]); // the sending device
    expect(eve.frames).toEqual([]); // not in the audience
    expect(bob.frames).toEqual([{ ...frame, key: 'key-for-b1' }]);
    expect(carol.frames).toEqual([frame]);
    expect(aliceOther.frames).toEqual([frame]);
    expect(envelopesToG2).toHaveLength(0); // no per-gateway routing at all
    expect(asked).toEqual([
      ['grp', 5, 7],
      ['grp', 5, 7],
    ]);
  });

  it('skips the sending device and devices without a body', async () => {
    const sender = new Sink('alice', 'a1');
    const bob = new Sink('bob', 'b1');
    await g1.attach(sender);
    await g2.attach(bob);
    await g1.deliverMessage(['bob', 'alice'], base, { x: 'not-for-anyone-here' }, 'a1');
    await tick();
    expect(sender.frames).toEqual([]);
    expect(bob.frames).toEqual([]);
    expect(envelopesToG2).toHaveLength(0);
  });

  it('a device that reconnects to another gateway is taken from the old one', async () => {
    const old = new Sink('bob', 'b1');
    const fresh = new Sink('bob', 'b1');
    await g2.attach(old);
    await g1.attach(fresh);
    await tick();
    expect(old.replacedCount).toBe(1);
    await g1.deliverMessage(['bob'], base, { b1: 'body' }, 'a1');
    await tick();
    expect(fresh.frames).toHaveLength(1);
    expect(old.frames).toHaveLength(0);
  });

  it('re-registers lost routes on the next heartbeat and makes local devices catch up', async () => {
    const presence = new MemoryPresence(new ManualClock());
    const g = new Delivery(presence, broker, createLogger('silent'), createMetrics(), { gatewayId: 'g3', presenceTtlMs: 60_000, heartbeatMs: 10 });
    await g.start();
    const bob = new Sink('bob', 'b1');
    await g.attach(bob);
    await presence.disconnect({ userId: 'bob', deviceId: 'b1', gatewayId: 'g3' }); // presence lost it
    const end = Date.now() + 5_000;
    while (bob.resyncs === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    await g.stop();
    expect(bob.resyncs).toBeGreaterThanOrEqual(1);
    expect(await presence.routes(['bob'])).toEqual([{ userId: 'bob', deviceId: 'b1', gatewayId: 'g3' }]);
  });

  it('announces online and offline to watchers on any gateway', async () => {
    const watcher = new Sink('alice', 'a1');
    await g1.attach(watcher);
    expect(await g1.watchPresence(watcher, ['bob'])).toEqual([{ userId: 'bob', online: false, lastSeen: null }]);
    const bob = new Sink('bob', 'b1');
    const conn = await g2.attach(bob);
    await tick();
    await g2.detach(bob, conn);
    await tick();
    const presence = watcher.frames.filter((f) => f.type === 'presence');
    expect(presence.map((p) => p.type === 'presence' && p.online)).toEqual([true, false]);
  });

  it('flushes the deliveries of one turn together: one route read and one publish per gateway, in the order asked', async () => {
    const bob = new Sink('bob', 'b1');
    const carol = new Sink('carol', 'c1');
    await g2.attach(bob);
    await g2.attach(carol);
    const reads = vi.spyOn(presence, 'routesAt');
    await Promise.all([
      g1.deliverMessage(['bob', 'alice'], { ...base, seq: 1 }, { b1: 'one' }, 'a1'),
      g1.deliverMessage(['carol', 'alice'], { ...base, id: 'm2', conversationId: 'c2' }, { c1: 'two' }, 'a1'),
      g1.relay(['bob'], { type: 'typing', conversationId: 'c1', from: 'alice', active: true }),
      g1.deliverMessage(['bob', 'alice'], { ...base, id: 'm3', seq: 2 }, { b1: 'three' }, 'a1'),
    ]);
    await tick();
    expect(reads).toHaveBeenCalledTimes(1);
    expect(envelopesToG2).toHaveLength(1);
    expect(bob.frames.map((f) => (f.type === 'msg' ? f.body : f.type))).toEqual(['one', 'three', 'typing']);
    expect(carol.frames.map((f) => f.type === 'msg' && f.body)).toEqual(['two']);
  });

  it('serves routes from its cache while the route version is unchanged', async () => {
    const bob = new Sink('bob', 'b1');
    await g2.attach(bob);
    const reads = vi.spyOn(presence, 'routesAt');
    for (let seq = 1; seq <= 3; seq++) {
      await g1.deliverMessage(['bob'], { ...base, seq }, { b1: `m${seq}` }, 'a1');
      await tick();
    }
    expect(reads).toHaveBeenCalledTimes(1);
    expect(bob.frames).toHaveLength(3);
  });

  it('a stale cache loses nothing: a device that connected or moved since the routes were cached still gets the message', async () => {
    const g3 = new Delivery(presence, broker, createLogger('silent'), createMetrics(), { gatewayId: 'g3', presenceTtlMs: 60_000, heartbeatMs: 10_000 });
    await g3.start();
    try {
      const phone = new Sink('bob', 'b1');
      await g2.attach(phone);
      await g1.deliverMessage(['bob'], { ...base, seq: 1 }, { b1: 'first', b2: 'first-b2' }, 'a1'); // caches bob: b1 on g2
      await tick();
      // Without g1 hearing of it: bob's laptop connects on g3 and his phone moves from g2 to g3.
      const laptop = new Sink('bob', 'b2');
      const movedPhone = new Sink('bob', 'b1');
      await g3.attach(laptop);
      await g3.attach(movedPhone);
      await g1.deliverMessage(['bob'], { ...base, seq: 2 }, { b1: 'second', b2: 'second-b2' }, 'a1');
      await vi.waitFor(() => {
        expect(laptop.frames).toHaveLength(1);
        expect(movedPhone.frames).toHaveLength(1);
      });
      expect(laptop.frames).toEqual([{ type: 'msg', ...base, seq: 2, body: 'second-b2' }]);
      expect(movedPhone.frames).toEqual([{ type: 'msg', ...base, seq: 2, body: 'second' }]);
      expect(phone.frames).toEqual([{ type: 'msg', ...base, seq: 1, body: 'first' }]); // the old connection got nothing more
      // The cache was refreshed: the next message goes straight to g3.
      await g1.deliverMessage(['bob'], { ...base, seq: 3 }, { b1: 'third', b2: 'third-b2' }, 'a1');
      await vi.waitFor(() => expect(movedPhone.frames).toHaveLength(2));
      expect(laptop.frames).toHaveLength(2);
    } finally {
      await g3.stop();
    }
  });

  it('a failed route lookup fails the deliveries of that flush only', async () => {
    const bob = new Sink('bob', 'b1');
    await g2.attach(bob);
    vi.spyOn(presence, 'routesAt').mockRejectedValueOnce(new Error('presence down'));
    await expect(g1.deliverMessage(['bob'], base, { b1: 'lost-live' }, 'a1')).rejects.toThrow('presence down');
    await g1.deliverMessage(['bob'], { ...base, seq: 2 }, { b1: 'next' }, 'a1');
    await tick();
    expect(bob.frames.map((f) => f.type === 'msg' && f.body)).toEqual(['next']);
  });
});
