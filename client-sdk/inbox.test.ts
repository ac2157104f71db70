// Unit tests of the inbox: seq dedupe per conversation, handling in arrival order, expired ranges, messages a push handled, ack and read batching, receipt dedupe.
import { describe, expect, it } from 'vitest';
import type { ClientFrame, MsgFrame } from '../protocol/frames.js';
import { ManualClock, settle } from './clock.test-support.js';
import { Inbox } from './inbox.js';

const msg = (conversationId: string, seq: number): MsgFrame => ({ type: 'msg', id: `${conversationId}#${seq}`, conversationId, seq, from: 'u', fromDevice: 'd', sentAt: 0, body: '' });

function setup(handle?: (f: MsgFrame) => Promise<void>, elsewhere: string[] = []) {
  const clock = new ManualClock();
  const handled: string[] = [];
  const wire: ClientFrame[] = [];
  const failures: unknown[] = [];
  const expired: string[] = [];
  const acked: string[] = [];
  let connected = true;
  const inbox = new Inbox({
    handle: async (f) => {
      await handle?.(f);
      handled.push(f.id);
    },
    send: (f) => {
      if (!connected) return false;
      wire.push(f);
      return true;
    },
    failed: (err) => failures.push(err),
    handledElsewhere: async (c, seq) => elsewhere.includes(`${c}#${seq}`),
    acked: (c, seq) => acked.push(`${c}#${seq}`),
    expired: (r) => void expired.push(`${r.conversationId}#${r.from}-${r.to}`),
    clock,
  });
  return { clock, inbox, handled, wire, failures, expired, acked, setConnected: (c: boolean) => void (connected = c) };
}

