// The device stream alone: seq order, gap fill from a store that holds rows this device was not given, erased ranges, and where acks move the cursor.
import { describe, expect, it } from 'vitest';
import type { MsgFrame, ServerFrame } from '../protocol/frames.js';
import type { MembershipWindow, MessageStore, StoredMessage } from '../messaging/message-store.js';
import { createLogger } from '../platform/log.js';
import { createMetrics } from '../platform/metrics.js';
import { DeviceStream, type StreamOutlet } from './device-stream.js';

const C = 'conversation-1';

/**
 * A store holding one conversation's rows; rows with a null body carry nothing for this device,
 * and seqs up to `lastSeq` without a row were erased. `window`: the user's membership window.
 */
function storeOf(rows: StoredMessage[], direct = true, lastSeq = rows.length, window: MembershipWindow = { joinedSeq: 0, leftSeq: null }) {
  const cursors: { delivered: number }[] = [];
  const fetches: number[] = [];
  const reads = { conversations: 0, receipts: 0, windows: 0 };
  const store = {
    deviceConversations: async () => {
      reads.conversations++;
      return [{ conversationId: C, lastSeq, delivered: 0, direct }];
    },
    membershipWindow: async () => {
      reads.windows++;
      return window;
    },
    fetch: async (_c: string, _d: string, _u: string, after: number, limit: number) => {
      fetches.push(after);
      return rows.filter((r) => r.seq > after).slice(0, limit);
    },
    advanceCursor: async (c: { delivered: number }) => void cursors.push(c),
    receiptState: async () => {
      reads.receipts++;
      return [{ conversationId: C, userId: 'bob', delivered: 1, read: 0 }];
    },
  };
  return { store: store as unknown as MessageStore, cursors, fetches, reads };
}

function row(seq: number, body: string | null): StoredMessage {
  return { conversationId: C, seq, id: `m${seq}`, from: 'bob', fromDevice: 'bob-1', sentAt: seq, body, key: null, system: null, group: false, expiresAt: null };
}

function live(seq: number): MsgFrame {
  return { type: 'msg', id: `m${seq}`, conversationId: C, seq, from: 'bob', fromDevice: 'bob-1', sentAt: seq, body: `b${seq}` };
}

function streamOver(store: MessageStore) {
  const sent: ServerFrame[] = [];
  const out: StreamOutlet = { send: (f) => void sent.push(f), closed: false, close: () => {}, bufferedAmount: 0, drained: async () => {} };
  const stream = new DeviceStream(out, 'alice', 'alice-1', { store, metrics: createMetrics(), log: createLogger('silent') });
  const seqs = () => sent.filter((f): f is MsgFrame => f.type === 'msg').map((f) => f.seq);
  const settled = () => new Promise<void>((r) => stream.enqueue(async () => r()));
  return { stream, sent, seqs, settled };
}

