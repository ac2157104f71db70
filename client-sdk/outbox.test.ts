// Unit tests of the outbox: the in-flight window, order, resends after a reconnect, devices_changed, rate limits, refusals.
import { describe, expect, it } from 'vitest';
import type { ErrorFrame } from '../protocol/frames.js';
import { ManualClock, settle } from './clock.test-support.js';
import { ParleyError } from './http.js';
import { Outbox, type OutboxEntry, type SendFrame } from './outbox.js';

/** A manual clock that also plays the connection: whether it is ready, and the frames put on the wire. */
class ClockWithWire extends ManualClock {
  connected = true;
  wire: SendFrame[] = [];
  ids(): string[] {
    return this.wire.map((f) => f.id);
  }
}

function setup(options: { maxInFlight?: number; encrypt?: (e: OutboxEntry, n: number) => Promise<SendFrame> } = {}) {
  const clock = new ClockWithWire();
  let encryptions = 0;
  let id = 0;
  const changed: string[] = [];
  const acknowledged: string[] = [];
  const outbox = new Outbox({
    encrypt: (e) => {
      encryptions++;
      return options.encrypt?.(e, encryptions) ?? Promise.resolve({ type: 'send', id: e.id, to: e.to, payloads: [{ device: 'd1', body: `v${encryptions}` }] });
    },
    send: (f) => {
      if (!clock.connected) return false;
      clock.wire.push(f);
      return true;
    },
    isReady: () => clock.connected,
    maxPayloadBytes: () => 10_000,
    devicesChanged: (e) => changed.push(e.id),
    acknowledged: (e) => acknowledged.push(e.id),
    clock,
    newId: () => `m${++id}`,
    ...(options.maxInFlight !== undefined ? { maxInFlight: options.maxInFlight } : {}),
  });
  const settled: Record<string, string> = {};
  const send = (to = 'bob') => {
    const p = outbox.enqueue(to, false, new Uint8Array([1]));
    const n = `m${id}`;
    p.then(
      (r) => void (settled[n] = `seq ${r.seq}`),
      (e: ParleyError) => void (settled[n] = e.code),
    );
    return n;
  };
  const sent = (n: string, seq: number) => outbox.onSent({ type: 'sent', id: n, conversationId: 'c', seq, sentAt: 0 });
  const error = (ref: string, code: string, extra: Partial<ErrorFrame> = {}) => outbox.onError({ type: 'error', code, message: code, ref, temporary: false, ...extra });
  return { clock, outbox, send, sent, error, settled, changed, acknowledged, encryptions: () => encryptions };
}