describe('Inbox', () => {
  it('handles each seq once per conversation and acknowledges resends too', async () => {
    const t = setup();
    for (const [c, s] of [['a', 1], ['a', 2], ['b', 1], ['a', 2], ['a', 1], ['a', 3], ['b', 1]] as const) t.inbox.onMessage(msg(c, s));
    await t.inbox.idle();
    expect(t.handled).toEqual(['a#1', 'a#2', 'b#1', 'a#3']);
    await t.clock.advance(10);
    expect(t.wire).toEqual([
      { type: 'ack', conversationId: 'a', seq: 3 },
      { type: 'ack', conversationId: 'b', seq: 1 },
    ]);
    // A resend after the ack went out is acknowledged again (the server had not seen the ack).
    t.inbox.onMessage(msg('a', 3));
    await t.inbox.idle();
    await t.clock.advance(10);
    expect(t.wire.at(-1)).toEqual({ type: 'ack', conversationId: 'a', seq: 3 });
    expect(t.handled).toHaveLength(4);
  });

  it('handles messages one at a time in arrival order, even when an earlier one takes longer', async () => {
    const gates = new Map<string, () => void>();
    const started: string[] = [];
    const t = setup((f) => {
      started.push(f.id);
      return new Promise<void>((r) => gates.set(f.id, r));
    });
    t.inbox.onMessage(msg('a', 1));
    t.inbox.onMessage(msg('b', 1));
    let caughtUp = false;
    t.inbox.after(() => void (caughtUp = true));
    await settle();
    expect(started).toEqual(['a#1']); // b#1 waits for a#1
    gates.get('a#1')!();
    await settle();
    expect(started).toEqual(['a#1', 'b#1']);
    expect(caughtUp).toBe(false);
    gates.get('b#1')!();
    await t.inbox.idle();
    expect(t.handled).toEqual(['a#1', 'b#1']);
    expect(caughtUp).toBe(true);
  });

  it('acknowledges only after the handler ran, batched: one ack per conversation per ackDelayMs', async () => {
    let release!: () => void;
    const t = setup((f) => (f.seq === 2 ? new Promise<void>((r) => (release = r)) : Promise.resolve()));
    t.inbox.onMessage(msg('a', 1));
    t.inbox.onMessage(msg('a', 2));
    await settle();
    await t.clock.advance(10);
    expect(t.wire).toEqual([{ type: 'ack', conversationId: 'a', seq: 1 }]); // seq 2 is still being handled
    release();
    await t.inbox.idle();
    expect(t.wire).toHaveLength(1);
    expect(t.clock.pending()).toEqual([10]);
    await t.clock.advance(10);
    expect(t.wire).toEqual([
      { type: 'ack', conversationId: 'a', seq: 1 },
      { type: 'ack', conversationId: 'a', seq: 2 },
    ]);
  });

  it('keeps acks and reads that could not be sent, and sends the highest of each once connected', async () => {
    const t = setup();
    t.setConnected(false);
    t.inbox.onMessage(msg('a', 1));
    t.inbox.onMessage(msg('a', 2));
    await t.inbox.idle();
    await t.clock.advance(10);
    t.inbox.markRead('a', 1);
    t.inbox.markRead('a', 2);
    t.inbox.markRead('a', 1);
    expect(t.wire).toEqual([]);
    t.setConnected(true);
    t.inbox.flushReads();
    t.inbox.flushAcks();
    expect(t.wire).toEqual([
      { type: 'read', conversationId: 'a', seq: 2 },
      { type: 'ack', conversationId: 'a', seq: 2 },
    ]);
    t.inbox.flushReads();
    t.inbox.flushAcks();
    expect(t.wire).toHaveLength(2);
  });

  it('goes on after a handler fails, and reports the failure', async () => {
    const t = setup((f) => (f.seq === 1 ? Promise.reject(new Error('boom')) : Promise.resolve()));
    t.inbox.onMessage(msg('a', 1));
    t.inbox.onMessage(msg('a', 2));
    await t.inbox.idle();
    expect(t.handled).toEqual(['a#2']);
    expect(t.failures).toHaveLength(1);
  });

  it('reports a receipt once, and never one behind what was reported', () => {
    const t = setup();
    const r = (seq: number, kind: 'delivered' | 'read' = 'delivered') => t.inbox.receipt({ type: 'receipt', kind, conversationId: 'c', seq, by: 'bob' });
    expect(r(2)).toEqual({ kind: 'delivered', conversationId: 'c', seq: 2, by: 'bob' });
    expect(r(2)).toBeNull();
    expect(r(1)).toBeNull();
    expect(r(1, 'read')).not.toBeNull(); // kinds are separate
    expect(r(3)).not.toBeNull();
    const g = (delivered: number, read: number) => t.inbox.groupReceipt({ type: 'group_receipt', conversationId: 'g', delivered, read });
    expect(g(2, 1)).toEqual({ groupId: 'g', delivered: 2, read: 1 });
    expect(g(2, 1)).toBeNull();
    expect(g(1, 1)).toBeNull();
    expect(g(2, 2)).not.toBeNull();
  });

  it('skips an expired range in its place, reports it once, and acknowledges its end', async () => {
    const t = setup();
    t.inbox.onMessage(msg('a', 1));
    t.inbox.onExpired({ type: 'expired', conversationId: 'a', from: 2, to: 4 });
    t.inbox.onMessage(msg('a', 3)); // inside the range: never handled
    t.inbox.onMessage(msg('a', 5));
    t.inbox.onExpired({ type: 'expired', conversationId: 'a', from: 2, to: 4 }); // a resend
    await t.inbox.idle();
    expect(t.handled).toEqual(['a#1', 'a#5']);
    expect(t.expired).toEqual(['a#2-4']);
    await t.clock.advance(10);
    expect(t.wire).toEqual([{ type: 'ack', conversationId: 'a', seq: 5 }]);
    // A range that is all the device has: acknowledged on its own.
    t.inbox.onExpired({ type: 'expired', conversationId: 'b', from: 1, to: 7 });
    await t.inbox.idle();
    await t.clock.advance(10);
    expect(t.wire.at(-1)).toEqual({ type: 'ack', conversationId: 'b', seq: 7 });
    expect(t.acked).toEqual(['a#5', 'b#7']);
  });

  it('skips a message handled elsewhere (a push) but acknowledges it, and handles the seqs around it', async () => {
    const t = setup(undefined, ['a#2']);
    for (const s of [1, 2, 3]) t.inbox.onMessage(msg('a', s));
    await t.inbox.idle();
    expect(t.handled).toEqual(['a#1', 'a#3']);
    await t.clock.advance(10);
    expect(t.wire).toEqual([{ type: 'ack', conversationId: 'a', seq: 3 }]);
  });

  it('runs out-of-band work in turn, and not for a seq this inbox handled already (nor does it count it as handled)', async () => {
    const t = setup();
    t.inbox.onMessage(msg('a', 2));
    const ran: string[] = [];
    const late = t.inbox.outOfBand(msg('a', 2), async () => ran.push('a#2'));
    const fresh = t.inbox.outOfBand(msg('a', 3), async () => ran.push('a#3'));
    expect(await late).toBeNull();
    expect(await fresh).toBe(1);
    expect(ran).toEqual(['a#3']);
    // a#3 still comes through the socket (skipping it is the store's job: handledElsewhere).
    t.inbox.onMessage(msg('a', 3));
    await t.inbox.idle();
    expect(t.handled).toEqual(['a#2', 'a#3']);
    // A failure of the work goes to its caller, and the inbox goes on.
    await expect(t.inbox.outOfBand(msg('a', 9), () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    t.inbox.onMessage(msg('a', 4));
    await t.inbox.idle();
    expect(t.handled.at(-1)).toBe('a#4');
    expect(t.failures).toEqual([]);
  });
});