describe('DeviceStream', () => {
  it('writes in seq order: drops what it already wrote, and fills a gap from the store before the message that revealed it', async () => {
    const { store, fetches } = storeOf([row(1, 'b1'), row(2, 'b2'), row(3, 'b3'), row(4, 'b4')]);
    const s = streamOver(store);
    s.stream.deliver(live(1));
    s.stream.deliver(live(1));
    s.stream.deliver(live(4)); // 2 and 3 were delivered by another process that has not reached us
    s.stream.deliver(live(2));
    await s.settled();
    expect(s.seqs()).toEqual([1, 2, 3, 4]);
    expect(fetches).toEqual([1]); // one gap fill, from where the device stood
    expect(s.stream.position(C)).toBe(4);
  });

  it('skips rows that carry nothing for the device, and an ack past them moves the cursor to the end', async () => {
    const { store, cursors } = storeOf([row(1, 'b1'), row(2, null), row(3, null)]);
    const s = streamOver(store);
    await s.stream.loadCursors();
    s.stream.enqueue(() => s.stream.catchUpAll());
    await s.settled();
    expect(s.seqs()).toEqual([1]);
    expect(s.stream.position(C)).toBe(3);
    // Acking the last message with a body covers the empty rows after it too.
    expect(s.stream.acknowledge(C, 1)).toEqual({ delivered: 3, before: 0 });
    // An older ack does not move it back, and one past what was given moves nothing.
    expect(s.stream.acknowledge(C, 1)).toEqual({ delivered: 3, before: 3 });
    expect(s.stream.acknowledge(C, 9)).toEqual({ delivered: 0, before: 3 });
    expect(cursors).toEqual([]);
  });

  it('an ack below the last message given moves the cursor only to it', async () => {
    const { store } = storeOf([row(1, 'b1'), row(2, 'b2')]);
    const s = streamOver(store);
    s.stream.deliver(live(1));
    s.stream.deliver(live(2));
    await s.settled();
    expect(s.stream.acknowledge(C, 1)).toEqual({ delivered: 1, before: 0 });
    expect(s.stream.acknowledge(C, 2)).toEqual({ delivered: 2, before: 1 });
  });

  it('syncs from the conversations read when it connected, and reads receipts only when one of them is direct', async () => {
    for (const direct of [true, false]) {
      const { store, reads } = storeOf([row(1, 'b1'), row(2, 'b2')], direct);
      const s = streamOver(store);
      const conversations = await s.stream.loadCursors();
      await s.stream.sync(conversations);
      expect(s.seqs()).toEqual([1, 2]);
      expect(s.sent.at(direct ? -2 : -1)).toEqual({ type: 'caught_up' });
      expect(reads).toEqual({ conversations: 1, receipts: direct ? 1 : 0, windows: 0 });
      if (direct) expect(s.sent.at(-1)).toEqual({ type: 'receipt', kind: 'delivered', conversationId: C, seq: 1, by: 'bob' });
    }
  });

  it('counts its own sends as covered, so a later message is not taken for a gap', async () => {
    const { store, fetches } = storeOf([row(1, 'b1'), row(2, null), row(3, 'b3')]);
    const s = streamOver(store);
    s.stream.deliver(live(1));
    s.stream.ownSent(C, 2, false);
    s.stream.deliver(live(3));
    await s.settled();
    expect(s.seqs()).toEqual([1, 3]);
    expect(fetches).toEqual([]); // no gap: nothing read from the store
  });

  it('tells a device exactly which seqs were erased, in seq order where they were, and the cursor moves past them only on its ack', async () => {
    // Seqs 1-3, 5 and 7-8 were erased; 4 and 6 remain.
    const { store, cursors, reads } = storeOf([row(4, 'b4'), row(6, 'b6')], true, 8);
    const s = streamOver(store);
    await s.stream.sync(await s.stream.loadCursors());
    const stream = s.sent.filter((f) => f.type === 'msg' || f.type === 'expired' || f.type === 'caught_up');
    expect(stream).toEqual([
      { type: 'expired', conversationId: C, from: 1, to: 3 },
      live(4),
      { type: 'expired', conversationId: C, from: 5, to: 5 },
      live(6),
      { type: 'expired', conversationId: C, from: 7, to: 8 },
      { type: 'caught_up' },
    ]);
    expect(reads.windows).toBe(1); // read once, only because seqs were missing
    expect(s.stream.position(C)).toBe(8);
    expect(cursors).toEqual([]); // an expired range is acknowledged by the device, not assumed
    expect(s.stream.acknowledge(C, 6)).toEqual({ delivered: 6, before: 0 });
    expect(s.stream.acknowledge(C, 8)).toEqual({ delivered: 8, before: 6 });
  });

  it('in a group, reports erased seqs only inside the membership window', async () => {
    // Joined at 5 (the system message that added the user) and left at 9; 6 and 8 were erased; 10 is past the window.
    const added = { ...row(5, null), system: { kind: 'member_added' as const, users: ['alice'] }, group: true };
    const { store } = storeOf([added, { ...row(7, 'b7'), group: true }], false, 9, { joinedSeq: 5, leftSeq: 9 });
    const s = streamOver(store);
    await s.stream.sync(await s.stream.loadCursors());
    expect(s.sent.filter((f) => f.type !== 'msg' && f.type !== 'caught_up')).toEqual([
      { type: 'expired', conversationId: C, from: 6, to: 6 },
      { type: 'expired', conversationId: C, from: 8, to: 9 },
    ]);
    expect(s.seqs()).toEqual([5, 7]);
    expect(s.stream.position(C)).toBe(9);
  });

  it('a live message after erased seqs: the gap fill reports them before it, then carries on live', async () => {
    const { store } = storeOf([row(1, 'b1'), row(4, 'b4'), row(5, 'b5')]);
    const s = streamOver(store);
    s.stream.deliver(live(1));
    s.stream.deliver(live(4)); // 2 and 3 expired before this device fetched them
    s.stream.deliver(live(5));
    await s.settled();
    expect(s.sent.map((f) => (f.type === 'msg' ? f.seq : f))).toEqual([1, { type: 'expired', conversationId: C, from: 2, to: 3 }, 4, 5]);
  });
});