describe('Outbox', () => {
  it('keeps at most maxInFlight unacknowledged sends on the wire, in the order they were made', async () => {
    const t = setup({ maxInFlight: 2 });
    const ids = [t.send(), t.send(), t.send(), t.send(), t.send()];
    await settle();
    expect(t.clock.ids()).toEqual(ids.slice(0, 2));
    expect(t.outbox.inFlight).toBe(2);
    t.sent(ids[0]!, 1);
    await settle();
    expect(t.clock.ids()).toEqual(ids.slice(0, 3));
    t.sent(ids[1]!, 2);
    t.sent(ids[2]!, 3);
    await settle();
    expect(t.clock.ids()).toEqual(ids);
    expect(t.settled).toEqual({ m1: 'seq 1', m2: 'seq 2', m3: 'seq 3' });
    expect(t.acknowledged).toEqual(['m1', 'm2', 'm3']);
  });

  it('holds sends while not connected and sends them once ready', async () => {
    const t = setup();
    t.clock.connected = false;
    t.send();
    t.send();
    await settle();
    expect(t.clock.wire).toEqual([]);
    t.clock.connected = true;
    await t.outbox.pump();
    expect(t.clock.ids()).toEqual(['m1', 'm2']);
  });

  it('resends unacknowledged sends after a reconnect, with the same ids and ciphertext, encrypting each once', async () => {
    const t = setup();
    t.send();
    t.send();
    await settle();
    t.sent('m1', 1);
    t.clock.connected = false;
    t.outbox.disconnected();
    expect(t.outbox.inFlight).toBe(0);
    t.clock.connected = true;
    await t.outbox.pump();
    expect(t.clock.ids()).toEqual(['m1', 'm2', 'm2']);
    expect(t.clock.wire[1]).toEqual(t.clock.wire[2]);
    expect(t.encryptions()).toBe(2);
    t.sent('m2', 2);
    await settle();
    expect(t.settled).toEqual({ m1: 'seq 1', m2: 'seq 2' });
    expect(t.outbox.size).toBe(0);
  });

  it('encrypts again for the new device list after devices_changed, and sends under the same id', async () => {
    const t = setup();
    t.send();
    await settle();
    expect(t.error('m1', 'devices_changed')).toBe(true);
    await settle();
    expect(t.changed).toEqual(['m1']);
    expect(t.clock.wire.map((f) => (f.type === 'send' ? f.payloads[0]!.body : ''))).toEqual(['v1', 'v2']);
    expect(t.clock.ids()).toEqual(['m1', 'm1']);
  });

  it('waits out rate_limited for retryAfterMs, holding later sends so that order is kept', async () => {
    const t = setup();
    t.send();
    await settle();
    t.error('m1', 'rate_limited', { temporary: true, retryAfterMs: 1000 });
    t.send();
    t.sent('zzz', 9); // not ours: nothing changes
    await t.outbox.pump(); // a pump while paused sends nothing
    expect(t.clock.ids()).toEqual(['m1']);
    await t.clock.advance(999);
    expect(t.clock.ids()).toEqual(['m1']);
    await t.clock.advance(1);
    expect(t.clock.ids()).toEqual(['m1', 'm1', 'm2']);
  });

  it('resumes after a pause even when its timer fires a little before the clock reaches the end of it', async () => {
    const t = setup();
    // Timers of this clock fire 1 ms early, as Node's can against Date.now().
    const setTimer = t.clock.setTimeout.bind(t.clock);
    t.clock.setTimeout = (fn, ms) => setTimer(fn, Math.max(1, ms - 1));
    t.send();
    await settle();
    t.error('m1', 'rate_limited', { temporary: true, retryAfterMs: 1000 });
    await t.clock.advance(999); // the timer fires here, 1 ms early: nothing may go out yet
    expect(t.clock.ids()).toEqual(['m1']);
    await t.clock.advance(10);
    expect(t.clock.ids()).toEqual(['m1', 'm1']);
  });

  it('rejects a send the server refuses for good, and goes on with the next', async () => {
    const t = setup({ maxInFlight: 1 });
    t.send();
    t.send();
    await settle();
    expect(t.clock.ids()).toEqual(['m1']);
    t.error('m1', 'forbidden');
    await settle();
    expect(t.settled.m1).toBe('forbidden');
    expect(t.clock.ids()).toEqual(['m1', 'm2']);
    expect(t.error('unknown-ref', 'forbidden')).toBe(false); // not ours: the client reports it
  });

  it('rejects a send too large for the server without sending it', async () => {
    const t = setup({ encrypt: (e) => Promise.resolve({ type: 'send', id: e.id, to: e.to, payloads: [{ device: 'd', body: 'x'.repeat(20_000) }] }) });
    t.send();
    await settle();
    expect(t.clock.wire).toEqual([]);
    expect(t.settled.m1).toBe('too_large');
  });

  it('keeps a send whose encryption hit a temporary failure and tries again later', async () => {
    const t = setup({
      encrypt: (e, n) => (n === 1 ? Promise.reject(new ParleyError('unavailable', 'directory down')) : Promise.resolve({ type: 'send', id: e.id, to: e.to, payloads: [] })),
    });
    t.send();
    await settle();
    expect(t.clock.wire).toEqual([]);
    expect(t.clock.pending()).toEqual([500]);
    await t.clock.advance(500);
    expect(t.clock.ids()).toEqual(['m1']);
  });
});
